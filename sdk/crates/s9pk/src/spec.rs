//! Hearth service spec (work in progress).

//! Exver: versions, extended versions and ranges (work in progress).

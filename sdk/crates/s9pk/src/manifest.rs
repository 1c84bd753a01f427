//! StartOS-compatible package manifest (work in progress).

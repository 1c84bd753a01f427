//! Integration tests of the real `hearth-init` binary (no root needed).
mod integration {
    mod supervise;
}

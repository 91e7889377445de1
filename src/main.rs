//! The `wscluster` binary. STUB: being written.
fn main() {}

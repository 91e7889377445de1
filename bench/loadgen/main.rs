//! The load generator (being written on its own branch).
fn main() {}

//! The cluster: relays what the protocols do to every other node, through an engine.
//!
//! - [`envelope`]: the versioned binary frame every engine carries.
//! - [`membership`]: who is alive, sans I/O.

pub mod engine;
pub mod envelope;
pub mod membership;
pub mod mesh;

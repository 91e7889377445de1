//! The local hub: channels → this node's subscribers, and encode-once fan-out. STUB: being written.
pub mod roster;

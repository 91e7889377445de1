//! The binary's own parts: command line, logging, and running a node until a signal.

pub(crate) mod args;
pub(crate) mod gen_secret;
pub(crate) mod logging;
pub(crate) mod node;

//! The binary's own parts: command line, subcommands, logging, and running a node until a signal.

pub(crate) mod args;
pub(crate) mod commands;
pub(crate) mod gen_secret;
pub(crate) mod json_log;
pub(crate) mod logging;
pub(crate) mod node;
pub(crate) mod redact;

pub mod auth;
pub mod replay;
pub mod wire;

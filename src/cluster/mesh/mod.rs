pub mod auth;
pub mod replay;

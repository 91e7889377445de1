//! The JSON-RPC errors the sgc server answers with itself (S10, docs/wire.md §2.3 and §2.5), in
//! one place. The application's own RPC errors carry whatever code it chooses.

/// An error the server answers an RPC request with: its JSON-RPC code and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcError {
    /// The JSON-RPC error code.
    pub code: i64,
    /// The message, exactly as the reference server writes it.
    pub message: &'static str,
}

impl RpcError {
    /// -32601: an RPC the application's `rpc_auth` hook refused (`S_JSONRPC_METHOD_NOT_FOUND`).
    pub const METHOD_NOT_FOUND: RpcError = RpcError {
        code: -32601,
        message: "Method not found. The method does not exist / is not available.",
    };
    /// -32000: the connection already has `sgc.rpc_max_pending` requests (or
    /// `sgc.rpc_max_pending_bytes` of ids) waiting for the application's reply.
    pub const TOO_MANY_PENDING: RpcError = RpcError {
        code: -32000,
        message: "Too many pending requests.",
    };

    /// Every error the server sends by itself.
    pub const ALL: [RpcError; 2] = [RpcError::METHOD_NOT_FOUND, RpcError::TOO_MANY_PENDING];
}

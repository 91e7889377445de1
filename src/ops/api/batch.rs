//! `POST /api/batch {"commands":[{"method","params"}, …]}`: every command is checked first (its
//! method, its scope, the shape of its params), then they run in order, one result per command
//! (a command that fails at run time, such as a disconnect of an unknown connection, gives an
//! error result and the others still run).

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::super::Ops;
use super::error::ApiError;
use super::keys::Caller;
use super::routes;
use super::scope::Scope;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody<'a> {
    #[serde(borrow)]
    commands: Vec<Command<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Command<'a> {
    method: String,
    #[serde(borrow)]
    params: &'a RawValue,
}

#[derive(Clone, Copy)]
enum Method {
    Publish,
    Broadcast,
    Disconnect,
}

impl Method {
    fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "publish" => Method::Publish,
            "broadcast" => Method::Broadcast,
            "disconnect" => Method::Disconnect,
            _ => return None,
        })
    }

    fn scope(self) -> Scope {
        match self {
            Method::Publish | Method::Broadcast => Scope::Publish,
            Method::Disconnect => Scope::Disconnect,
        }
    }
}

/// Prefixes a command's error with its position.
fn at(i: usize, e: ApiError) -> ApiError {
    match e {
        ApiError::InvalidJson(m) => ApiError::InvalidRequest(format!("commands[{i}]: {m}")),
        ApiError::InvalidRequest(m) => ApiError::InvalidRequest(format!("commands[{i}]: {m}")),
        ApiError::UnknownMethod(m) => ApiError::UnknownMethod(format!("commands[{i}]: {m}")),
        e => e,
    }
}

/// Runs a batch for `caller`.
pub(super) async fn run(ops: &Ops, caller: Caller<'_>, body: &[u8]) -> Result<Value, ApiError> {
    let b: BatchBody<'_> = super::error::parse(body)?;
    if b.commands.len() > ops.api.max_batch_commands {
        return Err(ApiError::InvalidRequest(format!(
            "{} commands: at most api.max_batch_commands ({}) per batch",
            b.commands.len(),
            ops.api.max_batch_commands
        )));
    }
    let mut plan = Vec::with_capacity(b.commands.len());
    for (i, c) in b.commands.iter().enumerate() {
        let method = Method::parse(&c.method)
            .ok_or_else(|| ApiError::UnknownMethod(c.method.clone()))
            .map_err(|e| at(i, e))?;
        caller.may(method.scope())?;
        let params = c.params.get().as_bytes();
        // The shape is checked before anything runs: a bad command refuses the whole batch.
        check_shape(method, params).map_err(|e| at(i, e))?;
        plan.push((method, params));
    }
    let mut results = Vec::with_capacity(plan.len());
    for (method, params) in plan {
        let r = match method {
            Method::Publish => routes::publish(ops, params),
            Method::Broadcast => routes::broadcast(ops, params),
            Method::Disconnect => routes::disconnect(ops, params).await,
        };
        results.push(match r {
            Ok(v) => json!({ "result": v }),
            Err(e) => e.json(),
        });
    }
    Ok(json!({ "results": results }))
}

/// Parses a command's params without running it.
fn check_shape(method: Method, params: &[u8]) -> Result<(), ApiError> {
    match method {
        Method::Publish => super::error::parse::<routes::PublishBody<'_>>(params).map(drop)?,
        Method::Broadcast => super::error::parse::<routes::BroadcastBody<'_>>(params).map(drop)?,
        Method::Disconnect => super::error::parse::<routes::DisconnectBody>(params).map(drop)?,
    }
    Ok(())
}

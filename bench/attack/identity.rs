//! Attacks on identity: a Presence client claiming another user's member id (the real owner then
//! gets error 1 "Member already exists."), and a JWT with a `crit` header the node does not
//! understand (RFC 7515 §4.1.11: such a token must be refused).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::time::Instant;

use crate::Ctx;
use crate::node::{Expect, Node, flat_keys};
use crate::report::{Outcome, Row};
use crate::sgc;
use crate::ws::{self, Upgrade, Ws};

/// The option that binds Presence member ids to the authenticated identity, when the binary has
/// one: a boolean key of the Presence or authentication section naming a binding, or member ids
/// together with the identity or user.
fn binding_option(ctx: &Ctx) -> Option<String> {
    flat_keys(&ctx.config).into_iter().find_map(|(k, v)| {
        let l = k.to_ascii_lowercase();
        let section = l.starts_with("presence.") || l.starts_with("auth.");
        let binds = l.contains("bind")
            || (l.contains("member") && (l.contains("ident") || l.contains("user")));
        (v.is_bool() && section && binds).then_some(k)
    })
}

/// A Presence client authenticated by URL as `user`, past its session frame.
async fn presence_user(addr: std::net::SocketAddr, user: &str) -> Result<Ws, String> {
    let path = format!("/sgc/auth/url/{user}/{user}-password");
    let mut ws = ws::connect(addr, &path, sgc::PRESENCE).await?;
    ws.recv_until(Instant::now() + Duration::from_secs(5), |t| {
        t.contains("sgc@presence@session")
    })
    .await
    .map_err(|m| format!("{user}: no session frame: {m:?}"))?;
    Ok(ws)
}

/// Sends `member@new` for `id` and waits for the answer to it.
async fn claim(ws: &mut Ws, id: &str) -> Result<Result<(), i64>, String> {
    ws.send(&sgc::member_new(id)).await?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut answer = None;
    ws.recv_until(deadline, |t| {
        answer = sgc::presence_answer(t, id);
        answer.is_some()
    })
    .await
    .map_err(|m| format!("no answer to member@new: {m:?}"))?;
    answer.ok_or_else(|| "no answer".to_owned())
}

/// Attack 9: with authentication on, mallory creates the member id `alice` first; alice then
/// creates her own id.
pub(crate) async fn presence_claim(ctx: &Ctx) -> Row {
    const NAME: &str = "presence-id-claim";
    let option = binding_option(ctx);
    let mut args = vec![
        "--cluster-engine".to_owned(),
        "none".into(),
        "--set".into(),
        "auth.enabled=true".into(),
        "--set".into(),
        r#"auth.users={ alice = "alice-password", mallory = "mallory-password" }"#.into(),
    ];
    if let Some(key) = &option {
        args.push("--set".into());
        args.push(format!("{key}=true"));
    }
    let bound = match &option {
        Some(k) => format!("{k}=true"),
        None => "no option".to_owned(),
    };
    let run = async {
        let node = Node::start(&ctx.bin, &args, Expect::default())?;
        let mut mallory = presence_user(node.ws, "mallory").await?;
        let mallory_got = claim(&mut mallory, "alice").await?;
        let mut alice = presence_user(node.ws, "alice").await?;
        let alice_got = claim(&mut alice, "alice").await?;
        let detail = format!(
            "mallory's member@new id \"alice\": {mallory_got:?}; alice's own: {alice_got:?}"
        );
        Ok::<_, String>(match alice_got {
            Ok(()) => Row::new(NAME, Outcome::Refused, bound.clone(), detail),
            Err(1) => Row::new(
                NAME,
                Outcome::Vulnerable,
                bound.clone(),
                format!("{detail} (the owner is locked out)"),
            ),
            Err(code) => Row::new(
                NAME,
                Outcome::Vulnerable,
                bound.clone(),
                format!("{detail} (the owner got error {code})"),
            ),
        })
    };
    run.await.unwrap_or_else(|e| Row::error(NAME, e))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An HS256 JWT with `header` and `claims`.
fn jwt(
    header: &serde_json::Value,
    claims: &serde_json::Value,
    secret: &str,
) -> Result<String, String> {
    let signing = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(signing.as_bytes());
    Ok(format!("{signing}.{}", b64(&mac.finalize().into_bytes())))
}

/// The status an upgrade with `Authorization: Bearer token` gets.
async fn upgrade_with(addr: std::net::SocketAddr, token: &str) -> Result<u16, String> {
    let auth = format!("Bearer {token}");
    Ok(
        match ws::upgrade(addr, b"/", sgc::SGC, &[("Authorization", auth.as_bytes())]).await? {
            Upgrade::Open(ws) => {
                ws.close().await;
                101
            }
            Upgrade::Refused(status) => status,
        },
    )
}

/// Attack 11: a JWT whose `crit` header names an extension the node does not know.
pub(crate) async fn jwt_crit(ctx: &Ctx) -> Row {
    const NAME: &str = "jwt-crit";
    const SECRET: &str = "attack-tool-jwt-secret-0123456789";
    let run = async {
        let node = Node::start(
            &ctx.bin,
            &[
                "--cluster-engine".into(),
                "none".into(),
                "--set".into(),
                "auth.jwt.enabled=true".into(),
                "--set".into(),
                "auth.jwt.required=true".into(),
                "--set".into(),
                format!("auth.jwt.secret={SECRET}"),
            ],
            Expect::default(),
        )?;
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs()
            + 600;
        let claims = serde_json::json!({"sub": "mallory", "exp": exp});
        let plain = jwt(
            &serde_json::json!({"alg": "HS256", "typ": "JWT"}),
            &claims,
            SECRET,
        )?;
        let crit = jwt(
            &serde_json::json!({"alg": "HS256", "typ": "JWT", "crit": ["urn:attack:must-understand"], "urn:attack:must-understand": true}),
            &claims,
            SECRET,
        )?;
        let control = upgrade_with(node.ws, &plain).await?;
        if control != 101 {
            return Err(format!(
                "a valid token without crit got {control}, not 101: the setup is wrong"
            ));
        }
        let status = upgrade_with(node.ws, &crit).await?;
        Ok::<_, String>(if status == 101 {
            Row::new(
                NAME,
                Outcome::Vulnerable,
                "crit ignored",
                "a JWT with an unknown crit extension was accepted (101)",
            )
        } else {
            Row::new(
                NAME,
                Outcome::Refused,
                format!("HTTP {status}"),
                "a JWT with an unknown crit extension was refused; the same token without crit is accepted",
            )
        })
    };
    run.await.unwrap_or_else(|e| Row::error(NAME, e))
}

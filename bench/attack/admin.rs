//! Attack 8: the token-less admin listener reached cross-site. A web page can make a browser send
//! a `POST` with `Content-Type: text/plain` and its own `Origin` (no preflight), and after a DNS
//! rebinding its own `Host` on a `GET`: both must be refused, and the POST must publish nothing.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::Ctx;
use crate::node::{Expect, Node};
use crate::report::{Outcome, Row};
use crate::sgc;
use crate::ws::{self, Msg};

/// The status code of a raw HTTP/1.1 request sent to `addr`.
async fn http(addr: SocketAddr, request: String) -> Result<u16, String> {
    let go = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, String>(ws::status_of(&String::from_utf8_lossy(&buf)))
    };
    tokio::time::timeout(Duration::from_secs(10), go)
        .await
        .map_err(|_| "no HTTP answer within 10 s".to_owned())?
}

/// Both halves of attack 8 on a node with `http.admin_listen` and no token.
pub(crate) async fn run(ctx: &Ctx) -> Vec<Row> {
    const POST: &str = "admin-cross-site-post";
    const GET: &str = "admin-foreign-host-get";
    let node = match Node::start(
        &ctx.bin,
        &[
            "--cluster-engine".into(),
            "none".into(),
            "--set".into(),
            "http.admin_listen=127.0.0.1:0".into(),
        ],
        Expect {
            mesh: false,
            admin: true,
        },
    ) {
        Ok(n) => n,
        Err(e) => return vec![Row::error(POST, &e), Row::error(GET, e)],
    };
    let Some(admin) = node.admin else {
        return vec![
            Row::error(POST, "no admin address"),
            Row::error(GET, "no admin address"),
        ];
    };
    let mut rows = Vec::new();
    let post = async {
        let mut sub = sgc::client(node.ws).await?;
        sgc::sync(&mut sub, "admin-xs", Duration::from_secs(5))
            .await
            .map_err(|m| format!("subscribe: {m:?}"))?;
        let body = r#"{"channel":"admin-xs","message":"cross-site"}"#;
        let status = http(
            admin,
            format!(
                "POST /admin/publish HTTP/1.1\r\nHost: attacker.example\r\nOrigin: http://attacker.example\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
        .await?;
        // Whatever the status, the subscriber must get nothing.
        let delivered = match sub.recv(Instant::now() + Duration::from_secs(1)).await {
            Msg::Text(t) => sgc::is_event(&t, "admin-xs", "cross-site"),
            _ => false,
        };
        // For the reader: the same publish sent the way the operator's own tools send it.
        let same_site = http(
            admin,
            format!(
                "POST /admin/publish HTTP/1.1\r\nHost: {admin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
        .await
        .map_or_else(|e| e, |s| s.to_string());
        let detail = format!(
            "POST /admin/publish (text/plain, Origin and Host attacker.example): {status}, subscriber {}; the same as application/json to its own Host: {same_site}",
            if delivered {
                "received it"
            } else {
                "received nothing"
            }
        );
        Ok::<_, String>(if (200..300).contains(&status) || delivered {
            Row::new(
                POST,
                Outcome::Vulnerable,
                "no token, no Origin/Host check",
                detail,
            )
        } else {
            Row::new(POST, Outcome::Refused, format!("HTTP {status}"), detail)
        })
    };
    rows.push(post.await.unwrap_or_else(|e| Row::error(POST, e)));
    let get = http(
        admin,
        "GET /admin/connections HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n"
            .into(),
    )
    .await;
    rows.push(match get {
        Ok(status) if (200..300).contains(&status) => Row::new(
            GET,
            Outcome::Vulnerable,
            "no Host check",
            format!("GET /admin/connections with Host attacker.example: {status} (DNS rebinding reads it)"),
        ),
        Ok(status) => Row::new(
            GET,
            Outcome::Refused,
            format!("HTTP {status}"),
            format!("GET /admin/connections with Host attacker.example: {status}"),
        ),
        Err(e) => Row::error(GET, e),
    });
    rows
}

//! The status page in a real headless browser (Debian's chromium over the DevTools protocol): it
//! shows the live cluster (nodes, links, channels, Presence) and keeps refreshing, which the test
//! proves by changing the cluster after the page loaded and waiting for the page to show it.
//!
//! With `WSCLUSTER_SCREENSHOT=path.png` the test also saves a screenshot of the populated page
//! (`scripts/screenshot-status.sh` makes `docs/status-page.png` that way).

mod ops_support;
mod presence_support;
mod support;

use std::time::Duration;

use ops_support::cdp::Browser;
use ops_support::*;
use presence_support::PClient;
use serde_json::Value;
use support::WsClient;

/// How long the page may take to show a change (it polls every second).
const SHOWN: Duration = Duration::from_secs(15);

/// The page's tables, read from the DOM as JSON.
const READ_DOM: &str = r##"JSON.stringify({
  node: document.getElementById("node").textContent,
  ready: document.getElementById("ready").textContent,
  updates: Number(document.body.dataset.updates),
  error: document.getElementById("error").textContent,
  summary: document.getElementById("summary").textContent,
  limited: document.getElementById("limited").hidden ? "" : document.getElementById("limited").textContent,
  details: !document.getElementById("details").hidden,
  nodes: [...document.querySelectorAll("#nodes tr")].map(r => [...r.cells].map(c => c.textContent)),
  peers: [...document.querySelectorAll("#peers tr")].map(r => [...r.cells].map(c => c.textContent)),
  channels: [...document.querySelectorAll("#channels tr")].map(r => [...r.cells].map(c => c.textContent)),
  presence: [...document.querySelectorAll("#presence tr")].map(r => [...r.cells].map(c => c.textContent)),
})"##;

fn dom(v: &Value) -> Value {
    serde_json::from_str(v.as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

fn rows(v: &Value, table: &str) -> Vec<Vec<String>> {
    dom(v)[table]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    r.as_array()
                        .map(|c| {
                            c.iter()
                                .map(|c| c.as_str().unwrap_or_default().to_owned())
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn row<'a>(v: &'a [Vec<String>], first: &str) -> Option<&'a Vec<String>> {
    v.iter().find(|r| r.first().is_some_and(|c| c == first))
}

#[tokio::test]
async fn the_status_page_shows_the_live_cluster_in_a_real_browser() {
    let (a, b, c) = three_nodes().await;
    let (mut on_b, _) = WsClient::sgc(b.ws()).await;
    on_b.subscribe("orders").await;
    let mut alice = PClient::member(a.ws(), "alice", "Alice").await;
    alice.join("lobby").await;

    let browser = Browser::start(1100, 780);
    let mut page = browser.page().await;
    // Without the token the page shows what anyone may see (this node, ready, linked peers) and
    // says how to see more.
    page.navigate(&format!("http://{}/status", a.ws())).await;
    let v = page
        .wait_for("the open summary", READ_DOM, SHOWN, |v| {
            let d = dom(v);
            d["node"] == "a"
                && d["ready"] == "ready"
                && d["summary"] == "2 linked peer(s)"
                && d["limited"]
                    .as_str()
                    .is_some_and(|l| l.contains("/status#token=<admin.token>"))
        })
        .await;
    assert_eq!(dom(&v)["details"], false, "{v}");
    assert_eq!(dom(&v)["error"], "", "{v}");

    // A default node (no token at all) says the same, and where the rest is.
    let lone = OpsNode::start(NodeSpec {
        token: String::new(),
        ..NodeSpec::new("d")
    })
    .await;
    page.navigate(&format!("http://{}/status", lone.ws())).await;
    page.wait_for(
        "the summary of a node without a token",
        READ_DOM,
        SHOWN,
        |v| {
            let d = dom(v);
            d["node"] == "d"
                && d["ready"] == "ready"
                && d["summary"] == "0 linked peer(s)"
                && d["limited"].as_str().is_some_and(|l| {
                    l.contains("no admin.token is set") && l.contains("http.admin_listen")
                })
        },
    )
    .await;

    page.navigate(&format!("http://{}/status#token={TOKEN}", a.ws()))
        .await;
    let v = page
        .wait_for(
            "the three nodes, two links and both channels",
            READ_DOM,
            SHOWN,
            |v| {
                let d = dom(v);
                d["node"] == "a"
                    && d["ready"] == "ready"
                    && rows(v, "nodes").len() == 3
                    && rows(v, "peers").len() == 2
                    && row(&rows(v, "channels"), "orders").is_some()
                    && row(&rows(v, "presence"), "lobby").is_some()
            },
        )
        .await;
    let nodes = rows(&v, "nodes");
    assert_eq!(nodes[0][..3], ["a (this node)", "answered", "ready"]);
    assert_eq!(nodes[1][..3], ["b", "answered", "ready"]);
    assert_eq!(nodes[2][..3], ["c", "answered", "ready"]);
    // connections on b: the sgc subscriber.
    assert_eq!(nodes[1][3], "1");
    let peers = rows(&v, "peers");
    assert_eq!(peers[0][..3], ["b".to_owned(), b.mesh(), "linked".into()]);
    assert_eq!(peers[1][..3], ["c".to_owned(), c.mesh(), "linked".into()]);
    assert_eq!(
        row(&rows(&v, "channels"), "orders").map(|r| r.as_slice()),
        Some(&["orders".to_owned(), "1".into(), "b: 1".into()][..])
    );
    assert_eq!(
        row(&rows(&v, "presence"), "lobby").map(|r| r.as_slice()),
        Some(&["lobby".to_owned(), "1".into()][..])
    );
    let loaded_at = dom(&v)["updates"].as_u64().unwrap_or(0);

    // Changes after the page loaded show up without reloading it.
    let (mut on_c, _) = WsClient::sgc(c.ws()).await;
    on_c.subscribe("orders").await;
    let (mut prices, _) = WsClient::sgc(a.ws()).await;
    prices.subscribe("prices.eur").await;
    let mut bob = PClient::member(c.ws(), "bob", "<b>Bob</b>").await;
    bob.join("lobby").await;
    let v = page
        .wait_for("the new subscriber and member", READ_DOM, SHOWN, |v| {
            let ch = rows(v, "channels");
            let pr = rows(v, "presence");
            row(&ch, "orders").is_some_and(|r| r[1] == "2" && r[2] == "b: 1, c: 1")
                && row(&ch, "prices.eur").is_some_and(|r| r[1] == "1" && r[2] == "a: 1")
                && row(&pr, "lobby").is_some_and(|r| r[1] == "2")
        })
        .await;
    assert!(dom(&v)["updates"].as_u64().unwrap_or(0) > loaded_at);
    if let Some(path) = std::env::var_os("WSCLUSTER_SCREENSHOT") {
        let png = page.screenshot().await;
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.to_string_lossy()));
    }

    // Client-chosen names are shown as text, never as markup.
    bob.join("<img src=x onerror=alert(1)>").await;
    page.wait_for(
        "a channel named like markup, as text",
        READ_DOM,
        SHOWN,
        |v| row(&rows(v, "presence"), "<img src=x onerror=alert(1)>").is_some(),
    )
    .await;
    let images = page.eval("document.images.length").await;
    assert_eq!(images, 0);

    // A node leaving is shown: its link goes down and it drops out of the node list.
    c.cluster.stop().await;
    page.wait_for("c's link down", READ_DOM, SHOWN, |v| {
        row(&rows(v, "peers"), "c").is_some_and(|r| r[2] == "down")
            && rows(v, "nodes").len() == 2
            && row(&rows(v, "channels"), "orders").is_some_and(|r| r[1] == "1")
    })
    .await;
    drop((on_b, on_c, prices, alice, bob));
}

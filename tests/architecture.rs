//! The layering of the library (docs/architecture.md, "Layers only call downwards"), checked on
//! the source: every `crate::…`, `super::…` and `self::…` path of `src/**/*.rs` (test code left
//! out: `#[cfg(test)]` items and the test-only files they declare; the binary's `main.rs` and
//! `cli/` too) is resolved to the module it names, and
//!
//! - a top-level module may use only modules of a lower layer ([`LAYERS`]);
//! - the cluster's engines use no protocol, hub or higher layer;
//! - no modules call each other in a circle, at any depth (`transport::server` ⇄ `accept`,
//!   `cluster::mesh::auth` ⇄ `wire` and `ops::api::keys` ⇄ `config` ⇄ `error` were the last);
//! - the circles that were taken apart (`transport::auth` ⇄ `transport::bearer`,
//!   `config` ⇄ `transport`, `transport` ⇄ `protocol`, `metrics` → `cluster`) stay apart.
//!
//! The parser is deliberately small: comments, strings and char literals are blanked, `use` trees
//! are expanded, and any other `crate::`/`super::`/`self::` path in the code counts as well.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules from the bottom up; a module may use the modules of the layers below its
/// own, never those of its layer or above.
const LAYERS: &[&[&str]] = &[
    // leaves: errors, log escaping, task ownership, metric names, TLS material
    &["error", "log_text", "tasks", "metrics", "tls"],
    // sockets, the upgrade, connections and the Protocol seam they call
    &["transport"],
    // local subscribers; the seam from protocols to the cluster
    &["hub", "relay"],
    // the sgc and Presence codecs and rules
    &["protocol"],
    // the cluster component, its protocol adapters and its engines
    &["cluster"],
    // what is built on the cluster: webhooks, the operations surface
    &["webhooks", "ops"],
    // every option of a node
    &["config"],
];

/// The cluster's engines (submodules of `cluster`): they know nothing of protocols.
const ENGINES: &[&str] = &["mesh", "broker", "redis", "redis_cluster", "nats"];

/// What an engine may not use.
const ENGINES_MAY_NOT_USE: &[&str] = &["protocol", "hub", "webhooks", "ops", "config"];

#[path = "architecture/source.rs"]
mod source;

use source::{Graph, crate_graph};

#[test]
fn no_module_uses_a_higher_layer() {
    let graph = crate_graph(&src_dir());
    let problems = layer_violations(&graph);
    assert!(problems.is_empty(), "arrows up:\n{}", problems.join("\n"));
}

#[test]
fn engines_know_nothing_of_protocols() {
    let graph = crate_graph(&src_dir());
    let problems = engine_violations(&graph);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn submodules_form_no_circle() {
    let graph = crate_graph(&src_dir());
    let problems = submodule_circles(&graph);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_circles_taken_apart_stay_apart() {
    let graph = crate_graph(&src_dir());
    let edges = edges_at(&graph, |p| p.first().cloned());
    let sub = edges_at(&graph, |p| {
        (p.first().map(String::as_str) == Some("transport"))
            .then(|| p.get(1).cloned())
            .flatten()
    });
    for (from, to) in [
        ("transport", "config"),
        ("transport", "protocol"),
        ("metrics", "cluster"),
        ("metrics", "transport"),
        ("metrics", "protocol"),
    ] {
        assert!(
            !edges.contains(&(from.to_owned(), to.to_owned())),
            "{from} uses {to} again"
        );
    }
    for (a, b) in [("auth", "bearer"), ("limits", "protocol")] {
        let both = sub.contains(&(a.to_owned(), b.to_owned()))
            && sub.contains(&(b.to_owned(), a.to_owned()));
        assert!(
            !both,
            "transport::{a} and transport::{b} use each other again"
        );
    }
}

/// The parser sees the arrows that are there (a graph read as empty would pass every rule).
#[test]
fn the_real_arrows_are_seen() {
    let graph = crate_graph(&src_dir());
    let edges = edges_at(&graph, |p| p.first().cloned());
    for (from, to) in [
        ("protocol", "hub"),
        ("protocol", "transport"),
        ("cluster", "protocol"),
        ("config", "transport"),
        ("hub", "transport"),
        ("transport", "metrics"),
    ] {
        assert!(
            edges.contains(&(from.to_owned(), to.to_owned())),
            "{from} → {to} not seen"
        );
    }
    let sub = edges_at(&graph, |p| {
        (p.first().map(String::as_str) == Some("transport"))
            .then(|| p.get(1).cloned())
            .flatten()
    });
    assert!(sub.contains(&("auth".to_owned(), "bearer".to_owned())));
    assert!(sub.contains(&("protocol".to_owned(), "limits".to_owned())));
}

/// The checks catch what they are written for: a made-up crate with an arrow up, an engine that
/// names a protocol and a circle in its transport.
#[test]
fn the_checks_can_fail() {
    let dir = tempdir();
    let files = [
        (
            "lib.rs",
            "pub mod transport; pub mod protocol; pub mod cluster;",
        ),
        ("transport/mod.rs", "pub mod a; pub mod b;"),
        (
            "transport/a.rs",
            "use super::b::Thing; // crate::config::X in a comment does not count\n",
        ),
        (
            "transport/b.rs",
            "use crate::{protocol::sgc::{self, X}, transport::a};\nlet s = \"crate::ops\";",
        ),
        ("protocol/mod.rs", "pub mod sgc;"),
        (
            "protocol/sgc.rs",
            "fn f() { crate::transport::a::go(); }\n#[cfg(test)]\nmod tests { use crate::config::Config; }",
        ),
        ("cluster/mod.rs", "pub mod mesh;"),
        ("cluster/mesh.rs", "use crate::protocol::sgc;"),
    ];
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let graph = crate_graph(&dir);
    let up = layer_violations(&graph);
    assert_eq!(up, ["transport::b uses protocol::sgc (a higher layer)"]);
    assert_eq!(
        engine_violations(&graph),
        ["cluster::mesh (an engine) uses protocol::sgc"]
    );
    assert_eq!(
        submodule_circles(&graph),
        ["submodules in a circle: protocol::sgc, transport::a, transport::b"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wscluster-architecture-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn layer_violations(graph: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for (from, tos) in graph {
        let Some(top) = from.first() else { continue };
        for to in tos {
            let Some(target) = to.first() else { continue };
            if target == top {
                continue;
            }
            let (Some(a), Some(b)) = (layer_of(top), layer_of(target)) else {
                continue;
            };
            if b >= a {
                out.push(format!(
                    "{} uses {} (a higher layer)",
                    from.join("::"),
                    short(to)
                ));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A target named by its top-level module and submodule (`protocol::sgc`), as the rules see it.
fn short(to: &[String]) -> String {
    to[..to.len().min(2)].join("::")
}

fn engine_violations(graph: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for (from, tos) in graph {
        let is_engine = from.first().map(String::as_str) == Some("cluster")
            && from.get(1).is_some_and(|m| ENGINES.contains(&m.as_str()));
        if !is_engine {
            continue;
        }
        for to in tos {
            if to
                .first()
                .is_some_and(|m| ENGINES_MAY_NOT_USE.contains(&m.as_str()))
            {
                out.push(format!(
                    "{} (an engine) uses {}",
                    from[..2].join("::"),
                    short(to)
                ));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Circles among modules at any depth (`transport::server` ⇄ `transport::accept`,
/// `cluster::mesh::auth` ⇄ `cluster::mesh::wire`), named by their module paths.
fn submodule_circles(graph: &Graph) -> Vec<String> {
    let deepest = graph.keys().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::new();
    for depth in 2..=deepest {
        let edges = edges_at(graph, |p| (p.len() >= depth).then(|| p[..depth].join("::")));
        for circle in strongly_connected(&edges) {
            let names: Vec<&str> = circle.iter().map(String::as_str).collect();
            out.push(format!("submodules in a circle: {}", names.join(", ")));
        }
    }
    out
}

/// The edges between the keys `key` gives the modules (`None`: not counted), without self-edges.
fn edges_at(
    graph: &Graph,
    key: impl Fn(&[String]) -> Option<String>,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (from, tos) in graph {
        let Some(a) = key(from) else { continue };
        for to in tos {
            if let Some(b) = key(to)
                && a != b
            {
                out.insert((a.clone(), b));
            }
        }
    }
    out
}

/// The circles (strongly connected sets of more than one node) of a graph, each sorted.
fn strongly_connected(edges: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = edges.iter().flat_map(|(a, b)| [a, b]).collect();
    let reaches = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(n) = todo.pop() {
            for (a, b) in edges {
                if *a == n && seen.insert(b.clone()) {
                    todo.push(b.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> =
        nodes.iter().map(|n| (*n, reaches(n))).collect();
    let mut circles: BTreeSet<Vec<String>> = BTreeSet::new();
    for n in &nodes {
        let mut circle: Vec<String> = nodes
            .iter()
            .filter(|m| reach[n].contains(**m) && reach[*m].contains(*n))
            .map(|m| (*m).clone())
            .collect();
        circle.sort();
        if circle.len() > 1 {
            circles.insert(circle);
        }
    }
    circles.into_iter().collect()
}

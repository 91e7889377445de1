//! The deployment examples (`deploy/`) against the real binary: the configuration they give a node
//! (file, environment, flags) must load, and mean what the examples say. A renamed option breaks
//! these tests instead of a production rollout.

use std::io::Write as _;
use std::process::{Command, Stdio};

/// Runs `wscluster --print-config` with `args` and these `WSCLUSTER_…` variables only; returns the
/// printed configuration, failing the test (with the error) when the binary refuses it.
fn print_config(args: &[&str], env: &[(&str, &str)]) -> toml::Table {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wscluster"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("WSCLUSTER_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(args)
        .arg("--print-config")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run wscluster: {e}"));
    assert!(
        out.status.success(),
        "{args:?} {env:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .parse()
        .unwrap_or_else(|e| panic!("printed configuration is not TOML: {e}"))
}

/// The value at a dotted key of a printed configuration.
fn at<'a>(t: &'a toml::Table, key: &str) -> &'a toml::Value {
    let mut parts = key.split('.');
    let first = parts.next().unwrap_or_default();
    let mut v = t
        .get(first)
        .unwrap_or_else(|| panic!("no {first} in {t:#?}"));
    for p in parts {
        v = v.get(p).unwrap_or_else(|| panic!("no {key} in {t:#?}"));
    }
    v
}

/// The `wscluster.toml` block of the ConfigMap (the lines under `wscluster.toml: |`, unindented).
fn configmap_toml() -> String {
    let yaml = include_str!("../deploy/k8s/configmap.yaml");
    let mut lines = yaml
        .lines()
        .skip_while(|l| !l.contains("wscluster.toml: |"));
    lines.next();
    lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_kubernetes_pod_configuration_loads_as_the_manifests_say() {
    let mut file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    file.write_all(configmap_toml().as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let path = file.path().to_string_lossy().into_owned();
    // The StatefulSet's arguments and environment, with Kubernetes' $(VAR) already expanded.
    let statefulset = include_str!("../deploy/k8s/statefulset.yaml");
    for needle in [
        "- --peers-dns",
        "- wscluster-headless.$(POD_NAMESPACE).svc.cluster.local:5410",
        "WSCLUSTER_CLUSTER__MESH__ADVERTISE",
        "WSCLUSTER_CLUSTER__SECRET",
        "path: /ready",
        "path: /health",
    ] {
        assert!(
            statefulset.contains(needle),
            "statefulset.yaml lost {needle:?}"
        );
    }
    let c = print_config(
        &[
            "--config",
            &path,
            "--node-name",
            "wscluster-0",
            "--peers-dns",
            "wscluster-headless.ns.svc.cluster.local:5410",
        ],
        &[
            (
                "WSCLUSTER_CLUSTER__MESH__ADVERTISE",
                "wscluster-0.wscluster-headless.ns.svc.cluster.local:5410",
            ),
            ("WSCLUSTER_CLUSTER__SECRET", "s3cret-s3cret-s3cret"),
        ],
    );
    assert_eq!(at(&c, "node.name").as_str(), Some("wscluster-0"));
    assert_eq!(at(&c, "node.log_format").as_str(), Some("json"));
    assert_eq!(at(&c, "server.listen").as_str(), Some("0.0.0.0:8080"));
    assert_eq!(
        at(&c, "server.shutdown_timeout_ms").as_integer(),
        Some(10_000)
    );
    assert_eq!(at(&c, "cluster.mesh.port").as_integer(), Some(5410));
    assert_eq!(
        at(&c, "cluster.mesh.peers_dns").as_array().map(|a| a.len()),
        Some(1)
    );
    assert_eq!(
        at(&c, "cluster.secret").as_str(),
        Some("s3cret-s3cret-s3cret")
    );
    // The grace period outlasts the drain.
    let grace: u64 = statefulset
        .lines()
        .find_map(|l| l.trim().strip_prefix("terminationGracePeriodSeconds:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no terminationGracePeriodSeconds"));
    assert!(grace * 1000 > 10_000 + 1_500, "grace {grace}s");
}

#[test]
fn the_systemd_environment_file_loads() {
    let env_file = include_str!("../deploy/systemd/wscluster.env");
    let mut vars: Vec<(String, String)> = Vec::new();
    for line in env_file.lines().map(str::trim) {
        // Commented examples count too: uncommenting one must give a valid configuration.
        let line = line.strip_prefix('#').unwrap_or(line);
        if let Some((k, v)) = line.split_once('=')
            && k.starts_with("WSCLUSTER_")
            && !k.contains(' ')
        {
            vars.push((k.to_owned(), v.to_owned()));
        }
    }
    assert!(vars.len() >= 3, "{vars:?}");
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let c = print_config(&["--config", "wscluster.example.toml"], &env);
    assert_eq!(
        at(&c, "cluster.secret").as_str(),
        Some("change-me-to-a-long-random-value")
    );
    let unit = include_str!("../deploy/systemd/wscluster.service");
    for needle in [
        "KillSignal=SIGTERM",
        "TimeoutStopSec=15s",
        "EnvironmentFile=-/etc/wscluster/wscluster.env",
    ] {
        assert!(unit.contains(needle), "wscluster.service lost {needle:?}");
    }
    // The stop timeout outlasts the default drain (server.shutdown_timeout_ms).
    assert!(at(&c, "server.shutdown_timeout_ms").as_integer() < Some(15_000));
}

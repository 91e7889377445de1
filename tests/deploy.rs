//! The deployment examples (`deploy/`) against the real binary: the configuration they give a node
//! (file, environment, flags) must load, and mean what the examples say. A renamed option breaks
//! these tests instead of a production rollout. The image recipe (`Dockerfile`) is checked
//! offline: the libraries the binary links are in its runtime base, and its ports, user and
//! entrypoint agree with the configuration defaults and the manifests.

mod support;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::process::{PROCESS_WAIT, spawn};

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
    // Set, and not printed.
    assert_eq!(at(&c, "cluster.secret").as_str(), Some("<redacted>"));
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
    assert_eq!(at(&c, "cluster.secret").as_str(), Some("<redacted>"));
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

/// What Kubernetes puts in the environment of every pod of the namespace for the Service named
/// `wscluster` (its named port `ws`, 80 in `deploy/k8s/service.yaml`), plus the same shape for the
/// container ports 8080 and 5410: none of it is configuration.
const KUBERNETES_SERVICE_VARIABLES: [(&str, &str); 18] = [
    ("WSCLUSTER_SERVICE_HOST", "10.96.0.17"),
    ("WSCLUSTER_SERVICE_PORT", "80"),
    ("WSCLUSTER_SERVICE_PORT_WS", "80"),
    ("WSCLUSTER_PORT", "tcp://10.96.0.17:80"),
    ("WSCLUSTER_PORT_80_TCP", "tcp://10.96.0.17:80"),
    ("WSCLUSTER_PORT_80_TCP_PROTO", "tcp"),
    ("WSCLUSTER_PORT_80_TCP_PORT", "80"),
    ("WSCLUSTER_PORT_80_TCP_ADDR", "10.96.0.17"),
    ("WSCLUSTER_PORT_8080_TCP", "tcp://10.96.0.17:8080"),
    ("WSCLUSTER_PORT_8080_TCP_PROTO", "tcp"),
    ("WSCLUSTER_PORT_8080_TCP_PORT", "8080"),
    ("WSCLUSTER_PORT_8080_TCP_ADDR", "10.96.0.17"),
    ("WSCLUSTER_PORT_5410_TCP", "tcp://10.96.0.17:5410"),
    ("WSCLUSTER_PORT_5410_TCP_PROTO", "tcp"),
    ("WSCLUSTER_PORT_5410_TCP_PORT", "5410"),
    ("WSCLUSTER_PORT_5410_TCP_ADDR", "10.96.0.17"),
    ("WSCLUSTER_SERVICE_PORT_CLUSTER", "5410"),
    ("WSCLUSTER_HEADLESS_SERVICE_HOST", "10.96.0.18"),
];

/// Runs `wscluster` with `args` (no `WSCLUSTER_…` variable) to its exit: code and standard error.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wscluster"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("WSCLUSTER_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run wscluster: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A pod as `deploy/k8s` starts it (the ConfigMap's file, the StatefulSet's arguments and
/// environment) with every variable Kubernetes adds for the Service: it starts and becomes ready.
/// Only what a test on a shared machine must change is changed: loopback ephemeral ports instead of
/// 0.0.0.0:8080 and :5410, and the headless Service's name (which only cluster DNS answers) is
/// `localhost` on a closed port, so the node resolves it, finds no peer there, and is ready.
#[test]
fn a_pod_with_the_kubernetes_service_variables_starts_and_becomes_ready() {
    let mut file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    file.write_all(configmap_toml().as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let path = file.path().to_string_lossy().into_owned();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let peers_dns = format!("localhost:{closed}");
    let args = [
        "--config",
        &path,
        "--node-name",
        "wscluster-0",
        "--peers-dns",
        &peers_dns,
        "--listen",
        "127.0.0.1:0",
        "--set",
        "cluster.mesh.bind=127.0.0.1",
        "--cluster-port",
        "0",
    ];
    let mut env = vec![
        ("POD_NAME", "wscluster-0"),
        ("POD_NAMESPACE", "ns"),
        (
            "WSCLUSTER_CLUSTER__MESH__ADVERTISE",
            "wscluster-0.wscluster-headless.ns.svc.cluster.local:5410",
        ),
        (
            "WSCLUSTER_CLUSTER__SECRET",
            "s3cret-from-the-kubernetes-secret",
        ),
    ];
    env.extend(KUBERNETES_SERVICE_VARIABLES);
    let (mut child, stdout, stderr) = spawn(&args, &env);
    let guard = scopeguard(&mut child);
    let logs = || std::fs::read_to_string(stderr.path()).unwrap_or_default();
    let line = stdout
        .recv_timeout(PROCESS_WAIT)
        .unwrap_or_else(|e| panic!("no listening line ({e}); stderr:\n{}", logs()));
    let addr = line
        .strip_prefix("wscluster listening on ws://")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(line.ends_with("(node wscluster-0)"), "{line}");
    // Ready, as the readiness probe asks (GET /ready), through the binary's own health command.
    let ready = format!("http://{addr}/ready");
    let deadline = Instant::now() + PROCESS_WAIT;
    loop {
        let (code, err) = run(&["health", "--url", &ready]);
        if code == Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready within {PROCESS_WAIT:?}: {err}\nnode log:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(guard);
    let statefulset = include_str!("../deploy/k8s/statefulset.yaml");
    assert!(
        statefulset.contains("enableServiceLinks: false"),
        "the pods need not see the Service variables at all"
    );
}

/// Kills the child when dropped (the test's node must not outlive a failed assertion).
struct KillOnDrop<'a>(&'a mut std::process::Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scopeguard(child: &mut std::process::Child) -> KillOnDrop<'_> {
    KillOnDrop(child)
}

/// The Dockerfile's instructions of the last stage (the runtime image), as (instruction, rest).
fn runtime_stage(dockerfile: &str) -> Vec<(String, String)> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(t);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    let last_from = joined
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .unwrap_or_else(|| panic!("no FROM in the Dockerfile"));
    joined[last_from..]
        .iter()
        .filter_map(|l| {
            let (i, rest) = l.split_once(' ')?;
            Some((i.to_owned(), rest.trim().to_owned()))
        })
        .collect()
}

/// The libraries `ldd` says the binary loads, by file name (`libc.so.6`, `ld-linux-x86-64.so.2`).
fn linked_libraries(binary: &str) -> BTreeSet<String> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ldd (Debian's libc-bin): {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return BTreeSet::new();
    }
    assert!(
        out.status.success(),
        "ldd {binary}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|first| first.rsplit('/').next().unwrap_or(first).to_owned())
        .collect()
}

#[test]
fn the_image_carries_what_the_binary_links_and_agrees_with_the_defaults() {
    let dockerfile = include_str!("../Dockerfile");
    let stage = runtime_stage(dockerfile);
    let get = |instruction: &str| -> Vec<&str> {
        stage
            .iter()
            .filter(|(i, _)| i == instruction)
            .map(|(_, r)| r.as_str())
            .collect()
    };

    // The runtime base and what it carries (listed in the Dockerfile next to the choice).
    let from = get("FROM");
    assert!(
        from.first()
            .is_some_and(|f| f.starts_with("gcr.io/distroless/cc-debian12")),
        "runtime base changed ({from:?}): check the base-libraries list against the new base"
    );
    let carried: BTreeSet<&str> = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("# base-libraries:"))
        .unwrap_or_else(|| panic!("the Dockerfile lists no base-libraries"))
        .split_whitespace()
        .collect();
    let linked = linked_libraries(env!("CARGO_BIN_EXE_wscluster"));
    assert!(
        linked.iter().any(|l| l.starts_with("libc.so")),
        "{linked:?}"
    );
    for lib in &linked {
        assert!(
            carried.contains(lib.as_str()),
            "the binary links {lib}, which {from:?} does not carry ({carried:?})"
        );
    }

    // Ports: the defaults of server.listen and cluster.mesh.port, as the StatefulSet declares.
    let defaults = print_config(&[], &[]);
    let listen_port = at(&defaults, "server.listen")
        .as_str()
        .and_then(|l| l.rsplit(':').next())
        .unwrap_or_default()
        .to_owned();
    let mesh_port = at(&defaults, "cluster.mesh.port")
        .as_integer()
        .unwrap_or_default()
        .to_string();
    let exposed: BTreeSet<&str> = get("EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace())
        .collect();
    assert_eq!(
        exposed,
        BTreeSet::from([listen_port.as_str(), mesh_port.as_str()])
    );
    let statefulset = include_str!("../deploy/k8s/statefulset.yaml");
    for port in &exposed {
        assert!(
            statefulset.contains(&format!("containerPort: {port}")),
            "statefulset.yaml does not declare port {port}"
        );
    }

    // A numeric non-root user, the one the StatefulSet runs as.
    let user = get("USER");
    let uid = user
        .last()
        .and_then(|u| u.split(':').next())
        .and_then(|u| u.parse::<u32>().ok())
        .unwrap_or_else(|| panic!("USER must be a numeric uid: {user:?}"));
    assert_ne!(uid, 0, "the image must not run as root");
    assert!(
        statefulset.contains(&format!("runAsUser: {uid}")),
        "statefulset.yaml runs as another user than the image ({uid})"
    );

    // The entrypoint is the binary the image copies in; the health check is the binary asking the
    // default listen port (no shell, no curl in the base).
    let entrypoint = get("ENTRYPOINT");
    assert_eq!(entrypoint, ["[\"/usr/local/bin/wscluster\"]"]);
    assert!(
        get("COPY")
            .iter()
            .any(|c| c.ends_with(" /usr/local/bin/wscluster")),
        "{stage:?}"
    );
    let health = get("HEALTHCHECK");
    assert!(
        health.len() == 1
            && health[0].contains("CMD [\"/usr/local/bin/wscluster\", \"health\"")
            && health[0].contains(&format!("127.0.0.1:{listen_port}/health")),
        "{health:?}"
    );

    // The image name the script builds is the one the manifests run.
    let script = include_str!("../scripts/image.sh");
    assert!(
        script.contains("IMAGE=\"${IMAGE:-wscluster}\""),
        "image.sh default name"
    );
    assert!(
        statefulset.contains(&format!("image: wscluster:{}", env!("CARGO_PKG_VERSION"))),
        "statefulset.yaml must run the image scripts/image.sh tags"
    );
    let ignore = include_str!("../.dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "target/"),
        "target/ in the build context"
    );
}

/// A configuration error exits 2, and systemd does not restart it forever.
#[test]
fn systemd_does_not_restart_a_configuration_error() {
    let unit = include_str!("../deploy/systemd/wscluster.service");
    let service: Vec<&str> = unit
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "[Service]")
        .take_while(|l| *l == "[Service]" || !l.starts_with('['))
        .collect();
    assert!(service.contains(&"Restart=on-failure"), "{service:?}");
    assert!(
        service.contains(&"RestartPreventExitStatus=2"),
        "a bad configuration would be restarted forever: {service:?}"
    );
    let (code, stderr) = run(&[
        "--listen",
        "127.0.0.1:0",
        "--set",
        "server.max_message_size=0",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, stderr) = run(&[
        "--listen",
        "127.0.0.1:0",
        "--set",
        "server.tls.listen=127.0.0.1:0",
        "--set",
        "server.tls.cert_file=/nonexistent/wscluster.pem",
        "--set",
        "server.tls.key_file=/nonexistent/wscluster.key",
    ]);
    assert_eq!(
        code,
        Some(2),
        "a missing certificate is a configuration error: {stderr}"
    );
}

//! The operator's command line against the real binary: `check-config` (every problem listed, exit
//! 2; a start with the same problems exits 2 too), `version`, `health`, `--print-config` without
//! secrets, a port in use reported in one line naming its flag, and logs fit for files and tools
//! (no colour codes off a terminal, 64-bit integers as JSON strings).

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::process::*;

/// What a finished run of the binary gave.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `args` and, of the `WSCLUSTER_…` variables, only `env`; fails the test
/// when it does not exit within [`PROCESS_WAIT`].
fn run(args: &[&str], env: &[(&str, &str)]) -> Ran {
    let out = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    let err = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wscluster"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("WSCLUSTER_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap_or_else(|e| panic!("{e}")))
        .stderr(err.reopen().unwrap_or_else(|e| panic!("{e}")))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run wscluster: {e}"));
    let deadline = Instant::now() + PROCESS_WAIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("wscluster {args:?} did not exit within {PROCESS_WAIT:?}");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("{e}"),
        }
    };
    Ran {
        code: status.code(),
        stdout: std::fs::read_to_string(out.path()).unwrap_or_default(),
        stderr: std::fs::read_to_string(err.path()).unwrap_or_default(),
    }
}

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .unwrap_or_else(|e| panic!("{e}"));
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    f
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_else(|| panic!("non-UTF-8 temp path"))
}

/// Loopback, ephemeral ports: no test collides on the defaults.
const LOOPBACK: [&str; 6] = [
    "--listen",
    "127.0.0.1:0",
    "--set",
    "cluster.mesh.bind=127.0.0.1",
    "--set",
    "cluster.mesh.port=0",
];

#[test]
fn check_config_lists_every_problem_and_a_start_with_them_exits_2() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let missing = |name: &str| dir.path().join(name).display().to_string();
    let (cert, key, ca) = (
        missing("server.pem"),
        missing("server.key"),
        missing("ca.pem"),
    );
    let broken = write_config(&format!(
        "[node]\nname = \"two words\"\nlog_format = \"xml\"\n\
         [server]\nlisten = \"127.0.0.1:0\"\n\
         [server.tls]\nlisten = \"127.0.0.1:0\"\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n\
         [cluster.mesh]\nbind = \"127.0.0.1\"\nport = 0\n\
         [cluster.mesh.tls]\nenabled = true\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n\
         ca_file = \"{ca}\"\n"
    ));
    let r = run(&["check-config", "--config", path_str(broken.path())], &[]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    for expected in [
        "node.name",
        "node.log_format",
        &format!("server.tls: cert_file: cannot read {cert}"),
        &format!("server.tls: key_file: cannot read {key}"),
        &format!("cluster.mesh.tls: ca_file: cannot read {ca}"),
        "(7 problems)",
    ] {
        assert!(
            r.stderr.contains(expected),
            "{expected:?} not in:\n{}",
            r.stderr
        );
    }
    assert!(r.stdout.is_empty(), "{}", r.stdout);

    // A start with only the file problems (which a start used to meet at bind time, exiting 1).
    let files_only = write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         [server.tls]\nlisten = \"127.0.0.1:0\"\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n\
         [cluster.mesh]\nbind = \"127.0.0.1\"\nport = 0\n"
    ));
    let r = run(&["--config", path_str(files_only.path())], &[]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains(&cert) && r.stderr.contains(&key),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout.is_empty(),
        "must not announce an address: {}",
        r.stdout
    );

    // Fine: exit 0, and flags before the subcommand are checked as well.
    let r = run(&["--listen", "127.0.0.1:0", "check-config"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("configuration OK"), "{}", r.stdout);
    let r = run(&["--listen", "nowhere", "check-config"], &[]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("--listen"), "{}", r.stderr);
    // The node's flags keep working without a subcommand.
    let r = run(&["--listen", "127.0.0.1:0", "--print-config"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

#[test]
fn version_names_the_package_version() {
    let r = run(&["version"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with(&format!("wscluster {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{}",
        r.stdout
    );
}

#[tokio::test]
async fn health_is_0_for_a_live_node_and_1_otherwise() {
    let node = NodeProcess::start(NodeArgs::new("h")).await;
    let url = format!("http://{}", node.ws);
    let r = run(&["health", "--url", &url], &[]);
    assert_eq!(r.code, Some(0), "{}{}", r.stderr, node.stderr());
    assert!(r.stdout.starts_with("healthy: 200"), "{}", r.stdout);
    // A path other than /health is asked as given.
    let r = run(&["health", "--url", &format!("{url}/no-such-route")], &[]);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    assert!(r.stderr.contains("404"), "{}", r.stderr);
    // Nobody listening.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        l.local_addr().unwrap_or_else(|e| panic!("{e}"))
    };
    let r = run(&["health", "--url", &format!("http://{closed}")], &[]);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    assert!(r.stderr.contains("unhealthy"), "{}", r.stderr);
}

#[test]
fn print_config_shows_no_secret() {
    let mut args = LOOPBACK.to_vec();
    args.extend([
        "--cluster-secret",
        "secret-from-flag",
        "--redis-url",
        "redis://app:password-in-url@127.0.0.1:6379/0",
        "--set",
        "auth.users={ alice = \"alice-password\" }",
        "--set",
        "auth.jwt.secret=jwt-secret-value",
        "--print-config",
    ]);
    let r = run(
        &args,
        &[
            ("WSCLUSTER_ADMIN__TOKEN", "admin-token-value"),
            ("WSCLUSTER_CLUSTER__REDIS__PASSWORD", "redis-password-value"),
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    for secret in [
        "secret-from-flag",
        "password-in-url",
        "alice-password",
        "jwt-secret-value",
        "admin-token-value",
        "redis-password-value",
    ] {
        assert!(
            !r.stdout.contains(secret),
            "{secret} printed:\n{}",
            r.stdout
        );
    }
    let printed: toml::Table = r.stdout.parse().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(printed["cluster"]["secret"].as_str(), Some("<redacted>"));
    assert_eq!(printed["admin"]["token"].as_str(), Some("<redacted>"));
    assert_eq!(
        printed["cluster"]["redis"]["url"].as_str(),
        Some("redis://app:<redacted>@127.0.0.1:6379/0")
    );
    assert_eq!(
        printed["auth"]["users"]["alice"].as_str(),
        Some("<redacted>")
    );
    assert_eq!(printed["server"]["listen"].as_str(), Some("127.0.0.1:0"));
}

#[test]
fn a_port_in_use_is_one_line_naming_its_flag() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = taken.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let port = addr.port().to_string();
    let listen = addr.to_string();
    // A secret (from the environment: the flag would add its own warning) keeps the mesh free of
    // its loopback-only warning, so the one line left is the error.
    let quiet = ["--log-level", "warn"];
    let admin = format!("http.admin_listen={listen}");
    let cases: [(Vec<&str>, &str); 3] = [
        (
            vec![
                "--listen",
                &listen,
                "--set",
                "cluster.mesh.bind=127.0.0.1",
                "--cluster-port",
                "0",
            ],
            "--listen",
        ),
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--set",
                "cluster.mesh.bind=127.0.0.1",
                "--cluster-port",
                &port,
            ],
            "--cluster-port",
        ),
        (
            [LOOPBACK.as_slice(), &["--set", &admin]].concat(),
            "http.admin_listen",
        ),
    ];
    for (mut args, flag) in cases {
        args.extend(quiet);
        let r = run(
            &args,
            &[("WSCLUSTER_CLUSTER__SECRET", "a-secret-of-sixteen-bytes+")],
        );
        assert_eq!(r.code, Some(1), "{args:?}: {}", r.stderr);
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line, got:\n{}", r.stderr);
        assert!(
            lines[0].contains(flag) && lines[0].contains(&listen) && lines[0].contains("in use"),
            "{args:?}: {}",
            lines[0]
        );
    }
    drop(taken);
}

#[tokio::test]
async fn human_logs_into_a_pipe_carry_no_colour_codes() {
    let mut args = LOOPBACK.to_vec();
    args.extend(["--log-format", "human", "--log-level", "info"]);
    let (mut child, stdout, stderr) = spawn(&args, &[]);
    let line = stdout
        .recv_timeout(PROCESS_WAIT)
        .unwrap_or_else(|e| panic!("no listening line ({e})"));
    assert!(line.starts_with("wscluster listening on"), "{line}");
    let status = Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success());
    let deadline = Instant::now() + PROCESS_WAIT;
    while child.try_wait().ok().flatten().is_none() {
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let logs = std::fs::read(stderr.path()).unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&logs);
    assert!(text.contains("INFO") && text.contains("stopped"), "{text}");
    assert!(
        !logs.contains(&0x1b),
        "ESC in logs written to a file:\n{text:?}"
    );
}

/// Every integer field of every JSON log line is a string: incarnations (random 64-bit) above all.
#[tokio::test]
async fn json_logs_write_64_bit_integers_as_strings() {
    let a = NodeProcess::start(NodeArgs::new("a")).await;
    let b = NodeProcess::start(NodeArgs::new("b").peer(a.mesh)).await;
    // Not `wait_linked`: it reads incarnations, the very field under test.
    for node in [&a, &b] {
        node.wait_log("peer connected", |n| !n.logged("peer connected").is_empty())
            .await;
    }
    let mut incarnations = 0;
    for node in [&a, &b] {
        let log = node.stderr();
        for line in log.lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            let fields = v["fields"]
                .as_object()
                .unwrap_or_else(|| panic!("no fields: {line}"));
            for (name, value) in fields {
                assert!(
                    !value.is_number() || value.is_f64(),
                    "{name} is a JSON number: {line}"
                );
            }
            if fields.get("message").and_then(|m| m.as_str()) == Some("peer connected") {
                let inc = fields["incarnation"]
                    .as_str()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("incarnation not a u64 string: {line}"));
                assert!(inc > 0);
                incarnations += 1;
            }
        }
    }
    assert!(incarnations >= 2, "{}\n{}", a.stderr(), b.stderr());
}

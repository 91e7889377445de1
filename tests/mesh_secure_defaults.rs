//! The binary's safe defaults for the cluster port: started with no security option it keeps
//! the port on loopback (checked in `/proc/net/tcp*`), refuses `cluster.mesh.bind=0.0.0.0`
//! without a secret and a short secret (exit 2), reads the secret from a file, and `gen-secret`
//! prints a usable one. What a stranger reaching the port learns is in `mesh_security.rs`.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::process::*;

/// Local addresses (IP, port) of listening TCP sockets, from `/proc/net/tcp` and `tcp6`.
fn listening_sockets() -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st ...; st 0A is LISTEN.
            if cols.len() > 3
                && cols[3] == "0A"
                && let Some((ip, port)) = cols[1].split_once(':')
                && let Ok(port) = u16::from_str_radix(port, 16)
            {
                out.push((ip.to_owned(), port));
            }
        }
    }
    out
}

/// `/proc/net` hex of an IP: IPv4 loopback is 0100007F-style (any 127.x ends in 7F), IPv6
/// loopback is all zero but the last byte.
fn is_loopback_hex(ip: &str) -> bool {
    (ip.len() == 8 && ip.ends_with("7F"))
        || ip == "00000000000000000000000001000000"
        // ::ffff:127.x.x.x
        || (ip.len() == 32 && ip.starts_with("0000000000000000FFFF0000") && ip.ends_with("7F"))
}

/// Waits for the process to exit (within `PROCESS_WAIT`), killing it if it does not.
fn exit_code(child: &mut std::process::Child) -> Option<i32> {
    let deadline = Instant::now() + PROCESS_WAIT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// The binary started as a user would, with no security option (only ephemeral ports, so that
/// tests on a shared machine do not collide on 8080 and 5410): its start line says the cluster
/// port is on loopback only, and the kernel's socket table shows it bound to loopback.
#[tokio::test]
async fn a_default_start_keeps_the_cluster_port_on_loopback() {
    let (mut child, stdout, stderr) =
        spawn(&["--listen", "127.0.0.1:0", "--cluster-port", "0"], &[]);
    let deadline = Instant::now() + PROCESS_WAIT;
    let mut line = None;
    while line.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        match stdout.recv_timeout(left) {
            Ok(l) if l.starts_with("wscluster cluster mesh on ") => line = Some(l),
            Ok(_) => {}
            Err(e) => panic!(
                "no mesh line ({e}); stderr:\n{}",
                std::fs::read_to_string(stderr.path()).unwrap_or_default()
            ),
        }
    }
    let line = line.unwrap_or_default();
    let mesh: SocketAddr = line
        .trim_start_matches("wscluster cluster mesh on ")
        .split(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    let sockets = listening_sockets();
    let _ = child.kill();
    let _ = child.wait();
    let on_port: Vec<_> = sockets.iter().filter(|(_, p)| *p == mesh.port()).collect();
    assert!(
        !on_port.is_empty(),
        "port {} not listening: {sockets:?}",
        mesh.port()
    );
    assert!(
        on_port.iter().all(|(ip, _)| is_loopback_hex(ip)),
        "the cluster port listens beyond loopback: {on_port:?} ({line})"
    );
    assert!(line.contains("loopback only"), "{line}");
}

/// `cluster.mesh.bind=0.0.0.0` with no secret is a configuration error naming the key and the fix.
#[test]
fn binding_all_interfaces_without_a_secret_exits_2_naming_the_key() {
    let (mut child, _, stderr) = spawn(
        &[
            "--listen",
            "127.0.0.1:0",
            "--cluster-port",
            "0",
            "--set",
            "cluster.mesh.bind=0.0.0.0",
        ],
        &[],
    );
    let code = exit_code(&mut child);
    let err = std::fs::read_to_string(stderr.path()).unwrap_or_default();
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cluster.mesh.bind"), "{err}");
    assert!(err.contains("cluster.secret"), "{err}");
    assert!(err.contains("gen-secret"), "{err}");
}

/// A secret shorter than 16 bytes is refused (exit 2) with the way to make one; so is an
/// unreadable secret file, naming its key.
#[test]
fn a_short_secret_or_an_unreadable_secret_file_exits_2() {
    for (args, env, key) in [
        (vec!["--cluster-secret", "s3cret"], vec![], "cluster.secret"),
        (
            vec![],
            vec![("WSCLUSTER_CLUSTER__SECRET", "s3cret")],
            "cluster.secret",
        ),
        (
            vec!["--cluster-secret-file", "/nonexistent/wscluster.secret"],
            vec![],
            "cluster.secret_file",
        ),
        (
            vec![],
            vec![(
                "WSCLUSTER_CLUSTER__SECRET_FILE",
                "/nonexistent/wscluster.secret",
            )],
            "cluster.secret_file",
        ),
    ] {
        let mut all = vec!["--listen", "127.0.0.1:0", "--cluster-port", "0"];
        all.extend(args.iter().copied());
        let (mut child, _, stderr) = spawn(&all, &env);
        let code = exit_code(&mut child);
        let err = std::fs::read_to_string(stderr.path()).unwrap_or_default();
        assert_eq!(code, Some(2), "{all:?} {env:?}: {err}");
        assert!(err.contains(key), "{err}");
        if key == "cluster.secret" {
            assert!(err.contains("gen-secret"), "{err}");
        }
    }
}

/// `wscluster gen-secret` prints a fresh secret; written to a file (with its newline) it is the
/// secret of a node started with `--cluster-secret-file`, which links with a node given the same
/// text by `--cluster-secret` (the trailing newline is not part of it).
#[tokio::test]
async fn a_generated_secret_in_a_file_links_with_the_same_secret_given_by_flag() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wscluster"))
        .arg("gen-secret")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let secret = text.trim_end().to_owned();
    assert!(secret.len() >= 32, "{text:?}");
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_wscluster"))
        .arg("gen-secret")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(again.stdout, out.stdout, "a new secret each time");
    let file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(file.path(), &text).unwrap_or_else(|e| panic!("{e}"));
    let a = NodeProcess::start(NodeArgs::new("a").secret_file(file.path())).await;
    let b = NodeProcess::start(NodeArgs::new("b").secret(&secret).peer(a.mesh)).await;
    wait_linked(&[&a, &b]).await;
    let ps_warning = "--cluster-secret shows the secret in the process list: prefer --cluster-secret-file (cluster.secret_file) or WSCLUSTER_CLUSTER__SECRET";
    assert_eq!(b.logged(ps_warning).len(), 1, "the flag is warned about");
    assert!(a.logged(ps_warning).is_empty(), "the file is not");
}

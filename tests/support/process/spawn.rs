//! Starting the `wscluster` binary for a test: its standard output read line by line, its standard
//! error kept in a file, and the host-name overrides the DNS tests use.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

/// A started `wscluster` process, its standard output lines, and the file holding its standard error.
pub type Spawned = (Child, mpsc::Receiver<String>, tempfile::NamedTempFile);

/// Starts the binary with `args`, of the caller's `WSCLUSTER_…` variables only `env`, standard
/// output read line by line by a thread (so the pipe never fills) and standard error into a temp
/// file.
pub fn spawn<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> Spawned {
    spawn_program(env!("CARGO_BIN_EXE_wscluster"), args, env)
}

/// [`spawn`] for another program (a wrapper that `exec`s the binary).
fn spawn_program<S: AsRef<std::ffi::OsStr>>(
    program: &str,
    args: &[S],
    env: &[(&str, &str)],
) -> Spawned {
    let stderr = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("WSCLUSTER_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr.reopen().unwrap_or_else(|e| panic!("{e}")));
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let out = child.stdout.take();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if let Some(out) = out {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        }
    });
    (child, rx, stderr)
}

/// The shell line run by `unshare -m`: bind-mount `$1` over `/etc/hosts`, then exec the rest.
const WITH_HOSTS: &str = r#"mount --bind "$1" /etc/hosts && shift && exec "$@""#;

/// Like [`WITH_HOSTS`], and bind-mount `$2` over `/etc/resolv.conf` (a resolver on loopback:
/// names outside the hosts file fail without a query leaving the machine).
const WITH_HOSTS_AND_RESOLVER: &str =
    r#"mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@""#;

/// A resolver configuration pointing at loopback only (nothing answers there): a name missing from
/// the hosts file fails within about a second.
pub const LOOPBACK_RESOLVER: &str = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n";

/// Like [`spawn_with_hosts`], with `resolver` bind-mounted over `/etc/resolv.conf` as well.
pub fn spawn_with_hosts_and_resolver(hosts: &Path, resolver: &Path, args: &[String]) -> Spawned {
    let mut full: Vec<std::ffi::OsString> = ["-m", "sh", "-c", WITH_HOSTS_AND_RESOLVER, "sh"]
        .iter()
        .map(Into::into)
        .collect();
    full.push(hosts.into());
    full.push(resolver.into());
    full.push(env!("CARGO_BIN_EXE_wscluster").into());
    full.extend(args.iter().map(Into::into));
    spawn_program("unshare", &full, &[])
}

/// Like [`spawn`], in a private mount namespace whose `/etc/hosts` is `hosts`. The process `exec`s
/// the binary, so its pid is the node's (signals reach the node).
pub fn spawn_with_hosts(hosts: &Path, args: &[String]) -> Spawned {
    let mut full: Vec<std::ffi::OsString> = ["-m", "sh", "-c", WITH_HOSTS, "sh"]
        .iter()
        .map(Into::into)
        .collect();
    full.push(hosts.into());
    full.push(env!("CARGO_BIN_EXE_wscluster").into());
    full.extend(args.iter().map(Into::into));
    spawn_program("unshare", &full, &[])
}

/// Whether [`NodeArgs::hosts_file`] can work here: `unshare -m` and a bind mount over
/// `/etc/hosts` succeed (as root on Linux).
pub fn hosts_override_works() -> bool {
    let Ok(file) = tempfile::NamedTempFile::new() else {
        return false;
    };
    Command::new("unshare")
        .args(["-m", "sh", "-c", WITH_HOSTS, "sh"])
        .arg(file.path())
        .arg("true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

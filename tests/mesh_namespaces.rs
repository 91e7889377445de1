//! Three hosts, each in its own network namespace, every node on the default ports (WebSocket 8080,
//! cluster 5410, bound to `0.0.0.0`) and given the same peer list with all three addresses: no
//! node lists or dials itself, and each shows its two peers at their own IPs (not `0.0.0.0:5410`).
//!
//! The namespaces (`ip netns`, a bridge in a fourth namespace, one veth pair per host, addresses
//! 10.77.0.1-3) are the test's own and removed at its end; nothing is added to the machine's own
//! namespace. The test reads each node's `/admin/peers` from a thread that entered that node's
//! namespace. It needs root (`ip netns`); without it the test fails.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const TOKEN: &str = "namespaces-admin-token";
/// At least 16 bytes: a mesh bound to a non-loopback address needs a real secret.
const SECRET: &str = "namespaces-cluster-secret-0123456789";
const WAIT: Duration = Duration::from_secs(20);

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip {args:?}: {e} (this test needs iproute2)"));
    assert!(
        out.status.success(),
        "ip {args:?} failed (this test needs root for network namespaces): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespaces and node processes, removed and killed on drop.
struct Lab {
    prefix: String,
    nodes: Vec<(Child, tempfile::NamedTempFile)>,
}

impl Lab {
    fn ns(&self, i: usize) -> String {
        format!("{}{i}", self.prefix)
    }

    fn hub(&self) -> String {
        format!("{}hub", self.prefix)
    }

    fn new(hosts: usize) -> Self {
        let lab = Lab {
            prefix: format!("wsc{}n", std::process::id()),
            nodes: Vec::new(),
        };
        let hub = lab.hub();
        ip(&["netns", "add", &hub]);
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &hub, "link", "set", "br0", "up"]);
        for i in 1..=hosts {
            let ns = lab.ns(i);
            let host_end = format!("h{i}");
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &host_end,
                "netns", &hub,
            ]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.77.0.{i}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&["-n", &hub, "link", "set", &host_end, "master", "br0"]);
            ip(&["-n", &hub, "link", "set", &host_end, "up"]);
        }
        lab
    }

    /// Starts node `i` in its namespace with the default ports and `peers`.
    fn start(&mut self, i: usize, peers: &[String]) {
        let log = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.ns(i),
            env!("CARGO_BIN_EXE_wscluster"),
        ])
        .args(["--node-name", &format!("n{i}")])
        .args(["--listen", "0.0.0.0:8080"])
        .args(["--cluster-secret", SECRET])
        .args(["--set", &format!("admin.token={TOKEN}")])
        .args(["--log-format", "json"]);
        for p in peers {
            cmd.args(["--peer", p]);
        }
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("WSCLUSTER_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap_or_else(|e| panic!("{e}")))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node {i}: {e}"));
        self.nodes.push((child, log));
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i - 1].1.path()).unwrap_or_default()
    }

    /// `GET path` on node `i` (127.0.0.1:8080 inside its namespace), from a thread that entered
    /// that namespace; `None` while the node does not answer.
    fn get(&self, i: usize, path: &str) -> Option<Value> {
        let ns_file = format!("/var/run/netns/{}", self.ns(i));
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        );
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&ns_file).unwrap_or_else(|e| panic!("{ns_file}: {e}"));
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&ns),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap_or_else(|e| panic!("setns {ns_file}: {e}"));
            let mut s = TcpStream::connect("127.0.0.1:8080").ok()?;
            s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            s.write_all(request.as_bytes()).ok()?;
            let mut text = String::new();
            s.read_to_string(&mut text).ok()?;
            let (_, body) = text.split_once("\r\n\r\n")?;
            serde_json::from_str(body).ok()
        })
        .join()
        .unwrap_or_else(|_| panic!("the request thread panicked"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (child, _) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in (1..=3).map(|i| self.ns(i)).chain([self.hub()]) {
            let _ = Command::new("ip")
                .args(["netns", "del", &ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[test]
fn three_hosts_on_default_ports_never_list_themselves_and_show_dialable_peers() {
    let mut lab = Lab::new(3);
    let everyone: Vec<String> = (1..=3).map(|i| format!("10.77.0.{i}:5410")).collect();
    for i in 1..=3 {
        lab.start(i, &everyone);
    }
    let peers = |v: &Value| v["peers"].as_array().cloned().unwrap_or_default();

    // Each node links to the other two.
    let deadline = Instant::now() + WAIT;
    for i in 1..=3 {
        loop {
            let v = lab.get(i, "/admin/peers");
            let linked = v.as_ref().map_or(0, |v| {
                peers(v).iter().filter(|p| p["state"] == "linked").count()
            });
            if linked == 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} not linked to both peers: {v:?}\nlog:\n{}",
                lab.log(i)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // For two seconds of gossip and redials: exactly the two others, linked, at their own IPs.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        for i in 1..=3 {
            let v = lab
                .get(i, "/admin/peers")
                .unwrap_or_else(|| panic!("node {i} stopped answering"));
            let mut shown: Vec<(String, String, String)> = peers(&v)
                .iter()
                .map(|p| {
                    let s = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
                    (s("node_id"), s("address"), s("state"))
                })
                .collect();
            shown.sort();
            let want: Vec<(String, String, String)> = (1..=3)
                .filter(|j| *j != i)
                .map(|j| {
                    (
                        format!("n{j}"),
                        format!("10.77.0.{j}:5410"),
                        "linked".to_owned(),
                    )
                })
                .collect();
            assert_eq!(shown, want, "node {i}: {v}\nlog:\n{}", lab.log(i));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

//! Autobahn conformance of the node's own transport: a real [`Server`] with an echo endpoint, driven
//! by `kosoku` (a Python 3 runner of the Autobahn TestSuite case files) as a child process.
//!
//! Every case except 12.* and 13.* (permessage-deflate, which the transport does not offer) must pass
//! strictly: kosoku exits 0 only then. kosoku is installed by `scripts/test.sh`, which exports its
//! path as `KOSOKU`; without it this test fails (it is never silently skipped).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::*;
use wscluster::{Connection, Protocol, Server};

/// The whole selected suite takes seconds; this is the point where a hung run is killed.
const KOSOKU_DEADLINE: Duration = Duration::from_secs(300);
/// The cases kosoku 0.1.0 selects outside 12.* and 13.*: exactly this many must run (a kosoku
/// with another selection makes this test fail until the number is checked and updated).
const EXPECTED_CASES: usize = 301;

/// Echoes every text and binary message back, as Autobahn's fuzzing client expects.
struct Echo;

impl Protocol for Echo {
    fn name(&self) -> &'static str {
        ""
    }
    fn on_connect(&self, _: &Connection) {}
    fn on_text(&self, conn: &Connection, text: &str) {
        let _ = conn.send_str(text);
    }
    fn on_binary(&self, conn: &Connection, data: Bytes) {
        let _ = conn.send_binary(data);
    }
    fn on_disconnect(&self, _: &Connection) {}
}

/// Kills the child on drop, so a failing or panicking test leaves no runner behind.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The kosoku executable: `$KOSOKU` (exported by `scripts/test.sh`), else the project-local venv,
/// else `kosoku` on `PATH`.
fn find_kosoku() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KOSOKU").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/venv/bin/kosoku");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("kosoku"))
            .find(|p| p.is_file())
    })
}

/// What kosoku's report (`index.json` in its output directory) says about the cases it ran.
#[derive(Debug, Default)]
struct Report {
    /// How many cases the report lists.
    cases: usize,
    /// `id: behavior/close` of every case that is neither OK nor INFORMATIONAL (NON-STRICT counts
    /// as a failure here: the suite must pass strictly).
    not_ok: Vec<String>,
}

fn read_report(outdir: &Path) -> Result<Report, String> {
    let path = outdir.join("index.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let index: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let agents = index
        .as_object()
        .ok_or_else(|| format!("{}: not an object", path.display()))?;
    let mut report = Report::default();
    for cases in agents.values() {
        let Some(cases) = cases.as_object() else {
            continue;
        };
        for (id, result) in cases {
            report.cases += 1;
            let behavior = result["behavior"].as_str().unwrap_or("?");
            let close = result["behaviorClose"].as_str().unwrap_or("?");
            let passed = |b: &str| b == "OK" || b == "INFORMATIONAL";
            if !passed(behavior) || !passed(close) {
                report.not_ok.push(format!("{id}: {behavior}/{close}"));
            }
        }
    }
    report.not_ok.sort();
    Ok(report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autobahn_suite_passes_strictly() {
    let Some(kosoku) = find_kosoku() else {
        panic!(
            "kosoku (the Autobahn runner) is not installed: run scripts/test.sh, which installs it \
             into target/tools/venv and exports KOSOKU"
        );
    };
    init_logs();
    let mut cfg = test_server_config();
    // Case 9.* sends messages of up to 16 MiB.
    cfg.max_message_size = 64 * 1024 * 1024;
    cfg.max_outbox_bytes = 128 * 1024 * 1024;
    cfg.heartbeat_interval_ms = 0;
    let server = Server::new(cfg)
        .fallback(Arc::new(Echo))
        .bind()
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let outdir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("autobahn");
    let _ = std::fs::remove_dir_all(&outdir);
    std::fs::create_dir_all(&outdir).unwrap_or_else(|e| panic!("{}: {e}", outdir.display()));
    // Output goes to files: a pipe nobody reads while waiting could fill and stall the runner.
    let log_path = outdir.join("kosoku.log");
    let log =
        std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("{}: {e}", log_path.display()));
    let log_err = log
        .try_clone()
        .unwrap_or_else(|e| panic!("{}: {e}", log_path.display()));
    let started = Instant::now();
    let child = Command::new(&kosoku)
        .args(["-p", "2", "-x", "12.*", "-x", "13.*", "-o"])
        .arg(&outdir)
        .arg(server.local_addr().to_string())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", kosoku.display()));
    let mut child = ChildGuard(child);
    let status = loop {
        match child.0.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > KOSOKU_DEADLINE => {
                panic!("kosoku did not finish within {KOSOKU_DEADLINE:?}")
            }
            Ok(None) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("waiting for kosoku: {e}"),
        }
    };
    let out = std::fs::read_to_string(&log_path).unwrap_or_default();
    let report = read_report(&outdir);
    eprintln!(
        "kosoku finished in {:.1}s with {status}: {report:?}",
        started.elapsed().as_secs_f64(),
    );
    assert!(
        status.success(),
        "kosoku failed ({status}): {report:?}\nreport: {}\noutput:\n{out}",
        outdir.display()
    );
    let report = report.unwrap_or_else(|e| panic!("kosoku left no readable report: {e}"));
    assert!(
        report.not_ok.is_empty(),
        "cases that did not pass strictly: {:?}\nreport: {}",
        report.not_ok,
        outdir.display()
    );
    // Every selected case ran: one missing (or one too many) means the run went wrong.
    assert_eq!(
        report.cases, EXPECTED_CASES,
        "{} cases ran, expected exactly {EXPECTED_CASES}",
        report.cases
    );
    server.shutdown().await;
}

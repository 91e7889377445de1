//! `wscluster-apibench`: publishes through the server API (`POST /api/publish`) over keep-alive
//! connections as fast as the node answers, and reports the publishes accepted per second and the
//! request latency (from writing a request to reading its whole answer). `bench/README.md` has the
//! scenario and its figures.
//!
//! Each connection sends one request, reads its answer, sends the next (or, with `--pipeline N`,
//! writes N requests at once and then reads the N answers). Messages are JSON strings of
//! `--message-bytes` bytes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Publishes through `POST /api/publish` on keep-alive connections and reports the rate and
/// latency.
#[derive(Parser, Debug)]
#[command(name = "wscluster-apibench")]
struct Args {
    /// The node's HTTP address (its WebSocket port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    target: SocketAddr,
    /// An API key with the `publish` scope.
    #[arg(long, env = "WSCLUSTER_APIBENCH_KEY")]
    key: String,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Requests written at once per connection before reading their answers.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Bytes of each message (a JSON string of that many characters).
    #[arg(long, default_value_t = 100)]
    message_bytes: usize,
    /// The channel published to.
    #[arg(long, default_value = "bench")]
    channel: String,
    /// Seconds measured.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    allow_non_loopback: bool,
}

/// What one connection measured.
struct Tally {
    ok: u64,
    failed: u64,
    latency_us: Histogram<u64>,
}

fn request(args: &Args) -> Vec<u8> {
    let body = format!(
        r#"{{"channel":"{}","message":"{}"}}"#,
        args.channel,
        "x".repeat(args.message_bytes)
    );
    format!(
        "POST /api/publish HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        args.key,
        body.len()
    )
    .into_bytes()
}

/// Reads one answer from `buf` + `stream`: its status, with the bytes consumed.
async fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<u16> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(len) = resp.parse(buf)? {
            let body: usize = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= len + body {
                let status = resp.code.unwrap_or(0);
                buf.drain(..len + body);
                return Ok(status);
            }
        }
        let mut chunk = [0u8; 64 * 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("the node closed the connection");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn connection(
    args: Arc<Args>,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Tally> {
    let mut stream = TcpStream::connect(args.target)
        .await
        .with_context(|| format!("connect {}", args.target))?;
    stream.set_nodelay(true)?;
    let one = request(&args);
    let batch: Vec<u8> = one.repeat(args.pipeline.max(1));
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut t = Tally {
        ok: 0,
        failed: 0,
        latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)?,
    };
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        stream.write_all(&batch).await?;
        for _ in 0..args.pipeline.max(1) {
            let status = read_answer(&mut stream, &mut buf).await?;
            if measuring.load(Ordering::Relaxed) {
                let us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                t.latency_us.saturating_record(us.max(1));
                if status == 200 {
                    t.ok += 1;
                } else {
                    t.failed += 1;
                }
            }
        }
    }
    Ok(t)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    if !args.target.ip().is_loopback() && !args.allow_non_loopback {
        bail!(
            "{} is not a loopback address (pass --allow-non-loopback to load another host)",
            args.target
        );
    }
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| tokio::spawn(connection(args.clone(), measuring.clone(), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut total = Tally {
        ok: 0,
        failed: 0,
        latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)?,
    };
    for t in tasks {
        let t = t.await.context("connection task")??;
        total.ok += t.ok;
        total.failed += t.failed;
        total.latency_us.add(&t.latency_us)?;
    }
    let h = &total.latency_us;
    println!(
        "connections={} pipeline={} message_bytes={} seconds={elapsed:.1}",
        args.connections, args.pipeline, args.message_bytes
    );
    println!(
        "accepted={} failed={} accepted_per_sec={:.0}",
        total.ok,
        total.failed,
        total.ok as f64 / elapsed
    );
    println!(
        "latency_ms p50={:.3} p90={:.3} p99={:.3} p99.9={:.3} max={:.3}",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.9) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.value_at_quantile(0.999) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
    Ok(())
}

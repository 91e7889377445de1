//! The operator's subcommands: `check-config`, `version`, `health` and `gen-secret`. Without a subcommand the
//! binary runs a node (`wscluster --listen …` keeps working: the node's flags are the top-level
//! ones, and `check-config` reads them too).

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::args::Args;

/// Exit code for a configuration or command-line error (clap uses the same for usage errors).
pub(crate) const EXIT_CONFIG: u8 = 2;

/// The URL `wscluster health` asks when given none: a node with the default `server.listen`.
const DEFAULT_HEALTH_URL: &str = "http://127.0.0.1:8080/health";

/// How long `wscluster health` waits to connect, and then for the whole answer.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest answer `wscluster health` reads (a `/health` answer is a few hundred bytes).
const HEALTH_MAX_ANSWER: u64 = 64 * 1024;

/// The subcommands; none runs a node.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Check the configuration (file, environment, flags) as a start would, without starting:
    /// every value, and every certificate, key and CA file it names. Lists each problem and exits
    /// 2, or exits 0 when a start would accept it. Node flags given before the subcommand
    /// (`wscluster --listen ADDR check-config`) are checked too.
    CheckConfig {
        /// TOML configuration file (wins over --config before the subcommand and WSCLUSTER_CONFIG)
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print the version and the commit it was built from
    Version,
    /// Print a new random cluster secret (32 random bytes as hex digits), e.g.
    /// `wscluster gen-secret > /etc/wscluster/cluster.secret`, then give every node the same file
    /// (--cluster-secret-file, cluster.secret_file) or the text in WSCLUSTER_CLUSTER__SECRET
    GenSecret,
    /// Ask a node's GET /health: exit 0 when it answers 2xx, 1 otherwise (for container health
    /// checks: needs no curl)
    Health {
        /// The node's HTTP address or its /health URL (http:// only)
        #[arg(long, value_name = "URL", default_value = DEFAULT_HEALTH_URL)]
        url: String,
    },
}

/// Runs `command`.
pub(crate) fn run(command: &Command, args: &Args) -> ExitCode {
    match command {
        Command::CheckConfig { config } => check_config(args, config.clone()),
        Command::Version => {
            println!("{}", version_line());
            ExitCode::SUCCESS
        }
        Command::Health { url } => health(url),
        Command::GenSecret => super::gen_secret::run(),
    }
}

/// `wscluster 0.1.0 (commit abc123def456)`: the commit the build recorded (`WSCLUSTER_COMMIT` at
/// build time, which `scripts/image.sh` sets, else the git commit, else `unknown`), the same as
/// `wscluster_build_info{commit}`.
pub(crate) fn version_line() -> String {
    format!(
        "wscluster {} (commit {})",
        wscluster::BUILD_VERSION,
        wscluster::BUILD_COMMIT
    )
}

fn check_config(args: &Args, file: Option<PathBuf>) -> ExitCode {
    match args.load_checked(file) {
        Ok(_) => {
            println!("configuration OK");
            ExitCode::SUCCESS
        }
        Err(problems) => {
            report_problems(&problems);
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Prints configuration problems on standard error: one line for one problem, else a header and
/// one line per problem.
pub(crate) fn report_problems(problems: &[String]) {
    match problems {
        [one] => eprintln!("wscluster: bad configuration: {one}"),
        many => {
            eprintln!("wscluster: bad configuration ({} problems):", many.len());
            for p in many {
                eprintln!("  - {p}");
            }
        }
    }
}

fn health(url: &str) -> ExitCode {
    match get_health(url) {
        Ok((status, body)) if (200..300).contains(&status) => {
            println!("healthy: {status} {}", body.trim());
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!(
                "wscluster: unhealthy: {url} answered {status} {}",
                body.trim()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("wscluster: unhealthy: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `http://HOST[:PORT][/PATH]` as (host, port, path); the path defaults to `/health`.
fn parse_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let path = if path.is_empty() || path == "/" {
        "/health".to_owned()
    } else {
        path.to_owned()
    };
    let port_of = |p: &str| p.parse::<u16>().map_err(|_| format!("bad port {p:?}"));
    let (host, port) = match authority.find(']') {
        // [IPv6]:PORT or [IPv6]
        Some(end) => {
            let (h, after) = authority.split_at(end + 1);
            match after.strip_prefix(':') {
                Some(p) => (h, port_of(p)?),
                None if after.is_empty() => (h, 80),
                None => return Err(format!("bad address {authority:?}")),
            }
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, port_of(p)?),
            None => (authority, 80),
        },
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    Ok((host.to_owned(), port, path))
}

/// GETs the URL with HTTP/1.1 (`Connection: close`): the status code and the body.
fn get_health(url: &str) -> Result<(u16, String), String> {
    let (host, port, path) = parse_url(url)?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addr = (bare, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, HEALTH_TIMEOUT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(HEALTH_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(HEALTH_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: wscluster-health\r\n\
         Connection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream
        .take(HEALTH_MAX_ANSWER)
        .read_to_end(&mut answer)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                format!("no answer within {} s", HEALTH_TIMEOUT.as_secs())
            }
            _ => e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| format!("not an HTTP answer: {status_line:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    Ok((
        status,
        body.chars()
            .filter(|c| !c.is_control() || *c == '\n')
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:8080"),
            Ok(("127.0.0.1".into(), 8080, "/health".into()))
        );
        assert_eq!(
            parse_url("http://node-1/ready"),
            Ok(("node-1".into(), 80, "/ready".into()))
        );
        assert_eq!(
            parse_url("http://[::1]:9000/"),
            Ok(("[::1]".into(), 9000, "/health".into()))
        );
        assert_eq!(
            parse_url("http://[::1]"),
            Ok(("[::1]".into(), 80, "/health".into()))
        );
        assert!(parse_url("https://x").is_err());
        assert!(parse_url("http://x:port").is_err());
    }
}

//! What the load generator reads about a process from `/proc`: CPU time and resident memory.
//!
//! CPU time is `utime + stime` of `/proc/PID/stat` (all threads of the process), in clock ticks of
//! `USER_HZ` (`getconf CLK_TCK`, 100 on every mainstream Linux); resolution is one tick (10 ms),
//! so CPU figures need measured windows of seconds. Resident memory is `VmRSS` of
//! `/proc/PID/status`, in KiB.

use std::process::Command;
use std::sync::OnceLock;

/// Clock ticks per second for `/proc/PID/stat` times.
fn ticks_per_second() -> f64 {
    static HZ: OnceLock<f64> = OnceLock::new();
    *HZ.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|hz| *hz > 0.0)
            .unwrap_or(100.0)
    })
}

/// CPU seconds (user + system, all threads) used so far by process `pid` (`"self"` for this one).
pub(crate) fn cpu_seconds(pid: &str) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let ticks = parse_stat_ticks(&stat).ok_or_else(|| format!("{path}: unreadable"))?;
    Ok(ticks as f64 / ticks_per_second())
}

/// Resident set size of process `pid`, in bytes.
pub(crate) fn rss_bytes(pid: &str) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    parse_vm_rss_kib(&status)
        .map(|kib| kib * 1024)
        .ok_or_else(|| format!("{path}: no VmRSS"))
}

/// `utime + stime` (fields 14 and 15) of a `/proc/PID/stat` line. The command name (field 2) is
/// in parentheses and may hold spaces and parentheses, so fields are counted after the last `)`.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = after.split_whitespace();
    // `after` starts at field 3 (state); utime is field 14, i.e. the 12th here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The `VmRSS:` value of a `/proc/PID/status` text, in KiB.
fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_are_utime_plus_stime_even_with_odd_names() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    1234 567 0 0 20 0 3 0 100 1000000 200 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(1234 + 567));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\twscluster\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss_kib(status), Some(5120));
        assert_eq!(parse_vm_rss_kib("Name: x\n"), None);
    }

    #[test]
    fn this_process_can_be_measured() {
        assert!(cpu_seconds("self").is_ok_and(|s| s >= 0.0));
        assert!(rss_bytes("self").is_ok_and(|b| b > 0));
        assert!(cpu_seconds("999999999").is_err());
    }
}

//! `wscluster-loadgen summary FILE`: one line per run of a `results.jsonl` (the `--json` lines the
//! bench scripts collect), with the few figures that matter for its scenario.

/// The figures shown for each scenario: (JSON key, column name).
fn columns(scenario: &str) -> &'static [(&'static str, &'static str)] {
    const FANOUT: &[(&str, &str)] = &[
        ("receivers", "receivers"),
        ("publishes_per_s", "pub/s"),
        ("deliveries_per_s", "deliv/s"),
        ("loss_pct", "loss%"),
        ("latency_p50_us", "p50us"),
        ("latency_p99_us", "p99us"),
        ("latency_p999_us", "p99.9us"),
        ("latency_max_us", "max_us"),
        ("latency_other_node_p99_us", "other-node-p99us"),
        ("publish_lateness_p99_us", "lg-late-p99us"),
        ("server_cores", "node-cores"),
        ("server_core_s_per_million", "core-s/M-deliv"),
        ("loadgen_cores", "lg-cores"),
    ];
    match scenario {
        "fanout" | "presence-fanout" => FANOUT,
        "idle" => &[
            ("connections_ready", "connected"),
            ("connect_failures", "failed"),
            ("connects_per_s", "conn/s"),
            ("rss_before_mib", "rss-before-MiB"),
            ("rss_connected_mib", "rss-MiB"),
            ("rss_per_connection_kib", "KiB/conn"),
            ("server_cores", "idle-node-cores"),
        ],
        "presence-churn" => &[
            ("members_ready", "members"),
            ("ops_per_s", "ops/s"),
            ("events_per_s", "events/s"),
            ("confirm_latency_p50_us", "op-p50us"),
            ("confirm_latency_p99_us", "op-p99us"),
            ("event_latency_p50_us", "event-p50us"),
            ("event_latency_p99_us", "event-p99us"),
            ("server_cores", "node-cores"),
            ("setup_s", "setup-s"),
        ],
        "presence-members" => &[
            ("members_listed", "listed"),
            ("reply_bytes", "reply-bytes"),
            ("latency_p50_us", "p50us"),
            ("latency_p99_us", "p99us"),
            ("latency_max_us", "max_us"),
            ("setup_s", "setup-s"),
        ],
        _ => &[],
    }
}

/// The summary of the JSON lines in `text`; lines that are not JSON objects are skipped.
pub(crate) fn summarize(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().filter(|l| l.starts_with('{')) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let scenario = v["scenario"].as_str().unwrap_or("?");
        let label = v["label"].as_str().unwrap_or(scenario);
        let mut parts = vec![format!("{label:<28}")];
        for (key, name) in columns(scenario) {
            match &v[*key] {
                serde_json::Value::Null => {}
                value => parts.push(format!("{name}={value}")),
            }
        }
        out.push_str(parts.join(" ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_run_with_its_scenario_figures() {
        let text = concat!(
            r#"{"scenario":"fanout","label":"fanout-1k","deliveries_per_s":1000.0,"loss_pct":0.0,"latency_other_node_p99_us":null}"#,
            "\n",
            "not json\n",
            r#"{"scenario":"idle","rss_per_connection_kib":8.5}"#,
            "\n"
        );
        let s = summarize(text);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("fanout-1k "));
        assert!(lines[0].ends_with("deliv/s=1000.0 loss%=0.0"));
        assert!(lines[1].starts_with("idle "));
        assert!(lines[1].ends_with("KiB/conn=8.5"));
    }
}

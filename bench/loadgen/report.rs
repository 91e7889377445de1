//! The figures of one run: printed as a table for people and, with `--json`, as one JSON line so
//! runs can be compared by a script (`jq`, a spreadsheet, a diff).
//!
//! Every row has a stable snake_case key (the JSON name, carrying its unit, e.g. `latency_p99_us`)
//! and a label for the table. Rows keep the order they were added in, in both outputs.

use std::fmt::Write as _;

/// One figure's value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// A count.
    Int(u64),
    /// A measured quantity, shown with this many decimals.
    Float(f64, usize),
    /// Text (names, URLs, error summaries).
    Text(String),
    /// Not measured in this run (e.g. no `--node-pid`): `-` in the table, `null` in JSON.
    Missing,
}

/// One row: JSON key, table label, value, unit shown after the value.
#[derive(Debug, Clone)]
struct Row {
    /// The JSON key.
    key: String,
    /// What the table shows on the left.
    label: String,
    /// The figure.
    value: Value,
    /// The unit shown in the table (the key already names it for JSON).
    unit: String,
}

/// The figures of one run, in order, grouped under section headings for the table.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// The scenario's name (first JSON field).
    scenario: String,
    /// The run's name given with `--label` (second JSON field), if any.
    label: Option<String>,
    /// Rows and section headings, in order; a heading is a row with an empty key.
    rows: Vec<Row>,
}

impl Report {
    /// An empty report for `scenario`.
    pub(crate) fn new(scenario: &str) -> Self {
        Self {
            scenario: scenario.to_owned(),
            label: None,
            rows: Vec::new(),
        }
    }

    /// Names the run (`--label`).
    pub(crate) fn set_label(&mut self, label: &str) {
        self.label = Some(label.to_owned());
    }

    /// Starts a table section (not in the JSON).
    pub(crate) fn section(&mut self, title: &str) {
        self.rows.push(Row {
            key: String::new(),
            label: title.to_owned(),
            value: Value::Missing,
            unit: String::new(),
        });
    }

    /// Adds a figure.
    pub(crate) fn add(&mut self, key: &str, label: &str, value: Value, unit: &str) {
        self.rows.push(Row {
            key: key.to_owned(),
            label: label.to_owned(),
            value,
            unit: unit.to_owned(),
        });
    }

    /// Adds a count.
    pub(crate) fn int(&mut self, key: &str, label: &str, v: u64, unit: &str) {
        self.add(key, label, Value::Int(v), unit);
    }

    /// Adds a measured quantity with `decimals` decimals.
    pub(crate) fn float(&mut self, key: &str, label: &str, v: f64, decimals: usize, unit: &str) {
        let value = if v.is_finite() {
            Value::Float(v, decimals)
        } else {
            Value::Missing
        };
        self.add(key, label, value, unit);
    }

    /// Adds an optional measured quantity (`None` shows as not measured).
    pub(crate) fn opt_float(
        &mut self,
        key: &str,
        label: &str,
        v: Option<f64>,
        decimals: usize,
        unit: &str,
    ) {
        match v {
            Some(v) => self.float(key, label, v, decimals, unit),
            None => self.add(key, label, Value::Missing, unit),
        }
    }

    /// Adds text.
    pub(crate) fn text(&mut self, key: &str, label: &str, v: impl Into<String>) {
        self.add(key, label, Value::Text(v.into()), "");
    }

    /// The human table.
    pub(crate) fn table(&self) -> String {
        let width = self
            .rows
            .iter()
            .filter(|r| !r.key.is_empty())
            .map(|r| r.label.len())
            .max()
            .unwrap_or(0);
        let mut out = match &self.label {
            Some(label) => format!("== {} ({label}) ==\n", self.scenario),
            None => format!("== {} ==\n", self.scenario),
        };
        for row in &self.rows {
            if row.key.is_empty() {
                let _ = writeln!(out, "-- {}", row.label);
                continue;
            }
            let value = match &row.value {
                Value::Int(v) => v.to_string(),
                Value::Float(v, d) => format!("{v:.d$}"),
                Value::Text(t) => t.clone(),
                Value::Missing => "-".to_owned(),
            };
            let line = format!("  {:<width$}  {value} {}", row.label, row.unit);
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out
    }

    /// The one-line JSON object: `{"scenario":…, key: value, …}` in row order.
    pub(crate) fn json_line(&self) -> String {
        let mut out = String::from("{\"scenario\":");
        out.push_str(&serde_json::Value::String(self.scenario.clone()).to_string());
        if let Some(label) = &self.label {
            out.push_str(",\"label\":");
            out.push_str(&serde_json::Value::String(label.clone()).to_string());
        }
        for row in self.rows.iter().filter(|r| !r.key.is_empty()) {
            out.push(',');
            out.push_str(&serde_json::Value::String(row.key.clone()).to_string());
            out.push(':');
            let value = match &row.value {
                Value::Int(v) => v.to_string(),
                Value::Float(v, d) => {
                    // Round to the shown decimals so the JSON matches the table.
                    let shown: f64 = format!("{v:.d$}").parse().unwrap_or(*v);
                    serde_json::Number::from_f64(shown).map_or("null".to_owned(), |n| n.to_string())
                }
                Value::Text(t) => serde_json::Value::String(t.clone()).to_string(),
                Value::Missing => "null".to_owned(),
            };
            out.push_str(&value);
        }
        out.push('}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut r = Report::new("fanout");
        r.section("load");
        r.int("subscribers", "subscribers", 1000, "");
        r.float("latency_p50_us", "latency p50", 41.256, 1, "µs");
        r.opt_float("server_cpu_s", "server CPU", None, 2, "s");
        r.text("urls", "urls", "ws://127.0.0.1:8080 \"x\"");
        r
    }

    #[test]
    fn json_line_keeps_row_order_and_is_valid() {
        let line = sample().json_line();
        assert_eq!(
            line,
            r#"{"scenario":"fanout","subscribers":1000,"latency_p50_us":41.3,"server_cpu_s":null,"urls":"ws://127.0.0.1:8080 \"x\""}"#
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        assert_eq!(v["subscribers"], 1000);
        assert!(!line.contains('\n'));
    }

    #[test]
    fn table_aligns_labels_and_marks_missing_values() {
        let t = sample().table();
        assert!(t.starts_with("== fanout ==\n-- load\n"));
        assert!(t.contains("  latency p50  41.3 µs\n"));
        assert!(t.contains("  server CPU   - s\n"));
    }

    #[test]
    fn the_label_follows_the_scenario() {
        let mut r = Report::new("idle");
        r.set_label("idle-10k");
        r.int("connections", "connections", 3, "");
        assert_eq!(
            r.json_line(),
            r#"{"scenario":"idle","label":"idle-10k","connections":3}"#
        );
        assert!(r.table().starts_with("== idle (idle-10k) ==\n"));
    }

    #[test]
    fn non_finite_floats_are_missing() {
        let mut r = Report::new("x");
        r.float("rate", "rate", f64::NAN, 1, "/s");
        assert_eq!(r.json_line(), r#"{"scenario":"x","rate":null}"#);
    }
}

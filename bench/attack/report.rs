//! One row per attack: its name, what happened and the bound that held (or did not), printed as a
//! table for people and as one JSON line per attack for `tests/attack.rs`.

use std::fmt;

/// What an attack achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The node turned the attack away (an error, a refusal, nothing delivered).
    Refused,
    /// The node accepted the input but held it within a byte cap.
    Bounded,
    /// The attack worked.
    Vulnerable,
    /// The attack could not be carried out (the tool, the node or the machine failed).
    Error,
}

impl Outcome {
    /// The word in the table and in the JSON line.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Outcome::Refused => "refused",
            Outcome::Bounded => "bounded",
            Outcome::Vulnerable => "VULNERABLE",
            Outcome::Error => "error",
        }
    }

    /// Whether the node held.
    pub(crate) fn held(self) -> bool {
        matches!(self, Outcome::Refused | Outcome::Bounded)
    }
}

/// One attack's result.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// Short stable name (the test reports rows by it).
    pub(crate) attack: &'static str,
    /// What happened.
    pub(crate) outcome: Outcome,
    /// The cap that held, or what grew past it, with numbers.
    pub(crate) bound: String,
    /// What was observed, for the reader.
    pub(crate) detail: String,
}

impl Row {
    /// A row.
    pub(crate) fn new(
        attack: &'static str,
        outcome: Outcome,
        bound: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            attack,
            outcome,
            bound: bound.into(),
            detail: detail.into(),
        }
    }

    /// A row for an attack that could not be run.
    pub(crate) fn error(attack: &'static str, why: impl fmt::Display) -> Self {
        Self::new(attack, Outcome::Error, "", why.to_string())
    }

    /// The JSON line of the row.
    pub(crate) fn json(&self) -> String {
        serde_json::json!({
            "attack": self.attack,
            "result": self.outcome.word(),
            "bound": self.bound,
            "detail": self.detail,
        })
        .to_string()
    }
}

/// The table: one line per row, columns padded.
pub(crate) fn table(rows: &[Row]) -> String {
    let w_attack = rows
        .iter()
        .map(|r| r.attack.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let w_result = 10;
    let w_bound = rows.iter().map(|r| r.bound.len()).max().unwrap_or(0).max(5);
    let mut out = format!(
        "{:<w_attack$} | {:<w_result$} | {:<w_bound$} | detail\n",
        "attack", "result", "bound"
    );
    out.push_str(&format!(
        "{}-+-{}-+-{}-+-------\n",
        "-".repeat(w_attack),
        "-".repeat(w_result),
        "-".repeat(w_bound)
    ));
    for r in rows {
        out.push_str(&format!(
            "{:<w_attack$} | {:<w_result$} | {:<w_bound$} | {}\n",
            r.attack,
            r.outcome.word(),
            r.bound,
            r.detail
        ));
    }
    out
}

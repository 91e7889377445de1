//! Text from the network, made safe for a log line.
//!
//! A string a client, a peer or any caller sent (a node id, a cluster name, a refusal reason, a
//! header) may hold control characters: a newline forges a second log line, an escape sequence
//! rewrites the operator's terminal. Such strings are logged through [`Printable`] (or
//! [`escape_control`]), which writes every control character as a Rust escape (`\n`, `\u{1b}`) and
//! leaves the rest as it is. `{:?}` formatting does the same but also quotes the string.

use std::borrow::Cow;
use std::fmt;

/// `s` with every control character escaped (`\n`, `\t`, `\u{1b}`, ...); borrowed when there is
/// none.
pub fn escape_control(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Displays a string with its control characters escaped: `tracing::info!(peer = %Printable(id))`.
#[derive(Debug, Clone, Copy)]
pub struct Printable<'a>(pub &'a str);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape_control(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert!(matches!(escape_control("node-1 é"), Cow::Borrowed(_)));
        assert_eq!(
            escape_control("a\nINFO forged\u{1b}[2J\t\u{7f}"),
            "a\\nINFO forged\\u{1b}[2J\\t\\u{7f}"
        );
        assert_eq!(Printable("x\r\ny").to_string(), "x\\r\\ny");
    }
}

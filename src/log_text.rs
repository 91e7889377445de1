//! Text from clients, peers and the network, made safe for the log.
//!
//! A user name, channel name, `Origin`, path or peer-supplied id may hold control characters: a
//! newline forges a log line, an ANSI escape rewrites the operator's terminal. Every such string
//! goes into a log line through [`Printable`] (or [`escape_control`]), which writes each control
//! character as `\u{..}` (and a backslash as `\\`, so an escaped form cannot be faked), keeping
//! everything else as is.

use std::borrow::Cow;
use std::fmt;

/// `s` with every control character (C0, DEL, C1) written as `\u{XX}` and every backslash doubled;
/// borrowed when there is nothing to escape.
pub(crate) fn escape_control(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(Printable(s).to_string())
}

fn needs_escape(c: char) -> bool {
    c.is_control() || c == '\\'
}

/// Displays a string with its control characters escaped (see [`escape_control`]): use it for
/// `%` fields and message arguments built from client or peer input.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Printable<'a>(pub &'a str);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(needs_escape) {
            f.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            if c == '\\' {
                f.write_str("\\\\")?;
            } else {
                write!(f, "\\u{{{:x}}}", c as u32)?;
            }
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert!(matches!(escape_control("plain ünï"), Cow::Borrowed(_)));
        assert_eq!(
            escape_control("a\nb\r\x1b[31mred\x7f\u{85}\t"),
            "a\\u{a}b\\u{d}\\u{1b}[31mred\\u{7f}\\u{85}\\u{9}"
        );
        // A literal "\u{a}" in the input cannot pass for an escaped newline.
        assert_eq!(escape_control("x\\u{a}"), "x\\\\u{a}");
        assert_eq!(Printable("é\0").to_string(), "é\\u{0}");
        let out = escape_control("\x00\x01\x1b\x7f\u{9b}");
        assert!(!out.chars().any(char::is_control), "{out}");
    }
}

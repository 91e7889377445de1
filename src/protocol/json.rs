//! The tolerant JSON dialect of sgcWebSockets (docs/wire.md §1.3, §1.4, §5.1).
//!
//! Input: raw control characters inside strings are escaped and `#` comments dropped before the
//! text reaches `serde_json`; objects are read as borrowed raw values so payloads can be forwarded
//! byte for byte; any scalar can be read as text; `sgc@b64:` strings are decoded.
//! Output: compact writers with standard escaping, and [`Payload`], a message value that is written
//! raw when it was an object or array and as a string otherwise.

use std::borrow::Cow;
use std::collections::HashMap;

use base64::Engine as _;
use serde_json::value::RawValue;

/// The prefix of Base64-encoded string values (`CS_ENC_B64`).
pub const B64_PREFIX: &str = "sgc@b64:";

/// Makes sgcJSON text acceptable to a strict parser: escapes raw control characters inside string
/// literals and removes `#` comments outside them. Borrows when nothing needs changing.
pub fn sanitize(input: &str) -> Cow<'_, str> {
    let bytes = input.as_bytes();
    let needs = bytes
        .iter()
        .any(|&b| b < 0x20 && b != b'\n' && b != b'\r' && b != b'\t')
        || bytes.contains(&b'#')
        || has_control_in_string(bytes);
    if !needs {
        return Cow::Borrowed(input);
    }
    let mut out = String::with_capacity(input.len() + 16);
    let mut in_string = false;
    let mut escaped = false;
    let mut in_comment = false;
    for ch in input.chars() {
        if in_comment {
            if ch == '\n' {
                in_comment = false;
                out.push(ch);
            }
            continue;
        }
        if in_string {
            if escaped {
                escaped = false;
                out.push(ch);
            } else if ch == '\\' {
                escaped = true;
                out.push(ch);
            } else if ch == '"' {
                in_string = false;
                out.push(ch);
            } else if (ch as u32) < 0x20 {
                push_control_escape(&mut out, ch);
            } else {
                out.push(ch);
            }
        } else if ch == '"' {
            in_string = true;
            out.push(ch);
        } else if ch == '#' {
            in_comment = true;
        } else {
            out.push(ch);
        }
    }
    Cow::Owned(out)
}

fn has_control_in_string(bytes: &[u8]) -> bool {
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            } else if b < 0x20 {
                return true;
            }
        } else if b == b'"' {
            in_string = true;
        }
    }
    false
}

fn push_control_escape(out: &mut String, ch: char) {
    match ch {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        c => out.push_str(&format!("\\u{:04x}", c as u32)),
    }
}

/// A JSON object read leniently, its values kept as raw JSON text. Unknown keys are simply there.
#[derive(Debug)]
pub struct RawObject<'a> {
    fields: HashMap<Cow<'a, str>, &'a RawValue>,
}

impl<'a> RawObject<'a> {
    /// Parses `text` (already [`sanitize`]d) as an object; `None` when it is not a JSON object.
    pub fn parse(text: &'a str) -> Option<Self> {
        let fields: HashMap<Cow<'a, str>, &'a RawValue> = serde_json::from_str(text).ok()?;
        Some(Self { fields })
    }

    /// Parses a raw value as an object, if it is one.
    pub fn from_raw(raw: &'a RawValue) -> Option<Self> {
        if !raw.get().trim_start().starts_with('{') {
            return None;
        }
        Self::parse(raw.get())
    }

    /// The raw value of `key`.
    pub fn raw(&self, key: &str) -> Option<&'a RawValue> {
        self.fields.get(key).copied()
    }

    /// Whether `key` is present (even as `null`).
    pub fn has(&self, key: &str) -> bool {
        self.fields.contains_key(key)
    }

    /// The value of `key` read as text (see [`raw_to_text`]); `None` when absent.
    pub fn text(&self, key: &str) -> Option<String> {
        self.raw(key).map(raw_to_text)
    }

    /// The value of `key` as a sub-object, if it is one.
    pub fn object(&self, key: &str) -> Option<RawObject<'a>> {
        self.raw(key).and_then(RawObject::from_raw)
    }
}

/// Reads any JSON value as text, the way sgcJSON does: a string is unescaped and `sgc@b64:`-decoded;
/// an object or array is its JSON text; a number or boolean is its literal; `null` is empty.
pub fn raw_to_text(raw: &RawValue) -> String {
    let s = raw.get().trim();
    match s.as_bytes().first() {
        Some(b'"') => {
            let unescaped: String = serde_json::from_str(s).unwrap_or_default();
            decode_b64(&unescaped).into_owned()
        }
        Some(b'n') if s == "null" => String::new(),
        Some(_) => s.to_owned(),
        None => String::new(),
    }
}

/// Strips and decodes the `sgc@b64:` prefix; other text (and undecodable Base64) is returned as is.
pub fn decode_b64(text: &str) -> Cow<'_, str> {
    let Some(rest) = text.strip_prefix(B64_PREFIX) else {
        return Cow::Borrowed(text);
    };
    match base64::engine::general_purpose::STANDARD.decode(rest.trim()) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(s) => Cow::Owned(s),
            Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        },
        Err(_) => Cow::Borrowed(text),
    }
}

/// Encodes `text` as `sgc@b64:<base64>`.
pub fn encode_b64(text: &str) -> String {
    let mut s = String::with_capacity(B64_PREFIX.len() + text.len() * 4 / 3 + 4);
    s.push_str(B64_PREFIX);
    base64::engine::general_purpose::STANDARD.encode_string(text.as_bytes(), &mut s);
    s
}

/// Appends `s` as a JSON string literal with standard escaping.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0x08 => Some(b"\\b"),
            0x0c => Some(b"\\f"),
            0..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match esc {
            Some(e) => out.extend_from_slice(e),
            None => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// A message value as it travels through the server: raw JSON (an object or array that arrived as
/// such, written unquoted) or text (written as an escaped JSON string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// JSON text of an object or array; written as is.
    Raw(String),
    /// A plain string; written quoted and escaped.
    Text(String),
}

impl Payload {
    /// The payload of a received value: objects and arrays stay raw, anything else becomes text.
    pub fn from_raw(raw: &RawValue) -> Self {
        let s = raw.get().trim();
        if s.starts_with('{') || s.starts_with('[') {
            Payload::Raw(s.to_owned())
        } else {
            Payload::Text(raw_to_text(raw))
        }
    }

    /// The payload for a server-side `publish(text)` (docs/wire.md §5.1 item 4): raw when `text` starts with
    /// `{` or `[` and parses as JSON, otherwise a string.
    pub fn from_text(text: impl Into<String>) -> Self {
        let text = text.into();
        let t = text.trim_start();
        if (t.starts_with('{') || t.starts_with('['))
            && serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok()
        {
            Payload::Raw(text)
        } else {
            Payload::Text(text)
        }
    }

    /// The payload as text, as an sgc application would see it (`OnMessage(Text)`).
    pub fn as_text(&self) -> &str {
        match self {
            Payload::Raw(s) | Payload::Text(s) => s,
        }
    }

    /// Appends the payload as a JSON value.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Payload::Raw(s) => out.extend_from_slice(s.as_bytes()),
            Payload::Text(s) => write_str(out, s),
        }
    }

    /// An upper bound hint of the written size.
    pub fn len_hint(&self) -> usize {
        self.as_text().len() + 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_escapes_raw_control_characters_in_strings() {
        let s = sanitize("{\"info\":\"line\r\n\"}");
        let o = RawObject::parse(&s).expect("object");
        assert_eq!(o.text("info").as_deref(), Some("line\r\n"));
    }

    #[test]
    fn sanitize_drops_comments_outside_strings_only() {
        let s = sanitize("{\"a\":\"#keep\" # gone\n}");
        let o = RawObject::parse(&s).expect("object");
        assert_eq!(o.text("a").as_deref(), Some("#keep"));
    }

    #[test]
    fn sanitize_borrows_clean_input() {
        assert!(matches!(sanitize("{\"a\":1}"), Cow::Borrowed(_)));
    }

    #[test]
    fn scalars_read_as_text() {
        let o =
            RawObject::parse(r#"{"n":42,"b":true,"z":null,"o":{"x":1},"s":"sgc@b64:aGVsbG8="}"#)
                .expect("object");
        assert_eq!(o.text("n").as_deref(), Some("42"));
        assert_eq!(o.text("b").as_deref(), Some("true"));
        assert_eq!(o.text("z").as_deref(), Some(""));
        assert_eq!(o.text("o").as_deref(), Some(r#"{"x":1}"#));
        assert_eq!(o.text("s").as_deref(), Some("hello"));
        assert_eq!(o.text("missing"), None);
    }

    #[test]
    fn payload_keeps_objects_raw_and_strings_quoted() {
        let o = RawObject::parse(r#"{"m":{"id":42},"t":"a\"b"}"#).expect("object");
        let mut out = Vec::new();
        Payload::from_raw(o.raw("m").expect("m")).write(&mut out);
        out.push(b',');
        Payload::from_raw(o.raw("t").expect("t")).write(&mut out);
        assert_eq!(String::from_utf8_lossy(&out), r#"{"id":42},"a\"b""#);
    }

    #[test]
    fn server_text_is_raw_only_when_it_parses() {
        assert_eq!(
            Payload::from_text("{\"a\":1}"),
            Payload::Raw("{\"a\":1}".into())
        );
        assert_eq!(Payload::from_text("{oops"), Payload::Text("{oops".into()));
        assert_eq!(Payload::from_text("hi"), Payload::Text("hi".into()));
    }

    #[test]
    fn b64_round_trip() {
        assert_eq!(decode_b64(&encode_b64("héllo")), "héllo");
        assert_eq!(decode_b64("sgc@b64:!!!"), "sgc@b64:!!!");
    }

    #[test]
    fn write_str_escapes_controls() {
        let mut out = Vec::new();
        write_str(&mut out, "a\u{1}\n\"\\");
        assert_eq!(String::from_utf8_lossy(&out), r#""a\u0001\n\"\\""#);
    }
}

//! [`OriginPolicy`]: the allow-list of browser origins (`server.allowed_origins`), like the
//! reference server's `ServerOriginsAllowed` masks. Pure: the server asks it about the `Origin`
//! header of an upgrade and answers 403 when it says no.

/// Which `Origin` headers may open a WebSocket connection.
///
/// - An empty list allows every origin.
/// - A request without an `Origin` header is allowed: browsers always send one on a WebSocket
///   upgrade, so its absence means a non-browser client (Delphi, a server), which an origin check
///   cannot protect against anyway.
/// - Each entry is an exact origin (`https://app.example.com`) or a mask where `*` matches any run
///   of characters, including none (`https://*.example.com`, `*`). Matching ignores ASCII case
///   and a trailing `/`.
#[derive(Debug, Clone, Default)]
pub(crate) struct OriginPolicy {
    masks: Vec<String>,
}

impl OriginPolicy {
    /// The policy of these masks (empty: allow all).
    pub(crate) fn new(masks: &[String]) -> Self {
        Self {
            masks: masks
                .iter()
                .map(|m| normalise(m))
                .filter(|m| !m.is_empty())
                .collect(),
        }
    }

    /// Whether an upgrade with this `Origin` header (if any) is allowed.
    pub(crate) fn allows(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        if self.masks.is_empty() {
            return true;
        }
        let origin = normalise(origin);
        self.masks
            .iter()
            .any(|m| matches(m.as_bytes(), origin.as_bytes()))
    }
}

fn normalise(s: &str) -> String {
    s.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// Glob match with `*` only, iterative (linear backtracking on the last star): no recursion, so a
/// hostile header cannot blow the stack or take exponential time.
fn matches(mask: &[u8], text: &[u8]) -> bool {
    let (mut m, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match mask.get(m) {
            Some(b'*') => {
                star = Some((m, t));
                m += 1;
            }
            Some(&c) if c == text[t] => {
                m += 1;
                t += 1;
            }
            _ => match star {
                Some((sm, st)) => {
                    m = sm + 1;
                    t = st + 1;
                    star = Some((sm, st + 1));
                }
                None => return false,
            },
        }
    }
    mask[m.min(mask.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(masks: &[&str]) -> OriginPolicy {
        OriginPolicy::new(&masks.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn empty_list_and_missing_header_allow() {
        assert!(policy(&[]).allows(Some("https://evil.example")));
        assert!(policy(&["https://a.example"]).allows(None));
    }

    #[test]
    fn exact_and_case_insensitive() {
        let p = policy(&["https://App.Example.com"]);
        assert!(p.allows(Some("https://app.example.com")));
        assert!(p.allows(Some("HTTPS://APP.EXAMPLE.COM/")));
        assert!(!p.allows(Some("https://app.example.com.evil.net")));
        assert!(!p.allows(Some("http://app.example.com")));
        assert!(!p.allows(Some("null")));
    }

    #[test]
    fn wildcards() {
        let p = policy(&["https://*.example.com", "http://localhost:*"]);
        assert!(p.allows(Some("https://a.example.com")));
        assert!(p.allows(Some("https://a.b.example.com")));
        assert!(!p.allows(Some("https://example.com")));
        assert!(!p.allows(Some("https://a.example.com.evil.net")));
        assert!(!p.allows(Some("https://evilexample.com")));
        assert!(p.allows(Some("http://localhost:3000")));
        assert!(policy(&["*"]).allows(Some("anything")));
        assert!(matches(b"a*b*c", b"aXXbYYc"));
        assert!(!matches(b"a*b*c", b"aXXbYY"));
        assert!(matches(b"**", b""));
    }

    proptest::proptest! {
        /// `prefix*suffix` matches exactly the texts that start with the prefix and end with the
        /// suffix without the two overlapping; a mask without `*` matches only itself.
        #[test]
        fn star_mask_agrees_with_prefix_and_suffix(
            prefix in "[a-c.:/]{0,6}", suffix in "[a-c.:/]{0,6}", text in "[a-c.:/]{0,14}"
        ) {
            let mask = format!("{prefix}*{suffix}");
            let expected = text.len() >= prefix.len() + suffix.len()
                && text.starts_with(&prefix)
                && text.ends_with(&suffix);
            proptest::prop_assert_eq!(matches(mask.as_bytes(), text.as_bytes()), expected);
            proptest::prop_assert_eq!(matches(prefix.as_bytes(), text.as_bytes()), prefix == text);
        }
    }

    #[test]
    fn hostile_input_is_linear() {
        let p = policy(&["*a*a*a*a*a*a*a*b"]);
        let long = format!("https://{}", "a".repeat(10_000));
        assert!(!p.allows(Some(&long)));
    }
}

//! Channel expansion (docs/wire.md §2.8): a requested channel becomes the concrete channels a subscribe,
//! unsubscribe or publish acts on.
//!
//! With `use_matches_mask` on, the whole request is a Delphi `MatchesMask` pattern (`*` any run,
//! `?` one character, `[a-z]`/`[!a-z]` sets, case-insensitive) matched against the channels that
//! exist on this node. When that finds nothing (or the option is off) the request is split on `,`.

/// A compiled `MatchesMask` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mask {
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// One literal character (already lowercased).
    Char(char),
    /// `?`.
    Any,
    /// `*`.
    Star,
    /// `[...]`: ranges (lowercased, inclusive), negated with a leading `!`.
    Set {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Mask {
    /// Compiles `pattern`; `None` when it is malformed (an unclosed `[`), which Delphi reports as an
    /// error and we treat as "matches nothing".
    pub(crate) fn new(pattern: &str) -> Option<Self> {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '?' => tokens.push(Token::Any),
                '[' => {
                    let negated = chars.next_if_eq(&'!').is_some();
                    let mut ranges = Vec::new();
                    let mut closed = false;
                    while let Some(c) = chars.next() {
                        if c == ']' {
                            closed = true;
                            break;
                        }
                        let lo = fold(c);
                        if chars.peek() == Some(&'-') {
                            chars.next();
                            match chars.next() {
                                Some(']') => {
                                    ranges.push((lo, lo));
                                    ranges.push(('-', '-'));
                                    closed = true;
                                    break;
                                }
                                Some(hi) => ranges.push((lo, fold(hi))),
                                None => break,
                            }
                        } else {
                            ranges.push((lo, lo));
                        }
                    }
                    if !closed {
                        return None;
                    }
                    tokens.push(Token::Set { negated, ranges });
                }
                c => tokens.push(Token::Char(fold(c))),
            }
        }
        Some(Self { tokens })
    }

    /// Whether the pattern has any wildcard at all.
    #[cfg(test)]
    pub(crate) fn is_literal(&self) -> bool {
        self.tokens.iter().all(|t| matches!(t, Token::Char(_)))
    }

    /// Whether `text` matches the whole pattern, case-insensitively. Linear in practice: one
    /// backtrack point (the last `*`), the classic glob algorithm.
    pub(crate) fn matches(&self, text: &str) -> bool {
        // `t` and the star's restart point are byte offsets into `text`; no allocation.
        let next = |t: usize| text[t..].chars().next().map(|c| (fold(c), c.len_utf8()));
        let (mut t, mut p) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while let Some((c, len)) = next(t) {
            match self.tokens.get(p) {
                Some(Token::Star) => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                Some(tok) if tok.accepts(c) => {
                    t += len;
                    p += 1;
                    continue;
                }
                _ => {}
            }
            match star {
                Some((sp, st)) => {
                    let skip = next(st).map_or(1, |(_, l)| l);
                    p = sp + 1;
                    t = st + skip;
                    star = Some((sp, t));
                }
                None => return false,
            }
        }
        self.tokens[p.min(self.tokens.len())..]
            .iter()
            .all(|tok| *tok == Token::Star)
    }
}

impl Token {
    fn accepts(&self, c: char) -> bool {
        match self {
            Token::Char(x) => *x == c,
            Token::Any => true,
            Token::Star => true,
            Token::Set { negated, ranges } => {
                ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated
            }
        }
    }
}

fn fold(c: char) -> char {
    // One-to-one lowercase (Delphi's AnsiLowerCase works per character too).
    let mut l = c.to_lowercase();
    match (l.next(), l.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

/// Expands a requested channel into concrete channels (docs/wire.md §2.8), at most `limit` of them.
///
/// - `""` is the channel `""` (everyone, for publish).
/// - With `use_mask`, the existing channels matching the whole request as a mask, in the order
///   `existing` gives them; when none match:
/// - the request split on `,`, empty items dropped, duplicates removed, order kept.
pub(crate) fn expand<'a, I>(
    requested: &str,
    use_mask: bool,
    existing: I,
    limit: usize,
) -> Vec<String>
where
    I: IntoIterator<Item = &'a str>,
{
    if requested.is_empty() {
        return vec![String::new()];
    }
    let limit = limit.max(1);
    if use_mask && let Some(mask) = Mask::new(requested) {
        let mut found: Vec<String> = existing
            .into_iter()
            .filter(|c| !c.is_empty() && mask.matches(c))
            .take(limit)
            .map(str::to_owned)
            .collect();
        if !found.is_empty() {
            found.sort_unstable();
            found.dedup();
            return found;
        }
    }
    let mut out: Vec<String> = Vec::new();
    for item in requested.split(',') {
        if out.len() >= limit {
            break;
        }
        if !item.is_empty() && !out.iter().any(|o| o == item) {
            out.push(item.to_owned());
        }
    }
    if out.is_empty() {
        // Only commas: nothing concrete was named.
        tracing::debug!(requested, "channel list names no channel");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Mask::new(p).is_some_and(|m| m.matches(t))
    }

    #[test]
    fn mask_semantics() {
        assert!(m("news*", "news"));
        assert!(m("news*", "NEWS/sport"));
        assert!(!m("news*", "xnews"));
        assert!(m("weather/usa/*", "weather/usa/ny"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("[a-c]x", "Bx"));
        assert!(!m("[a-c]x", "dx"));
        assert!(m("[!a-c]x", "dx"));
        assert!(m("[ab-]x", "-x"));
        assert!(m("*a*b*", "zzazzbzz"));
        assert!(!m("*a*b*", "zzbzzazz"));
        assert!(m("*", ""));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(Mask::new("[abc").is_none());
        assert!(Mask::new("abc").is_some_and(|m| m.is_literal()));
    }

    #[test]
    fn expansion_rules() {
        let existing = ["news/a", "news/b", "sport", ""];
        let e = |r: &str, mask: bool| expand(r, mask, existing.iter().copied(), 100);
        assert_eq!(e("news*", true), vec!["news/a", "news/b"]);
        assert_eq!(e("news*", false), vec!["news*"]);
        assert_eq!(e("a,b,,a", false), vec!["a", "b"]);
        // Whole request is the mask; no match falls back to the comma split.
        assert_eq!(e("news*,sport", true), vec!["news*", "sport"]);
        assert_eq!(e("SPORT", true), vec!["sport"]);
        assert_eq!(e("", true), vec![""]);
        assert!(e(",,", false).is_empty());
        assert_eq!(expand("a,b,c", false, [], 2), vec!["a", "b"]);
    }

    /// A simple recursive matcher, the reference for the property test.
    fn slow(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => slow(&p[1..], t) || (!t.is_empty() && slow(p, &t[1..])),
            Some('?') => !t.is_empty() && slow(&p[1..], &t[1..]),
            Some(c) => !t.is_empty() && fold(*c) == fold(t[0]) && slow(&p[1..], &t[1..]),
        }
    }

    proptest::proptest! {
        #[test]
        fn glob_matches_the_recursive_reference(p in "[abé*?]{0,8}", t in "[abABéÉ]{0,10}") {
            let pc: Vec<char> = p.chars().collect();
            let tc: Vec<char> = t.chars().collect();
            proptest::prop_assert_eq!(m(&p, &t), slow(&pc, &tc));
        }

        #[test]
        fn split_never_yields_empty_or_duplicate(r in "[a,]{1,20}") {
            let out = expand(&r, false, [], 1000);
            proptest::prop_assert!(out.iter().all(|c| !c.is_empty()));
            let mut d = out.clone();
            d.sort();
            d.dedup();
            proptest::prop_assert_eq!(d.len(), out.len());
        }
    }
}

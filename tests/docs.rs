//! The documentation stands alone:
//!
//! - `nothing_points_outside_the_repository`: README, `docs/`, `deploy/`, `bench/`, `scripts/`,
//!   `.ci/`, `src/`, `tests/`, the fuzz targets, the vendored crate's notes, `Cargo.toml` and the
//!   example configuration name no file outside the repository (`/work/…`, `shared/…`, a `../`
//!   path that leaves it, the external specification) and cite no issue numbers; a failure lists
//!   every `file:line`.
//! - `markdown_links_resolve`: every relative link of the Markdown pages names a file of the
//!   repository.
//!
//! The quick start and the wire reference's examples are run against real nodes in
//! `tests/docs_quick_start.rs` and `tests/docs_wire.rs`.

mod support;

use std::path::{Component, Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// References outside the repository
// ---------------------------------------------------------------------------------------------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files scanned, relative to the repository root.
const SCANNED: &[&str] = &[
    "README.md",
    "Cargo.toml",
    "wscluster.example.toml",
    "Dockerfile",
    ".dockerignore",
    "docs",
    "deploy",
    "bench",
    "scripts",
    ".ci",
    "src",
    "tests",
    "fuzz/Cargo.toml",
    "fuzz/fuzz_targets",
    "vendor/tokio-websockets/PATCHED.md",
];

/// This file names the forbidden patterns, so it is not scanned.
const SELF: &str = "tests/docs.rs";

fn walk(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            walk(&e, out);
        }
    } else if path.is_file() {
        out.push(path.to_owned());
    }
}

/// Every scanned text file, with its path relative to the repository.
fn scanned_files() -> Vec<(String, String)> {
    let root = repo();
    let mut paths = Vec::new();
    for s in SCANNED {
        walk(&root.join(s), &mut paths);
    }
    paths
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(&root).ok()?.to_string_lossy().into_owned();
            if rel == SELF {
                return None;
            }
            // Binary files (pictures, corpora) are not prose.
            let text = std::fs::read_to_string(&p).ok()?;
            Some((rel, text))
        })
        .collect()
}

/// Lexically resolves `target` against `dir` (both relative to the root); `None` when it climbs
/// out of the repository.
fn resolve(dir: &Path, target: &str) -> Option<PathBuf> {
    let mut parts: Vec<String> = Vec::new();
    let joined = if let Some(abs) = target.strip_prefix('/') {
        PathBuf::from(abs)
    } else {
        dir.join(target)
    };
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    Some(parts.iter().collect())
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._/-".contains(c)
}

/// Why `line` (of file `rel`) points outside the repository or cites an issue, if it does.
fn problems(rel: &str, line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let lower = line.to_ascii_lowercase();
    if lower.contains("/work/") {
        found.push("names a path on another machine (`/work/…`)".to_owned());
    }
    // `shared/…` as the start of a path (not e.g. "the redis shared/channel routing").
    for (i, _) in lower.match_indices("shared/") {
        let before = lower[..i].chars().next_back();
        let token: String = lower[i..]
            .chars()
            .take_while(|&c| is_path_char(c))
            .collect();
        let deeper = token["shared/".len()..].contains(['/', '.']);
        if deeper && before.is_none_or(|c| " `'\"(/[<".contains(c)) {
            found.push("names a file outside the repository (`shared/…`)".to_owned());
            break;
        }
    }
    if lower.contains("client-protocols") {
        found.push(
            "names the external protocol specification (the wire reference is docs/wire.md)"
                .to_owned(),
        );
    }
    let spec_section = lower.match_indices("spec ").any(|(i, _)| {
        let rest = &lower[i + "spec ".len()..];
        rest.starts_with('§') || rest.starts_with(|c: char| c.is_ascii_digit())
    });
    if spec_section || lower.contains("spec's §") {
        found.push("cites the external specification (cite `docs/wire.md §N`)".to_owned());
    }
    // Any `../` path must stay inside the repository.
    let dir = Path::new(rel).parent().unwrap_or(Path::new(""));
    for (i, _) in line.match_indices("../") {
        if i > 0 && line[..i].ends_with('.') {
            continue; // the second `../` of `../../`, handled with the first
        }
        if i > 0 && line[..i].ends_with(|c: char| is_path_char(c) && c != '/') {
            continue;
        }
        let token: String = line[i..].chars().take_while(|&c| is_path_char(c)).collect();
        if resolve(dir, &token).is_none() {
            found.push(format!("`{token}` leaves the repository"));
        }
    }
    // "issue 7", "issues #3 and #4", "Issue#12".
    let bytes = lower.as_bytes();
    for (i, _) in lower.match_indices("issue") {
        if i > 0 && bytes[i - 1].is_ascii_alphanumeric() {
            continue;
        }
        let mut j = i + "issue".len();
        if bytes.get(j) == Some(&b's') {
            j += 1;
        }
        let mut k = j;
        while bytes.get(k).is_some_and(|b| *b == b' ' || *b == b'#') {
            k += 1;
        }
        if k > j && k - j <= 2 && bytes.get(k).is_some_and(u8::is_ascii_digit) {
            found.push("cites an issue number".to_owned());
            break;
        }
    }
    // "#12" in prose. Not `PKCS#8` (a letter before it), not `#[derive]`, not a colour in a
    // stylesheet or a page.
    let styled = rel.ends_with(".html") || rel.ends_with(".css") || rel.ends_with(".svg");
    if !styled {
        for (i, _) in line.match_indices('#') {
            let before = line[..i].chars().next_back();
            if !before.is_none_or(|c| " ([,`".contains(c)) {
                continue;
            }
            let digits: String = line[i + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let after = line[i + 1 + digits.len()..].chars().next();
            if !digits.is_empty() && !after.is_some_and(|c| c.is_ascii_alphanumeric()) {
                found.push(format!("`#{digits}` reads as an issue number"));
            }
        }
    }
    found
}

#[test]
fn nothing_points_outside_the_repository() {
    let files = scanned_files();
    assert!(
        files.iter().any(|(f, _)| f == "README.md") && files.len() > 50,
        "the scan found too few files: {}",
        files.len()
    );
    let mut report = Vec::new();
    for (rel, text) in &files {
        for (n, line) in text.lines().enumerate() {
            for p in problems(rel, line) {
                report.push(format!("{rel}:{}: {p}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        report.is_empty(),
        "{} references outside the repository or to issue numbers:\n{}",
        report.len(),
        report.join("\n")
    );
}

#[test]
fn the_scanner_tells_references_from_lookalikes() {
    let bad = [
        ("docs/x.md", "see /work/shared/spec/x.md"),
        ("docs/x.md", "where `shared/design/cluster.md` left room"),
        ("README.md", "[spec](../shared/spec.md)"),
        ("src/a.rs", "//! the wire (spec §2.3)"),
        (
            "wscluster.example.toml",
            "# as \"sgc@b64:...\" (spec 1.4); member lists",
        ),
        ("bench/x.rs", "//! `client-protocols.md` §3.4"),
        ("src/a.rs", "// TLS for links is issue 7's"),
        (
            "tests/a.rs",
            "//! Resource exhaustion (Issue #7): a slowloris",
        ),
        ("docs/x.md", "fixed in #12, see also (#3)"),
    ];
    for (f, l) in bad {
        assert!(!problems(f, l).is_empty(), "{f}: {l}");
    }
    let good = [
        (
            "src/a.rs",
            r#"let s = include_str!("../wscluster.example.toml");"#,
        ),
        ("docs/x.md", "routing: shared/channel"),
        (
            "docs/x.md",
            "a PKCS#8 key, RFC 6455 §7.4, `docs/wire.md §2.3`",
        ),
        ("src/a.rs", "#[derive(Debug)] r#\"{}\"#"),
        ("src/ops/status.html", "color: #333;"),
        ("docs/x.md", "an open issue of the client, #define X"),
    ];
    for (f, l) in good {
        assert!(problems(f, l).is_empty(), "{f}: {l}: {:?}", problems(f, l));
    }
}

/// Relative link targets of a Markdown text: `[text](target)`, without the `#anchor`.
fn markdown_links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for (i, _) in line.match_indices("](") {
            let rest = &line[i + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = rest[..end].split_whitespace().next().unwrap_or("");
            let target = target.split('#').next().unwrap_or("");
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            out.push((n + 1, target.to_owned()));
        }
    }
    out
}

#[test]
fn markdown_links_resolve() {
    let root = repo();
    let mut report = Vec::new();
    let mut checked = 0;
    for (rel, text) in scanned_files() {
        if !rel.ends_with(".md") {
            continue;
        }
        let dir = Path::new(&rel).parent().unwrap_or(Path::new("")).to_owned();
        for (n, target) in markdown_links(&text) {
            checked += 1;
            match resolve(&dir, &target) {
                Some(p) if root.join(&p).exists() => {}
                Some(p) => report.push(format!(
                    "{rel}:{n}: `{target}` ({}) does not exist",
                    p.display()
                )),
                None => report.push(format!("{rel}:{n}: `{target}` leaves the repository")),
            }
        }
    }
    assert!(
        checked >= 5,
        "only {checked} links found: is the parser broken?"
    );
    assert!(report.is_empty(), "broken links:\n{}", report.join("\n"));
}

//! Reading the library's source into a graph of module references: comments, strings and char
//! literals blanked, test code cut, `use` trees expanded, paths resolved to the module they name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One module's references: the module path of each `crate::` path it names.
pub(crate) type Graph = std::collections::BTreeMap<Vec<String>, BTreeSet<Vec<String>>>;

/// Every non-test source file of the library under `src`, as its module path and its references.
pub(crate) fn crate_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    collect(src, &mut files);
    let mut test_files = BTreeSet::new();
    let mut parsed = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(src).unwrap_or(file);
        if rel == Path::new("main.rs") || rel.starts_with("cli") || rel.starts_with("bin") {
            continue;
        }
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let (code, test_mods) = cut_test_code(&blank(&text));
        let dir = file.parent().unwrap_or(src).to_path_buf();
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        for m in test_mods {
            // `#[cfg(test)] mod m;` in a/b.rs is a/b/m.rs; in a/mod.rs or lib.rs, a/m.rs
            let base = if stem == "mod" || stem == "lib" {
                dir.clone()
            } else {
                dir.join(&stem)
            };
            test_files.insert(base.join(format!("{m}.rs")));
            test_files.insert(base.join(&m).join("mod.rs"));
        }
        parsed.push((file.clone(), module_path(rel), code));
    }
    let mut graph = Graph::new();
    for (file, module, code) in parsed {
        if test_files.contains(&file) || module.is_empty() {
            continue;
        }
        let refs = graph.entry(module.clone()).or_default();
        for path in paths(&code) {
            if let Some(target) = resolve(&module, &path) {
                refs.insert(target);
            }
        }
    }
    graph
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
}

/// `transport/auth.rs` → `[transport, auth]`; `transport/mod.rs` → `[transport]`; `lib.rs` → `[]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The module path a reference names: `crate::a::b::C` → `[a, b, C]`; `super::x` from
/// `[transport, auth]` → `[transport, x]`. Other paths (external crates, `std`) → `None`.
fn resolve(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let first = path.first()?;
    let mut base: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "super" | "self" => module.to_vec(),
        _ => return None,
    };
    let mut rest = &path[1..];
    if first == "super" {
        base.pop();
    }
    while let Some(seg) = rest.first() {
        match seg.as_str() {
            "super" => {
                base.pop();
            }
            "self" => {}
            _ => break,
        }
        rest = &rest[1..];
    }
    base.extend(rest.iter().filter(|s| s.as_str() != "self").cloned());
    Some(base)
}

/// Blanks comments, string and char literals (keeping the length and the lines).
fn blank(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(if b[i] == '\n' { '\n' } else { ' ' });
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('#') || next == Some('"')) && !ident_before(&b, i) {
            // raw string r#"…"#
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for ch in &b[i..j.min(b.len())] {
                out.push(if *ch == '\n' { '\n' } else { ' ' });
            }
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(if b[i] == '\n' { '\n' } else { ' ' });
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // a char literal ('x', '\n', '\u{1F600}'), not a lifetime ('a)
            let close = if next == Some('\\') {
                (i + 3..b.len().min(i + 12)).find(|&j| b[j] == '\'')
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match close {
                Some(end) => {
                    for _ in i..=end {
                        out.push(' ');
                    }
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

/// Removes `#[cfg(test)]` items; returns the code and the names of `#[cfg(test)] mod x;` files.
fn cut_test_code(code: &str) -> (String, Vec<String>) {
    const MARK: &str = "#[cfg(test)]";
    let mut out = String::new();
    let mut mods = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let item = &rest[at + MARK.len()..];
        let Some(end) = item.find([';', '{']) else {
            rest = "";
            break;
        };
        if item.as_bytes()[end] == b';' {
            let head: Vec<&str> = item[..end].split_whitespace().collect();
            if let Some(pos) = head.iter().position(|w| *w == "mod")
                && let Some(name) = head.get(pos + 1)
            {
                mods.push((*name).to_owned());
            }
            rest = &item[end + 1..];
            continue;
        }
        let mut depth = 0usize;
        let mut close = item.len();
        for (i, ch) in item[end..].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = end + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &item[close..];
    }
    out.push_str(rest);
    (out, mods)
}

/// Every `crate::`/`super::`/`self::` path: the expanded trees of `use` items, then the paths
/// written in the code.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    let mut others = String::new();
    while let Some(at) = find_word(rest, "use") {
        others.push_str(&rest[..at]);
        let item = &rest[at + 3..];
        let Some(end) = item.find(';') else {
            rest = "";
            break;
        };
        expand(&item[..end], &mut Vec::new(), &mut out);
        rest = &item[end + 1..];
    }
    others.push_str(rest);
    let chars: Vec<char> = others.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let at_word = i == 0
            || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_' || chars[i - 1] == ':');
        let word_start = ["crate::", "super::", "self::"]
            .iter()
            .find(|w| others_at(&chars, i, w));
        if at_word && word_start.is_some() {
            let mut path = Vec::new();
            let mut j = i;
            loop {
                let start = j;
                while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                if start == j {
                    break;
                }
                path.push(chars[start..j].iter().collect::<String>());
                if others_at(&chars, j, "::") {
                    j += 2;
                } else {
                    break;
                }
            }
            out.push(path);
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

fn others_at(chars: &[char], i: usize, w: &str) -> bool {
    w.chars()
        .enumerate()
        .all(|(k, c)| chars.get(i + k) == Some(&c))
}

fn find_word(text: &str, word: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(pos) = text[from..].find(word) {
        let at = from + pos;
        let before = at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        let after = bytes
            .get(at + word.len())
            .is_some_and(|c| c.is_ascii_whitespace() || *c == b'{');
        if before && after {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// Expands a use tree (`a::{b, c::{d as e, self}}`) into its paths, `prefix` first.
fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    let tree = tree.strip_prefix("::").unwrap_or(tree);
    match tree.find('{') {
        None => {
            let head = tree.split(" as ").next().unwrap_or("");
            let mut path = prefix.clone();
            path.extend(
                head.split("::")
                    .map(str::trim)
                    .filter(|s| !s.is_empty() && *s != "*")
                    .map(str::to_owned),
            );
            if !path.is_empty() {
                out.push(path);
            }
        }
        Some(open) => {
            let close = tree.rfind('}').unwrap_or(tree.len());
            let head: Vec<String> = tree[..open]
                .split("::")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let len = prefix.len();
            prefix.extend(head);
            let inner = &tree[open + 1..close];
            let mut depth = 0;
            let mut start = 0;
            for (i, ch) in inner.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&inner[start..i], prefix, out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand(&inner[start..], prefix, out);
            prefix.truncate(len);
        }
    }
}

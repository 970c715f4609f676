//! The shape of `src/` and `loadtest/src/`, checked: no two modules of a
//! crate import each other (directly or round a longer loop), `unsafe`
//! lives in `src/sys/` only, and no file has more than 700 lines before
//! its `#[cfg(test)]` module. A module is one file; an import is a
//! `crate::`/`super::`/`self::` path outside comments and `#[cfg(test)]`
//! modules. A module using its parent counts, as does a parent using its
//! child; a re-export (`pub use child::X`) in a parent does not, since it
//! names no path of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The crates checked: their source directory and the stem of their root
/// file (moirai's `src/main.rs` is a crate of its own, which names the
/// library by `moirai::`, so it is an ordinary module here).
fn crates() -> [(PathBuf, &'static str); 2] {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        (root.join("src"), "lib"),
        (root.join("loadtest").join("src"), "main"),
    ]
}

fn module_of(src: &Path, root: &str, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let last = parts.last().map(String::as_str);
    if last == Some("mod") || (parts.len() == 1 && last == Some(root)) {
        parts.pop();
    }
    parts
}

/// The code of a file without comments and without its test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module a path (`super::a::b::Item`) names: its longest prefix that
/// is a module.
fn resolve(all: &BTreeSet<Module>, from: &Module, path: &[&str]) -> Option<Module> {
    let (mut base, rest): (Module, &[&str]) = match *path.first()? {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (from.clone(), &path[1..]),
        "super" => {
            let mut b = from.clone();
            let mut rest = path;
            while rest.first() == Some(&"super") {
                b.pop();
                rest = &rest[1..];
            }
            (b, rest)
        }
        _ => return None,
    };
    for seg in rest {
        let mut next = base.clone();
        next.push(seg.to_string());
        if !all.contains(&next) {
            break;
        }
        base = next;
    }
    all.contains(&base).then_some(base)
}

/// Every `crate|super|self::a::b` path in `code`, `{...}` groups expanded
/// one level.
fn paths(code: &str) -> Vec<Vec<&str>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    for start in ["crate::", "super::", "self::"] {
        let mut at = 0;
        while let Some(i) = code[at..].find(start) {
            let i = at + i;
            at = i + start.len();
            if i > 0 && (word(bytes[i - 1]) || bytes[i - 1] == b':') {
                continue;
            }
            let mut end = i;
            while end < bytes.len() && (word(bytes[end]) || bytes[end] == b':') {
                end += 1;
            }
            let prefix: Vec<&str> = code[i..end].split("::").filter(|s| !s.is_empty()).collect();
            if code[end..].starts_with('{') {
                let close = code[end..].find('}').map_or(code.len(), |c| end + c);
                for item in code[end + 1..close].split(',') {
                    let first = item.trim().split("::").next().unwrap_or("").trim();
                    let first = first.split_whitespace().next().unwrap_or("");
                    if !first.is_empty() && first != "self" {
                        let mut p = prefix.clone();
                        p.push(first);
                        out.push(p);
                    }
                }
            } else {
                out.push(prefix);
            }
        }
    }
    out
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let mut loops = Vec::new();
    let mut all_edges = Vec::new();
    for (src, root) in crates() {
        let mut list = Vec::new();
        files(&src, &mut list);
        let all: BTreeSet<Module> = list.iter().map(|f| module_of(&src, root, f)).collect();
        let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
        for f in &list {
            let from = module_of(&src, root, f);
            let text = code(&std::fs::read_to_string(f).unwrap());
            let deps = edges.entry(from.clone()).or_default();
            for p in paths(&text) {
                if let Some(m) = resolve(&all, &from, &p) {
                    if m != from {
                        deps.insert(m);
                    }
                }
            }
        }
        // A loop is a module that reaches itself.
        for start in edges.keys() {
            let mut seen = BTreeSet::new();
            let mut todo: Vec<&Module> = edges[start].iter().collect();
            while let Some(m) = todo.pop() {
                if m == start {
                    loops.push(format!("{}: {}", src.display(), start.join("::")));
                    break;
                }
                if seen.insert(m) {
                    todo.extend(edges.get(m).into_iter().flatten());
                }
            }
        }
        all_edges.push(edges);
    }
    assert!(loops.is_empty(), "modules on an import loop: {loops:?}");
    // The check sees imports at all: the engine's worker uses its sessions,
    // and loadtest's comparison starts its systems through `launch`.
    let m = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Module>();
    assert!(all_edges[0][&m(&["engine", "worker"])].contains(&m(&["engine", "http"])));
    assert!(all_edges[1][&m(&["compare"])].contains(&m(&["launch"])));
}

/// Files allowed over [`MAX_LINES`] for now; each must still be over it,
/// so the list only shrinks. Empty: a file that grows past the limit is
/// split along a seam, not listed.
const OVER_700_ALLOWED: &[&str] = &[];

/// The most lines a file may have before its `#[cfg(test)]` module
/// (comments and blank lines count: they are read too).
const MAX_LINES: usize = 700;

#[test]
fn files_stay_under_700_lines_before_their_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut over = Vec::new();
    for (src, _) in crates() {
        let mut list = Vec::new();
        files(&src, &mut list);
        for f in list {
            let text = std::fs::read_to_string(&f).unwrap();
            let text = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => &text[..i],
                None => &text,
            };
            let n = text.lines().count();
            if n > MAX_LINES {
                let rel = f.strip_prefix(root).unwrap().display().to_string();
                over.push((rel, n));
            }
        }
    }
    let unlisted: Vec<&(String, usize)> = over
        .iter()
        .filter(|(f, _)| !OVER_700_ALLOWED.contains(&f.as_str()))
        .collect();
    assert!(
        unlisted.is_empty(),
        "over {MAX_LINES} lines before the tests (split along a seam): {unlisted:?}"
    );
    let shrunk: Vec<&&str> = OVER_700_ALLOWED
        .iter()
        .filter(|a| !over.iter().any(|(f, _)| f == **a))
        .collect();
    assert!(
        shrunk.is_empty(),
        "no longer over {MAX_LINES} lines: take them off OVER_700_ALLOWED: {shrunk:?}"
    );
}

#[test]
fn unsafe_code_lives_in_sys_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut list = Vec::new();
    for (dir, _) in crates() {
        files(&dir, &mut list);
    }
    let outside: Vec<String> = list
        .iter()
        .filter(|f| !f.starts_with(src.join("sys")))
        .filter(|f| {
            let text = code(&std::fs::read_to_string(f).unwrap());
            text.contains("unsafe {") || text.contains("unsafe fn") || text.contains("unsafe impl")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(outside.is_empty(), "unsafe outside src/sys: {outside:?}");
}

#[test]
fn the_http2_codec_does_no_io() {
    // What would let `proto/h2` touch a socket, the clock or a thread.
    const FORBIDDEN: [&str; 13] = [
        "std::net",
        "io::Read",
        "io::Write",
        "TcpStream",
        "UdpSocket",
        "mio::",
        "crate::sys",
        "Instant::now",
        "SystemTime::now",
        "std::thread",
        "thread::spawn",
        "std::fs",
        "libc::",
    ];
    let found = |text: &str| FORBIDDEN.iter().find(|f| text.contains(*f)).copied();
    // The check bites.
    assert_eq!(
        found("let s = std::net::TcpStream::connect(a);"),
        Some("std::net")
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/proto/h2");
    let mut list = Vec::new();
    files(&dir, &mut list);
    assert!(list.len() > 5, "no codec files in {}", dir.display());
    // Modules compiled for tests only (`#[cfg(test)] mod x;`, or
    // `pub(crate) mod x;` for the engine's tests) may use the clock to
    // drive the codec.
    let root = std::fs::read_to_string(dir.join("mod.rs")).unwrap();
    let test_only: Vec<String> = root
        .split("#[cfg(test)]\n")
        .skip(1)
        .filter_map(|s| {
            let s = s.strip_prefix("pub(crate) ").unwrap_or(s);
            let (m, _) = s.strip_prefix("mod ")?.split_once(';')?;
            Some(format!("{m}.rs"))
        })
        .collect();
    let bad: Vec<String> = list
        .iter()
        .filter(|f| !test_only.iter().any(|t| f.ends_with(t)))
        .filter_map(|f| {
            let text = code(&std::fs::read_to_string(f).unwrap());
            found(&text).map(|what| format!("{}: {what}", f.display()))
        })
        .collect();
    assert!(bad.is_empty(), "I/O in src/proto/h2: {bad:?}");
}

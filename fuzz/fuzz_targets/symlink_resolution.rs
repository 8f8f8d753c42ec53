//! Resolution beneath a root without following links (`rpc_server::files::beneath`):
//! random trees of directories, files and links (relative, absolute, pointing up, out,
//! at themselves) in a temporary directory, and random paths through them.
//!
//! Input: a count byte n, n triples building the tree under `root/` (kind and link target,
//! parent directory, name), then one byte per component of the path to resolve; a set top
//! bit on the count byte also removes the tree at the path's first component. Beside
//! `root/` lies `outside/`, which every operation must leave as it was.
//! Invariants: no panic; whatever resolves (a directory, a file opened for reading, an
//! entry met by a walk, a directory made on the way) is the very inode that the path
//! names beneath the root, reached through real directories only: never a link, never
//! anything outside; a path of real directories always resolves; `outside/` is untouched.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};

#[path = "../../rpc-server/src/files/beneath.rs"]
#[allow(dead_code)]
mod beneath;

const NAMES: [&str; 4] = ["a", "b", "c", "d"];
/// Components of the path to resolve, the refused kinds included.
const COMPONENTS: [&str; 10] = ["a", "b", "c", "d", "..", ".", "", "a/b", "/", "a\0"];
/// Link targets; `@tmp`, `@out` and `@root` stand for the absolute paths of the temporary
/// directory, `outside/` and `root/`. Absolute links stay inside the temporary directory:
/// a bug that followed one must show up as a failed invariant, not as damage to the host.
const TARGETS: [&str; 16] = [
    "..",
    "../..",
    "../outside",
    "../../outside",
    "@tmp",
    "@out",
    "@out/f",
    "@root",
    "a",
    "a/b",
    ".",
    "../a",
    "@out/g",
    "missing",
    "@root/a",
    "../outside/f",
];

fn identity(m: &fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// What `comps` names below `root` when no link is followed: the path, or `None` if a
/// component is not a plain name or a parent is not a real directory.
fn plain(root: &Path, comps: &[&str]) -> Option<PathBuf> {
    let mut p = root.to_path_buf();
    for (i, c) in comps.iter().enumerate() {
        if c.is_empty() || *c == "." || *c == ".." || c.contains(['/', '\0']) {
            return None;
        }
        p.push(c);
        if i + 1 < comps.len() && !fs::symlink_metadata(&p).ok()?.file_type().is_dir() {
            return None;
        }
    }
    Some(p)
}

/// Every path below `dir` with its identity and kind, links as links.
fn snapshot(dir: &Path, out: &mut Vec<(PathBuf, (u64, u64), bool)>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let Ok(m) = fs::symlink_metadata(e.path()) else {
            continue;
        };
        out.push((e.path(), identity(&m), m.file_type().is_symlink()));
        if m.file_type().is_dir() {
            snapshot(&e.path(), out);
        }
    }
    out.sort();
}

fuzz_target!(|data: &[u8]| {
    let [count, rest @ ..] = data else { return };
    let remove = count & 0x80 != 0;
    let n = usize::from(count & 0x7F) % 24;
    if rest.len() < 3 * n {
        return;
    }
    let (ops, path) = rest.split_at(3 * n);
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    let out = tmp.path().join("outside");
    fs::create_dir_all(out.join("g")).expect("outside");
    fs::write(out.join("f"), "outside").expect("outside file");
    fs::create_dir(&root).expect("root");

    let mut dirs = vec![root.clone()];
    for op in ops.chunks_exact(3) {
        let parent = dirs[usize::from(op[1]) % dirs.len()].clone();
        let at = parent.join(NAMES[usize::from(op[2]) % NAMES.len()]);
        match op[0] % 3 {
            0 => {
                if fs::create_dir(&at).is_ok() {
                    dirs.push(at);
                }
            }
            1 => {
                let _ = fs::write(&at, "inside");
            }
            _ => {
                let t = TARGETS[usize::from(op[0] / 3) % TARGETS.len()];
                let t = t
                    .replace("@tmp", &tmp.path().to_string_lossy())
                    .replace("@out", &out.to_string_lossy())
                    .replace("@root", &root.to_string_lossy());
                let _ = symlink(t, &at);
            }
        }
    }
    let comps: Vec<&str> = path
        .iter()
        .take(12)
        .map(|b| COMPONENTS[usize::from(*b) % COMPONENTS.len()])
        .collect();
    let mut outside_before = Vec::new();
    snapshot(&out, &mut outside_before);

    let root_fd = beneath::open_root(&root).expect("open root");
    let root_fd = root_fd.as_fd();

    // A directory.
    let named = plain(&root, &comps);
    let real_dir = named
        .as_ref()
        .and_then(|p| fs::symlink_metadata(p).ok())
        .filter(|m| m.file_type().is_dir());
    match beneath::open_dir(root_fd, &comps) {
        Ok(fd) => {
            let got = fs::File::from(fd).metadata().expect("fstat");
            let want = real_dir.as_ref().unwrap_or_else(|| {
                panic!("{comps:?} resolved, but it is not a plain directory path")
            });
            assert_eq!(identity(&got), identity(want), "{comps:?}");
        }
        Err(e) => assert!(real_dir.is_none(), "{comps:?}: real directory refused: {e}"),
    }

    // A file (or directory) opened for reading in its parent.
    if let Some((leaf, parents)) = comps.split_last()
        && let Ok(dir) = beneath::open_dir(root_fd, parents)
        && let Ok(f) = beneath::open_read(dir.as_fd(), leaf)
    {
        let got = f.metadata().expect("fstat");
        let p = named.as_ref().expect("opened a path that is not plain");
        let want = fs::symlink_metadata(p).expect("lstat");
        assert!(!want.file_type().is_symlink(), "{comps:?}: opened a link");
        assert_eq!(identity(&got), identity(&want), "{comps:?}");
    }

    // Everything a walk meets.
    let walked = beneath::walk(root_fd, 8, 10_000, &|_| false, &mut |rel, entry| {
        let rel: Vec<&str> = rel.iter().map(String::as_str).collect();
        let p = plain(&root, &rel).expect("walked a path that is not plain");
        let want = fs::symlink_metadata(&p).expect("lstat");
        assert!(!want.file_type().is_symlink(), "walk met a link at {rel:?}");
        assert_eq!(entry.is_dir(), want.file_type().is_dir());
        if let Ok(f) = entry.open() {
            let got = f.metadata().expect("fstat");
            assert_eq!(identity(&got), identity(&want), "{rel:?}");
        }
        beneath::Step::Continue
    });
    walked.expect("walk");

    // Directories made on the way, then maybe the tree at the first component removed.
    if let Ok((fd, _)) = beneath::open_dir_create(root_fd, &comps) {
        let got = fs::File::from(fd).metadata().expect("fstat");
        let p = plain(&root, &comps).expect("made a path that is not plain");
        let want = fs::symlink_metadata(&p).expect("lstat");
        assert!(want.file_type().is_dir(), "{comps:?}");
        assert_eq!(identity(&got), identity(&want), "{comps:?}");
    }
    if remove && let Some(first) = comps.first() {
        let _ = beneath::remove_tree(root_fd, first);
    }

    let mut outside_after = Vec::new();
    snapshot(&out, &mut outside_after);
    assert_eq!(outside_before, outside_after, "outside/ changed");
});

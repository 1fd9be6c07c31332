//! The one walker: every file, symlink and directory below the given roots,
//! in a stable order, never following symlinks.
//!
//! Two uses share it: [`walk()`] for `survey`/`ldd` (many roots, errors
//! collected, `fix`'s temp files skipped, a file reached twice kept once) and
//! [`walk_nar`] for the closure (one store path exactly as Nix serialises it
//! in a NAR: every entry, symlink targets read, the first error ends it).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// What marks the name of a temporary file of `fix`
/// (`.NAME.unfarm-tmp-PID-RAND`). Defined here, not with the writer, so that
/// the walker, which skips such files, needs nothing from the write side.
pub const TMP_MARK: &str = ".unfarm-tmp-";

/// True for the name of one of our temporary files (`.NAME.unfarm-tmp-…`).
pub fn is_temp_name(name: &std::ffi::OsStr) -> bool {
    let n = name.to_string_lossy();
    n.starts_with('.') && n.contains(TMP_MARK)
}

/// What a walked entry is (from `lstat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A symbolic link (never followed).
    Symlink,
    /// A directory.
    Dir,
    /// FIFO, socket, device node: never read.
    Special,
}

/// One walked entry, from its `lstat`.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    /// The path, below (or equal to) the root it was reached from.
    pub path: PathBuf,
    /// What it is.
    pub kind: EntryKind,
    /// Its name in its parent directory (a NAR `entry`); `None` for a root.
    #[serde(skip)]
    pub name: Option<OsString>,
    /// Size in bytes (regular files).
    pub size: u64,
    /// Owner-executable (regular files): NAR's `executable` flag.
    #[serde(skip)]
    pub executable: bool,
    /// The symlink's target, read by [`walk_nar`] only (`survey` reads the
    /// links it needs itself).
    #[serde(skip)]
    pub link_target: Option<OsString>,
    /// Number of hard links (regular files).
    pub nlink: u64,
    /// Device and inode, to see one file reached twice.
    #[serde(skip)]
    pub dev_ino: (u64, u64),
}

/// An entry that could not be read, with a one-line reason.
#[derive(Clone, Debug, Serialize, thiserror::Error)]
#[error("{path}: {message}")]
pub struct WalkError {
    /// The entry that could not be read.
    pub path: PathBuf,
    /// Why, as one phrase.
    pub message: String,
}

/// Why [`walk_nar`] failed, naming the entry.
#[derive(Debug, thiserror::Error)]
pub enum NarWalkError {
    /// An entry could not be `lstat`ed, listed or its link read.
    // The io::Error is deliberately not a `#[source]`: the message already
    // includes it, and `{:#}` chains would print it twice.
    #[error("{}: {err}", path.display())]
    Io {
        /// The entry.
        path: PathBuf,
        /// The failed call's error.
        err: std::io::Error,
    },
    /// A FIFO, socket or device: a NAR cannot hold it.
    #[error("{}: unsupported file type (not a regular file, directory or symlink)", path.display())]
    Unsupported {
        /// The entry.
        path: PathBuf,
    },
}

/// How a walk treats what it meets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// [`walk`]: skip `fix`'s temp files; links' targets are not read.
    Survey,
    /// [`walk_nar`]: every entry as a NAR has it; links' targets read;
    /// FIFOs, sockets, devices are errors (a NAR cannot hold them).
    Nar,
}

/// What went wrong at one entry, before each walk words it its own way.
#[derive(Debug)]
enum Failure {
    Stat(std::io::Error),
    ReadLink(std::io::Error),
    ListDir(std::io::Error),
    ListEntry(std::io::Error),
    Unsupported,
}

/// A failure at `path`.
type Failed = (PathBuf, Failure);

impl Failure {
    /// As the survey reports it.
    fn walk_error(self, path: PathBuf) -> WalkError {
        let message = match self {
            Failure::Stat(e) | Failure::ReadLink(e) => io_message(&e),
            Failure::ListDir(e) => format!("cannot list directory: {}", io_message(&e)),
            Failure::ListEntry(e) => format!("cannot list directory: {e}"),
            Failure::Unsupported => "unsupported file type".into(),
        };
        WalkError { path, message }
    }

    /// As the closure reports it.
    fn nar_error(self, path: PathBuf) -> NarWalkError {
        match self {
            Failure::Stat(err)
            | Failure::ReadLink(err)
            | Failure::ListDir(err)
            | Failure::ListEntry(err) => NarWalkError::Io { path, err },
            Failure::Unsupported => NarWalkError::Unsupported { path },
        }
    }
}

/// The root to walk for a path given on the command line: a symlink is
/// followed to what it names, as `nix` and `ldd` do with `./result`, so the
/// walk sees the store path itself (links met inside are never followed).
/// Only the argument's own links are resolved, not its parent dirs'.
pub fn argument_root(arg: &Path) -> Result<PathBuf, WalkError> {
    let fail = |message: String| WalkError {
        path: arg.to_owned(),
        message,
    };
    let mut p = arg.to_owned();
    for _ in 0..crate::farm::MAX_HOPS {
        let meta = std::fs::symlink_metadata(&p).map_err(|e| fail(io_message(&e)))?;
        if !meta.file_type().is_symlink() {
            return Ok(p);
        }
        let target = std::fs::read_link(&p).map_err(|e| fail(io_message(&e)))?;
        p = match p.parent() {
            _ if target.is_absolute() => target,
            Some(dir) => dir.join(target),
            None => target,
        };
        // `..` after a link is only right on the real path.
        if p.components().any(|c| c == std::path::Component::ParentDir) {
            return std::fs::canonicalize(&p).map_err(|e| fail(io_message(&e)));
        }
    }
    Err(fail("too many levels of symbolic links".into()))
}

/// An I/O error as one plain phrase: "No such file or directory", without
/// Rust's " (os error 2)" tail.
pub fn io_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_owned(),
        _ => s,
    }
}

/// Walk `roots` (files or directories). A root that is a symlink is reported
/// as a symlink and not followed.
pub fn walk(roots: &[PathBuf]) -> (Vec<Entry>, Vec<WalkError>) {
    let (mut entries, mut errors) = (Vec::new(), Vec::new());
    let roots: Vec<(PathBuf, Option<OsString>)> = roots.iter().map(|r| (r.clone(), None)).collect();
    visit_all(&roots, Mode::Survey, &mut entries, &mut errors);
    // Nested or repeated roots (`fix out out/lib`), or one dir reached under
    // two spellings, must not yield a file twice: two edits of one file race.
    // (Several names of one inode are hard links, for `--hard-links`.)
    let mut paths = std::collections::HashSet::new();
    let mut single_links = std::collections::HashSet::new();
    entries.retain(|e| {
        paths.insert(e.path.clone())
            && (e.kind == EntryKind::Dir || e.nlink > 1 || single_links.insert(e.dev_ino))
    });
    let mut failed = std::collections::HashSet::new();
    errors.retain(|e| failed.insert(e.0.clone()));
    let errors = errors.into_iter().map(|(p, f)| f.walk_error(p)).collect();
    (entries, errors)
}

/// The tree under one store path as Nix serialises it (`nix-store --dump`):
/// every entry, with entry names, executable bits and symlink targets, in
/// NAR order (names sorted bytewise), nothing skipped or merged. The first
/// entry is `root`. Fails on the first entry that cannot be read or that a
/// NAR cannot hold.
pub fn walk_nar(root: &Path) -> Result<Vec<Entry>, NarWalkError> {
    let (mut entries, mut errors) = (Vec::new(), Vec::new());
    visit(root, None, Mode::Nar, &mut entries, &mut errors);
    match errors.into_iter().next() {
        Some((path, f)) => Err(f.nar_error(path)),
        None => Ok(entries),
    }
}

fn visit(
    path: &Path,
    name: Option<OsString>,
    mode: Mode,
    entries: &mut Vec<Entry>,
    errors: &mut Vec<Failed>,
) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let fail = |f: Failure| (path.to_owned(), f);
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return errors.push(fail(Failure::Stat(e))),
    };
    let ft = meta.file_type();
    let kind = if ft.is_symlink() {
        EntryKind::Symlink
    } else if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_file() {
        EntryKind::File
    } else {
        EntryKind::Special
    };
    let link_target = match (mode, kind) {
        (Mode::Nar, EntryKind::Symlink) => match std::fs::read_link(path) {
            Ok(t) => Some(t.into_os_string()),
            Err(e) => return errors.push(fail(Failure::ReadLink(e))),
        },
        (Mode::Nar, EntryKind::Special) => return errors.push(fail(Failure::Unsupported)),
        _ => None,
    };
    let is_file = kind == EntryKind::File;
    entries.push(Entry {
        path: path.to_owned(),
        kind,
        name,
        size: if is_file { meta.len() } else { 0 },
        executable: is_file && meta.permissions().mode() & 0o100 != 0,
        link_target,
        nlink: meta.nlink(),
        dev_ino: (meta.dev(), meta.ino()),
    });
    if kind != EntryKind::Dir {
        return;
    }
    let rd = match std::fs::read_dir(path) {
        Ok(rd) => rd,
        Err(e) => return errors.push(fail(Failure::ListDir(e))),
    };
    let mut children: Vec<(PathBuf, Option<OsString>)> = Vec::new();
    for de in rd {
        match de {
            // A temp file of `fix` (`.NAME.unfarm-tmp-PID-RAND`, maybe left by
            // a killed run) is not part of the output: `fix` removes it.
            Ok(de) if mode == Mode::Survey && is_temp_name(&de.file_name()) => {}
            Ok(de) => children.push((de.path(), Some(de.file_name()))),
            Err(e) => errors.push(fail(Failure::ListEntry(e))),
        }
    }
    // Siblings share a parent, so this is bytewise by name: NAR order.
    children.sort();
    visit_all(&children, mode, entries, errors);
}

/// Visit `paths` in parallel (roots, or siblings: a store output is wide,
/// thousands of files in a few dirs); the results keep the order of `paths`.
fn visit_all(
    paths: &[(PathBuf, Option<OsString>)],
    mode: Mode,
    entries: &mut Vec<Entry>,
    errors: &mut Vec<Failed>,
) {
    use rayon::prelude::*;
    let each: Vec<(Vec<Entry>, Vec<Failed>)> = paths
        .par_iter()
        .map(|(p, name)| {
            let (mut e, mut er) = (Vec::new(), Vec::new());
            visit(p, name.clone(), mode, &mut e, &mut er);
            (e, er)
        })
        .collect();
    for (e, er) in each {
        entries.extend(e);
        errors.extend(er);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_without_following_links() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::fs::write(r.join("a/b/f"), b"123").unwrap();
        std::os::unix::fs::symlink(r.join("a"), r.join("a/b/up")).unwrap();
        let (e, err) = walk(&[r.join("a")]);
        assert!(err.is_empty());
        let kinds: Vec<_> = e
            .iter()
            .map(|e| (e.path.strip_prefix(r).unwrap().to_owned(), e.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("a".into(), EntryKind::Dir),
                ("a/b".into(), EntryKind::Dir),
                ("a/b/f".into(), EntryKind::File),
                ("a/b/up".into(), EntryKind::Symlink),
            ]
        );
        assert_eq!(e[2].size, 3);
        let (_, err) = walk(&[r.join("missing")]);
        assert_eq!(err.len(), 1);
    }

    /// A NAR walk keeps what a NAR holds: names, executable bits, link
    /// targets, `fix`'s temp files; a FIFO ends it.
    #[test]
    fn nar_walk_has_what_a_nar_holds() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("out");
        std::fs::create_dir_all(r.join("bin")).unwrap();
        std::fs::write(r.join("bin/p"), b"#!").unwrap();
        std::fs::set_permissions(r.join("bin/p"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(r.join("bin/.p.unfarm-tmp-1-2"), b"").unwrap();
        std::os::unix::fs::symlink("bin/p", r.join("link")).unwrap();
        let e = walk_nar(&r).unwrap();
        let got: Vec<_> = e
            .iter()
            .map(|e| (e.name.clone(), e.kind, e.executable, e.link_target.clone()))
            .collect();
        let n = |s: &str| Some(OsString::from(s));
        assert_eq!(
            got,
            vec![
                (None, EntryKind::Dir, false, None),
                (n("bin"), EntryKind::Dir, false, None),
                (n(".p.unfarm-tmp-1-2"), EntryKind::File, false, None),
                (n("p"), EntryKind::File, true, None),
                (n("link"), EntryKind::Symlink, false, n("bin/p")),
            ]
        );
        let fifo = r.join("bin/fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(matches!(walk_nar(&r), Err(NarWalkError::Unsupported { path }) if path == fifo));
        assert!(matches!(
            walk_nar(&t.path().join("missing")),
            Err(NarWalkError::Io { .. })
        ));
    }

    /// Nested and repeated roots, and a dir reached under a second spelling
    /// (through a symlinked parent), yield each file and symlink once.
    #[test]
    fn a_file_reached_twice_is_walked_once() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("out/lib")).unwrap();
        std::fs::write(r.join("out/lib/libx.so"), b"x").unwrap();
        std::fs::write(r.join("out/lib/liby.so"), b"y").unwrap();
        std::os::unix::fs::symlink("libx.so", r.join("out/lib/libx.so.1")).unwrap();
        std::os::unix::fs::symlink(r.join("out"), r.join("alias")).unwrap();
        let (e, err) = walk(&[
            r.join("out"),
            r.join("out/lib"),
            r.join("out"),
            r.join("alias/lib"),
            r.join("missing"),
            r.join("missing"),
        ]);
        assert_eq!(err.len(), 1, "{err:?}");
        let files: Vec<_> = e
            .iter()
            .filter(|e| e.kind != EntryKind::Dir)
            .map(|e| e.path.strip_prefix(r).unwrap().to_owned())
            .collect();
        assert_eq!(
            files,
            vec![
                PathBuf::from("out/lib/libx.so"),
                "out/lib/libx.so.1".into(),
                "out/lib/liby.so".into()
            ]
        );
    }
}

//! The Nix store model: the store dir, store path names, and which store path a
//! file lives in. Pure string logic; nothing here touches the disk.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Nix's base32 alphabet (no e, o, u, t).
pub const NIX_BASE32: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";
/// Length of the hash part of a store path name.
pub const HASH_LEN: usize = 32;
/// The store dir when neither `--store-dir` nor `NIX_STORE` says otherwise.
pub(crate) const DEFAULT_STORE_DIR: &str = "/nix/store";

/// True for a byte of Nix's base32 alphabet.
pub const fn is_base32(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'd' | b'f'..=b'n' | b'p'..=b's' | b'v'..=b'z')
}

/// True for a byte allowed in a store path name (after the hash and dash).
pub(crate) fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.' | b'_' | b'?' | b'=')
}

/// An I/O error at a path of the store dir (listing it, reading a link or
/// an entry in it).
#[derive(Debug, thiserror::Error)]
#[error("{}: {err}", path.display())]
pub struct PathIoError {
    /// The path.
    pub path: PathBuf,
    /// The failed call's error.
    pub err: std::io::Error,
}

/// A store dir such as `/nix/store`: absolute, no trailing slash.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoreDir(PathBuf);

impl StoreDir {
    /// A store dir from a path; trailing slashes and `.` components are dropped.
    /// The path is not canonicalised: Nix compares store paths textually.
    pub fn new(path: impl AsRef<Path>) -> Self {
        let p: PathBuf = path
            .as_ref()
            .components()
            .filter(|c| !matches!(c, Component::CurDir))
            .collect();
        StoreDir(p)
    }

    /// `explicit` if given, else `$NIX_STORE`, else `/nix/store`.
    pub fn from_env(explicit: Option<&Path>) -> Self {
        match explicit {
            Some(p) => StoreDir::new(p),
            None => match std::env::var_os("NIX_STORE") {
                Some(v) if !v.is_empty() => StoreDir::new(PathBuf::from(v)),
                _ => StoreDir::new(DEFAULT_STORE_DIR),
            },
        }
    }

    /// The store dir itself (`/nix/store`).
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Every entry of the store dir named like a store path
    /// (`<hash>-<name>`), in directory order: the one listing the closure
    /// scan, the cost model and `check` index hash parts from. A store dir
    /// that does not exist holds nothing; one that cannot be read is an
    /// error, never taken as empty (that would hide every reference).
    pub fn list(&self) -> Result<Vec<StorePath>, PathIoError> {
        let io = |err| PathIoError {
            path: self.0.clone(),
            err,
        };
        let rd = match std::fs::read_dir(&self.0) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            r => r.map_err(io)?,
        };
        let mut out = Vec::new();
        for e in rd {
            out.extend(self.store_path_of(&e.map_err(io)?.path()));
        }
        Ok(out)
    }

    /// The store path that `path` lies in, if any. `path` must be absolute and is
    /// taken textually (callers pass paths after resolving `..`).
    pub fn store_path_of(&self, path: &Path) -> Option<StorePath> {
        let rest = path.strip_prefix(&self.0).ok()?;
        let first = rest.components().next()?;
        let Component::Normal(name) = first else {
            return None;
        };
        let name = name.to_str()?;
        StorePath::parse_name(name).map(|(hash, n)| StorePath {
            path: self.0.join(name),
            hash: hash.to_owned(),
            name: n.to_owned(),
        })
    }

    /// True when `path` lies inside this store dir (at any depth, even below a
    /// name that is not a valid store path name).
    pub(crate) fn contains(&self, path: &Path) -> bool {
        path.starts_with(&self.0) && path != self.0
    }
}

impl fmt::Display for StoreDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.display().fmt(f)
    }
}

/// A store path `/nix/store/<hash>-<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorePath {
    /// The full path, `<store dir>/<hash>-<name>`.
    pub path: PathBuf,
    /// The 32-character hash part, what Nix's reference scanner looks for.
    pub hash: String,
    /// The name after the dash, e.g. `cuda_cudart-12.4-lib`.
    pub name: String,
}

impl StorePath {
    /// Split a store path base name into (hash, name), validating both.
    pub(crate) fn parse_name(base: &str) -> Option<(&str, &str)> {
        let bytes = base.as_bytes();
        if bytes.len() < HASH_LEN + 2 || bytes[HASH_LEN] != b'-' {
            return None;
        }
        let (hash, name) = (&base[..HASH_LEN], &base[HASH_LEN + 1..]);
        if !hash.bytes().all(is_base32) {
            return None;
        }
        if name.starts_with('.') || !name.bytes().all(is_name_byte) {
            return None;
        }
        Some((hash, name))
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.path.display().fmt(f)
    }
}

/// Lexically normalise an absolute path: drop `.`, apply `..` textually.
/// Used for symlink targets before asking which store path they name; the
/// caller is responsible for the semantics of `..` through symlinks (the farm
/// model resolves component by component and only calls this on real dirs).
pub(crate) fn normalize_lexically(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if out.parent().is_some() {
                    out.pop();
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "0123456789abcdfghijklmnpqrsvwxyz";

    #[test]
    fn alphabet_matches_predicate() {
        for b in 0u8..=255 {
            assert_eq!(is_base32(b), NIX_BASE32.contains(&b), "byte {b}");
        }
    }

    #[test]
    fn parses_store_paths() {
        let sd = StoreDir::new("/nix/store/");
        let p = format!("/nix/store/{H}-cuda_cudart-12.4-lib/lib/libcudart.so.12");
        let sp = sd.store_path_of(Path::new(&p)).unwrap();
        assert_eq!(sp.hash, H);
        assert_eq!(sp.name, "cuda_cudart-12.4-lib");
        assert_eq!(
            sp.path,
            PathBuf::from(format!("/nix/store/{H}-cuda_cudart-12.4-lib"))
        );
    }

    #[test]
    fn rejects_bad_names() {
        let sd = StoreDir::new("/nix/store");
        // 'e' is not in the alphabet
        let bad = "/nix/store/e123456789abcdfghijklmnpqrsvwxyz-x";
        assert!(sd.store_path_of(Path::new(bad)).is_none());
        assert!(
            sd.store_path_of(Path::new(&format!("/nix/store/{H}-.hidden")))
                .is_none()
        );
        assert!(
            sd.store_path_of(Path::new(&format!("/nix/store/{H}-a b")))
                .is_none()
        );
        assert!(
            sd.store_path_of(Path::new(&format!("/nix/store/{H}-")))
                .is_none()
        );
        assert!(
            sd.store_path_of(Path::new(&format!("/elsewhere/{H}-x")))
                .is_none()
        );
        assert!(sd.store_path_of(Path::new("/nix/store")).is_none());
    }

    #[test]
    fn store_dir_from_env_prefers_explicit() {
        let sd = StoreDir::from_env(Some(Path::new("/tmp/s/")));
        assert_eq!(sd.path(), Path::new("/tmp/s"));
    }

    #[test]
    fn lexical_normalisation() {
        assert_eq!(
            normalize_lexically(Path::new("/a/b/../c/./d")),
            PathBuf::from("/a/c/d")
        );
        assert_eq!(normalize_lexically(Path::new("/../a")), PathBuf::from("/a"));
    }

    /// The one listing: store paths only, an absent dir is empty, and a
    /// store dir that cannot be listed is an error, not an empty store.
    #[test]
    fn list_keeps_store_paths_and_reports_an_unreadable_dir() {
        let d = tempfile::tempdir().unwrap();
        for name in [
            format!("{H}-foo-1.0"),
            ".links".to_owned(),
            "tmp".to_owned(),
        ] {
            std::fs::create_dir(d.path().join(name)).unwrap();
        }
        let store = StoreDir::new(d.path());
        let names: Vec<String> = store
            .list()
            .unwrap()
            .into_iter()
            .map(|sp| sp.name)
            .collect();
        assert_eq!(names, ["foo-1.0"]);
        assert!(
            StoreDir::new(d.path().join("absent"))
                .list()
                .unwrap()
                .is_empty()
        );
        // A file where the dir should be: listing fails (as an unreadable dir
        // does for a user without permission; the tests may run as root).
        let file = d.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = StoreDir::new(&file).list().unwrap_err();
        assert_eq!(err.path, file);
        assert!(
            err.to_string()
                .starts_with(&format!("{}: ", file.display())),
            "{err}"
        );
    }
}

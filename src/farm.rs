//! What a farm is, in one place: [`is_farm`] (a store path that is
//! almost all links into other store paths), and the hop-by-hop model the
//! loader and the survey follow through one: resolve a path the way the
//! kernel does, one component at a time, recording every symlink hop and the store path it lands in. A hop is
//! *cross-path* when it leaves the store path it starts in; a directory whose
//! entries are reached through cross-path hops is *indirect* (a farm is the
//! typical case).

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::store::{PathIoError, StoreDir, StorePath, normalize_lexically};

/// Linux's limit on symlinks followed while resolving one path.
pub(crate) const MAX_HOPS: usize = 40;

/// One symlink followed during resolution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hop {
    /// The symlink, as a path whose parent is already resolved (no symlinks).
    pub link: PathBuf,
    /// The link's target text, as stored.
    pub target: PathBuf,
    /// Where the target points, made absolute and normalised lexically.
    pub lands: PathBuf,
    /// The store path holding the link, if any.
    pub from: Option<PathBuf>,
    /// The store path the target names, if any.
    pub to: Option<PathBuf>,
}

impl Hop {
    /// True when the hop leaves the store path it starts in (or enters or
    /// leaves the store).
    pub(crate) fn is_cross_path(&self) -> bool {
        self.from != self.to
    }
}

/// A path resolved component by component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Resolved {
    /// The path as asked.
    pub path: PathBuf,
    /// Every symlink followed, in order (directory components included).
    pub hops: Vec<Hop>,
    /// The final path with no symlink in any component.
    pub real: PathBuf,
}

impl Resolved {
    /// True when any hop on the way is cross-path.
    pub(crate) fn crosses(&self) -> bool {
        self.hops.iter().any(Hop::is_cross_path)
    }
}

/// Why a path could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// A component of the path does not exist.
    #[error("{path}: not found ({missing} does not exist)")]
    NotFound {
        /// The path asked about.
        path: PathBuf,
        /// The first prefix that does not exist.
        missing: PathBuf,
    },
    /// More than `MAX_HOPS` symlinks were followed.
    #[error("{path}: symlink loop (more than {MAX_HOPS} links followed)")]
    Loop {
        /// The path asked about.
        path: PathBuf,
    },
    /// A non-final component is not a directory.
    #[error("{path}: {at} is not a directory")]
    NotADirectory {
        /// The path asked about.
        path: PathBuf,
        /// The component that is not a directory.
        at: PathBuf,
    },
    /// A component could not be read.
    #[error("{path}: {at}: {message}")]
    Io {
        /// The path asked about.
        path: PathBuf,
        /// The component that failed.
        at: PathBuf,
        /// The system's error message.
        message: String,
    },
}

impl ResolveError {
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(
            self,
            ResolveError::NotFound { .. } | ResolveError::NotADirectory { .. }
        )
    }
}

/// Directories already seen to be real (no symlink, a directory): a run
/// resolves thousands of paths under the same few dirs, and need not `lstat`
/// each of their components again. Only for the length of one run.
#[derive(Debug, Default)]
pub(crate) struct RealDirs(std::sync::RwLock<std::collections::HashSet<PathBuf>>);

impl RealDirs {
    fn contains(&self, p: &Path) -> bool {
        self.0.read().is_ok_and(|s| s.contains(p))
    }

    fn insert(&self, p: &Path) {
        if let Ok(mut s) = self.0.write() {
            s.insert(p.to_owned());
        }
    }
}

/// Resolve `path` (absolute) hop by hop. The result's `real` exists.
pub fn resolve(path: &Path, store: &StoreDir) -> Result<Resolved, ResolveError> {
    resolve_with(path, store, None)
}

/// [`resolve`], skipping the `lstat` of directories `known` has seen.
pub(crate) fn resolve_with(
    path: &Path,
    store: &StoreDir,
    known: Option<&RealDirs>,
) -> Result<Resolved, ResolveError> {
    let mut pending: Vec<OsString> = Vec::new(); // stack, next component last
    push_components(&mut pending, path);
    let mut real = PathBuf::from("/");
    let mut hops = Vec::new();
    while let Some(comp) = pending.pop() {
        if comp == ".." {
            real.pop();
            continue;
        }
        if comp == "." || comp.is_empty() {
            continue;
        }
        let candidate = real.join(&comp);
        if !pending.is_empty() && known.is_some_and(|k| k.contains(&candidate)) {
            real = candidate;
            continue;
        }
        let meta = match std::fs::symlink_metadata(&candidate) {
            Ok(m) => m,
            Err(e) => return Err(io_error(path, &candidate, e)),
        };
        if meta.file_type().is_symlink() {
            if hops.len() >= MAX_HOPS {
                return Err(ResolveError::Loop {
                    path: path.to_owned(),
                });
            }
            let target =
                std::fs::read_link(&candidate).map_err(|e| io_error(path, &candidate, e))?;
            let lands = if target.is_absolute() {
                normalize_lexically(&target)
            } else {
                normalize_lexically(&real.join(&target))
            };
            hops.push(Hop {
                from: store_root(store, &candidate),
                to: store_root(store, &lands),
                link: candidate,
                target: target.clone(),
                lands,
            });
            if target.is_absolute() {
                real = PathBuf::from("/");
            }
            push_components(&mut pending, &target);
        } else {
            if !pending.is_empty() && !meta.is_dir() {
                return Err(ResolveError::NotADirectory {
                    path: path.to_owned(),
                    at: candidate,
                });
            }
            if meta.is_dir()
                && let Some(k) = known
            {
                k.insert(&candidate);
            }
            real = candidate;
        }
    }
    Ok(Resolved {
        path: path.to_owned(),
        hops,
        real,
    })
}

fn store_root(store: &StoreDir, p: &Path) -> Option<PathBuf> {
    store.store_path_of(p).map(|sp: StorePath| sp.path)
}

fn push_components(stack: &mut Vec<OsString>, p: &Path) {
    let comps: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    stack.extend(comps.into_iter().rev());
}

fn io_error(path: &Path, at: &Path, e: io::Error) -> ResolveError {
    match e.kind() {
        io::ErrorKind::NotFound => ResolveError::NotFound {
            path: path.to_owned(),
            missing: at.to_owned(),
        },
        io::ErrorKind::NotADirectory => ResolveError::NotADirectory {
            path: path.to_owned(),
            at: at.to_owned(),
        },
        _ if e.raw_os_error() == Some(libc::ELOOP) => ResolveError::Loop {
            path: path.to_owned(),
        },
        _ => ResolveError::Io {
            path: path.to_owned(),
            at: at.to_owned(),
            message: e.to_string(),
        },
    }
}

/// The *real dir* of name `name` reached as `resolved` (the resolution of
/// `<some dir>/<name>`): the first directory along the chain that holds a
/// file of that very name which resolves to the same real file without any
/// cross-path hop. `libcublas.so.12 -> libcublas.so.12.4.5.8` inside one
/// output keeps that output's lib dir.
pub(crate) fn real_dir(resolved: &Resolved, name: &str, store: &StoreDir) -> Option<PathBuf> {
    // Candidate parents: the dir of each link on the way, then the final file's.
    let mut parents: Vec<&Path> = resolved
        .hops
        .iter()
        .filter_map(|h| h.link.parent())
        .collect();
    parents.extend(resolved.real.parent());
    let mut seen: Vec<&Path> = Vec::new();
    for dir in parents {
        if seen.contains(&dir) {
            continue;
        }
        seen.push(dir);
        let cand = dir.join(name);
        if let Ok(r) = resolve(&cand, store)
            && r.real == resolved.real
            && !r.crosses()
        {
            return Some(dir.to_owned());
        }
    }
    None
}

// ---------------------------------------------------------------------------
// What a farm is.

/// Files other than links into other store paths a farm may hold (outside
/// `nix-support/`): a `symlinkJoin` whose `postBuild` wrote a file or two
/// is still a farm.
const FARM_OTHER_FILES: usize = 8;

/// True when the tree at `path` is a symlink farm: a store path whose tree
/// is (almost) all links into other store paths. Outside `nix-support/`: at
/// least one link into another store path, and the other files (regular
/// files, links out of the store) at most `FARM_OTHER_FILES` and at most
/// one for every ten such links. An output holding a few links into other
/// outputs beside its own files is not a farm. Links inside it
/// (`libfoo.so -> libfoo.so.1`, a dir link) are hops, not files. The one
/// definition of a farm: `why`, `check` and the survey's directory links
/// use it; the planner agrees for the outputs' own dirs, which are never a
/// farm (`plan::PlanInput::is_own_dir`). Stops once the other files rule
/// it out (a real output is mostly regular files, and may be large).
pub fn is_farm(store_dir: &StoreDir, path: &Path) -> Result<bool, PathIoError> {
    let own = store_dir.store_path_of(path).map(|p| p.path);
    let (mut links, mut others) = (0usize, 0usize);
    let mut stack = vec![path.to_owned()];
    while let Some(p) = stack.pop() {
        let io = |err| PathIoError {
            path: p.clone(),
            err,
        };
        let md = std::fs::symlink_metadata(&p).map_err(io)?;
        let ft = md.file_type();
        if ft.is_symlink() {
            let target = std::fs::read_link(&p).map_err(io)?;
            let dir = p.parent().unwrap_or(Path::new("/"));
            let abs = normalize_lexically(&dir.join(target));
            match store_dir.store_path_of(&abs) {
                Some(sp) if Some(&sp.path) != own.as_ref() => links += 1,
                // A hop inside the farm (`libfoo.so -> libfoo.so.1`): what it
                // names is walked in its own right.
                Some(_) => {}
                None => others += 1,
            }
        } else if ft.is_dir() {
            if p.strip_prefix(path)
                .is_ok_and(|r| r == Path::new("nix-support"))
            {
                continue;
            }
            for e in std::fs::read_dir(&p).map_err(io)? {
                stack.push(e.map_err(io)?.path());
            }
        } else {
            others += 1;
        }
        if others > FARM_OTHER_FILES {
            return Ok(false);
        }
    }
    Ok(links > 0 && others * 10 <= links)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const HA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const HB: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const HF: &str = "ffffffffffffffffffffffffffffffff";

    fn setup() -> (tempfile::TempDir, StoreDir, PathBuf, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        let store = StoreDir::new(root.join("store"));
        let a = store.path().join(format!("{HA}-foo-lib"));
        let b = store.path().join(format!("{HB}-foo-dev"));
        let f = store.path().join(format!("{HF}-farm"));
        std::fs::create_dir_all(a.join("lib")).unwrap();
        std::fs::create_dir_all(b.join("lib")).unwrap();
        std::fs::create_dir_all(f.join("lib")).unwrap();
        std::fs::write(a.join("lib/libfoo.so.1.2"), b"x").unwrap();
        symlink("libfoo.so.1.2", a.join("lib/libfoo.so.1")).unwrap();
        symlink(a.join("lib/libfoo.so.1"), f.join("lib/libfoo.so.1")).unwrap();
        (t, store, a, b, f)
    }

    #[test]
    fn hops_through_farm_and_versioned_link() {
        let (_t, store, a, _b, f) = setup();
        let r = resolve(&f.join("lib/libfoo.so.1"), &store).unwrap();
        assert_eq!(r.real, a.join("lib/libfoo.so.1.2"));
        assert_eq!(r.hops.len(), 2);
        assert!(r.hops[0].is_cross_path());
        assert!(!r.hops[1].is_cross_path());
        assert!(r.crosses());
        assert_eq!(real_dir(&r, "libfoo.so.1", &store), Some(a.join("lib")));
    }

    #[test]
    fn relative_links_and_symlinked_dirs() {
        let (_t, store, a, _b, f) = setup();
        // farm2/lib is itself a (relative) link to the farm's lib dir.
        let f2 = store.path().join(format!("{HB}-farm2"));
        std::fs::create_dir_all(&f2).unwrap();
        symlink(format!("../{HF}-farm/lib"), f2.join("lib")).unwrap();
        let r = resolve(&f2.join("lib/libfoo.so.1"), &store).unwrap();
        assert_eq!(r.real, a.join("lib/libfoo.so.1.2"));
        assert_eq!(r.hops.len(), 3);
        assert_eq!(r.hops[0].to.as_deref(), Some(f.as_path()));
        assert_eq!(real_dir(&r, "libfoo.so.1", &store), Some(a.join("lib")));
    }

    #[test]
    fn loops_and_missing() {
        let (_t, store, _a, _b, f) = setup();
        symlink("loop2", f.join("lib/loop1")).unwrap();
        symlink("loop1", f.join("lib/loop2")).unwrap();
        assert!(matches!(
            resolve(&f.join("lib/loop1"), &store),
            Err(ResolveError::Loop { .. })
        ));
        let e = resolve(&f.join("lib/nope.so"), &store).unwrap_err();
        assert!(e.is_not_found());
        symlink("missing-target", f.join("lib/dangling")).unwrap();
        assert!(
            resolve(&f.join("lib/dangling"), &store)
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn link_to_link_inside_farm() {
        let (_t, store, a, _b, f) = setup();
        // farm/lib/libfoo.so.1.2 -> a's file; farm/lib/libalias.so.1 -> libfoo.so.1.2 (inside farm)
        symlink(a.join("lib/libfoo.so.1.2"), f.join("lib/libfoo.so.1.2")).unwrap();
        symlink("libfoo.so.1.2", f.join("lib/libalias.so.1")).unwrap();
        let r = resolve(&f.join("lib/libalias.so.1"), &store).unwrap();
        assert_eq!(r.real, a.join("lib/libfoo.so.1.2"));
        // No dir outside the farm offers that name.
        assert_eq!(real_dir(&r, "libalias.so.1", &store), None);
        let r = resolve(&f.join("lib/libfoo.so.1.2"), &store).unwrap();
        assert_eq!(real_dir(&r, "libfoo.so.1.2", &store), Some(a.join("lib")));
    }
}

//! A snapshot of the library directories a plan may touch: for every entry of
//! every directory, where it leads (hops, real file), what it is (ELF ident,
//! SONAME, stub or not) and its real dir. Gathered once per run from disk
//! ([`Gatherer`]), then read by the pure planner through [`Probe`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;
use serde::Serialize;

use crate::elf::{self, ElfIdent, ObjectType};
use crate::farm::{self, Resolved};
use crate::resolve::{Candidate, Probe, judge};
use crate::store::StoreDir;

/// What one directory entry offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Offer {
    /// How the entry resolves; None when dangling, a loop, or unreadable.
    pub resolved: Option<Resolved>,
    /// Loader-relevant facts of the real file, when it is ELF.
    pub elf: Option<(ElfIdent, ObjectType)>,
    /// Why ld.so would stop at this entry (not ELF, too short), if it would.
    pub fatal: Option<String>,
    pub soname: Option<String>,
    /// The real file lies in a stub location (`stubs` dir or `-stubs` output).
    pub is_stub: bool,
    /// The dir outside every indirect dir that offers this very name.
    pub real_dir: Option<PathBuf>,
}

impl Offer {
    /// Reached through a cross-path hop (a farm link, or a link into another output).
    pub fn crosses(&self) -> bool {
        self.resolved.as_ref().is_some_and(Resolved::crosses)
    }

    /// A shared library offered under its SONAME or as the regular file itself:
    /// what a program may load from this dir. Linker names (`libfoo.so` ->
    /// `libfoo.so.1.2`), archives and stubs are not.
    pub fn is_loadable_library(&self, name: &str) -> bool {
        let Some(r) = &self.resolved else {
            return false;
        };
        if self.is_stub || !matches!(self.elf, Some((_, ObjectType::Dyn))) {
            return false;
        }
        let own_name = r.real.file_name().is_some_and(|n| n == name);
        self.soname.as_deref() == Some(name) || own_name
    }
}

/// One directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DirSnapshot {
    pub exists: bool,
    pub entries: BTreeMap<String, Offer>,
    /// Only some names were looked up (a fallback dir: see
    /// [`Gatherer::gather_names`]); absent names may still exist on disk.
    pub partial: bool,
}

/// Every directory a plan may look into. (Hashed: the planner looks dirs up
/// by path many times per object, and comparing paths component by component
/// in a tree was the survey's hottest code.)
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub dirs: HashMap<PathBuf, DirSnapshot>,
}

impl Snapshot {
    pub fn dir(&self, dir: &Path) -> Option<&DirSnapshot> {
        self.dirs.get(dir)
    }

    pub fn offer(&self, path: &Path) -> Option<&Offer> {
        let dir = path.parent()?;
        let name = path.file_name()?.to_str()?;
        self.dirs.get(dir)?.entries.get(name)
    }
}

impl Probe for Snapshot {
    fn probe(&self, path: &Path, want: &ElfIdent) -> Candidate {
        let Some(o) = self.offer(path) else {
            return Candidate::Missing;
        };
        let Some(resolved) = o.resolved.clone() else {
            return Candidate::Missing;
        };
        if let Some(why) = &o.fatal {
            return Candidate::Fatal {
                resolved: Some(resolved),
                reason: why.clone(),
            };
        }
        match o.elf {
            Some((ident, t)) => judge(resolved, ident, t, want),
            None => Candidate::Missing,
        }
    }
}

/// True for a path in a stub location: a `stubs` component, or a store path
/// whose name ends in `-stubs`.
pub fn is_stub_location(path: &Path, store: &StoreDir) -> bool {
    let in_stubs_dir = path
        .components()
        .any(|c| matches!(c, Component::Normal(s) if s == "stubs"));
    in_stubs_dir
        || store
            .store_path_of(path)
            .is_some_and(|sp| sp.name.ends_with("-stubs"))
}

/// ELF ident and type, SONAME, and why ld.so would refuse the file.
type FileFacts = (
    Option<(ElfIdent, ObjectType)>,
    Option<String>,
    Option<String>,
);

/// Above this many names, [`Gatherer::gather_names`] lists the directory.
const LIST_ABOVE: usize = 32;

/// Reads directories from disk into a [`Snapshot`], caching per real file.
pub struct Gatherer {
    store: StoreDir,
    real_dirs: farm::RealDirs,
    soname_cache: Mutex<HashMap<PathBuf, FileFacts>>,
}

impl Gatherer {
    pub fn new(store: StoreDir) -> Self {
        Gatherer {
            store,
            real_dirs: farm::RealDirs::default(),
            soname_cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &StoreDir {
        &self.store
    }

    /// Add `dirs` to the snapshot, and then every real dir their entries lead
    /// to (a plan may put those in the search path, so it must see them).
    pub fn gather(&self, snap: &mut Snapshot, dirs: impl IntoIterator<Item = PathBuf>) {
        // In waves: the dirs known so far in parallel, then the real dirs
        // their entries lead to.
        let mut todo: Vec<PathBuf> = dirs.into_iter().collect();
        while !todo.is_empty() {
            todo.sort();
            todo.dedup();
            todo.retain(|d| !snap.dirs.contains_key(d));
            let wave: Vec<(PathBuf, DirSnapshot)> = std::mem::take(&mut todo)
                .into_par_iter()
                .map(|d| {
                    let ds = self.read_dir(&d);
                    (d, ds)
                })
                .collect();
            for (d, ds) in wave {
                todo.extend(ds.entries.values().filter_map(|o| o.real_dir.clone()));
                snap.dirs.insert(d, ds);
            }
        }
    }

    /// Add `dir` with only the entries among `names` (a dir the loader falls
    /// back to: plans search it by name but never list or replace it, so the
    /// rest of a large system dir need not be read). No-op if already there.
    pub fn gather_names(&self, snap: &mut Snapshot, dir: PathBuf, names: &BTreeSet<String>) {
        if snap.dirs.contains_key(&dir) {
            return;
        }
        let exists = dir.is_dir();
        // Many names: list the dir once (names only, no stat) and look up
        // just those it holds, rather than a failed lookup per absent name.
        let listed: Option<BTreeSet<String>> = (exists && names.len() > LIST_ABOVE)
            .then(|| std::fs::read_dir(&dir).ok())
            .flatten()
            .map(|rd| {
                rd.flatten()
                    .filter_map(|de| de.file_name().to_str().map(str::to_owned))
                    .filter(|n| names.contains(n))
                    .collect()
            });
        let entries = if exists {
            listed
                .as_ref()
                .unwrap_or(names)
                .iter()
                .filter(|n| !n.contains('/'))
                .filter_map(|n| {
                    let p = dir.join(n);
                    let meta = std::fs::symlink_metadata(&p).ok()?;
                    (!meta.is_dir()).then(|| (n.clone(), self.offer(&p, n)))
                })
                .collect()
        } else {
            BTreeMap::new()
        };
        snap.dirs.insert(
            dir,
            DirSnapshot {
                exists,
                entries,
                partial: true,
            },
        );
    }

    fn read_dir(&self, dir: &Path) -> DirSnapshot {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return DirSnapshot::default();
        };
        let names: Vec<String> = rd
            .flatten()
            // Directories are not libraries; skip them cheaply.
            .filter(|de| !de.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|de| de.file_name().to_str().map(str::to_owned))
            .collect();
        let entries = names
            .into_par_iter()
            .map(|name| {
                let offer = self.offer(&dir.join(&name), &name);
                (name, offer)
            })
            .collect();
        DirSnapshot {
            exists: true,
            entries,
            partial: false,
        }
    }

    fn offer(&self, path: &Path, name: &str) -> Offer {
        let resolved = match farm::resolve_with(path, &self.store, Some(&self.real_dirs)) {
            Ok(r) => r,
            Err(_) => {
                return Offer {
                    resolved: None,
                    elf: None,
                    fatal: None,
                    soname: None,
                    is_stub: false,
                    real_dir: None,
                };
            }
        };
        let (elf, soname, fatal) = self.file_facts(&resolved.real);
        let is_stub = is_stub_location(&resolved.real, &self.store);
        let real_dir = if resolved.crosses() {
            farm::real_dir(&resolved, name, &self.store)
        } else {
            path.parent().map(Path::to_owned)
        };
        Offer {
            resolved: Some(resolved),
            elf,
            fatal,
            soname,
            is_stub,
            real_dir,
        }
    }

    /// Record the facts of a file already read (the survey's own objects),
    /// so that gathering a dir holding it does not read it again.
    pub fn know(&self, real: &Path, facts: &elf::ElfFacts) {
        let soname = facts
            .soname
            .clone()
            .filter(|_| facts.object_type == ObjectType::Dyn);
        self.soname_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                real.to_owned(),
                (Some((facts.ident, facts.object_type)), soname, None),
            );
    }

    fn file_facts(&self, real: &Path) -> FileFacts {
        if let Some(v) = self
            .soname_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(real)
        {
            return v.clone();
        }
        let v = read_file_facts(real);
        self.soname_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(real.to_owned(), v.clone());
        v
    }
}

#[allow(clippy::type_complexity)]
fn read_file_facts(
    real: &Path,
) -> (
    Option<(ElfIdent, ObjectType)>,
    Option<String>,
    Option<String>,
) {
    // One open and read: the header decides, the same bytes give the SONAME.
    let bytes = match elf::FileBytes::open_sniffed(real, None) {
        Ok(elf::Sniffed::Elf(b)) => b,
        Ok(elf::Sniffed::Other { head }) if head.len() < 52 => {
            return (None, None, Some("file too short".into()));
        }
        Ok(elf::Sniffed::Other { .. }) => return (None, None, Some("invalid ELF header".into())),
        Err(e) => {
            let why = match e {
                elf::ElfError::Io { source, .. } => source.to_string(),
                e => e.reason(),
            };
            return (None, None, Some(format!("cannot read file data: {why}")));
        }
    };
    let head = bytes.head(64);
    if head.len() < 52 {
        return (None, None, Some("file too short".into()));
    }
    let Some((ident, t)) = elf::read_ident(&head) else {
        return (None, None, Some("invalid ELF header".into()));
    };
    let soname = if t == ObjectType::Dyn {
        bytes.facts().ok().and_then(|f| f.soname)
    } else {
        None
    };
    (Some((ident, t)), soname, None)
}

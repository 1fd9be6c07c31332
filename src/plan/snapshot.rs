//! A snapshot of the library directories a plan may touch: for every entry of
//! every directory, where it leads (hops, real file), what it is (ELF ident,
//! SONAME, stub or not) and its real dir. Pure data: gathered once per run
//! from disk by the survey (`survey::gather`, the I/O edge), then read by the
//! pure planner through `loader::resolve::Probe`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::elf::{ElfIdent, ObjectType};
use crate::farm::Resolved;
use crate::loader::resolve::{Candidate, Probe, judge};
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
    /// The real file's DT_SONAME, when it has one.
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

/// A library name a dir offers that resolves to a stub.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StubOffer {
    /// The name in the dir (`libcuda.so`, `libcuda.so.1`).
    pub name: String,
    /// The stub file it resolves to.
    pub stub: PathBuf,
}

/// One directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DirSnapshot {
    /// The dir exists (as a dir).
    pub exists: bool,
    /// What each name in it offers.
    pub entries: BTreeMap<String, Offer>,
    /// Only some names were looked up (a fallback dir, which the survey
    /// gathers for the names plans may ask for); absent names may still
    /// exist on disk.
    pub partial: bool,
}

impl DirSnapshot {
    /// The libraries this dir offers that resolve to a stub (by any name,
    /// directly or through links: a library that resolves to a stub is a
    /// stub, whatever dir offered it), each with the stub file it reaches.
    pub fn stubs(&self) -> Vec<StubOffer> {
        self.entries
            .iter()
            .filter(|(n, o)| o.is_stub && n.contains(".so"))
            .filter_map(|(n, o)| {
                Some(StubOffer {
                    name: n.clone(),
                    stub: o.resolved.as_ref()?.real.clone(),
                })
            })
            .collect()
    }

    /// This dir's snapshot as read under another name `dir` of the same real
    /// dir, reached without symlinks: only the spelling-dependent parts
    /// change (each entry's path as asked, and the real dir of an entry
    /// reached without leaving its store path, which is the dir as named).
    pub(crate) fn respelled(&self, dir: &Path) -> DirSnapshot {
        let mut ds = self.clone();
        for (name, o) in ds.entries.iter_mut() {
            if let Some(r) = &mut o.resolved {
                r.path = dir.join(name);
                if !r.crosses() {
                    o.real_dir = Some(dir.to_owned());
                }
            }
        }
        ds
    }
}

/// Every directory a plan may look into. (Hashed: the planner looks dirs up
/// by path many times per object, and comparing paths component by component
/// in a tree was the survey's hottest code.)
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Each dir, by its path as searched.
    pub dirs: HashMap<PathBuf, DirSnapshot>,
}

impl Snapshot {
    /// The dir at `dir`, if gathered.
    pub fn dir(&self, dir: &Path) -> Option<&DirSnapshot> {
        self.dirs.get(dir)
    }

    /// What the entry at `path` offers, if its dir was gathered.
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
pub(crate) fn is_stub_location(path: &Path, store: &StoreDir) -> bool {
    let in_stubs_dir = path
        .components()
        .any(|c| matches!(c, Component::Normal(s) if s == "stubs"));
    in_stubs_dir
        || store
            .store_path_of(path)
            .is_some_and(|sp| sp.name.ends_with("-stubs"))
}

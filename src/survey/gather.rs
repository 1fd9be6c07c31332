//! The I/O edge of the snapshot: read the directories plans may touch from
//! disk into a [`Snapshot`] (the pure data the planner reads), resolving
//! every entry hop by hop and reading each real file's ELF ident and SONAME
//! once per run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::elf::{self, ElfIdent, ObjectType};
use crate::farm;
use crate::plan::snapshot::{DirSnapshot, Offer, Snapshot, is_stub_location};
use crate::store::StoreDir;

/// ELF ident and type, SONAME, and why ld.so would refuse the file.
type FileFacts = (
    Option<(ElfIdent, ObjectType)>,
    Option<String>,
    Option<String>,
);

/// Above this many names, [`Gatherer::gather_names`] lists the directory.
const LIST_ABOVE: usize = 32;

/// Reads directories from disk into a [`Snapshot`], caching per real file.
pub(crate) struct Gatherer {
    store: StoreDir,
    real_dirs: farm::RealDirs,
    soname_cache: Mutex<HashMap<PathBuf, FileFacts>>,
}

impl Gatherer {
    /// A gatherer for files under `store`, with empty caches.
    pub(crate) fn new(store: StoreDir) -> Self {
        Gatherer {
            store,
            real_dirs: farm::RealDirs::default(),
            soname_cache: Mutex::new(HashMap::new()),
        }
    }

    /// Add `dirs` to the snapshot, and then every real dir their entries lead
    /// to (a plan may put those in the search path, so it must see them).
    pub(crate) fn gather(&self, snap: &mut Snapshot, dirs: impl IntoIterator<Item = PathBuf>) {
        // In waves: the dirs known so far in parallel, then the real dirs
        // their entries lead to.
        let mut todo: Vec<PathBuf> = dirs.into_iter().collect();
        while !todo.is_empty() {
            todo.sort();
            todo.dedup();
            todo.retain(|d| !snap.dirs.contains_key(d));
            // `$ORIGIN/../lib` from `bin/` and from `lib/` name one dir three
            // ways: read it once, under its real name, and copy it.
            let mut aliases: Vec<(PathBuf, PathBuf)> = Vec::new();
            let mut read: Vec<PathBuf> = Vec::new();
            for d in std::mem::take(&mut todo) {
                match self.other_spelling_of(&d) {
                    Some(real) => {
                        read.push(real.clone());
                        aliases.push((d, real));
                    }
                    None => read.push(d),
                }
            }
            read.sort();
            read.dedup();
            read.retain(|d| !snap.dirs.contains_key(d));
            let wave: Vec<(PathBuf, DirSnapshot)> = read
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
            for (d, real) in aliases {
                if let Some(ds) = snap.dirs.get(&real).map(|r| r.respelled(&d)) {
                    snap.dirs.insert(d, ds);
                }
            }
        }
    }

    /// The real dir that `dir`, spelled with `.` or `..`, names when no
    /// symlink lies on the way (then its entries resolve exactly as the real
    /// dir's do, hop for hop).
    fn other_spelling_of(&self, dir: &Path) -> Option<PathBuf> {
        if !dir
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        {
            return None;
        }
        let r = farm::resolve_with(dir, &self.store, Some(&self.real_dirs)).ok()?;
        (r.hops.is_empty() && r.real != dir && r.real.is_dir()).then_some(r.real)
    }

    /// Add `dir` with only the entries among `names` (a dir the loader falls
    /// back to: plans search it by name but never list or replace it, so the
    /// rest of a large system dir need not be read). No-op if already there.
    pub(crate) fn gather_names(&self, snap: &mut Snapshot, dir: PathBuf, names: &BTreeSet<String>) {
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
    pub(crate) fn know(&self, real: &Path, facts: &elf::ElfFacts) {
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

/// The size of an ELF32 header, the shorter of the two: ld.so refuses a
/// file shorter than this as "file too short".
const ELF32_HEADER_LEN: usize = 52;

/// The size of an ELF64 header: enough to read either class's ident.
const ELF64_HEADER_LEN: usize = 64;

/// What [`Gatherer::file_facts`] caches: read from disk, with ld.so's words
/// for a file it would refuse.
fn read_file_facts(real: &Path) -> FileFacts {
    // One open: the header decides, the same file gives the SONAME.
    let bytes = match elf::FileBytes::open(real, None, elf::Use::Facts) {
        Ok(elf::Sniffed::Elf(b)) => b,
        Ok(elf::Sniffed::Other { head }) if head.len() < ELF32_HEADER_LEN => {
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
    let head = bytes.head(ELF64_HEADER_LEN);
    if head.len() < ELF32_HEADER_LEN {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A library larger than the whole-read size gets its SONAME from its
    /// headers alone (this test's own libc, copied).
    #[test]
    fn large_library_soname_is_read_by_range() {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let libc = maps
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|p| p.contains("/libc.so.6"))
            .expect("this test links glibc");
        let t = tempfile::tempdir().unwrap();
        let lib = t.path().join("libc.so.6");
        std::fs::copy(libc, &lib).unwrap();
        assert!(std::fs::metadata(&lib).unwrap().len() > 64 << 10);
        let (elf, soname, fatal) = read_file_facts(&lib);
        assert_eq!(fatal, None);
        assert_eq!(elf.map(|(_, t)| t), Some(ObjectType::Dyn));
        assert_eq!(soname.as_deref(), Some("libc.so.6"));
    }

    /// A dir spelled `bin/../lib` is read once, as `lib`, and copied: the
    /// copy must equal reading it under that spelling.
    #[test]
    fn other_spellings_equal_reading_them() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        let store = StoreDir::new(root.join("store"));
        let out = store.path().join("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-app");
        let dep = store.path().join("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-dep");
        for d in [out.join("bin"), out.join("lib"), dep.join("lib")] {
            std::fs::create_dir_all(d).unwrap();
        }
        let elf = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        std::fs::write(out.join("lib/libown.so.1"), &elf[..4096]).unwrap();
        std::fs::write(dep.join("lib/libdep.so.2"), &elf[..4096]).unwrap();
        std::fs::write(out.join("lib/notes.txt"), b"text").unwrap();
        // Same-dir link, cross-path link, dangling link.
        symlink("libown.so.1", out.join("lib/libown.so")).unwrap();
        symlink(dep.join("lib/libdep.so.2"), out.join("lib/libdep.so.2")).unwrap();
        symlink("missing.so", out.join("lib/libgone.so")).unwrap();

        // (`lib/.` is `lib` to `Path`: equal and hashed alike.)
        let spellings = [out.join("bin/../lib"), out.join("lib/./../lib")];
        let g = Gatherer::new(store.clone());
        let mut snap = Snapshot::default();
        g.gather(&mut snap, spellings.iter().cloned());
        for d in &spellings {
            assert_eq!(
                g.other_spelling_of(d).as_deref(),
                Some(out.join("lib").as_path())
            );
            let direct = Gatherer::new(store.clone()).read_dir(d);
            assert_eq!(snap.dir(d), Some(&direct), "{}", d.display());
            assert_eq!(direct.entries.len(), 5);
        }
        // The real dir and the real dirs its entries lead to were read too.
        assert!(snap.dir(&out.join("lib")).is_some());
        assert!(snap.dir(&dep.join("lib")).is_some());
        // A spelling through a symlink is read as itself.
        symlink(out.join("lib"), out.join("lib64")).unwrap();
        assert_eq!(g.other_spelling_of(&out.join("lib64/../lib")), None);
        assert_eq!(g.other_spelling_of(&out.join("lib")), None);
    }
}

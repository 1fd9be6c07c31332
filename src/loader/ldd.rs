//! `unfarm ldd`: what each ELF file loads and from where, as ld.so would
//! resolve it, with the search entry that served each need and every farm hop.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::elf::{self, ElfFacts};
use crate::farm::Hop;
use crate::loader::computed::{Computed, Recogniser};
use crate::loader::resolve::{
    self, FsProbe, LoaderConfig, NeedResolution, Requester, SearchDir, Tried,
};
use crate::walk::{self, EntryKind};

/// Options for [`ldd`].
#[derive(Clone, Debug, Default)]
pub struct LddOptions {
    /// The loader to model (search defaults, cache, hwcaps).
    pub loader: LoaderConfig,
    /// Follow dependencies of dependencies, as ld.so loads them (breadth first).
    pub recursive: bool,
}

/// The report for all files asked about.
#[derive(Debug, Serialize)]
pub struct LddReport {
    /// One report per ELF file asked about, in order.
    pub files: Vec<FileReport>,
    /// Files that could not be read, one line each.
    pub errors: Vec<String>,
}

/// One ELF file and its needs.
#[derive(Debug, Serialize)]
pub struct FileReport {
    pub(crate) path: PathBuf,
    pub(crate) class: elf::Class,
    pub(crate) byte_order: elf::ByteOrder,
    pub(crate) machine: String,
    pub(crate) object_type: elf::ObjectType,
    pub(crate) interpreter: Option<String>,
    pub(crate) soname: Option<String>,
    pub(crate) runpath: Option<String>,
    pub(crate) rpath: Option<String>,
    pub(crate) nodeflib: bool,
    /// The loader modelled for this file: `nix` or `host`.
    pub(crate) loader: resolve::LoaderModel,
    /// Its needs, in load order.
    pub needs: Vec<NeedReport>,
    /// Names it builds at run time and `dlopen()`s (`loader::computed`),
    /// resolved from it after its needs are loaded.
    pub computed: Vec<ComputedReport>,
}

/// A name a recogniser found, and how it resolves.
#[derive(Debug, Serialize)]
pub struct ComputedReport {
    /// Which recogniser found it.
    pub recogniser: Recogniser,
    /// What in the file says so.
    pub evidence: String,
    /// How it resolves (`needs` always empty).
    #[serde(flatten)]
    pub need: NeedReport,
}

/// How one need resolved; the JSON strings are in `docs/ldd-json.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeedStatus {
    /// Found by the search.
    Found,
    /// Satisfied by an object already in the process (no search).
    AlreadyLoaded,
    /// No directory of the search had a usable file.
    NotFound,
    /// Not on a library's own search path, but one of glibc's: the glibc
    /// of whatever program loads the library provides it
    /// ([`resolve::provided_by_process`]).
    FromProcessGlibc,
    /// ld.so stops with an error (see `NeedReport::error`).
    Error,
}

impl NeedStatus {
    /// The word shown to users, the same as the JSON string.
    pub fn as_str(self) -> &'static str {
        match self {
            NeedStatus::Found => "found",
            NeedStatus::AlreadyLoaded => "already-loaded",
            NeedStatus::NotFound => "not-found",
            NeedStatus::FromProcessGlibc => "from-process-glibc",
            NeedStatus::Error => "error",
        }
    }

    /// True when ld.so would fail to start the program over this need.
    pub fn is_failure(self) -> bool {
        matches!(self, NeedStatus::NotFound | NeedStatus::Error)
    }
}

named_by_as_str!(NeedStatus);

/// How one need resolved.
#[derive(Debug, Serialize)]
pub struct NeedReport {
    /// The needed name (a soname or a path).
    pub name: String,
    /// Whether and how it resolved.
    pub status: NeedStatus,
    /// The search entry that served it (source, index, text, expanded dir).
    pub(crate) entry: Option<SearchDir>,
    /// The path ld.so opened (`dir/name`).
    pub(crate) path: Option<PathBuf>,
    /// Symlinks followed from `path` to `real`; `cross_path` marks farm hops.
    pub(crate) hops: Vec<HopReport>,
    /// The real file, with no symlink in any component.
    pub real: Option<PathBuf>,
    /// The loader's error message, when status is `error`.
    pub(crate) error: Option<String>,
    /// Candidates tried before the result (all of them when not found).
    pub(crate) tried: Vec<Tried>,
    /// With `--recursive`: the needs of this library, when first loaded here.
    pub(crate) needs: Vec<NeedReport>,
}

#[derive(Debug, Serialize)]
pub(crate) struct HopReport {
    pub(crate) link: PathBuf,
    pub(crate) target: PathBuf,
    pub(crate) cross_path: bool,
}

impl From<&Hop> for HopReport {
    fn from(h: &Hop) -> Self {
        HopReport {
            link: h.link.clone(),
            target: h.target.clone(),
            cross_path: h.is_cross_path(),
        }
    }
}

impl NeedReport {
    fn from_resolution(r: NeedResolution) -> Self {
        let status = if r.found.is_some() {
            NeedStatus::Found
        } else if r.error.is_some() {
            NeedStatus::Error
        } else {
            NeedStatus::NotFound
        };
        let (entry, path, hops, real) = match r.found {
            Some(f) => (
                f.by,
                Some(f.path),
                f.resolved.hops.iter().map(HopReport::from).collect(),
                Some(f.resolved.real),
            ),
            None => (None, None, Vec::new(), None),
        };
        NeedReport {
            name: r.name,
            status,
            entry,
            path,
            hops,
            real,
            error: r.error,
            tried: r.tried,
            needs: Vec::new(),
        }
    }
}

/// Report on every ELF file under `roots`. Non-ELF files found in a
/// directory are skipped; a root that is not a dynamic ELF file, and
/// unreadable or malformed ELF files, are listed in `errors`.
pub fn ldd(roots: &[PathBuf], probe: &FsProbe, opts: &LddOptions) -> LddReport {
    let (entries, walk_errors) = walk::walk(roots);
    let mut errors: Vec<String> = walk_errors.iter().map(ToString::to_string).collect();
    let mut files = Vec::new();
    let mut static_elf = false;
    // A FIFO or device node named on the command line is never opened (a
    // FIFO would block): say what it is rather than print nothing.
    errors.extend(
        entries
            .iter()
            .filter(|e| e.kind == EntryKind::Special && roots.contains(&e.path))
            .map(|e| {
                format!(
                    "{}: not an ELF file (a FIFO, socket or device node)",
                    e.path.display()
                )
            }),
    );
    for e in entries.iter().filter(|e| e.kind == EntryKind::File) {
        // A file named on the command line was asked about: say why there
        // is nothing to show, as ldd does.
        let asked = roots.iter().any(|r| r == &e.path);
        match elf::FileBytes::open_elf(&e.path, None, elf::Use::All).and_then(|b| {
            b.map(|b| {
                let facts = b.facts()?;
                let computed = super::computed::computed_of(&b, &facts, &[]);
                Ok((facts, computed))
            })
            .transpose()
        }) {
            Ok(Some((facts, computed))) if facts.dynamic => {
                files.push(report_file(&e.path, &facts, &computed, probe, opts))
            }
            Ok(Some(f)) if asked => errors.push(format!(
                "{}: {}",
                e.path.display(),
                match f.0.object_type {
                    elf::ObjectType::Exec | elf::ObjectType::Dyn =>
                        "not a dynamic executable: statically linked",
                    _ => "not a dynamic ELF file (an object file, not linked)",
                }
            )),
            Ok(None) if asked => errors.push(format!("{}: not an ELF file", e.path.display())),
            Ok(Some(_)) => static_elf = true,
            Ok(None) => {}
            Err(err) => errors.push(err.to_string()),
        }
    }
    // Directories asked about that hold nothing to report: say so, as
    // for a file that is not an ELF.
    if files.is_empty() && errors.is_empty() {
        errors.extend(roots.iter().filter(|r| r.is_dir()).map(|r| {
            let what = if static_elf {
                "no dynamically linked ELF files"
            } else {
                "no ELF files"
            };
            format!("{}: {what}", r.display())
        }));
    }
    LddReport { files, errors }
}

/// An object in the simulated link map.
struct Loaded {
    /// Where it was loaded from (None: the dynamic loader of a library
    /// reported on its own, which is mapped but at no path we can know).
    path: Option<PathBuf>,
    /// Names it answers to: the names it was loaded by, and its SONAME.
    names: Vec<String>,
}

fn report_file(
    path: &Path,
    facts: &ElfFacts,
    computed: &[Computed],
    probe: &FsProbe,
    opts: &LddOptions,
) -> FileReport {
    let root = Requester::from_facts(path, facts);
    let mut map: Vec<Loaded> = Vec::new();
    // The dynamic loader is in every link map before anything else (glibc's
    // rtld adds its own map first), so a need that names it, by the
    // PT_INTERP path or file name or by its SONAME, is already satisfied.
    // This holds for shared libraries too, which have no PT_INTERP: whatever
    // program loads them brought ld.so, answering to its ABI's SONAME.
    let std_soname = elf::glibc_loader_soname(&facts.ident).map(str::to_owned);
    match &facts.interpreter {
        Some(interp) => {
            let ipath = PathBuf::from(interp);
            let mut names = vec![interp.clone()];
            names.extend(ipath.file_name().map(|n| n.to_string_lossy().into_owned()));
            match elf::read_facts(&ipath) {
                Ok(f) => names.extend(f.soname),
                Err(_) => names.extend(std_soname),
            }
            map.push(Loaded {
                path: Some(ipath),
                names,
            });
        }
        None => map.extend(std_soname.map(|n| Loaded {
            path: None,
            names: vec![n],
        })),
    }
    let cfg = opts
        .loader
        .for_file(facts.interpreter.as_deref(), Some(path));
    let needs = resolve_needs(
        &root,
        facts,
        &facts.needed,
        &mut map,
        probe,
        cfg,
        opts.recursive,
    );
    // A computed name is dlopen()ed by this object later, once its link map
    // is loaded: searched like a need of its own, never recursively.
    let computed = computed
        .iter()
        .map(|c| {
            let names = [c.name.clone()];
            let need = resolve_needs(&root, facts, &names, &mut map, probe, cfg, false)
                .pop()
                .expect("one report per name");
            ComputedReport {
                recogniser: c.recogniser,
                evidence: c.evidence.clone(),
                need,
            }
        })
        .collect();
    FileReport {
        path: path.to_owned(),
        class: facts.ident.class,
        byte_order: facts.ident.data,
        machine: facts.ident.machine_name(),
        object_type: facts.object_type,
        interpreter: facts.interpreter.clone(),
        soname: facts.soname.clone(),
        runpath: facts.runpath.clone(),
        rpath: facts.rpath.clone(),
        nodeflib: facts.nodeflib,
        loader: cfg.model,
        needs,
        computed,
    }
}

/// Resolve the needs of `root` as ld.so maps them: breadth first, every need
/// of an object before the needs of its needs, each name matched against the
/// objects already mapped (by the name they were loaded as, or SONAME).
fn resolve_needs(
    root: &Requester,
    root_facts: &ElfFacts,
    root_needed: &[String],
    map: &mut Vec<Loaded>,
    probe: &FsProbe,
    cfg: &LoaderConfig,
    recursive: bool,
) -> Vec<NeedReport> {
    // Arena of reports; `kids[i]` are the report indices of the needs of the
    // object first loaded by report i.
    let mut arena: Vec<NeedReport> = Vec::new();
    let mut kids: Vec<Vec<usize>> = Vec::new();
    let mut top = Vec::new();
    // Queue of (requester, its needs, its loader chain, report index or None for root).
    let mut queue: std::collections::VecDeque<Pending> = std::collections::VecDeque::new();
    queue.push_back((root.clone(), root_needed.to_vec(), Vec::new(), None));
    while let Some((req, needed, loaders, parent)) = queue.pop_front() {
        for name in &needed {
            let idx = arena.len();
            kids.push(Vec::new());
            match parent {
                Some(p) => kids[p].push(idx),
                None => top.push(idx),
            }
            if let Some(l) = map.iter().find(|l| l.names.iter().any(|n| n == name)) {
                arena.push(NeedReport {
                    name: name.clone(),
                    status: NeedStatus::AlreadyLoaded,
                    entry: None,
                    path: l.path.clone(),
                    hops: Vec::new(),
                    real: l.path.as_ref().and_then(|p| p.canonicalize().ok()),
                    error: None,
                    tried: Vec::new(),
                    needs: Vec::new(),
                });
                continue;
            }
            let r = resolve::resolve_need(name, &req, &loaders, cfg, probe);
            if let Some(found) = &r.found {
                let facts = elf::read_facts(&found.path).ok();
                let child = Requester {
                    path: found.path.clone(),
                    ident: found.ident,
                    runpath: facts.as_ref().and_then(|f| f.runpath.clone()),
                    rpath: facts.as_ref().and_then(|f| f.rpath.clone()),
                    nodeflib: facts.as_ref().is_some_and(|f| f.nodeflib),
                };
                let mut names = vec![name.clone()];
                names.extend(facts.as_ref().and_then(|f| f.soname.clone()));
                let mut chain = vec![req.clone()];
                chain.extend(loaders.iter().cloned());
                map.push(Loaded {
                    path: Some(child.path.clone()),
                    names,
                });
                if recursive && chain.len() <= MAX_DEPTH {
                    let child_needs = facts.map(|f| f.needed).unwrap_or_default();
                    queue.push_back((child, child_needs, chain, Some(idx)));
                }
            }
            let mut report = NeedReport::from_resolution(r);
            // The whole tree of a library is loaded into some program's
            // process: its glibc serves what no search path here has.
            if report.status == NeedStatus::NotFound
                && resolve::provided_by_process(
                    name,
                    &root_facts.ident,
                    root_facts.interpreter.as_deref(),
                )
            {
                report.status = NeedStatus::FromProcessGlibc;
            }
            arena.push(report);
        }
    }
    fn build(i: usize, arena: &mut Vec<Option<NeedReport>>, kids: &[Vec<usize>]) -> NeedReport {
        let mut r = arena[i].take().expect("each report is placed once");
        r.needs = kids[i].iter().map(|&k| build(k, arena, kids)).collect();
        r
    }
    let mut slots: Vec<Option<NeedReport>> = arena.into_iter().map(Some).collect();
    top.iter().map(|&i| build(i, &mut slots, &kids)).collect()
}

/// An object waiting for its needs to be mapped: the object, its needs, its
/// loader chain (nearest first), and the report that loaded it (None: root).
type Pending = (Requester, Vec<String>, Vec<Requester>, Option<usize>);

/// Guard against pathological dependency chains.
const MAX_DEPTH: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreDir;

    /// A shared library (no PT_INTERP) that names the dynamic loader in
    /// DT_NEEDED, as glibc-linked libraries using `__tls_get_addr` or
    /// `_dl_find_object` do: ld.so is mapped in every process, so the need is
    /// satisfied without a search (the real loader prints no line for it).
    /// It used to be searched for, and reported not found with no search
    /// path, or found in the system dirs as a second copy.
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn library_need_of_the_loader_is_already_loaded() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("x.c");
        std::fs::write(&src, "int x(void) { return 1; }\n").unwrap();
        let lib = t.path().join("libx.so");
        let st = std::process::Command::new("gcc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&lib)
            .arg(&src)
            .args(["-Wl,--no-as-needed", "/lib64/ld-linux-x86-64.so.2"])
            .status()
            .expect("gcc is required for this test");
        assert!(st.success());
        let facts = elf::read_facts(&lib).unwrap();
        assert!(facts.interpreter.is_none());
        assert!(facts.needed.iter().any(|n| n == "ld-linux-x86-64.so.2"));
        let probe = FsProbe::new(StoreDir::new("/nix/store"));
        let report = ldd(&[lib], &probe, &LddOptions::default());
        let need = report.files[0]
            .needs
            .iter()
            .find(|n| n.name == "ld-linux-x86-64.so.2")
            .unwrap();
        assert_eq!(need.status, NeedStatus::AlreadyLoaded);
        assert_eq!(
            serde_json::to_value(need.status).unwrap(),
            need.status.as_str()
        );
        assert!(need.tried.is_empty());
    }

    #[test]
    fn a_device_node_named_on_the_command_line_is_not_an_elf_file() {
        let probe = FsProbe::new(StoreDir::new("/nix/store"));
        let report = ldd(
            &[PathBuf::from("/dev/null")],
            &probe,
            &LddOptions::default(),
        );
        assert!(report.files.is_empty());
        assert_eq!(
            report.errors,
            ["/dev/null: not an ELF file (a FIFO, socket or device node)"]
        );
    }

    #[test]
    fn loader_sonames() {
        use crate::elf::{ByteOrder, Class, ElfIdent};
        let id = |machine, class, data| ElfIdent {
            class,
            data,
            machine,
            osabi: 0,
        };
        assert_eq!(
            elf::glibc_loader_soname(&id(62, Class::Elf64, ByteOrder::Little)),
            Some("ld-linux-x86-64.so.2")
        );
        assert_eq!(
            elf::glibc_loader_soname(&id(183, Class::Elf64, ByteOrder::Little)),
            Some("ld-linux-aarch64.so.1")
        );
        assert_eq!(
            elf::glibc_loader_soname(&id(3, Class::Elf32, ByteOrder::Little)),
            Some("ld-linux.so.2")
        );
        // ARM hard/soft float differ: unknown.
        assert_eq!(
            elf::glibc_loader_soname(&id(40, Class::Elf32, ByteOrder::Little)),
            None
        );
    }
}

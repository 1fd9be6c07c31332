//! The resolver: which file glibc's ld.so loads for each need of an object.
//!
//! Order (glibc `_dl_map_object`): DT_RPATH of the object and of its loaders
//! up the chain, then of the executable (only when the object has no
//! DT_RUNPATH); LD_LIBRARY_PATH; DT_RUNPATH of the object itself;
//! ld.so.cache, then the default dirs (unless DF_1_NODEFLIB). Tokens `$ORIGIN`,
//! `$LIB`, `$PLATFORM` expand; an empty entry means the current directory; a
//! candidate of the wrong class or machine is skipped, any other unloadable
//! candidate (not ELF, wrong byte order, too short) is a fatal error, as in
//! glibc's `open_verify`.
//!
//! The filesystem is reached through the `Probe` trait so the same rules
//! serve the real disk ([`FsProbe`](crate::loader::resolve::FsProbe)) and the planner's snapshot.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::elf::{self, ElfIdent, ObjectType};
use crate::farm::{self, Resolved};
use crate::store::StoreDir;

/// What the loader finds at one candidate path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Candidate {
    /// Nothing there (or a dangling link).
    Missing,
    /// An ELF file of another class or machine: ld.so skips it and goes on.
    WrongArch {
        /// Where the path led.
        resolved: Resolved,
        /// The file's class, byte order and machine.
        ident: ElfIdent,
    },
    /// A file ld.so refuses with an error that stops the search.
    Fatal {
        /// Where the path led, if it resolved.
        resolved: Option<Resolved>,
        /// Why ld.so refuses it.
        reason: String,
    },
    /// An ELF file ld.so would map.
    Loadable {
        /// Where the path led.
        resolved: Resolved,
        /// The file's class, byte order and machine.
        ident: ElfIdent,
        /// Its ELF type (ld.so refuses executables as libraries).
        #[serde(skip)]
        object_type: ObjectType,
    },
}

/// How the resolver sees the filesystem.
pub(crate) trait Probe {
    /// What is at `path` for a loader of `want`.
    fn probe(&self, path: &Path, want: &ElfIdent) -> Candidate;
}

/// The real filesystem, with a cache (paths are probed many times per run).
pub struct FsProbe {
    store: StoreDir,
    real_dirs: farm::RealDirs,
    cache: Mutex<HashMap<PathBuf, Arc<RawCandidate>>>,
}

/// What a path holds, independent of the asking loader.
#[derive(Debug)]
enum RawCandidate {
    Missing,
    Fatal(Option<Resolved>, String),
    Elf(Resolved, ElfIdent, ObjectType),
}

impl FsProbe {
    /// A probe of the real file system for the store `store`, with an empty cache.
    pub fn new(store: StoreDir) -> Self {
        FsProbe {
            store,
            real_dirs: farm::RealDirs::default(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn raw(&self, path: &Path) -> Arc<RawCandidate> {
        if let Some(c) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
        {
            return c.clone();
        }
        let c = Arc::new(self.probe_uncached(path));
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_owned(), c.clone());
        c
    }

    fn probe_uncached(&self, path: &Path) -> RawCandidate {
        let resolved = match farm::resolve_with(path, &self.store, Some(&self.real_dirs)) {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return RawCandidate::Missing,
            Err(e) => return RawCandidate::Fatal(None, e.to_string()),
        };
        match read_head(&resolved.real) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => RawCandidate::Missing,
            Err(e) => RawCandidate::Fatal(Some(resolved), format!("cannot read file data: {e}")),
            Ok(head) => {
                // The smaller (32-bit) ELF header.
                if head.len() < std::mem::size_of::<object::elf::FileHeader32<object::Endianness>>()
                {
                    return RawCandidate::Fatal(Some(resolved), "file too short".into());
                }
                match elf::read_ident(&head) {
                    Some((ident, t)) => RawCandidate::Elf(resolved, ident, t),
                    None => RawCandidate::Fatal(Some(resolved), "invalid ELF header".into()),
                }
            }
        }
    }
}

fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = crate::elf::open_for_reading(path)?;
    let mut head = Vec::with_capacity(64);
    f.take(64).read_to_end(&mut head)?;
    Ok(head)
}

/// Apply glibc's verdict for a file of `ident` asked for by a loader of `want`.
pub(crate) fn judge(
    resolved: Resolved,
    ident: ElfIdent,
    t: ObjectType,
    want: &ElfIdent,
) -> Candidate {
    if ident.class != want.class || ident.machine != want.machine {
        return Candidate::WrongArch { resolved, ident };
    }
    if ident.data != want.data {
        return Candidate::Fatal {
            resolved: Some(resolved),
            reason: "ELF file data encoding does not match".into(),
        };
    }
    if !matches!(t, ObjectType::Dyn | ObjectType::Exec) {
        return Candidate::Fatal {
            resolved: Some(resolved),
            reason: "only ET_DYN and ET_EXEC can be loaded".into(),
        };
    }
    Candidate::Loadable {
        resolved,
        ident,
        object_type: t,
    }
}

impl Probe for FsProbe {
    fn probe(&self, path: &Path, want: &ElfIdent) -> Candidate {
        match &*self.raw(path) {
            RawCandidate::Missing => Candidate::Missing,
            RawCandidate::Fatal(r, why) => Candidate::Fatal {
                resolved: r.clone(),
                reason: why.clone(),
            },
            RawCandidate::Elf(r, ident, t) => judge(r.clone(), *ident, *t, want),
        }
    }
}

/// Where a search directory came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum Source {
    /// DT_RPATH of `owner` (the object itself at depth 0, its loader at 1, ...).
    Rpath {
        owner: PathBuf,
        depth: usize,
    },
    LdLibraryPath,
    Runpath,
    LdSoCache,
    Default,
}

impl Source {
    /// Where the entries of `owner`'s own search list of kind `tag` come
    /// from (its RPATH at depth 0, or its RUNPATH): the one mapping the
    /// planner and `fix`'s re-resolution share.
    pub(crate) fn of_tag(tag: elf::SearchPathTag, owner: &Path) -> Source {
        match tag {
            elf::SearchPathTag::Runpath => Source::Runpath,
            elf::SearchPathTag::Rpath => Source::Rpath {
                owner: owner.to_owned(),
                depth: 0,
            },
        }
    }
}

/// One directory of a search path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct SearchDir {
    pub(crate) source: Source,
    /// Index of the entry within its list (RPATH/RUNPATH/LD_LIBRARY_PATH).
    pub(crate) index: usize,
    /// The entry as written.
    pub(crate) text: String,
    /// The entry after token expansion (relative entries against the cwd).
    pub(crate) dir: PathBuf,
}

/// How the loader is set up: what the environment and the system add.
#[derive(Clone, Debug, Default)]
pub struct LoaderConfig {
    /// LD_LIBRARY_PATH, when the user opts in.
    pub ld_library_path: Option<String>,
    /// Default dirs searched last (none for Nix outputs unless asked).
    pub default_dirs: Vec<PathBuf>,
    /// Parsed `/etc/ld.so.cache`, when the system's loader is modelled.
    pub ld_so_cache: Option<LdSoCache>,
    /// `glibc-hwcaps` subdirectories searched in each dir, in priority order.
    pub hwcaps: Vec<String>,
    /// Expansion of `$LIB` (`lib` for Nix's glibc).
    pub lib_token: Option<String>,
    /// Expansion of `$PLATFORM` (default: from the object's machine).
    pub platform: Option<String>,
    /// Working directory for relative entries (default: `/`). The library
    /// never reads the process's own (the planner is pure): the CLI passes it.
    pub cwd: Option<PathBuf>,
    /// Which loader this config models (reported, never used to search).
    pub model: LoaderModel,
    /// Choose the model per file ([`LoaderConfig::for_file`]): `Some` holds
    /// the store dir and the host config used for files the host's ld.so runs.
    pub auto: Option<Box<AutoModel>>,
}

/// The libraries glibc itself ships, by SONAME (glibc's `shlib-versions`;
/// libcrypt left out: Nix takes it from libxcrypt). They live in the dir of
/// the loader that runs the process.
const GLIBC_SONAMES: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libutil.so.1",
    "libresolv.so.2",
    "libanl.so.1",
    "libnsl.so.1",
    "libmvec.so.1",
    "libBrokenLocale.so.1",
    "libthread_db.so.1",
    "libc_malloc_debug.so.0",
    "libnss_files.so.2",
    "libnss_dns.so.2",
    "libnss_compat.so.2",
    "libnss_db.so.2",
    "libnss_hesiod.so.2",
];

/// Whether the process an object is loaded into provides `name`, whatever
/// the object's own search path says: the one decision `ldd` and `check`
/// share. Only for objects without an interpreter (shared libraries): the
/// program that loads one brought a glibc, whose ld.so is mapped first and
/// searches its own lib dir after every RUNPATH, so glibc's libraries are
/// there for it. A program's own interpreter is modelled by its search.
pub fn provided_by_process(name: &str, ident: &ElfIdent, interpreter: Option<&str>) -> bool {
    interpreter.is_none()
        && (GLIBC_SONAMES.contains(&name) || elf::glibc_loader_soname(ident) == Some(name))
}

/// The dynamic loader a file is modelled under.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum LoaderModel {
    /// Nix's glibc: RPATH/RUNPATH and its own lib dir; no ld.so.cache, no
    /// host default dirs.
    #[default]
    Nix,
    /// The host's ld.so: `/etc/ld.so.cache`, then the default dirs.
    Host,
}

impl LoaderModel {
    /// The name shown to users and in the JSON (`--loader nix|host`).
    pub fn as_str(self) -> &'static str {
        match self {
            LoaderModel::Nix => "nix",
            LoaderModel::Host => "host",
        }
    }
}

named_by_as_str!(LoaderModel);

/// What a per-file choice needs: where the store is, and the host loader.
#[derive(Clone, Debug)]
pub struct AutoModel {
    /// The store dir: paths in it are modelled as Nix-built.
    pub store: StoreDir,
    /// The host loader, modelled for files not built by Nix.
    pub host: LoaderConfig,
}

impl AutoModel {
    /// The model of a file from its PT_INTERP: an interpreter inside the store
    /// dir (or Nix's default store) is a Nix glibc, any other (the host's
    /// `/lib64/ld-linux-x86-64.so.2`, ...) is the host's loader. A file with
    /// none (a shared library) is loaded by whatever program loads it: `path`,
    /// when given, decides by where it lives (outside the store: the host's);
    /// without it, the Nix model, as outputs are loaded by Nix programs.
    pub(crate) fn model_of(&self, interpreter: Option<&str>, path: Option<&Path>) -> LoaderModel {
        let in_store = |p: &Path| {
            p.starts_with(self.store.path()) || p.starts_with(crate::store::DEFAULT_STORE_DIR)
        };
        match (interpreter, path) {
            (Some(i), _) if in_store(Path::new(i)) => LoaderModel::Nix,
            (Some(_), _) => LoaderModel::Host,
            (None, Some(p)) if p.is_absolute() && !in_store(p) => LoaderModel::Host,
            (None, _) => LoaderModel::Nix,
        }
    }
}

impl LoaderConfig {
    /// The Debian/Ubuntu multiarch system loader for x86_64, as `ld.so` on
    /// this machine searches.
    pub fn debian_system() -> Self {
        let triple = "x86_64-linux-gnu";
        LoaderConfig {
            default_dirs: vec![
                format!("/lib/{triple}").into(),
                format!("/usr/lib/{triple}").into(),
                "/lib".into(),
                "/usr/lib".into(),
            ],
            ld_so_cache: LdSoCache::read(Path::new("/etc/ld.so.cache")).ok(),
            lib_token: Some("lib".into()),
            model: LoaderModel::Host,
            ..Default::default()
        }
    }

    /// The config for one file: this one, or with a per-file choice
    /// (`AutoModel::model_of`) the host's for files the host's ld.so runs.
    /// The host config keeps this one's user settings (hwcaps, tokens,
    /// LD_LIBRARY_PATH, extra default dirs before its own).
    pub fn for_file(&self, interpreter: Option<&str>, path: Option<&Path>) -> &LoaderConfig {
        match &self.auto {
            Some(a) if a.model_of(interpreter, path) == LoaderModel::Host => &a.host,
            _ => self,
        }
    }
}

/// Expand `$ORIGIN`, `$LIB`, `$PLATFORM` (and their `${}` forms) in one entry.
pub fn expand_entry(entry: &str, origin: &Path, cfg: &LoaderConfig, want: &ElfIdent) -> PathBuf {
    let platform = cfg
        .platform
        .clone()
        .unwrap_or_else(|| default_platform(want));
    let lib = cfg.lib_token.clone().unwrap_or_else(|| "lib".into());
    let mut out = String::with_capacity(entry.len());
    let mut rest = entry;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, len) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match name {
            "ORIGIN" => out.push_str(&origin.to_string_lossy()),
            "LIB" => out.push_str(&lib),
            "PLATFORM" => out.push_str(&platform),
            _ => {
                out.push('$');
                rest = after;
                continue;
            }
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    // glibc drops trailing slashes (but keeps "/"), and "" means "./".
    let trimmed = out.trim_end_matches('/');
    let text = if out.is_empty() {
        "."
    } else if trimmed.is_empty() {
        "/"
    } else {
        trimmed
    };
    let p = PathBuf::from(text);
    if p.is_absolute() {
        p
    } else {
        cfg.cwd.as_deref().unwrap_or(Path::new("/")).join(p)
    }
}

fn default_platform(want: &ElfIdent) -> String {
    let m = want.machine_name();
    if m == "i386" { "i686".into() } else { m }
}

/// Split a colon-separated search path and expand each entry.
pub(crate) fn search_dirs(
    list: &str,
    source: &Source,
    origin: &Path,
    cfg: &LoaderConfig,
    want: &ElfIdent,
) -> Vec<SearchDir> {
    list.split(':')
        .enumerate()
        .map(|(index, text)| SearchDir {
            source: source.clone(),
            index,
            text: text.to_owned(),
            dir: expand_entry(text, origin, cfg, want),
        })
        .collect()
}

/// The object asking, as the resolver needs it.
#[derive(Clone, Debug)]
pub(crate) struct Requester {
    /// The path the object was loaded from (its `$ORIGIN` is the dir).
    pub(crate) path: PathBuf,
    pub(crate) ident: ElfIdent,
    pub(crate) runpath: Option<String>,
    pub(crate) rpath: Option<String>,
    pub(crate) nodeflib: bool,
}

impl Requester {
    pub(crate) fn from_facts(path: &Path, f: &elf::ElfFacts) -> Self {
        Requester {
            path: path.to_owned(),
            ident: f.ident,
            runpath: f.runpath.clone(),
            rpath: f.rpath.clone(),
            nodeflib: f.nodeflib,
        }
    }

    pub(crate) fn origin(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("/"))
    }
}

/// One attempted candidate, for "not found" reports.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Tried {
    pub(crate) path: PathBuf,
    pub(crate) source: Source,
    pub(crate) index: usize,
    pub(crate) outcome: TriedOutcome,
}

/// Why a tried candidate did not serve the need. The JSON strings are part
/// of `docs/ldd-json.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TriedOutcome {
    Missing,
    /// ld.so skips a file of another class or machine and searches on.
    WrongArch,
    /// ld.so stops the search with an error.
    Fatal,
}

impl TriedOutcome {
    /// The text shown to users, the same as the JSON string.
    pub fn as_str(self) -> &'static str {
        match self {
            TriedOutcome::Missing => "missing",
            TriedOutcome::WrongArch => "wrong class or machine (skipped)",
            TriedOutcome::Fatal => "fatal",
        }
    }
}

named_by_as_str!(TriedOutcome);

/// How one need was satisfied.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Found {
    /// The search dir that served it (None when already loaded or a path).
    pub(crate) by: Option<SearchDir>,
    /// The path tried (`dir/name`), or the name itself when it holds a `/`.
    pub(crate) path: PathBuf,
    pub(crate) resolved: Resolved,
    pub(crate) ident: ElfIdent,
}

/// The outcome for one need.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct NeedResolution {
    pub(crate) name: String,
    pub(crate) found: Option<Found>,
    /// A fatal loader error (ld.so stops with it).
    pub(crate) error: Option<String>,
    pub(crate) tried: Vec<Tried>,
}

/// The full search path for a need of `req`, given its loader chain (the
/// objects that loaded it, nearest first, ending with the executable).
pub(crate) fn search_path(
    req: &Requester,
    loaders: &[Requester],
    cfg: &LoaderConfig,
) -> Vec<SearchDir> {
    let mut dirs = Vec::new();
    if req.runpath.is_none() {
        // RPATH of the object, then of each loader up the chain. An object
        // with DT_RUNPATH has its DT_RPATH ignored entirely.
        for (depth, obj) in std::iter::once(req).chain(loaders.iter()).enumerate() {
            if obj.runpath.is_some() {
                continue;
            }
            if let Some(rp) = &obj.rpath {
                let src = Source::Rpath {
                    owner: obj.path.clone(),
                    depth,
                };
                dirs.extend(search_dirs(rp, &src, &obj.origin(), cfg, &req.ident));
            }
        }
    }
    if let Some(llp) = &cfg.ld_library_path {
        // In LD_LIBRARY_PATH, $ORIGIN is the executable's.
        let exe = loaders.last().unwrap_or(req);
        dirs.extend(search_dirs(
            llp,
            &Source::LdLibraryPath,
            &exe.origin(),
            cfg,
            &req.ident,
        ));
    }
    if let Some(rp) = &req.runpath {
        dirs.extend(search_dirs(
            rp,
            &Source::Runpath,
            &req.origin(),
            cfg,
            &req.ident,
        ));
    }
    dirs
}

/// Resolve one need of `req`.
pub(crate) fn resolve_need(
    name: &str,
    req: &Requester,
    loaders: &[Requester],
    cfg: &LoaderConfig,
    probe: &dyn Probe,
) -> NeedResolution {
    let dirs = search_path(req, loaders, cfg);
    resolve_in(name, &dirs, req, cfg, probe)
}

/// Resolve a need along an explicit search path (then cache and default dirs
/// unless the requester has DF_1_NODEFLIB).
pub(crate) fn resolve_in(
    name: &str,
    dirs: &[SearchDir],
    req: &Requester,
    cfg: &LoaderConfig,
    probe: &dyn Probe,
) -> NeedResolution {
    let mut out = NeedResolution {
        name: name.to_owned(),
        found: None,
        error: None,
        tried: Vec::new(),
    };
    let l = Lookup {
        name,
        req,
        cfg,
        probe,
    };
    if name.contains('/') {
        l.by_path(&mut out);
        return out;
    }
    // Each place says whether the search is over (found, or an error that
    // stops it); `out` records every path tried.
    if dirs.iter().any(|sd| l.in_dir(&mut out, sd)) || req.nodeflib || l.in_ld_so_cache(&mut out) {
        return out;
    }
    for (index, d) in cfg.default_dirs.iter().enumerate() {
        let sd = SearchDir {
            source: Source::Default,
            index,
            text: d.display().to_string(),
            dir: d.clone(),
        };
        if l.in_dir(&mut out, &sd) {
            break;
        }
    }
    out
}

/// One need's lookup, in the order ld.so tries places.
struct Lookup<'a> {
    name: &'a str,
    req: &'a Requester,
    cfg: &'a LoaderConfig,
    probe: &'a dyn Probe,
}

impl Lookup<'_> {
    /// A name with a slash is a path: opened as it is (relative to the
    /// working dir, `$ORIGIN` expanded), no search.
    fn by_path(&self, out: &mut NeedResolution) {
        let p = if Path::new(self.name).is_absolute() {
            PathBuf::from(self.name)
        } else {
            expand_entry(self.name, &self.req.origin(), self.cfg, &self.req.ident)
        };
        take(
            out,
            self.probe.probe(&p, &self.req.ident),
            p,
            None,
            Source::Default,
            0,
        );
    }

    /// One search dir, its `glibc-hwcaps` subdirs first; true when the
    /// search is over.
    fn in_dir(&self, out: &mut NeedResolution, sd: &SearchDir) -> bool {
        let subs = self
            .cfg
            .hwcaps
            .iter()
            .map(|h| Some(format!("glibc-hwcaps/{h}")));
        for sub in subs.chain(std::iter::once(None)) {
            let dir = match &sub {
                Some(s) => sd.dir.join(s),
                None => sd.dir.clone(),
            };
            let p = dir.join(self.name);
            let cand = self.probe.probe(&p, &self.req.ident);
            if take(out, cand, p, Some(sd.clone()), sd.source.clone(), sd.index) {
                return true;
            }
        }
        false
    }

    /// `ld.so.cache`'s entries for the name; true when the search is over.
    fn in_ld_so_cache(&self, out: &mut NeedResolution) -> bool {
        let Some(cache) = &self.cfg.ld_so_cache else {
            return false;
        };
        for (i, path) in cache.lookup(self.name).enumerate() {
            let sd = SearchDir {
                source: Source::LdSoCache,
                index: i,
                text: path.display().to_string(),
                dir: path.parent().map(Path::to_owned).unwrap_or_default(),
            };
            let cand = self.probe.probe(path, &self.req.ident);
            // glibc matches cache entries by arch flags before opening; an
            // entry for another arch is simply not a candidate.
            if matches!(cand, Candidate::WrongArch { .. } | Candidate::Missing) {
                continue;
            }
            if take(out, cand, path.to_owned(), Some(sd), Source::LdSoCache, i) {
                return true;
            }
        }
        false
    }
}

/// Record a candidate; true when the search is over (found or fatal).
fn take(
    out: &mut NeedResolution,
    cand: Candidate,
    path: PathBuf,
    by: Option<SearchDir>,
    source: Source,
    index: usize,
) -> bool {
    let outcome = match cand {
        Candidate::Missing => TriedOutcome::Missing,
        Candidate::WrongArch { .. } => TriedOutcome::WrongArch,
        Candidate::Fatal { reason, .. } => {
            out.error = Some(format!("{}: {reason}", path.display()));
            out.tried.push(Tried {
                path,
                source,
                index,
                outcome: TriedOutcome::Fatal,
            });
            return true;
        }
        Candidate::Loadable {
            resolved, ident, ..
        } => {
            out.found = Some(Found {
                by,
                path,
                resolved,
                ident,
            });
            return true;
        }
    };
    out.tried.push(Tried {
        path,
        source,
        index,
        outcome,
    });
    false
}

/// Why `/etc/ld.so.cache` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LdSoCacheError {
    /// The file could not be read.
    #[error("{}: {err}", path.display())]
    Io {
        /// The cache file.
        path: PathBuf,
        /// The failed call's error.
        err: std::io::Error,
    },
    /// The file is not a cache ld.so could use.
    #[error("{}: {what}", path.display())]
    Malformed {
        /// The cache file.
        path: PathBuf,
        /// What is wrong with it.
        what: CacheFormatError,
    },
}

/// What is wrong with an `ld.so.cache` file's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CacheFormatError {
    /// The old format's header is cut short.
    #[error("truncated old header")]
    TruncatedOldHeader,
    /// An entry count that overflows.
    #[error("bad count")]
    BadCount,
    /// The file ends before the new format's header.
    #[error("truncated")]
    Truncated,
    /// No `glibc-ld.so.cache1.1` header.
    #[error("not a glibc ld.so.cache (new format)")]
    NotNewFormat,
    /// The new format's header is cut short.
    #[error("truncated header")]
    TruncatedHeader,
    /// An entry is cut short.
    #[error("truncated entry")]
    TruncatedEntry,
}

/// A parsed `/etc/ld.so.cache` (glibc's "new" format, `glibc-ld.so.cache1.1`).
#[derive(Clone, Debug, Default)]
pub struct LdSoCache {
    /// (soname, path) in file order; ld.so takes the first usable match.
    pub(crate) entries: Vec<(String, PathBuf)>,
}

impl LdSoCache {
    /// Read and parse the cache file at `path` (`/etc/ld.so.cache`).
    pub fn read(path: &Path) -> Result<Self, LdSoCacheError> {
        let data = std::fs::read(path).map_err(|err| LdSoCacheError::Io {
            path: path.to_owned(),
            err,
        })?;
        Self::parse(&data).map_err(|what| LdSoCacheError::Malformed {
            path: path.to_owned(),
            what,
        })
    }

    pub(crate) fn parse(data: &[u8]) -> Result<Self, CacheFormatError> {
        use CacheFormatError as E;
        const OLD: &[u8] = b"ld.so-1.7.0";
        const NEW: &[u8] = b"glibc-ld.so.cache1.1";
        let mut base = 0usize;
        if data.starts_with(OLD) {
            let n = u32_at(data, 12, true).ok_or(E::TruncatedOldHeader)? as usize;
            base = 16usize
                .checked_add(n.checked_mul(12).ok_or(E::BadCount)?)
                .ok_or(E::BadCount)?;
            base = base.div_ceil(8) * 8;
        }
        let hdr = data.get(base..).ok_or(E::Truncated)?;
        if !hdr.starts_with(NEW) {
            return Err(E::NotNewFormat);
        }
        let little = match hdr.get(28) {
            Some(2) => true,
            Some(3) => false,
            _ => cfg!(target_endian = "little"),
        };
        let nlibs = u32_at(hdr, 20, little).ok_or(E::TruncatedHeader)? as usize;
        let mut entries = Vec::with_capacity(nlibs.min(1 << 16));
        for i in 0..nlibs {
            let e = 48usize
                .checked_add(i.checked_mul(24).ok_or(E::BadCount)?)
                .ok_or(E::BadCount)?;
            let key = u32_at(hdr, e + 4, little).ok_or(E::TruncatedEntry)? as usize;
            let val = u32_at(hdr, e + 8, little).ok_or(E::TruncatedEntry)? as usize;
            let hwcap = u64_at(hdr, e + 16, little).ok_or(E::TruncatedEntry)?;
            // Entries for glibc-hwcaps subdirs carry an extension bit; this
            // model searches those subdirs through `hwcaps` instead.
            if hwcap >> 62 & 1 == 1 {
                continue;
            }
            // In the new format, string offsets count from the new header.
            let (k, v) = (cstr(hdr, key), cstr(hdr, val));
            if let (Some(k), Some(v)) = (k, v) {
                entries.push((k, PathBuf::from(v)));
            }
        }
        Ok(LdSoCache { entries })
    }

    pub(crate) fn lookup<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Path> + 'a {
        self.entries
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_path())
    }
}

fn u32_at(d: &[u8], at: usize, little: bool) -> Option<u32> {
    let b: [u8; 4] = d.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if little {
        u32::from_le_bytes(b)
    } else {
        u32::from_be_bytes(b)
    })
}

fn u64_at(d: &[u8], at: usize, little: bool) -> Option<u64> {
    let b: [u8; 8] = d.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(if little {
        u64::from_le_bytes(b)
    } else {
        u64::from_be_bytes(b)
    })
}

fn cstr(d: &[u8], at: usize) -> Option<String> {
    let s = d.get(at..)?;
    let end = memchr::memchr(0, s)?;
    String::from_utf8(s[..end].to_vec()).ok()
}

#[cfg(test)]
mod tests {

    /// The model from PT_INTERP: a store interpreter is Nix's glibc, any
    /// other the host's; a library (none) by where it lives, else Nix.
    #[test]
    fn loader_model_of_a_file() {
        let a = AutoModel {
            store: StoreDir::new("/tmp/s/store"),
            host: LoaderConfig::default(),
        };
        let nix = Some("/tmp/s/store/abc-glibc/lib/ld-linux-x86-64.so.2");
        assert_eq!(a.model_of(nix, None), LoaderModel::Nix);
        let real_nix = Some("/nix/store/abc-glibc-2.40/lib/ld-linux-x86-64.so.2");
        assert_eq!(a.model_of(real_nix, None), LoaderModel::Nix);
        let host = Some("/lib64/ld-linux-x86-64.so.2");
        assert_eq!(a.model_of(host, None), LoaderModel::Host);
        let lib = Path::new("/usr/lib/x86_64-linux-gnu/libz.so.1");
        assert_eq!(a.model_of(None, Some(lib)), LoaderModel::Host);
        let out_lib = Path::new("/tmp/s/store/abc-foo/lib/libfoo.so.1");
        assert_eq!(a.model_of(None, Some(out_lib)), LoaderModel::Nix);
        assert_eq!(a.model_of(None, None), LoaderModel::Nix);
        // Without a per-file choice the config is used as is.
        let fixed = LoaderConfig::debian_system();
        assert_eq!(fixed.for_file(nix, None).model, LoaderModel::Host);
    }

    use super::*;
    use crate::elf::{ByteOrder, Class};

    fn x86() -> ElfIdent {
        ElfIdent {
            class: Class::Elf64,
            data: ByteOrder::Little,
            machine: 62,
            osabi: 0,
        }
    }

    #[test]
    fn token_expansion() {
        let cfg = LoaderConfig {
            lib_token: Some("lib64".into()),
            cwd: Some("/work".into()),
            ..Default::default()
        };
        let o = Path::new("/s/app/bin");
        let e = |s| expand_entry(s, o, &cfg, &x86());
        assert_eq!(e("$ORIGIN/../lib"), PathBuf::from("/s/app/bin/../lib"));
        assert_eq!(e("${ORIGIN}/x/"), PathBuf::from("/s/app/bin/x"));
        assert_eq!(e("/a/$LIB/$PLATFORM"), PathBuf::from("/a/lib64/x86_64"));
        assert_eq!(e("/a/${PLATFORM}z"), PathBuf::from("/a/x86_64z"));
        assert_eq!(e("/a/$UNKNOWN"), PathBuf::from("/a/$UNKNOWN"));
        assert_eq!(e(""), PathBuf::from("/work/."));
        assert_eq!(e("rel"), PathBuf::from("/work/rel"));
        assert_eq!(e("/"), PathBuf::from("/"));
    }

    fn req(path: &str, runpath: Option<&str>, rpath: Option<&str>) -> Requester {
        Requester {
            path: path.into(),
            ident: x86(),
            runpath: runpath.map(Into::into),
            rpath: rpath.map(Into::into),
            nodeflib: false,
        }
    }

    #[test]
    fn rpath_inherited_only_without_runpath() {
        let cfg = LoaderConfig::default();
        let exe = req("/e/bin/app", None, Some("/exe-rpath"));
        let lib_rp = req("/l/lib/liba.so", None, Some("/a-rpath"));
        let texts = |v: Vec<SearchDir>| v.into_iter().map(|d| d.text).collect::<Vec<_>>();
        assert_eq!(
            texts(search_path(&lib_rp, std::slice::from_ref(&exe), &cfg)),
            ["/a-rpath", "/exe-rpath"]
        );
        let lib_run = req("/l/lib/libb.so", Some("/b-run"), Some("/b-rpath"));
        assert_eq!(
            texts(search_path(&lib_run, std::slice::from_ref(&exe), &cfg)),
            ["/b-run"]
        );
        // A loader with RUNPATH contributes no RPATH to the chain.
        let mid = req("/m/libm.so", Some("/m-run"), Some("/m-rpath"));
        assert_eq!(
            texts(search_path(&lib_rp, &[mid, exe], &cfg)),
            ["/a-rpath", "/exe-rpath"]
        );
    }

    #[test]
    fn ld_library_path_between() {
        let cfg = LoaderConfig {
            ld_library_path: Some("/llp".into()),
            ..Default::default()
        };
        let r = req("/e/app", None, Some("/rp"));
        let v: Vec<_> = search_path(&r, &[], &cfg)
            .into_iter()
            .map(|d| d.text)
            .collect();
        assert_eq!(v, ["/rp", "/llp"]);
        let r = req("/e/app", Some("/run"), None);
        let v: Vec<_> = search_path(&r, &[], &cfg)
            .into_iter()
            .map(|d| d.text)
            .collect();
        assert_eq!(v, ["/llp", "/run"]);
    }

    #[test]
    fn parses_system_cache_when_present() {
        if let Ok(c) = LdSoCache::read(Path::new("/etc/ld.so.cache")) {
            assert!(c.lookup("libc.so.6").next().is_some());
        }
        assert_eq!(
            LdSoCache::parse(b"garbage").unwrap_err(),
            CacheFormatError::NotNewFormat
        );
        assert_eq!(
            LdSoCache::parse(b"glibc-ld.so.cache1.1\xff\xff\xff\xff").unwrap_err(),
            CacheFormatError::TruncatedEntry
        );
    }
}

//! The I/O edge of planning: walk outputs, read every ELF file's facts and
//! needs, gather the snapshot of the directories involved, and run the pure
//! planner on each object (in parallel). `check` and `fix` both start here.

/// Reading the directories plans may touch into a snapshot.
mod gather;

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use crate::elf::{self, ElfFacts};
use crate::farm::{self, Resolved};
use crate::loader::computed;
use crate::loader::resolve::{self, FsProbe, LoaderConfig, Requester};
use crate::plan::needs::{self, Need};
use crate::plan::snapshot::Snapshot;
use crate::plan::{self, Plan, PlanInput, PlanOptions};
use crate::store::StoreDir;
use crate::walk::{self, EntryKind, WalkError};
use gather::Gatherer;

/// What the survey reads beyond the ELF facts.
#[derive(Clone, Debug, Default)]
pub struct SurveyOptions {
    /// Options of the pure planner.
    pub plan: PlanOptions,
    /// Sonames the packager declares as dlopen()ed (for every object).
    pub declared: Vec<String>,
    /// Scan read-only data for soname literals.
    pub hints: bool,
    /// Run the computed-name recognisers (`loader::computed`).
    pub computed: bool,
    /// Farms the outputs may name on purpose (`--allow`): store paths, or
    /// their names without the hash.
    pub allow: Vec<String>,
    /// Outputs used only at build time (`--build-time`: dev, include, docs,
    /// man, debug): their findings are warnings, never errors.
    pub build_time: Vec<PathBuf>,
    /// `fix --interpreter`: the PT_INTERP dynamic executables get.
    pub interpreter: Option<NewInterpreter>,
}

/// `fix --interpreter FILE`: the path, and what ELF it is when it could be
/// read. An executable of another class, byte order or machine (a 32-bit
/// program in a 64-bit package) keeps its own, as autoPatchelf does.
#[derive(Clone, Debug)]
pub struct NewInterpreter {
    /// The path written to PT_INTERP.
    pub path: String,
    /// The interpreter's class, byte order and machine, if it is readable.
    pub ident: Option<crate::elf::ElfIdent>,
}

impl NewInterpreter {
    /// The path `facts`' file gets: `None` for a file without PT_INTERP,
    /// one naming it already, or one the interpreter cannot run.
    pub(crate) fn for_facts(&self, facts: &ElfFacts) -> Option<&str> {
        let old = facts.interpreter.as_deref()?;
        let runs = self.ident.is_none_or(|i| i.loadable_by(&facts.ident));
        (old != self.path && runs).then_some(self.path.as_str())
    }
}

/// One ELF object, its needs and its plans.
#[derive(Debug, Serialize)]
pub struct ObjectSurvey {
    pub(crate) path: PathBuf,
    /// What its dynamic section says.
    pub facts: ElfFacts,
    pub(crate) needs: Vec<Need>,
    /// One plan per search list (RUNPATH or RPATH) it has or needs.
    pub plans: Vec<Plan>,
    /// Hard links to this file (1 for most).
    pub(crate) nlink: u64,
}

/// A symlink in an output whose target goes through a farm.
#[derive(Debug, Serialize)]
pub struct FarmLink {
    /// The symlink.
    pub path: PathBuf,
    /// Its target as written.
    pub target: PathBuf,
    /// The farm store paths passed through.
    pub(crate) farms: Vec<PathBuf>,
    /// Where it should point instead: the same file, reached without a farm.
    pub canonical: PathBuf,
}

/// Everything found under the outputs.
#[derive(Debug, Serialize)]
pub struct Survey {
    pub(crate) roots: Vec<PathBuf>,
    /// Every ELF object found, with its plans.
    pub objects: Vec<ObjectSurvey>,
    /// Symlinks whose target goes through a farm.
    pub farm_links: Vec<FarmLink>,
    /// Regular files that are not ELF (scanned for farm references).
    #[serde(skip)]
    pub(crate) other_files: Vec<PathBuf>,
    /// Special files (FIFOs, devices) left alone.
    pub(crate) special_files: Vec<PathBuf>,
    /// Symlinks in the outputs that never resolve (a loop).
    pub(crate) link_loops: Vec<PathBuf>,
    /// Every symlink in the outputs (their targets may name a farm).
    #[serde(skip)]
    pub(crate) symlinks: Vec<PathBuf>,
    /// [`SurveyOptions::allow`].
    #[serde(skip)]
    pub(crate) allowed: Vec<String>,
    /// [`SurveyOptions::build_time`].
    #[serde(skip)]
    pub(crate) build_time: Vec<PathBuf>,
    /// Files walked.
    pub files_scanned: usize,
    /// One line each: files that could not be read.
    pub errors: Vec<WalkError>,
    /// What the directories involved offered when the plans were made.
    #[serde(skip)]
    pub snapshot: Snapshot,
    /// [`SurveyOptions::interpreter`].
    #[serde(skip)]
    pub interpreter: Option<NewInterpreter>,
    /// ELF executables with no PT_DYNAMIC (static): no interpreter to set.
    #[serde(skip)]
    pub(crate) static_executables: Vec<PathBuf>,
}

impl Survey {
    /// The interpreter `o` gets (`--interpreter`), when it is a dynamic
    /// executable naming another one that can run it (see
    /// [`NewInterpreter`]). A library has no PT_INTERP.
    pub fn interpreter_change(&self, o: &ObjectSurvey) -> Option<&str> {
        self.interpreter.as_ref()?.for_facts(&o.facts)
    }

    /// Store paths seen acting as farms: where an indirect entry or a farm
    /// link lives.
    pub(crate) fn farm_store_paths(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = Vec::new();
        for o in &self.objects {
            for p in &o.plans {
                for e in &p.entries {
                    for r in &e.reasons {
                        if let plan::Reason::Indirect { farms, .. } = r {
                            v.extend(farms.iter().cloned());
                        }
                    }
                }
            }
        }
        for l in &self.farm_links {
            v.extend(l.farms.iter().cloned());
        }
        v.sort();
        v.dedup();
        v
    }
}

/// Survey `roots` (output paths).
pub fn survey(roots: &[PathBuf], store: &StoreDir, opts: &SurveyOptions) -> Survey {
    let (entries, walk_errors) = walk::walk(roots);
    let mut errors: Vec<WalkError> = walk_errors;
    let special_files = entries
        .iter()
        .filter(|e| e.kind == EntryKind::Special)
        .map(|e| e.path.clone())
        .collect();
    let (mut objects, other_files, read_errors, static_executables) = read_files(&entries, opts);
    errors.extend(read_errors);
    add_inherited_needs(&mut objects, store, opts);
    let own_libs = own_library_dirs(&objects, opts);
    let outputs = own_outputs(roots, store);
    let snapshot = gather_snapshot(&objects, store, opts, &own_libs, &outputs);
    plan_all(&mut objects, &snapshot, store, opts, &outputs, &own_libs);
    let links = survey_links(&entries, roots, store);
    Survey {
        roots: roots.to_vec(),
        files_scanned: entries.len(),
        objects,
        farm_links: links.farm_links,
        other_files,
        special_files,
        link_loops: links.link_loops,
        symlinks: links.symlinks,
        allowed: opts.allow.clone(),
        build_time: opts.build_time.clone(),
        errors,
        snapshot,
        interpreter: opts.interpreter.clone(),
        static_executables,
    }
}

/// What reading one walked file found.
enum Read {
    /// A dynamic ELF object, with its facts and needs (no plans yet).
    Elf(Box<ObjectSurvey>),
    /// Any other file (scanned for references only).
    Other(PathBuf),
    /// A static executable (like `Other`, listed for `--interpreter`).
    Static(PathBuf),
    /// The file could not be read.
    Err(WalkError),
}

/// Read every regular file's facts and needs, in parallel: the ELF objects,
/// the other files, what could not be read (in walk order), and the
/// static executables among the other files.
fn read_files(
    entries: &[walk::Entry],
    opts: &SurveyOptions,
) -> (
    Vec<ObjectSurvey>,
    Vec<PathBuf>,
    Vec<WalkError>,
    Vec<PathBuf>,
) {
    let files: Vec<&walk::Entry> = entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .collect();
    // Largest first, each to the next free worker (`par_bridge` hands items
    // out in order): a 480 MB plugin started last would finish alone.
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(files[i].size));
    let mut read: Vec<(usize, Read)> = order
        .into_iter()
        .par_bridge()
        .map(|i| (i, read_file(files[i], opts)))
        .collect();
    read.sort_unstable_by_key(|(i, _)| *i);
    let mut objects = Vec::new();
    let mut other_files = Vec::new();
    let mut errors = Vec::new();
    let mut statics = Vec::new();
    for (_, r) in read {
        match r {
            Read::Elf(o) => objects.push(*o),
            Read::Other(p) => other_files.push(p),
            Read::Static(p) => {
                statics.push(p.clone());
                other_files.push(p);
            }
            Read::Err(e) => errors.push(e),
        }
    }
    (objects, other_files, errors, statics)
}

/// One walked file: one read serves its kind, its facts and its hints.
fn read_file(e: &walk::Entry, opts: &SurveyOptions) -> Read {
    let err = |e: elf::ElfError| {
        Read::Err(WalkError {
            path: e.path().to_owned(),
            message: e.reason(),
        })
    };
    let b = match elf::FileBytes::open_elf(&e.path, Some(e.size), elf::Use::All) {
        Err(e) => return err(e),
        Ok(None) => return Read::Other(e.path.clone()),
        // A debug-info file is never loaded: its bytes are only scanned for
        // references, like any other file.
        Ok(Some(b)) if b.is_debug_info() => return Read::Other(e.path.clone()),
        Ok(Some(b)) => b,
    };
    let read = (|| {
        let facts = b.facts()?;
        let hints = if opts.hints && facts.dynamic && facts.literals_searched() {
            b.hints().unwrap_or_default()
        } else {
            Vec::new()
        };
        let computed = computed_needs(&b, &facts, opts, &hints);
        Ok((facts, hints, computed))
    })();
    match read {
        Err(e) => err(e),
        Ok((facts, ..)) if !facts.dynamic && facts.object_type == elf::ObjectType::Exec => {
            Read::Static(e.path.clone())
        }
        Ok((facts, ..)) if !facts.dynamic => Read::Other(e.path.clone()),
        Ok((facts, hints, computed)) => {
            let mut needs = needs::collect(&facts, &opts.declared, &hints);
            needs::add_computed(&mut needs, facts.soname.as_deref(), &computed);
            Read::Elf(Box::new(ObjectSurvey {
                path: e.path.clone(),
                facts,
                needs,
                plans: Vec::new(),
                nlink: e.nlink,
            }))
        }
    }
}

/// An object whose effective list is DT_RPATH also serves the needs of
/// every library it loads that has no DT_RUNPATH: those are its needs too.
fn add_inherited_needs(objects: &mut [ObjectSurvey], store: &StoreDir, opts: &SurveyOptions) {
    let probe = FsProbe::new(store.clone());
    objects.par_iter_mut().for_each(|o| {
        if o.facts.runpath.is_none() && o.facts.rpath.is_some() {
            let inherited = inherited_needs(&o.path, &planning_facts(o, opts), &probe, opts);
            needs::add_inherited(&mut o.needs, &inherited);
        }
    });
}

/// Gather every dir any plan reads, once: the search lists' dirs (and the
/// real dirs they lead to) wholly; the fallback dirs, which a plan only
/// searches, just for the names it can ask for.
fn gather_snapshot(
    objects: &[ObjectSurvey],
    store: &StoreDir,
    opts: &SurveyOptions,
    own_libs: &[PathBuf],
    outputs: &[PathBuf],
) -> Snapshot {
    let gatherer = Gatherer::new(store.clone());
    for o in objects {
        gatherer.know(&o.path, &o.facts);
    }
    let mut snapshot = Snapshot::default();
    let mut dirs: Vec<PathBuf> = objects
        .iter()
        .flat_map(|o| plan::dirs_to_gather(&o.path, &o.facts, &opts.plan))
        .chain(own_libs.iter().cloned())
        .collect();
    // An own library dir goes in as `$ORIGIN/..`: the loader searches it
    // under that spelling, once per dir of objects.
    if !own_libs.is_empty() {
        let origins: HashMap<&Path, &elf::ElfIdent> = objects
            .iter()
            .filter_map(|o| Some((o.path.parent()?, &o.facts.ident)))
            .collect();
        for (origin, ident) in origins {
            for d in own_libs {
                if let Some(t) = plan::inputs::own_entry(origin, d, outputs) {
                    dirs.push(resolve::expand_entry(&t, origin, &opts.plan.loader, ident));
                }
            }
        }
    }
    dirs.sort();
    dirs.dedup();
    gatherer.gather(&mut snapshot, dirs);
    let mut names: BTreeSet<String> = objects
        .iter()
        .flat_map(|o| o.needs.iter().map(|n| n.name.clone()))
        .collect();
    names.extend(
        snapshot
            .dirs
            .values()
            .flat_map(|d| d.entries.keys().cloned()),
    );
    let mut fallback: Vec<PathBuf> = objects
        .iter()
        .flat_map(|o| plan::fallback_dirs(&planning_facts(o, opts), &opts.plan))
        .collect();
    fallback.sort();
    fallback.dedup();
    for d in fallback {
        gatherer.gather_names(&mut snapshot, d, &names);
    }
    snapshot
}

/// The outputs of this run as the planner sees them: each root's store
/// path (the root itself when outside the store). The hook passes a
/// package's outputs together; none of them is ever a farm.
fn own_outputs(roots: &[PathBuf], store: &StoreDir) -> Vec<PathBuf> {
    roots
        .iter()
        .map(|r| store.store_path_of(r).map_or_else(|| r.clone(), |s| s.path))
        .collect()
}

/// With `--libs`, the dirs of the outputs that hold shared libraries: a
/// need found there is served by the package itself, before any input
/// (autoPatchelf searches the outputs first too). In walk order.
fn own_library_dirs(objects: &[ObjectSurvey], opts: &SurveyOptions) -> Vec<PathBuf> {
    if opts.plan.libs.is_empty() {
        return Vec::new();
    }
    let mut seen = HashSet::new();
    objects
        .iter()
        .filter(|o| {
            o.facts.object_type == elf::ObjectType::Dyn
                && (o.facts.soname.is_some()
                    || o.path
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().contains(".so")))
        })
        .filter_map(|o| o.path.parent())
        .filter(|d| seen.insert(d.to_path_buf()))
        .map(Path::to_path_buf)
        .collect()
}

/// Run the pure planner over every object against the gathered snapshot.
/// The facts `o` is planned with: with `--interpreter`, a dynamic
/// executable as it will be, run by the new interpreter (whose loader
/// model, Nix's or the host's, and dir decide where the loader falls back).
fn planning_facts<'a>(o: &'a ObjectSurvey, opts: &SurveyOptions) -> std::borrow::Cow<'a, ElfFacts> {
    match opts
        .interpreter
        .as_ref()
        .and_then(|n| n.for_facts(&o.facts))
    {
        Some(new) => {
            let mut f = o.facts.clone();
            f.interpreter = Some(new.to_owned());
            std::borrow::Cow::Owned(f)
        }
        None => std::borrow::Cow::Borrowed(&o.facts),
    }
}

fn plan_all(
    objects: &mut [ObjectSurvey],
    snapshot: &Snapshot,
    store: &StoreDir,
    opts: &SurveyOptions,
    outputs: &[PathBuf],
    own_libs: &[PathBuf],
) {
    let facts: Vec<std::borrow::Cow<ElfFacts>> =
        objects.iter().map(|o| planning_facts(o, opts)).collect();
    let inputs: Vec<PlanInput> = objects
        .iter()
        .zip(&facts)
        .map(|(o, facts)| PlanInput {
            path: &o.path,
            facts,
            needs: &o.needs,
            snapshot,
            store,
            opts: &opts.plan,
            outputs,
            own_libs,
        })
        .collect();
    let plans = plan::plan_objects(&inputs);
    drop(inputs);
    drop(facts);
    for (o, p) in objects.iter_mut().zip(plans) {
        o.plans = p;
    }
}

/// What the survey found among the outputs' symlinks.
struct Links {
    farm_links: Vec<FarmLink>,
    link_loops: Vec<PathBuf>,
    symlinks: Vec<PathBuf>,
}

/// One resolution per symlink: a loop is reported, a farm link retargeted.
fn survey_links(entries: &[walk::Entry], roots: &[PathBuf], store: &StoreDir) -> Links {
    let links: Vec<&walk::Entry> = entries
        .iter()
        .filter(|e| e.kind == EntryKind::Symlink)
        .collect();
    let mut farm_links = Vec::new();
    let mut link_loops = Vec::new();
    let symlinks = links.iter().map(|e| e.path.clone()).collect();
    let mut farm_cache: HashMap<PathBuf, bool> = HashMap::new();
    for e in links {
        match farm::resolve(&e.path, store) {
            Err(farm::ResolveError::Loop { .. }) => link_loops.push(e.path.clone()),
            Err(_) => {}
            Ok(r) => farm_links.extend(
                farm_link_of(&e.path, &r, roots, store)
                    .or_else(|| farm_dir_link(&e.path, &r, roots, store, &mut farm_cache)),
            ),
        }
    }
    Links {
        farm_links,
        link_loops,
        symlinks,
    }
}

/// How many loaders deep [`inherited_needs`] follows a chain of libraries
/// loading libraries: a bound on the walk whatever the files say.
const MAX_LOADER_CHAIN: usize = 64;

/// The needs of every library `path` loads (transitively) that has no
/// DT_RUNPATH, with the library that has them: its DT_NEEDED, and its dlopen
/// needs (declared, `.note.dlopen`, soname literals), since a `dlopen()` by
/// name from such a library searches the DT_RPATH of every object up the
/// loader chain as ld.so does for DT_NEEDED. `path`'s RPATH serves them all.
fn inherited_needs(
    path: &Path,
    facts: &ElfFacts,
    probe: &FsProbe,
    opts: &SurveyOptions,
) -> Vec<(String, String)> {
    let cfg = LoaderConfig {
        ld_library_path: None,
        ld_so_cache: None,
        default_dirs: plan::fallback_dirs(facts, &opts.plan),
        ..opts.plan.loader.clone()
    };
    let root = Requester::from_facts(path, facts);
    let mut seen: HashSet<String> = facts.needed.iter().cloned().collect();
    let mut out = Vec::new();
    let mut queue: VecDeque<(Requester, Vec<String>, Vec<Requester>)> = VecDeque::new();
    queue.push_back((root, facts.needed.clone(), Vec::new()));
    while let Some((req, names, loaders)) = queue.pop_front() {
        for name in names {
            let r = resolve::resolve_need(&name, &req, &loaders, &cfg, probe);
            let Some(found) = r.found else { continue };
            let Some((child, child_needs)) = facts_and_needs(&found.path, opts) else {
                continue;
            };
            let child_name = found
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let fresh: Vec<String> = child_needs
                .into_iter()
                .filter(|n| seen.insert(n.clone()))
                .collect();
            if child.runpath.is_none() {
                out.extend(fresh.iter().map(|n| (n.clone(), child_name.clone())));
            }
            let mut chain = vec![req.clone()];
            chain.extend(loaders.iter().cloned());
            if chain.len() < MAX_LOADER_CHAIN {
                queue.push_back((Requester::from_facts(&found.path, &child), fresh, chain));
            }
        }
    }
    out
}

/// A loaded library's facts and the names of every need it has (one read).
fn facts_and_needs(path: &Path, opts: &SurveyOptions) -> Option<(ElfFacts, Vec<String>)> {
    let b = elf::FileBytes::open_elf(path, None, elf::Use::All).ok()??;
    let facts = b.facts().ok()?;
    let hints = if opts.hints && facts.literals_searched() {
        b.hints().unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut needs = needs::collect(&facts, &opts.declared, &hints);
    let computed = computed_needs(&b, &facts, opts, &hints);
    needs::add_computed(&mut needs, facts.soname.as_deref(), &computed);
    let names = needs.into_iter().map(|n| n.name).collect();
    Some((facts, names))
}

/// The names an object computes at run time (`loader::computed`): only an
/// object that imports `dlopen` loads anything itself. `hints` are its
/// soname literals when the survey scanned them; cuDNN's recogniser reads
/// them even when hints are off.
fn computed_needs(
    b: &elf::FileBytes,
    facts: &ElfFacts,
    opts: &SurveyOptions,
    hints: &[String],
) -> Vec<computed::Computed> {
    match opts.computed {
        true => computed::computed_of(b, facts, hints),
        false => Vec::new(),
    }
}

/// What kind of special file `path` is, for messages.
pub(crate) fn special_kind(path: &Path) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path).map(|m| m.file_type()) {
        Ok(t) if t.is_fifo() => "a FIFO",
        Ok(t) if t.is_socket() => "a socket",
        Ok(t) if t.is_char_device() => "a character device",
        Ok(t) if t.is_block_device() => "a block device",
        _ => "a special file",
    }
}

/// If the symlink at `path` reaches its file through another store path
/// (a farm) before the one it ends in, say where it should point.
fn farm_link_of(
    path: &Path,
    r: &Resolved,
    roots: &[PathBuf],
    store: &StoreDir,
) -> Option<FarmLink> {
    let own = store.store_path_of(path).map(|s| s.path);
    let last = store.store_path_of(&r.real).map(|s| s.path);
    let farms = intermediate_store_paths(r, own.as_deref(), last.as_deref(), roots);
    if farms.is_empty() {
        return None;
    }
    let name = path.file_name()?.to_str()?;
    let canonical = farm::real_dir(r, name, store)
        .map(|d| d.join(name))
        .filter(|p| p != path)
        .unwrap_or_else(|| r.real.clone());
    Some(FarmLink {
        path: path.to_owned(),
        target: std::fs::read_link(path).ok()?,
        farms,
        canonical,
    })
}

/// A symlink to a directory inside a farm (`lib/deps -> $FARM/lib`, used
/// by a RUNPATH `$ORIGIN/../lib/deps`): when every entry of that directory
/// is the same file as the entry of that name in one real directory outside
/// the farm, the link can point there instead and nothing it offers changes.
/// `None` when the directory joins several real dirs (then `check` reports
/// the link and leaves it to the packager).
fn farm_dir_link(
    path: &Path,
    r: &Resolved,
    roots: &[PathBuf],
    store: &StoreDir,
    farm_cache: &mut HashMap<PathBuf, bool>,
) -> Option<FarmLink> {
    let farm = store.store_path_of(&r.real)?.path;
    if store.store_path_of(path).map(|s| s.path) == Some(farm.clone())
        || roots.iter().any(|root| root.starts_with(&farm))
        || !r.real.is_dir()
    {
        return None;
    }
    let is_farm = *farm_cache
        .entry(farm.clone())
        .or_insert_with(|| crate::farm::is_farm(store, &farm).unwrap_or(false));
    if !is_farm {
        return None;
    }
    let mut real: Option<PathBuf> = None;
    for e in std::fs::read_dir(&r.real).ok()? {
        let entry = e.ok()?.path();
        let name = entry.file_name()?.to_str()?.to_owned();
        let res = farm::resolve(&entry, store).ok()?;
        if res.real.is_dir() {
            return None;
        }
        let d = farm::real_dir(&res, &name, store)?;
        if d.starts_with(&farm) || real.as_ref().is_some_and(|x| *x != d) {
            return None;
        }
        real = Some(d);
    }
    Some(FarmLink {
        path: path.to_owned(),
        target: std::fs::read_link(path).ok()?,
        farms: vec![farm],
        canonical: real?,
    })
}

fn intermediate_store_paths(
    r: &Resolved,
    own: Option<&Path>,
    last: Option<&Path>,
    roots: &[PathBuf],
) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = r
        .hops
        .iter()
        .filter_map(|h| h.to.clone())
        .filter(|p| Some(p.as_path()) != own && Some(p.as_path()) != last)
        .filter(|p| !roots.iter().any(|root| root.starts_with(p)))
        .collect();
    v.sort();
    v.dedup();
    v
}

//! The planner: the canonical RUNPATH of one object (the rule, step by
//! step: `docs/design.md#the-canonical-runpath`).
//!
//! Pure: facts in (the object's ELF facts, its needs, a [`Snapshot`] of every
//! directory involved), plan out. Every decision carries a reason, and the
//! planner proves its own result by re-resolving every need (and, in expand
//! mode, every library the replaced entries offered) against the new path.

mod assemble;
pub(crate) mod classify;
pub mod inputs;
pub mod needs;
pub mod snapshot;
mod verify;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::elf::ElfFacts;
use crate::loader::resolve::{self, LoaderConfig, Requester, SearchDir, Source};
use crate::store::{StoreDir, StorePath};
use needs::Need;
use snapshot::{Snapshot, is_stub_location};

/// The driver dir nixpkgs' `addDriverRunpath` uses.
pub const DEFAULT_DRIVER_DIR: &str = "/run/opengl-driver/lib";

/// How far to go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Never break a program: an indirect entry becomes the real dirs of every
    /// shared library it offers.
    #[default]
    Expand,
    /// Keep only what known needs use.
    Shrink,
}

/// Packager choices.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// Expand (never break a program) or shrink (keep only what needs use).
    pub mode: Mode,
    /// In expand mode too, drop entries outside farms that serve no known
    /// need: stdenv's patchELF's job, done dlopen-aware (the setup hook takes
    /// it over). `Mode::Shrink` implies it.
    pub drop_unused: bool,
    /// Entries to keep whatever they serve: exact text, or a glob with `*`.
    pub keep: Vec<String>,
    /// The driver dir (kept, and put first): [`DEFAULT_DRIVER_DIR`] unless set.
    pub driver_dir: PathBuf,
    /// Put the driver dir first even if the object does not list it.
    pub want_driver: bool,
    /// Build dirs (outside the store) whose entries are dropped, besides `/build`.
    pub build_dirs: Vec<PathBuf>,
    /// Token expansion, working dir and extra default dirs (searched after
    /// the list, never written into it).
    pub loader: LoaderConfig,
    /// Search the interpreter's own dir last, as Nix's ld.so does (its
    /// built-in default path is glibc's `lib`).
    pub interpreter_dir_default: bool,
    /// `--libs`: the inputs' library dirs, in order, candidates for every
    /// need the object's own list does not serve (README "From inputs").
    pub libs: Vec<PathBuf>,
    /// `--runtime-dependency`: dirs added to every object that can dlopen().
    pub runtime_dependencies: Vec<PathBuf>,
    /// `--append-runpath`: dirs appended to every object's list.
    pub append_runpath: Vec<PathBuf>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            mode: Mode::Expand,
            drop_unused: false,
            keep: Vec::new(),
            driver_dir: DEFAULT_DRIVER_DIR.into(),
            want_driver: false,
            build_dirs: Vec::new(),
            loader: LoaderConfig::default(),
            interpreter_dir_default: true,
            libs: Vec::new(),
            runtime_dependencies: Vec::new(),
            append_runpath: Vec::new(),
        }
    }
}

/// The dirs the loader falls back to after the list: configured default dirs,
/// then the interpreter's dir.
pub fn fallback_dirs(facts: &ElfFacts, opts: &PlanOptions) -> Vec<PathBuf> {
    // The host's ld.so searches its default dirs, Nix's its own lib dir.
    let cfg = opts.loader.for_file(facts.interpreter.as_deref(), None);
    let mut v = cfg.default_dirs.clone();
    if opts.interpreter_dir_default
        && cfg.model == crate::loader::resolve::LoaderModel::Nix
        && let Some(d) = facts
            .interpreter
            .as_deref()
            .and_then(|i| Path::new(i).parent())
        && !v.iter().any(|x| x == d)
    {
        v.push(d.to_owned());
    }
    v
}

/// Which dynamic entry a plan rewrites. RPATH stays RPATH, RUNPATH stays RUNPATH.
pub use crate::elf::SearchPathTag as Tag;

/// Why a search-list entry is insecure: the loader searches it from the
/// current directory. Serialised as its sentence (the `why` of the
/// `insecure` reason in docs/check-json.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insecurity {
    /// An empty entry (`a::b`, a leading or trailing `:`).
    Empty,
    /// A relative entry (`lib`, `./lib`).
    Relative,
}

impl Insecurity {
    /// The sentence (the JSON string and the finding's message).
    pub fn as_str(self) -> &'static str {
        match self {
            Insecurity::Empty => "empty entry: the loader searches the current directory",
            Insecurity::Relative => {
                "relative entry: the loader searches it from the current directory"
            }
        }
    }
}

named_by_as_str!(Insecurity);

/// Why an entry went, stayed, or was replaced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reason {
    /// It served this need (through a cross-path hop when `via_farm`).
    Served {
        /// The need's name.
        need: String,
        /// Reached through a cross-path hop.
        via_farm: bool,
    },
    /// An indirect entry: it offers libraries through links into other store
    /// paths; `farms` are the store paths those links pass through.
    Indirect {
        /// How many loadable libraries the entry offers.
        offers: usize,
        /// The farm store paths behind it.
        farms: Vec<PathBuf>,
    },
    /// Served no need.
    Unused,
    /// A stub dir (fake `libcuda.so` and friends): shadows the real driver.
    Stub,
    /// It offers libraries that resolve to a stub, directly or through a
    /// link (cudart's `lib/libcuda.so -> stubs/libcuda.so`, nixpkgs
    /// #293320): the driver dir must come before it, or a program loads the
    /// fake driver. The new list puts the driver dir first.
    OffersStub {
        /// The stub names it offers, and the stub each reaches.
        stubs: Vec<snapshot::StubOffer>,
        /// The driver dir.
        driver: PathBuf,
        /// Where the old list has the driver dir (None: not at all).
        driver_index: Option<usize>,
    },
    /// A build dir outside the store.
    BuildDir,
    /// Empty or relative: searched from the current directory.
    Insecure {
        /// Which of the two.
        why: Insecurity,
    },
    /// `$ORIGIN`-relative: always kept.
    Origin,
    /// The driver dir: kept, first.
    Driver,
    /// Matches a `--keep` pattern.
    KeptByPattern {
        /// The pattern as given.
        pattern: String,
    },
    /// A need is missing, so unused entries are not dropped (it may be meant to live there).
    MissingNeedGuard {
        /// The first missing required need.
        need: String,
    },
    /// In the ignored DT_RPATH of an object that also has DT_RUNPATH.
    IgnoredList,
    /// The same directory as an earlier entry: the loader finds nothing here
    /// that it did not find there.
    Duplicate {
        /// Index of the earlier entry.
        of: usize,
    },
    /// Once the replaced entries' real dirs are in place, nothing is served
    /// from here any more (`--shrink`).
    Redundant,
    /// A dir of the outputs themselves that reaches libraries through links
    /// into other store paths: never a farm, never replaced (`fix`
    /// retargets a link in it that goes through a farm).
    OwnOutput,
    /// The object cannot `dlopen()` (it imports none of `dlopen`,
    /// `dlmopen`, `dlsym`) and its list is DT_RUNPATH, which serves its own
    /// needs only: a farm gives it the real dirs of its needs, not every
    /// library it offered.
    CannotDlopen,
}

/// What happens to one entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Kept as spelled.
    Keep,
    /// Removed from the list.
    Drop,
    /// Removed, its place taken by these real dirs.
    Replace {
        /// The real dirs, in order.
        with: Vec<String>,
    },
}

/// The plan for one entry of the old list.
#[derive(Clone, Debug, Serialize)]
pub struct EntryPlan {
    /// Position in the old list.
    pub index: usize,
    /// The entry as written.
    pub text: String,
    /// The entry after token expansion.
    pub dir: PathBuf,
    /// What happens to it.
    #[serde(flatten)]
    pub action: Action,
    /// Why, every rule that applied.
    pub reasons: Vec<Reason>,
}

/// A need before and after.
#[derive(Clone, Debug, Serialize)]
pub struct NeedPlan {
    /// The need.
    #[serde(flatten)]
    pub need: Need,
    /// Real file before; None when not found.
    pub before: Option<PathBuf>,
    /// Index of the old entry that served it.
    pub served_by: Option<usize>,
    /// Reached through a cross-path hop before.
    pub via_farm: bool,
    /// Real file after, under the new path.
    pub after: Option<PathBuf>,
    /// The loader would fail on this need before (not ELF, ...).
    pub error: Option<String>,
    /// The need resolved to a stub before (dropping it is intended).
    pub was_stub: bool,
}

/// Whether the plan changes the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Outcome {
    /// The new list is the old one.
    Unchanged,
    /// The file gets the new list.
    Change,
    /// The planner could not prove a new path equivalent; the file is left alone.
    Refused {
        /// Why no equivalent list was found.
        reason: Refusal,
    },
}

/// Why the planner found no list it could prove equivalent (one variant
/// per refusal it makes). Shown and serialised as its one-line text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// An indirect entry serves `need`, and the farm is the only place a
    /// file of that name lives (step 3).
    #[error(
        "{need} is offered by {entry} only through the farm: no directory outside it holds a file of that name"
    )]
    OnlyThroughFarm {
        /// The need the entry served.
        need: String,
        /// The entry as written.
        entry: String,
    },
    /// Libraries that land on another file under the new list, and no
    /// reordering can help (step 6).
    #[error("no equivalent order: {}", Misresolved::join(.misses))]
    NoEquivalentOrder {
        /// Each library, where it would land and where it must.
        misses: Vec<Misresolved>,
    },
    /// Reordering went on without settling (step 6).
    #[error("no order of the real dirs resolves every library as before")]
    OrderUnsettled,
    /// Two libraries each need the other's dir first (step 6).
    #[error("two libraries need opposite orders of the same dirs")]
    OppositeOrders,
}

impl Serialize for Refusal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A library the new list would resolve to another file than before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Misresolved {
    /// The library's name.
    pub name: String,
    /// The file it would load under the new list (None: nothing).
    pub got: Option<PathBuf>,
    /// The file it loaded before.
    pub want: PathBuf,
}

impl Misresolved {
    fn join(misses: &[Misresolved]) -> String {
        misses
            .iter()
            .map(Misresolved::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl std::fmt::Display for Misresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} would resolve to ", self.name)?;
        match &self.got {
            Some(p) => write!(f, "{}", p.display())?,
            None => f.write_str("nothing")?,
        }
        write!(f, " instead of {}", self.want.display())
    }
}

/// The plan for one search list of one object.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// The object's path as walked.
    pub path: PathBuf,
    /// Which list (DT_RUNPATH or DT_RPATH).
    pub tag: Tag,
    /// The list as the file has it.
    pub old: String,
    /// The planned list.
    pub new: String,
    /// What happens to each old entry.
    pub entries: Vec<EntryPlan>,
    /// Each need, before and after.
    pub needs: Vec<NeedPlan>,
    /// Whether the file changes.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Store paths named by the old list and not by the new one.
    pub removed_store_paths: Vec<PathBuf>,
    /// Hash parts of `removed_store_paths` (what Nix's scanner would find).
    #[serde(skip)]
    pub removed_hashes: Vec<String>,
    /// Libraries the replaced entries offered, checked to resolve the same.
    pub offered_checked: usize,
    /// What the planner could not see (an object that dlopen()s unknown names).
    pub warnings: Vec<String>,
    /// Dirs the old list did not have that the new one gains (`--libs`,
    /// the outputs' own library dirs, `--runtime-dependency`,
    /// `--append-runpath`), and why.
    pub added: Vec<inputs::Added>,
}

impl Plan {
    /// The plan rewrites the list.
    pub fn changes(&self) -> bool {
        self.outcome == Outcome::Change
    }
}

/// Everything the planner reads.
pub struct PlanInput<'a> {
    /// The object's path as walked (its `$ORIGIN` is the dir).
    pub path: &'a Path,
    /// Its ELF facts (search lists, class, machine, interpreter).
    pub facts: &'a ElfFacts,
    /// What it loads ([`needs::collect`]).
    pub needs: &'a [Need],
    /// Every dir the plan may look into ([`dirs_to_gather`], [`fallback_dirs`]).
    pub snapshot: &'a Snapshot,
    /// The store dir.
    pub store: &'a StoreDir,
    /// The packager's choices.
    pub opts: &'a PlanOptions,
    /// The outputs of this run (store paths, or the roots themselves when
    /// outside the store): their dirs, and the object's own store path,
    /// are never a farm ([`PlanInput::is_own_dir`]).
    pub outputs: &'a [PathBuf],
    /// The outputs' own library dirs, searched before `--libs` for a need
    /// the object's list does not serve (empty unless `--libs` is given).
    pub own_libs: &'a [PathBuf],
}

/// The directories a plan for this object will read: the survey gathers
/// them into the [`Snapshot`] before planning.
/// (The fallback dirs, [`fallback_dirs`], are gathered separately and only
/// for the names a plan may look up there.)
pub fn dirs_to_gather(path: &Path, facts: &ElfFacts, opts: &PlanOptions) -> Vec<PathBuf> {
    let origin = path.parent().unwrap_or(Path::new("/"));
    let mut out = Vec::new();
    for list in [&facts.runpath, &facts.rpath].into_iter().flatten() {
        for e in list.split(':') {
            out.push(resolve::expand_entry(e, origin, &opts.loader, &facts.ident));
        }
    }
    out.push(opts.driver_dir.clone());
    out.extend(opts.libs.iter().cloned());
    out
}

/// What planning an object reads besides its path: objects that agree on it
/// get the same plans (but for [`Plan::path`]). A package's many libraries
/// typically share one search list and one set of needs.
#[derive(PartialEq, Eq, Hash)]
struct PlanKey<'a> {
    /// The object's dir, only when a list has a `$` token (`$ORIGIN`) or a
    /// need is named by a path.
    origin: Option<&'a Path>,
    runpath: Option<&'a str>,
    rpath: Option<&'a str>,
    ident: crate::elf::ElfIdent,
    nodeflib: bool,
    imports_dlopen: bool,
    /// [`ElfFacts::may_dlopen`]: whether a farm expands for it.
    may_dlopen: bool,
    interpreter: Option<&'a str>,
    needs: &'a [Need],
    /// The object's own store path when it is not one of the run's
    /// outputs: its dirs are own dirs for this object alone.
    own: Option<PathBuf>,
}

impl PlanInput<'_> {
    /// Whether `dir` is a dir of the outputs themselves: inside the
    /// object's own store path or an output of this run, however the entry
    /// reaches it (`$ORIGIN`, an absolute path, `..` hops: read
    /// lexically, as the loader joins the entry's text). Such a dir is never
    /// a farm and never replaced by other dirs: a sibling output the hook
    /// passes with it (`out`, `lib`, `bin`) is a real output too, and a
    /// link in it that goes through a farm is retargeted by `fix`.
    pub fn is_own_dir(&self, dir: &Path) -> bool {
        let dir = crate::store::normalize_lexically(dir);
        let own = self.store.store_path_of(self.path).map(|p| p.path);
        own.iter().chain(self.outputs).any(|o| dir.starts_with(o))
    }

    /// What this object's plans depend on, besides its path.
    fn key(&self) -> PlanKey<'_> {
        let f = self.facts;
        // The dir matters to `$ORIGIN` in a search list, and to a need
        // named by path (`$ORIGIN/../lib/libx.so`, or relative).
        let tokens = [&f.runpath, &f.rpath]
            .into_iter()
            .flatten()
            .any(|l| l.contains('$'))
            || self.needs.iter().any(|n| n.name.contains(['/', '$']))
            // An own library dir is written `$ORIGIN`-relative.
            || !self.own_libs.is_empty();
        PlanKey {
            origin: tokens.then(|| self.path.parent().unwrap_or(Path::new("/"))),
            runpath: f.runpath.as_deref(),
            rpath: f.rpath.as_deref(),
            ident: f.ident,
            nodeflib: f.nodeflib,
            imports_dlopen: f.imports_dlopen,
            may_dlopen: f.may_dlopen(),
            interpreter: f.interpreter.as_deref(),
            needs: self.needs,
            own: self
                .store
                .store_path_of(self.path)
                .map(|p| p.path)
                .filter(|p| !self.outputs.iter().any(|o| p.starts_with(o))),
        }
    }
}

/// [`plan_object`] for many objects (sharing snapshot, store and options),
/// in parallel, planning each distinct key (what the plans depend on
/// besides the path) once.
pub fn plan_objects(inputs: &[PlanInput]) -> Vec<Vec<Plan>> {
    use rayon::prelude::*;
    let mut first: std::collections::HashMap<PlanKey, usize> = Default::default();
    let group: Vec<usize> = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| *first.entry(input.key()).or_insert(i))
        .collect();
    let mut planned: Vec<Option<Vec<Plan>>> = inputs
        .par_iter()
        .enumerate()
        .map(|(i, input)| (group[i] == i).then(|| plan_object(input)))
        .collect();
    // Backwards: every copy is made before its group's first plan moves out.
    let mut out: Vec<Vec<Plan>> = (0..inputs.len())
        .rev()
        .map(|i| match planned[i].take() {
            Some(plans) => plans,
            None => planned[group[i]]
                .iter()
                .flatten()
                .map(|p| Plan {
                    path: inputs[i].path.to_owned(),
                    ..p.clone()
                })
                .collect(),
        })
        .collect();
    out.reverse();
    out
}

/// Plan every search list of one object: the effective one (RUNPATH, or
/// RPATH when there is no RUNPATH) and, when both exist, the ignored RPATH
/// (it serves nothing at run time but still keeps references alive).
pub fn plan_object(input: &PlanInput) -> Vec<Plan> {
    let f = input.facts;
    let mut plans = Vec::new();
    match (&f.runpath, &f.rpath) {
        (Some(rp), rpath) => {
            plans.push(plan_to_fixpoint(input, Tag::Runpath, rp));
            if let Some(r) = rpath {
                plans.push(plan_list(input, Tag::Rpath, r, false));
            }
        }
        (None, Some(r)) => plans.push(plan_to_fixpoint(input, Tag::Rpath, r)),
        (None, None) => {
            let o = input.opts;
            let from_inputs = !o.libs.is_empty()
                || !o.append_runpath.is_empty()
                || (!o.runtime_dependencies.is_empty() && f.may_dlopen());
            if from_inputs || (o.want_driver && needs_driver(input)) {
                plans.push(plan_to_fixpoint(input, Tag::Runpath, ""));
            }
        }
    }
    plans
}

/// Plan the effective list, then plan again over the result until nothing
/// changes, so that one `fix` reaches the path a second `fix` would keep:
/// with `--shrink`, an entry that served a need before may serve nothing once
/// the farm's real dirs come first. Every round is proven equivalent to the
/// one before it, so the last is equivalent to the original.
fn plan_to_fixpoint(input: &PlanInput, tag: Tag, list: &str) -> Plan {
    let mut plan = plan_list(input, tag, list, true);
    for _ in 0..4 {
        if !plan.changes() {
            break;
        }
        let next = plan_list(input, tag, &plan.new, true);
        if next.outcome != Outcome::Change {
            break;
        }
        absorb(&mut plan, next, input.store);
    }
    plan
}

/// Fold a further round into `plan`: its new path, the needs' final files,
/// and what became of the original entries.
fn absorb(plan: &mut Plan, next: Plan, store: &StoreDir) {
    let kept: std::collections::HashSet<&str> = next.new.split(':').collect();
    for e in &mut plan.entries {
        match &mut e.action {
            Action::Keep if !kept.contains(e.text.as_str()) => {
                e.action = Action::Drop;
                e.reasons.push(Reason::Redundant);
            }
            Action::Replace { with } => {
                with.retain(|w| kept.contains(w.as_str()));
                if with.is_empty() {
                    e.action = Action::Drop;
                    e.reasons.push(Reason::Redundant);
                }
            }
            _ => {}
        }
    }
    for (n, m) in plan.needs.iter_mut().zip(&next.needs) {
        n.after = m.after.clone();
    }
    for w in next.warnings {
        if !plan.warnings.contains(&w) {
            plan.warnings.push(w);
        }
    }
    for a in next.added {
        if !plan.added.iter().any(|b| b.text == a.text) {
            plan.added.push(a);
        }
    }
    plan.new = next.new;
    let removed = removed_store_paths(&plan.old, &plan.new, store);
    plan.removed_hashes = removed.iter().map(|p| p.hash.clone()).collect();
    plan.removed_store_paths = removed.into_iter().map(|p| p.path).collect();
    plan.outcome = if plan.new == plan.old {
        Outcome::Unchanged
    } else {
        Outcome::Change
    };
}

/// Store paths named by `old` and not by `new`.
fn removed_store_paths(old: &str, new: &str, store: &StoreDir) -> Vec<StorePath> {
    let new_sp = store_paths_in(new, store);
    store_paths_in(old, store)
        .into_iter()
        .filter(|p| !new_sp.iter().any(|q| q.hash == p.hash))
        .collect()
}

/// An object with no search path gets one only to add a requested driver dir
/// it can use (it asks for a library the driver dir offers).
fn needs_driver(input: &PlanInput) -> bool {
    input
        .snapshot
        .dir(&input.opts.driver_dir)
        .is_some_and(|d| input.needs.iter().any(|n| d.entries.contains_key(&n.name)))
}

fn store_paths_in(list: &str, store: &StoreDir) -> Vec<StorePath> {
    let mut v: Vec<StorePath> = list
        .split(':')
        .filter_map(|e| store.store_path_of(Path::new(e)))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// One list being planned: the object, the loader it is searched with,
/// and the list's old entries. Steps 2-6 read it.
struct ListContext<'a> {
    input: &'a PlanInput<'a>,
    /// The effective list (else the ignored DT_RPATH: planned for its
    /// references only, nothing is resolved through it).
    effective: bool,
    /// Whether unused entries go (`--shrink`, or `--drop-unused` when every
    /// name the object may dlopen() is known).
    drop_unused: bool,
    /// The list is the object's DT_RUNPATH and the object cannot call
    /// `dlopen()`: the list serves its own needs and nothing else (glibc
    /// searches the caller's RUNPATH; a RUNPATH is not inherited), so a
    /// farm gives it the real dirs of its needs only, in every mode.
    only_needs: bool,
    req: Requester,
    cfg: LoaderConfig,
    origin: PathBuf,
    source: Source,
    old_dirs: Vec<SearchDir>,
}

impl<'a> ListContext<'a> {
    fn new(input: &'a PlanInput<'a>, tag: Tag, list: &str, effective: bool) -> Self {
        let opts = input.opts;
        let facts = input.facts;
        let drop_unused = opts.mode == Mode::Shrink || (opts.drop_unused && dlopen_known(input));
        let req = Requester {
            path: input.path.to_owned(),
            ident: facts.ident,
            runpath: None,
            rpath: None,
            nodeflib: facts.nodeflib,
        };
        // Planning never models the environment or the host's ld.so.cache; the
        // default dirs are searched after the list but never written into it.
        let cfg = LoaderConfig {
            ld_library_path: None,
            default_dirs: fallback_dirs(facts, opts),
            ld_so_cache: None,
            ..opts.loader.clone()
        };
        let origin = req.origin();
        let source = Source::of_tag(tag, input.path);
        let only_needs = effective && tag == Tag::Runpath && !facts.may_dlopen();
        let old_dirs = if list.is_empty() {
            Vec::new()
        } else {
            resolve::search_dirs(list, &source, &origin, &cfg, &facts.ident)
        };
        ListContext {
            input,
            effective,
            drop_unused,
            only_needs,
            req,
            cfg,
            origin,
            source,
            old_dirs,
        }
    }

    /// Resolve `name` in `dirs` as this object's loader would.
    fn resolve(&self, name: &str, dirs: &[SearchDir]) -> resolve::NeedResolution {
        resolve::resolve_in(name, dirs, &self.req, &self.cfg, self.input.snapshot)
    }
}

/// Whether every name this object may dlopen() is known: it imports no
/// dlopen, or the packager or a `.note.dlopen` says what it opens.
/// `--drop-unused` (patchELF's job) drops an unused entry only then: a
/// computed name could be served by any entry (recognised computed names
/// are needs, but do not prove that nothing else is loaded).
fn dlopen_known(input: &PlanInput) -> bool {
    !input.facts.imports_dlopen
        || input.needs.iter().any(|n| {
            n.provenance.iter().any(|p| {
                matches!(
                    p,
                    needs::Provenance::Declared | needs::Provenance::Note { .. }
                )
            })
        })
}

/// Plan one list: resolve the needs with it (1), decide each entry (2-4),
/// assemble the new list (4-5), verify it (6).
fn plan_list(input: &PlanInput, tag: Tag, list: &str, effective: bool) -> Plan {
    let ctx = ListContext::new(input, tag, list, effective);
    // 1. Resolve every need with the current path.
    let mut needs = resolve_needs(&ctx);
    let missing_required: Option<String> = needs
        .iter()
        .find(|n| {
            effective
                && n.before.is_none()
                && n.need.is_required()
                // glibc's libraries come with the loading program: not a
                // missing need that should keep unused entries.
                && !resolve::provided_by_process(
                    &n.need.name,
                    &input.facts.ident,
                    input.facts.interpreter.as_deref(),
                )
        })
        .map(|n| n.need.name.clone());
    // 2-4. Decide each entry.
    let classify::Classified {
        entries,
        mut refusal,
        mut offered_names,
    } = classify::classify_entries(&ctx, &needs, missing_required.as_deref());
    // 4-5. Assemble: driver first, then first use, no duplicates.
    let mut new = assemble::assemble(&entries, input.opts, effective);
    if effective {
        assemble::driver_before_stubs(&mut new, input.opts, input.snapshot);
    }
    let mut expected = verify::expected_files(&ctx, &needs, &mut offered_names);
    // 5b. Dirs from outside the list: --libs, own library dirs, runtime
    // dependencies, appended dirs.
    let added = if effective {
        inputs::add_from_inputs(&ctx, &needs, &mut new, &mut expected)
    } else {
        Vec::new()
    };
    // 6. Verify, reordering where two real dirs offer one name.
    if refusal.is_none()
        && effective
        && let Err(why) = verify::order_and_verify(&ctx, &mut new, &expected)
    {
        refusal = Some(why);
    }
    if effective {
        verify::resolve_after(&ctx, &mut needs, &new);
    }
    let new_text = new
        .iter()
        .map(|e| e.text.as_str())
        .collect::<Vec<_>>()
        .join(":");
    let mut warnings = Vec::new();
    if effective && input.opts.mode == Mode::Shrink && !dlopen_known(input) {
        warnings.push(
            "imports dlopen but declares no dlopen needs (no --dlopen, no .note.dlopen): libraries it computes names for cannot be seen".into(),
        );
    }
    let removed = removed_store_paths(list, &new_text, input.store);
    let outcome = match refusal {
        Some(reason) => Outcome::Refused { reason },
        None if new_text == list => Outcome::Unchanged,
        None => Outcome::Change,
    };
    Plan {
        path: input.path.to_owned(),
        tag,
        old: list.to_owned(),
        new: new_text,
        entries,
        needs,
        outcome,
        removed_hashes: removed.iter().map(|p| p.hash.clone()).collect(),
        removed_store_paths: removed.into_iter().map(|p| p.path).collect(),
        offered_checked: expected.len(),
        warnings,
        added,
    }
}

/// Step 1: where each need resolves under the old list, and which entry
/// served it. The ignored list serves nothing.
fn resolve_needs(ctx: &ListContext) -> Vec<NeedPlan> {
    ctx.input
        .needs
        .iter()
        .map(|n| {
            let r = ctx.resolve(&n.name, &ctx.old_dirs);
            let (before, served_by, via_farm) = match (&r.found, ctx.effective) {
                (Some(f), true) => (
                    Some(f.resolved.real.clone()),
                    // Only entries of this list serve; default dirs are fallbacks.
                    f.by.as_ref()
                        .filter(|b| b.source == ctx.source)
                        .map(|b| b.index),
                    f.resolved.crosses(),
                ),
                _ => (None, None, false),
            };
            let was_stub = before
                .as_deref()
                .is_some_and(|p| is_stub_location(p, ctx.input.store));
            NeedPlan {
                need: n.clone(),
                before,
                served_by,
                via_farm,
                after: None,
                error: r.error.filter(|_| ctx.effective),
                was_stub,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::ObjectType;

    /// The planner is pure: a relative entry is read against the working
    /// dir the caller passes in (`/` when none), never the process's own.
    #[test]
    fn relative_entries_use_the_cwd_passed_in() {
        let facts = ElfFacts {
            runpath: Some("lib".into()),
            ..ElfFacts::test_object(ObjectType::Dyn)
        };
        let obj = Path::new("/nix/store/x/bin/p");
        let mut opts = PlanOptions::default();
        assert_eq!(dirs_to_gather(obj, &facts, &opts)[0], Path::new("/lib"));
        opts.loader.cwd = Some("/work/dir".into());
        assert_eq!(
            dirs_to_gather(obj, &facts, &opts)[0],
            Path::new("/work/dir/lib")
        );
    }

    /// A refusal is a typed value; users and the JSON see the one line
    /// the planner wrote before (`"reason"` stays a string).
    #[test]
    fn refusals_read_as_before() {
        let r = Refusal::NoEquivalentOrder {
            misses: vec![
                Misresolved {
                    name: "liba.so".into(),
                    got: Some("/b/liba.so".into()),
                    want: "/a/liba.so".into(),
                },
                Misresolved {
                    name: "libc2.so".into(),
                    got: None,
                    want: "/c/libc2.so".into(),
                },
            ],
        };
        let line = "no equivalent order: liba.so would resolve to /b/liba.so instead of /a/liba.so; libc2.so would resolve to nothing instead of /c/libc2.so";
        assert_eq!(r.to_string(), line);
        let json = serde_json::to_value(Outcome::Refused { reason: r }).unwrap();
        assert_eq!(json["status"], "refused");
        assert_eq!(json["reason"], line);
        let farm = Refusal::OnlyThroughFarm {
            need: "libx.so".into(),
            entry: "$ORIGIN/../farm".into(),
        };
        assert_eq!(
            farm.to_string(),
            "libx.so is offered by $ORIGIN/../farm only through the farm: no directory outside it holds a file of that name"
        );
    }
}

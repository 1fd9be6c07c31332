//! The planner: the canonical RUNPATH of one object (DESIGN.md §4).
//!
//! Pure: facts in (the object's ELF facts, its needs, a [`Snapshot`] of every
//! directory involved), plan out. Every decision carries a reason, and the
//! planner proves its own result by re-resolving every need (and, in expand
//! mode, every library the replaced entries offered) against the new path.

pub mod needs;
pub mod snapshot;

use std::collections::BTreeMap;
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
    pub mode: Mode,
    /// In expand mode too, drop entries outside farms that serve no known
    /// need: stdenv's patchELF's job, done dlopen-aware (the setup hook takes
    /// it over). `Mode::Shrink` implies it.
    pub drop_unused: bool,
    /// Entries to keep whatever they serve: exact text, or a glob with `*`.
    pub keep: Vec<String>,
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

/// Why an entry went, stayed, or was replaced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reason {
    /// It served this need (through a cross-path hop when `via_farm`).
    Served { need: String, via_farm: bool },
    /// An indirect entry: it offers libraries through links into other store
    /// paths; `farms` are the store paths those links pass through.
    Indirect { offers: usize, farms: Vec<PathBuf> },
    /// Served no need.
    Unused,
    /// A stub dir (fake `libcuda.so` and friends): shadows the real driver.
    Stub,
    /// A build dir outside the store.
    BuildDir,
    /// Empty or relative: searched from the current directory.
    Insecure { why: String },
    /// `$ORIGIN`-relative: always kept.
    Origin,
    /// The driver dir: kept, first.
    Driver,
    /// Matches a `--keep` pattern.
    KeptByPattern { pattern: String },
    /// A need is missing, so unused entries are not dropped (it may be meant to live there).
    MissingNeedGuard { need: String },
    /// In the ignored DT_RPATH of an object that also has DT_RUNPATH.
    IgnoredList,
    /// The same directory as an earlier entry: the loader finds nothing here
    /// that it did not find there.
    Duplicate { of: usize },
    /// Once the replaced entries' real dirs are in place, nothing is served
    /// from here any more (`--shrink`).
    Redundant,
}

/// What happens to one entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    Keep,
    Drop,
    Replace { with: Vec<String> },
}

/// The plan for one entry of the old list.
#[derive(Clone, Debug, Serialize)]
pub struct EntryPlan {
    pub index: usize,
    pub text: String,
    pub dir: PathBuf,
    #[serde(flatten)]
    pub action: Action,
    pub reasons: Vec<Reason>,
}

/// A need before and after.
#[derive(Clone, Debug, Serialize)]
pub struct NeedPlan {
    #[serde(flatten)]
    pub need: Need,
    /// Real file before; None when not found.
    pub before: Option<PathBuf>,
    /// Index of the old entry that served it.
    pub served_by: Option<usize>,
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
    Unchanged,
    Change,
    /// The planner could not prove a new path equivalent; the file is left alone.
    Refused {
        reason: String,
    },
}

/// The plan for one search list of one object.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub path: PathBuf,
    pub tag: Tag,
    pub old: String,
    pub new: String,
    pub entries: Vec<EntryPlan>,
    pub needs: Vec<NeedPlan>,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Store paths named by the old list and not by the new one.
    pub removed_store_paths: Vec<PathBuf>,
    /// Hash parts of `removed_store_paths` (what Nix's scanner would find).
    #[serde(skip)]
    pub removed_hashes: Vec<String>,
    /// Libraries the replaced entries offered, checked to resolve the same.
    pub offered_checked: usize,
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn changes(&self) -> bool {
        self.outcome == Outcome::Change
    }
}

/// Everything the planner reads.
pub struct PlanInput<'a> {
    /// The object's path as walked (its `$ORIGIN` is the dir).
    pub path: &'a Path,
    pub facts: &'a ElfFacts,
    pub needs: &'a [Need],
    pub snapshot: &'a Snapshot,
    pub store: &'a StoreDir,
    pub opts: &'a PlanOptions,
}

/// The directories a plan for this object will read: hand them to the
/// [`snapshot::Gatherer`] before planning.
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
    out
}

/// What planning an object reads besides its path: objects that agree on it
/// get the same plans (but for [`Plan::path`]). A package's many libraries
/// typically share one search list and one set of needs.
#[derive(PartialEq, Eq, Hash)]
pub struct PlanKey<'a> {
    /// The object's dir, only when a list has a `$` token (`$ORIGIN`) or a
    /// need is named by a path.
    origin: Option<&'a Path>,
    runpath: Option<&'a str>,
    rpath: Option<&'a str>,
    ident: crate::elf::ElfIdent,
    nodeflib: bool,
    imports_dlopen: bool,
    interpreter: Option<&'a str>,
    needs: &'a [Need],
}

impl PlanInput<'_> {
    pub fn key(&self) -> PlanKey<'_> {
        let f = self.facts;
        // The dir matters to `$ORIGIN` in a search list, and to a need
        // named by path (`$ORIGIN/../lib/libx.so`, or relative).
        let tokens = [&f.runpath, &f.rpath]
            .into_iter()
            .flatten()
            .any(|l| l.contains('$'))
            || self.needs.iter().any(|n| n.name.contains(['/', '$']));
        PlanKey {
            origin: tokens.then(|| self.path.parent().unwrap_or(Path::new("/"))),
            runpath: f.runpath.as_deref(),
            rpath: f.rpath.as_deref(),
            ident: f.ident,
            nodeflib: f.nodeflib,
            imports_dlopen: f.imports_dlopen,
            interpreter: f.interpreter.as_deref(),
            needs: self.needs,
        }
    }
}

/// [`plan_object`] for many objects (sharing snapshot, store and options),
/// in parallel, planning each distinct [`PlanKey`] once.
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
            if input.opts.want_driver && needs_driver(input) {
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

fn glob_match(pat: &str, text: &str) -> bool {
    let parts: Vec<&str> = pat.split('*').collect();
    if parts.len() == 1 {
        return pat == text;
    }
    let mut rest = text;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            match rest.find(p) {
                Some(pos) => rest = &rest[pos + p.len()..],
                None => return false,
            }
        }
    }
    true
}

/// The store paths, other than the object's own, through which `dir`
/// offers its libraries by a cross-path hop (where a link is followed out
/// of them, before the store path the file is in): the farms behind it.
fn farms_behind(input: &PlanInput, dir: Option<&snapshot::DirSnapshot>) -> Vec<PathBuf> {
    let own = input.store.store_path_of(input.path).map(|p| p.path);
    let mut farms: Vec<PathBuf> = dir
        .into_iter()
        .flat_map(|d| d.entries.iter())
        .filter(|(n, o)| {
            o.is_loadable_library(n)
                && o.elf
                    .is_some_and(|(i, _)| input.facts.ident.loadable_by(&i))
        })
        .filter_map(|(_, o)| o.resolved.as_ref())
        .flat_map(|r| {
            let last = input.store.store_path_of(&r.real).map(|p| p.path);
            r.hops
                .iter()
                .filter(|h| h.is_cross_path())
                .filter_map(|h| h.from.clone())
                .filter(move |f| Some(f) != last.as_ref())
        })
        .filter(|f| Some(f) != own.as_ref())
        .collect();
    farms.sort();
    farms.dedup();
    farms
}

fn is_origin(text: &str) -> bool {
    text.starts_with("$ORIGIN") || text.starts_with("${ORIGIN}")
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

/// A new entry under construction.
#[derive(Clone, Debug)]
struct NewEntry {
    text: String,
    dir: PathBuf,
    /// Pinned first (the driver dir).
    first: bool,
}

fn plan_list(input: &PlanInput, tag: Tag, list: &str, effective: bool) -> Plan {
    let opts = input.opts;
    let facts = input.facts;
    let snap = input.snapshot;
    // Whether every name this object may dlopen() is known: it imports no
    // dlopen, or the packager or a `.note.dlopen` says what it opens.
    // `--drop-unused` (patchELF's job) drops an unused entry only then: a
    // computed name could be served by any entry.
    let dlopen_known = !facts.imports_dlopen
        || input.needs.iter().any(|n| {
            n.provenance.iter().any(|p| {
                matches!(
                    p,
                    needs::Provenance::Declared | needs::Provenance::Note { .. }
                )
            })
        });
    let drop_unused = opts.mode == Mode::Shrink || (opts.drop_unused && dlopen_known);
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
    let source = match tag {
        Tag::Runpath => Source::Runpath,
        Tag::Rpath => Source::Rpath {
            owner: input.path.to_owned(),
            depth: 0,
        },
    };
    let old_dirs: Vec<SearchDir> = if list.is_empty() {
        Vec::new()
    } else {
        resolve::search_dirs(list, &source, &origin, &cfg, &facts.ident)
    };

    // 1. Resolve every need with the current path.
    let mut needs: Vec<NeedPlan> = input
        .needs
        .iter()
        .map(|n| {
            let r = resolve::resolve_in(&n.name, &old_dirs, &req, &cfg, snap);
            let (before, served_by, via_farm) = match (&r.found, effective) {
                (Some(f), true) => (
                    Some(f.resolved.real.clone()),
                    // Only entries of this list serve; default dirs are fallbacks.
                    f.by.as_ref()
                        .filter(|b| b.source == source)
                        .map(|b| b.index),
                    f.resolved.crosses(),
                ),
                _ => (None, None, false),
            };
            let was_stub = before
                .as_deref()
                .is_some_and(|p| is_stub_location(p, input.store));
            NeedPlan {
                need: n.clone(),
                before,
                served_by,
                via_farm,
                after: None,
                error: r.error.filter(|_| effective),
                was_stub,
            }
        })
        .collect();
    let missing_required: Option<String> = needs
        .iter()
        .find(|n| effective && n.before.is_none() && n.need.is_required())
        .map(|n| n.need.name.clone());

    // 2-4. Decide each entry.
    let mut entries: Vec<EntryPlan> = Vec::new();
    let mut refusal: Option<String> = None;
    let mut warnings = Vec::new();
    let mut offered_names: Vec<String> = Vec::new();
    for sd in &old_dirs {
        let served: Vec<&NeedPlan> = needs
            .iter()
            .filter(|n| n.served_by == Some(sd.index))
            .collect();
        let mut reasons: Vec<Reason> = served
            .iter()
            .map(|n| Reason::Served {
                need: n.need.name.clone(),
                via_farm: n.via_farm,
            })
            .collect();
        let dir_snap = snap.dir(&sd.dir);
        let text = sd.text.as_str();
        let keep_pat = opts.keep.iter().find(|p| glob_match(p, text));
        let first = old_dirs.iter().find(|d| d.dir == sd.dir).map(|d| d.index);
        let action = if text.is_empty() {
            reasons.push(Reason::Insecure {
                why: "empty entry: the loader searches the current directory".into(),
            });
            Action::Drop
        } else if is_origin(text) && farms_behind(input, dir_snap).is_empty() {
            // Relative to the object and inside its own store path: kept
            // as spelled. One that leads into a farm (through a directory
            // link, or climbing out: `$ORIGIN/../../<farm>/lib`) is planned
            // like any other entry below.
            reasons.push(Reason::Origin);
            Action::Keep
        } else if sd.dir == opts.driver_dir {
            reasons.push(Reason::Driver);
            Action::Keep
        } else if let Some(p) = keep_pat {
            reasons.push(Reason::KeptByPattern { pattern: p.clone() });
            Action::Keep
        } else if let Some(of) = first.filter(|&i| i < sd.index) {
            // After the keep rules: a kept spelling of a dir survives even if
            // an earlier, unkept one of the same dir is dropped.
            reasons.push(Reason::Duplicate { of });
            Action::Drop
        } else if !text.starts_with('/') && !text.starts_with('$') {
            reasons.push(Reason::Insecure {
                why: "relative entry: the loader searches it from the current directory".into(),
            });
            Action::Drop
        } else if is_build_dir(&sd.dir, input.store, &opts.build_dirs) {
            reasons.push(Reason::BuildDir);
            Action::Drop
        } else if is_stub_dir(&sd.dir, snap, input.store) {
            reasons.push(Reason::Stub);
            Action::Drop
        } else {
            let offers: Vec<(&String, &snapshot::Offer)> = dir_snap
                .map(|d| {
                    d.entries
                        .iter()
                        .filter(|(n, o)| {
                            o.is_loadable_library(n)
                                && o.elf.is_some_and(|(i, _)| facts.ident.loadable_by(&i))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let indirect =
                served.iter().any(|n| n.via_farm) || offers.iter().any(|(_, o)| o.crosses());
            if indirect {
                let farms = farms_behind(input, dir_snap);
                reasons.push(Reason::Indirect {
                    offers: offers.len(),
                    farms,
                });
                let mut with: Vec<String> = Vec::new();
                let push = |d: &Path, with: &mut Vec<String>| {
                    let s = d.to_string_lossy().into_owned();
                    if !with.contains(&s) {
                        with.push(s);
                    }
                };
                for n in &served {
                    let o = snap.offer(&sd.dir.join(&n.need.name));
                    match o.and_then(|o| o.real_dir.clone()) {
                        Some(d) if !n.was_stub => push(&d, &mut with),
                        Some(_) => {}
                        None => {
                            refusal.get_or_insert_with(|| {
                                format!(
                                    "{} is offered by {} only through the farm: no directory outside it holds a file of that name",
                                    n.need.name, sd.text
                                )
                            });
                        }
                    }
                }
                if opts.mode == Mode::Expand || !effective {
                    for (name, o) in &offers {
                        if let Some(d) = &o.real_dir {
                            push(d, &mut with);
                            offered_names.push((*name).clone());
                        }
                    }
                }
                if opts.mode == Mode::Shrink && !effective {
                    with.clear();
                }
                if with.is_empty() {
                    Action::Drop
                } else {
                    Action::Replace { with }
                }
            } else if !served.is_empty() {
                Action::Keep
            } else if drop_unused && effective {
                if let Some(m) = &missing_required {
                    reasons.push(Reason::MissingNeedGuard { need: m.clone() });
                    Action::Keep
                } else {
                    reasons.push(Reason::Unused);
                    Action::Drop
                }
            } else {
                reasons.push(if effective {
                    Reason::Unused
                } else {
                    Reason::IgnoredList
                });
                Action::Keep
            }
        };
        entries.push(EntryPlan {
            index: sd.index,
            text: sd.text.clone(),
            dir: sd.dir.clone(),
            action,
            reasons,
        });
    }

    // 4-5. Assemble: driver first, then first use, no duplicates.
    let mut new: Vec<NewEntry> = Vec::new();
    let has_driver = entries.iter().any(|e| e.reasons.contains(&Reason::Driver));
    if has_driver || (opts.want_driver && effective) {
        new.push(NewEntry {
            text: opts.driver_dir.to_string_lossy().into_owned(),
            dir: opts.driver_dir.clone(),
            first: true,
        });
    }
    for e in &entries {
        match &e.action {
            Action::Keep => new.push(NewEntry {
                text: e.text.clone(),
                dir: e.dir.clone(),
                first: false,
            }),
            Action::Replace { with } => new.extend(with.iter().map(|w| NewEntry {
                text: w.clone(),
                dir: PathBuf::from(w),
                first: false,
            })),
            Action::Drop => {}
        }
    }
    // One entry per dir, at its first position; if another spelling of the
    // dir is the one the packager asked to keep, that spelling stays (else a
    // later run, no longer seeing the kept text, could drop the dir).
    let pinned: Vec<&str> = entries
        .iter()
        .filter(|e| {
            e.reasons
                .iter()
                .any(|r| matches!(r, Reason::KeptByPattern { .. } | Reason::Origin))
        })
        .map(|e| e.text.as_str())
        .collect();
    let mut deduped: Vec<NewEntry> = Vec::with_capacity(new.len());
    for e in new {
        match deduped.iter_mut().find(|d| d.dir == e.dir) {
            Some(d) => {
                if pinned.contains(&e.text.as_str()) && !pinned.contains(&d.text.as_str()) {
                    d.text = e.text;
                }
            }
            None => deduped.push(e),
        }
    }
    let mut new = deduped;

    // 6. Verify, reordering where two real dirs offer one name.
    offered_names.sort();
    offered_names.dedup();
    let mut expected: BTreeMap<String, PathBuf> = BTreeMap::new();
    if effective {
        for n in &needs {
            if let (Some(b), false) = (&n.before, n.was_stub) {
                expected.insert(n.need.name.clone(), b.clone());
            }
        }
        for name in &offered_names {
            if expected.contains_key(name) {
                continue;
            }
            let r = resolve::resolve_in(name, &old_dirs, &req, &cfg, snap);
            if let Some(f) = r.found
                && !is_stub_location(&f.resolved.real, input.store)
            {
                expected.insert(name.clone(), f.resolved.real);
            }
        }
    }
    let offered_checked = expected.len();
    if refusal.is_none() && effective {
        match order_and_verify(&mut new, &expected, &req, &cfg, snap, &origin, facts) {
            Ok(()) => {}
            Err(why) => refusal = Some(why),
        }
    }

    let new_text = new
        .iter()
        .map(|e| e.text.as_str())
        .collect::<Vec<_>>()
        .join(":");
    if effective {
        let new_dirs = to_search_dirs(&new, &source, &origin, &cfg, facts);
        for n in &mut needs {
            n.after = resolve::resolve_in(&n.need.name, &new_dirs, &req, &cfg, snap)
                .found
                .map(|f| f.resolved.real);
        }
    }
    if effective && opts.mode == Mode::Shrink && !dlopen_known {
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
        offered_checked,
        warnings,
    }
}

fn is_build_dir(dir: &Path, store: &StoreDir, extra: &[PathBuf]) -> bool {
    if store.contains(dir) {
        return false;
    }
    dir.starts_with("/build") || extra.iter().any(|b| dir.starts_with(b))
}

/// A stub dir: in a stub location, or holding a `libcuda.so*` that is a stub.
fn is_stub_dir(dir: &Path, snap: &Snapshot, store: &StoreDir) -> bool {
    if is_stub_location(dir, store) {
        return true;
    }
    snap.dir(dir).is_some_and(|d| {
        let libs: Vec<_> = d
            .entries
            .iter()
            .filter(|(n, o)| n.contains(".so") && o.elf.is_some())
            .collect();
        !libs.is_empty()
            && libs.iter().all(|(_, o)| o.is_stub)
            && libs.iter().any(|(n, _)| n.starts_with("libcuda.so"))
    })
}

fn to_search_dirs(
    new: &[NewEntry],
    source: &Source,
    origin: &Path,
    cfg: &LoaderConfig,
    facts: &ElfFacts,
) -> Vec<SearchDir> {
    new.iter()
        .enumerate()
        .map(|(index, e)| SearchDir {
            source: source.clone(),
            index,
            text: e.text.clone(),
            dir: resolve::expand_entry(&e.text, origin, cfg, &facts.ident),
        })
        .collect()
}

/// Check that every expected name resolves to the same real file under
/// `new`; where a name lands on the wrong file only because another dir
/// that offers it comes first, move the right dir ahead (stable topological
/// order). Fails when no order works.
fn order_and_verify(
    new: &mut Vec<NewEntry>,
    expected: &BTreeMap<String, PathBuf>,
    req: &Requester,
    cfg: &LoaderConfig,
    snap: &Snapshot,
    origin: &Path,
    facts: &ElfFacts,
) -> Result<(), String> {
    let source = Source::Runpath;
    let mut before: Vec<(PathBuf, PathBuf)> = Vec::new(); // (must come first, then)
    for _round in 0..4 {
        let dirs = to_search_dirs(new, &source, origin, cfg, facts);
        let mut failures = Vec::new();
        for (name, want) in expected {
            let r = resolve::resolve_in(name, &dirs, req, cfg, snap);
            let got = r.found.as_ref().map(|f| f.resolved.real.clone());
            if got.as_deref() == Some(want.as_path()) {
                continue;
            }
            // The first new dir that would give the right file.
            let good = dirs.iter().position(|d| {
                resolve::resolve_in(name, std::slice::from_ref(d), req, cfg, snap)
                    .found
                    .is_some_and(|f| &f.resolved.real == want)
            });
            let bad = r
                .found
                .as_ref()
                .and_then(|f| f.by.as_ref())
                .map(|b| b.index);
            match (good, bad) {
                // Nothing moves ahead of the driver dir: it comes first
                // (DESIGN §4.4). A need it would now shadow makes no order work.
                (Some(g), Some(b)) if g > b && !new[g].first && !new[b].first => {
                    before.push((new[g].dir.clone(), new[b].dir.clone()));
                }
                _ => failures.push(format!(
                    "{name} would resolve to {} instead of {}",
                    got.as_deref()
                        .map_or("nothing".into(), |p| p.display().to_string()),
                    want.display()
                )),
            }
        }
        if !failures.is_empty() {
            return Err(format!("no equivalent order: {}", failures.join("; ")));
        }
        if before.is_empty() {
            return Ok(());
        }
        *new = topo_order(new, &before)?;
        // Re-check with the new order in the next round.
        let dirs = to_search_dirs(new, &source, origin, cfg, facts);
        if expected.iter().all(|(name, want)| {
            resolve::resolve_in(name, &dirs, req, cfg, snap)
                .found
                .is_some_and(|f| &f.resolved.real == want)
        }) {
            return Ok(());
        }
    }
    Err("no order of the real dirs resolves every library as before".into())
}

/// Reorder `new` so that for each `(a, b)` in `before`, `a` comes before `b`,
/// moving `a` just ahead of `b` (the smallest change to first-use order).
/// Fails when the constraints contradict each other.
fn topo_order(new: &[NewEntry], before: &[(PathBuf, PathBuf)]) -> Result<Vec<NewEntry>, String> {
    let mut out = new.to_vec();
    for _ in 0..=before.len() {
        let mut moved = false;
        for (a, b) in before {
            let pa = out.iter().position(|e| &e.dir == a);
            let pb = out.iter().position(|e| &e.dir == b);
            if let (Some(pa), Some(pb)) = (pa, pb)
                && pa > pb
            {
                let e = out.remove(pa);
                out.insert(pb, e);
                moved = true;
            }
        }
        if !moved {
            return Ok(out);
        }
    }
    Err("two libraries need opposite orders of the same dirs".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(
            "/nix/store/*-cuda*/lib",
            "/nix/store/abc-cudart/lib"
        ));
        assert!(glob_match("/exact", "/exact"));
        assert!(!glob_match("/exact", "/exact2"));
        assert!(glob_match("*", "anything"));
        assert!(!glob_match("/a/*/c", "/a/b/d"));
    }

    #[test]
    fn topo_is_stable_and_detects_cycles() {
        let e = |s: &str| NewEntry {
            text: s.into(),
            dir: s.into(),
            first: false,
        };
        let v = vec![e("/a"), e("/b"), e("/c")];
        let o = topo_order(&v, &[("/c".into(), "/a".into())]).unwrap();
        let t: Vec<_> = o.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(t, ["/c", "/a", "/b"]);
        assert!(
            topo_order(
                &v,
                &[("/a".into(), "/b".into()), ("/b".into(), "/a".into())]
            )
            .is_err()
        );
    }
}

//! The check pipeline: `unfarm check`'s findings from a survey, each with
//! the file, the exact location, a severity and the fix, priced with
//! `closure`'s cost model ([`add_costs`]); `report` renders them.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::closure::cost::{CostError, CostModel};
use crate::closure::scan::{self, Candidates, Hash, ScannedFiles, Scanner};
use crate::elf::ObjectType;
use crate::plan::needs::Provenance;
use crate::plan::{Action, EntryPlan, Mode, Outcome, Plan, Reason, Tag};
use crate::store::{PathIoError, StoreDir, StorePath, normalize_lexically};
use crate::survey::{ObjectSurvey, Survey};

mod location;
mod wrappers;

pub use location::{Location, WrapperAt};

/// How much a finding matters (ordered: errors first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something to fix: any error makes `unfarm check` fail.
    Error,
    /// Worth a look; alone, it does not fail `check`.
    Warning,
    /// A note (folded into one line per kind unless `--verbose`).
    Info,
}

/// What a finding is about. The kebab-case names are stable identifiers,
/// in the JSON (`docs/check-json.md`) and in the text (`error[KIND]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingKind {
    /// A search-path entry reaching libraries through links into other store paths (a farm).
    IndirectEntry,
    /// A search-path entry naming a stub dir.
    StubEntry,
    /// A search-path entry offering a library that resolves to a stub
    /// (through a link or not), with the driver dir absent or after it.
    StubShadowsDriver,
    /// A wrapper's `LD_LIBRARY_PATH` naming a dir that offers a stub, a
    /// farm, or a `-dev`/`-static` output.
    WrapperLibraryPath,
    /// A search-path entry serving no known need.
    UnusedEntry,
    /// A need the search path does not find.
    MissingLibrary,
    /// A need on which the loader would fail (not ELF, too short, ...).
    LoaderError,
    /// A search-path entry in the build dir, outside the store.
    BuildDirEntry,
    /// An empty or relative search-path entry (searched from the current directory).
    InsecureEntry,
    /// A symlink whose target goes into or through a farm.
    SymlinkIntoFarm,
    /// File bytes naming a farm store path.
    FarmReference,
    /// The object imports dlopen but declares no dlopen needs.
    DlopenUnknown,
    /// The planner could not prove a new search path equivalent.
    PlanRefused,
    /// A FIFO, socket or device node in an output.
    SpecialFile,
    /// A symlink loop.
    SymlinkLoop,
    /// A search-path entry naming the same dir as an earlier one.
    DuplicateEntry,
    /// A file the survey could not read.
    Unreadable,
}

impl FindingKind {
    /// Every kind, in declaration order.
    pub const ALL: [FindingKind; 17] = [
        FindingKind::IndirectEntry,
        FindingKind::StubEntry,
        FindingKind::StubShadowsDriver,
        FindingKind::WrapperLibraryPath,
        FindingKind::UnusedEntry,
        FindingKind::MissingLibrary,
        FindingKind::LoaderError,
        FindingKind::BuildDirEntry,
        FindingKind::InsecureEntry,
        FindingKind::SymlinkIntoFarm,
        FindingKind::FarmReference,
        FindingKind::DlopenUnknown,
        FindingKind::PlanRefused,
        FindingKind::SpecialFile,
        FindingKind::SymlinkLoop,
        FindingKind::DuplicateEntry,
        FindingKind::Unreadable,
    ];

    /// The stable identifier, the same as the JSON string.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::IndirectEntry => "indirect-entry",
            FindingKind::StubEntry => "stub-entry",
            FindingKind::StubShadowsDriver => "stub-shadows-driver",
            FindingKind::WrapperLibraryPath => "wrapper-library-path",
            FindingKind::UnusedEntry => "unused-entry",
            FindingKind::MissingLibrary => "missing-library",
            FindingKind::LoaderError => "loader-error",
            FindingKind::BuildDirEntry => "build-dir-entry",
            FindingKind::InsecureEntry => "insecure-entry",
            FindingKind::SymlinkIntoFarm => "symlink-into-farm",
            FindingKind::FarmReference => "farm-reference",
            FindingKind::DlopenUnknown => "dlopen-unknown",
            FindingKind::PlanRefused => "plan-refused",
            FindingKind::SpecialFile => "special-file",
            FindingKind::SymlinkLoop => "symlink-loop",
            FindingKind::DuplicateEntry => "duplicate-entry",
            FindingKind::Unreadable => "unreadable",
        }
    }

    /// Findings about bytes or links that name a farm store path, grouped by
    /// farm rather than by location.
    fn names_a_farm(self) -> bool {
        matches!(
            self,
            FindingKind::FarmReference | FindingKind::SymlinkIntoFarm
        )
    }
}

named_by_as_str!(FindingKind);

/// One finding.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// What it is about.
    pub kind: FindingKind,
    /// How much it matters.
    pub severity: Severity,
    /// The file (or symlink) it is in.
    pub file: PathBuf,
    /// Where in the file: `RUNPATH[2] /x/lib`, `need libfoo.so.1`,
    /// `offset 0x1a2b`, `symlink -> …` (a string in the JSON).
    pub location: Location,
    /// What is wrong, in words.
    pub message: String,
    /// What `unfarm fix` (or the packager) should do.
    pub fix: Option<String>,
    /// Closure bytes freed when every reference from the outputs to
    /// `farms` goes (the real dirs referenced instead), when computed: see
    /// `closure::cost::CostModel::farm_cost`. Only for `indirect-entry`,
    /// `symlink-into-farm` and `farm-reference`.
    pub cost_bytes: Option<u64>,
    /// The farm store paths this finding is about (empty for other kinds).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub farms: Vec<PathBuf>,
}

impl Finding {
    /// A finding about `file`, with no farms and no cost computed.
    pub(crate) fn new(
        kind: FindingKind,
        severity: Severity,
        file: &Path,
        location: Location,
        message: impl Into<String>,
        fix: Option<&str>,
    ) -> Finding {
        Finding {
            kind,
            severity,
            file: file.to_owned(),
            location,
            message: message.into(),
            fix: fix.map(str::to_owned),
            cost_bytes: None,
            farms: Vec::new(),
        }
    }

    /// The same finding, about these farm store paths.
    pub(crate) fn with_farms(self, farms: Vec<PathBuf>) -> Finding {
        Finding { farms, ..self }
    }
}

/// What most entry findings advise.
const DROP_IT: Option<&str> = Some("drop it");

/// All findings for a survey, sorted by file then severity. An error when
/// the store dir cannot be listed (its hash parts are what the files'
/// references are matched against).
pub fn findings(
    survey: &Survey,
    store: &StoreDir,
    mode: Mode,
) -> Result<Vec<Finding>, PathIoError> {
    Ok(findings_scanned(survey, store, mode)?.0)
}

/// [`findings`], and the files its reference scan read: a closure cost
/// computed next ([`crate::closure::cost::CostModel::reusing`]) need not
/// read them again.
pub fn findings_scanned(
    survey: &Survey,
    store: &StoreDir,
    mode: Mode,
) -> Result<(Vec<Finding>, ScannedFiles), PathIoError> {
    let listed = store.list()?;
    let scanned = store_path_hits(survey, store, &listed);
    let mut out = Vec::new();
    for o in &survey.objects {
        for p in &o.plans {
            let effective = o.facts.is_effective(p.tag);
            for e in &p.entries {
                out.extend(entry_findings(p, e, effective, mode, store));
            }
            out.extend(plan_findings(p));
            if effective {
                out.extend(need_findings(o, p));
            }
        }
    }
    out.extend(link_findings(survey));
    out.extend(survey_error_findings(survey));
    out.extend(farm_references(survey, store, &scanned, &listed));
    out.extend(wrappers::wrapper_findings(survey, store));
    apply_allowed(&mut out, &survey.allowed, store);
    apply_kept(&mut out, survey, store);
    apply_roles(&mut out, survey);
    out.sort_by(|a, b| (&a.file, a.severity, &a.location).cmp(&(&b.file, b.severity, &b.location)));
    Ok((out, scanned))
}

/// One finding per reason the planner gave for a search-path entry that
/// the packager should act on.
fn entry_findings(
    p: &Plan,
    e: &EntryPlan,
    effective: bool,
    mode: Mode,
    store: &StoreDir,
) -> Vec<Finding> {
    let loc = Location::Entry {
        tag: p.tag,
        index: e.index,
        text: e.text.clone(),
    };
    let mk = |kind, severity, message: String, fix: Option<&str>| {
        Finding::new(kind, severity, &p.path, loc.clone(), message, fix)
    };
    e.reasons
        .iter()
        .filter_map(|r| {
            Some(match r {
                Reason::Indirect { offers, farms } => {
                    indirect_finding(p, e, loc.clone(), *offers, farms, store)
                }
                Reason::Stub => mk(
                    FindingKind::StubEntry,
                    Severity::Error,
                    match stubs_of(e) {
                        Some(s) => format!(
                            "stub dir: offers nothing but the stub {}, which shadows the real driver",
                            stub_words(s)
                        ),
                        None => "stub dir: its fake libraries shadow the real driver".into(),
                    },
                    DROP_IT,
                ),
                Reason::OffersStub {
                    stubs,
                    driver,
                    driver_index,
                    // A replaced entry (a farm) is reported as such: its
                    // replacement gets the driver dir first if it needs it.
                } if e.action == Action::Keep
                    && driver_index.is_none_or(|d| d > e.index) =>
                {
                    let (whence, remedy) = match driver_index {
                        Some(d) => (format!("the driver dir {} comes later, at entry {d}", driver.display()), format!("move {} first", driver.display())),
                        None => (format!("the driver dir {} is not in the list", driver.display()), format!("put {} first", driver.display())),
                    };
                    mk(
                        FindingKind::StubShadowsDriver,
                        Severity::Error,
                        format!(
                            "shadows the driver ({whence}): offers the stub {}, which a program asking for that name loads (cuInit fails on a GPU machine)",
                            stub_words(stubs)
                        ),
                        Some(&format!("{remedy} (unfarm fix does), and take the stub link out of the lib output")),
                    )
                }
                Reason::BuildDir => mk(
                    FindingKind::BuildDirEntry,
                    Severity::Error,
                    "points into the build dir, outside the store".into(),
                    DROP_IT,
                ),
                Reason::Insecure { why } => mk(
                    FindingKind::InsecureEntry,
                    Severity::Error,
                    why.to_string(),
                    DROP_IT,
                ),
                Reason::Duplicate { of } => mk(
                    FindingKind::DuplicateEntry,
                    Severity::Warning,
                    format!("the same directory as entry {of}"),
                    DROP_IT,
                ),
                // Expand mode keeps (or writes) every real dir a farm
                // offered, so that no program breaks: a note, not a
                // warning about what `fix` itself wrote.
                Reason::Unused if effective => match mode {
                    Mode::Shrink => mk(
                        FindingKind::UnusedEntry,
                        Severity::Warning,
                        "serves no known need".into(),
                        DROP_IT,
                    ),
                    Mode::Expand => mk(
                        FindingKind::UnusedEntry,
                        Severity::Info,
                        "serves no known need".into(),
                        Some("drop it with --shrink (if nothing dlopen()s from it)"),
                    ),
                },
                _ => return None,
            })
        })
        .collect()
}

/// The stubs an entry offers, when the planner saw any.
fn stubs_of(e: &EntryPlan) -> Option<&[crate::plan::snapshot::StubOffer]> {
    e.reasons.iter().find_map(|r| match r {
        Reason::OffersStub { stubs, .. } => Some(stubs.as_slice()),
        _ => None,
    })
}

/// An indirect entry: what it serves and offers, through which farms, and
/// what replaces it.
fn indirect_finding(
    p: &Plan,
    e: &EntryPlan,
    location: Location,
    offers: usize,
    farms: &[PathBuf],
    store: &StoreDir,
) -> Finding {
    let served: Vec<&str> = e
        .reasons
        .iter()
        .filter_map(|r| match r {
            Reason::Served { need, .. } => Some(need.as_str()),
            _ => None,
        })
        .collect();
    let message = format!(
        "reaches libraries through links into other store paths (farm {}): serves [{}], offers {offers} libraries; keeps the farm and everything it joins in the closure",
        farms
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        served.join(", ")
    );
    let fix = match &e.action {
        Action::Replace { with } => format!("replace with {}", with.join(":")),
        _ => "drop it".into(),
    };
    // The entry's own store path when it is the farm; else (a link or `..`
    // leading into one) the farms the planner found behind it.
    let farms = match store
        .store_path_of(&normalize_lexically(&e.dir))
        .map(|s| s.path)
    {
        Some(own) if farms.is_empty() || farms.contains(&own) => vec![own],
        _ => farms.to_vec(),
    };
    Finding::new(
        FindingKind::IndirectEntry,
        Severity::Error,
        &p.path,
        location,
        message,
        Some(&fix),
    )
    .with_farms(farms)
}

/// A plan the planner refused, and its warnings (dlopen needs unknown).
fn plan_findings(p: &Plan) -> Vec<Finding> {
    let refused = match &p.outcome {
        Outcome::Refused { reason } => Some(Finding::new(
            FindingKind::PlanRefused,
            Severity::Error,
            &p.path,
            Location::List(p.tag),
            format!("cannot rewrite {} safely: {reason}", p.tag),
            Some("fix the inputs, or keep the entry with --keep"),
        )),
        _ => None,
    };
    let warnings = p.warnings.iter().map(|w| {
        Finding::new(
            FindingKind::DlopenUnknown,
            Severity::Warning,
            &p.path,
            Location::DynamicSymbols,
            w.clone(),
            Some("declare them: --dlopen SONAME or unfarmDlopen"),
        )
    });
    refused.into_iter().chain(warnings).collect()
}

/// Needs the effective list does not meet: a loader error, or a missing
/// library (an error only for a program's required need).
fn need_findings(o: &ObjectSurvey, p: &Plan) -> Vec<Finding> {
    // A library's need may be met by what its loading process already has
    // (libc, libpython): an error only for programs.
    let is_program = o.facts.object_type == ObjectType::Exec || o.facts.interpreter.is_some();
    let mut out = Vec::new();
    for n in p.needs.iter().filter(|n| n.before.is_none()) {
        let provenance = n.need.strongest();
        if let Some(err) = &n.error {
            out.push(Finding::new(
                FindingKind::LoaderError,
                Severity::Error,
                &p.path,
                Location::Need {
                    name: n.need.name.clone(),
                    provenance: None,
                },
                format!("the loader would fail: {err}"),
                None,
            ));
            continue;
        }
        // Hints are guesses, and an inherited need may be met by the
        // library's own search path: neither is a missing library here.
        if matches!(provenance, Provenance::Hint | Provenance::Inherited { .. }) {
            continue;
        }
        // glibc's own libraries come with the program that loads a library
        // (`ldd` says the same: the one decision in the loader model).
        if crate::loader::resolve::provided_by_process(
            &n.need.name,
            &o.facts.ident,
            o.facts.interpreter.as_deref(),
        ) {
            continue;
        }
        let severity = if n.need.is_required() && is_program {
            Severity::Error
        } else {
            Severity::Warning
        };
        out.push(Finding::new(
            FindingKind::MissingLibrary,
            severity,
            &p.path,
            Location::Need {
                name: n.need.name.clone(),
                provenance: Some(provenance.clone()),
            },
            format!("{} is not found in {}", n.need.name, p.old),
            Some("add the output that provides it to the search path"),
        ));
    }
    out
}

/// Symlinks the survey found pointing through a farm, and symlink loops.
fn link_findings(survey: &Survey) -> Vec<Finding> {
    let through_farm = survey.farm_links.iter().map(|l| {
        Finding::new(
            FindingKind::SymlinkIntoFarm,
            Severity::Error,
            &l.path,
            Location::SymlinkTo(l.target.clone()),
            format!(
                "points through farm {}",
                l.farms
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(&format!("point it at {}", l.canonical.display())),
        )
        .with_farms(l.farms.clone())
    });
    let loops = survey.link_loops.iter().map(|l| {
        Finding::new(
            FindingKind::SymlinkLoop,
            Severity::Error,
            l,
            Location::Symlink,
            format!(
                "symlink loop (more than {} links followed); left alone",
                crate::farm::MAX_HOPS
            ),
            Some("remove it or point it at a real file"),
        )
    });
    through_farm.chain(loops).collect()
}

/// Files the survey left alone: special files, and files it could not read.
fn survey_error_findings(survey: &Survey) -> Vec<Finding> {
    let special = survey.special_files.iter().map(|s| {
        Finding::new(
            FindingKind::SpecialFile,
            Severity::Error,
            s,
            Location::FileType,
            format!(
                "{} in an output (a Nix output cannot hold one); left alone",
                crate::survey::special_kind(s)
            ),
            Some("remove it from the output"),
        )
    });
    let unreadable = survey.errors.iter().map(|e| {
        Finding::new(
            FindingKind::Unreadable,
            Severity::Error,
            &e.path,
            Location::File,
            e.message.clone(),
            None,
        )
    });
    special.chain(unreadable).collect()
}

/// Every farm any file or symlink of the outputs names, and every place
/// it is named, outside the RUNPATH/RPATH strings the plans already fix and
/// the links `symlink-into-farm` already reports. A farm is recognised by
/// what it is ([`crate::farm::is_farm`]), whoever names it: file bytes
/// (`.pc` files, scripts, stale strings), symlink targets (a directory link
/// into a farm), search-list entries however spelled (`$ORIGIN/../../<farm>`).
/// Files are scanned in bounded chunks by [`crate::closure::scan`], never read whole.
fn farm_references(
    survey: &Survey,
    store: &StoreDir,
    scanned: &ScannedFiles,
    listed: &[StorePath],
) -> Vec<Finding> {
    let hits: Vec<&scan::Hit> = scanned.hits().collect();
    let farms = named_farms(survey, store, &hits, listed);
    if farms.is_empty() {
        return Vec::new();
    }
    let by_hash: HashMap<Hash, PathBuf> = farms
        .iter()
        .filter_map(|p| Some((scan::hash_of(&store.store_path_of(p)?.hash)?, p.clone())))
        .collect();
    let covered: HashMap<&Path, Vec<(u64, u64)>> = survey
        .objects
        .iter()
        .map(|o| (o.path.as_path(), fixed_ranges(o)))
        .collect();
    let fixed = |h: &scan::Hit| {
        covered
            .get(h.file.as_path())
            .is_some_and(|c| c.iter().any(|(s, l)| h.offset >= *s && h.offset < s + l))
    };
    let mut out: Vec<Finding> = hits
        .into_iter()
        .filter(|h| !fixed(h))
        .filter_map(|h| {
            let farm = by_hash.get(&h.hash)?.clone();
            // The line is in the location; the message shows the text.
            let (line, what) = match &h.context {
                scan::Context::Text { line, text } => (Some(*line), format!("\"{text}\"")),
                c => (None, c.to_string()),
            };
            Some(
                Finding::new(
                    FindingKind::FarmReference,
                    Severity::Error,
                    &h.file,
                    Location::Offset {
                        offset: h.offset,
                        line,
                    },
                    format!("names farm {}: {what}", farm.display()),
                    Some("point it at the real output instead of the farm (or allow it: --allow / unfarmAllow)"),
                )
                .with_farms(vec![farm]),
            )
        })
        .collect();
    let reported: HashSet<&Path> = survey.farm_links.iter().map(|l| l.path.as_path()).collect();
    for l in &survey.symlinks {
        if reported.contains(l.as_path()) {
            continue;
        }
        let Some((target, farm)) = link_into(l, store).filter(|(_, f)| farms.contains(f)) else {
            continue;
        };
        out.push(
            Finding::new(
                FindingKind::SymlinkIntoFarm,
                Severity::Error,
                l,
                Location::SymlinkTo(target.clone()),
                format!(
                    "points into farm {}: everything the farm joins stays in the closure",
                    farm.display()
                ),
                Some("point it at the real output it is used for, or remove it (a directory link into a farm is not rewritten automatically)"),
            )
            .with_farms(vec![farm]),
        );
    }
    out
}

/// File ranges of the search-list strings the plans rewrite.
fn fixed_ranges(o: &crate::survey::ObjectSurvey) -> Vec<(u64, u64)> {
    o.plans
        .iter()
        .filter(|p| p.changes())
        .filter_map(|p| {
            let off = match p.tag {
                Tag::Runpath => o.facts.runpath_offset,
                Tag::Rpath => o.facts.rpath_offset,
            }?;
            Some((off, p.old.len() as u64))
        })
        .collect()
}

/// The target of symlink `l`, and the store path it lands in (lexically).
fn link_into(l: &Path, store: &StoreDir) -> Option<(PathBuf, PathBuf)> {
    let target = std::fs::read_link(l).ok()?;
    let abs = normalize_lexically(&l.parent()?.join(&target));
    Some((target, store.store_path_of(&abs)?.path))
}

/// Every place a file of the outputs names a path of the store dir by its
/// hash part (Nix's own rule: with or without the store dir before it,
/// `../../<hash>-farm/lib`), with its context: one streamed pass over each
/// file serves both which farms are named and where. File by file: one
/// unreadable file (reported elsewhere) must not hide what the others name.
fn store_path_hits(survey: &Survey, store: &StoreDir, listed: &[StorePath]) -> ScannedFiles {
    let all: scan::HashSetFast = listed
        .iter()
        .filter_map(|sp| scan::hash_of(&sp.hash))
        .collect();
    if all.is_empty() {
        return ScannedFiles::default();
    }
    let any = Scanner::new(store, Candidates::Hashes(all.clone()));
    let files: Vec<&Path> = survey
        .objects
        .iter()
        .map(|o| o.path.as_path())
        .chain(survey.other_files.iter().map(PathBuf::as_path))
        .collect();
    let read: Vec<_> = files
        .par_iter()
        .map(|&path| any.file_hits_of(path))
        .collect();
    let mut scanned = ScannedFiles::new(all);
    // Only a file read without error may stand in for reading it again.
    for (hits, id) in read.into_iter().flatten() {
        scanned.insert(id, hits);
    }
    scanned
}

/// The farms the outputs name: store paths the planner saw acting as farms,
/// and every other store path named by a file (`hits`), a symlink target or
/// a search-list entry that [`crate::farm::is_farm`] says is one. The
/// outputs themselves never count.
fn named_farms(
    survey: &Survey,
    store: &StoreDir,
    hits: &[&scan::Hit],
    listed: &[StorePath],
) -> BTreeSet<PathBuf> {
    let mut candidates: BTreeSet<PathBuf> = BTreeSet::new();
    for o in &survey.objects {
        for p in &o.plans {
            for e in &p.entries {
                candidates.extend(
                    store
                        .store_path_of(&normalize_lexically(&e.dir))
                        .map(|s| s.path),
                );
            }
        }
    }
    for l in &survey.symlinks {
        candidates.extend(link_into(l, store).map(|(_, f)| f));
    }
    let found: HashSet<Hash> = hits.iter().map(|h| h.hash).collect();
    candidates.extend(
        listed
            .iter()
            .filter(|sp| scan::hash_of(&sp.hash).is_some_and(|h| found.contains(&h)))
            .map(|sp| sp.path.clone()),
    );
    let own: Vec<PathBuf> = survey
        .roots
        .iter()
        .filter_map(|r| store.store_path_of(r).map(|s| s.path))
        .collect();
    let mut farms: BTreeSet<PathBuf> = survey.farm_store_paths().into_iter().collect();
    farms.extend(
        candidates
            .into_par_iter()
            .filter(|c| !own.contains(c) && crate::farm::is_farm(store, c).unwrap_or(false))
            .collect::<Vec<_>>(),
    );
    farms
}

/// Findings about farms the packager allows (`--allow`) are information.
fn apply_allowed(findings: &mut [Finding], allowed: &[String], store: &StoreDir) {
    let is_allowed = |farm: &Path| {
        allowed.iter().any(|a| {
            let a = Path::new(a);
            a == farm
                || store.store_path_of(a).is_some_and(|s| s.path == farm)
                || store
                    .store_path_of(farm)
                    .is_some_and(|s| Some(s.name.as_str()) == a.to_str())
        })
    };
    for f in findings {
        if f.severity == Severity::Error
            && !f.farms.is_empty()
            && f.farms.iter().all(|p| is_allowed(p))
        {
            f.severity = Severity::Info;
            f.message.push_str(" (allowed)");
        }
    }
}

/// Farms a `--keep` pattern keeps in a search list: the packager chose to
/// keep them in the closure, so the kept entry and every other finding about
/// those farms alone are information (fixing the others frees nothing).
fn apply_kept(findings: &mut [Finding], survey: &Survey, store: &StoreDir) {
    let mut kept: HashMap<PathBuf, &str> = HashMap::new();
    for o in &survey.objects {
        for p in &o.plans {
            for e in &p.entries {
                for r in &e.reasons {
                    if let Reason::KeptByPattern { pattern } = r
                        && let Some(sp) = store.store_path_of(&normalize_lexically(&e.dir))
                    {
                        kept.entry(sp.path).or_insert(pattern.as_str());
                    }
                }
            }
        }
    }
    for f in findings {
        if f.severity != Severity::Info
            && !f.farms.is_empty()
            && f.farms.iter().all(|p| kept.contains_key(p))
        {
            f.severity = Severity::Info;
            f.message
                .push_str(&format!(" (kept: --keep {})", kept[&f.farms[0]]));
        }
    }
}

/// What an output is for: a runtime output's closure is what users get; a
/// build-time one (`dev`, docs, man pages, `debug`) is only fetched to build
/// against or debug, where a farm is acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Runtime,
    BuildTime,
}

/// The role of the output `file` is in: build-time when it lies under a
/// `--build-time` path.
fn role_of(file: &Path, build_time: &[PathBuf]) -> Role {
    let abs =
        |p: &Path| std::path::absolute(normalize_lexically(p)).unwrap_or_else(|_| p.to_owned());
    let file = abs(file);
    if build_time.iter().any(|b| file.starts_with(abs(b))) {
        Role::BuildTime
    } else {
        Role::Runtime
    }
}

/// A file whose place says it is read only when building against the
/// package (pkg-config, CMake, headers, aclocal), as nixpkgs'
/// multiple-outputs moves them to the `dev` output.
fn is_build_time_file(file: &Path, roots: &[PathBuf]) -> bool {
    let Some(rel) = roots.iter().find_map(|r| file.strip_prefix(r).ok()) else {
        return false;
    };
    [
        "lib/pkgconfig",
        "share/pkgconfig",
        "lib/cmake",
        "share/cmake",
        "include",
        "share/aclocal",
    ]
    .iter()
    .any(|d| rel.starts_with(d))
}

/// Errors in build-time outputs become warnings (still with file, offset
/// and cost); in a runtime output, a build-time file naming a farm says how
/// to move it out of the runtime closure. Special and unreadable files
/// stay errors: Nix cannot register the one, the other was not judged.
fn apply_roles(findings: &mut [Finding], survey: &Survey) {
    for f in findings {
        match role_of(&f.file, &survey.build_time) {
            Role::BuildTime => {
                if f.severity == Severity::Error
                    && !matches!(f.kind, FindingKind::SpecialFile | FindingKind::Unreadable)
                {
                    f.severity = Severity::Warning;
                    f.message
                        .push_str(" (in a build-time output: not in the runtime closure)");
                }
            }
            Role::Runtime => {
                if f.severity == Severity::Error
                    && f.kind.names_a_farm()
                    && is_build_time_file(&f.file, &survey.roots)
                {
                    f.message.push_str(
                        " (a build-time file in a runtime output: it keeps the farm in that output's closure)",
                    );
                    f.fix = Some("split a `dev` output (outputs = [ \"out\" \"dev\" ]: the hook treats it as build-time), or point it at the real output instead of the farm".into());
                }
            }
        }
    }
}

/// Findings that say the same thing about several files: one kind and
/// severity, one location (the same entry text, the same need) or, for
/// farm references, one farm. A 43-library package reports the same few
/// missing sonames, or the same farm entry, once per file: one group each.
#[derive(Clone, Debug, Serialize)]
pub struct Group {
    /// The findings' kind.
    pub kind: FindingKind,
    /// The findings' severity.
    pub severity: Severity,
    /// The shared location (for `farm-reference`: the first file's).
    pub location: Location,
    /// The first finding's message.
    pub message: String,
    /// The first finding's fix.
    pub fix: Option<String>,
    /// Every file the group covers, in finding order.
    pub files: Vec<PathBuf>,
    /// The first finding's farms (the same for every finding of a farm group).
    pub farms: Vec<PathBuf>,
    /// The first finding's closure cost, when computed.
    pub cost_bytes: Option<u64>,
    /// Some file's message or fix differs from the first's (the needs a farm
    /// entry serves, the real dirs that replace it): the text must not show
    /// the first file's as every file's.
    #[serde(skip)]
    pub(crate) differs: bool,
}

/// What one group's findings share besides kind and severity: the farms
/// (findings that name a farm), else the location.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum GroupKey<'a> {
    Farms(&'a [PathBuf]),
    At(&'a Location),
}

/// Group `findings` (see [`Group`]), in order of first appearance.
pub fn groups(findings: &[Finding]) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    let mut index: std::collections::BTreeMap<(Severity, FindingKind, GroupKey), usize> =
        std::collections::BTreeMap::new();
    for f in findings {
        let key = if f.kind.names_a_farm() {
            GroupKey::Farms(&f.farms)
        } else {
            GroupKey::At(&f.location)
        };
        match index.entry((f.severity, f.kind, key)) {
            std::collections::btree_map::Entry::Occupied(e) => {
                let g = &mut out[*e.get()];
                if !g.files.contains(&f.file) {
                    g.files.push(f.file.clone());
                }
                g.differs |= g.message != f.message || g.fix != f.fix;
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(out.len());
                out.push(Group {
                    kind: f.kind,
                    severity: f.severity,
                    location: f.location.clone(),
                    message: f.message.clone(),
                    fix: f.fix.clone(),
                    files: vec![f.file.clone()],
                    farms: f.farms.clone(),
                    cost_bytes: f.cost_bytes,
                    differs: false,
                });
            }
        }
    }
    out.sort_by_key(|g| g.severity);
    out
}

/// `libcuda.so, libcuda.so.1 -> /…/stubs/libcuda.so`: the stub names, by
/// the stub file they reach.
pub(crate) fn stub_words(stubs: &[crate::plan::snapshot::StubOffer]) -> String {
    let mut by_stub: std::collections::BTreeMap<&Path, Vec<&str>> = Default::default();
    for s in stubs {
        by_stub.entry(&s.stub).or_default().push(&s.name);
    }
    by_stub
        .iter()
        .map(|(stub, names)| format!("{} -> {}", names.join(", "), stub.display()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Set `cost_bytes` of every finding that names farms (`indirect-entry`,
/// `symlink-into-farm`, `farm-reference`): `CostModel::farm_cost` of its
/// farms.
pub fn add_costs(findings: &mut [Finding], model: &CostModel) -> Result<(), CostError> {
    let mut memo: HashMap<Vec<PathBuf>, u64> = HashMap::new();
    for f in findings.iter_mut().filter(|f| !f.farms.is_empty()) {
        let c = match memo.get(&f.farms) {
            Some(&c) => c,
            None => {
                let c = model.farm_cost(&f.farms)?;
                memo.insert(f.farms.clone(), c);
                c
            }
        };
        f.cost_bytes = Some(c);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn finding(kind: FindingKind, file: &str, location: Location) -> Finding {
        let message = format!("{location} in {file}");
        Finding::new(
            kind,
            Severity::Warning,
            Path::new(file),
            location,
            message,
            None,
        )
    }

    /// `need NAME (needed)`.
    fn needed(name: &str) -> Location {
        Location::Need {
            name: name.into(),
            provenance: Some(Provenance::Needed),
        }
    }

    /// The words in the text output are the JSON strings.
    #[test]
    fn kind_words_are_the_json_strings() {
        for k in FindingKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }

    /// A `.note.dlopen` need's provenance in words, not Rust's debug form.
    #[test]
    fn provenance_in_words() {
        use crate::plan::needs::Provenance;
        let note = Provenance::Note {
            priority: Some("required".into()),
        };
        assert_eq!(note.to_string(), "note, required");
        assert_eq!(Provenance::Needed.to_string(), "needed");
    }

    pub(crate) const FARM: &str = "/nix/store/1fffffffffffffffffffffffffffffff-farm";
    pub(crate) const LIB: &str = "/nix/store/2lllllllllllllllllllllllllllllll-lib/lib";

    /// A program whose DT_RPATH (its effective list: no DT_RUNPATH) has a
    /// farm entry, a duplicate of it and an unused entry, misses a library
    /// and warns of dlopen(); beside it a farm link, a FIFO, a loop and an
    /// unreadable file.
    /// (Long: one literal of every fact `findings` reads, nothing to split.)
    pub(crate) fn hand_made_survey() -> Survey {
        use crate::elf::{ByteOrder, Class, ElfFacts, ElfIdent};
        use crate::plan::needs::{Need, Provenance};
        use crate::plan::{EntryPlan, NeedPlan, Plan, Tag};
        let old =
            format!("{FARM}/lib:{FARM}/lib:/nix/store/3uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu-u/lib");
        let entry = |index: usize, action: Action, reasons: Vec<Reason>| EntryPlan {
            index,
            text: old.split(':').nth(index).unwrap().into(),
            dir: old.split(':').nth(index).unwrap().into(),
            action,
            reasons,
        };
        let plan = Plan {
            path: "/o/bin/app".into(),
            tag: Tag::Rpath,
            old: old.clone(),
            new: LIB.into(),
            entries: vec![
                entry(
                    0,
                    Action::Replace {
                        with: vec![LIB.into()],
                    },
                    vec![Reason::Indirect {
                        offers: 2,
                        farms: vec![FARM.into()],
                    }],
                ),
                entry(1, Action::Drop, vec![Reason::Duplicate { of: 0 }]),
                entry(2, Action::Drop, vec![Reason::Unused]),
            ],
            needs: vec![NeedPlan {
                need: Need {
                    name: "libgone.so.1".into(),
                    provenance: vec![Provenance::Needed],
                },
                before: None,
                served_by: None,
                via_farm: false,
                after: None,
                error: None,
                was_stub: false,
            }],
            outcome: Outcome::Change,
            removed_store_paths: Vec::new(),
            removed_hashes: Vec::new(),
            offered_checked: 2,
            warnings: vec!["imports dlopen()".into()],
            added: Vec::new(),
        };
        let facts = ElfFacts {
            ident: ElfIdent {
                class: Class::Elf64,
                data: ByteOrder::Little,
                machine: 62,
                osabi: 0,
            },
            object_type: ObjectType::Exec,
            dynamic: true,
            interpreter: Some("/lib64/ld-linux-x86-64.so.2".into()),
            needed: vec!["libgone.so.1".into()],
            runpath: None,
            rpath: Some(old),
            soname: None,
            nodeflib: false,
            dlopen_notes: Vec::new(),
            imports_dlopen: true,
            imports_dlsym: false,
            has_section_headers: true,
            runpath_offset: None,
            rpath_offset: None,
        };
        Survey {
            roots: vec!["/o".into()],
            objects: vec![crate::survey::ObjectSurvey {
                path: "/o/bin/app".into(),
                facts,
                needs: Vec::new(),
                plans: vec![plan],
                nlink: 1,
            }],
            farm_links: vec![crate::survey::FarmLink {
                path: "/o/lib/l.so".into(),
                target: format!("{FARM}/lib/l.so").into(),
                farms: vec![FARM.into()],
                canonical: format!("{LIB}/l.so").into(),
            }],
            other_files: Vec::new(),
            symlinks: vec!["/o/lib/l.so".into()],
            allowed: Vec::new(),
            build_time: Vec::new(),
            special_files: vec!["/o/fifo".into()],
            link_loops: vec!["/o/loop".into()],
            files_scanned: 6,
            errors: vec![crate::walk::WalkError {
                path: "/o/secret".into(),
                message: "cannot read: Permission denied".into(),
            }],
            snapshot: Default::default(),
            interpreter: None,
            static_executables: Vec::new(),
        }
    }

    /// Each fact of the survey gives its finding, with the severity the
    /// mode and the object's kind call for, sorted by file then severity.
    #[test]
    fn findings_from_a_hand_made_survey() {
        let s = hand_made_survey();
        let store = StoreDir::new("/nix/store");
        let got = |mode| -> Vec<(String, FindingKind, Severity)> {
            findings(&s, &store, mode)
                .unwrap()
                .into_iter()
                .map(|f| (f.file.display().to_string(), f.kind, f.severity))
                .collect()
        };
        use FindingKind as K;
        use Severity::{Error, Info, Warning};
        let app = |k, sev| ("/o/bin/app".to_owned(), k, sev);
        assert_eq!(
            got(Mode::Shrink),
            vec![
                app(K::IndirectEntry, Error),
                // A program that cannot find a DT_NEEDED library fails to start.
                app(K::MissingLibrary, Error),
                app(K::DuplicateEntry, Warning),
                app(K::UnusedEntry, Warning),
                app(K::DlopenUnknown, Warning),
                ("/o/fifo".into(), K::SpecialFile, Error),
                ("/o/lib/l.so".into(), K::SymlinkIntoFarm, Error),
                ("/o/loop".into(), K::SymlinkLoop, Error),
                ("/o/secret".into(), K::Unreadable, Error),
            ]
        );
        // Expand mode keeps every real dir a farm offered: unused is a note.
        let expand = got(Mode::Expand);
        assert!(expand.contains(&app(K::UnusedEntry, Info)), "{expand:?}");
        let all = findings(&s, &store, Mode::Shrink).unwrap();
        let indirect = all.iter().find(|f| f.kind == K::IndirectEntry).unwrap();
        assert_eq!(indirect.farms, vec![PathBuf::from(FARM)]);
        assert_eq!(
            indirect.fix.as_deref(),
            Some(format!("replace with {LIB}").as_str())
        );
        let missing = all.iter().find(|f| f.kind == K::MissingLibrary).unwrap();
        assert_eq!(missing.location, needed("libgone.so.1"));
        assert_eq!(missing.location.to_string(), "need libgone.so.1 (needed)");
    }

    /// With a DT_RUNPATH present the DT_RPATH is ignored by ld.so: its
    /// unused entries and missing needs are no findings.
    #[test]
    fn an_ignored_rpath_reports_no_unused_or_missing() {
        let mut s = hand_made_survey();
        s.objects[0].facts.runpath = Some(LIB.into());
        let kinds: Vec<FindingKind> = findings(&s, &StoreDir::new("/nix/store"), Mode::Shrink)
            .unwrap()
            .into_iter()
            .filter(|f| f.file == Path::new("/o/bin/app"))
            .map(|f| f.kind)
            .collect();
        assert!(!kinds.contains(&FindingKind::UnusedEntry), "{kinds:?}");
        assert!(!kinds.contains(&FindingKind::MissingLibrary), "{kinds:?}");
        assert!(kinds.contains(&FindingKind::IndirectEntry), "{kinds:?}");
    }

    /// One group per kind and location, every file once, errors first.
    #[test]
    fn groups_by_kind_and_location() {
        let entry = Location::Entry {
            tag: Tag::Runpath,
            index: 0,
            text: "/s/farm/lib".into(),
        };
        let mut err = finding(FindingKind::IndirectEntry, "/o/bin/a", entry);
        err.severity = Severity::Error;
        let missing = |file, name| finding(FindingKind::MissingLibrary, file, needed(name));
        let f = vec![
            missing("/o/lib/a.so", "x.so.1"),
            missing("/o/lib/b.so", "x.so.1"),
            missing("/o/lib/b.so", "y.so.1"),
            missing("/o/lib/b.so", "x.so.1"),
            err,
        ];
        let g = groups(&f);
        assert_eq!(g.len(), 3);
        assert_eq!(g[0].kind, FindingKind::IndirectEntry);
        assert_eq!(g[1].location, needed("x.so.1"));
        assert_eq!(
            g[1].files,
            vec![PathBuf::from("/o/lib/a.so"), PathBuf::from("/o/lib/b.so")]
        );
        assert_eq!(g[1].message, "need x.so.1 (needed) in /o/lib/a.so");
        assert_eq!(g[2].files.len(), 1);
    }

    /// A store dir that cannot be listed is reported, not read as an empty
    /// store (which would drop every farm-reference finding in silence).
    #[test]
    fn an_unlistable_store_dir_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("store");
        std::fs::write(&file, "").unwrap();
        let store = StoreDir::new(&file);
        let err = findings(&hand_made_survey(), &store, Mode::Shrink).unwrap_err();
        assert_eq!(err.path, file);
    }

    /// Groups key on typed values, not on words: two needs whose words
    /// are the same (`need x.so (needed)`: a name with a space and
    /// parentheses, or a name and its provenance) are two groups; farm
    /// findings group by their farms, whatever their locations.
    #[test]
    fn groups_key_on_values_not_words() {
        let odd = Location::Need {
            name: "x.so (needed)".into(),
            provenance: None,
        };
        assert_eq!(odd.to_string(), needed("x.so").to_string());
        let f = [
            finding(FindingKind::MissingLibrary, "/o/lib/a.so", needed("x.so")),
            finding(FindingKind::MissingLibrary, "/o/lib/b.so", odd),
        ];
        assert_eq!(groups(&f).len(), 2);
        let farm_ref = |file, offset, farm: &str| {
            let at = Location::Offset { offset, line: None };
            finding(FindingKind::FarmReference, file, at).with_farms(vec![farm.into()])
        };
        let f = [
            farm_ref("/o/lib/a.so", 0x20, FARM),
            farm_ref("/o/lib/b.so", 0x100, FARM),
            farm_ref("/o/lib/b.so", 0x20, LIB),
        ];
        let g = groups(&f);
        assert_eq!(g.len(), 2);
        assert_eq!(
            g[0].files,
            [Path::new("/o/lib/a.so"), Path::new("/o/lib/b.so")]
        );
        assert_eq!(g[0].farms, [Path::new(FARM)]);
        assert_eq!(g[1].farms, [Path::new(LIB)]);
    }

    /// Findings of one file and severity are listed by their typed
    /// location: offsets in file order (as words, `offset 0x100` sorted
    /// before `offset 0x20`).
    #[test]
    fn findings_sort_offsets_as_numbers() {
        let d = tempfile::tempdir().unwrap();
        let store = d.path().join("store");
        let farm = store.join("1fffffffffffffffffffffffffffffff-farm");
        let real = store.join("2lllllllllllllllllllllllllllllll-lib");
        std::fs::create_dir_all(real.join("lib")).unwrap();
        std::fs::write(real.join("lib/liba.so"), b"a").unwrap();
        std::fs::create_dir_all(farm.join("lib")).unwrap();
        std::os::unix::fs::symlink(real.join("lib/liba.so"), farm.join("lib/liba.so")).unwrap();
        // One file naming the farm at 0x20 and at 0x100, not text.
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let mut bytes = vec![0u8; 0x200];
        let name = farm.to_string_lossy();
        bytes[0x20..0x20 + name.len()].copy_from_slice(name.as_bytes());
        bytes[0x100..0x100 + name.len()].copy_from_slice(name.as_bytes());
        std::fs::write(out.join("data"), &bytes).unwrap();
        let mut s = hand_made_survey();
        s.objects.clear();
        s.farm_links.clear();
        s.symlinks.clear();
        s.special_files.clear();
        s.link_loops.clear();
        s.errors.clear();
        s.roots = vec![out.clone()];
        s.other_files = vec![out.join("data")];
        let got: Vec<String> = findings(&s, &StoreDir::new(&store), Mode::Shrink)
            .unwrap()
            .into_iter()
            .map(|f| f.location.to_string())
            .collect();
        // The hits are the hash parts, after `<store>/`.
        let hash = store.as_os_str().len() as u64 + 1;
        let at = |o: u64| format!("offset {:#x}", o + hash);
        assert_eq!(got, [at(0x20), at(0x100)]);
    }
}

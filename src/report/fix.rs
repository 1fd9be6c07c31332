//! `unfarm fix`'s output: the dry-run plan in words (text and JSON) and the
//! lines of a real run (one per failure, one per file with `--verbose`, the
//! summary).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::check::stub_words;
use crate::closure::cost::{CostError, PlanCost};
use crate::fix::{FileResult, FileStatus, FixReport};
use crate::plan::{Action, EntryPlan, Outcome, Plan, Reason};
use crate::store::StoreDir;
use crate::survey::Survey;

use super::missing::Unsatisfied;
use super::words::plural;

/// `unfarm fix --dry-run --json` (schema: docs/check-json.md): the survey
/// with its plans, and the closure before and after, or why it was not
/// computed.
#[derive(Serialize)]
pub struct DryRunJson<'a> {
    /// Every ELF object with its facts and plans, and the farm symlinks.
    #[serde(flatten)]
    pub survey: &'a Survey,
    /// The closure before and after the plans.
    pub closure: Option<&'a PlanCost>,
    /// Why `closure` is missing, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closure_error: Option<String>,
    /// `--interpreter`: each dynamic executable whose PT_INTERP changes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interpreter_changes: Vec<InterpreterChange<'a>>,
    /// With `--libs`: the needs nothing provides (set by the caller).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsatisfied: Option<&'a [Unsatisfied]>,
}

/// `unfarm fix --json` (schema: docs/check-json.md): what the run did, and
/// with `--libs` the needs nothing provides.
#[derive(Serialize)]
pub struct RunJson<'a> {
    /// The run's counts and per-file results.
    #[serde(flatten)]
    pub report: &'a FixReport,
    /// With `--libs`: every soname nothing provides, ignored or not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsatisfied: Option<&'a [Unsatisfied]>,
}

/// One executable's PT_INTERP, before and after `fix --interpreter`.
#[derive(Serialize)]
pub struct InterpreterChange<'a> {
    /// The executable.
    pub path: &'a Path,
    /// PT_INTERP now.
    pub old: &'a str,
    /// PT_INTERP after the fix.
    pub new: &'a str,
}

/// The interpreter changes `fix` makes, in survey order.
fn interpreter_changes(s: &Survey) -> Vec<InterpreterChange<'_>> {
    s.objects
        .iter()
        .filter_map(|o| {
            Some(InterpreterChange {
                path: &o.path,
                new: s.interpreter_change(o)?,
                old: o.facts.interpreter.as_deref()?,
            })
        })
        .collect()
}

/// With `--interpreter`, one note per file that has no interpreter to set
/// (shown with `--verbose`; not an error).
pub fn interpreter_notes(s: &Survey) -> Vec<String> {
    let Some(new) = &s.interpreter else {
        return Vec::new();
    };
    let other_abi = |o: &&crate::survey::ObjectSurvey| {
        new.ident
            .is_some_and(|i| o.facts.interpreter.is_some() && !i.loadable_by(&o.facts.ident))
    };
    let abi = |i: &crate::elf::ElfIdent| format!("{:?} {}", i.class, i.machine_name());
    let mut notes: Vec<(&Path, String)> = s
        .objects
        .iter()
        .filter(|o| o.facts.interpreter.is_none())
        .map(|o| {
            let why = "no PT_INTERP (a shared library or static PIE)";
            (&*o.path, why.to_owned())
        })
        .chain(s.objects.iter().filter(other_abi).map(|o| {
            let theirs = new.ident.as_ref().map(abi).unwrap_or_default();
            let why = format!(
                "an {} executable, {} is {theirs}",
                abi(&o.facts.ident),
                new.path
            );
            (&*o.path, why)
        }))
        .chain(
            s.static_executables
                .iter()
                .map(|p| (&**p, "a static executable".to_owned())),
        )
        .collect();
    notes.sort();
    notes
        .into_iter()
        .map(|(p, why)| format!("note: {}: interpreter left alone: {why}", p.display()))
        .collect()
}

impl<'a> DryRunJson<'a> {
    /// The document for a survey and its closure cost (or the error that
    /// kept it from being computed).
    pub fn new(survey: &'a Survey, closure: &'a Result<PlanCost, CostError>) -> Self {
        DryRunJson {
            survey,
            closure: closure.as_ref().ok(),
            closure_error: closure.as_ref().err().map(CostError::to_string),
            interpreter_changes: interpreter_changes(survey),
            unsatisfied: None,
        }
    }
}

/// Plans that say the same thing (everything but the file), in order, with
/// the files they are for.
type PlanGroups<'a> = Vec<(String, Vec<&'a Path>)>;

/// The plan in plain words. By default one block per distinct *change*
/// (the entries replaced or dropped, and by what; a refusal and its
/// reason), whatever each file keeps around it (`$ORIGIN`, the order the
/// real dirs take): a package whose 43 libraries differ only in what they
/// keep reads as one change. `verbose`: per search list, old and new once
/// and why each entry went, stayed or was replaced, files whose plans are
/// the same under one plan, every file listed.
pub fn render_plan(s: &Survey, verbose: bool) -> String {
    use anstyle::AnsiColor;
    let red = AnsiColor::Red.on_default();
    let green = AnsiColor::Green.on_default();
    let (groups, changed) = if verbose {
        plan_groups(s)
    } else {
        change_groups(s)
    };
    let what = if verbose {
        "distinct plan"
    } else {
        "distinct change"
    };
    let bold = anstyle::Style::new().bold();
    let mut out = String::new();
    // Executables going from one interpreter to the same new one, once.
    let mut interp: PlanGroups = Vec::new();
    for c in interpreter_changes(s) {
        let body = format!(
            "  {bold}interpreter{bold:#}: change\n  {red}old:{red:#} {}\n  {green}new:{green:#} {}\n",
            c.old, c.new
        );
        add_to_group(&mut interp, body, c.path);
    }
    for (body, files) in interp.iter().chain(&groups) {
        plan_files(&mut out, files, verbose);
        out.push_str(body);
    }
    for l in &s.farm_links {
        let _ = writeln!(
            out,
            "{} (symlink)\n  {red}old:{red:#} {}\n  {green}new:{green:#} {}",
            l.path.display(),
            l.target.display(),
            l.canonical.display()
        );
    }
    let interps = if s.interpreter.is_some() {
        let n: usize = interp.iter().map(|g| g.1.len()).sum();
        format!(", {} to set", plural(n, "interpreter"))
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "unfarm fix --dry-run: {}, {} to change ({}), {} to retarget{interps}",
        plural(s.objects.len(), "ELF file"),
        plural(changed, "search path"),
        plural(groups.len(), what),
        plural(s.farm_links.len(), "symlink")
    );
    if verbose {
        for n in interpreter_notes(s) {
            let _ = writeln!(out, "{n}");
        }
    }
    out
}

/// Add `file` to the group of `body`, or start one (first appearance first).
fn add_to_group<'a>(groups: &mut PlanGroups<'a>, body: String, file: &'a Path) {
    match groups.iter_mut().find(|g| g.0 == body) {
        Some(g) => g.1.push(file),
        None => groups.push((body, vec![file])),
    }
}

/// Each plan that is not `Unchanged` in the words `words` gives it, its
/// warnings after, grouped by those words; and how many of them change.
fn group_plans<'a>(s: &'a Survey, words: impl Fn(&Plan) -> String) -> (PlanGroups<'a>, usize) {
    let mut groups: PlanGroups = Vec::new();
    let mut changed = 0;
    for p in s.objects.iter().flat_map(|o| &o.plans) {
        match p.outcome {
            Outcome::Unchanged => continue,
            Outcome::Change => changed += 1,
            Outcome::Refused { .. } => {}
        }
        let mut body = words(p);
        for w in &p.warnings {
            let _ = writeln!(body, "  warning: {w}");
        }
        add_to_group(&mut groups, body, &p.path);
    }
    (groups, changed)
}

/// Each plan that is not `Unchanged` in words, grouped by its words, and
/// how many of them change.
fn plan_groups(s: &Survey) -> (PlanGroups<'_>, usize) {
    group_plans(s, plan_words)
}

/// One plan in full: old and new, why each entry went, stayed or was
/// replaced, the dirs it gains, the computed names it found.
fn plan_words(p: &Plan) -> String {
    use anstyle::AnsiColor;
    let red = AnsiColor::Red.on_default();
    let green = AnsiColor::Green.on_default();
    let bold = anstyle::Style::new().bold();
    let status = match &p.outcome {
        Outcome::Refused { reason } => format!("{red}refused{red:#}: {reason}"),
        _ => "change".to_string(),
    };
    let mut body = format!(
        "  {bold}{}{bold:#}: {status}\n  {red}old:{red:#} {}\n  {green}new:{green:#} {}\n",
        p.tag, p.old, p.new
    );
    for e in &p.entries {
        let _ = writeln!(body, "  [{}] {}: {}", e.index, e.text, entry_words(e));
    }
    added_words(&mut body, p);
    // Names built at run time are invisible in the file's own lists:
    // say where each was found.
    for n in &p.needs {
        for pr in &n.need.provenance {
            if let crate::plan::needs::Provenance::Computed {
                recogniser,
                evidence,
            } = pr
            {
                let _ = writeln!(
                    body,
                    "  computed: {} ({recogniser}: {evidence})",
                    n.need.name
                );
            }
        }
    }
    body
}

/// Each search list that changes or is refused, grouped by what happens to
/// the entries that go (see [`render_plan`]), and how many of them change.
fn change_groups(s: &Survey) -> (PlanGroups<'_>, usize) {
    group_plans(s, change_words_of)
}

/// What happens to the entries of one list that go, and what it gains.
fn change_words_of(p: &Plan) -> String {
    let red = anstyle::AnsiColor::Red.on_default();
    let bold = anstyle::Style::new().bold();
    let mut body = format!("  {bold}{}{bold:#}: ", p.tag);
    if let Outcome::Refused { reason } = &p.outcome {
        let _ = writeln!(body, "{red}refused{red:#}: {reason}");
        return body;
    }
    body.push_str("change\n");
    let head = body.len();
    for e in &p.entries {
        change_words(&mut body, e);
    }
    added_words(&mut body, p);
    if body.len() == head {
        // Only the order changes (kept entries, the driver first).
        body.push_str("  the same entries, reordered\n");
    }
    body
}

/// Each dir the new list gains from outside the old one, and why:
/// `add DIR: serves NAMES (--libs)`.
fn added_words(out: &mut String, p: &crate::plan::Plan) {
    use crate::plan::inputs::AddedWhy;
    for a in &p.added {
        let why = match &a.why {
            AddedWhy::OwnOutput { needs } => {
                format!("serves {} (an output's own dir)", needs.join(", "))
            }
            AddedWhy::Libs { needs } => format!("serves {} (--libs)", needs.join(", ")),
            AddedWhy::RuntimeDependency => "--runtime-dependency".into(),
            AddedWhy::AppendRunpath => "--append-runpath".into(),
        };
        let _ = writeln!(out, "  add {}: {why}", a.text);
    }
}

/// An entry that goes, in words, with what replaces it (real dirs sorted:
/// each file orders them by its own first use); nothing for one kept.
fn change_words(out: &mut String, e: &EntryPlan) {
    match &e.action {
        Action::Keep => {}
        Action::Drop => {
            let why: Vec<String> = e.reasons.iter().map(reason_words).collect();
            let _ = writeln!(out, "  drop {}: {}", e.text, why.join("; "));
        }
        Action::Replace { with } => {
            let farms: Vec<String> = e
                .reasons
                .iter()
                .filter_map(|r| match r {
                    Reason::Indirect { farms, .. } => Some(farms),
                    _ => None,
                })
                .flatten()
                .map(|f| f.display().to_string())
                .collect();
            let through = if farms.is_empty() {
                String::new()
            } else {
                format!(" (farm {})", farms.join(", "))
            };
            let _ = writeln!(
                out,
                "  {}{through} -> {}:",
                e.text,
                plural(with.len(), "real dir")
            );
            let mut dirs: Vec<&String> = with.iter().collect();
            dirs.sort();
            for d in dirs {
                let _ = writeln!(out, "    {d}");
            }
        }
    }
}

/// The file a plan is for, or the files sharing it (the first few unless
/// `verbose`).
fn plan_files(out: &mut String, files: &[&Path], verbose: bool) {
    if files.len() == 1 {
        let _ = writeln!(out, "{}", files[0].display());
        return;
    }
    let what = if verbose { "plan" } else { "change" };
    let _ = writeln!(out, "{} with the same {what}:", plural(files.len(), "file"));
    let shown = if verbose { files.len() } else { 3 };
    for f in files.iter().take(shown) {
        let _ = writeln!(out, "  - {}", f.display());
    }
    if files.len() > shown {
        let _ = writeln!(
            out,
            "  … and {} more (--verbose lists them)",
            files.len() - shown
        );
    }
}

/// One entry's action and reasons, in words: "replace (farm F offers 12
/// libraries; serves libfoo.so.1 via the farm)", "keep: $ORIGIN-relative".
fn entry_words(e: &EntryPlan) -> String {
    let act = match &e.action {
        Action::Keep => "keep".to_string(),
        Action::Drop => "drop".to_string(),
        // The dirs themselves are in `new:`, said once.
        Action::Replace { with } => format!("replace by {}", plural(with.len(), "real dir")),
    };
    let why: Vec<String> = e.reasons.iter().map(reason_words).collect();
    if why.is_empty() {
        act
    } else {
        format!("{act}: {}", why.join("; "))
    }
}

/// A reason in words. The match is exhaustive so that a reason added to the
/// planner cannot reach users without words of its own.
fn reason_words(r: &Reason) -> String {
    match r {
        Reason::Served {
            need,
            via_farm: true,
        } => format!("serves {need} (through the farm)"),
        Reason::Served { need, .. } => format!("serves {need}"),
        Reason::Indirect { offers, farms } => format!(
            "offers {} through farm {}",
            plural(*offers, "library"),
            farms
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Reason::Unused => "serves no known need".into(),
        Reason::Stub => "stub dir (its fake libraries shadow the real driver)".into(),
        Reason::OffersStub { stubs, .. } => format!(
            "offers the stub {} (the driver dir goes first)",
            stub_words(stubs)
        ),
        Reason::BuildDir => "build dir, outside the store".into(),
        Reason::Insecure { why } => why.to_string(),
        Reason::Origin => "$ORIGIN-relative".into(),
        Reason::Driver => "the driver dir, kept first".into(),
        Reason::KeptByPattern { pattern } => format!("matches --keep {pattern}"),
        Reason::MissingNeedGuard { need } => {
            format!("kept: {need} is missing, it may be meant to live here")
        }
        Reason::IgnoredList => "in the RPATH ld.so ignores (the object has a RUNPATH)".into(),
        Reason::Duplicate { of } => format!("the same dir as entry {of}"),
        Reason::Redundant => "nothing is served from here once the real dirs come first".into(),
        Reason::OwnOutput => {
            "a dir of the outputs themselves, never a farm: its links through a farm are retargeted, the entry stays".into()
        }
        Reason::CannotDlopen => "cannot dlopen: only its needs (it imports no dlopen, dlmopen or dlsym, and a RUNPATH serves its own needs only)".into(),
    }
}

/// A file's line after a real run: for a failure the error message
/// (`PATH: why`, the path said once; the caller adds `unfarm:`), else
/// `STATUS: PATH (what changed)`, shown with `--verbose`.
pub fn result_line(r: &FileResult) -> String {
    match r.status {
        FileStatus::Failed if r.path.as_os_str().is_empty() => r.detail.clone(),
        // The detail may repeat the path after its reason.
        FileStatus::Failed => format!(
            "{}: {}",
            r.path.display(),
            r.detail.replacen(&format!("{}: ", r.path.display()), "", 1)
        ),
        _ => format!("{}: {} ({})", r.status, r.path.display(), r.detail),
    }
}

/// The closing line of a real run: files changed, symlinks retargeted,
/// failures, and what a user fixes for: the farms (and other store paths)
/// the changed files' search paths and symlinks no longer name. (Bytes of
/// names removed said nothing: every RUNPATH may grow.) Whether a farm
/// leaves the closure is `check`'s to say: another byte may still name it.
pub fn summary_line(report: &FixReport, survey: &Survey, store: &StoreDir) -> String {
    use std::collections::BTreeSet;
    let done: BTreeSet<&Path> = report
        .results
        .iter()
        .filter(|r| matches!(r.status, FileStatus::Changed | FileStatus::Retargeted))
        .map(|r| r.path.as_path())
        .collect();
    let (mut farms, mut dropped) = (BTreeSet::new(), BTreeSet::new());
    for p in survey
        .objects
        .iter()
        .filter(|o| done.contains(o.path.as_path()))
        .flat_map(|o| &o.plans)
        .filter(|p| p.changes())
    {
        dropped.extend(p.removed_store_paths.iter().map(PathBuf::as_path));
        for e in p.entries.iter().filter(|e| e.action != Action::Keep) {
            for r in &e.reasons {
                if let Reason::Indirect { farms: f, .. } = r {
                    farms.extend(f.iter().map(PathBuf::as_path));
                }
            }
        }
    }
    for l in survey
        .farm_links
        .iter()
        .filter(|l| done.contains(l.path.as_path()))
    {
        farms.extend(l.farms.iter().map(PathBuf::as_path));
        dropped.extend(l.farms.iter().map(PathBuf::as_path));
    }
    farms.retain(|f| dropped.contains(f));
    let name = |p: &Path| {
        store
            .store_path_of(p)
            .map_or_else(|| p.display().to_string(), |s| s.name)
    };
    let mut gone = Vec::new();
    if !farms.is_empty() {
        let names: Vec<String> = farms.iter().map(|f| name(f)).collect();
        let word = if farms.len() == 1 { "farm" } else { "farms" };
        gone.push(format!("{word} {}", names.join(", ")));
    }
    let others = dropped.len() - farms.len();
    if others > 0 {
        gone.push(plural(others, "other store path"));
    }
    let tail = if gone.is_empty() {
        String::new()
    } else {
        format!("; no longer named by them: {}", gone.join(" and "))
    };
    format!(
        "unfarm fix: {} ({} walked): {} changed, {} retargeted, {}{tail}",
        plural(report.elf_files, "ELF file"),
        plural(report.files_scanned, "path"),
        report.changed,
        plural(report.symlinks_retargeted, "symlink"),
        plural(report.failed, "failure"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{FARM, LIB, hand_made_survey};

    /// Strip ANSI styling: the renderers paint, the stream strips.
    fn plain(s: &str) -> String {
        let mut out = String::new();
        let mut it = s.chars();
        while let Some(c) = it.next() {
            if c == '\x1b' {
                it.by_ref().take_while(|&c| c != 'm').for_each(drop);
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn a_change_in_words() {
        let text = plain(&render_plan(&hand_made_survey(), false));
        let want = format!(
            "/o/bin/app\n  RPATH: change\n  \
             {FARM}/lib (farm {FARM}) -> 1 real dir:\n    {LIB}\n  \
             drop {FARM}/lib: the same dir as entry 0\n  \
             drop /nix/store/3uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu-u/lib: serves no known need\n  \
             warning: imports dlopen()\n\
             /o/lib/l.so (symlink)\n  old: {FARM}/lib/l.so\n  new: {LIB}/l.so\n\
             unfarm fix --dry-run: 1 ELF file, 1 search path to change (1 distinct change), 1 symlink to retarget\n"
        );
        assert_eq!(text, want);
    }

    /// The hand-made survey's program, `n` times, its plan changed by
    /// `edit` (which sets each copy's path); no symlinks.
    fn copies(n: usize, edit: impl Fn(usize, &mut Plan)) -> Survey {
        let mut s = hand_made_survey();
        s.farm_links.clear();
        let o = s.objects.remove(0);
        for i in 0..n {
            let mut p = o.plans[0].clone();
            edit(i, &mut p);
            let mut facts = o.facts.clone();
            facts.needed.clear();
            s.objects.push(crate::survey::ObjectSurvey {
                path: p.path.clone(),
                facts,
                needs: Vec::new(),
                plans: vec![p],
                nlink: 1,
            });
        }
        s
    }

    /// The CUDA-sized package printed 39 "distinct plans" (402 lines) that
    /// differed only in the `$ORIGIN` entries each file keeps and the order
    /// of its real dirs: one change, each dir once; `-v` keeps the plans.
    #[test]
    fn plans_differing_only_in_what_they_keep_are_one_change() {
        let s = copies(40, |i, p| {
            p.path = format!("/o/lib/m{i}.so").into();
            if i % 2 == 1 {
                // Its own $ORIGIN entry first, kept.
                p.entries.insert(
                    0,
                    crate::plan::EntryPlan {
                        index: 0,
                        text: format!("$ORIGIN/../sub{i}"),
                        dir: format!("/o/sub{i}").into(),
                        action: Action::Keep,
                        reasons: vec![Reason::Origin],
                    },
                );
                p.old = format!("$ORIGIN/../sub{i}:{}", p.old);
                p.new = format!("$ORIGIN/../sub{i}:{}", p.new);
            }
        });
        let text = plain(&render_plan(&s, false));
        assert!(
            text.starts_with("40 files with the same change:\n"),
            "{text}"
        );
        assert_eq!(text.matches(&format!("    {LIB}\n")).count(), 1, "{text}");
        assert!(
            text.ends_with(
                "40 search paths to change (1 distinct change), 0 symlinks to retarget\n"
            ),
            "{text}"
        );
        assert!(text.lines().count() <= 12, "{text}");
        let verbose = plain(&render_plan(&s, true));
        assert!(
            verbose.ends_with("(21 distinct plans), 0 symlinks to retarget\n"),
            "{verbose}"
        );
    }

    #[test]
    fn a_plan_in_words() {
        let text = plain(&render_plan(&hand_made_survey(), true));
        let want = format!(
            "/o/bin/app\n  RPATH: change\n  old: {FARM}/lib:{FARM}/lib:/nix/store/3uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu-u/lib\n  new: {LIB}\n  \
             [0] {FARM}/lib: replace by 1 real dir: offers 2 libraries through farm {FARM}\n  \
             [1] {FARM}/lib: drop: the same dir as entry 0\n  \
             [2] /nix/store/3uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu-u/lib: drop: serves no known need\n  \
             warning: imports dlopen()\n\
             /o/lib/l.so (symlink)\n  old: {FARM}/lib/l.so\n  new: {LIB}/l.so\n\
             unfarm fix --dry-run: 1 ELF file, 1 search path to change (1 distinct plan), 1 symlink to retarget\n"
        );
        assert_eq!(text, want);
    }

    #[test]
    fn files_with_the_same_plan_are_listed_under_it_once() {
        let s = copies(5, |i, p| p.path = format!("/o/bin/app{i}").into());
        let text = plain(&render_plan(&s, false));
        assert!(text.starts_with("5 files with the same change:\n  - /o/bin/app0\n  - /o/bin/app1\n  - /o/bin/app2\n  … and 2 more (--verbose lists them)\n  RPATH: change\n"), "{text}");
        assert!(
            text.ends_with(
                "5 search paths to change (1 distinct change), 0 symlinks to retarget\n"
            ),
            "{text}"
        );
        let verbose = plain(&render_plan(&s, true));
        assert!(verbose.contains("  - /o/bin/app4\n") && !verbose.contains("more (--verbose"));
    }

    #[test]
    fn a_failure_names_its_path_once() {
        let r = |path: &str, status, detail: &str| FileResult {
            path: path.into(),
            status,
            detail: detail.into(),
            store_path_bytes_removed: 0,
            bytes_written: 0,
            hard_links: 1,
        };
        assert_eq!(
            result_line(&r(
                "/o/lib/a.so",
                FileStatus::Failed,
                "/o/lib/a.so: read-only file system"
            )),
            "/o/lib/a.so: read-only file system"
        );
        assert_eq!(
            result_line(&r("", FileStatus::Failed, "syncfs failed")),
            "syncfs failed"
        );
        assert_eq!(
            result_line(&r("/o/lib/a.so", FileStatus::Changed, "RUNPATH a -> b")),
            "changed: /o/lib/a.so (RUNPATH a -> b)"
        );
    }

    /// The summary said "1376 bytes of store path names removed" while every
    /// RUNPATH grew: it names the farms the changed files no longer name.
    #[test]
    fn the_summary_names_what_the_changed_files_no_longer_name() {
        let mut s = hand_made_survey();
        s.objects[0].plans[0].removed_store_paths = vec![
            FARM.into(),
            "/nix/store/3uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu-u".into(),
        ];
        let result = |path: &str, status| FileResult {
            path: path.into(),
            status,
            detail: String::new(),
            store_path_bytes_removed: 0,
            bytes_written: 0,
            hard_links: 1,
        };
        let mut report = FixReport {
            files_scanned: 1,
            elf_files: 2,
            changed: 1,
            failed: 1,
            symlinks_retargeted: 1,
            store_path_bytes_removed: 64,
            results: vec![
                result("/o/bin/app", FileStatus::Changed),
                result("/o/lib/l.so", FileStatus::Retargeted),
            ],
        };
        let store = StoreDir::new("/nix/store");
        assert_eq!(
            summary_line(&report, &s, &store),
            "unfarm fix: 2 ELF files (1 path walked): 1 changed, 1 symlink retargeted, 1 failure; no longer named by them: farm farm and 1 other store path"
        );
        // Nothing changed: nothing claimed.
        report.results.clear();
        assert_eq!(
            summary_line(&report, &s, &store),
            "unfarm fix: 2 ELF files (1 path walked): 1 changed, 1 symlink retargeted, 1 failure"
        );
    }
}

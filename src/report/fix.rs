//! `unfarm fix`'s output: the dry-run plan in words (text and JSON) and the
//! lines of a real run (one per failure, one per file with `--verbose`, the
//! summary).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::closure::cost::PlanCost;
use crate::fix::{FileResult, FileStatus, FixReport};
use crate::plan::{Action, EntryPlan, Outcome, Reason};
use crate::survey::Survey;

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
    /// Why `closure` is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closure_error: Option<&'a str>,
    /// `--interpreter`: each dynamic executable whose PT_INTERP changes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interpreter_changes: Vec<InterpreterChange<'a>>,
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
    pub fn new(survey: &'a Survey, closure: &'a Result<PlanCost, String>) -> Self {
        DryRunJson {
            survey,
            closure: closure.as_ref().ok(),
            closure_error: closure.as_ref().err().map(String::as_str),
            interpreter_changes: interpreter_changes(survey),
        }
    }
}

/// Plans that say the same thing (everything but the file), in order, with
/// the files they are for.
type PlanGroups<'a> = Vec<(String, Vec<&'a Path>)>;

/// The plan in plain words: per search list, old and new once and why each
/// entry went, stayed or was replaced; files whose plans are the same are
/// listed under one plan. `verbose`: every file of a shared plan.
pub fn render_plan(s: &Survey, verbose: bool) -> String {
    use anstyle::AnsiColor;
    let red = AnsiColor::Red.on_default();
    let green = AnsiColor::Green.on_default();
    let bold = anstyle::Style::new().bold();
    let (groups, changed) = plan_groups(s);
    let mut out = String::new();
    // Executables going from one interpreter to the same new one, once.
    let mut interp: PlanGroups = Vec::new();
    for c in interpreter_changes(s) {
        let body = format!(
            "  {bold}interpreter{bold:#}: change\n  {red}old:{red:#} {}\n  {green}new:{green:#} {}\n",
            c.old, c.new
        );
        match interp.iter_mut().find(|g| g.0 == body) {
            Some(g) => g.1.push(c.path),
            None => interp.push((body, vec![c.path])),
        }
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
        plural(groups.len(), "distinct plan"),
        plural(s.farm_links.len(), "symlink")
    );
    if verbose {
        for n in interpreter_notes(s) {
            let _ = writeln!(out, "{n}");
        }
    }
    out
}

/// Each plan that is not `Unchanged` in words, grouped by its words, and
/// how many of them change.
fn plan_groups(s: &Survey) -> (PlanGroups<'_>, usize) {
    use anstyle::AnsiColor;
    let red = AnsiColor::Red.on_default();
    let green = AnsiColor::Green.on_default();
    let bold = anstyle::Style::new().bold();
    let mut groups: PlanGroups = Vec::new();
    let mut changed = 0;
    for p in s.objects.iter().flat_map(|o| &o.plans) {
        let status = match &p.outcome {
            Outcome::Unchanged => continue,
            Outcome::Change => {
                changed += 1;
                "change".to_string()
            }
            Outcome::Refused { reason } => format!("{red}refused{red:#}: {reason}"),
        };
        let mut body = format!(
            "  {bold}{}{bold:#}: {status}\n  {red}old:{red:#} {}\n  {green}new:{green:#} {}\n",
            p.tag, p.old, p.new
        );
        for e in &p.entries {
            let _ = writeln!(body, "  [{}] {}: {}", e.index, e.text, entry_words(e));
        }
        for w in &p.warnings {
            let _ = writeln!(body, "  warning: {w}");
        }
        match groups.iter_mut().find(|g| g.0 == body) {
            Some(g) => g.1.push(&p.path),
            None => groups.push((body, vec![&p.path])),
        }
    }
    (groups, changed)
}

/// The file a plan is for, or the files sharing it (the first few unless
/// `verbose`).
fn plan_files(out: &mut String, files: &[&Path], verbose: bool) {
    if files.len() == 1 {
        let _ = writeln!(out, "{}", files[0].display());
        return;
    }
    let _ = writeln!(out, "{} with the same plan:", plural(files.len(), "file"));
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
        Reason::BuildDir => "build dir, outside the store".into(),
        Reason::Insecure { why } => why.clone(),
        Reason::Origin => "$ORIGIN-relative".into(),
        Reason::Driver => "the driver dir, kept first".into(),
        Reason::KeptByPattern { pattern } => format!("matches --keep {pattern}"),
        Reason::MissingNeedGuard { need } => {
            format!("kept: {need} is missing, it may be meant to live here")
        }
        Reason::IgnoredList => "in the RPATH ld.so ignores (the object has a RUNPATH)".into(),
        Reason::Duplicate { of } => format!("the same dir as entry {of}"),
        Reason::Redundant => "nothing is served from here once the real dirs come first".into(),
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

/// The closing line of a real run: files, changes, symlinks, bytes of store
/// path names removed, failures.
pub fn summary_line(report: &FixReport) -> String {
    format!(
        "unfarm fix: {} ({} walked): {} changed, {} retargeted, {} of store path names removed, {}",
        plural(report.elf_files, "ELF file"),
        plural(report.files_scanned, "path"),
        report.changed,
        plural(report.symlinks_retargeted, "symlink"),
        plural(report.store_path_bytes_removed, "byte"),
        plural(report.failed, "failure"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::findings::tests::{FARM, LIB, hand_made_survey};

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
    fn a_plan_in_words() {
        let text = plain(&render_plan(&hand_made_survey(), false));
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
        let mut s = hand_made_survey();
        s.farm_links.clear();
        let o = s.objects.remove(0);
        for i in 0..5 {
            let mut p = o.plans[0].clone();
            p.path = format!("/o/bin/app{i}").into();
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
        let text = plain(&render_plan(&s, false));
        assert!(text.starts_with("5 files with the same plan:\n  - /o/bin/app0\n  - /o/bin/app1\n  - /o/bin/app2\n  … and 2 more (--verbose lists them)\n  RPATH: change\n"), "{text}");
        assert!(
            text.ends_with("5 search paths to change (1 distinct plan), 0 symlinks to retarget\n"),
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

    #[test]
    fn the_summary_counts_in_words() {
        let report = FixReport {
            files_scanned: 1,
            elf_files: 2,
            changed: 2,
            failed: 1,
            symlinks_retargeted: 1,
            store_path_bytes_removed: 64,
            results: Vec::new(),
        };
        assert_eq!(
            summary_line(&report),
            "unfarm fix: 2 ELF files (1 path walked): 2 changed, 1 symlink retargeted, 64 bytes of store path names removed, 1 failure"
        );
    }
}

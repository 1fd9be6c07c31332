//! `unfarm fix OUT...`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use unfarm::closure::cost::{CostModel, PlanCost};
use unfarm::fix::FileStatus;
use unfarm::plan::{Action, Outcome, Reason};
use unfarm::store::StoreDir;
use unfarm::survey::{Survey, survey};

use super::planning::PlanArgs;
use unfarm::report::check::plural;

#[derive(clap::Args)]
pub struct Args {
    /// Output paths (directories or files) to fix in place.
    #[arg(required = true, value_name = "OUT")]
    outputs: Vec<PathBuf>,
    /// Print the plan (old -> new, and why each entry went or stayed); write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// List every file (of a shared dry-run plan; every file fixed).
    #[arg(long, short)]
    verbose: bool,
    /// Files with several hard links: edit-shared (in-place edits reach every
    /// link; edits that must copy are refused), break (this name gets its own
    /// fixed copy), refuse.
    #[arg(long, value_enum, default_value = "edit-shared")]
    hard_links: HardLinkPolicy,
    #[command(flatten)]
    plan: PlanArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum HardLinkPolicy {
    EditShared,
    Break,
    Refuse,
}

pub fn run(a: Args, store: &StoreDir) -> anyhow::Result<ExitCode> {
    let opts = a.plan.survey_options(store)?;
    let roots = super::output_roots(&a.outputs, store)?;
    if !a.dry_run {
        // A killed run's files go back to their old bytes before planning.
        unfarm::fix::recover_interrupted(&roots);
    }
    let s = survey(&roots, store, &opts);
    if a.dry_run {
        // Closure before and after the plan, computed without writing.
        let closure = CostModel::new(&s, store, &a.plan.source.source(store))
            .and_then(|m| m.plan_cost())
            .map_err(|e| e.to_string());
        if a.json {
            #[derive(serde::Serialize)]
            struct DryRun<'a> {
                #[serde(flatten)]
                survey: &'a Survey,
                closure: Option<&'a PlanCost>,
                #[serde(skip_serializing_if = "Option::is_none")]
                closure_error: Option<&'a str>,
            }
            let v = DryRun {
                survey: &s,
                closure: closure.as_ref().ok(),
                closure_error: closure.as_ref().err().map(String::as_str),
            };
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else if !super::quiet() {
            let text = render_plan(&s, a.verbose);
            let mut out = anstream::stdout().lock();
            write!(out, "{text}")?;
            match &closure {
                Ok(c) => writeln!(out, "{}", super::check::closure_line(c))?,
                Err(e) => writeln!(out, "closure: not computed: {e}")?,
            }
        }
        let refused = s
            .objects
            .iter()
            .flat_map(|o| &o.plans)
            .any(|p| matches!(p.outcome, Outcome::Refused { .. }));
        return Ok(if refused || !s.errors.is_empty() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    let fix_opts = unfarm::fix::FixOptions {
        hard_links: match a.hard_links {
            HardLinkPolicy::EditShared => unfarm::fix::atomic::HardLinks::EditShared,
            HardLinkPolicy::Break => unfarm::fix::atomic::HardLinks::Break,
            HardLinkPolicy::Refuse => unfarm::fix::atomic::HardLinks::Refuse,
        },
    };
    let todo = s
        .objects
        .iter()
        .filter(|o| {
            o.plans
                .iter()
                .any(|p| !matches!(p.outcome, Outcome::Unchanged))
        })
        .count() as u64;
    // A bar only on a terminal and only when the run is long enough to matter.
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) && todo > 200 {
        indicatif::ProgressBar::new(todo)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let report = unfarm::fix::fix(&s, store, &opts.plan, &fix_opts, &|| bar.inc(1));
    bar.finish_and_clear();
    // One write per buffer, not per line (thousands of lines on a big output).
    let mut out = std::io::BufWriter::new(anstream::stdout().lock());
    if a.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        // Failures always, one line each; what changed only with --verbose
        // (a build log needs the count, not a line per file).
        for r in &report.results {
            match r.status {
                FileStatus::Failed if r.path.as_os_str().is_empty() => super::error_line(&r.detail),
                // The path once: the detail may repeat it after its reason.
                FileStatus::Failed => super::error_line(format_args!(
                    "{}: {}",
                    r.path.display(),
                    r.detail.replacen(&format!("{}: ", r.path.display()), "", 1)
                )),
                _ if a.verbose => {
                    writeln!(out, "{}: {} ({})", r.status, r.path.display(), r.detail)?
                }
                _ => {}
            }
        }
        for e in &s.errors {
            super::error_line(e);
        }
        if !super::quiet() {
            writeln!(
                out,
                "unfarm fix: {} ({} walked): {} changed, {} retargeted, {} of store path names removed, {}",
                plural(report.elf_files, "ELF file"),
                plural(report.files_scanned, "path"),
                report.changed,
                plural(report.symlinks_retargeted, "symlink"),
                plural(report.store_path_bytes_removed, "byte"),
                plural(report.failed, "failure"),
            )?;
        }
    }
    out.flush()?;
    let code = if report.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    };
    // The process ends here: freeing every plan and path one by one would
    // only delay the exit.
    std::mem::forget(report);
    std::mem::forget(s);
    Ok(code)
}

/// The plan in plain words: per search list, old and new once and why each
/// entry went, stayed or was replaced; files whose plans are the same are
/// listed under one plan.
pub fn render_plan(s: &Survey, verbose: bool) -> String {
    use anstyle::AnsiColor;
    let red = AnsiColor::Red.on_default();
    let green = AnsiColor::Green.on_default();
    let bold = anstyle::Style::new().bold();
    // Plans keyed by what they say (everything but the file), in order.
    let mut groups: Vec<(String, Vec<&std::path::Path>)> = Vec::new();
    let mut changed = 0;
    for o in &s.objects {
        for p in &o.plans {
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
                body.push_str(&format!("  [{}] {}: {}\n", e.index, e.text, entry_words(e)));
            }
            for w in &p.warnings {
                body.push_str(&format!("  warning: {w}\n"));
            }
            match groups.iter_mut().find(|g| g.0 == body) {
                Some(g) => g.1.push(&p.path),
                None => groups.push((body, vec![&p.path])),
            }
        }
    }
    let mut out = String::new();
    for (body, files) in &groups {
        if files.len() == 1 {
            out.push_str(&format!("{}\n", files[0].display()));
        } else {
            out.push_str(&format!(
                "{} with the same plan:\n",
                plural(files.len(), "file")
            ));
            let shown = if verbose { files.len() } else { 3 };
            for f in files.iter().take(shown) {
                out.push_str(&format!("  - {}\n", f.display()));
            }
            if files.len() > shown {
                out.push_str(&format!(
                    "  … and {} more (--verbose lists them)\n",
                    files.len() - shown
                ));
            }
        }
        out.push_str(body);
    }
    for l in &s.farm_links {
        out.push_str(&format!(
            "{} (symlink)\n  {red}old:{red:#} {}\n  {green}new:{green:#} {}\n",
            l.path.display(),
            l.target.display(),
            l.canonical.display()
        ));
    }
    out.push_str(&format!(
        "unfarm fix --dry-run: {}, {} to change ({}), {} to retarget\n",
        plural(s.objects.len(), "ELF file"),
        plural(changed, "search path"),
        plural(groups.len(), "distinct plan"),
        plural(s.farm_links.len(), "symlink")
    ));
    out
}

/// One entry's action and reasons, in words: "replace (farm F offers 12
/// libraries; serves libfoo.so.1 via the farm)", "keep: $ORIGIN-relative".
fn entry_words(e: &unfarm::plan::EntryPlan) -> String {
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

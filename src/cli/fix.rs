//! `unfarm fix OUT...`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use unfarm::closure::cost::CostModel;
use unfarm::fix::{FileStatus, FixOptions};
use unfarm::plan::Outcome;
use unfarm::report::closure::closure_line;
use unfarm::report::fix::{DryRunJson, RunJson, render_plan, result_line, summary_line};
use unfarm::report::missing::Unsatisfied;
use unfarm::store::StoreDir;
use unfarm::survey::{Survey, survey};

use super::planning::PlanArgs;

#[derive(clap::Args)]
pub struct Args {
    /// Output paths (directories or files) to fix in place.
    #[arg(required = true, value_name = "OUT")]
    outputs: Vec<PathBuf>,
    /// Print each distinct change (entries that go, the real dirs that
    /// replace them) with its files; with -v each plan (old -> new, why each
    /// entry went or stayed); write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Machine-readable output: the run's results, or with --dry-run the
    /// plans (schemas: docs/check-json.md).
    #[arg(long)]
    json: bool,
    /// Dry run: every plan in words and every file; a run: every file fixed.
    #[arg(long, short)]
    verbose: bool,
    /// Files with several hard links: edit-shared (in-place edits reach every
    /// link; edits that must copy are refused), break (this name gets its own
    /// fixed copy), refuse.
    #[arg(long, value_enum, default_value = "edit-shared")]
    hard_links: HardLinkPolicy,
    /// Write an output the Nix database lists as valid (refused by default:
    /// `nix-store --verify-path` then reports it modified).
    #[arg(long)]
    write_registered: bool,
    /// Set PT_INTERP of every dynamic executable to FILE (libraries, static
    /// executables and those of another class or machine than FILE are left
    /// alone), in the same write as the search path; works without a farm,
    /// e.g. with
    /// "$(cat $NIX_BINTOOLS/nix-support/dynamic-linker)".
    #[arg(long, value_name = "FILE")]
    interpreter: Option<PathBuf>,
    /// Do not force the writes to disk (no syncfs/fsync). For a run inside
    /// a Nix build (the hook passes it): the outputs are not registered yet,
    /// a crash discards the build, and Nix fsyncs store paths itself when
    /// `fsync-store-paths` is set. Each file is still replaced atomically or
    /// journaled: a killed run leaves it old or new.
    #[arg(long)]
    no_sync: bool,
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
    let mut opts = a.plan.survey_options(store)?;
    opts.interpreter = interpreter(&a)?;
    let roots = super::output_roots(&a.outputs, store)?;
    if a.dry_run {
        let s = survey(&roots, store, &opts);
        let missing = libs_report(&a.plan, &s, store);
        let code = dry_run(&a, &s, store, &roots, missing.as_deref())?;
        return Ok(if any_missing(&missing) {
            ExitCode::from(1)
        } else {
            code
        });
    }
    if !registered_ok(&a, &roots, store) {
        return Ok(ExitCode::from(1));
    }
    // A killed run's files go back to their old bytes before planning; where
    // that fails, a file may hold half an edit: nothing is planned on it.
    let unrecovered = unfarm::fix::recover_interrupted(&roots);
    if !unrecovered.is_empty() {
        for e in &unrecovered {
            super::error_line(e);
        }
        return Ok(ExitCode::FAILURE);
    }
    let s = survey(&roots, store, &opts);
    let fix_opts = FixOptions {
        hard_links: match a.hard_links {
            HardLinkPolicy::EditShared => unfarm::fix::atomic::HardLinks::EditShared,
            HardLinkPolicy::Break => unfarm::fix::atomic::HardLinks::Break,
            HardLinkPolicy::Refuse => unfarm::fix::atomic::HardLinks::Refuse,
        },
        sync: !a.no_sync,
    };
    let missing = libs_report(&a.plan, &s, store);
    let bar = progress_bar(&s);
    let report = unfarm::fix::fix(&s, store, &opts.plan, &fix_opts, &|| bar.inc(1));
    bar.finish_and_clear();
    // One write per buffer, not per line (thousands of lines on a big output).
    let mut out = std::io::BufWriter::new(anstream::stdout().lock());
    if a.json {
        let v = RunJson {
            report: &report,
            unsatisfied: missing.as_deref(),
        };
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
    } else {
        // Failures always, one line each; what changed only with --verbose
        // (a build log needs the count, not a line per file).
        for r in &report.results {
            if r.status == FileStatus::Failed {
                super::error_line(result_line(r));
            } else if a.verbose {
                writeln!(out, "{}", result_line(r))?;
            }
        }
        if a.verbose {
            for n in unfarm::report::fix::interpreter_notes(&s) {
                writeln!(out, "{n}")?;
            }
        }
        for e in &s.errors {
            super::error_line(e);
        }
        if !super::quiet() {
            writeln!(out, "{}", summary_line(&report, &s, store))?;
        }
    }
    out.flush()?;
    // Like autoPatchelf: what can be written is written, and needs that
    // nothing provides fail the run (the build).
    let code = if report.failed > 0 || any_missing(&missing) {
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

/// With `--libs`: a warning per `--libs` dir that is never used, and a
/// line per soname nothing provides (less `--ignore-missing`); every such
/// soname, ignored or not, for the JSON (`None` without `--libs`).
pub fn libs_report(plan: &PlanArgs, s: &Survey, store: &StoreDir) -> Option<Vec<Unsatisfied>> {
    use unfarm::report::missing::{lib_dir_warnings, unsatisfied, unsatisfied_line};
    if plan.libs.is_empty() {
        return None;
    }
    for w in lib_dir_warnings(&plan.libs, s, store) {
        super::error_line(w);
    }
    let missing = unsatisfied(s, &plan.ignore_missing);
    for u in missing.iter().filter(|u| !u.ignored) {
        super::error_line(unsatisfied_line(u));
    }
    Some(missing)
}

/// Some need nothing provides is not ignored: the run fails.
pub fn any_missing(missing: &Option<Vec<Unsatisfied>>) -> bool {
    missing.iter().flatten().any(|u| !u.ignored)
}

/// A registered (valid) store path is immutable: writing it corrupts the
/// store. Refuse, one line per path with what to do instead, unless
/// `--write-registered`; then say what it costs. Nothing is written on refusal.
fn registered_ok(a: &Args, roots: &[PathBuf], store: &StoreDir) -> bool {
    let valid = match unfarm::closure::registered(store, a.plan.source.db.as_deref(), roots) {
        Ok(v) => v,
        Err(e) if a.write_registered => {
            super::error_line(format_args!("{e}: writing anyway (--write-registered)"));
            return true;
        }
        Err(e) => {
            super::error_line(format_args!(
                "{e}: cannot tell whether the outputs are registered store paths; nothing written (--write-registered writes anyway)"
            ));
            return false;
        }
    };
    let mut seen = Vec::new();
    for (_, p) in &valid {
        if seen.contains(&p) {
            continue;
        }
        seen.push(p);
        if a.write_registered {
            super::error_line(format_args!(
                "{}: a registered store path, written as asked (--write-registered): `nix-store --verify-path` will report it modified",
                p.display()
            ));
        } else {
            super::error_line(format_args!(
                "{}: a registered store path (valid in the Nix database): writing it would corrupt the store; add the unfarm hook to the derivation (or an overrideAttrs) and rebuild, or fix a copy (cp -r --no-preserve=mode); nothing written (--write-registered writes anyway)",
                p.display()
            ));
        }
    }
    valid.is_empty() || a.write_registered
}

/// `--interpreter`: a non-empty absolute path, as the kernel will read it,
/// and what ELF it is when it can be read (it may not exist yet, e.g. for
/// another machine).
fn interpreter(a: &Args) -> anyhow::Result<Option<unfarm::survey::NewInterpreter>> {
    let Some(p) = &a.interpreter else {
        return Ok(None);
    };
    let bad = |why: &str| anyhow::anyhow!("{}: --interpreter {why}", p.display());
    let s = p
        .to_str()
        .ok_or_else(|| bad("must be valid UTF-8"))?
        .to_owned();
    if !p.is_absolute() {
        return Err(bad("must be an absolute path"));
    }
    if s.len() > 4095 {
        return Err(bad("is longer than the kernel reads (4095 bytes)"));
    }
    let ident = match unfarm::elf::FileBytes::open_elf(p, None, unfarm::elf::Use::Facts) {
        Ok(Some(b)) => Some(
            b.facts()
                .map_err(|e| bad(&format!("is not a usable ELF file: {}", e.reason())))?
                .ident,
        ),
        Ok(None) => return Err(bad("is not an ELF file")),
        // Not there (yet): every dynamic executable gets it.
        Err(_) => None,
    };
    Ok(Some(unfarm::survey::NewInterpreter { path: s, ident }))
}

/// `--dry-run`: the plans and the closure before and after them, computed
/// without writing; exit 1 when a plan is refused or a file unreadable.
fn dry_run(
    a: &Args,
    s: &Survey,
    store: &StoreDir,
    roots: &[PathBuf],
    unsatisfied: Option<&[Unsatisfied]>,
) -> anyhow::Result<ExitCode> {
    let closure =
        CostModel::new(s, store, &a.plan.source.source(store)).and_then(|m| m.plan_cost());
    for e in &s.errors {
        super::error_line(e);
    }
    // The plan of a registered path is what its derivation's build would
    // do with the hook: say the path itself will not be written.
    if !a.write_registered {
        let valid = unfarm::closure::registered(store, a.plan.source.db.as_deref(), roots)
            .unwrap_or_default();
        let mut seen = Vec::new();
        for (_, p) in &valid {
            if !seen.contains(&p) {
                seen.push(p);
                super::error_line(format_args!(
                    "{}: a registered store path: `unfarm fix` will refuse to write it (the plan is what the hook does in its derivation's build; --write-registered writes anyway)",
                    p.display()
                ));
            }
        }
    }
    if a.json {
        let mut v = DryRunJson::new(s, &closure);
        v.unsatisfied = unsatisfied;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if !super::quiet() {
        let mut out = anstream::stdout().lock();
        write!(out, "{}", render_plan(s, a.verbose))?;
        match &closure {
            Ok(c) => writeln!(out, "{}", closure_line(c))?,
            Err(e) => writeln!(out, "closure: not computed: {e}")?,
        }
    }
    let refused = s
        .objects
        .iter()
        .flat_map(|o| &o.plans)
        .any(|p| matches!(p.outcome, Outcome::Refused { .. }));
    Ok(if refused || !s.errors.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A bar only on a terminal and only when the run is long enough to matter.
fn progress_bar(s: &Survey) -> indicatif::ProgressBar {
    let todo = s
        .objects
        .iter()
        .filter(|o| {
            s.interpreter_change(o).is_some()
                || o.plans
                    .iter()
                    .any(|p| !matches!(p.outcome, Outcome::Unchanged))
        })
        .count() as u64;
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) && todo > 200 {
        indicatif::ProgressBar::new(todo)
    } else {
        indicatif::ProgressBar::hidden()
    }
}

//! `unfarm fix OUT...`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use unfarm::cost::{CostModel, PlanCost};
use unfarm::plan::{Action, Outcome};
use unfarm::store::StoreDir;
use unfarm::survey::{Survey, survey};

use super::planning::PlanArgs;

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
    let opts = a.plan.survey_options()?;
    if !a.dry_run {
        // A killed run's files go back to their old bytes before planning.
        unfarm::fix::recover_interrupted(&a.outputs);
    }
    let s = survey(&a.outputs, store, &opts);
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
        } else {
            print!("{}", render_plan(&s));
            match &closure {
                Ok(c) => println!("{}", super::check::closure_line(c)),
                Err(e) => println!("closure: not computed: {e}"),
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
            HardLinkPolicy::EditShared => unfarm::atomic::HardLinks::EditShared,
            HardLinkPolicy::Break => unfarm::atomic::HardLinks::Break,
            HardLinkPolicy::Refuse => unfarm::atomic::HardLinks::Refuse,
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
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if a.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        for r in &report.results {
            match r.status {
                "failed" => eprintln!("unfarm: {}: {}", r.path.display(), r.detail),
                _ => writeln!(out, "{}: {} ({})", r.status, r.path.display(), r.detail)?,
            }
        }
        for e in &s.errors {
            eprintln!("unfarm: {e}");
        }
        writeln!(
            out,
            "unfarm fix: {} files scanned, {} ELF files, {} changed, {} symlinks retargeted, {} bytes of store paths removed, {} failures",
            report.files_scanned,
            report.elf_files,
            report.changed,
            report.symlinks_retargeted,
            report.store_path_bytes_removed,
            report.failed
        )?;
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

/// Per file: old -> new, and why each entry went, stayed or was replaced.
pub fn render_plan(s: &Survey) -> String {
    let mut out = String::new();
    let mut changed = 0;
    for o in &s.objects {
        for p in &o.plans {
            let status = match &p.outcome {
                Outcome::Unchanged => continue,
                Outcome::Change => {
                    changed += 1;
                    "change".to_string()
                }
                Outcome::Refused { reason } => format!("REFUSED: {reason}"),
            };
            out.push_str(&format!("{} ({}, {status})\n", p.path.display(), p.tag));
            out.push_str(&format!("  old: {}\n  new: {}\n", p.old, p.new));
            for e in &p.entries {
                let act = match &e.action {
                    Action::Keep => "keep".to_string(),
                    Action::Drop => "drop".to_string(),
                    Action::Replace { with } => format!("replace -> {}", with.join(":")),
                };
                let why: Vec<String> = e
                    .reasons
                    .iter()
                    .map(|r| serde_json::to_string(r).unwrap_or_default())
                    .collect();
                out.push_str(&format!(
                    "  [{}] {} : {act} {}\n",
                    e.index,
                    e.text,
                    why.join(" ")
                ));
            }
            for w in &p.warnings {
                out.push_str(&format!("  warning: {w}\n"));
            }
        }
    }
    for l in &s.farm_links {
        out.push_str(&format!(
            "{} (symlink)\n  old: {}\n  new: {}\n",
            l.path.display(),
            l.target.display(),
            l.canonical.display()
        ));
    }
    out.push_str(&format!(
        "unfarm fix --dry-run: {} ELF objects, {changed} search paths to change, {} symlinks to retarget\n",
        s.objects.len(),
        s.farm_links.len()
    ));
    out
}

//! `unfarm fix OUT...`

use std::path::PathBuf;
use std::process::ExitCode;

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
    #[command(flatten)]
    plan: PlanArgs,
}

pub fn run(a: Args, store: &StoreDir) -> anyhow::Result<ExitCode> {
    let opts = a.plan.survey_options()?;
    let s = survey(&a.outputs, store, &opts);
    if a.dry_run {
        if a.json {
            println!("{}", serde_json::to_string_pretty(&s)?);
        } else {
            print!("{}", render_plan(&s));
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
    anyhow::bail!("writing is not wired yet; use --dry-run")
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

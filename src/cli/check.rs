//! `unfarm check OUT...`

use std::path::PathBuf;
use std::process::ExitCode;

use unfarm::check::{Severity, findings, render};
use unfarm::cost::{CostModel, PlanCost, add_costs};
use unfarm::store::StoreDir;
use unfarm::survey::survey;

use super::human_size;
use super::planning::PlanArgs;

#[derive(clap::Args)]
pub struct Args {
    /// Output paths (directories or files) to check.
    #[arg(required = true, value_name = "OUT")]
    outputs: Vec<PathBuf>,
    /// Machine-readable output (schema in the README).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    plan: PlanArgs,
}

pub fn run(a: Args, store: &StoreDir) -> anyhow::Result<ExitCode> {
    let opts = a.plan.survey_options(store)?;
    let roots = super::output_roots(&a.outputs, store)?;
    let s = survey(&roots, store, &opts);
    let mut f = findings(&s, store, opts.plan.mode);
    // Price the farm findings (outputs scanned, dependencies from the Nix DB
    // or a scan of the store dir); a failure only loses the numbers.
    let mut closure = None;
    if f.iter().any(|x| !x.farms.is_empty()) {
        let source = a.plan.source.source(store);
        match CostModel::new(&s, store, &source).and_then(|m| {
            add_costs(&mut f, &m)?;
            m.plan_cost()
        }) {
            Ok(c) => closure = Some(c),
            Err(e) => eprintln!("unfarm: closure cost not computed: {e}"),
        }
    }
    if a.json {
        let errors = f.iter().filter(|x| x.severity == Severity::Error).count();
        let warnings = f.iter().filter(|x| x.severity == Severity::Warning).count();
        let v = serde_json::json!({
            "findings": f,
            "summary": {
                "files": s.files_scanned,
                "elf_objects": s.objects.len(),
                "errors": errors,
                "warnings": warnings,
            },
            "closure": closure,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let mut shown = f.clone();
        for x in &mut shown {
            if let Some(c) = x.cost_bytes {
                x.message.push_str(&format!(
                    "\n    cost: {} ({c} bytes) leave the closure when every reference from the outputs to {} goes",
                    human_size(c),
                    x.farms
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        print!("{}", render(&shown, &s));
        if let Some(c) = &closure {
            println!("{}", closure_line(c));
        }
    }
    Ok(if f.iter().any(|x| x.severity == Severity::Error) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `closure: X -> Y (saves Z)`: the outputs' closure before and after `fix`.
pub fn closure_line(c: &PlanCost) -> String {
    let delta = if c.saved >= 0 {
        format!("saves {}", human_size(c.saved.unsigned_abs()))
    } else {
        format!("adds {}", human_size(c.saved.unsigned_abs()))
    };
    format!(
        "closure: {} -> {} ({delta}; {} -> {} bytes)",
        human_size(c.before),
        human_size(c.after),
        c.before,
        c.after
    )
}

//! `unfarm check OUT...`

use std::path::PathBuf;
use std::process::ExitCode;

use std::io::Write;

use unfarm::closure::cost::{CostModel, PlanCost, add_costs};
use unfarm::report::check::{RenderOptions, Severity, findings, groups, render};
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
    /// List every file of every group of findings, and every note.
    #[arg(long, short)]
    verbose: bool,
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
            Err(e) => super::error_line(format_args!("closure cost not computed: {e}")),
        }
    }
    let loaders = super::loader::models_used(&s, &opts.plan.loader);
    if a.json {
        let errors = f.iter().filter(|x| x.severity == Severity::Error).count();
        let warnings = f.iter().filter(|x| x.severity == Severity::Warning).count();
        let v = serde_json::json!({
            "findings": f,
            "groups": groups(&f),
            "summary": {
                "files": s.files_scanned,
                "elf_objects": s.objects.len(),
                "errors": errors,
                "warnings": warnings,
                "loader": loaders,
            },
            "closure": closure,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if !super::quiet() {
        let ro = RenderOptions {
            verbose: a.verbose,
            outputs: a.outputs.clone(),
            color: true,
        };
        let mut out = anstream::stdout().lock();
        write!(out, "{}", render(&f, &s, &ro))?;
        writeln!(out, "{}", super::loader::models_line(&loaders))?;
        if let Some(c) = &closure {
            writeln!(out, "{}", closure_line(c))?;
            if let Some(why) = cost_gap(&f, c) {
                writeln!(out, "{why}")?;
            }
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

/// Why the farms' own cost and the closure's saving differ, when they do:
/// what the farms joined and the outputs still use stays in the closure,
/// referenced directly after the fix.
fn cost_gap(f: &[unfarm::report::check::Finding], c: &PlanCost) -> Option<String> {
    let mut per_farm: std::collections::BTreeMap<&std::path::Path, u64> = Default::default();
    for x in f.iter().filter(|x| x.farms.len() == 1) {
        if let Some(cost) = x.cost_bytes {
            per_farm.entry(x.farms[0].as_path()).or_insert(cost);
        }
    }
    let farms: u64 = per_farm.values().sum();
    let saved = u64::try_from(c.saved).ok()?;
    (farms > saved).then(|| {
        format!(
            "  (the farms cost {}; {} of what they join stays, used directly after the fix)",
            human_size(farms),
            human_size(farms - saved)
        )
    })
}

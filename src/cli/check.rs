//! `unfarm check OUT...`

use std::path::PathBuf;
use std::process::ExitCode;

use std::io::Write;

use unfarm::check::{Severity, add_costs, findings_scanned};
use unfarm::closure::cost::CostModel;
use unfarm::report::check::{RenderOptions, cost_gap, json, render};
use unfarm::report::closure::closure_line;
use unfarm::report::loader::{models_line, models_used};
use unfarm::store::StoreDir;
use unfarm::survey::survey;

use super::planning::PlanArgs;

#[derive(clap::Args)]
pub struct Args {
    /// Output paths (directories or files) to check.
    #[arg(required = true, value_name = "OUT")]
    outputs: Vec<PathBuf>,
    /// Machine-readable output (schema: docs/check-json.md).
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
    let missing = super::fix::libs_report(&a.plan, &s, store);
    let (mut f, scanned) = findings_scanned(&s, store, opts.plan.mode)?;
    // Price the farm findings (outputs scanned, dependencies from the Nix DB
    // or a scan of the store dir); a failure only loses the numbers.
    let mut closure = None;
    let mut farm_added = Default::default();
    if f.iter().any(|x| !x.farms.is_empty()) {
        let source = a.plan.source.source(store);
        match CostModel::reusing(&s, store, &source, Some(&scanned)).and_then(|m| {
            add_costs(&mut f, &m)?;
            let farms: Vec<&std::path::Path> = f
                .iter()
                .flat_map(|x| &x.farms)
                .map(PathBuf::as_path)
                .collect();
            farm_added = m.added_sizes(&farms);
            m.plan_cost()
        }) {
            Ok(c) => closure = Some(c),
            Err(e) => super::error_line(format_args!("closure cost not computed: {e}")),
        }
    }
    // A file that could not be read is named on stderr by every command,
    // also under --quiet (its finding is in the report too).
    for e in &s.errors {
        super::error_line(e);
    }
    let loaders = models_used(&s, &opts.plan.loader);
    if a.json {
        let mut v = json(&f, &s, &loaders, closure.as_ref());
        if let Some(u) = &missing {
            v["unsatisfied"] = serde_json::to_value(u)?;
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if !super::quiet() {
        // Outputs Nix already registered: `fix` refuses them (an unreadable
        // database only loses the better advice).
        let valid = unfarm::closure::registered(store, a.plan.source.db.as_deref(), &roots)
            .unwrap_or_default();
        let registered = valid.iter().map(|(i, _)| a.outputs[*i].clone()).collect();
        let ro = RenderOptions {
            verbose: a.verbose,
            outputs: a.outputs.clone(),
            registered,
            color: true,
            farm_added,
        };
        let mut out = anstream::stdout().lock();
        write!(out, "{}", render(&f, &s, &ro))?;
        writeln!(out, "{}", models_line(&loaders))?;
        if let Some(c) = &closure {
            writeln!(out, "{}", closure_line(c))?;
            if let Some(why) = cost_gap(&f, c) {
                writeln!(out, "{why}")?;
            }
        }
    }
    Ok(
        if super::fix::any_missing(&missing) || f.iter().any(|x| x.severity == Severity::Error) {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}

//! `unfarm check OUT...`

use std::path::PathBuf;
use std::process::ExitCode;

use unfarm::check::{Severity, findings, render};
use unfarm::store::StoreDir;
use unfarm::survey::survey;

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
    let opts = a.plan.survey_options()?;
    let s = survey(&a.outputs, store, &opts);
    let f = findings(&s, store, opts.plan.mode);
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
            }
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", render(&f, &s));
    }
    Ok(if f.iter().any(|x| x.severity == Severity::Error) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

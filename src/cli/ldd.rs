//! `unfarm ldd FILE|DIR...`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use unfarm::loader::ldd::{LddOptions, ldd};
use unfarm::loader::resolve::FsProbe;
use unfarm::report::ldd::render_tree;
use unfarm::store::StoreDir;

use super::loader::LoaderArgs;

#[derive(clap::Args)]
pub struct Args {
    /// ELF files or directories (walked; every ELF file in them is reported).
    #[arg(required = true, value_name = "FILE|DIR")]
    paths: Vec<PathBuf>,
    /// Show the whole dependency tree, as ld.so loads it.
    #[arg(long, short)]
    recursive: bool,
    /// Machine-readable output (schema: docs/ldd-json.md).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    loader: LoaderArgs,
}

pub fn run(a: Args, store: &StoreDir) -> anyhow::Result<ExitCode> {
    let opts = LddOptions {
        loader: a.loader.config(store)?,
        recursive: a.recursive,
    };
    let (roots, bad) = super::argument_roots(&a.paths);
    let probe = FsProbe::new(store.clone());
    let mut report = ldd(&roots, &probe, &opts);
    report.errors.splice(0..0, bad);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !super::quiet() {
        write!(anstream::stdout().lock(), "{}", render_tree(&report, true))?;
    }
    for e in &report.errors {
        super::error_line(e);
    }
    let missing = report
        .files
        .iter()
        .any(|f| f.needs.iter().any(|n| n.status.is_failure()));
    Ok(if missing || !report.errors.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

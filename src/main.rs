//! The `unfarm` command line. Each subcommand lives in `cli::<name>` with an
//! `Args` struct (clap derive) and `run(&Global, Args) -> anyhow::Result<ExitCode>`.
//! Exit codes: 0 ok, 1 findings or failure, 2 usage error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(
    name = "unfarm",
    version,
    about = "Untangle Nix symlink farms from RUNPATHs, and explain store references"
)]
struct Cli {
    /// The Nix store dir [default: $NIX_STORE, else /nix/store]
    #[arg(long, global = true, value_name = "DIR")]
    store_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the reference chains from PATH to DEP, with file, offset and context at each hop
    Why(cli::why::Args),
    /// Closure size, and each path's own size and added size
    Closure(cli::closure::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let global = cli::Global {
        store_dir: unfarm::store::StoreDir::from_env(cli.store_dir.as_deref()),
    };
    let result = match cli.command {
        Command::Why(a) => cli::why::run(&global, a),
        Command::Closure(a) => cli::closure::run(&global, a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("unfarm: {e:#}");
            ExitCode::from(1)
        }
    }
}

//! The `unfarm` command line: argument parsing and output only; the work is
//! done by the library.

// The binary's one unsafe block is in `main` (SIGPIPE); the library forbids
// unsafe code altogether.
#![deny(unsafe_code)]

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "unfarm",
    version,
    about = "Take Nix symlink farms out of ELF RUNPATHs and runtime closures"
)]
struct Cli {
    /// The Nix store dir (default: $NIX_STORE, else /nix/store). The same
    /// rule for the default and a named one: an output of check/fix inside a
    /// store path (DIR/<hash>-<name>) must be in this dir; an output outside
    /// any store path (a copy in /tmp) is checked against it.
    #[arg(long, global = true, value_name = "DIR")]
    store_dir: Option<PathBuf>,
    /// Colour: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "WHEN",
        default_value = "auto"
    )]
    color: cli::ColorFlag,
    /// Print only errors and the exit status (no findings, plans or summaries).
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what each ELF file loads and from where (RUNPATH entry, farm hops, real file), with the names it computes at run time.
    Ldd(cli::ldd::Args),
    /// Report RUNPATH entries through farms, stubs, unused or insecure entries, missing libraries, farm references.
    ///
    /// A library that resolves to a stub (lib/stubs, a -stubs output), through a link or not, is a stub
    /// whatever dir offers it: an entry offering one with the driver dir absent or later is a
    /// stub-shadows-driver error (fix puts the driver dir first, and drops an entry that offers nothing
    /// else). Wrappers whose LD_LIBRARY_PATH (searched before every RUNPATH) names a dir that offers a
    /// stub, a farm or a -dev/-static output are wrapper-library-path errors. Wrappers are read, never
    /// rewritten (fix leaves them alone): shell scripts starting with #!, in every form makeWrapper
    /// writes, and makeBinaryWrapper programs through the makeCWrapper command line they embed.
    Check(cli::check::Args),
    /// Rewrite every ELF's RUNPATH/RPATH to its canonical form, in place, atomically, then verify.
    ///
    /// With --libs DIR... (the inputs' library dirs, as autoPatchelf takes them), each object also
    /// gets the dirs its needs use (DT_NEEDED, .note.dlopen, --dlopen, computed names) where its
    /// list does not serve them: the outputs' own library dirs first, then --libs in order; never a
    /// farm, stub, -dev or -static dir. Needs nothing provides are listed once per soname and make
    /// the exit status 1 (after writing what can be written) unless --ignore-missing matches them.
    Fix(cli::fix::Args),
    /// Show the reference chains from PATH to DEP, with file, offset and context at each hop.
    Why(cli::why::Args),
    /// Closure size, and each path's own size and added size.
    Closure(cli::closure::Args),
    /// Build a small store with a farm in a temp dir and show check -> fix -> verify (no Nix needed).
    Demo(cli::demo::Args),
}

fn main() -> ExitCode {
    // Output piped into `head` should end quietly, as coreutils do, not panic
    // in println! on EPIPE: restore the default SIGPIPE action Rust ignores.
    // SAFETY: called first thing, before any thread exists; SIG_DFL is a
    // valid disposition for SIGPIPE.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    cli.color.apply();
    cli::set_quiet(cli.quiet);
    // A store dir given by name must be one; the default need not exist
    // (`ldd` on the host's own files works without Nix).
    let named = match (&cli.store_dir, std::env::var_os("NIX_STORE")) {
        (Some(d), _) => Some((d.clone(), "--store-dir")),
        (None, Some(v)) if !v.is_empty() => Some((PathBuf::from(v), "NIX_STORE")),
        _ => None,
    };
    // The demo builds its own store and shows every step: flags it would
    // ignore are refused rather than silently dropped.
    if let Command::Demo(_) = cli.command {
        let ignored = [
            (
                cli.store_dir.is_some(),
                "--store-dir: not used by demo (it builds its own store in a temp dir)",
            ),
            (cli.quiet, "--quiet: not used by demo (it shows every step)"),
        ];
        if let Some((_, why)) = ignored.iter().find(|(given, _)| *given) {
            cli::error_line(why);
            return ExitCode::from(2);
        }
    }
    if let Some((d, how)) = &named
        && !matches!(cli.command, Command::Demo(_))
        && let Err(e) = cli::validate_store_dir(d, how)
    {
        cli::error_line(e);
        return ExitCode::from(2);
    }
    let _ = cli::STORE_DIR_SOURCE.set(named.map(|(_, how)| how));
    let store = unfarm::store::StoreDir::from_env(cli.store_dir.as_deref());
    let global = cli::Global {
        store_dir: store.clone(),
    };
    let result = match cli.command {
        Command::Ldd(a) => cli::ldd::run(a, &store),
        Command::Check(a) => cli::check::run(a, &store),
        Command::Fix(a) => cli::fix::run(a, &store),
        Command::Why(a) => cli::why::run(&global, a),
        Command::Closure(a) => cli::closure::run(&global, a),
        Command::Demo(a) => cli::demo::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            cli::error_line(cli::one_line(&e));
            ExitCode::from(1)
        }
    }
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

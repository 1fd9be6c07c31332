//! `unfarm demo`: build a small store with a farm in a temp dir, then show
//! check -> fix -> check, the programs running before and after, the RUNPATH
//! changes and the closure bytes saved. No Nix, no network.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};
use unfarm::demo::{ProgramRun, Scenario, build};

use unfarm::report::human_size;

#[derive(clap::Args)]
pub struct Args {
    /// Build the scenario in DIR and leave it there for inspection (DIR must
    /// not exist yet). Default: a temp dir, removed at the end.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// The C compiler.
    #[arg(long, default_value = "cc", value_name = "CC")]
    cc: String,
}

/// `println!` that carries on when stdout is gone (`demo | head`): the
/// SIGPIPE watcher ([`clean_up_on_signals`]) removes the temp dir and exits.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// On Ctrl-C, SIGTERM, SIGHUP, or a closed pipe (`demo | head`): remove
/// the temp dir (not a `--keep` dir) and exit as the signal would.
fn clean_up_on_signals(dir: Option<PathBuf>) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGPIPE, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGPIPE])
        .context("cannot watch for signals")?;
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            SIGNALLED.store(true, std::sync::atomic::Ordering::SeqCst);
            if let Some(d) = &dir {
                // Twice: the main thread may add a file while the first pass runs.
                for _ in 0..2 {
                    let _ = std::fs::remove_dir_all(d);
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
            std::process::exit(128 + sig);
        }
    });
    Ok(())
}

/// Set once a signal came: the main thread then leaves the exit to the
/// watcher, so the steps failing in a removed dir print no error.
static SIGNALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn short(s: &Scenario, p: &Path) -> String {
    match p.strip_prefix(s.store.path()) {
        Ok(rel) => format!("$STORE/{}", rel.display()),
        Err(_) => p.display().to_string(),
    }
}

fn shorten(s: &Scenario, text: &str) -> String {
    text.replace(&s.store.path().display().to_string(), "$STORE")
}

fn print_runs(s: &Scenario, runs: &[ProgramRun]) -> bool {
    for r in runs {
        say!(
            "  {} {}: {}",
            if r.ok { "ok  " } else { "FAIL" },
            short(s, &r.path),
            r.output
        );
    }
    runs.iter().all(|r| r.ok)
}

/// Run this very binary as a user would, and show its output.
fn unfarm(s: &Scenario, args: &[&str]) -> Result<bool> {
    let exe = std::env::current_exe().context("cannot find the unfarm binary")?;
    let app = s.app.display().to_string();
    let store = s.store.path().display().to_string();
    // The steps colour their output as this run would (`--color`, a terminal, NO_COLOR).
    let color = match anstream::AutoStream::choice(&std::io::stdout()) {
        anstream::ColorChoice::Never => "never",
        _ => "always",
    };
    let mut full: Vec<&str> = vec!["--color", color, "--store-dir", &store];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--system", &app]);
    say!(
        "$ unfarm --store-dir $STORE {} --system {}",
        args.join(" "),
        short(s, &s.app)
    );
    let o = Command::new(&exe)
        .args(&full)
        .output()
        .with_context(|| format!("{}: cannot run", exe.display()))?;
    for line in String::from_utf8_lossy(&o.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&o.stderr).lines())
    {
        say!("  {}", shorten(s, line));
    }
    Ok(o.status.success())
}

pub fn run(a: Args) -> Result<ExitCode> {
    let r = steps(a);
    // Ctrl-C reaches the compiler the step runs too, and the step fails at
    // about the moment the watcher thread wakes: a failed step gives the
    // watcher a moment, so an interrupted demo exits as the signal would
    // (130), not with the step's error (seen on a loaded 2-core machine).
    if r.is_err() {
        let since = std::time::Instant::now();
        while !SIGNALLED.load(std::sync::atomic::Ordering::SeqCst)
            && since.elapsed() < std::time::Duration::from_millis(500)
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    while SIGNALLED.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::park();
    }
    r
}

/// Where the scenario goes: the `--keep` dir (must not exist yet), or a
/// fresh temp dir removed on exit (the guard).
fn scenario_dir(a: &Args) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    Ok(match &a.keep {
        Some(d) => {
            anyhow::ensure!(
                !d.exists(),
                "{}: already exists; give a new dir to --keep",
                d.display()
            );
            (
                std::path::absolute(d).with_context(|| format!("{}: bad path", d.display()))?,
                None,
            )
        }
        None => {
            // Created here under a random name (mode 0700), so no other
            // user can have made it first; removed when the guard drops.
            let d = tempfile::Builder::new()
                .prefix("unfarm-demo-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            (d.path().to_owned(), Some(d))
        }
    })
}

/// `Runtime closure of the app: N paths, SIZE`, then each path.
fn show_closure(s: &Scenario, paths: &[(PathBuf, u64)], size: u64) {
    say!(
        "\nRuntime closure of the app: {} paths, {}",
        paths.len(),
        human_size(size)
    );
    for (p, n) in paths {
        say!("  {:>10}  {}", human_size(*n), short(s, p));
    }
}

/// Each program's search path before and after.
fn show_runpaths(s: &Scenario, before: &[(PathBuf, String)], after: &[(PathBuf, String)]) {
    for ((f, old), (_, new)) in before.iter().zip(after) {
        if old != new {
            say!(
                "{}\n  old: {}\n  new: {}",
                short(s, f),
                shorten(s, old),
                shorten(s, new)
            );
        } else {
            say!("{}: unchanged ({})", short(s, f), shorten(s, old));
        }
    }
}

/// The demo's steps, numbered as they print.
// Long because it is the demo's script, read top to bottom as its output.
fn steps(a: Args) -> Result<ExitCode> {
    let (root, _guard) = scenario_dir(&a)?;
    clean_up_on_signals(_guard.as_ref().map(|g| g.path().to_owned()))?;
    say!(
        "== 1. A small store with a symlink farm, built with `{}`",
        a.cc
    );
    let s = build(&root, &a.cc)?;
    say!("store dir: $STORE = {}", s.store.path().display());
    for (label, p) in s.labelled() {
        say!("  {:<36} {}", label, short(&s, p));
    }
    say!(
        "The app's programs and library were linked with their RUNPATH through the farm \
         (and its stubs dir);\nbin/dl dlopen()s libnvrtc-builtins.so.12 by soname; bin/orig uses $ORIGIN/../lib."
    );
    let before_rp = s.runpaths()?;
    let (before_paths, before_size) = s.closure()?;
    show_closure(&s, &before_paths, before_size);

    say!("\n== 2. The programs run (before)");
    let ok_before = print_runs(&s, &s.run_programs());

    say!("\n== 3. Check (--system: the demo's programs use this machine's libc)");
    let check_before = unfarm(&s, &["check"])?;
    say!(
        "  -> exit {}",
        if check_before {
            "0 (no errors?!)"
        } else {
            "1: errors found, as expected"
        }
    );

    say!("\n== 4. Fix, in place");
    let fixed = unfarm(&s, &["fix"])?;

    say!("\n== 5. Check again (verify)");
    let check_after = unfarm(&s, &["check"])?;

    say!("\n== 6. The programs run (after)");
    let ok_after = print_runs(&s, &s.run_programs());

    say!("\n== What changed");
    show_runpaths(&s, &before_rp, &s.runpaths()?);
    let (after_paths, after_size) = s.closure()?;
    show_closure(&s, &after_paths, after_size);
    let left: Vec<&PathBuf> = before_paths
        .iter()
        .map(|(p, _)| p)
        .filter(|p| !after_paths.iter().any(|(q, _)| q == *p))
        .collect();
    say!("Left the closure:");
    for p in &left {
        say!("  {}", short(&s, p));
    }
    say!(
        "Closure: {} -> {} ({} saved, {} bytes)",
        human_size(before_size),
        human_size(after_size),
        human_size(before_size.saturating_sub(after_size)),
        before_size.saturating_sub(after_size)
    );

    let good =
        ok_before && !check_before && fixed && check_after && ok_after && after_size < before_size;
    if a.keep.is_some() {
        say!("\nScenario kept in {}", root.display());
    }
    if good {
        say!(
            "\ndemo: OK: farm, dev, static and stubs outputs left the closure; every program still runs"
        );
        Ok(ExitCode::SUCCESS)
    } else {
        say!(
            "\ndemo: FAILED: programs before {}, check before {}, fix {}, check after {}, programs after {}, closure {} -> {}",
            ok_before,
            if check_before {
                "clean (expected errors)"
            } else {
                "errors"
            },
            fixed,
            check_after,
            ok_after,
            before_size,
            after_size
        );
        Ok(ExitCode::from(1))
    }
}

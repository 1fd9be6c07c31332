//! Subcommands: each parses its own flags and prints; `anyhow` lives here only.

use std::io::Write;
use std::path::{Path, PathBuf};

use unfarm::store::StoreDir;

pub mod check;
pub mod closure;
pub mod demo;
pub mod fix;
pub mod ldd;
pub mod loader;
pub mod planning;
pub mod why;

/// Options shared by every subcommand.
pub struct Global {
    pub store_dir: StoreDir,
}

/// Print one error line, `unfarm: PATH: what is wrong`, to stderr (the
/// `unfarm:` in red on a terminal).
pub fn error_line(msg: impl std::fmt::Display) {
    let red = anstyle::AnsiColor::Red.on_default().bold();
    let _ = writeln!(anstream::stderr(), "{red}unfarm:{red:#} {msg}");
}

/// `--quiet`: only errors and the exit status.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_quiet(q: bool) {
    QUIET.store(q, std::sync::atomic::Ordering::Relaxed);
}

pub fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// `--color`: when to colour (NO_COLOR and a non-terminal mean never, for auto).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum ColorFlag {
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorFlag {
    pub fn apply(self) {
        let choice = match self {
            ColorFlag::Auto => anstream::ColorChoice::Auto,
            ColorFlag::Always => anstream::ColorChoice::Always,
            ColorFlag::Never => anstream::ColorChoice::Never,
        };
        choice.write_global();
    }
}

/// An error and its causes on one line, each cause once: a cause whose
/// text the message already holds (thiserror's `{source}`) is not repeated,
/// and Rust's " (os error N)" tails go.
pub fn one_line(e: &anyhow::Error) -> String {
    let strip = |t: String| match t.rfind(" (os error ") {
        Some(i) if t.ends_with(')') => t[..i].to_owned(),
        _ => t,
    };
    let mut msg = String::new();
    for c in e.chain() {
        let t = strip(c.to_string());
        if !msg.contains(&t) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&t);
        }
    }
    msg
}

/// The command-line paths as roots to walk (a symlink argument followed to
/// what it names), and one `PATH: what is wrong` per argument that is not there.
pub fn argument_roots(args: &[PathBuf]) -> (Vec<PathBuf>, Vec<String>) {
    let (mut roots, mut bad) = (Vec::new(), Vec::new());
    for a in args {
        match unfarm::walk::argument_root(a) {
            Ok(r) => roots.push(r),
            Err(e) => bad.push(e.to_string()),
        }
    }
    (roots, bad)
}

/// The roots for `check` and `fix`: every argument must be there, and one
/// rule, whether the store dir is the default or given by name: an output
/// inside a store path (`DIR/<hash>-<name>/...`) must be in the store dir
/// (a wrong one would find no farm and report a clean package); an output
/// outside any store path (a copy in /tmp) is checked against the store dir.
pub fn output_roots(args: &[PathBuf], store: &StoreDir) -> anyhow::Result<Vec<PathBuf>> {
    let (roots, bad) = argument_roots(args);
    if let Some((last, rest)) = bad.split_last() {
        rest.iter().for_each(error_line);
        anyhow::bail!("{last}");
    }
    for r in &roots {
        let r = absolute(r);
        if let Some(dir) = enclosing_store_dir(&r)
            && dir != store.path()
        {
            anyhow::bail!(
                "{}: in the store dir {}, not in {} ({}); give --store-dir {}",
                r.display(),
                dir.display(),
                store.path().display(),
                store_dir_source().unwrap_or("the default"),
                dir.display()
            );
        }
    }
    Ok(roots)
}

/// The dir holding the store path `path` lies in, when one of its
/// components is named like one (`<32 nixbase32 chars>-<name>`; the
/// outermost such component is the store path).
fn enclosing_store_dir(path: &Path) -> Option<&Path> {
    path.ancestors()
        .filter_map(|a| {
            let name = a.file_name()?.as_encoded_bytes();
            let hash = name.get(..unfarm::store::HASH_LEN)?;
            (name.get(unfarm::store::HASH_LEN) == Some(&b'-')
                && name.len() > unfarm::store::HASH_LEN + 1
                && hash.iter().all(|&b| unfarm::store::is_base32(b)))
            .then(|| a.parent())
            .flatten()
        })
        .last()
}

/// How the store dir was chosen, when by name: `--store-dir` or `NIX_STORE`.
pub fn store_dir_source() -> Option<&'static str> {
    STORE_DIR_SOURCE.get().copied().flatten()
}

pub static STORE_DIR_SOURCE: std::sync::OnceLock<Option<&'static str>> = std::sync::OnceLock::new();

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

/// Check a store dir given by name (`how`: `--store-dir` or `NIX_STORE`):
/// absolute, and an existing directory.
pub fn validate_store_dir(dir: &Path, how: &str) -> anyhow::Result<()> {
    if !dir.is_absolute() {
        anyhow::bail!("{}: {how} must be an absolute path", dir.display());
    }
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => anyhow::bail!("{}: {how} is not a directory", dir.display()),
        Err(e) => anyhow::bail!("{}: {how}: {}", dir.display(), unfarm::walk::io_message(&e)),
    }
}

/// Where closure sizes and references come from.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct SourceArgs {
    /// Nix database [default: /nix/var/nix/db/db.sqlite when the store dir is /nix/store; else scan]
    #[arg(long, value_name = "PATH")]
    pub db: Option<std::path::PathBuf>,
    /// Scan the store dir for references even when a Nix database exists
    #[arg(long, conflicts_with = "db")]
    pub scan: bool,
}

impl SourceArgs {
    pub fn source(&self, store: &StoreDir) -> unfarm::closure::Source {
        if self.scan {
            unfarm::closure::Source::Scan
        } else {
            unfarm::closure::Source::choose(store, self.db.as_deref())
        }
    }
}

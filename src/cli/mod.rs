//! Subcommands: each parses its own flags and prints; `anyhow` lives here only.

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

/// Human-readable size: B, KiB, MiB, GiB, TiB.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(human_size(5 << 30), "5.0 GiB");
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

//! Flags shared by every command that models the dynamic loader.

use std::path::PathBuf;

use unfarm::resolve::{LdSoCache, LoaderConfig};

#[derive(clap::Args, Clone, Debug, Default)]
pub struct LoaderArgs {
    /// Model this machine's system loader (Debian x86_64): /etc/ld.so.cache and
    /// the default dirs. Off by default: Nix's glibc searches neither.
    #[arg(long)]
    pub system: bool,
    /// A default dir searched after RUNPATH (repeatable; as glibc's built-in dirs).
    #[arg(long = "default-dir", value_name = "DIR")]
    pub default_dirs: Vec<PathBuf>,
    /// Use this LD_LIBRARY_PATH (not read from the environment unless given).
    #[arg(long, value_name = "PATH")]
    pub ld_library_path: Option<String>,
    /// glibc-hwcaps subdirs searched in each dir, in priority order (e.g. x86-64-v3,x86-64-v2).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub hwcaps: Vec<String>,
    /// Expansion of $LIB (default: lib).
    #[arg(long, value_name = "DIR")]
    pub lib_token: Option<String>,
    /// Expansion of $PLATFORM (default: from the file's machine).
    #[arg(long, value_name = "NAME")]
    pub platform: Option<String>,
}

impl LoaderArgs {
    pub fn config(&self) -> anyhow::Result<LoaderConfig> {
        let mut cfg = if self.system {
            let mut c = LoaderConfig::debian_system();
            c.ld_so_cache = Some(
                LdSoCache::read(std::path::Path::new("/etc/ld.so.cache"))
                    .map_err(anyhow::Error::msg)?,
            );
            c
        } else {
            LoaderConfig::default()
        };
        cfg.default_dirs.extend(self.default_dirs.iter().cloned());
        cfg.ld_library_path = self.ld_library_path.clone();
        cfg.hwcaps = self.hwcaps.clone();
        if self.lib_token.is_some() {
            cfg.lib_token = self.lib_token.clone();
        }
        cfg.platform = self.platform.clone();
        Ok(cfg)
    }
}

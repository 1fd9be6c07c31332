//! Flags shared by every command that models the dynamic loader.

use std::path::{Path, PathBuf};

use unfarm::loader::resolve::{AutoModel, LdSoCache, LoaderConfig};
use unfarm::store::StoreDir;

/// Which loader to model: from each file's PT_INTERP, or one for all.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ModelFlag {
    /// Per file: an interpreter in the store dir is Nix's glibc, any other the host's ld.so.
    #[default]
    Auto,
    /// Nix's glibc for every file: RUNPATH and its own lib dir only.
    Nix,
    /// The host's ld.so for every file: /etc/ld.so.cache and the default dirs.
    Host,
}

#[derive(clap::Args, Clone, Debug, Default)]
pub struct LoaderArgs {
    /// The loader to model [default: auto, from each file's interpreter].
    #[arg(long = "loader", value_enum, value_name = "MODEL")]
    pub model: Option<ModelFlag>,
    /// Same as `--loader host`: this machine's loader (Debian x86_64),
    /// /etc/ld.so.cache and the default dirs, for every file.
    #[arg(long, conflicts_with = "model")]
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
    /// The flag that decides the model (`--system` is `--loader host`).
    pub fn model_flag(&self) -> ModelFlag {
        if self.system {
            ModelFlag::Host
        } else {
            self.model.unwrap_or_default()
        }
    }

    /// The loader config: one model for all files, or (auto) the Nix model
    /// with the host's config behind it for files the host's ld.so runs.
    pub fn config(&self, store: &StoreDir) -> anyhow::Result<LoaderConfig> {
        let flag = self.model_flag();
        let host = || -> anyhow::Result<LoaderConfig> {
            let mut c = LoaderConfig::debian_system();
            let path = Path::new("/etc/ld.so.cache");
            c.ld_so_cache = match LdSoCache::read(path) {
                Ok(cache) => Some(cache),
                // Asked for by name, the cache must be there; chosen per
                // file, a machine without one searches the default dirs.
                Err(e) if flag == ModelFlag::Host => anyhow::bail!("{e} (--loader host)"),
                Err(_) => None,
            };
            Ok(self.user_settings(c))
        };
        Ok(match flag {
            ModelFlag::Host => host()?,
            ModelFlag::Nix => self.user_settings(LoaderConfig::default()),
            ModelFlag::Auto => {
                let mut c = self.user_settings(LoaderConfig::default());
                c.auto = Some(Box::new(AutoModel {
                    store: store.clone(),
                    host: host()?,
                }));
                c
            }
        })
    }

    fn user_settings(&self, mut cfg: LoaderConfig) -> LoaderConfig {
        cfg.default_dirs.extend(self.default_dirs.iter().cloned());
        cfg.ld_library_path = self.ld_library_path.clone();
        cfg.hwcaps = self.hwcaps.clone();
        if self.lib_token.is_some() {
            cfg.lib_token = self.lib_token.clone();
        }
        cfg.platform = self.platform.clone();
        // Relative entries are searched from the working directory; the
        // library never asks the process for it.
        cfg.cwd = std::env::current_dir().ok();
        cfg
    }
}

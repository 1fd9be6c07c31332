//! Flags shared by `check` and `fix`: what to plan and how far to go.

use std::path::PathBuf;

use anyhow::Context;
use unfarm::plan::{DEFAULT_DRIVER_DIR, Mode, PlanOptions};
use unfarm::survey::SurveyOptions;

#[derive(clap::Args, Clone, Debug)]
pub struct PlanArgs {
    /// Keep only the dirs that known needs use (default: expand farms to the
    /// real dirs of every library they offer, which never breaks a program,
    /// for objects that can dlopen() from the list; one with RUNPATH that
    /// imports no dlopen/dlmopen/dlsym gets its needs' dirs only). $ORIGIN
    /// entries over the outputs' own dirs always stay, in their place.
    #[arg(long)]
    pub shrink: bool,
    /// Drop entries outside farms that serve no known need (DT_NEEDED or
    /// dlopen), as stdenv's patchELF does but dlopen-aware; farms still expand,
    /// and an object that imports dlopen without --dlopen or .note.dlopen
    /// needs keeps its entries. The setup hook's default when it takes
    /// patchELF's place; --shrink implies it.
    #[arg(long)]
    pub drop_unused: bool,
    /// A soname the objects dlopen() (repeatable).
    #[arg(long = "dlopen", value_name = "SONAME")]
    pub dlopen: Vec<String>,
    /// A file of dlopen()ed sonames, one per line (`#` comments).
    #[arg(long = "dlopen-file", value_name = "FILE")]
    pub dlopen_file: Vec<PathBuf>,
    /// Do not treat soname literals in read-only data as dlopen needs.
    #[arg(long)]
    pub no_dlopen_hints: bool,
    /// Keep entries matching this text or glob (`*`) whatever they serve (repeatable).
    #[arg(long = "keep", value_name = "PATTERN")]
    pub keep: Vec<String>,
    /// A farm the outputs may name on purpose: its findings become `info`
    /// (a store path, or its name without the hash; repeatable).
    #[arg(long = "allow", value_name = "FARM")]
    pub allow: Vec<String>,
    /// An output used only at build time (dev, include, docs, man, debug):
    /// its findings are warnings, never errors, since it is not in the
    /// runtime closure (repeatable; the hook passes nixpkgs' outputDev,
    /// outputInclude, outputDoc, outputDevdoc, outputMan, outputInfo, debug).
    #[arg(long = "build-time", value_name = "OUT")]
    pub build_time: Vec<PathBuf>,
    /// The driver dir kept first in every search path (and put first where a kept dir offers a stub).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DRIVER_DIR)]
    pub driver_dir: PathBuf,
    /// Put the driver dir first in objects that need a library it offers, even if absent.
    #[arg(long)]
    pub add_driver_dir: bool,
    /// A build dir whose entries are dropped (repeatable; /build and $TMPDIR always are).
    #[arg(long = "build-dir", value_name = "DIR")]
    pub build_dirs: Vec<PathBuf>,
    /// Do not search the interpreter's dir after the list (Nix's ld.so does).
    #[arg(long)]
    pub no_interpreter_dir: bool,
    /// Library dirs of the inputs (what autoPatchelf's --libs takes): for
    /// every need an object's own list does not serve (or serves only
    /// through a farm, a stub, a -dev/-static output or a missing dir), the
    /// first of these, in the given order, that holds it goes into the
    /// object's RUNPATH (one is added where there was none). Only dirs a
    /// need uses go in; a stub, farm, -dev or -static dir never does.
    /// Takes one or more dirs, so outputs go first or after `--`:
    /// `OUT --libs A B`, `--libs A B -- OUT`, `--libs A --libs B -- OUT`.
    #[arg(long = "libs", value_name = "DIR", num_args = 1.., action = clap::ArgAction::Append)]
    pub libs: Vec<PathBuf>,
    /// A need nothing provides that is not reported as missing: its soname
    /// or a glob (`*` alone ignores all, like autoPatchelfIgnoreMissingDeps;
    /// repeatable).
    #[arg(long = "ignore-missing", value_name = "PATTERN")]
    pub ignore_missing: Vec<String>,
    /// A dir added to the RUNPATH of every object that can dlopen() (every
    /// such library, not executables only; autoPatchelf's
    /// runtimeDependencies pass `$dep/lib`; repeatable).
    #[arg(long = "runtime-dependency", value_name = "DIR")]
    pub runtime_dependency: Vec<PathBuf>,
    /// A dir appended to the RUNPATH of every object (like autoPatchelf's
    /// appendRunpaths; repeatable).
    #[arg(long = "append-runpath", value_name = "DIR")]
    pub append_runpath: Vec<PathBuf>,
    #[command(flatten)]
    pub loader: super::loader::LoaderArgs,
    /// Where the closure costs of findings and plans come from.
    #[command(flatten)]
    pub source: super::SourceArgs,
}

fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

impl PlanArgs {
    pub fn survey_options(&self, store: &unfarm::store::StoreDir) -> anyhow::Result<SurveyOptions> {
        let mut declared = self.dlopen.clone();
        for f in &self.dlopen_file {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("{}: cannot read dlopen file", f.display()))?;
            declared.extend(unfarm::plan::needs::parse_dlopen_file(&text));
        }
        let mut build_dirs = self.build_dirs.clone();
        if let Some(t) = std::env::var_os("TMPDIR").filter(|t| !t.is_empty()) {
            build_dirs.push(PathBuf::from(t));
        }
        if let Some(t) = std::env::var_os("NIX_BUILD_TOP").filter(|t| !t.is_empty()) {
            build_dirs.push(PathBuf::from(t));
        }
        let mut build_time = Vec::new();
        for b in &self.build_time {
            build_time
                .push(unfarm::survey::walk::argument_root(b).map_err(|e| {
                    anyhow::anyhow!("{}: --build-time: {}", b.display(), e.message)
                })?);
        }
        Ok(SurveyOptions {
            plan: PlanOptions {
                mode: if self.shrink {
                    Mode::Shrink
                } else {
                    Mode::Expand
                },
                drop_unused: self.drop_unused,
                keep: self.keep.clone(),
                driver_dir: self.driver_dir.clone(),
                want_driver: self.add_driver_dir,
                build_dirs,
                loader: {
                    let mut l = self.loader.config(store)?;
                    // The cache is the host's; planning uses dirs only.
                    l.ld_so_cache = None;
                    l.ld_library_path = None;
                    if let Some(a) = l.auto.as_mut() {
                        a.host.ld_so_cache = None;
                        a.host.ld_library_path = None;
                    }
                    l
                },
                interpreter_dir_default: !self.no_interpreter_dir,
                // Written into lists as given: absolute, like every entry.
                libs: self.libs.iter().map(|d| absolute(d)).collect(),
                runtime_dependencies: self
                    .runtime_dependency
                    .iter()
                    .map(|d| absolute(d))
                    .collect(),
                append_runpath: self.append_runpath.iter().map(|d| absolute(d)).collect(),
            },
            declared,
            hints: !self.no_dlopen_hints,
            computed: true,
            allow: self.allow.clone(),
            build_time,
            interpreter: None,
        })
    }
}

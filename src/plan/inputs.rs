//! Step 5b of planning the effective list: dirs from outside the old list.
//! Each need the new list does not serve (or serves only with a stub or a
//! file of a `-dev`/`-static` output) gets the first dir, among the
//! outputs' own library dirs and then `--libs` in the given order, that
//! holds it; then `--runtime-dependency` dirs (objects that can dlopen())
//! and `--append-runpath` dirs. Pure, like the rest of the planner.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use super::assemble::NewEntry;
use super::snapshot::{Snapshot, is_stub_location};
use super::{ListContext, NeedPlan, PlanInput};
use crate::loader::resolve::{self, SearchDir, Source};
use crate::store::StoreDir;

/// Why a dir was added to a list that did not have it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AddedWhy {
    /// A dir of the outputs themselves holds these needs.
    OwnOutput {
        /// The needs it serves.
        needs: Vec<String>,
    },
    /// A `--libs` dir holds these needs.
    Libs {
        /// The needs it serves.
        needs: Vec<String>,
    },
    /// `--runtime-dependency`: the object can dlopen().
    RuntimeDependency,
    /// `--append-runpath`.
    AppendRunpath,
}

/// A dir added to the list, as written, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Added {
    /// The entry as written (`$ORIGIN/...` for a dir of the object's own output).
    pub text: String,
    /// Why it went in.
    #[serde(flatten)]
    pub why: AddedWhy,
}

/// Why a `--libs` dir is never used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LibDirProblem {
    /// Not a directory.
    Missing,
    /// A stub dir (fake `libcuda.so` and friends).
    Stub,
    /// Offers its libraries through links into other store paths.
    Farm,
    /// In a `-dev` output (build-time only: not in the runtime closure).
    DevOutput,
    /// In a `-static` output.
    StaticOutput,
}

impl std::fmt::Display for LibDirProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LibDirProblem::Missing => "not a directory",
            LibDirProblem::Stub => "a stub dir",
            LibDirProblem::Farm => "a farm (its libraries are links into other store paths)",
            LibDirProblem::DevOutput => "in a -dev output",
            LibDirProblem::StaticOutput => "in a -static output",
        })
    }
}

/// Why `dir` (from `--libs`) is never put in a list, if it is not.
pub fn lib_dir_problem(dir: &Path, snap: &Snapshot, store: &StoreDir) -> Option<LibDirProblem> {
    if let Some(p) = output_kind(dir, store) {
        return Some(p);
    }
    let d = snap.dir(dir);
    if d.is_some_and(|d| !d.exists) {
        return Some(LibDirProblem::Missing);
    }
    if super::classify::is_stub_dir(dir, snap, store) {
        return Some(LibDirProblem::Stub);
    }
    let crosses = d.is_some_and(|d| {
        d.entries
            .iter()
            .any(|(n, o)| o.is_loadable_library(n) && o.crosses())
    });
    crosses.then_some(LibDirProblem::Farm)
}

/// A path in a `-dev` or `-static` output.
fn output_kind(path: &Path, store: &StoreDir) -> Option<LibDirProblem> {
    let sp = store.store_path_of(path)?;
    if sp.name.ends_with("-dev") {
        Some(LibDirProblem::DevOutput)
    } else if sp.name.ends_with("-static") {
        Some(LibDirProblem::StaticOutput)
    } else {
        None
    }
}

/// A file no list should load from: a stub, or one in a `-dev`/`-static` output.
fn unwanted_file(path: &Path, store: &StoreDir) -> bool {
    is_stub_location(path, store) || output_kind(path, store).is_some()
}

/// Whether the need may take a dir from outside the list: searched by
/// name, and not one of glibc's own libraries (the loading program brings
/// those).
fn searchable(n: &NeedPlan, input: &PlanInput) -> bool {
    !n.need.name.contains('/')
        && !resolve::provided_by_process(
            &n.need.name,
            &input.facts.ident,
            input.facts.interpreter.as_deref(),
        )
}

/// Add to `new` the dirs this object's unserved needs use, then the
/// runtime-dependency and appended dirs; each need planned from a new dir
/// goes into `expected` with the file it must resolve to (step 6 proves it).
pub(super) fn add_from_inputs(
    ctx: &ListContext,
    needs: &[NeedPlan],
    new: &mut Vec<NewEntry>,
    expected: &mut BTreeMap<String, PathBuf>,
) -> Vec<Added> {
    let input = ctx.input;
    let opts = input.opts;
    let store = input.store;
    let mut added: Vec<Added> = Vec::new();
    if !opts.libs.is_empty() || !input.own_libs.is_empty() {
        let new_dirs = super::verify::to_search_dirs(ctx, new, &ctx.source);
        // (candidate rank, dir, text, needs): own dirs first, then --libs in order.
        let mut picked: Vec<(usize, PathBuf, String, Vec<String>, bool)> = Vec::new();
        let libs: Vec<&PathBuf> = opts
            .libs
            .iter()
            .filter(|d| lib_dir_problem(d, input.snapshot, store).is_none())
            .collect();
        let own: Vec<&PathBuf> = input.own_libs.iter().collect();
        for n in needs {
            if !searchable(n, input) {
                continue;
            }
            let now = ctx.resolve(&n.need.name, &new_dirs).found;
            if now.is_some_and(|f| !unwanted_file(&f.resolved.real, store)) {
                continue;
            }
            let candidates = own
                .iter()
                .map(|d| (true, *d))
                .chain(libs.iter().map(|d| (false, *d)));
            for (rank, (is_own, dir)) in candidates.enumerate() {
                // Looked up as the loader will search it once written.
                let text = entry_text(input, dir, is_own);
                let sd = SearchDir {
                    source: Source::Runpath,
                    index: 0,
                    dir: resolve::expand_entry(&text, &ctx.origin, &ctx.cfg, &input.facts.ident),
                    text,
                };
                let Some(f) = ctx.resolve(&n.need.name, std::slice::from_ref(&sd)).found else {
                    continue;
                };
                // Found in the candidate itself, not in a fallback dir after it.
                if f.by.as_ref().is_none_or(|b| b.source != Source::Runpath)
                    || unwanted_file(&f.resolved.real, store)
                {
                    continue;
                }
                expected.insert(n.need.name.clone(), f.resolved.real.clone());
                match picked.iter_mut().find(|p| p.1 == sd.dir) {
                    Some(p) => p.3.push(n.need.name.clone()),
                    None => picked.push((rank, sd.dir, sd.text, vec![n.need.name.clone()], is_own)),
                }
                break;
            }
        }
        // Own outputs before inputs, each group in the order ld.so should
        // search it (the order the dirs were given).
        picked.sort_by_key(|p| p.0);
        for (_, dir, text, names, is_own) in picked {
            if push_new(new, &dir, &text) {
                added.push(Added {
                    text,
                    why: if is_own {
                        AddedWhy::OwnOutput { needs: names }
                    } else {
                        AddedWhy::Libs { needs: names }
                    },
                });
            }
        }
    }
    if input.facts.may_dlopen() {
        for d in &opts.runtime_dependencies {
            let text = d.display().to_string();
            if push_new(new, d, &text) {
                added.push(Added {
                    text,
                    why: AddedWhy::RuntimeDependency,
                });
            }
        }
    }
    for d in &opts.append_runpath {
        let text = d.display().to_string();
        if push_new(new, d, &text) {
            added.push(Added {
                text,
                why: AddedWhy::AppendRunpath,
            });
        }
    }
    added
}

/// Append `dir` unless the list has it already.
fn push_new(new: &mut Vec<NewEntry>, dir: &Path, text: &str) -> bool {
    if new.iter().any(|e| e.dir == dir) {
        return false;
    }
    new.push(NewEntry {
        text: text.to_owned(),
        dir: dir.to_owned(),
        first: false,
        stays: false,
    });
    true
}

/// How a picked dir is written: a dir of the object's own output as
/// `$ORIGIN/...` (the output may be moved or copied, and autoPatchelf's
/// absolute build paths are what this avoids), any other absolute.
fn entry_text(input: &PlanInput, dir: &Path, is_own: bool) -> String {
    let origin = input.path.parent().unwrap_or(Path::new("/"));
    match is_own
        .then(|| own_entry(origin, dir, input.outputs))
        .flatten()
    {
        Some(t) => t,
        None => dir.display().to_string(),
    }
}

/// The `$ORIGIN/...` spelling of the own library dir `dir` for objects in
/// `origin`, when both lie in one output (the survey gathers what it
/// expands to, since the loader does not normalise `..`).
pub fn own_entry(origin: &Path, dir: &Path, outputs: &[PathBuf]) -> Option<String> {
    // The output holding `dir` first: a byte prefix test rules out almost
    // every output without splitting either path into components (this
    // runs for every need, candidate dir and object).
    outputs
        .iter()
        .filter(|o| prefix_bytes(dir, o))
        .any(|o| dir.starts_with(o) && origin.starts_with(o))
        .then(|| origin_relative(origin, dir))
}

/// `path`'s bytes begin with `prefix`'s: necessary (not sufficient) for
/// `path.starts_with(prefix)` on normalised absolute paths.
fn prefix_bytes(path: &Path, prefix: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str()
        .as_bytes()
        .starts_with(prefix.as_os_str().as_bytes())
}

/// `$ORIGIN` followed by the hops from `origin` to `dir` (both absolute,
/// normalised).
fn origin_relative(origin: &Path, dir: &Path) -> String {
    let a: Vec<Component> = origin.components().collect();
    let b: Vec<Component> = dir.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut s = String::from("$ORIGIN");
    for _ in common..a.len() {
        s.push_str("/..");
    }
    for c in &b[common..] {
        s.push('/');
        s.push_str(&c.as_os_str().to_string_lossy());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_relative_paths() {
        let o = Path::new("/out/bin");
        assert_eq!(origin_relative(o, Path::new("/out/lib")), "$ORIGIN/../lib");
        assert_eq!(origin_relative(o, Path::new("/out/bin")), "$ORIGIN");
        assert_eq!(origin_relative(o, Path::new("/out/bin/x")), "$ORIGIN/x");
    }
}

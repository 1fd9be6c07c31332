//! Needs that nothing provides, after planning with `--libs`: one line per
//! soname with the files that need it, like autoPatchelf's "could not
//! satisfy dependency".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::loader::resolve::provided_by_process;
use crate::plan::classify::glob_match;
use crate::plan::inputs::lib_dir_problem;
use crate::plan::needs::{Need, Provenance};
use crate::store::StoreDir;
use crate::survey::Survey;

/// One soname no dir provides, and the files that need it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unsatisfied {
    /// The soname.
    pub soname: String,
    /// The files that need it, in walk order.
    pub files: Vec<PathBuf>,
    /// An `--ignore-missing` pattern matches it: listed in the JSON, not
    /// reported, and it does not fail the run.
    pub ignored: bool,
}

/// A need whose absence breaks the object: DT_NEEDED, declared, a
/// `.note.dlopen` entry marked required (or with no priority), a computed
/// name. Soname literals and inherited names are only possibilities.
fn counts(n: &Need) -> bool {
    n.provenance.iter().any(|p| match p {
        Provenance::Needed | Provenance::Declared | Provenance::Computed { .. } => true,
        Provenance::Note { priority } => priority.as_deref().is_none_or(|p| p == "required"),
        Provenance::Hint | Provenance::Inherited { .. } => false,
    })
}

/// Every need of the effective lists that resolves to nothing under the
/// planned list, grouped by soname; those matching an `ignore` pattern (a
/// soname, or a glob; `*` ignores all) are marked `ignored`.
pub fn unsatisfied(s: &Survey, ignore: &[String]) -> Vec<Unsatisfied> {
    let mut by_name: BTreeMap<&str, Vec<PathBuf>> = BTreeMap::new();
    for o in &s.objects {
        let Some(p) = o.plans.iter().find(|p| o.facts.is_effective(p.tag)) else {
            continue;
        };
        for n in &p.needs {
            let name = n.need.name.as_str();
            if n.after.is_some()
                || name.contains('/')
                || !counts(&n.need)
                || provided_by_process(name, &o.facts.ident, o.facts.interpreter.as_deref())
            {
                continue;
            }
            let files = by_name.entry(name).or_default();
            if !files.contains(&p.path) {
                files.push(p.path.clone());
            }
        }
    }
    by_name
        .into_iter()
        .map(|(soname, files)| Unsatisfied {
            ignored: ignore.iter().any(|g| glob_match(g, soname)),
            soname: soname.to_owned(),
            files,
        })
        .collect()
}

/// `SONAME: not found in the outputs, their lists or --libs (needed by
/// FILE, ...)`.
pub fn unsatisfied_line(u: &Unsatisfied) -> String {
    let files: Vec<String> = u.files.iter().map(|f| f.display().to_string()).collect();
    format!(
        "{}: could not satisfy dependency: not in the outputs, their search paths or any --libs dir (needed by {}; --ignore-missing silences it)",
        u.soname,
        files.join(", ")
    )
}

/// One warning per `--libs` dir that is never used, and why.
pub fn lib_dir_warnings(libs: &[PathBuf], s: &Survey, store: &StoreDir) -> Vec<String> {
    libs.iter()
        .filter_map(|d: &PathBuf| {
            let p = lib_dir_problem(Path::new(d), &s.snapshot, store)?;
            Some(format!("{}: --libs: {p}; never used", d.display()))
        })
        .collect()
}

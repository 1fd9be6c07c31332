//! Which loader model the answers assume, in words: the `loader:` line of
//! `check` and the model named in `ldd`'s tree.

use std::collections::BTreeMap;

use crate::loader::resolve::{LoaderConfig, LoaderModel};
use crate::survey::Survey;

use super::words::plural;

/// A loader model in words.
pub fn describe(model: LoaderModel) -> &'static str {
    match model {
        LoaderModel::Nix => "Nix glibc (RUNPATH and its own lib dir)",
        LoaderModel::Host => "host ld.so (/etc/ld.so.cache, default dirs)",
    }
}

/// How many ELF files of a survey each loader model covers.
pub fn models_used(s: &Survey, cfg: &LoaderConfig) -> BTreeMap<LoaderModel, usize> {
    let mut m = BTreeMap::new();
    for o in &s.objects {
        let model = cfg.for_file(o.facts.interpreter.as_deref(), None).model;
        *m.entry(model).or_insert(0) += 1;
    }
    m
}

/// `loader: Nix glibc (…) for 7 ELF files; host ld.so (…) for 1 ELF file`.
pub fn models_line(used: &BTreeMap<LoaderModel, usize>) -> String {
    if used.is_empty() {
        return "loader: no ELF file to model".into();
    }
    let parts: Vec<String> = used
        .iter()
        .map(|(m, n)| format!("{} for {}", describe(*m), plural(*n, "ELF file")))
        .collect();
    format!("loader: {}", parts.join("; "))
}

//! Needs of an object: every library name it will ask the loader for, with
//! where we learned it (DT_NEEDED, a packager's declaration, `.note.dlopen`,
//! or a soname literal in its read-only data).

use serde::Serialize;

use crate::elf::ElfFacts;
use crate::loader::computed::{Computed, Recogniser};

/// Where a need comes from, strongest first.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provenance {
    /// DT_NEEDED.
    Needed,
    /// Declared by the packager (`--dlopen`, `--dlopen-file`, `unfarmDlopen`).
    Declared,
    /// A `.note.dlopen` entry (with its priority: required, recommended, suggested).
    Note {
        /// The note's priority, when it gives one.
        priority: Option<String>,
    },
    /// A name built at run time that a recogniser found (`computed`:
    /// `loader::computed`), with where it was found.
    Computed {
        /// The recogniser.
        recogniser: Recogniser,
        /// What in the file says so (a function, a literal).
        evidence: String,
    },
    /// A soname literal in read-only data: a hint, not a promise.
    Hint,
    /// DT_NEEDED of a library this object loads that has no DT_RUNPATH: ld.so
    /// searches this object's DT_RPATH for it too (RPATH is inherited).
    Inherited {
        /// The library whose DT_NEEDED it is.
        by: String,
    },
}

/// In words, for a finding's location: `needed`, `declared`, `note` (with
/// its priority), `computed, RECOGNISER: EVIDENCE`, `hint`, `inherited from LIB`.
impl std::fmt::Display for Provenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Provenance::Needed => f.write_str("needed"),
            Provenance::Declared => f.write_str("declared"),
            Provenance::Note { priority: None } => f.write_str("note"),
            Provenance::Note { priority: Some(p) } => write!(f, "note, {p}"),
            Provenance::Computed {
                recogniser,
                evidence,
            } => write!(f, "computed, {recogniser}: {evidence}"),
            Provenance::Hint => f.write_str("hint"),
            Provenance::Inherited { by } => write!(f, "inherited from {by}"),
        }
    }
}

/// One need.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Need {
    /// The soname (or path) as the object or the packager names it.
    pub name: String,
    /// Every reason it is needed.
    pub provenance: Vec<Provenance>,
}

impl Need {
    /// The strongest provenance.
    pub fn strongest(&self) -> &Provenance {
        self.provenance
            .iter()
            .min()
            .expect("a need always has a provenance")
    }

    /// True when failing to find it is an error (not a warning): DT_NEEDED,
    /// declared, or a `.note.dlopen` entry marked required.
    pub fn is_required(&self) -> bool {
        self.provenance.iter().any(|p| match p {
            Provenance::Needed | Provenance::Declared => true,
            Provenance::Note { priority } => priority.as_deref() == Some("required"),
            Provenance::Computed { .. } | Provenance::Hint | Provenance::Inherited { .. } => false,
        })
    }

    /// True for needs only a dlopen() will ask for.
    pub fn is_dlopen_only(&self) -> bool {
        !self.provenance.contains(&Provenance::Needed)
    }
}

/// Collect needs in a stable order: DT_NEEDED, declared, notes, hints. A name
/// with a `/` in a dlopen source is a path, not searched, and is left out; so
/// is the object's own SONAME. Declared names (what the *package* dlopen()s)
/// are needs only of objects whose search list a `dlopen()` by name can use
/// ([`ElfFacts::literals_searched`]: it imports `dlopen`/`dlmopen`, or its
/// list is DT_RPATH, searched for the objects it loads): glibc searches the
/// calling object's DT_RUNPATH only.
pub fn collect(facts: &ElfFacts, declared: &[String], hints: &[String]) -> Vec<Need> {
    let mut out: Vec<Need> = Vec::new();
    let add = |name: &str, p: Provenance, out: &mut Vec<Need>| {
        if p != Provenance::Needed
            && (name.contains('/') || facts.soname.as_deref() == Some(name) || name.is_empty())
        {
            return;
        }
        match out.iter_mut().find(|n| n.name == name) {
            Some(n) => {
                if !n.provenance.contains(&p) {
                    n.provenance.push(p);
                }
            }
            None => out.push(Need {
                name: name.to_owned(),
                provenance: vec![p],
            }),
        }
    };
    for n in &facts.needed {
        add(n, Provenance::Needed, &mut out);
    }
    if facts.literals_searched() {
        for n in declared {
            add(n, Provenance::Declared, &mut out);
        }
    }
    for note in &facts.dlopen_notes {
        for s in &note.soname {
            add(
                s,
                Provenance::Note {
                    priority: note.priority.clone(),
                },
                &mut out,
            );
        }
    }
    for h in hints {
        add(h, Provenance::Hint, &mut out);
    }
    out
}

/// Add needs that this object's DT_RPATH serves for the libraries it loads
/// (`inherited`: (need, the library that needs it)).
pub fn add_inherited(needs: &mut Vec<Need>, inherited: &[(String, String)]) {
    for (name, by) in inherited {
        let p = Provenance::Inherited { by: by.clone() };
        match needs.iter_mut().find(|n| &n.name == name) {
            Some(n) => {
                if !n.provenance.contains(&p) {
                    n.provenance.push(p);
                }
            }
            None => needs.push(Need {
                name: name.clone(),
                provenance: vec![p],
            }),
        }
    }
}

/// Add the needs recognisers found (`loader::computed`): a name already
/// needed gains the provenance, a new one comes last.
pub fn add_computed(needs: &mut Vec<Need>, own_soname: Option<&str>, computed: &[Computed]) {
    for c in computed {
        if c.name.contains('/') || c.name.is_empty() || own_soname == Some(c.name.as_str()) {
            continue;
        }
        let p = Provenance::Computed {
            recogniser: c.recogniser,
            evidence: c.evidence.clone(),
        };
        match needs.iter_mut().find(|n| n.name == c.name) {
            Some(n) => {
                if !n.provenance.contains(&p) {
                    n.provenance.push(p);
                }
            }
            None => needs.push(Need {
                name: c.name.clone(),
                provenance: vec![p],
            }),
        }
    }
}

/// Read declared sonames from a file: one per line, `#` comments, blanks ignored.
pub fn parse_dlopen_file(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::{DlopenNote, ObjectType};

    fn facts() -> ElfFacts {
        ElfFacts {
            needed: vec!["libc.so.6".into(), "libfoo.so.1".into()],
            soname: Some("libself.so.1".into()),
            dlopen_notes: vec![DlopenNote {
                soname: vec!["libcuda.so.1".into(), "libfoo.so.1".into()],
                feature: None,
                description: None,
                priority: Some("required".into()),
            }],
            imports_dlopen: true,
            ..ElfFacts::test_object(ObjectType::Dyn)
        }
    }

    #[test]
    fn merges_provenance_in_order() {
        let n = collect(
            &facts(),
            &["libdecl.so".into(), "libc.so.6".into()],
            &[
                "libhint.so.2".into(),
                "libself.so.1".into(),
                "libcuda.so.1".into(),
            ],
        );
        let names: Vec<_> = n.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "libc.so.6",
                "libfoo.so.1",
                "libdecl.so",
                "libcuda.so.1",
                "libhint.so.2"
            ]
        );
        assert_eq!(n[0].provenance, [Provenance::Needed, Provenance::Declared]);
        assert!(n[3].is_required());
        assert!(!n[4].is_required());
        assert_eq!(n[4].strongest(), &Provenance::Hint);
        assert!(n[2].is_dlopen_only());
    }

    /// The JSON shape docs/check-json.md documents for a computed need.
    #[test]
    fn computed_provenance_json_and_words() {
        let mut n = collect(&facts(), &[], &["libcublas.so.12".into()]);
        add_computed(
            &mut n,
            Some("libself.so.1"),
            &[
                Computed {
                    name: "libcublas.so.12".into(),
                    recogniser: Recogniser::TslDsoLoader,
                    evidence: "DsoLoader::GetCublasDsoHandle".into(),
                },
                Computed {
                    name: "libself.so.1".into(),
                    recogniser: Recogniser::CudnnSublibrary,
                    evidence: "literal libself.so".into(),
                },
            ],
        );
        let c = n.iter().find(|n| n.name == "libcublas.so.12").unwrap();
        assert_eq!(
            serde_json::to_value(&c.provenance).unwrap(),
            serde_json::json!(["hint", {"computed": {
                "recogniser": "tsl-dso-loader",
                "evidence": "DsoLoader::GetCublasDsoHandle"
            }}])
        );
        // Stronger than a hint, weaker than a declaration; never required.
        assert_eq!(
            c.strongest().to_string(),
            "computed, tsl-dso-loader: DsoLoader::GetCublasDsoHandle"
        );
        assert!(!c.is_required());
        // The object's own name is not a need.
        assert!(!n.iter().any(|n| n.name == "libself.so.1"));
    }

    #[test]
    fn declared_needs_only_for_objects_a_dlopen_searches() {
        let declared = ["libdecl.so".to_string()];
        let no_dlopen = ElfFacts {
            imports_dlopen: false,
            runpath: Some("/x".into()),
            ..facts()
        };
        assert!(
            !collect(&no_dlopen, &declared, &[])
                .iter()
                .any(|n| n.name == "libdecl.so")
        );
        // DT_RPATH alone: a dlopen() from a library it loads searches it.
        let rpath = ElfFacts {
            imports_dlopen: false,
            rpath: Some("/x".into()),
            ..facts()
        };
        assert!(
            collect(&rpath, &declared, &[])
                .iter()
                .any(|n| n.name == "libdecl.so")
        );
        assert!(
            collect(&facts(), &declared, &[])
                .iter()
                .any(|n| n.name == "libdecl.so")
        );
    }

    #[test]
    fn dlopen_file_format() {
        assert_eq!(
            parse_dlopen_file("# x\nlibnvrtc-builtins.so.12  # builtins\n\n libz.so.1\n"),
            ["libnvrtc-builtins.so.12", "libz.so.1"]
        );
    }
}

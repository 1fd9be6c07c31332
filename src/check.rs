//! `unfarm check`: findings from a survey, each with the file, the exact
//! location, a severity and the fix.

use std::path::{Path, PathBuf};

use aho_corasick::AhoCorasick;
use serde::Serialize;

use crate::elf::ObjectType;
use crate::plan::{Action, Mode, Outcome, Reason, Tag};
use crate::store::StoreDir;
use crate::survey::Survey;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

/// One finding.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// Stable identifier: `indirect-entry`, `stub-entry`, `unused-entry`,
    /// `missing-library`, `loader-error`, `build-dir-entry`, `insecure-entry`,
    /// `symlink-into-farm`, `farm-reference`, `dlopen-unknown`, `plan-refused`,
    /// `special-file`, `symlink-loop`, `duplicate-entry`, `unreadable`.
    pub kind: &'static str,
    pub severity: Severity,
    pub file: PathBuf,
    /// Where in the file: `RUNPATH[2]`, `DT_NEEDED libfoo.so.1`, `offset 0x1a2b`, `symlink`.
    pub location: String,
    pub message: String,
    /// What `unfarm fix` (or the packager) should do.
    pub fix: Option<String>,
    /// Closure bytes freed when every reference from the outputs to
    /// `farms` goes (the real dirs referenced instead), when computed: see
    /// [`crate::cost::CostModel::farm_cost`]. Only for `indirect-entry`,
    /// `symlink-into-farm` and `farm-reference`.
    pub cost_bytes: Option<u64>,
    /// The farm store paths this finding is about (empty for other kinds).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub farms: Vec<PathBuf>,
}

/// All findings for a survey, sorted by file then severity.
pub fn findings(survey: &Survey, store: &StoreDir, mode: Mode) -> Vec<Finding> {
    let mut out = Vec::new();
    for o in &survey.objects {
        for p in &o.plans {
            let effective = p.tag == Tag::Runpath || o.facts.runpath.is_none();
            for e in &p.entries {
                let loc = format!("{}[{}] {}", p.tag, e.index, e.text);
                let mk = |kind, severity, message: String, fix: Option<String>| Finding {
                    kind,
                    severity,
                    file: p.path.clone(),
                    location: loc.clone(),
                    message,
                    fix,
                    cost_bytes: None,
                    farms: Vec::new(),
                };
                for r in &e.reasons {
                    match r {
                        Reason::Indirect { offers, farms } => {
                            let served: Vec<&str> = e
                                .reasons
                                .iter()
                                .filter_map(|r| match r {
                                    Reason::Served { need, .. } => Some(need.as_str()),
                                    _ => None,
                                })
                                .collect();
                            let fix = match &e.action {
                                Action::Replace { with } => {
                                    format!("replace with {}", with.join(":"))
                                }
                                _ => "drop it".into(),
                            };
                            let mut f = mk(
                                "indirect-entry",
                                Severity::Error,
                                format!(
                                    "reaches libraries through links into other store paths (farm {}): serves [{}], offers {offers} libraries; keeps the farm and everything it joins in the closure",
                                    farms
                                        .iter()
                                        .map(|f| f.display().to_string())
                                        .collect::<Vec<_>>()
                                        .join(", "),
                                    served.join(", ")
                                ),
                                Some(fix),
                            );
                            f.farms = store
                                .store_path_of(&e.dir)
                                .map(|s| s.path)
                                .into_iter()
                                .collect();
                            out.push(f);
                        }
                        Reason::Stub => out.push(mk(
                            "stub-entry",
                            Severity::Error,
                            "stub dir: its fake libraries shadow the real driver".into(),
                            Some("drop it".into()),
                        )),
                        Reason::BuildDir => out.push(mk(
                            "build-dir-entry",
                            Severity::Error,
                            "points into the build dir, outside the store".into(),
                            Some("drop it".into()),
                        )),
                        Reason::Insecure { why } => out.push(mk(
                            "insecure-entry",
                            Severity::Error,
                            why.clone(),
                            Some("drop it".into()),
                        )),
                        Reason::Duplicate { of } => out.push(mk(
                            "duplicate-entry",
                            Severity::Warning,
                            format!("the same directory as entry {of}"),
                            Some("drop it".into()),
                        )),
                        Reason::Unused if effective => out.push(mk(
                            "unused-entry",
                            Severity::Warning,
                            "serves no known need".into(),
                            Some(match mode {
                                Mode::Shrink => "drop it".into(),
                                Mode::Expand => {
                                    "drop it with --shrink (if nothing dlopen()s from it)".into()
                                }
                            }),
                        )),
                        _ => {}
                    }
                }
            }
            if let Outcome::Refused { reason } = &p.outcome {
                out.push(Finding {
                    kind: "plan-refused",
                    severity: Severity::Error,
                    file: p.path.clone(),
                    location: p.tag.to_string(),
                    message: format!("cannot rewrite {} safely: {reason}", p.tag),
                    fix: Some("fix the inputs, or keep the entry with --keep".into()),
                    cost_bytes: None,
                    farms: Vec::new(),
                });
            }
            for w in &p.warnings {
                out.push(Finding {
                    kind: "dlopen-unknown",
                    severity: Severity::Warning,
                    file: p.path.clone(),
                    location: "dynamic symbols".into(),
                    message: w.clone(),
                    fix: Some("declare them: --dlopen SONAME or unfarmDlopen".into()),
                    cost_bytes: None,
                    farms: Vec::new(),
                });
            }
            if !effective {
                continue;
            }
            for n in &p.needs {
                if n.before.is_some() {
                    continue;
                }
                let provenance = format!("{:?}", n.need.strongest()).to_lowercase();
                if let Some(err) = &n.error {
                    out.push(Finding {
                        kind: "loader-error",
                        severity: Severity::Error,
                        file: p.path.clone(),
                        location: format!("need {}", n.need.name),
                        message: format!("the loader would fail: {err}"),
                        fix: None,
                        cost_bytes: None,
                        farms: Vec::new(),
                    });
                    continue;
                }
                // Hints are guesses, and an inherited need may be met by the
                // library's own search path: neither is a missing library here.
                if matches!(
                    n.need.strongest(),
                    crate::needs::Provenance::Hint | crate::needs::Provenance::Inherited { .. }
                ) {
                    continue;
                }
                // A library's need may be met by what its loading process
                // already has (libc, libpython): an error only for programs.
                let is_program =
                    o.facts.object_type == ObjectType::Exec || o.facts.interpreter.is_some();
                let severity = if n.need.is_required() && is_program {
                    Severity::Error
                } else {
                    Severity::Warning
                };
                out.push(Finding {
                    kind: "missing-library",
                    severity,
                    file: p.path.clone(),
                    location: format!("need {} ({provenance})", n.need.name),
                    message: format!("{} is not found in {}", n.need.name, p.old),
                    fix: Some("add the output that provides it to the search path".into()),
                    cost_bytes: None,
                    farms: Vec::new(),
                });
            }
        }
    }
    for l in &survey.farm_links {
        out.push(Finding {
            kind: "symlink-into-farm",
            severity: Severity::Error,
            file: l.path.clone(),
            location: format!("symlink -> {}", l.target.display()),
            message: format!(
                "points through farm {}",
                l.farms
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            fix: Some(format!("point it at {}", l.canonical.display())),
            cost_bytes: None,
            farms: l.farms.clone(),
        });
    }
    for s in &survey.special_files {
        out.push(Finding {
            kind: "special-file",
            severity: Severity::Error,
            file: s.clone(),
            location: "file type".into(),
            message: format!(
                "{} in an output (a Nix output cannot hold one); left alone",
                crate::survey::special_kind(s)
            ),
            fix: Some("remove it from the output".into()),
            cost_bytes: None,
            farms: Vec::new(),
        });
    }
    for l in &survey.link_loops {
        out.push(Finding {
            kind: "symlink-loop",
            severity: Severity::Error,
            file: l.clone(),
            location: "symlink".into(),
            message: format!(
                "symlink loop (more than {} links followed); left alone",
                crate::farm::MAX_HOPS
            ),
            fix: Some("remove it or point it at a real file".into()),
            cost_bytes: None,
            farms: Vec::new(),
        });
    }
    for e in &survey.errors {
        out.push(Finding {
            kind: "unreadable",
            severity: Severity::Error,
            file: e.path.clone(),
            location: String::new(),
            message: e.message.clone(),
            fix: None,
            cost_bytes: None,
            farms: Vec::new(),
        });
    }
    out.extend(farm_references(survey, store));
    out.sort_by(|a, b| (&a.file, a.severity, &a.location).cmp(&(&b.file, b.severity, &b.location)));
    out
}

/// Any other bytes that name a farm: hits of a farm's hash part in a file,
/// outside the RUNPATH/RPATH strings the plans already fix.
fn farm_references(survey: &Survey, store: &StoreDir) -> Vec<Finding> {
    let farms = survey.farm_store_paths();
    let hashes: Vec<String> = farms
        .iter()
        .filter_map(|p| store.store_path_of(p).map(|s| s.hash))
        .collect();
    if hashes.is_empty() {
        return Vec::new();
    }
    let Ok(ac) = AhoCorasick::new(&hashes) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut scan = |path: &Path, covered: &[(u64, u64)]| {
        let Ok(data) = std::fs::read(path) else {
            return;
        };
        for m in ac.find_iter(&data) {
            let off = m.start() as u64;
            if covered.iter().any(|(s, l)| off >= *s && off < s + l) {
                continue;
            }
            out.push(Finding {
                kind: "farm-reference",
                severity: Severity::Error,
                file: path.to_owned(),
                location: format!("offset {off:#x}{}", line_of(&data, m.start())),
                message: format!(
                    "names farm {}: \"{}\"",
                    farms[m.pattern().as_usize()].display(),
                    context(&data, m.start(), m.end())
                ),
                fix: Some("point it at the real output instead of the farm".into()),
                cost_bytes: None,
                farms: vec![farms[m.pattern().as_usize()].clone()],
            });
        }
    };
    for o in &survey.objects {
        let mut covered = Vec::new();
        for p in &o.plans {
            let off = match p.tag {
                Tag::Runpath => o.facts.runpath_offset,
                Tag::Rpath => o.facts.rpath_offset,
            };
            if let Some(off) = off
                && p.changes()
            {
                covered.push((off, p.old.len() as u64));
            }
        }
        scan(&o.path, &covered);
    }
    for f in &survey.other_files {
        scan(f, &[]);
    }
    out
}

fn line_of(data: &[u8], at: usize) -> String {
    // Text files get a line number; binary data does not.
    let head = &data[..at];
    if data.iter().take(8192).any(|&b| b == 0) {
        return String::new();
    }
    format!(", line {}", memchr::memchr_iter(b'\n', head).count() + 1)
}

fn context(data: &[u8], start: usize, end: usize) -> String {
    let printable = |b: &u8| b.is_ascii_graphic() || *b == b' ';
    let mut s = start;
    while s > 0 && start - s < 40 && printable(&data[s - 1]) {
        s -= 1;
    }
    let mut e = end;
    while e < data.len() && e - end < 40 && printable(&data[e]) {
        e += 1;
    }
    String::from_utf8_lossy(&data[s..e]).into_owned()
}

/// One line per finding and a summary, for humans.
pub fn render(findings: &[Finding], survey: &Survey) -> String {
    let mut s = String::new();
    for f in findings {
        s.push_str(&format!(
            "{}: {}: {} [{}]: {}{}\n",
            match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "info",
            },
            f.file.display(),
            f.location,
            f.kind,
            f.message,
            f.fix
                .as_ref()
                .map(|x| format!("\n    fix: {x}"))
                .unwrap_or_default()
        ));
    }
    let count = |sev| findings.iter().filter(|f| f.severity == sev).count();
    s.push_str(&format!(
        "unfarm check: {} files, {} ELF objects: {} errors, {} warnings\n",
        survey.files_scanned,
        survey.objects.len(),
        count(Severity::Error),
        count(Severity::Warning)
    ));
    s
}

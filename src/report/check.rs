//! `unfarm check`'s output: the findings for humans (farm summaries,
//! groups, folded notes, counts, the closure line) and as JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::closure::cost::PlanCost;
use crate::loader::resolve::LoaderModel;
use crate::survey::Survey;

use super::words::{human_size, plural};
use crate::check::{Finding, FindingKind, Group, Location, Severity, groups};

/// How [`render`] prints.
#[derive(Clone, Debug, Default)]
pub struct RenderOptions {
    /// Every file of every group, and notes one by one.
    pub verbose: bool,
    /// The outputs as the user named them, for the `unfarm fix` command shown.
    pub outputs: Vec<PathBuf>,
    /// Those of `outputs` the Nix database lists as valid: `unfarm fix`
    /// refuses them, so the fix shown is the derivation's.
    pub registered: Vec<PathBuf>,
    /// Emit ANSI colours (the caller's stream strips them when it must).
    pub color: bool,
    /// Each farm's added size in the outputs' closure (what `unfarm
    /// closure` shows), when computed.
    pub farm_added: BTreeMap<PathBuf, u64>,
}

/// Characters of a message shown before "…" (without --verbose).
const MESSAGE_SHOWN: usize = 300;

/// Files shown per group before "and N more".
const FILES_SHOWN: usize = 3;

/// For humans: a summary per farm (files, cost, the command that fixes
/// it), then one block per group of findings, notes (`info`) folded into
/// one line per kind, and the counts.
pub fn render(findings: &[Finding], survey: &Survey, o: &RenderOptions) -> String {
    use anstyle::{AnsiColor, Style};
    let paint = |style: Style, text: &str| {
        if o.color {
            format!("{style}{text}{style:#}")
        } else {
            text.to_owned()
        }
    };
    let red = AnsiColor::Red.on_default().bold();
    let yellow = AnsiColor::Yellow.on_default().bold();
    let dim = Style::new().dimmed();
    let mut s = String::new();
    s.push_str(&farm_summary(findings, o, &paint));
    let all = groups(findings);
    // Per kind of note: findings, the files they are in, the first group.
    type Note<'a> = (
        FindingKind,
        usize,
        std::collections::BTreeSet<&'a PathBuf>,
        &'a Group,
    );
    let mut notes: Vec<Note> = Vec::new();
    for g in &all {
        if g.severity == Severity::Info && !o.verbose {
            let i = match notes.iter().position(|n| n.0 == g.kind) {
                Some(i) => i,
                None => {
                    notes.push((g.kind, 0, Default::default(), g));
                    notes.len() - 1
                }
            };
            notes[i].1 += g.files.len();
            notes[i].2.extend(&g.files);
            continue;
        }
        s.push_str(&render_group(g, o, &paint));
    }
    for (kind, n, files, g) in notes {
        s.push_str(&paint(
            dim,
            &format!(
                "note[{kind}]: {} in {}: {}{} (--verbose lists them)\n",
                plural(n, "finding"),
                plural(files.len(), "file"),
                g.message,
                g.fix.as_ref().map(|f| format!("; {f}")).unwrap_or_default()
            ),
        ));
    }
    let count = |sev| findings.iter().filter(|f| f.severity == sev).count();
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    let shown_groups = all.iter().filter(|g| g.severity != Severity::Info).count();
    let elf_files = survey.objects.len();
    let paths = survey.files_scanned;
    s.push_str(&format!(
        "unfarm check: {} ({} walked): {}, {}{}\n",
        plural(elf_files, "ELF file"),
        plural(paths, "path"),
        paint(
            if errors > 0 { red } else { Style::new() },
            &plural(errors, "error")
        ),
        paint(
            if warnings > 0 { yellow } else { Style::new() },
            &plural(warnings, "warning")
        ),
        if shown_groups < errors + warnings {
            format!(" in {}", plural(shown_groups, "group"))
        } else {
            String::new()
        }
    ));
    s
}

/// One group of findings (not a folded note): head, location, files,
/// message (cut unless verbose), fix.
fn render_group(
    g: &Group,
    o: &RenderOptions,
    paint: &dyn Fn(anstyle::Style, &str) -> String,
) -> String {
    use anstyle::{AnsiColor, Style};
    let red = AnsiColor::Red.on_default().bold();
    let yellow = AnsiColor::Yellow.on_default().bold();
    let dim = Style::new().dimmed();
    let mut s = String::new();
    let (label, style) = match g.severity {
        Severity::Error => ("error", red),
        Severity::Warning => ("warning", yellow),
        Severity::Info => ("note", dim),
    };
    let head = paint(style, &format!("{label}[{}]", g.kind));
    let location = if g.location == Location::File {
        String::new()
    } else {
        format!(" {}", g.location)
    };
    // A message can hold a whole search path: cut, unless verbose.
    let message = if o.verbose || g.message.chars().count() <= MESSAGE_SHOWN {
        g.message.clone()
    } else {
        let cut: String = g.message.chars().take(MESSAGE_SHOWN).collect();
        format!("{cut}…")
    };
    // The group's message and fix are its first file's: say so when the
    // others' differ, so `check` does not contradict `fix --dry-run`.
    let first = g
        .files
        .first()
        .and_then(|f| f.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let message = if g.differs && g.files.len() > 1 {
        format!("{first}: {message}")
    } else {
        message
    };
    if g.files.len() == 1 {
        s.push_str(&format!(
            "{head} {}:{location}\n    {message}\n",
            g.files[0].display(),
        ));
    } else if o.verbose {
        s.push_str(&format!(
            "{head}{location}: in {}\n",
            plural(g.files.len(), "file")
        ));
        for f in &g.files {
            s.push_str(&format!("    - {}\n", f.display()));
        }
        s.push_str(&format!("    {message}\n"));
    } else {
        s.push_str(&format!(
            "{head}{location}: in {}: {}\n    {message}\n",
            plural(g.files.len(), "file"),
            file_names(&g.files, &|t| paint(dim, t))
        ));
    }
    if let Some(fix) = &g.fix {
        if g.differs && g.files.len() > 1 {
            s.push_str(&format!(
                "    fix: differs between these files (`unfarm fix --dry-run` shows each change); {first}: {fix}\n"
            ));
        } else {
            s.push_str(&format!("    fix: {fix}\n"));
        }
    }
    s
}

/// `a.so, b.so, c.so and N more (--verbose lists them)`: a group's files by
/// name, on one line.
fn file_names(files: &[PathBuf], dim: &dyn Fn(&str) -> String) -> String {
    let names: Vec<String> = files
        .iter()
        .take(FILES_SHOWN)
        .map(|f| match f.file_name() {
            Some(n) => n.to_string_lossy().into_owned(),
            None => f.display().to_string(),
        })
        .collect();
    let more = files.len() - names.len();
    let tail = if more > 0 {
        dim(&format!(" and {more} more (--verbose lists them)"))
    } else {
        String::new()
    };
    format!("{}{tail}", names.join(", "))
}

/// One block per farm: how many files reach it, what it costs, and the
/// command that takes it out. A farm named only by notes (allowed, kept)
/// gets none; one named by warnings only (a build-time output) no command.
fn farm_summary(
    findings: &[Finding],
    o: &RenderOptions,
    paint: &dyn Fn(anstyle::Style, &str) -> String,
) -> String {
    let mut farms: Vec<(&PathBuf, Vec<&PathBuf>, Option<u64>, Severity)> = Vec::new();
    for f in findings.iter().filter(|f| f.severity != Severity::Info) {
        for farm in &f.farms {
            let i = match farms.iter().position(|x| x.0 == farm) {
                Some(i) => i,
                None => {
                    farms.push((farm, Vec::new(), None, f.severity));
                    farms.len() - 1
                }
            };
            if !farms[i].1.contains(&&f.file) {
                farms[i].1.push(&f.file);
            }
            // A finding about this farm alone prices this farm alone.
            if f.farms.len() == 1 && farms[i].2.is_none() {
                farms[i].2 = f.cost_bytes;
            }
            farms[i].3 = farms[i].3.min(f.severity);
        }
    }
    let bold = anstyle::Style::new().bold();
    let names = |registered: bool| {
        o.outputs
            .iter()
            .filter(|p| o.registered.contains(p) == registered)
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (outputs, registered) = (names(false), names(true));
    let mut s = String::new();
    for (farm, files, cost, severity) in farms {
        s.push_str(&paint(bold, &format!("farm {}", farm.display())));
        s.push_str(&format!(": named by {}\n", plural(files.len(), "file")));
        // Two numbers, one story: what the farm keeps alive (its added
        // size, `unfarm closure`), and the part of it that leaves once the
        // real dirs it joins are referenced directly (`cost_bytes`).
        match (o.farm_added.get(farm), cost) {
            (Some(&alive), Some(c)) => s.push_str(&format!(
                "    cost: keeps {} alive (its added size in `unfarm closure`); after the fix {} ({c} bytes) of it leaves the closure, the rest stays used directly\n",
                human_size(alive),
                human_size(c)
            )),
            (None, Some(c)) => s.push_str(&format!(
                "    cost: after the fix {} ({c} bytes) leaves the closure\n",
                human_size(c)
            )),
            _ => {}
        }
        if severity == Severity::Error {
            if !outputs.is_empty() {
                s.push_str(&format!("    fix: unfarm fix {outputs}\n"));
            }
            if !registered.is_empty() {
                s.push_str(&format!(
                    "    fix: {registered}: registered in the Nix store (never edit it in place): add the unfarm hook to the derivation that builds it (nativeBuildInputs, or an overrideAttrs) and rebuild\n"
                ));
            }
        }
    }
    s
}

/// Why the farms' own cost and the closure's saving differ, when they do.
/// A farm's cost already counts what it joined and the outputs still use as
/// staying (`CostModel::farm_cost`), so the gap is a farm that bytes `fix`
/// never rewrites still name (a `.pc` file, a script: `farm-reference`),
/// and the fixed files' own growth (their search paths name real dirs).
pub fn cost_gap(f: &[Finding], c: &PlanCost) -> Option<String> {
    let mut per_farm: BTreeMap<&Path, u64> = BTreeMap::new();
    for x in f.iter().filter(|x| x.farms.len() == 1) {
        if let Some(cost) = x.cost_bytes {
            per_farm.entry(x.farms[0].as_path()).or_insert(cost);
        }
    }
    let farms: u64 = per_farm.values().sum();
    let kept: BTreeSet<&Path> = f
        .iter()
        .filter(|x| x.kind == FindingKind::FarmReference)
        .flat_map(|x| x.farms.iter().map(PathBuf::as_path))
        .filter(|p| per_farm.contains_key(p))
        .collect();
    let kept_bytes: u64 = kept.iter().map(|p| per_farm[p]).sum();
    let growth = i128::from(farms - kept_bytes) - i128::from(c.saved);
    let mut why = Vec::new();
    if !kept.is_empty() {
        why.push(format!(
            "{} stays: {} of them still named by files fix does not rewrite, see farm-reference",
            human_size(kept_bytes),
            kept.len()
        ));
    }
    if growth > 0 {
        why.push(format!(
            "the fixed files grow by {}: their search paths name the real dirs",
            human_size(u64::try_from(growth).ok()?)
        ));
    }
    (!why.is_empty()).then(|| {
        format!(
            "  (the farms cost {}; {})",
            human_size(farms),
            why.join("; ")
        )
    })
}

/// `unfarm check --json` (schema: docs/check-json.md): the findings, their
/// groups, the counts and the loader models, and the closure before and
/// after `fix` when it was computed.
pub fn json(
    findings: &[Finding],
    survey: &Survey,
    loaders: &BTreeMap<LoaderModel, usize>,
    closure: Option<&PlanCost>,
) -> serde_json::Value {
    let count = |sev| findings.iter().filter(|f| f.severity == sev).count();
    serde_json::json!({
        "findings": findings,
        "groups": groups(findings),
        "summary": {
            "files": survey.files_scanned,
            "elf_objects": survey.objects.len(),
            "errors": count(Severity::Error),
            "warnings": count(Severity::Warning),
            "loader": loaders,
        },
        "closure": closure,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::FARM;

    /// A finding about `FARM`, at the first entry of `file`'s RUNPATH.
    fn farm_finding(kind: FindingKind, file: &str, message: String, fix: Option<&str>) -> Finding {
        let entry = Location::Entry {
            tag: crate::plan::Tag::Runpath,
            index: 0,
            text: "/s/farm/lib".into(),
        };
        Finding::new(kind, Severity::Error, Path::new(file), entry, message, fix)
            .with_farms(vec![FARM.into()])
    }

    /// `/o/bin/app`'s farm entry, the farm costing 3 MiB.
    fn app_entry() -> Finding {
        let mut f = farm_finding(
            FindingKind::IndirectEntry,
            "/o/bin/app",
            "through a farm".into(),
            None,
        );
        f.cost_bytes = Some(3 << 20);
        f
    }

    /// A 10 MiB closure the fix makes `saved` bytes smaller.
    fn saving(saved: i64) -> PlanCost {
        PlanCost {
            roots: Vec::new(),
            before: 10 << 20,
            after: ((10 << 20) - saved) as u64,
            saved,
            removed_refs: Vec::new(),
            added_refs: Vec::new(),
        }
    }

    #[test]
    fn the_gap_between_farm_cost_and_saving_is_explained_only_when_there_is_one() {
        let mut f = app_entry();
        assert_eq!(
            cost_gap(std::slice::from_ref(&f), &saving(1 << 20)).as_deref(),
            Some(
                "  (the farms cost 3.0 MiB; the fixed files grow by 2.0 MiB: their search paths name the real dirs)"
            )
        );
        assert_eq!(cost_gap(std::slice::from_ref(&f), &saving(3 << 20)), None);
        // The CUDA-sized package: the farm's 3.7 KiB leaves, yet the closure
        // grows by 23.2 KiB (every RUNPATH grew): both parts said.
        f.cost_bytes = Some(3784);
        assert_eq!(
            cost_gap(std::slice::from_ref(&f), &saving(-23800)).as_deref(),
            Some(
                "  (the farms cost 3.7 KiB; the fixed files grow by 26.9 KiB: their search paths name the real dirs)"
            )
        );
    }

    #[test]
    fn a_group_whose_files_get_different_fixes_does_not_show_the_first_as_all() {
        let entry = |file: &str, serves: &str, fix: &str| {
            farm_finding(
                FindingKind::IndirectEntry,
                file,
                format!("through a farm: serves [{serves}]"),
                Some(fix),
            )
        };
        let o = RenderOptions {
            verbose: false,
            outputs: Vec::new(),
            registered: Vec::new(),
            color: false,
            farm_added: BTreeMap::new(),
        };
        // a.so's entry serves liba.so; b.so's serves `b` from `/s/b/lib`.
        let text = |b: &str| {
            let two = [
                entry("/o/lib/a.so", "liba.so", "replace with /s/a/lib"),
                entry(
                    "/o/lib/b.so",
                    &format!("lib{b}.so"),
                    &format!("replace with /s/{b}/lib"),
                ),
            ];
            render_group(&groups(&two)[0], &o, &|_, t| t.to_owned())
        };
        let same = text("a");
        assert!(
            same.contains(
                "\n    through a farm: serves [liba.so]\n    fix: replace with /s/a/lib\n"
            ),
            "{same}"
        );
        let differ = text("b");
        assert!(
            differ.contains(
                "\n    a.so: through a farm: serves [liba.so]\n    fix: differs between these files (`unfarm fix --dry-run` shows each change); a.so: replace with /s/a/lib\n"
            ),
            "{differ}"
        );
    }

    #[test]
    fn a_farm_a_text_file_still_names_is_said_to_stay_not_to_be_used_directly() {
        let mut pc = Finding::new(
            FindingKind::FarmReference,
            Severity::Warning,
            Path::new("/o-dev/lib/pkgconfig/o.pc"),
            Location::Offset {
                offset: 0x60,
                line: Some(2),
            },
            "names farm",
            None,
        )
        .with_farms(vec![FARM.into()]);
        pc.cost_bytes = Some(3 << 20);
        assert_eq!(
            cost_gap(&[app_entry(), pc], &saving(0)).as_deref(),
            Some(
                "  (the farms cost 3.0 MiB; 3.0 MiB stays: 1 of them still named by files fix does not rewrite, see farm-reference)"
            )
        );
    }
}

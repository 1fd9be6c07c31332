//! Oracles nobody here wrote: readelf, eu-elflint, the real loader (native
//! and under qemu-user), strip, and patchelf's own result. Every tool is
//! required: a missing one fails the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common;

use common::elflint;
use unfarm::edit::{self, EditRequest, SearchPathTag};
use unfarm::fix::atomic::{self, Candidate, HardLinks, Method};
use unfarm::fix::{ReadBack, VerifyError};

const HASH_FARM: &str = "0123456789abcdfghijklmnpqrsvwxyz";

fn run(cmd: &mut Command) -> Output {
    let name = format!("{cmd:?}");
    // A program written a moment ago may be ETXTBSY while another test
    // thread forks: retried, as everywhere else in the tests.
    common::output_retrying(cmd)
        .unwrap_or_else(|e| panic!("required tool missing or failed to start: {name}: {e}"))
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Arch {
    cc: &'static str,
    /// `qemu-<arch>` and sysroot, or None to run natively.
    qemu: Option<(&'static str, &'static str)>,
}

const ARCHES: &[Arch] = &[
    Arch {
        cc: "gcc",
        qemu: None,
    },
    Arch {
        cc: "i686-linux-gnu-gcc",
        qemu: Some(("qemu-i386", "/usr/i686-linux-gnu")),
    },
    Arch {
        cc: "aarch64-linux-gnu-gcc",
        qemu: Some(("qemu-aarch64", "/usr/aarch64-linux-gnu")),
    },
    Arch {
        cc: "s390x-linux-gnu-gcc",
        qemu: Some(("qemu-s390x", "/usr/s390x-linux-gnu")),
    },
    Arch {
        cc: "riscv64-linux-gnu-gcc",
        qemu: Some(("qemu-riscv64", "/usr/riscv64-linux-gnu")),
    },
    Arch {
        cc: "arm-linux-gnueabihf-gcc",
        qemu: Some(("qemu-arm", "/usr/arm-linux-gnueabihf")),
    },
];

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    libdir: PathBuf,
    prog: PathBuf,
    lib: PathBuf,
}

/// `real/lib/libdep.so` and `prog` linked against it, with a RUNPATH that
/// starts with a farm directory that does not exist.
fn fixture(a: &Arch, extra: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let libdir = root.join("real/lib");
    std::fs::create_dir_all(&libdir).unwrap();
    std::fs::write(root.join("dep.c"), "int dep(void) { return 42; }\n").unwrap();
    std::fs::write(
        root.join("main.c"),
        "#include <stdio.h>\nint dep(void);\nint main(void) { printf(\"dep=%d\\n\", dep()); return 0; }\n",
    )
    .unwrap();
    let lib = libdir.join("libdep.so");
    ok(Command::new(a.cc)
        .args(["-shared", "-fPIC", "-Wl,-soname,libdep.so", "-o"])
        .arg(&lib)
        .arg(root.join("dep.c")));
    let prog = root.join("prog");
    let rpath = format!("/nix/store/{HASH_FARM}-farm/lib:{}", libdir.display());
    ok(Command::new(a.cc)
        .args(extra)
        .arg("-Wl,--enable-new-dtags")
        .arg(format!("-Wl,-rpath,{rpath}"))
        .arg("-o")
        .arg(&prog)
        .arg(root.join("main.c"))
        .arg(format!("-L{}", libdir.display()))
        .arg("-ldep"));
    Fixture {
        _dir: dir,
        root,
        libdir,
        prog,
        lib,
    }
}

fn exec(a: &Arch, prog: &Path) -> Output {
    match a.qemu {
        None => run(&mut Command::new(prog)),
        Some((q, sysroot)) => run(Command::new(q).arg("-L").arg(sysroot).arg(prog)),
    }
}

fn assert_runs(a: &Arch, prog: &Path) {
    let out = exec(a, prog);
    assert!(
        out.status.success(),
        "{} {}: {}",
        a.cc,
        prog.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "dep=42\n");
}

fn readelf_runpath(p: &Path) -> Option<String> {
    let out = ok(Command::new("readelf").arg("-dW").arg(p));
    out.lines().find(|l| l.contains("(RUNPATH)")).map(|l| {
        let s = l.split_once('[').unwrap().1;
        s.rsplit_once(']').unwrap().0.to_string()
    })
}

/// Edit `path` through the public API, verifying the layout of the candidate.
fn unfarm_edit(path: &Path, value: &str) -> Method {
    let data = std::fs::read(path).unwrap();
    let scrub: &[&[u8]] = &[HASH_FARM.as_bytes()];
    let req = EditRequest {
        tag: SearchPathTag::Runpath,
        new_value: value,
        scrub,
        drop_ldcache_note: true,
    };
    let e = edit::plan_edit(&data[..], data.len() as u64, &req).unwrap();
    atomic::apply(path, &e, HardLinks::Refuse, |c| match c {
        Candidate::File(t) => {
            let b = std::fs::read(t).map_err(|err| VerifyError::ReadBack {
                what: ReadBack::Copy,
                err,
            })?;
            edit::check_layout(&b).map_err(VerifyError::Layout)
        }
        Candidate::InPlace { .. } => Ok(()),
        Candidate::Edit { original, edit } => {
            let mut b = std::fs::read(original).map_err(|err| VerifyError::ReadBack {
                what: ReadBack::Original,
                err,
            })?;
            edit::apply_in_memory(&mut b, edit);
            edit::check_layout(&b).map_err(VerifyError::Layout)
        }
    })
    .unwrap()
}

/// All oracles on an edited `target` (a copy of `orig`).
fn oracles(a: &Arch, fx: &Fixture, orig: &Path, target: &Path, value: &str) {
    assert_eq!(readelf_runpath(target).as_deref(), Some(value), "{}", a.cc);
    let bytes = std::fs::read(target).unwrap();
    assert!(memchr::memmem::find(&bytes, HASH_FARM.as_bytes()).is_none());
    // Numbers masked: a grow renumbers sections to keep them in offset order.
    let mask = |p: &Path| -> std::collections::BTreeSet<String> {
        elflint(p)
            .iter()
            .map(|m| {
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
            })
            .collect()
    };
    let before = mask(orig);
    let after = mask(target);
    let new: Vec<_> = after.difference(&before).collect();
    assert!(
        new.is_empty(),
        "{}: eu-elflint reports new problems: {new:#?}",
        a.cc
    );
    assert_runs(a, &fx.prog);
    // strip still works on the result, and its output still runs.
    let stripped = fx.root.join("stripped");
    let strip = match a.cc {
        "gcc" => "strip".to_string(),
        cc => cc.replace("-gcc", "-strip"),
    };
    ok(Command::new(&strip).arg("-o").arg(&stripped).arg(target));
    assert_eq!(readelf_runpath(&stripped).as_deref(), Some(value));
    if target == fx.prog {
        assert_runs(a, &stripped);
    }
}

fn patchelf_copy(fx: &Fixture, src: &Path, value: &str) -> PathBuf {
    let p = fx.root.join("by-patchelf");
    std::fs::copy(src, &p).unwrap();
    ok(Command::new("patchelf")
        .arg("--set-rpath")
        .arg(value)
        .arg(&p));
    p
}

fn check_arch(a: &Arch, extra: &[&str]) {
    let fx = fixture(a, extra);
    assert_runs(a, &fx.prog);
    let orig = fx.root.join("prog.orig");
    std::fs::copy(&fx.prog, &orig).unwrap();
    let size = std::fs::metadata(&orig).unwrap().len();

    // In place: shorter, same size, matches patchelf's string, never larger.
    let short = fx.libdir.display().to_string();
    assert_eq!(unfarm_edit(&fx.prog, &short), Method::InPlace { links: 1 });
    assert_eq!(std::fs::metadata(&fx.prog).unwrap().len(), size);
    oracles(a, &fx, &orig, &fx.prog, &short);
    let pe = patchelf_copy(&fx, &orig, &short);
    assert_eq!(readelf_runpath(&pe).as_deref(), Some(short.as_str()));
    assert!(size <= std::fs::metadata(&pe).unwrap().len());
    // Idempotent: same value again writes nothing.
    let snapshot = std::fs::read(&fx.prog).unwrap();
    assert_eq!(unfarm_edit(&fx.prog, &short), Method::Unchanged);
    assert_eq!(std::fs::read(&fx.prog).unwrap(), snapshot);

    // Grow: several KB, the program still finds its library.
    std::fs::copy(&orig, &fx.prog).unwrap();
    let long: Vec<String> = (0..150)
        .map(|i| format!("/nix/store/{}-d{i}/lib", "z".repeat(32)))
        .collect();
    let long = format!("{}:{short}", long.join(":"));
    assert_eq!(unfarm_edit(&fx.prog, &long), Method::InPlace { links: 1 });
    oracles(a, &fx, &orig, &fx.prog, &long);
    let pe = patchelf_copy(&fx, &orig, &long);
    assert_eq!(readelf_runpath(&pe).as_deref(), Some(long.as_str()));
    let grown = std::fs::read(&fx.prog).unwrap();
    assert_eq!(unfarm_edit(&fx.prog, &long), Method::Unchanged);
    assert_eq!(
        std::fs::read(&fx.prog).unwrap(),
        grown,
        "re-run changed the file"
    );

    // A library without RUNPATH gets one (adds a dynamic entry), and the
    // loader still loads it.
    let lib_orig = fx.root.join("libdep.orig");
    std::fs::copy(&fx.lib, &lib_orig).unwrap();
    let libpath = format!(
        "{}:/nix/store/{}-x/lib",
        fx.libdir.display(),
        "y".repeat(32)
    );
    unfarm_edit(&fx.lib, &libpath);
    oracles(a, &fx, &lib_orig, &fx.lib, &libpath);
}

#[test]
fn x86_64_pie() {
    check_arch(&ARCHES[0], &["-pie"]);
}

#[test]
fn x86_64_no_pie() {
    check_arch(&ARCHES[0], &["-no-pie"]);
}

#[test]
fn i686() {
    check_arch(&ARCHES[1], &[]);
}

#[test]
fn aarch64() {
    check_arch(&ARCHES[2], &[]);
}

#[test]
fn s390x_big_endian() {
    check_arch(&ARCHES[3], &[]);
}

#[test]
fn riscv64() {
    check_arch(&ARCHES[4], &[]);
}

#[test]
fn armhf() {
    check_arch(&ARCHES[5], &[]);
}

//! `unfarm fix --interpreter`, end to end, on what GNU ld, gold, lld and
//! mold produce (PIE and not): the interpreter is set to a longer path (a
//! link to the host's ld.so under a long temp dir) in the same run that
//! expands a farm in the RUNPATH (both grow), and then the program runs
//! under the kernel, `readelf -l` and both patchelfs read the new
//! interpreter, eu-elflint finds nothing new, `strip`, `eu-strip` and
//! `objcopy` keep it running, and both patchelfs' `--set-rpath` on the
//! result runs. A second run changes no byte; going back to the short
//! interpreter leaves no byte of the long one.
//!
//! Every tool is required: a missing one fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Cc, LinkStyle, Store, lib_source, readelf_dynamic};
use crate::edit_layouts::{
    PATCHELFS, assert_runs, copy, no_new_lint, ok, strippers_keep_it_running,
};

const HOST_LD: &str = "/lib64/ld-linux-x86-64.so.2";
const MAIN: &str = "#include <stdio.h>\nint dep(void);\n\
                    int main(void) { printf(\"dep=%d\\n\", dep()); return 0; }\n";

/// A link to the host's ld.so under a path of about 200 bytes (longer than
/// any PT_INTERP a linker writes).
fn long_interp(dir: &Path) -> String {
    let mut p = dir.join("interp");
    while p.as_os_str().len() < 180 {
        p.push("a-long-dir-for-the-interpreter");
    }
    std::fs::create_dir_all(&p).unwrap();
    let l = p.join("ld-linux-x86-64.so.2");
    std::os::unix::fs::symlink(HOST_LD, &l).unwrap();
    l.to_str().unwrap().to_owned()
}

/// The interpreter `readelf -l` reports.
fn readelf_interp(p: &Path) -> Option<String> {
    let out = ok(Command::new("readelf").arg("-lW").arg(p));
    out.lines()
        .find_map(|l| l.split_once("[Requesting program interpreter: "))
        .map(|(_, r)| r.trim_end().trim_end_matches(']').to_owned())
}

fn patchelf_interp(pe: &str, p: &Path) -> String {
    ok(Command::new(pe).arg("--print-interpreter").arg(p))
        .trim_end()
        .to_owned()
}

/// A store with `dep-lib` and `other-lib` (one library each), a farm of
/// both, and an `app` output whose program links `libdep.so.1` through the
/// farm (RUNPATH: the farm's lib). Returns the store, `app` and the program.
fn world(ld: &str, pie: bool) -> (Store, PathBuf, PathBuf) {
    let s = Store::new();
    let dep = s.output("dep-lib").join("lib");
    Cc::gcc().shared_lib(&dep, "dep", "1", &lib_source("dep", 42));
    let other = s.output("other-lib").join("lib");
    Cc::gcc().shared_lib(&other, "other", "1", &lib_source("other", 1));
    let farm = s.farm(
        "deps-joined",
        &[dep.parent().unwrap(), other.parent().unwrap()],
        LinkStyle::Absolute,
    );
    let app = s.output("app");
    let prog = Cc::gcc()
        .arg(format!("-fuse-ld={ld}"))
        .arg(if pie { "-pie" } else { "-no-pie" })
        .link_dir(farm.join("lib"))
        .lib(":libdep.so.1")
        .search(farm.join("lib"))
        .executable(&app.join("bin/prog"), MAIN);
    (s, app, prog)
}

/// fix --interpreter with a farm to expand, then every oracle.
fn check_layout(ld: &str, pie: bool) {
    let what = format!("{ld} {}", if pie { "PIE" } else { "non-PIE" });
    let (s, app, prog) = world(ld, pie);
    assert_runs(&prog, &what);
    let before = s.scratch().join("before");
    std::fs::copy(&prog, &before).unwrap();
    let long = long_interp(s.scratch());
    let run = s.fix_interpreter(&["-v"], &long, &app);
    assert_eq!(run.code, Some(0), "{what}: {}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("interpreter: ") && run.stdout.contains("RUNPATH: "),
        "{what}: one change, both parts: {}",
        run.stdout
    );
    let runpath = readelf_dynamic(&prog, "RUNPATH").unwrap();
    assert!(
        runpath.contains("-dep-lib/lib") && !runpath.contains("joined"),
        "{what}: RUNPATH {runpath}"
    );
    assert!(
        std::fs::metadata(&prog).unwrap().len() > std::fs::metadata(&before).unwrap().len(),
        "{what}: the long interpreter grows the file"
    );
    assert_runs(&prog, &format!("{what} with the long interpreter"));
    assert_eq!(
        readelf_interp(&prog).as_deref(),
        Some(long.as_str()),
        "{what}"
    );
    no_new_lint(&before, &prog, &what);
    // A second run changes nothing.
    let once = std::fs::read(&prog).unwrap();
    let again = s.fix_interpreter(&[], &long, &app);
    assert_eq!(again.code, Some(0), "{what}: {}", again.stderr);
    assert_eq!(std::fs::read(&prog).unwrap(), once, "{what}: second run");
    strippers_keep_it_running(&prog, &what);
    for pe in PATCHELFS {
        assert_eq!(patchelf_interp(pe, &prog), long, "{what}: {pe}");
        let set = copy(&prog, "pe-set");
        let longer = format!("{runpath}:/more/{}", "y".repeat(300));
        ok(Command::new(pe).arg("--set-rpath").arg(&longer).arg(&set));
        assert_eq!(
            readelf_dynamic(&set, "RUNPATH").as_deref(),
            Some(longer.as_str())
        );
        assert_eq!(
            readelf_interp(&set).as_deref(),
            Some(long.as_str()),
            "{what}: {pe}"
        );
        assert_eq!(patchelf_interp(pe, &set), long, "{what}: {pe}");
        assert_runs(&set, &format!("{what} + {pe} --set-rpath"));
        strippers_keep_it_running(&set, &format!("{what} + {pe} --set-rpath"));
        std::fs::remove_file(&set).unwrap();
    }
    // Back to the short one: in place, and no byte of the long one is left.
    let short = s.fix_interpreter(&[], HOST_LD, &app);
    assert_eq!(short.code, Some(0), "{what}: {}", short.stderr);
    assert_eq!(readelf_interp(&prog).as_deref(), Some(HOST_LD), "{what}");
    let bytes = std::fs::read(&prog).unwrap();
    assert!(
        memchr::memmem::find(&bytes, b"a-long-dir-for-the-interpreter").is_none(),
        "{what}: the old interpreter is scrubbed"
    );
    assert_runs(&prog, &format!("{what} back to {HOST_LD}"));
}

#[test]
fn gnu_ld_pie_and_non_pie() {
    check_layout("bfd", true);
    check_layout("bfd", false);
}

#[test]
fn gold_lld_mold_pie_and_non_pie() {
    for ld in ["gold", "lld", "mold"] {
        check_layout(ld, true);
        check_layout(ld, false);
    }
}

/// Libraries and static executables have no interpreter to set: left
/// byte-identical, one note each with `-v`, and the run succeeds.
#[test]
fn libraries_and_static_executables_are_left_alone() {
    let s = Store::new();
    let out = s.output("mixed");
    let lib = Cc::gcc().shared_lib(&out.join("lib"), "x", "1", &lib_source("x", 1));
    let stat = Cc::gcc()
        .arg("-static")
        .executable(&out.join("bin/static"), "int main(void) { return 0; }\n");
    let (lib0, stat0) = (std::fs::read(&lib).unwrap(), std::fs::read(&stat).unwrap());
    let long = long_interp(s.scratch());
    let run = s.fix_interpreter(&["-v"], &long, &out);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.is_empty(), "no error: {}", run.stderr);
    for (p, why) in [
        (&lib, "no PT_INTERP (a shared library or static PIE)"),
        (&stat, "a static executable"),
    ] {
        let note = format!("note: {}: interpreter left alone: {why}", p.display());
        assert!(run.stdout.contains(&note), "{note} in {}", run.stdout);
    }
    assert_eq!(std::fs::read(&lib).unwrap(), lib0);
    assert_eq!(std::fs::read(&stat).unwrap(), stat0);
}

/// An executable of another machine (i686 in an x86-64 package) keeps its
/// interpreter, with a note, as autoPatchelf skips it; the x86-64 one gets
/// the new one.
#[test]
fn an_executable_the_interpreter_cannot_run_keeps_its_own() {
    let s = Store::new();
    let out = s.output("multi");
    let src = s.scratch().join("m.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let (x64, x86) = (out.join("bin/x64"), out.join("bin/x86"));
    std::fs::create_dir_all(out.join("bin")).unwrap();
    ok(Command::new("gcc").arg("-o").arg(&x64).arg(&src));
    ok(Command::new("i686-linux-gnu-gcc")
        .arg("-o")
        .arg(&x86)
        .arg(&src));
    let x86_before = std::fs::read(&x86).unwrap();
    let long = long_interp(s.scratch());
    let run = s.fix_interpreter(&["-v"], &long, &out);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(readelf_interp(&x64).as_deref(), Some(long.as_str()));
    assert!(
        std::fs::read(&x86).unwrap() == x86_before,
        "the i686 executable is left byte-identical"
    );
    let note = format!(
        "note: {}: interpreter left alone: an Elf32 i386 executable, {long} is Elf64 x86_64",
        x86.display()
    );
    assert!(run.stdout.contains(&note), "{note} in {}", run.stdout);
}

/// A program over 1 MiB is planned range by range, never read whole: its
/// interpreter alone (grown, then back in place), and with its RUNPATH
/// (then it is edited in memory, the two composed).
#[test]
fn large_program_interpreter_alone_and_with_its_runpath() {
    const BIG: &str = "#include <stdio.h>\nint dep(void);\n\
                       static const char big[3 << 20] = {1};\n\
                       int main(void) { printf(\"dep=%d\\n\", dep() + big[0] - 1); return 0; }\n";
    let s = Store::new();
    let dep = s.output("dep-lib").join("lib");
    Cc::gcc().shared_lib(&dep, "dep", "1", &lib_source("dep", 42));
    let farm = s.farm("deps-joined", &[dep.parent().unwrap()], LinkStyle::Absolute);
    let long = long_interp(s.scratch());
    let fix = |out: &Path, interp: &str| {
        let r = s.fix_interpreter(&[], interp, out);
        assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    };
    // Interpreter alone: the RUNPATH names the real dir.
    let alone = s.output("alone");
    let prog = Cc::gcc()
        .link_dir(&dep)
        .lib(":libdep.so.1")
        .search(&dep)
        .executable(&alone.join("bin/prog"), BIG);
    assert!(std::fs::metadata(&prog).unwrap().len() > 1 << 20);
    fix(&alone, &long);
    assert_eq!(readelf_interp(&prog).as_deref(), Some(long.as_str()));
    assert_runs(&prog, "large, interpreter grown");
    fix(&alone, HOST_LD);
    assert_eq!(readelf_interp(&prog).as_deref(), Some(HOST_LD));
    assert_runs(&prog, "large, interpreter back in place");
    // With a farm to expand too.
    let both = s.output("both");
    let prog = Cc::gcc()
        .link_dir(farm.join("lib"))
        .lib(":libdep.so.1")
        .search(farm.join("lib"))
        .executable(&both.join("bin/prog"), BIG);
    fix(&both, &long);
    assert_eq!(readelf_interp(&prog).as_deref(), Some(long.as_str()));
    let runpath = readelf_dynamic(&prog, "RUNPATH").unwrap();
    assert!(!runpath.contains("joined"), "{runpath}");
    assert_runs(&prog, "large, interpreter and RUNPATH");
}

/// Every dynamic executable in /usr/bin (Go, Rust, C++, gold/lld/mold
/// outputs alike) gets a longer interpreter: planned without an error
/// other than a refusal, the result passes the layout checks and reads
/// back the new interpreter, and a sample runs with it.
#[test]
fn every_system_executable_takes_a_longer_interpreter() {
    let dir = tempfile::tempdir().unwrap();
    let long = long_interp(dir.path());
    let (mut done, mut refused) = (0usize, Vec::new());
    let mut entries: Vec<PathBuf> = std::fs::read_dir("/usr/bin")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.symlink_metadata().is_ok_and(|m| m.is_file()))
        .collect();
    entries.sort();
    for p in &entries {
        let Ok(data) = std::fs::read(p) else { continue };
        let Ok(facts) = unfarm::elf::parse_facts(&data[..]) else {
            continue;
        };
        if facts.interpreter.is_none() || !facts.dynamic {
            continue;
        }
        match unfarm::edit::plan_interpreter(&data[..], data.len() as u64, &long, &[]) {
            Ok(e) => {
                let mut out = data.clone();
                unfarm::edit::apply_in_memory(&mut out, &e);
                unfarm::edit::check_layout(&out)
                    .unwrap_or_else(|e| panic!("{}: result layout: {e}", p.display()));
                let after = unfarm::elf::parse_facts(&out[..]).unwrap();
                assert_eq!(
                    after.interpreter.as_deref(),
                    Some(long.as_str()),
                    "{}",
                    p.display()
                );
                assert_eq!(after.needed, facts.needed, "{}", p.display());
                assert_eq!(after.runpath, facts.runpath, "{}", p.display());
                done += 1;
                let name = p.file_name().unwrap().to_str().unwrap();
                if ["true", "ls", "cat", "env", "readelf", "patchelf"].contains(&name) {
                    let f = dir.path().join(name);
                    std::fs::write(&f, &out).unwrap();
                    std::fs::set_permissions(
                        &f,
                        std::os::unix::fs::PermissionsExt::from_mode(0o755),
                    )
                    .unwrap();
                    let r =
                        crate::common::output_retrying(Command::new(&f).arg("--version")).unwrap();
                    assert!(
                        r.status.success(),
                        "{name} with the long interpreter: {r:?}"
                    );
                }
            }
            Err(unfarm::edit::EditError::Unsupported(why)) => refused.push((p.clone(), why)),
            Err(e) => panic!("{}: {e}", p.display()),
        }
    }
    eprintln!(
        "{done} executables edited, {} refused: {refused:#?}",
        refused.len()
    );
    assert!(done >= 100, "only {done} executables in /usr/bin");
    assert!(
        refused.len() * 100 <= done,
        "more than 1% refused: {refused:#?}"
    );
}

/// Killed at every step of a grown interpreter written in place (a program
/// over 1 MiB): the program runs (as the old object or the new one), and
/// the next `fix` rolls it back to its exact old bytes before planning;
/// uninterrupted, it is the planned image.
#[test]
fn an_interpreter_grow_killed_at_each_step_runs_and_rolls_back() {
    use unfarm::fix::atomic::{Durability, HardLinks, Staged};
    const BIG: &str = "#include <stdio.h>\nint dep(void);\n\
                       static const char big[3 << 20] = {1};\n\
                       int main(void) { printf(\"dep=%d\\n\", dep() + big[0] - 1); return 0; }\n";
    let s = Store::new();
    let dep = s.output("dep-lib").join("lib");
    Cc::gcc().shared_lib(&dep, "dep", "1", &lib_source("dep", 42));
    let src = s.scratch().join("prog");
    Cc::gcc()
        .link_dir(&dep)
        .lib(":libdep.so.1")
        .search(&dep)
        .executable(&src, BIG);
    let original = std::fs::read(&src).unwrap();
    let long = long_interp(s.scratch());
    let edit =
        unfarm::edit::plan_interpreter(&original[..], original.len() as u64, &long, &[]).unwrap();
    assert!(edit.grew);
    let mut image = original.clone();
    unfarm::edit::apply_in_memory(&mut image, &edit);
    for k in 0.. {
        let out = s.output(&format!("app-{k}"));
        let p = out.join("bin/prog");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::copy(&src, &p).unwrap();
        let Staged::Patching(mut pending) =
            unfarm::fix::atomic::stage(&p, &edit, HardLinks::EditShared, Durability::Batch, |_| {
                Ok(())
            })
            .unwrap()
        else {
            panic!("a grow of a large file is written in place");
        };
        for _ in 0..k {
            pending.step(Durability::Batch).unwrap();
        }
        if pending.next_step().is_none() {
            // Done: nothing to roll back; the descriptor is closed.
            drop(pending);
            assert_eq!(std::fs::read(&p).unwrap(), image, "uninterrupted");
            assert_runs(&p, "the whole grow");
            assert!(k > 2, "the grow took {k} steps");
            break;
        }
        pending.interrupt();
        assert_runs(&p, &format!("killed after {k} steps"));
        // The journal of a dead process is the next run's to roll back.
        let bin = p.parent().unwrap();
        for e in std::fs::read_dir(bin).unwrap() {
            let j = e.unwrap().path();
            let name = j.file_name().unwrap().to_str().unwrap().to_owned();
            if name.ends_with("-journal") {
                let dead = name.replace(&format!("-{}-", std::process::id()), "-2147483646-");
                std::fs::rename(&j, bin.join(dead)).unwrap();
            }
        }
        let r = s.unfarm(["fix".as_ref(), out.as_os_str()]);
        assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
        assert_eq!(
            std::fs::read(&p).unwrap(),
            original,
            "rolled back after {k} steps"
        );
    }
}

/// Other architectures (32-bit, big-endian), PIE and not, under
/// qemu-user: the interpreter set to a longer path (a link to the
/// sysroot's ld.so), the program runs; set back, it runs again.
#[test]
fn cross_architectures_run_under_qemu() {
    let arches = [
        ("i686-linux-gnu-gcc", "qemu-i386", "/usr/i686-linux-gnu"),
        (
            "aarch64-linux-gnu-gcc",
            "qemu-aarch64",
            "/usr/aarch64-linux-gnu",
        ),
        ("s390x-linux-gnu-gcc", "qemu-s390x", "/usr/s390x-linux-gnu"),
        (
            "riscv64-linux-gnu-gcc",
            "qemu-riscv64",
            "/usr/riscv64-linux-gnu",
        ),
        (
            "arm-linux-gnueabihf-gcc",
            "qemu-arm",
            "/usr/arm-linux-gnueabihf",
        ),
    ];
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("m.c");
    std::fs::write(
        &c,
        "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n",
    )
    .unwrap();
    for (cc, qemu, sysroot) in arches {
        for pie in ["-pie", "-no-pie"] {
            let what = format!("{cc} {pie}");
            let prog = d.path().join("prog");
            ok(Command::new(cc).args([pie, "-o"]).arg(&prog).arg(&c));
            let data = std::fs::read(&prog).unwrap();
            let old = unfarm::elf::parse_facts(&data[..])
                .unwrap()
                .interpreter
                .unwrap();
            let mut dir = d.path().join(format!("{cc}{pie}"));
            while dir.as_os_str().len() < 150 {
                dir.push("a-long-dir-for-the-interpreter");
            }
            std::fs::create_dir_all(&dir).unwrap();
            let long = dir.join(Path::new(&old).file_name().unwrap());
            std::os::unix::fs::symlink(format!("{sysroot}{old}"), &long).unwrap();
            let long = long.to_str().unwrap();
            let exec = |p: &Path, how: &str| {
                let out = crate::common::output_retrying(
                    Command::new(qemu).arg("-L").arg(sysroot).arg(p),
                )
                .unwrap();
                assert!(
                    out.status.success() && out.stdout == b"hi\n",
                    "{what} {how}: {:?} {}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            let e = unfarm::edit::plan_interpreter(&data[..], data.len() as u64, long, &[])
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(e.grew, "{what}");
            let mut grown = data.clone();
            unfarm::edit::apply_in_memory(&mut grown, &e);
            let g = d.path().join("grown");
            std::fs::write(&g, &grown).unwrap();
            // qemu-user runs only what the kernel would.
            std::fs::set_permissions(&g, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            assert_eq!(readelf_interp(&g).as_deref(), Some(long), "{what}");
            exec(&g, "with the long interpreter");
            let e =
                unfarm::edit::plan_interpreter(&grown[..], grown.len() as u64, &old, &[]).unwrap();
            assert!(!e.grew, "{what}: back in place");
            let mut back = grown.clone();
            unfarm::edit::apply_in_memory(&mut back, &e);
            std::fs::write(&g, &back).unwrap();
            exec(&g, "back to its own interpreter");
        }
    }
}

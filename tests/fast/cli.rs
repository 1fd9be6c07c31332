//! The command line as a new user meets it: symlink arguments (`./result`),
//! files that are not ELF, the loader model chosen per file from its
//! interpreter, a wrong store dir, and the one error format.

use crate::common;

use std::path::{Path, PathBuf};

use common::{Cc, LinkStyle, Store, exe_calling, lib_source};

const TOOLS: &[&str] = &["gcc"];

/// A package whose program reaches libfoo through a farm: the case `check`
/// must never call clean. Returns (farm, program's output).
fn farmed_app(store: &Store) -> (PathBuf, PathBuf) {
    farmed_app_with(store, Cc::gcc())
}

/// [`farmed_app`], linked by `cc` (extra flags).
fn farmed_app_with(store: &Store, cc: Cc) -> (PathBuf, PathBuf) {
    let foo_lib = store.output("foo-1.0-lib");
    Cc::gcc().shared_lib(&foo_lib.join("lib"), "foo", "1.0", &lib_source("foo", 1));
    let farm = store.farm("env", &[&foo_lib], LinkStyle::Absolute);
    let app = store.output("app-1.0");
    cc.link_dir(farm.join("lib"))
        .lib(":libfoo.so.1")
        .search(farm.join("lib"))
        .executable(&app.join("bin/app"), &exe_calling(&["foo"]));
    (farm, app)
}

/// The linker flag for a Nix-style interpreter:
/// `<store>/<hash>-glibc-2.40/lib/ld-linux-x86-64.so.2`.
fn nix_interpreter(store: &Store) -> String {
    let interp = store.output("glibc-2.40").join("lib/ld-linux-x86-64.so.2");
    format!("-Wl,--dynamic-linker={}", interp.display())
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or("")
}

/// `ln -s /nix/store/…-app result; unfarm check result` used to walk the
/// link alone: `1 files, 0 ELF objects: 0 errors`, exit 0.
#[test]
fn a_symlink_argument_is_followed() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let (_, app) = farmed_app(&store);
    let result = store.scratch().join("result");
    std::os::unix::fs::symlink(&app, &result).unwrap();
    let direct = store.unfarm(["check".as_ref(), app.as_os_str()]);
    let via_link = store.unfarm(["check".as_ref(), result.as_os_str()]);
    assert_eq!(direct.code, Some(1), "{direct:#?}");
    assert_eq!(via_link.code, Some(1), "{via_link:#?}");
    // The same report; only the fix command names the output as typed.
    let typed = |r: &common::Run, arg: &Path| {
        r.stdout.replace(
            &format!("fix: unfarm fix {}\n", arg.display()),
            "fix: unfarm fix OUT\n",
        )
    };
    assert_eq!(typed(&direct, &app), typed(&via_link, &result));
    assert!(via_link.stdout.contains("indirect-entry"), "{via_link:#?}");
    // A relative link to a link, as `nix build` leaves `result` in a dir.
    let again = store.scratch().join("again");
    std::os::unix::fs::symlink("result", &again).unwrap();
    let plan = store.unfarm(["fix", "--dry-run", again.to_str().unwrap()]);
    assert!(
        plan.stdout.contains(app.join("bin/app").to_str().unwrap()),
        "{plan:#?}"
    );
    // ldd follows a link to a program, as ldd(1) does.
    let exe_link = store.scratch().join("app-link");
    std::os::unix::fs::symlink(app.join("bin/app"), &exe_link).unwrap();
    let l = store.unfarm(["ldd".as_ref(), exe_link.as_os_str()]);
    assert!(l.stdout.contains("libfoo.so.1 =>"), "{l:#?}");
}

/// `ldd` on a file that is not ELF printed nothing and exited 0.
#[test]
fn ldd_on_a_file_that_is_not_elf_fails() {
    let t = tempfile::tempdir().unwrap();
    let script = t.path().join("script.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let empty = t.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    for f in [&script, &empty] {
        let r = common::unfarm(["ldd".as_ref(), f.as_os_str()]);
        assert_eq!(r.code, Some(1), "{r:#?}");
        assert_eq!(
            r.stderr,
            format!("unfarm: {}: not an ELF file\n", f.display())
        );
        let j = common::unfarm(["ldd".as_ref(), "--json".as_ref(), f.as_os_str()]);
        assert_eq!(j.code, Some(1));
        assert_eq!(
            j.json()["errors"][0],
            format!("{}: not an ELF file", f.display())
        );
    }
    // A non-ELF file met while walking a directory is not an error of its
    // own; a directory with no ELF file is.
    let r = common::unfarm(["ldd".as_ref(), t.path().as_os_str()]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert_eq!(
        r.stderr,
        format!("unfarm: {}: no ELF files\n", t.path().display())
    );
}

/// The loader model comes from each file's interpreter: the host's ld.so
/// finds libc in /etc/ld.so.cache (it said `libc.so.6 NOT FOUND (tried 0
/// paths)`); a Nix glibc searches no host dir.
#[test]
fn the_loader_model_follows_the_interpreter() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let (_, app) = farmed_app_with(&store, Cc::gcc().arg(nix_interpreter(&store)));
    let host = common::unfarm(["ldd", "--json", "/usr/bin/ls"]);
    assert_eq!(host.code, Some(0), "{host:#?}");
    let f = &host.json()["files"][0];
    assert_eq!(f["loader"], "host");
    let libc = f["needs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "libc.so.6")
        .unwrap();
    assert_eq!(libc["status"], "found");
    let text = common::unfarm(["ldd", "/usr/bin/ls"]);
    assert!(
        text.stdout
            .starts_with("/usr/bin/ls [x86_64 64-bit, host loader")
    );

    let exe = app.join("bin/app");
    let nix = store.unfarm(["ldd".as_ref(), "--json".as_ref(), exe.as_os_str()]);
    let f = &nix.json()["files"][0];
    assert_eq!(f["loader"], "nix", "{nix:#?}");
    let libc = f["needs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "libc.so.6")
        .unwrap();
    assert_eq!(libc["status"], "not-found", "{nix:#?}");
    assert_eq!(nix.code, Some(1));
    // Flags override the choice.
    let forced = store.unfarm(["ldd", "--loader", "host", "--json", exe.to_str().unwrap()]);
    assert_eq!(forced.json()["files"][0]["loader"], "host");
    let forced = store.unfarm(["ldd", "--system", "--json", exe.to_str().unwrap()]);
    assert_eq!(forced.json()["files"][0]["loader"], "host");
    let forced = common::unfarm(["ldd", "--loader", "nix", "--json", "/usr/bin/ls"]);
    assert_eq!(forced.json()["files"][0]["loader"], "nix");
    assert_eq!(forced.code, Some(1));
}

/// A store dir that is missing, relative, or does not hold the outputs gave
/// a quietly clean result.
#[test]
fn a_wrong_store_dir_is_an_error() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let (_, app) = farmed_app(&store);
    let app = app.to_str().unwrap();
    let other = tempfile::tempdir().unwrap();
    let other = other.path().to_str().unwrap();
    let cases: [(&[&str], String); 5] = [
        (
            &["--store-dir", "/no/such/store", "check", app],
            "unfarm: /no/such/store: --store-dir: No such file or directory\n".into(),
        ),
        (
            &["--store-dir", "store", "check", app],
            "unfarm: store: --store-dir must be an absolute path\n".into(),
        ),
        (
            &["--store-dir", other, "check", app],
            format!(
                "unfarm: {app}: in the store dir {d}, not in {other} (--store-dir); give --store-dir {d}\n",
                d = store.dir().display()
            ),
        ),
        (
            &["--store-dir", other, "demo"],
            "unfarm: --store-dir: not used by demo (it builds its own store in a temp dir)\n"
                .into(),
        ),
        (
            &["--quiet", "demo"],
            "unfarm: --quiet: not used by demo (it shows every step)\n".into(),
        ),
    ];
    for (args, want) in cases {
        let r = common::unfarm(args);
        assert_ne!(r.code, Some(0), "{args:?}: {r:#?}");
        assert_eq!(r.stderr, want, "{args:?}");
        assert_eq!(r.stdout, "", "{args:?}");
    }
}

/// A missing argument: one line, the path, the cause once.
#[test]
fn a_missing_argument_is_one_error_line() {
    for cmd in ["check", "fix", "ldd"] {
        let r = common::unfarm([cmd, "/nonexistent"]);
        assert_eq!(r.code, Some(1), "{cmd}: {r:#?}");
        assert_eq!(
            r.stderr, "unfarm: /nonexistent: No such file or directory\n",
            "{cmd}"
        );
    }
    let _ = last_line("");
}

/// `demo --cc nosuchcc` printed the OS error twice and began with an output
/// file's path; the cause is the compiler, named once.
#[test]
fn demo_with_a_missing_compiler_is_one_error_line() {
    let r = common::unfarm(["demo", "--cc", "nosuchcc"]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert_eq!(
        r.stderr,
        "unfarm: nosuchcc: cannot run the C compiler (--cc): No such file or directory\n"
    );
}

/// A fixed package of many libraries, each needing a soname nothing
/// provides: `check` after `fix` warned `unused-entry` for every dir `fix`
/// wrote in the default (expand) mode and `missing-library` once per file.
/// Now: no warning about what fix wrote, one group per missing soname, and
/// a clean run in a few lines.
#[test]
fn check_after_fix_is_short_and_grouped() {
    common::require_tools(TOOLS);
    let store = Store::new();
    // libghost.so.1 is linked against, then left out of every output.
    let ghost_dir = store.scratch().join("ghost");
    Cc::gcc().shared_lib(&ghost_dir, "ghost", "1", &lib_source("ghost", 0));
    let n = 12;
    let mut outs = Vec::new();
    for i in 0..n {
        let out = store.output(&format!("part{i}-1.0-lib"));
        Cc::gcc()
            .link_dir(&ghost_dir)
            .lib(":libghost.so.1")
            .shared_lib(
                &out.join("lib"),
                &format!("part{i}"),
                "1",
                &common::lib_calling(&format!("part{i}"), "ghost"),
            );
        outs.push(out);
    }
    let refs: Vec<&Path> = outs.iter().map(PathBuf::as_path).collect();
    let farm = store.farm("parts-env", &refs, LinkStyle::Absolute);
    let app = store.output("many-1.0");
    let mut cc = Cc::gcc().link_dir(farm.join("lib"));
    for i in 0..n {
        cc = cc.lib(&format!(":libpart{i}.so.1"));
    }
    let syms: Vec<String> = (0..n).map(|i| format!("part{i}")).collect();
    let syms: Vec<&str> = syms.iter().map(String::as_str).collect();
    cc.search(farm.join("lib"))
        .arg("-Wl,--allow-shlib-undefined")
        .executable(&app.join("bin/app"), &exe_calling(&syms));
    // Libraries bundled in the output, each with its RUNPATH through the
    // farm (for the part it calls) and a need nothing provides.
    for i in 0..n {
        Cc::gcc()
            .link_dir(&ghost_dir)
            .lib(":libghost.so.1")
            .link_dir(farm.join("lib"))
            .lib(&format!(":libpart{i}.so.1"))
            .search(farm.join("lib"))
            .shared_lib(
                &app.join("lib"),
                &format!("own{i}"),
                "1",
                &format!(
                    "int ghost(void);\nint part{i}(void);\nint own{i}(void) {{ return ghost() + part{i}(); }}\n"
                ),
            );
    }
    let app_s = app.to_str().unwrap();
    let before = store.unfarm(["check", app_s]);
    assert_eq!(before.code, Some(1), "{before:#?}");
    // The farm summary comes first: files, cost, the command that fixes it.
    assert!(
        before
            .stdout
            .starts_with(&format!("farm {}: named by ", farm.display())),
        "{}",
        before.stdout
    );
    assert!(
        before
            .stdout
            .contains(&format!("    fix: unfarm fix {app_s}\n")),
        "{}",
        before.stdout
    );
    store.unfarm(["fix", app_s]).success();
    let after = store.unfarm(["check", app_s]);
    assert_eq!(after.code, Some(0), "{after:#?}");
    let lines: Vec<&str> = after.stdout.lines().collect();
    assert!(lines.len() <= 8, "{}", after.stdout);
    assert!(
        !after.stdout.contains("warning[unused-entry]"),
        "{}",
        after.stdout
    );
    // One group for libghost.so.1, covering every library.
    let ghost: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("warning[missing-library]"))
        .collect();
    assert_eq!(ghost.len(), 1, "{}", after.stdout);
    assert!(
        ghost[0].contains(&format!("in {n} files")),
        "{}",
        after.stdout
    );
    assert_eq!(
        lines
            .iter()
            .find(|l| l.starts_with("unfarm check:"))
            .copied(),
        Some(format!("unfarm check: {} ELF files (", n + 1).as_str()).map(|_| {
            *lines
                .iter()
                .find(|l| l.starts_with("unfarm check:"))
                .unwrap()
        })
    );
    let summary = lines
        .iter()
        .find(|l| l.starts_with("unfarm check:"))
        .unwrap();
    assert!(
        summary.ends_with(&format!(": 0 errors, {n} warnings in 1 group")),
        "{summary}"
    );
    // --verbose lists every file of the group; JSON has the groups.
    let v = store.unfarm(["check", "--verbose", app_s]);
    for i in 0..n {
        let own = app.join(format!("lib/libown{i}.so.1"));
        assert!(
            v.stdout.contains(&format!("    - {}\n", own.display())),
            "{}",
            v.stdout
        );
    }
    println!("{}", after.stdout);
    let j = store.unfarm(["check", "--json", app_s]).json();
    let groups = j["groups"].as_array().unwrap();
    let g = groups
        .iter()
        .find(|g| g["kind"] == "missing-library")
        .unwrap();
    assert_eq!(g["files"].as_array().unwrap().len(), n);
    // --quiet: nothing but the exit status.
    let q = store.unfarm(["--quiet", "check", app_s]);
    assert_eq!((q.code, q.stdout.as_str()), (Some(0), ""));
}

/// `fix --dry-run` printed raw JSON reasons (`keep {"kind":"served",…}`)
/// and one long block per file; now plain words, each fact once, and files
/// with the same plan under one plan.
#[test]
fn dry_run_speaks_plain_words_and_groups_files() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let (farm, app) = farmed_app(&store);
    for i in 0..5 {
        Cc::gcc()
            .link_dir(farm.join("lib"))
            .lib(":libfoo.so.1")
            .search(farm.join("lib"))
            .shared_lib(
                &app.join("lib"),
                &format!("same{i}"),
                "1",
                &common::lib_calling(&format!("same{i}"), "foo"),
            );
    }
    let r = store.unfarm(["fix", "--dry-run", app.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    let out = &r.stdout;
    assert!(!out.contains("{\""), "{out}");
    assert!(out.contains("6 files with the same change:\n"), "{out}");
    assert!(
        out.contains("  … and 3 more (--verbose lists them)\n"),
        "{out}"
    );
    let change = format!(
        "  {} (farm {}) -> 1 real dir:\n",
        farm.join("lib").display(),
        farm.display()
    );
    // The program and the five libraries share one change, printed once.
    assert_eq!(out.matches(&change).count(), 1, "{out}");
    assert!(
        out.contains(
            "unfarm fix --dry-run: 6 ELF files, 6 search paths to change (1 distinct change), 0 symlinks to retarget\n"
        ),
        "{out}"
    );
    // --verbose: the plans, each entry and why, every file.
    let v = store.unfarm(["fix", "--dry-run", "--verbose", app.to_str().unwrap()]);
    assert_eq!(v.stdout.matches("  - ").count(), 6, "{}", v.stdout);
    let entry = format!(
        "  [0] {}: replace by 1 real dir: serves libfoo.so.1 (through the farm); offers 2 libraries through farm {}; cannot dlopen: only its needs (it imports no dlopen, dlmopen or dlsym, and a RUNPATH serves its own needs only)\n",
        farm.join("lib").display(),
        farm.display()
    );
    assert_eq!(v.stdout.matches(&entry).count(), 1, "{}", v.stdout);
}

/// Colour only where asked: `--color always` paints, `--color never` and
/// `NO_COLOR` (with `--color auto`) do not; a pipe is never painted.
#[test]
fn colour_follows_the_flag_and_no_color() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("not-elf");
    std::fs::write(&f, "text").unwrap();
    let run = |args: &[&str], no_color: bool| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_unfarm"));
        c.args(args).arg("ldd").arg(&f).env_remove("NIX_STORE");
        if no_color {
            c.env("NO_COLOR", "1");
        } else {
            c.env_remove("NO_COLOR");
        }
        String::from_utf8(c.output().unwrap().stderr).unwrap()
    };
    assert!(run(&["--color", "always"], false).contains("\x1b["));
    assert!(!run(&["--color", "never"], false).contains("\x1b["));
    assert!(
        !run(&[], false).contains("\x1b["),
        "a pipe is not a terminal"
    );
    assert!(!run(&["--color", "auto"], true).contains("\x1b["));
}

/// A truncated ELF in an output: `fix --dry-run` printed a summary of 0
/// files and `check -q` nothing; every command names it on one line.
#[test]
fn every_command_names_a_malformed_elf() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let out = store.output("bad-1.0");
    let whole = Cc::gcc().shared_lib(&out.join("lib"), "whole", "1", &lib_source("whole", 1));
    let bad = out.join("lib/libtrunc.so");
    std::fs::write(&bad, &std::fs::read(&whole).unwrap()[..100]).unwrap();
    let line = format!("unfarm: {}: malformed ELF: ", bad.display());
    let bad_s = bad.to_str().unwrap();
    for args in [
        &["check", bad_s][..],
        &["--quiet", "check", bad_s],
        &["check", "--json", bad_s],
        &["fix", "--dry-run", bad_s],
        &["--quiet", "fix", "--dry-run", bad_s],
        &["fix", bad_s],
        &["ldd", bad_s],
    ] {
        let r = store.unfarm(args);
        assert_eq!(r.code, Some(1), "{args:?}: {r:#?}");
        let named: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with(&line)).collect();
        assert_eq!(named.len(), 1, "{args:?}: {}", r.stderr);
    }
}

/// `ldd` on an empty dir printed nothing and exited 0; on a static-pie
/// only the header; a static binary is named "statically linked".
#[test]
fn ldd_says_no_elf_files_and_statically_linked() {
    common::require_tools(TOOLS);
    let t = tempfile::tempdir().unwrap();
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let r = common::unfarm(["ldd".as_ref(), empty.as_os_str()]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert_eq!(
        r.stderr,
        format!("unfarm: {}: no ELF files\n", empty.display())
    );
    let src = t.path().join("s.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let (stat, spie) = (t.path().join("static"), t.path().join("spie"));
    for (flag, exe) in [("-static", &stat), ("-static-pie", &spie)] {
        let st = std::process::Command::new("gcc")
            .arg(flag)
            .arg("-o")
            .arg(exe)
            .arg(&src)
            .status()
            .unwrap();
        assert!(st.success(), "gcc {flag}");
    }
    let r = common::unfarm(["ldd".as_ref(), stat.as_os_str()]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert_eq!(
        r.stderr,
        format!(
            "unfarm: {}: not a dynamic executable: statically linked\n",
            stat.display()
        )
    );
    let r = common::unfarm(["ldd".as_ref(), spie.as_os_str()]);
    assert!(
        r.stdout
            .contains("\n    statically linked (no needs, no interpreter)\n"),
        "{r:#?}"
    );
}

/// `--store-dir /nix/store /tmp/app` refused what `/tmp/app` with the same
/// default accepted, and the default took outputs of another store dir
/// (finding no farm in them). One rule now, default or named.
#[test]
fn the_store_dir_rule_is_the_same_default_or_named() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let (_, app) = farmed_app(&store);
    // A copy outside any store path: checked against the store dir, given
    // by name or not.
    let copy = tempfile::tempdir().unwrap();
    let bin = copy.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::copy(app.join("bin/app"), bin.join("app")).unwrap();
    let c = copy.path().to_str().unwrap();
    let named = store.unfarm(["fix", "--dry-run", c]);
    assert_eq!(named.code, Some(0), "{named:#?}");
    assert!(
        named.stdout.contains("1 search path to change"),
        "{named:#?}"
    );
    // The store's own output without naming its store dir: refused with the
    // dir to give, as with a wrong --store-dir.
    let a = app.to_str().unwrap();
    let r = common::unfarm(["check", a]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert_eq!(
        r.stderr,
        format!(
            "unfarm: {a}: in the store dir {d}, not in /nix/store (the default); give --store-dir {d}\n",
            d = store.dir().display()
        )
    );
}

/// glibc's own libraries, needed by libraries (no interpreter) on a farm
/// RUNPATH, were `missing-library` in every file and `fix` could not clear
/// them; `ldd` called the loader already loaded. A CUDA-like package (the
/// shape of bench/gen-cuda.sh, smaller): no glibc finding, and `ldd` says
/// the loading program's glibc provides them; a truly missing library is
/// one group listing its files.
#[test]
fn glibc_needs_of_libraries_are_no_missing_library() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let deps = ["cublas", "cufft", "cudnn", "nccl"];
    let mut outs = Vec::new();
    for d in deps {
        let out = store.output(&format!("cuda-dep-{d}-12.4-lib"));
        Cc::gcc().shared_lib(&out.join("lib"), d, "12", &lib_source(d, 1));
        outs.push(out);
    }
    let refs: Vec<&Path> = outs.iter().map(PathBuf::as_path).collect();
    let farm = store.farm("cuda-merged", &refs, LinkStyle::Absolute);
    let ghost_dir = store.scratch().join("ghost");
    Cc::gcc().shared_lib(&ghost_dir, "ghost", "6", &lib_source("ghost", 0));
    let jax = store.output("python3.12-jaxlib-0.4.30");
    let n = 6;
    for i in 0..n {
        let d = deps[i % deps.len()];
        Cc::gcc()
            .link_dir(farm.join("lib"))
            .lib(&format!(":lib{d}.so.12"))
            .search(farm.join("lib"))
            .arg("-Wl,--no-as-needed")
            .arg(format!("-L{}", ghost_dir.display()))
            .arg("-l:libghost.so.6")
            .arg("-lm")
            .arg("-l:libdl.so.2")
            .arg("-l:libpthread.so.0")
            .arg("/lib64/ld-linux-x86-64.so.2")
            .shared_lib(
                &jax.join("lib"),
                &format!("mod{i}"),
                "1",
                &common::lib_calling(&format!("mod{i}"), d),
            );
    }
    let lib0 = jax.join("lib/libmod0.so.1");
    let needed = common::readelf_needed(&lib0);
    for g in [
        "libc.so.6",
        "libm.so.6",
        "libdl.so.2",
        "ld-linux-x86-64.so.2",
    ] {
        assert!(needed.iter().any(|n| n == g), "{g} not in {needed:?}");
    }
    let j = store
        .unfarm(["check", "--json", jax.to_str().unwrap()])
        .json();
    let missing: Vec<&serde_json::Value> = j["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["kind"] == "missing-library")
        .collect();
    assert_eq!(missing.len(), 1, "{missing:#?}");
    assert_eq!(missing[0]["location"], "need libghost.so.6 (needed)");
    assert_eq!(missing[0]["files"].as_array().unwrap().len(), n);
    // ldd gives the same answer for the same file.
    let l = store
        .unfarm(["ldd", "--json", lib0.to_str().unwrap()])
        .json();
    for n in l["files"][0]["needs"].as_array().unwrap() {
        let want = match n["name"].as_str().unwrap() {
            "ld-linux-x86-64.so.2" => "already-loaded",
            "libc.so.6" | "libm.so.6" | "libdl.so.2" | "libpthread.so.0" => "from-process-glibc",
            "libghost.so.6" => "not-found",
            _ => "found",
        };
        assert_eq!(n["status"], want, "{n:#}");
    }
    // The text of check: no glibc name anywhere, fits a few lines.
    let t = store.unfarm(["check", jax.to_str().unwrap()]);
    for g in ["libc.so.6", "libm.so.6", "libdl.so.2", "ld-linux"] {
        assert!(!t.stdout.contains(g), "{}", t.stdout);
    }
}

/// issue 21 §3: `fix` on a store path the Nix database lists as valid
/// (here through `./result`) would corrupt the store: refused, nothing
/// written, unless `--write-registered`; `check` points at the derivation.
#[test]
fn a_registered_store_path_is_not_written() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let (_farm, app) = farmed_app(&store);
    let db = store.scratch().join("db.sqlite");
    let c = crate::closure::make_db(&db);
    crate::closure::add(&c, app.to_str().unwrap(), 1);
    drop(c);
    let result = store.scratch().join("result");
    std::os::unix::fs::symlink(&app, &result).unwrap();
    let prog = app.join("bin/app");
    let before = std::fs::read(&prog).unwrap();
    let db_arg = db.to_str().unwrap();
    let r = store.unfarm(["fix", "--db", db_arg, result.to_str().unwrap()]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:#?}");
    assert!(
        r.stderr.starts_with(&format!(
            "unfarm: {}: a registered store path",
            app.display()
        )) && r.stderr.contains("add the unfarm hook to the derivation")
            && r.stderr.contains("--write-registered"),
        "{r:#?}"
    );
    assert_eq!(
        std::fs::read(&prog).unwrap(),
        before,
        "a registered path was written"
    );
    // The dry run shows the plan and says the path will not be written.
    let r = store.unfarm([
        "fix",
        "--dry-run",
        "--system",
        "--db",
        db_arg,
        result.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert!(r.stdout.contains("RUNPATH: change"), "{r:#?}");
    assert_eq!(
        r.stderr,
        format!(
            "unfarm: {}: a registered store path: `unfarm fix` will refuse to write it (the plan is what the hook does in its derivation's build; --write-registered writes anyway)\n",
            app.display()
        ),
        "{r:#?}"
    );
    // check's advice is the derivation's, not `unfarm fix` on the store path.
    let r = store.unfarm([
        "check",
        "--system",
        "--db",
        db_arg,
        result.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert!(
        r.stdout.contains("registered in the Nix store") && !r.stdout.contains("fix: unfarm fix"),
        "{r:#?}"
    );
    // The caller knows: written, and told what it costs.
    let r = store.unfarm([
        "fix",
        "--system",
        "--write-registered",
        "--db",
        db_arg,
        result.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert!(r.stderr.contains("nix-store --verify-path"), "{r:#?}");
    assert_ne!(std::fs::read(&prog).unwrap(), before);
}

/// An output being built is not valid yet: written as before, with a
/// database that lists other paths.
#[test]
fn an_output_not_yet_registered_is_written() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let (farm, app) = farmed_app(&store);
    let db = store.scratch().join("db.sqlite");
    let c = crate::closure::make_db(&db);
    crate::closure::add(&c, farm.to_str().unwrap(), 1);
    drop(c);
    let prog = app.join("bin/app");
    let before = std::fs::read(&prog).unwrap();
    let r = store.unfarm([
        "fix",
        "--system",
        "--db",
        db.to_str().unwrap(),
        app.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert_ne!(std::fs::read(&prog).unwrap(), before);
}

/// issue 21 §2: `--dlopen` names what the package dlopen()s; only an
/// object that imports dlopen can search its RUNPATH for it, so a library
/// that never calls dlopen gets no missing-library warning for it.
#[test]
fn declared_dlopen_needs_only_for_objects_that_call_dlopen() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let foo_lib = store.output("foo-1.0-lib");
    Cc::gcc().shared_lib(&foo_lib.join("lib"), "foo", "1.0", &lib_source("foo", 1));
    let out = store.output("pkg-1.0");
    let quiet = Cc::gcc()
        .link_dir(foo_lib.join("lib"))
        .lib(":libfoo.so.1")
        .search(foo_lib.join("lib"))
        .shared_lib(
            &out.join("lib"),
            "quiet",
            "1",
            "int foo(void);\nint quiet(void) { return foo(); }\n",
        );
    let dl = Cc::gcc()
        .arg("-ldl")
        .search(foo_lib.join("lib"))
        .executable(
            &out.join("bin/dl"),
            &common::exe_dlopen("libfoo.so.1", "foo"),
        );
    let r = store.unfarm([
        "check",
        "--system",
        "--json",
        "--dlopen",
        "libnothere.so.9",
        out.to_str().unwrap(),
    ]);
    let v = r.json();
    let missing = |f: &Path| {
        v["findings"].as_array().unwrap().iter().any(|x| {
            x["kind"] == "missing-library"
                && x["file"] == f.to_str().unwrap()
                && x["location"].as_str().unwrap().contains("libnothere.so.9")
        })
    };
    assert!(missing(&dl), "{v:#}");
    assert!(!missing(&quiet), "{v:#}");
}

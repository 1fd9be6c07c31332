//! `unfarm fix --interpreter` on the command line, as a packager calls it
//! (`--interpreter "$(cat $NIX_BINTOOLS/nix-support/dynamic-linker)"`):
//! with no farm at all, the dry run in words and JSON, the run's lines, and
//! the one-line error for a bad value.

use crate::common;

use std::path::{Path, PathBuf};

use common::{Cc, LinkStyle, Store, exe_calling, lib_source};

/// A glibc output whose `lib/ld-linux-x86-64.so.2` links to the host's
/// ld.so: a store path to set, that runs.
fn glibc(store: &Store) -> PathBuf {
    let ld = store.output("glibc-2.40").join("lib/ld-linux-x86-64.so.2");
    store.symlink("/lib64/ld-linux-x86-64.so.2", &ld);
    ld
}

/// `app` with `bin/app` linking libfoo (through a farm when `farmed`, else
/// from its real dir) and `lib/libplain.so` (no interpreter).
fn app(store: &Store, farmed: bool) -> (PathBuf, PathBuf) {
    let foo_lib = store.output("foo-1.0-lib");
    Cc::gcc().shared_lib(&foo_lib.join("lib"), "foo", "1.0", &lib_source("foo", 1));
    let dir = if farmed {
        store
            .farm("env", &[&foo_lib], LinkStyle::Absolute)
            .join("lib")
    } else {
        foo_lib.join("lib")
    };
    let app = store.output("app-1.0");
    let exe = Cc::gcc()
        .link_dir(&dir)
        .lib(":libfoo.so.1")
        .search(&dir)
        .executable(&app.join("bin/app"), &exe_calling(&["foo"]));
    Cc::gcc().shared_lib(&app.join("lib"), "plain", "1", &lib_source("plain", 2));
    (app, exe)
}

fn runs(exe: &Path) {
    let r = common::run(exe, &[]);
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "1\n"), "{r:#?}");
}

#[test]
fn without_a_farm_the_interpreter_alone_is_set() {
    let s = Store::new();
    let ld = glibc(&s);
    let (app, exe) = app(&s, false);
    let before = std::fs::read(&exe).unwrap();
    let dry = s.fix_interpreter(&["--dry-run"], &ld, &app).success();
    let want = format!(
        "{}\n  interpreter: change\n  old: /lib64/ld-linux-x86-64.so.2\n  new: {}\n",
        exe.display(),
        ld.display()
    );
    assert!(dry.stdout.starts_with(&want), "{}", dry.stdout);
    assert!(
        dry.stdout.contains("0 search paths to change"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains(", 1 interpreter to set\n"),
        "{}",
        dry.stdout
    );
    let json = s
        .fix_interpreter(&["--dry-run", "--json"], &ld, &app)
        .success()
        .json();
    assert_eq!(
        json["interpreter_changes"],
        serde_json::json!([{
            "path": exe,
            "old": "/lib64/ld-linux-x86-64.so.2",
            "new": ld,
        }])
    );
    assert_eq!(
        std::fs::read(&exe).unwrap(),
        before,
        "a dry run writes nothing"
    );
    let run = s.fix_interpreter(&["-v"], &ld, &app).success();
    let line = format!(
        "changed: {} (interpreter: /lib64/ld-linux-x86-64.so.2 -> {})",
        exe.display(),
        ld.display()
    );
    assert!(run.stdout.contains(&line), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("interpreter left alone: no PT_INTERP (a shared library or static PIE)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(": 1 changed,"), "{}", run.stdout);
    runs(&exe);
    // Idempotent.
    let once = std::fs::read(&exe).unwrap();
    let again = s.fix_interpreter(&[], &ld, &app).success();
    assert!(again.stdout.contains(": 0 changed,"), "{}", again.stdout);
    assert_eq!(std::fs::read(&exe).unwrap(), once);
}

#[test]
fn with_a_farm_both_changes_are_one_result() {
    let s = Store::new();
    let ld = glibc(&s);
    let (app, exe) = app(&s, true);
    let run = s.fix_interpreter(&["--json"], &ld, &app).success().json();
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{run:#}");
    let detail = results[0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("interpreter: /lib64/ld-linux-x86-64.so.2 -> ")
            && detail.contains("; RUNPATH: "),
        "{detail}"
    );
    runs(&exe);
}

#[test]
fn a_relative_interpreter_is_one_error_line() {
    let s = Store::new();
    let (app, _) = app(&s, false);
    let r = s.unfarm(["fix", "--interpreter", "lib/ld.so", app.to_str().unwrap()]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert_eq!(
        r.stderr,
        "unfarm: lib/ld.so: --interpreter must be an absolute path\n"
    );
}

/// An executable is planned as the new interpreter will run it: a store
/// interpreter is Nix's ld.so, which falls back to its own dir, so
/// `libc.so.6` comes from the glibc output, not from the host's dirs its
/// old `/lib64/ld-linux-x86-64.so.2` would search.
#[test]
fn plans_follow_the_new_interpreter() {
    let s = Store::new();
    let ld = glibc(&s);
    std::fs::copy(
        "/lib/x86_64-linux-gnu/libc.so.6",
        ld.with_file_name("libc.so.6"),
    )
    .expect("the host's libc.so.6");
    let (app, _) = app(&s, false);
    let json = |interp: &Path| {
        s.fix_interpreter(&["--dry-run", "--json"], interp, &app)
            .success()
            .json()
    };
    let libc_before = |v: &serde_json::Value| -> String {
        let o = v["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["path"].as_str().unwrap().ends_with("/bin/app"))
            .unwrap();
        let n = o["plans"][0]["needs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == "libc.so.6")
            .unwrap();
        n["before"].as_str().unwrap_or("nothing").to_owned()
    };
    assert_eq!(
        libc_before(&json(&ld)),
        ld.with_file_name("libc.so.6").to_str().unwrap()
    );
    let host = libc_before(&json(Path::new("/lib64/ld-linux-x86-64.so.2")));
    assert!(
        host.starts_with("/usr/lib/") || host.starts_with("/lib/"),
        "{host}"
    );
}

#[test]
fn an_interpreter_that_is_not_elf_is_one_error_line() {
    let s = Store::new();
    let (app, exe) = app(&s, false);
    let before = std::fs::read(&exe).unwrap();
    let script = s.scratch().join("ld.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let r = s.fix_interpreter(&[], &script, &app);
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert_eq!(
        r.stderr,
        format!(
            "unfarm: {}: --interpreter is not an ELF file\n",
            script.display()
        )
    );
    assert_eq!(std::fs::read(&exe).unwrap(), before);
}

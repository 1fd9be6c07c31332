//! `unfarm fix` plans (default expand and `--shrink`) on fixture stores built
//! with the host gcc: the exact new RUNPATH per DESIGN.md §4, then the fix
//! itself checked against the real loader, `unfarm check`, and idempotence.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use common::{Cc, Dtags, LinkStyle, Store, exe_calling, lib_calling, lib_source};
use serde_json::Value;

const TOOLS: &[&str] = &["gcc", "readelf", "patchelf", "ar"];

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

fn args(head: &[&str], extra: &[&str], outs: &[&Path]) -> Vec<OsString> {
    let mut v: Vec<OsString> = head.iter().map(OsString::from).collect();
    v.push("--system".into());
    v.extend(extra.iter().map(OsString::from));
    v.extend(outs.iter().map(|p| p.as_os_str().to_owned()));
    v
}

/// The dry-run plan for `file` (tag RUNPATH or RPATH) under `outs`.
fn plan(store: &Store, extra: &[&str], outs: &[&Path], file: &Path) -> Value {
    let run = store.unfarm(args(&["fix", "--dry-run", "--json"], extra, outs));
    let json = run.json();
    let obj = json["objects"]
        .as_array()
        .unwrap_or_else(|| panic!("no objects: {run:#?}"))
        .iter()
        .find(|o| o["path"].as_str() == file.to_str() || o["file"].as_str() == file.to_str())
        .unwrap_or_else(|| panic!("no object {}: {json:#}", file.display()))
        .clone();
    let plans = obj["plans"].as_array().unwrap();
    assert_eq!(plans.len(), 1, "{obj:#}");
    plans[0].clone()
}

/// Assert the plan for `file` changes its search path to exactly `new`.
fn assert_plan(store: &Store, extra: &[&str], outs: &[&Path], file: &Path, tag: &str, new: &str) {
    let p = plan(store, extra, outs, file);
    assert_eq!(p["tag"], tag, "{p:#}");
    assert_eq!(p["status"], "change", "{p:#}");
    assert_eq!(p["new"].as_str(), Some(new), "{p:#}");
}

fn kinds(store: &Store, extra: &[&str], outs: &[&Path]) -> (Option<i32>, Vec<String>) {
    let run = store.unfarm(args(&["check", "--json"], extra, outs));
    let json = run.json();
    let mut k: Vec<String> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| f["kind"].as_str().unwrap().to_owned())
        .collect();
    k.sort();
    k.dedup();
    (run.code, k)
}

/// Fix `outs` and check the outcome: the program runs and prints `stdout`,
/// the loader maps the same real files, check is clean, no byte of `file`
/// names any of `gone` (hash parts), and a second fix changes nothing.
fn fix_and_verify(
    store: &Store,
    extra: &[&str],
    outs: &[&Path],
    file: &Path,
    expect_kinds: &[&str],
    gone: &[&Path],
    stdout: &str,
) {
    let before = common::ld_so_list(file, &[]).unwrap();
    let (code, k) = kinds(store, extra, outs);
    assert_eq!(code, Some(1), "check before fix");
    assert_eq!(k, expect_kinds, "finding kinds before fix");
    store.unfarm(args(&["fix"], extra, outs)).success();
    let after = common::ld_so_list(file, &[]).unwrap();
    let mut names: Vec<&String> = before.by_name.keys().collect();
    names.sort();
    assert_eq!(names.len(), after.by_name.len(), "{before:#?}\n{after:#?}");
    for n in names {
        assert!(before.real(n).is_some(), "{n} not found before");
        assert_eq!(before.real(n), after.real(n), "{n}");
    }
    let r = common::run(file, &[]).success();
    assert_eq!(r.stdout, stdout);
    let (code, k) = kinds(store, extra, outs);
    assert_eq!((code, k), (Some(0), vec![]), "check after fix");
    let bytes = std::fs::read(file).unwrap();
    for g in gone {
        let hash = &g.file_name().unwrap().to_str().unwrap()[..32];
        assert!(
            !bytes.windows(32).any(|w| w == hash.as_bytes()),
            "{} still names {hash}",
            file.display()
        );
    }
    store.unfarm(args(&["fix"], extra, outs)).success();
    assert_eq!(
        std::fs::read(file).unwrap(),
        bytes,
        "second fix changed bytes"
    );
}

/// foo-lib (libfoo.so.1.2.3) and bar-lib (libbar.so.2.0, needing libfoo)
/// plus an unused baz-lib (libbaz.so.3.0).
struct Libs {
    foo: PathBuf,
    bar: PathBuf,
    baz: PathBuf,
}

fn libs(store: &Store) -> Libs {
    let foo = store.output("foo-1.0-lib");
    let bar = store.output("bar-2.0-lib");
    let baz = store.output("baz-3.0-lib");
    Cc::gcc().shared_lib(&foo.join("lib"), "foo", "1.2.3", &lib_source("foo", 40));
    Cc::gcc()
        .link_dir(foo.join("lib"))
        .lib(":libfoo.so.1")
        .search(foo.join("lib"))
        .shared_lib(&bar.join("lib"), "bar", "2.0", &lib_calling("bar", "foo"));
    Cc::gcc().shared_lib(&baz.join("lib"), "baz", "3.0", &lib_source("baz", 7));
    Libs { foo, bar, baz }
}

/// An executable in output `name` calling foo() and bar() (prints 81).
fn app(store: &Store, name: &str, cc: Cc, libdir: &Path) -> PathBuf {
    let out = store.output(name);
    cc.link_dir(libdir)
        .lib(":libbar.so.2")
        .lib(":libfoo.so.1")
        .executable(&out.join("bin/app"), &exe_calling(&["foo", "bar"]))
}

#[test]
fn farm_entry_becomes_several_real_dirs() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let l = libs(&store);
    let farm = store.farm("env-farm", &[&l.foo, &l.bar, &l.baz], LinkStyle::Absolute);
    let fl = farm.join("lib");
    let exe = app(&store, "app-1.0", Cc::gcc().search(&fl), &fl);
    let out = exe.parent().unwrap().parent().unwrap().to_owned();
    let (foo, bar, baz) = (
        s(&l.foo.join("lib")),
        s(&l.bar.join("lib")),
        s(&l.baz.join("lib")),
    );
    assert_plan(
        &store,
        &[],
        &[&out],
        &exe,
        "RUNPATH",
        &format!("{bar}:{foo}:{baz}"),
    );
    assert_plan(
        &store,
        &["--shrink"],
        &[&out],
        &exe,
        "RUNPATH",
        &format!("{bar}:{foo}"),
    );
    fix_and_verify(
        &store,
        &[],
        &[&out],
        &exe,
        &["indirect-entry"],
        &[&farm],
        "81\n",
    );
}

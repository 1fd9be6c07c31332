//! `unfarm fix` plans (default expand and `--shrink`) on fixture stores built
//! with the host gcc: the exact new RUNPATH per docs/design.md (the
//! canonical RUNPATH), then the fix
//! itself checked against the real loader, `unfarm check`, and idempotence.

use crate::common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Cc, Dtags, LinkStyle, Store, exe_calling, lib_calling, lib_source};
use serde_json::Value;

const TOOLS: &[&str] = &["gcc", "readelf", "ar"];

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

/// Each entry's action and reason kinds, in order.
fn actions(plan: &Value) -> Vec<(String, Vec<String>)> {
    plan["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let reasons = e["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["kind"].as_str().unwrap().to_owned())
                .collect();
            (e["action"].as_str().unwrap().to_owned(), reasons)
        })
        .collect()
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

/// Prove the plan before our editor touches anything: a copy of `file` in
/// the same dir (same `$ORIGIN`) gets the planned path from patchelf, and the
/// real loader maps the same files for it and it runs the same. patchelf is
/// a full-tier tool (`cargo test` needs only Rust and gcc): without the
/// feature the fix is still checked against the loader, after our edit.
fn prove_plan_with_patchelf(
    store: &Store,
    extra: &[&str],
    outs: &[&Path],
    file: &Path,
    before: &common::Listing,
    stdout: &str,
) {
    if !cfg!(feature = "full-tests") {
        return;
    }
    common::require_tools(&["patchelf"]);
    let p = plan(store, extra, outs, file);
    let copy = file.with_file_name(format!(
        "{}.patchelf-proof",
        file.file_name().unwrap().to_str().unwrap()
    ));
    std::fs::copy(file, &copy).unwrap();
    let mut cmd = Command::new("patchelf");
    if p["tag"] == "RPATH" {
        cmd.arg("--force-rpath");
    }
    let st = cmd
        .arg("--set-rpath")
        .arg(p["new"].as_str().unwrap())
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success(), "patchelf failed");
    let listed = common::ld_so_list(&copy, &[]);
    let ran = common::run(&copy, &[]);
    std::fs::remove_file(&copy).unwrap();
    let listed = listed.unwrap();
    for n in before.by_name.keys() {
        assert_eq!(before.real(n), listed.real(n), "{n} with patchelf'd plan");
    }
    assert_eq!(ran.success().stdout, stdout, "program with patchelf'd plan");
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
    prove_plan_with_patchelf(store, extra, outs, file, &before, stdout);
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
    foo_out: PathBuf,
    bar: PathBuf,
    baz_out: PathBuf,
}

fn libs(store: &Store) -> Libs {
    let foo_out = store.output("foo-1.0-lib");
    let bar = store.output("bar-2.0-lib");
    let baz_out = store.output("baz-3.0-lib");
    Cc::gcc().shared_lib(&foo_out.join("lib"), "foo", "1.2.3", &lib_source("foo", 40));
    Cc::gcc()
        .link_dir(foo_out.join("lib"))
        .lib(":libfoo.so.1")
        .search(foo_out.join("lib"))
        .shared_lib(&bar.join("lib"), "bar", "2.0", &lib_calling("bar", "foo"));
    Cc::gcc().shared_lib(&baz_out.join("lib"), "baz", "3.0", &lib_source("baz", 7));
    Libs {
        foo_out,
        bar,
        baz_out,
    }
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
    let farm = store.farm(
        "env-farm",
        &[&l.foo_out, &l.bar, &l.baz_out],
        LinkStyle::Absolute,
    );
    let fl = farm.join("lib");
    let exe = app(&store, "app-1.0", Cc::gcc().search(&fl), &fl);
    let out = exe.parent().unwrap().parent().unwrap().to_owned();
    let (foo_out, bar) = (s(&l.foo_out.join("lib")), s(&l.bar.join("lib")));
    // The program imports no dlopen and has DT_RUNPATH: its needs' dirs
    // only, in the default mode too (baz, unused, is not brought in).
    assert_plan(
        &store,
        &[],
        &[&out],
        &exe,
        "RUNPATH",
        &format!("{bar}:{foo_out}"),
    );
    assert_plan(
        &store,
        &["--shrink"],
        &[&out],
        &exe,
        "RUNPATH",
        &format!("{bar}:{foo_out}"),
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

fn out_of(exe: &Path) -> PathBuf {
    exe.parent().unwrap().parent().unwrap().to_owned()
}

fn lib_dir(p: &Path) -> String {
    s(&p.join("lib"))
}

#[test]
fn farm_link_to_differently_named_versioned_file() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let l = libs(&store);
    // The farm links libfoo.so.1 straight at libfoo.so.1.2.3: the real dir is
    // foo's lib dir (which also holds libfoo.so.1), not the farm's.
    let farm = store.output("versioned-farm");
    store.symlink(
        l.foo_out.join("lib/libfoo.so.1.2.3"),
        farm.join("lib/libfoo.so.1"),
    );
    store.symlink(
        l.bar.join("lib/libbar.so.2.0"),
        farm.join("lib/libbar.so.2"),
    );
    let fl = farm.join("lib");
    let exe = app(&store, "app-1.0", Cc::gcc().search(&fl), &fl);
    let out = out_of(&exe);
    let want = format!("{}:{}", lib_dir(&l.bar), lib_dir(&l.foo_out));
    assert_plan(&store, &[], &[&out], &exe, "RUNPATH", &want);
    assert_plan(&store, &["--shrink"], &[&out], &exe, "RUNPATH", &want);
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

#[test]
fn nested_farm() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let l = libs(&store);
    let inner = store.farm("inner-farm", &[&l.foo_out, &l.bar], LinkStyle::Absolute);
    let outer = store.farm("outer-farm", &[&inner, &l.baz_out], LinkStyle::Absolute);
    let fl = outer.join("lib");
    let exe = app(&store, "app-1.0", Cc::gcc().search(&fl), &fl);
    let out = out_of(&exe);
    let (foo_out, bar) = (lib_dir(&l.foo_out), lib_dir(&l.bar));
    // The program imports no dlopen and has DT_RUNPATH: its needs' dirs
    // only, in the default mode too (baz, unused, is not brought in).
    assert_plan(
        &store,
        &[],
        &[&out],
        &exe,
        "RUNPATH",
        &format!("{bar}:{foo_out}"),
    );
    assert_plan(
        &store,
        &["--shrink"],
        &[&out],
        &exe,
        "RUNPATH",
        &format!("{bar}:{foo_out}"),
    );
    fix_and_verify(
        &store,
        &[],
        &[&out],
        &exe,
        &["indirect-entry"],
        &[&inner, &outer],
        "81\n",
    );
}

#[test]
fn relative_farm_links() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let l = libs(&store);
    let farm = store.farm(
        "rel-farm",
        &[&l.foo_out, &l.bar, &l.baz_out],
        LinkStyle::Relative,
    );
    let fl = farm.join("lib");
    let exe = app(&store, "app-1.0", Cc::gcc().search(&fl), &fl);
    let out = out_of(&exe);
    let (foo_out, bar) = (lib_dir(&l.foo_out), lib_dir(&l.bar));
    // The program imports no dlopen and has DT_RUNPATH: its needs' dirs
    // only, in the default mode too (baz, unused, is not brought in).
    assert_plan(
        &store,
        &[],
        &[&out],
        &exe,
        "RUNPATH",
        &format!("{bar}:{foo_out}"),
    );
    assert_plan(
        &store,
        &["--shrink"],
        &[&out],
        &exe,
        "RUNPATH",
        &format!("{bar}:{foo_out}"),
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

#[test]
fn dev_linker_name_and_static_archive_bring_nothing() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let l = libs(&store);
    let dev = store.output("foo-1.0-dev");
    let stat = store.output("foo-1.0-static");
    common::dev_link(&dev, "foo", &l.foo_out.join("lib/libfoo.so.1"));
    Cc::gcc().static_lib(&stat.join("lib"), "foo", &lib_source("foo", 40));
    // dev and static first, so their links win in the farm.
    let farm = store.farm(
        "dev-farm",
        &[&dev, &stat, &l.foo_out, &l.bar],
        LinkStyle::Absolute,
    );
    assert!(farm.join("lib/libfoo.so").exists() && farm.join("lib/libfoo.a").exists());
    let fl = farm.join("lib");
    let exe = app(&store, "app-1.0", Cc::gcc().search(&fl), &fl);
    let out = out_of(&exe);
    let want = format!("{}:{}", lib_dir(&l.bar), lib_dir(&l.foo_out));
    assert_plan(&store, &[], &[&out], &exe, "RUNPATH", &want);
    assert_plan(&store, &["--shrink"], &[&out], &exe, "RUNPATH", &want);
    fix_and_verify(
        &store,
        &[],
        &[&out],
        &exe,
        &["indirect-entry"],
        &[&farm, &dev, &stat],
        "81\n",
    );
}

#[test]
fn rpath_binary_stays_rpath() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let l = libs(&store);
    let farm = store.farm(
        "env-farm",
        &[&l.foo_out, &l.bar, &l.baz_out],
        LinkStyle::Absolute,
    );
    let fl = farm.join("lib");
    let exe = app(
        &store,
        "app-1.0",
        Cc::gcc().dtags(Dtags::Rpath).search(&fl),
        &fl,
    );
    assert_eq!(common::readelf_dynamic(&exe, "RUNPATH"), None);
    let out = out_of(&exe);
    let (foo_out, bar, baz_out) = (lib_dir(&l.foo_out), lib_dir(&l.bar), lib_dir(&l.baz_out));
    let want = format!("{bar}:{foo_out}:{baz_out}");
    assert_plan(&store, &[], &[&out], &exe, "RPATH", &want);
    assert_plan(
        &store,
        &["--shrink"],
        &[&out],
        &exe,
        "RPATH",
        &format!("{bar}:{foo_out}"),
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
    assert_eq!(common::readelf_dynamic(&exe, "RPATH"), Some(want));
    assert_eq!(common::readelf_dynamic(&exe, "RUNPATH"), None);
}

#[test]
fn origin_kept_empty_dropped_unused_kept_unless_shrink() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let l = libs(&store);
    let farm = store.farm("env-farm", &[&l.foo_out, &l.bar], LinkStyle::Absolute);
    let fl = farm.join("lib");
    let (foo_out, bar, baz_out) = (lib_dir(&l.foo_out), lib_dir(&l.bar), lib_dir(&l.baz_out));
    // Linked through the farm, with this RUNPATH (an empty entry between).
    let old = format!("$ORIGIN/../lib::{}:{baz_out}", s(&fl));
    let exe = app(&store, "app-1.0", Cc::gcc().search(&old), &fl);
    let out = out_of(&exe);
    assert_eq!(common::readelf_dynamic(&exe, "RUNPATH"), Some(old));
    assert_plan(
        &store,
        &[],
        &[&out],
        &exe,
        "RUNPATH",
        &format!("$ORIGIN/../lib:{bar}:{foo_out}:{baz_out}"),
    );
    assert_plan(
        &store,
        &["--shrink"],
        &[&out],
        &exe,
        "RUNPATH",
        &format!("$ORIGIN/../lib:{bar}:{foo_out}"),
    );
    assert_eq!(
        actions(&plan(&store, &[], &[&out], &exe)),
        [
            ("keep", vec!["origin"]),
            ("drop", vec!["insecure"]),
            (
                "replace",
                vec!["served", "served", "indirect", "cannot-dlopen"]
            ),
            ("keep", vec!["unused"]),
        ]
        .map(|(a, r)| (
            a.to_owned(),
            r.into_iter().map(str::to_owned).collect::<Vec<_>>()
        ))
    );
    assert_eq!(
        actions(&plan(&store, &["--shrink"], &[&out], &exe)),
        [
            ("keep", vec!["origin"]),
            ("drop", vec!["insecure"]),
            ("replace", vec!["served", "served", "indirect"]),
            ("drop", vec!["unused"]),
        ]
        .map(|(a, r)| (
            a.to_owned(),
            r.into_iter().map(str::to_owned).collect::<Vec<_>>()
        ))
    );
    fix_and_verify(
        &store,
        &[],
        &[&out],
        &exe,
        &["indirect-entry", "insecure-entry"],
        &[&farm],
        "81\n",
    );
}

#[test]
fn dlopen_only_library_via_literal_and_declared_soname() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let l = libs(&store);
    let farm = store.farm(
        "env-farm",
        &[&l.foo_out, &l.bar, &l.baz_out],
        LinkStyle::Absolute,
    );
    let fl = farm.join("lib");
    let out = store.output("app-1.0");
    let exe = Cc::gcc().search(&fl).arg("-ldl").executable(
        &out.join("bin/app"),
        &common::exe_dlopen("libbaz.so.3", "baz"),
    );
    let (foo_out, bar, baz_out) = (lib_dir(&l.foo_out), lib_dir(&l.bar), lib_dir(&l.baz_out));
    // Expand: the dlopen need first, then the rest the farm offers.
    assert_plan(
        &store,
        &[],
        &[&out],
        &exe,
        "RUNPATH",
        &format!("{baz_out}:{bar}:{foo_out}"),
    );
    assert_plan(&store, &["--shrink"], &[&out], &exe, "RUNPATH", &baz_out);
    assert_plan(
        &store,
        &["--shrink", "--no-dlopen-hints", "--dlopen", "libbaz.so.3"],
        &[&out],
        &exe,
        "RUNPATH",
        &baz_out,
    );
    fix_and_verify(
        &store,
        &[],
        &[&out],
        &exe,
        &["indirect-entry"],
        &[&farm],
        "7\n",
    );
}

/// A library that `dlopen()`s whatever name its caller hands it; no search
/// list of its own.
const LOADER_SOURCE: &str = r#"#include <dlfcn.h>
int load(const char *name, const char *sym) {
  void *h = dlopen(name, RTLD_NOW);
  if (!h) return -1000;
  int (*f)(void) = (int (*)(void))dlsym(h, sym);
  return f ? f() : -2000;
}
"#;

/// A soname literal is a dlopen need of the object holding it only where
/// that object's own list can serve it. glibc's dlopen searches the caller's
/// DT_RUNPATH, so a RUNPATH program that does not import dlopen and hands
/// the name to a library that does gets nothing from its RUNPATH (the real
/// loader fails that dlopen before and after), and `--shrink` drops the dir
/// the literal names. With DT_RPATH the same literal keeps its dir: the
/// loader searches the executable's RPATH for that library's dlopen, and the
/// program loads libbaz before and after.
#[test]
fn soname_literal_counts_only_where_the_search_list_serves_it() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let l = libs(&store);
    let farm = store.farm("env-farm", &[&l.foo_out, &l.baz_out], LinkStyle::Absolute);
    let fl = farm.join("lib");
    let loader = store.output("loader-1.0-lib").join("lib");
    Cc::gcc()
        .arg("-ldl")
        .shared_lib(&loader, "loader", "1", LOADER_SOURCE);
    let src = r#"#include <stdio.h>
int foo(void); int load(const char *name, const char *sym);
int main(void) { printf("%d\n", foo() + load("libbaz.so.3", "baz")); return 0; }
"#;
    let baz = lib_dir(&l.baz_out);
    for (dtags, tag, prints, keeps_baz) in [
        (Dtags::Runpath, "RUNPATH", "-960", false),
        (Dtags::Rpath, "RPATH", "47", true),
    ] {
        let out = store.output(&format!("app-{}-1.0", tag.to_lowercase()));
        let exe = Cc::gcc()
            .link_dir(&fl)
            .lib(":libfoo.so.1")
            .link_dir(&loader)
            .lib(":libloader.so.1")
            .dtags(dtags)
            .search(&fl)
            .search(&loader)
            .executable(&out.join("bin/app"), src);
        assert_eq!(common::run(&exe, &[]).stdout.trim(), prints, "{tag} before");
        let p = plan(&store, &["--shrink"], &[&out], &exe);
        assert_eq!(p["tag"], tag, "{p:#}");
        let new = p["new"].as_str().unwrap_or_default();
        assert_eq!(new.split(':').any(|e| e == baz), keeps_baz, "{tag}: {p:#}");
        store
            .unfarm(args(&["fix", "--shrink"], &[], &[&out]))
            .success();
        assert_eq!(common::run(&exe, &[]).stdout.trim(), prints, "{tag} after");
        let after = common::readelf_dynamic(&exe, tag).unwrap_or_default();
        assert!(!after.contains("env-farm"), "{tag} after: {after}");
    }
}

#[test]
fn stub_dir_dropped_driver_dir_first() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let l = libs(&store);
    let stubs = store.output("cuda-stubs-12.4-stubs");
    let sd = stubs.join("lib/stubs");
    Cc::gcc().shared_lib(&sd, "cuda", "1", &lib_source("cuInit", 0));
    std::fs::rename(sd.join("libcuda.so.1"), sd.join("libcuda.so")).unwrap();
    let driver = store.scratch().join("opengl-driver/lib");
    Cc::gcc().shared_lib(&driver, "cuda", "1", &lib_source("cuInit", 5));
    let foo_out = l.foo_out.join("lib");
    let out = store.output("app-1.0");
    let exe = Cc::gcc()
        .link_dir(&sd)
        .link_dir(&foo_out)
        .lib("cuda")
        .lib(":libfoo.so.1")
        .search(&sd)
        .search(&foo_out)
        .search(&driver)
        .executable(&out.join("bin/app"), &exe_calling(&["cuInit", "foo"]));
    let d = s(&driver);
    let extra = ["--driver-dir", d.as_str()];
    let want = format!("{d}:{}", s(&foo_out));
    assert_plan(&store, &extra, &[&out], &exe, "RUNPATH", &want);
    let shrink = ["--shrink", "--driver-dir", d.as_str()];
    assert_plan(&store, &shrink, &[&out], &exe, "RUNPATH", &want);
    fix_and_verify(
        &store,
        &extra,
        &[&out],
        &exe,
        &["stub-entry"],
        &[&stubs],
        "45\n",
    );
}

/// C source of a program that dlopen()s `lib<stem>.so.<major>` by a name it
/// computes at run time (no soname literal in the file).
fn exe_dlopen_computed(stem: &str, major: u32, sym: &str) -> String {
    format!(
        r#"#include <dlfcn.h>
#include <stdio.h>
int main(void) {{
  char name[64];
  snprintf(name, sizeof name, "lib%s.so.%u", "{stem}", {major}u);
  void *h = dlopen(name, RTLD_NOW);
  if (!h) {{ fprintf(stderr, "%s\n", dlerror()); return 1; }}
  int (*f)(void) = (int (*)(void))dlsym(h, "{sym}");
  if (!f) {{ fprintf(stderr, "%s\n", dlerror()); return 1; }}
  printf("%d\n", f());
  return 0;
}}
"#
    )
}

#[test]
fn dlopen_by_computed_name_expand_keeps_shrink_needs_declaration() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let l = libs(&store);
    let farm = store.farm(
        "env-farm",
        &[&l.foo_out, &l.bar, &l.baz_out],
        LinkStyle::Absolute,
    );
    let fl = farm.join("lib");
    let out = store.output("app-1.0");
    let exe = Cc::gcc()
        .search(&fl)
        .arg("-ldl")
        .executable(&out.join("bin/app"), &exe_dlopen_computed("baz", 3, "baz"));
    assert!(
        !std::fs::read(&exe)
            .unwrap()
            .windows(11)
            .any(|w| w == b"libbaz.so.3")
    );
    let (foo_out, bar, baz_out) = (lib_dir(&l.foo_out), lib_dir(&l.bar), lib_dir(&l.baz_out));
    // Expand: every library the farm offers, in the farm's order.
    assert_plan(
        &store,
        &[],
        &[&out],
        &exe,
        "RUNPATH",
        &format!("{bar}:{baz_out}:{foo_out}"),
    );
    // Shrink with a declared soname keeps exactly its dir.
    assert_plan(
        &store,
        &["--shrink", "--dlopen", "libbaz.so.3"],
        &[&out],
        &exe,
        "RUNPATH",
        &baz_out,
    );
    // Shrink without one cannot see the name: the farm goes, with a warning.
    let p = plan(&store, &["--shrink"], &[&out], &exe);
    assert_eq!(p["new"], "", "{p:#}");
    let w = p["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{p:#}");
    assert!(w[0].as_str().unwrap().contains("imports dlopen"), "{p:#}");
    fix_and_verify(
        &store,
        &[],
        &[&out],
        &exe,
        &["indirect-entry"],
        &[&farm],
        "7\n",
    );
}

/// The same, where the library dlopened is over 64 KiB (read range by range)
/// and carries a RUNPATH over 4 KiB (longer than `object`'s `ReadCache`
/// reads a string): its SONAME must still be seen, so expand keeps its dir.
#[test]
fn dlopen_by_computed_name_keeps_large_library_with_long_runpath() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let foo_out = store.output("foo-1.0-lib");
    Cc::gcc().shared_lib(&foo_out.join("lib"), "foo", "1.0", &lib_source("foo", 40));
    let big_out = store.output("big-3.0-lib");
    let long: Vec<String> = (0..60)
        .map(|i| format!("/nonexistent/a-long-search-dir-{i:02}-{}", "x".repeat(40)))
        .collect();
    let long = long.join(":");
    assert!(long.len() > 4096);
    let big = Cc::gcc().search(&long).shared_lib(
        &big_out.join("lib"),
        "big",
        "3.0",
        "const char pad[200000] = {1};\nint big(void) { return 5 + pad[0]; }\n",
    );
    assert!(std::fs::metadata(&big).unwrap().len() > 64 << 10);
    assert_eq!(common::readelf_dynamic(&big, "RUNPATH"), Some(long));
    // Only SONAME links, straight at the versioned files: the name offered
    // is a library only by its SONAME.
    let farm = store.output("env-farm");
    store.symlink(
        foo_out.join("lib/libfoo.so.1.0"),
        farm.join("lib/libfoo.so.1"),
    );
    store.symlink(&big, farm.join("lib/libbig.so.3"));
    let fl = farm.join("lib");
    let out = store.output("app-1.0");
    let exe = Cc::gcc()
        .search(&fl)
        .arg("-ldl")
        .executable(&out.join("bin/app"), &exe_dlopen_computed("big", 3, "big"));
    assert_plan(
        &store,
        &[],
        &[&out],
        &exe,
        "RUNPATH",
        &format!("{}:{}", lib_dir(&big_out), lib_dir(&foo_out)),
    );
    fix_and_verify(
        &store,
        &[],
        &[&out],
        &exe,
        &["indirect-entry"],
        &[&farm],
        "6\n",
    );
}

#[test]
fn no_order_keeps_every_name_refused() {
    common::require_tools(TOOLS);
    let store = Store::new();
    // a holds libfoo.so.1 (40) and libbar.so.2 (1); b holds libbar.so.2 (2)
    // and libfoo.so.1 (50). The farm takes libfoo from a and libbar from b:
    // no order of a and b serves both as before.
    let a = store.output("a-1.0-lib");
    let b = store.output("b-1.0-lib");
    Cc::gcc().shared_lib(&a.join("lib"), "foo", "1.0", &lib_source("foo", 40));
    Cc::gcc().shared_lib(&a.join("lib"), "bar", "2.0", &lib_source("bar", 1));
    Cc::gcc().shared_lib(&b.join("lib"), "bar", "2.1", &lib_source("bar", 2));
    Cc::gcc().shared_lib(&b.join("lib"), "foo", "1.1", &lib_source("foo", 50));
    let farm = store.output("mixed-farm");
    store.symlink(a.join("lib/libfoo.so.1"), farm.join("lib/libfoo.so.1"));
    store.symlink(b.join("lib/libbar.so.2"), farm.join("lib/libbar.so.2"));
    let fl = farm.join("lib");
    let exe = app(&store, "app-1.0", Cc::gcc().search(&fl), &fl);
    assert_eq!(common::run(&exe, &[]).success().stdout, "42\n");
    let out = out_of(&exe);
    let (a, b) = (lib_dir(&a), lib_dir(&b));
    for extra in [&[][..], &["--shrink"][..]] {
        let p = plan(&store, extra, &[&out], &exe);
        assert_eq!(p["status"], "refused", "{p:#}");
        assert_eq!(
            p["new"].as_str(),
            Some(format!("{a}:{b}").as_str()),
            "{p:#}"
        );
        assert_eq!(
            p["reason"], "two libraries need opposite orders of the same dirs",
            "{p:#}"
        );
    }
    let old = common::readelf_dynamic(&exe, "RUNPATH");
    let bytes = std::fs::read(&exe).unwrap();
    let r = store.unfarm(args(&["fix"], &[], &[&out]));
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert!(r.stderr.contains("left as it was"), "{r:#?}");
    assert_eq!(std::fs::read(&exe).unwrap(), bytes, "refused fix wrote");
    assert_eq!(common::readelf_dynamic(&exe, "RUNPATH"), old);
    assert_eq!(common::run(&exe, &[]).success().stdout, "42\n");
}

#[test]
fn shrink_fix_on_nested_farm_with_origin_and_unused() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let l = libs(&store);
    let inner = store.farm("inner-farm", &[&l.foo_out], LinkStyle::Relative);
    let outer = store.farm("outer-farm", &[&inner, &l.bar], LinkStyle::Absolute);
    let fl = outer.join("lib");
    let (foo_out, bar, baz_out) = (lib_dir(&l.foo_out), lib_dir(&l.bar), lib_dir(&l.baz_out));
    let exe = app(
        &store,
        "app-1.0",
        Cc::gcc()
            .search("$ORIGIN/../lib")
            .search(&fl)
            .search(&baz_out),
        &fl,
    );
    let out = out_of(&exe);
    let shrink = ["--shrink"];
    let want = format!("$ORIGIN/../lib:{bar}:{foo_out}");
    assert_plan(&store, &shrink, &[&out], &exe, "RUNPATH", &want);
    // --keep holds the unused entry in place.
    let keep = ["--shrink", "--keep", baz_out.as_str()];
    assert_plan(
        &store,
        &keep,
        &[&out],
        &exe,
        "RUNPATH",
        &format!("{want}:{baz_out}"),
    );
    fix_and_verify(
        &store,
        &shrink,
        &[&out],
        &exe,
        &["indirect-entry"],
        &[&inner, &outer, &l.baz_out],
        "81\n",
    );
    assert_eq!(common::readelf_dynamic(&exe, "RUNPATH"), Some(want));
}

#[test]
fn farm_whose_lib_is_a_dir_link() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let l = libs(&store);
    let farm = store.output("dirlink-farm");
    store.symlink(l.foo_out.join("lib"), farm.join("lib"));
    let fl = farm.join("lib");
    let exe = Cc::gcc()
        .link_dir(&fl)
        .lib(":libfoo.so.1")
        .search(&fl)
        .executable(
            &store.output("app-1.0").join("bin/app"),
            &exe_calling(&["foo"]),
        );
    let out = out_of(&exe);
    let want = lib_dir(&l.foo_out);
    assert_plan(&store, &[], &[&out], &exe, "RUNPATH", &want);
    assert_plan(&store, &["--shrink"], &[&out], &exe, "RUNPATH", &want);
    fix_and_verify(
        &store,
        &[],
        &[&out],
        &exe,
        &["indirect-entry"],
        &[&farm],
        "40\n",
    );
}

#[test]
fn stub_library_in_farm_brings_nothing() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let l = libs(&store);
    let stubs = store.output("cuda-stubs-12.4-stubs");
    let sd = stubs.join("lib");
    Cc::gcc().shared_lib(&sd, "cuda", "1", &lib_source("cuInit", 0));
    std::fs::rename(sd.join("libcuda.so.1"), sd.join("libcuda.so")).unwrap();
    let farm = store.farm(
        "env-farm",
        &[&stubs, &l.foo_out, &l.bar],
        LinkStyle::Absolute,
    );
    let fl = farm.join("lib");
    let exe = app(&store, "app-1.0", Cc::gcc().search(&fl), &fl);
    let out = out_of(&exe);
    // The stub's libcuda.so is not a library the program loads: its output
    // appears in neither plan.
    let want = format!("{}:{}", lib_dir(&l.bar), lib_dir(&l.foo_out));
    assert_plan(&store, &[], &[&out], &exe, "RUNPATH", &want);
    assert_plan(&store, &["--shrink"], &[&out], &exe, "RUNPATH", &want);
    fix_and_verify(
        &store,
        &[],
        &[&out],
        &exe,
        &["indirect-entry"],
        &[&farm, &stubs],
        "81\n",
    );
}

#[test]
fn build_dir_and_relative_dropped_duplicate_removed_driver_first() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let l = libs(&store);
    let farm = store.farm("env-farm", &[&l.foo_out, &l.bar], LinkStyle::Absolute);
    let fl = farm.join("lib");
    let driver = store.scratch().join("opengl-driver/lib");
    Cc::gcc().shared_lib(&driver, "cuda", "1", &lib_source("cuInit", 5));
    let (foo_out, d) = (lib_dir(&l.foo_out), s(&driver));
    let old = format!("/build/source/lib:lib:{}:{foo_out}:{d}", s(&fl));
    let exe = app(&store, "app-1.0", Cc::gcc().search(&old), &fl);
    assert_eq!(common::readelf_dynamic(&exe, "RUNPATH"), Some(old));
    let out = out_of(&exe);
    let extra = ["--driver-dir", d.as_str()];
    let want = format!("{d}:{}:{foo_out}", lib_dir(&l.bar));
    // The program imports no dlopen: the farm gives it its needs' dirs
    // only, in both modes (the default says why).
    let acts = |last_but_one: &str| {
        let replace = if last_but_one == "keep" {
            vec!["served", "served", "indirect", "cannot-dlopen"]
        } else {
            vec!["served", "served", "indirect"]
        };
        [
            ("drop", vec!["build-dir"]),
            ("drop", vec!["insecure"]),
            ("replace", replace),
            (last_but_one, vec!["unused"]),
            ("keep", vec!["driver"]),
        ]
        .map(|(a, r)| {
            (
                a.to_owned(),
                r.into_iter().map(str::to_owned).collect::<Vec<_>>(),
            )
        })
        .to_vec()
    };
    let p = plan(&store, &extra, &[&out], &exe);
    assert_eq!(p["new"].as_str(), Some(want.as_str()), "{p:#}");
    assert_eq!(actions(&p), acts("keep"));
    let shrink = ["--shrink", "--driver-dir", d.as_str()];
    let p = plan(&store, &shrink, &[&out], &exe);
    assert_eq!(p["new"].as_str(), Some(want.as_str()), "{p:#}");
    assert_eq!(actions(&p), acts("drop"));
    fix_and_verify(
        &store,
        &extra,
        &[&out],
        &exe,
        &["build-dir-entry", "indirect-entry", "insecure-entry"],
        &[&farm],
        "81\n",
    );
}

#[test]
fn library_and_program_fixed_together() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let foo_out = store.output("foo-1.0-lib");
    Cc::gcc().shared_lib(&foo_out.join("lib"), "foo", "1.2.3", &lib_source("foo", 40));
    let farm = store.farm("env-farm", &[&foo_out], LinkStyle::Absolute);
    let fl = farm.join("lib");
    let bar = store.output("bar-2.0-lib");
    let barlib = Cc::gcc()
        .link_dir(&fl)
        .lib(":libfoo.so.1")
        .search(&fl)
        .shared_lib(&bar.join("lib"), "bar", "2.0", &lib_calling("bar", "foo"));
    let exe = Cc::gcc()
        .link_dir(bar.join("lib"))
        .lib(":libbar.so.2")
        .search(bar.join("lib"))
        .arg(format!("-Wl,-rpath-link,{}", s(&fl)))
        .executable(
            &store.output("app-1.0").join("bin/app"),
            &exe_calling(&["bar"]),
        );
    let out = out_of(&exe);
    let outs = [out.as_path(), bar.as_path()];
    assert_plan(&store, &[], &outs, &barlib, "RUNPATH", &lib_dir(&foo_out));
    let p = plan(&store, &[], &outs, &exe);
    assert_eq!(p["status"], "unchanged", "{p:#}");
    let (code, k) = kinds(&store, &[], &outs);
    assert_eq!((code, k), (Some(1), vec!["indirect-entry".to_owned()]));
    let before = common::ld_so_list(&exe, &[]).unwrap();
    store.unfarm(args(&["fix"], &[], &outs)).success();
    let after = common::ld_so_list(&exe, &[]).unwrap();
    for n in ["libbar.so.2", "libfoo.so.1", "libc.so.6"] {
        assert!(before.real(n).is_some(), "{n}");
        assert_eq!(before.real(n), after.real(n), "{n}");
    }
    assert_eq!(common::run(&exe, &[]).success().stdout, "41\n");
    assert_eq!(kinds(&store, &[], &outs), (Some(0), vec![]));
    assert_eq!(
        common::readelf_dynamic(&barlib, "RUNPATH"),
        Some(lib_dir(&foo_out))
    );
}

/// An RPATH program through a farm of foo-lib and bar-lib, where libbar
/// needs libfoo but has no search path of its own: the loader finds libfoo
/// for it through the program's (inherited) RPATH. Returns (store, foo-lib,
/// bar-lib, farm, program).
fn rpath_inheritance_world() -> (Store, PathBuf, PathBuf, PathBuf, PathBuf) {
    common::require_tools(TOOLS);
    let store = Store::new();
    let foo_out = store.output("foo-1.0-lib");
    Cc::gcc().shared_lib(&foo_out.join("lib"), "foo", "1.2.3", &lib_source("foo", 40));
    let bar = store.output("bar-2.0-lib");
    // libbar needs libfoo but has no search path of its own.
    Cc::gcc()
        .link_dir(foo_out.join("lib"))
        .lib(":libfoo.so.1")
        .shared_lib(&bar.join("lib"), "bar", "2.0", &lib_calling("bar", "foo"));
    let farm = store.farm("env-farm", &[&foo_out, &bar], LinkStyle::Absolute);
    let fl = farm.join("lib");
    let exe = Cc::gcc()
        .dtags(Dtags::Rpath)
        .link_dir(&fl)
        .lib(":libbar.so.2")
        .search(&fl)
        .arg(format!("-Wl,-rpath-link,{}", s(&fl)))
        .executable(
            &store.output("app-1.0").join("bin/app"),
            &exe_calling(&["bar"]),
        );
    (store, foo_out, bar, farm, exe)
}

#[test]
fn rpath_serving_a_dependency_through_inheritance_expand() {
    let (store, foo_out, bar, farm, exe) = rpath_inheritance_world();
    assert_eq!(common::run(&exe, &[]).success().stdout, "41\n");
    let out = out_of(&exe);
    // libfoo.so.1 is found for libbar through the program's inherited RPATH:
    // both modes keep foo's dir (shrink counts libbar's needs as the
    // program's, since libbar has no RUNPATH of its own).
    let want = format!("{}:{}", lib_dir(&bar), lib_dir(&foo_out));
    assert_plan(&store, &[], &[&out], &exe, "RPATH", &want);
    assert_plan(&store, &["--shrink"], &[&out], &exe, "RPATH", &want);
    fix_and_verify(
        &store,
        &[],
        &[&out],
        &exe,
        &["indirect-entry"],
        &[&farm],
        "41\n",
    );
    assert_eq!(common::readelf_dynamic(&exe, "RPATH"), Some(want));
}

#[test]
fn shrink_keeps_rpath_dir_that_only_a_dependency_uses() {
    let (store, foo_out, bar, _farm, exe) = rpath_inheritance_world();
    let out = out_of(&exe);
    // Before inheritance was modelled, --shrink planned only bar's dir and
    // the fixed program failed with "libfoo.so.1: cannot open".
    let r = store.unfarm(
        ["fix", "--system", "--shrink"]
            .into_iter()
            .map(String::from)
            .chain([s(&out)]),
    );
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert_eq!(common::run(&exe, &[]).success().stdout, "41\n");
    assert_eq!(
        common::readelf_dynamic(&exe, "RPATH"),
        Some(format!("{}:{}", lib_dir(&bar), lib_dir(&foo_out)))
    );
}

//! DT_RPATH is inherited for dlopen() too: a library without DT_RUNPATH
//! that dlopen()s a library by name searches the DT_RPATH of the objects
//! that loaded it, so `fix --shrink` must keep the dirs those dlopen()s use.

use crate::common;

use common::{Cc, Dtags, LinkStyle, Store, lib_source};

/// A library calling `dlopen(soname)` (a literal) and `sym` in it.
fn plug_source(soname: &str, sym: &str) -> String {
    format!(
        r#"#include <dlfcn.h>
int plug(void) {{
  void *h = dlopen("{soname}", RTLD_NOW);
  if (!h) return -1;
  int (*f)(void) = (int (*)(void))dlsym(h, "{sym}");
  return f ? f() : -2;
}}
"#
    )
}

#[test]
fn shrink_with_hints_keeps_an_inherited_dlopen_working() {
    common::require_tools(&["gcc"]);
    let store = Store::new();
    let cc = Cc::gcc();
    let z5 = store.output("z5-1.0-lib");
    cc.shared_lib(&z5.join("lib"), "z5", "1.0", &lib_source("z5", 5));
    let other = store.output("other-1.0-lib");
    cc.shared_lib(&other.join("lib"), "other", "1.0", &lib_source("other", 1));
    let farm = store.farm("libs-joined", &[&z5, &other], LinkStyle::Absolute);
    let out = store.output("app-1.0");
    cc.clone().arg("-ldl").shared_lib(
        &out.join("lib"),
        "plug",
        "1",
        &plug_source("libz5.so.1", "z5"),
    );
    let prog = cc
        .clone()
        .link_dir(out.join("lib"))
        .lib(":libplug.so.1")
        .dtags(Dtags::Rpath)
        .search("$ORIGIN/../lib")
        .search(farm.join("lib"))
        .executable(&out.join("bin/prog"), &common::exe_calling(&["plug"]));
    assert_eq!(common::run(&prog, &[]).success().stdout.trim(), "5");

    let check = store.unfarm([
        "check",
        "--shrink",
        "--system",
        "--json",
        out.to_str().unwrap(),
    ]);
    let needs: Vec<String> = check.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(needs.contains(&"indirect-entry".to_owned()), "{check:#?}");

    store
        .unfarm(["fix", "--shrink", "--system", out.to_str().unwrap()])
        .success();
    let rpath = common::readelf_dynamic(&prog, "RPATH").unwrap_or_default();
    assert!(
        rpath.contains(z5.to_str().unwrap()) && !rpath.contains("libs-joined"),
        "RPATH after fix --shrink: {rpath}"
    );
    let after = common::run(&prog, &[]);
    assert_eq!(after.stdout.trim(), "5", "after fix --shrink: {after:?}");
    store
        .unfarm(["check", "--shrink", "--system", out.to_str().unwrap()])
        .success();
}

//! A farm is recognised by what it is, wherever an output names it: a
//! `.pc` file, a script, a Python file, a directory symlink used through
//! `$ORIGIN`, a RUNPATH entry that climbs out of the output.

use crate::common;

use std::path::{Path, PathBuf};

use common::{Cc, LinkStyle, Store, lib_source};
use serde_json::Value;

struct World {
    store: Store,
    farm: PathBuf,
    foo: PathBuf,
    out: PathBuf,
}

fn world() -> World {
    common::require_tools(&["gcc"]);
    let store = Store::new();
    let cc = Cc::gcc();
    let foo_lib = store.output("foo-1.0-lib");
    cc.shared_lib(&foo_lib.join("lib"), "foo", "1.0", &lib_source("foo", 40));
    let dev = store.output("foo-1.0-dev");
    std::fs::create_dir_all(dev.join("include")).unwrap();
    std::fs::write(dev.join("include/foo.h"), "int foo(void);\n").unwrap();
    let farm = store.farm("deps-joined", &[&foo_lib, &dev], LinkStyle::Absolute);
    let out = store.output("app-1.0");
    World {
        store,
        farm,
        foo: foo_lib,
        out,
    }
}

fn check(w: &World) -> (Option<i32>, Vec<Value>) {
    let r = w
        .store
        .unfarm(["check", "--system", "--json", w.out.to_str().unwrap()]);
    let f = r.json()["findings"].as_array().unwrap().clone();
    (r.code, f)
}

fn of_kind<'a>(f: &'a [Value], kind: &str, file: &Path) -> Vec<&'a Value> {
    f.iter()
        .filter(|x| x["kind"] == kind && x["file"] == file.to_str().unwrap())
        .collect()
}

#[test]
fn text_files_naming_the_farm_are_errors_with_their_line() {
    let w = world();
    let pc = w.out.join("lib/pkgconfig/app.pc");
    std::fs::create_dir_all(pc.parent().unwrap()).unwrap();
    let f = w.farm.display();
    std::fs::write(&pc, format!("prefix=/x\nLibs: -L{f}/lib -lfoo\n")).unwrap();
    let script = w.out.join("bin/run");
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexport LD_LIBRARY_PATH={f}/lib\nexec app\n"),
    )
    .unwrap();
    let py = w.out.join("lib/python3/site-packages/m/_paths.py");
    std::fs::create_dir_all(py.parent().unwrap()).unwrap();
    std::fs::write(&py, format!("import os\n\n\nLIB = '{f}/lib'\n")).unwrap();
    let (code, findings) = check(&w);
    assert_eq!(code, Some(1), "{findings:#?}");
    for (file, line) in [(&pc, 2), (&script, 2), (&py, 4)] {
        let hits = of_kind(&findings, "farm-reference", file);
        assert_eq!(hits.len(), 1, "{}: {findings:#?}", file.display());
        let h = hits[0];
        assert_eq!(h["severity"], "error");
        assert!(
            h["location"]
                .as_str()
                .unwrap()
                .ends_with(&format!("line {line}")),
            "{h}"
        );
        assert_eq!(h["farms"][0], w.farm.to_str().unwrap(), "{h}");
    }
    // Allowed on purpose: information, exit 0.
    let r = w.store.unfarm([
        "check",
        "--system",
        "--allow",
        "deps-joined",
        w.out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(0), "{r:#?}");
}

#[test]
fn a_store_path_that_is_no_farm_is_not_reported() {
    let w = world();
    let pc = w.out.join("lib/pkgconfig/app.pc");
    std::fs::create_dir_all(pc.parent().unwrap()).unwrap();
    std::fs::write(&pc, format!("Libs: -L{}/lib -lfoo\n", w.foo.display())).unwrap();
    let (code, findings) = check(&w);
    assert_eq!(code, Some(0), "{findings:#?}");
}

#[test]
fn a_directory_symlink_into_the_farm_is_found_and_fixed() {
    let w = world();
    // lib/deps -> $FARM/lib, used by RUNPATH $ORIGIN/../lib/deps.
    w.store.symlink(w.farm.join("lib"), w.out.join("lib/deps"));
    let prog = Cc::gcc()
        .link_dir(w.farm.join("lib"))
        .lib(":libfoo.so.1")
        .search("$ORIGIN/../lib/deps")
        .executable(&w.out.join("bin/app"), &common::exe_calling(&["foo"]));
    assert_eq!(common::run(&prog, &[]).success().stdout.trim(), "40");
    let (code, findings) = check(&w);
    assert_eq!(code, Some(1), "{findings:#?}");
    let link = w.out.join("lib/deps");
    assert_eq!(
        of_kind(&findings, "symlink-into-farm", &link).len(),
        1,
        "{findings:#?}"
    );
    w.store
        .unfarm(["fix", "--system", w.out.to_str().unwrap()])
        .success();
    assert_eq!(common::run(&prog, &[]).success().stdout.trim(), "40");
    let (code, findings) = check(&w);
    assert_eq!(code, Some(0), "after fix: {findings:#?}");
    assert!(
        !std::fs::read_link(&link).unwrap().starts_with(&w.farm),
        "the link still points into the farm"
    );
}

#[test]
fn a_runpath_climbing_into_the_farm_is_found_and_fixed() {
    let w = world();
    let farm_name = w.farm.file_name().unwrap().to_str().unwrap();
    let prog = Cc::gcc()
        .link_dir(w.farm.join("lib"))
        .lib(":libfoo.so.1")
        .search(format!("$ORIGIN/../../{farm_name}/lib"))
        .executable(&w.out.join("bin/app"), &common::exe_calling(&["foo"]));
    assert_eq!(common::run(&prog, &[]).success().stdout.trim(), "40");
    let (code, findings) = check(&w);
    assert_eq!(code, Some(1), "{findings:#?}");
    assert!(
        findings
            .iter()
            .any(|f| f["file"] == prog.to_str().unwrap() && f["severity"] == "error"),
        "{findings:#?}"
    );
    w.store
        .unfarm(["fix", "--system", w.out.to_str().unwrap()])
        .success();
    assert_eq!(common::run(&prog, &[]).success().stdout.trim(), "40");
    let rp = common::readelf_dynamic(&prog, "RUNPATH").unwrap_or_default();
    assert!(!rp.contains(farm_name), "{rp}");
    let (code, findings) = check(&w);
    assert_eq!(code, Some(0), "after fix: {findings:#?}");
}

#[test]
fn a_debug_info_file_is_left_alone_but_its_farm_reference_is_reported() {
    let w = world();
    // Compiled with -g against the farm's headers: the DWARF names the farm.
    let prog = Cc::gcc()
        .arg("-g")
        .arg(format!("-I{}/include", w.farm.display()))
        .link_dir(w.foo.join("lib"))
        .lib(":libfoo.so.1")
        .search(w.foo.join("lib"))
        .executable(
            &w.store.scratch().join("app"),
            "#include <foo.h>\n#include <stdio.h>\nint main(void) { printf(\"%d\\n\", foo()); return 0; }\n",
        );
    let dbg = w.out.join("lib/debug/.build-id/ab/cdef.debug");
    std::fs::create_dir_all(dbg.parent().unwrap()).unwrap();
    // Plain DWARF names the farm; compressed, its bytes do not (Nix's
    // scanner cannot see it either). Neither is unreadable or edited.
    for (flags, names_farm) in [
        (&["--only-keep-debug"][..], true),
        (
            &["--only-keep-debug", "--compress-debug-sections"][..],
            false,
        ),
    ] {
        let st = std::process::Command::new("objcopy")
            .args(flags)
            .arg(&prog)
            .arg(&dbg)
            .status()
            .unwrap();
        assert!(st.success());
        let before = std::fs::read(&dbg).unwrap();
        let (code, findings) = check(&w);
        assert_eq!(code, Some(if names_farm { 1 } else { 0 }), "{findings:#?}");
        assert!(
            findings.iter().all(|f| f["kind"] != "unreadable"),
            "{findings:#?}"
        );
        assert_eq!(
            !of_kind(&findings, "farm-reference", &dbg).is_empty(),
            names_farm,
            "{findings:#?}"
        );
        w.store
            .unfarm(["fix", "--system", w.out.to_str().unwrap()])
            .success();
        assert_eq!(
            std::fs::read(&dbg).unwrap(),
            before,
            "fix changed a debug file"
        );
    }
}

#[test]
fn a_kept_climbing_entry_names_the_farm_as_info() {
    // `--keep` is the packager's decision (issue 21 §2): the kept entry's
    // bytes still name the farm, reported as a note that fails nothing.
    let w = world();
    let farm_name = w.farm.file_name().unwrap().to_str().unwrap();
    let entry = format!("$ORIGIN/../../{farm_name}/lib");
    let prog = Cc::gcc()
        .link_dir(w.farm.join("lib"))
        .lib(":libfoo.so.1")
        .search(&entry)
        .executable(&w.out.join("bin/app"), &common::exe_calling(&["foo"]));
    let out = w.out.to_str().unwrap();
    let r = w
        .store
        .unfarm(["check", "--system", "--json", "--keep", &entry, out]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    let findings = r.json()["findings"].as_array().unwrap().clone();
    let refs = of_kind(&findings, "farm-reference", &prog);
    assert!(
        !refs.is_empty() && refs.iter().all(|f| f["severity"] == "info"),
        "{findings:#?}"
    );
    // Without the keep, the same entry is planned away and check fails.
    let r = w.store.unfarm(["check", "--system", out]);
    assert_eq!(r.code, Some(1), "{r:#?}");
}

#[test]
fn a_farm_named_by_its_hash_alone_is_found_as_nix_would() {
    // No store dir before it: a relative path in a script. Nix's scanner
    // looks for hash parts only, so the farm is a reference all the same.
    let w = world();
    let farm_name = w.farm.file_name().unwrap().to_str().unwrap();
    let script = w.out.join("bin/run");
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    std::fs::write(
        &script,
        format!("#!/bin/sh\nd=$(dirname \"$0\")/../../{farm_name}/lib\n"),
    )
    .unwrap();
    let (code, findings) = check(&w);
    assert_eq!(code, Some(1), "{findings:#?}");
    let hits = of_kind(&findings, "farm-reference", &script);
    assert_eq!(hits.len(), 1, "{findings:#?}");
    assert!(hits[0]["location"].as_str().unwrap().ends_with("line 2"));
}

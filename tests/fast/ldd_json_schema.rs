//! Pins the `unfarm ldd --json` schema (documented in docs/ldd-json.md):
//! top-level, per-file, per-need, entry, hop and tried keys, and the value
//! sets of `status`, `source.kind` and `tried[].outcome`. A change here is a
//! change for every consumer: update docs/ldd-json.md with it.

use crate::common;

use std::collections::BTreeSet;

use common::{Cc, LinkStyle, Store, exe_calling, lib_calling, lib_source};
use serde_json::Value;

use common::{json_keys as keys, str_set as set};

/// Every need in the tree, depth first.
fn all_needs(needs: &Value, out: &mut Vec<Value>) {
    for n in needs.as_array().unwrap() {
        out.push(n.clone());
        all_needs(&n["needs"], out);
    }
}

#[test]
fn ldd_json_schema_is_stable() {
    common::require_tools(&["gcc", "readelf", "ar"]);
    let store = Store::new();
    // found (through a farm, and via RPATH of a loader), already-loaded,
    // not-found, and error (a symlink loop), with -r.
    let foo = store.output("foo-1.0-lib");
    Cc::gcc().shared_lib(&foo.join("lib"), "foo", "1.0", &lib_source("foo", 1));
    let farm = store.farm("joined", &[&foo], LinkStyle::Absolute);
    let looped = store.output("looped");
    store.symlink("libloop.so.1", looped.join("lib/libloop.so.1"));
    let loop_lib = store.output("loop-lib");
    Cc::gcc().shared_lib(&loop_lib.join("lib"), "loop", "1", &lib_source("lp", 1));
    let bar = store.output("bar-1.0-lib");
    Cc::gcc()
        .link_dir(foo.join("lib"))
        .lib(":libfoo.so.1")
        .shared_lib(&bar.join("lib"), "bar", "1.0", &lib_calling("bar", "foo"));
    // A library linked, then garbage-collected: not found.
    let gone = store.output("gone-1-lib");
    Cc::gcc().shared_lib(&gone.join("lib"), "gone", "1", &lib_source("gn", 1));
    let exe = Cc::gcc()
        .arg(gone.join("lib/libgone.so.1"))
        .link_dir(farm.join("lib"))
        .link_dir(bar.join("lib"))
        .lib(":libbar.so.1")
        .lib(":libfoo.so.1")
        .arg(loop_lib.join("lib/libloop.so.1"))
        .search(farm.join("lib"))
        .search(bar.join("lib"))
        .search(looped.join("lib"))
        .search(store.path_of("missing").join("lib"))
        .dtags(common::Dtags::Rpath)
        .executable(
            &store.output("app").join("bin/app"),
            &exe_calling(&["foo", "bar", "lp", "gn"]),
        );
    std::fs::remove_dir_all(&gone).unwrap();
    let run = store.unfarm([
        "ldd".as_ref(),
        "--system".as_ref(),
        "-r".as_ref(),
        "--json".as_ref(),
        exe.as_os_str(),
    ]);
    assert_eq!(run.code, Some(1), "a need in error exits 1");
    let json = run.json();

    assert_eq!(keys(&json), set(&["files", "errors"]));
    let files = json["files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    let f = &files[0];
    assert_eq!(
        keys(f),
        set(&[
            "path",
            "class",
            "byte_order",
            "machine",
            "object_type",
            "interpreter",
            "soname",
            "runpath",
            "rpath",
            "nodeflib",
            "loader",
            "needs",
            "computed",
        ])
    );
    assert_eq!(f["computed"], serde_json::json!([]), "no recogniser fires");
    assert_eq!(f["loader"], "host", "--system");
    assert_eq!(f["class"], "elf64");
    assert_eq!(f["byte_order"], "little");
    assert_eq!(f["machine"], "x86_64");
    assert!(["exec", "dyn"].contains(&f["object_type"].as_str().unwrap()));

    let mut needs = Vec::new();
    all_needs(&f["needs"], &mut needs);
    let need_keys = set(&[
        "name", "status", "entry", "path", "hops", "real", "error", "tried", "needs",
    ]);
    let statuses = set(&[
        "found",
        "already-loaded",
        "from-process-glibc",
        "not-found",
        "error",
    ]);
    let kinds = set(&[
        "rpath",
        "ld-library-path",
        "runpath",
        "ld-so-cache",
        "default",
    ]);
    let outcomes = set(&["missing", "wrong class or machine (skipped)", "fatal"]);
    let mut seen_status = BTreeSet::new();
    let mut seen_kind = BTreeSet::new();
    for n in &needs {
        assert_eq!(keys(n), need_keys, "{n:#}");
        let status = n["status"].as_str().unwrap();
        assert!(statuses.contains(status), "status {status}");
        seen_status.insert(status.to_owned());
        if let Some(e) = n["entry"].as_object() {
            let e = Value::Object(e.clone());
            assert_eq!(keys(&e), set(&["source", "index", "text", "dir"]));
            let kind = e["source"]["kind"].as_str().unwrap();
            assert!(kinds.contains(kind), "kind {kind}");
            let want = if kind == "rpath" {
                set(&["kind", "owner", "depth"])
            } else {
                set(&["kind"])
            };
            assert_eq!(keys(&e["source"]), want);
            seen_kind.insert(kind.to_owned());
        }
        for h in n["hops"].as_array().unwrap() {
            assert_eq!(keys(h), set(&["link", "target", "cross_path"]));
        }
        for t in n["tried"].as_array().unwrap() {
            assert_eq!(keys(t), set(&["path", "source", "index", "outcome"]));
            assert!(outcomes.contains(t["outcome"].as_str().unwrap()), "{t}");
        }
    }
    // A library on its own under the Nix loader: glibc's libraries come
    // from the loading program's glibc.
    let m = store.output("m-1-lib");
    let m = Cc::gcc().arg("-Wl,--no-as-needed").arg("-lm").shared_lib(
        &m.join("lib"),
        "m1",
        "1",
        &lib_source("m1", 1),
    );
    let lib = store.unfarm(["ldd".as_ref(), "--json".as_ref(), m.as_os_str()]);
    assert_eq!(lib.code, Some(0), "{lib:#?}");
    let lib = lib.json();
    assert_eq!(lib["files"][0]["loader"], "nix");
    for n in lib["files"][0]["needs"].as_array().unwrap() {
        assert_eq!(keys(n), need_keys);
        seen_status.insert(n["status"].as_str().unwrap().to_owned());
    }
    // The fixture exercises every status, so none of the above is vacuous.
    assert_eq!(
        seen_status,
        statuses.iter().map(|s| s.to_string()).collect(),
        "{json:#}"
    );
    assert!(seen_kind.contains("rpath") && seen_kind.contains("ld-so-cache"));
    assert!(needs.iter().any(|n| {
        n["hops"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["cross_path"] == true)
    }));
}

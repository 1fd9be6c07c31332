//! Pins the `unfarm check --json`, `fix --dry-run --json` and `fix --json` schemas
//! (documented in docs/check-json.md). A change here is a change for every
//! consumer: update the doc with it.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Cc, Dtags, LinkStyle, Store, exe_calling, lib_source};

use common::{json_keys as keys, str_set as set};

#[test]
fn check_and_plan_json_schemas_are_stable() {
    common::require_tools(&["gcc", "readelf", "ar"]);
    let store = Store::new();
    let foo = store.output("foo-1.0-lib");
    Cc::gcc().shared_lib(&foo.join("lib"), "foo", "1.0", &lib_source("foo", 1));
    let stubs = store.output("cuda-stubs");
    Cc::gcc().shared_lib(&stubs.join("lib/stubs"), "cuda", "1", &lib_source("cu", 1));
    let farm = store.farm("joined", &[&foo], LinkStyle::Absolute);
    let app = store.output("app-1.0");
    let exe = Cc::gcc()
        .dtags(Dtags::Runpath)
        .link_dir(farm.join("lib"))
        .lib(":libfoo.so.1")
        .search(farm.join("lib"))
        .search(stubs.join("lib/stubs"))
        .search("")
        .executable(&app.join("bin/app"), &exe_calling(&["foo"]));
    // A text file naming the farm, and a symlink through it.
    std::fs::write(app.join("env.sh"), format!("export P={}\n", farm.display())).unwrap();
    store.symlink(farm.join("lib/libfoo.so.1"), app.join("libfoo-link.so.1"));

    let run = store.unfarm([
        "check".as_ref(),
        "--json".as_ref(),
        "--system".as_ref(),
        app.as_os_str(),
    ]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    let v = run.json();
    assert_eq!(keys(&v), set(&["findings", "groups", "summary", "closure"]));
    for g in v["groups"].as_array().unwrap() {
        assert_eq!(
            keys(g),
            set(&[
                "kind",
                "severity",
                "location",
                "message",
                "fix",
                "files",
                "farms",
                "cost_bytes"
            ]),
            "{g:#}"
        );
    }
    assert_eq!(
        keys(&v["closure"]),
        set(&[
            "roots",
            "before",
            "after",
            "saved",
            "removed_refs",
            "added_refs"
        ])
    );
    assert!(v["closure"]["saved"].as_i64().unwrap() > 0, "{v:#}");
    assert_eq!(
        keys(&v["summary"]),
        set(&["files", "elf_objects", "errors", "warnings", "loader"])
    );
    let findings = v["findings"].as_array().unwrap();
    let kinds: BTreeSet<&str> = findings
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        set(&[
            "indirect-entry",
            "stub-entry",
            "insecure-entry",
            "symlink-into-farm",
            "farm-reference",
        ]),
        "{v:#}"
    );
    for f in findings {
        let base = [
            "kind",
            "severity",
            "file",
            "location",
            "message",
            "fix",
            "cost_bytes",
        ];
        let farm_kinds = ["indirect-entry", "symlink-into-farm", "farm-reference"];
        let mut want = set(&base);
        if farm_kinds.contains(&f["kind"].as_str().unwrap()) {
            want.insert("farms");
            assert!(f["cost_bytes"].as_u64().is_some(), "{f:#}");
        }
        assert_eq!(keys(f), want, "{f:#}");
        assert!(matches!(
            f["severity"].as_str(),
            Some("error" | "warning" | "info")
        ));
    }
    assert_eq!(v["summary"]["errors"].as_u64(), Some(findings.len() as u64));
    let text_hit = findings
        .iter()
        .find(|f| f["kind"] == "farm-reference")
        .unwrap();
    assert!(text_hit["file"].as_str().unwrap().ends_with("env.sh"));
    assert!(
        text_hit["location"].as_str().unwrap().ends_with(", line 1"),
        "{text_hit:#}"
    );

    let run = store.unfarm([
        "fix".as_ref(),
        "--dry-run".as_ref(),
        "--json".as_ref(),
        "--system".as_ref(),
        app.as_os_str(),
    ]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let v = run.json();
    assert_eq!(
        keys(&v),
        set(&[
            "roots",
            "objects",
            "farm_links",
            "special_files",
            "link_loops",
            "files_scanned",
            "errors",
            "closure",
        ])
    );
    let obj = v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["path"].as_str() == exe.to_str())
        .unwrap();
    assert_eq!(
        keys(obj),
        set(&["path", "facts", "needs", "plans", "nlink"])
    );
    let p = &obj["plans"][0];
    assert_eq!(
        keys(p),
        set(&[
            "path",
            "tag",
            "old",
            "new",
            "entries",
            "needs",
            "status",
            "removed_store_paths",
            "offered_checked",
            "warnings",
            "added",
        ])
    );
    assert_eq!(p["tag"], "RUNPATH");
    assert_eq!(p["status"], "change");
    let actions: Vec<&str> = p["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["replace", "drop", "drop"]);
    assert_eq!(
        keys(&p["entries"][0]),
        set(&["index", "text", "dir", "action", "with", "reasons"])
    );
    let reason_kinds: BTreeSet<&str> = p["entries"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["reasons"].as_array().unwrap())
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        reason_kinds,
        set(&[
            "served",
            "indirect",
            "offers-stub",
            "cannot-dlopen",
            "stub",
            "insecure"
        ])
    );
    assert_eq!(
        keys(&p["needs"][0]),
        set(&[
            "name",
            "provenance",
            "before",
            "served_by",
            "via_farm",
            "after",
            "error",
            "was_stub",
        ])
    );
    let link = &v["farm_links"][0];
    assert_eq!(keys(link), set(&["path", "target", "farms", "canonical"]));
}

/// `unfarm fix --json` (the run, not the plan): docs/check-json.md's last
/// section.
#[test]
fn fix_json_schema_is_stable() {
    common::require_tools(&["gcc", "readelf"]);
    let store = Store::new();
    let foo = store.output("foo-1.0-lib");
    Cc::gcc().shared_lib(&foo.join("lib"), "foo", "1.0", &lib_source("foo", 1));
    let farm = store.farm("joined", &[&foo], LinkStyle::Absolute);
    let app = store.output("app-1.0");
    Cc::gcc()
        .dtags(Dtags::Runpath)
        .link_dir(farm.join("lib"))
        .lib(":libfoo.so.1")
        .search(farm.join("lib"))
        .executable(&app.join("bin/app"), &exe_calling(&["foo"]));
    store.symlink(farm.join("lib/libfoo.so.1"), app.join("libfoo-link.so.1"));

    let run = store.unfarm([
        "fix".as_ref(),
        "--json".as_ref(),
        "--system".as_ref(),
        app.as_os_str(),
    ]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let v = run.json();
    assert_eq!(
        keys(&v),
        set(&[
            "files_scanned",
            "elf_files",
            "changed",
            "failed",
            "symlinks_retargeted",
            "store_path_bytes_removed",
            "results",
        ])
    );
    assert_eq!(v["changed"], 1, "{v:#}");
    assert_eq!(v["symlinks_retargeted"], 1, "{v:#}");
    let statuses: BTreeSet<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, set(&["changed", "retargeted"]), "{v:#}");
    for r in v["results"].as_array().unwrap() {
        assert_eq!(
            keys(r),
            set(&[
                "path",
                "status",
                "detail",
                "store_path_bytes_removed",
                "bytes_written",
                "hard_links",
            ]),
            "{r:#}"
        );
    }
}

/// Every finding kind is documented, in the JSON schema's kind list and in
/// the README's list of `check` findings.
#[test]
fn every_finding_kind_is_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/check-json.md")).unwrap();
    let kinds_line = doc
        .lines()
        .find(|l| l.starts_with("| `kind` | string | one of"))
        .expect("the kind row of docs/check-json.md");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let check_row = readme
        .lines()
        .find(|l| l.starts_with("| `unfarm check OUT...` |"))
        .expect("the check row of README.md");
    for k in unfarm::check::FindingKind::ALL {
        let quoted = format!("`{}`", k.as_str());
        assert!(
            kinds_line.contains(&quoted),
            "docs/check-json.md lacks {quoted}"
        );
        // The README leaves out kinds about files the walk could not handle.
        if ![
            "special-file",
            "symlink-loop",
            "duplicate-entry",
            "unreadable",
        ]
        .contains(&k.as_str())
        {
            assert!(
                check_row.contains(&quoted),
                "README.md's check row lacks {quoted}"
            );
        }
    }
}

//! The cost of findings and of a fix, on fixture stores built with the host
//! gcc: what `check` and `fix --dry-run` predict must equal the closure
//! measured (by `unfarm closure --scan` and by NAR sizes computed here) after
//! actually running `unfarm fix`.

use crate::common;

use std::path::{Path, PathBuf};

use common::{Cc, LinkStyle, Store, exe_calling, lib_source};
use serde_json::Value;
use unfarm::closure::nar_size;

const TOOLS: &[&str] = &["gcc", "ar"];

struct Scenario {
    store: Store,
    app: PathBuf,
    farm: PathBuf,
    foo_lib: PathBuf,
    bar_lib: PathBuf,
    dev: PathBuf,
    static_: PathBuf,
    stubs: PathBuf,
}

fn pad(path: &Path, n: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, vec![b'x'; n]).unwrap();
}

/// A farm joining foo's lib, dev (headers + a big file) and static (a big
/// `.a`) outputs, bar's lib and a stubs output; an app whose RUNPATH goes
/// through the farm and its stubs dir, and a symlink into the farm. With
/// `stray`, a text file of the app also names the farm (a `farm-reference`
/// that `fix` cannot remove, so the farm stays).
fn scenario(stray: bool) -> Scenario {
    common::require_tools(TOOLS);
    let store = Store::new();
    let cc = Cc::gcc();
    let foo_lib = store.output("foo-1.0-lib");
    let so = cc.shared_lib(&foo_lib.join("lib"), "foo", "1.0", &lib_source("foo", 40));
    let dev = store.output("foo-1.0-dev");
    common::dev_link(&dev, "foo", &common::soname_link(&so));
    std::fs::create_dir_all(dev.join("include")).unwrap();
    std::fs::write(dev.join("include/foo.h"), "int foo(void);\n").unwrap();
    pad(&dev.join("include/foo-big.h"), 300_000);
    let static_ = store.output("foo-1.0-static");
    cc.static_lib(&static_.join("lib"), "foo", &lib_source("foo", 40));
    pad(&static_.join("lib/libfoo-big.a"), 500_000);
    let bar_lib = store.output("bar-2.0-lib");
    cc.shared_lib(&bar_lib.join("lib"), "bar", "2.0", &lib_source("bar", 2));
    let stubs = store.output("cuda-1.0-stubs");
    cc.shared_lib(
        &stubs.join("lib/stubs"),
        "cuda",
        "1",
        &lib_source("cuInit", 9),
    );
    pad(&stubs.join("lib/stubs/stub-data"), 100_000);
    let farm = store.farm(
        "foo-farm",
        &[&foo_lib, &dev, &static_, &bar_lib, &stubs],
        LinkStyle::Absolute,
    );
    let app = store.output("app-1.0");
    Cc::gcc()
        .link_dir(farm.join("lib"))
        .lib("foo")
        .lib(":libbar.so.2")
        .search(farm.join("lib"))
        .search(farm.join("lib/stubs"))
        .executable(&app.join("bin/app"), &exe_calling(&["foo", "bar"]));
    store.symlink(farm.join("lib/libfoo.so.1"), app.join("lib/libfoo.so.1"));
    if stray {
        std::fs::create_dir_all(app.join("share")).unwrap();
        std::fs::write(
            app.join("share/config.txt"),
            format!("libdir={}/lib\n", farm.display()),
        )
        .unwrap();
    }
    Scenario {
        store,
        app,
        farm,
        foo_lib,
        bar_lib,
        dev,
        static_,
        stubs,
    }
}

fn measured(s: &Scenario) -> (u64, Vec<String>) {
    let out = s
        .store
        .unfarm(["closure", "--scan", "--json", s.app.to_str().unwrap()])
        .success();
    let j = out.json();
    let paths = j["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_owned())
        .collect();
    (j["total_size"].as_u64().unwrap(), paths)
}

fn dry_run(s: &Scenario) -> Value {
    let run = s.store.unfarm([
        "fix",
        "--dry-run",
        "--json",
        "--system",
        s.app.to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    run.json()["closure"].clone()
}

fn check(s: &Scenario) -> Value {
    let run = s
        .store
        .unfarm(["check", "--json", "--system", s.app.to_str().unwrap()]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    run.json()
}

fn sizes(paths: &[&Path]) -> u64 {
    paths.iter().map(|p| nar_size(p).unwrap()).sum()
}

#[test]
fn dry_run_predicts_the_closure_after_fix_exactly() {
    let s = scenario(false);
    let (before, _) = measured(&s);
    let app_before = nar_size(&s.app).unwrap();
    // Independent sum: every path of the scenario is in the closure now.
    let all = [
        &s.app, &s.farm, &s.foo_lib, &s.bar_lib, &s.dev, &s.static_, &s.stubs,
    ];
    let all: Vec<&Path> = all.iter().map(|p| p.as_path()).collect();
    assert_eq!(before, sizes(&all));

    let predicted = dry_run(&s);
    assert_eq!(predicted["before"].as_u64(), Some(before), "{predicted:#}");

    let f = check(&s);
    let costs: Vec<(String, u64)> = f["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| Some((x["kind"].as_str()?.to_owned(), x["cost_bytes"].as_u64()?)))
        .collect();
    assert!(
        costs.iter().any(|(k, _)| k == "indirect-entry")
            && costs.iter().any(|(k, _)| k == "symlink-into-farm"),
        "{f:#}"
    );
    assert_eq!(f["closure"], predicted);

    s.store
        .unfarm(["fix", "--system", s.app.to_str().unwrap()])
        .success();
    let (after, paths) = measured(&s);
    assert_eq!(predicted["after"].as_u64(), Some(after), "{predicted:#}");
    assert_eq!(
        predicted["saved"].as_i64(),
        Some(before as i64 - after as i64)
    );
    // The farm, dev, static and stubs outputs left; app, foo and bar stay.
    let app_after = nar_size(&s.app).unwrap();
    assert_eq!(
        after,
        app_after + sizes(&[s.foo_lib.as_path(), s.bar_lib.as_path()]),
        "{paths:#?}"
    );
    // Every farm finding's cost is what left the closure through the farm:
    // the measured drop, less the app's own growth (a grown ELF edit).
    let farm_cost = sizes(&[
        s.farm.as_path(),
        s.dev.as_path(),
        s.static_.as_path(),
        s.stubs.as_path(),
    ]);
    assert_eq!(farm_cost, before - after + app_after - app_before);
    for (kind, c) in &costs {
        assert_eq!(*c, farm_cost, "{kind}");
    }
    // Nothing is left to price.
    let run = s.store.unfarm([
        "fix",
        "--dry-run",
        "--json",
        "--system",
        s.app.to_str().unwrap(),
    ]);
    let c = &run.json()["closure"];
    assert_eq!(c["before"], c["after"], "{c:#}");
    assert_eq!(c["before"].as_u64(), Some(after));
}

#[test]
fn a_stray_farm_reference_keeps_the_farm_and_the_prediction_says_so() {
    let s = scenario(true);
    let (before, _) = measured(&s);
    let predicted = dry_run(&s);
    assert_eq!(predicted["before"].as_u64(), Some(before));
    // The RUNPATH and the link are fixed, the text file still names the
    // farm: nothing but the app's growth changes.
    let f = check(&s);
    let stray: Vec<&Value> = f["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["kind"] == "farm-reference")
        .collect();
    assert_eq!(stray.len(), 1, "{f:#}");
    let farm_cost = sizes(&[
        s.farm.as_path(),
        s.dev.as_path(),
        s.static_.as_path(),
        s.stubs.as_path(),
    ]);
    // Removing every reference to the farm (this one included) would free it all.
    assert_eq!(stray[0]["cost_bytes"].as_u64(), Some(farm_cost));
    s.store
        .unfarm(["fix", "--system", s.app.to_str().unwrap()])
        .success();
    let (after, paths) = measured(&s);
    assert_eq!(predicted["after"].as_u64(), Some(after), "{predicted:#}");
    assert!(paths.iter().any(|p| p.ends_with("-foo-farm")), "{paths:#?}");
}

#[test]
fn text_output_shows_costs_and_the_closure_line() {
    let s = scenario(false);
    let run = s
        .store
        .unfarm(["fix", "--dry-run", "--system", s.app.to_str().unwrap()]);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("closure: ") && l.contains(" -> ") && l.contains("saves")),
        "{run:#?}"
    );
    let run = s
        .store
        .unfarm(["check", "--system", s.app.to_str().unwrap()]);
    assert!(run.stdout.contains("    cost: "), "{run:#?}");
    assert!(run.stdout.contains("KiB ("), "{run:#?}");
    // The farm's two numbers are one story: what it keeps alive is its
    // added size in `unfarm closure` (check said only what leaves).
    let table = s
        .store
        .unfarm(["closure", "--scan", s.app.to_str().unwrap()])
        .success();
    let farm = s.farm.display().to_string();
    let row = table
        .stdout
        .lines()
        .find(|l| l.ends_with(&format!("  {farm}")))
        .unwrap_or_else(|| panic!("{}", table.stdout));
    let added: Vec<&str> = row.split_whitespace().take(2).collect();
    let keeps = format!(
        "    cost: keeps {} alive (its added size in `unfarm closure`); after the fix ",
        added.join(" ")
    );
    assert!(run.stdout.contains(&keeps), "{keeps}\n{run:#?}");
}

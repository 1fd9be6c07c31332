//! Issue 21 §1 and §5 on gcc-built outputs: an output's own directories are
//! never a farm and `$ORIGIN` is never rewritten (a library link in them
//! that goes through a farm is retargeted instead); an object that cannot
//! `dlopen()` gets the dirs of its own needs only.

use crate::common;

use std::path::{Path, PathBuf};

use common::{Cc, Dtags, LinkStyle, Store, exe_calling, exe_dlopen, lib_source};
use serde_json::Value;

/// An output `app` with `bin/p` (RUNPATH `runpath`, needing `libown.so` and
/// `libzz.so.1`), `lib/libown.so` (a real file) and
/// `lib/libzz.so.1 -> $FARM/lib/libzz.so.1`; the farm joins zz's and
/// aa's lib outputs (aa is needed by nobody).
struct Own {
    store: Store,
    out: PathBuf,
    zz: PathBuf,
    aa: PathBuf,
    farm: PathBuf,
    prog: PathBuf,
}

/// Two library outputs, `zz` (libzz.so.1) and `aa` (libaa.so.1), and a
/// farm joining them: (zz, aa, farm).
fn deps_and_farm(store: &Store) -> (PathBuf, PathBuf, PathBuf) {
    let zz = store.output("zz-1.0-lib");
    Cc::gcc().shared_lib(&zz.join("lib"), "zz", "1.0", &lib_source("zz", 30));
    let aa = store.output("aa-1.0-lib");
    Cc::gcc().shared_lib(&aa.join("lib"), "aa", "1.0", &lib_source("aa", 5));
    let farm = store.farm("deps-joined", &[&zz, &aa], LinkStyle::Absolute);
    (zz, aa, farm)
}

fn own_output(runpath: &dyn Fn(&Path, &Path) -> Vec<String>, dtags: Dtags) -> Own {
    common::require_tools(&["gcc"]);
    let store = Store::new();
    let (zz, aa, farm) = deps_and_farm(&store);
    let out = store.output("app-1.0");
    let lib = out.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    // libown.so: a real file with no version, as many packages install.
    let src = store.scratch().join("own.c");
    std::fs::write(&src, lib_source("own", 11)).unwrap();
    let st = std::process::Command::new("gcc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(lib.join("libown.so"))
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    store.symlink(farm.join("lib/libzz.so.1"), lib.join("libzz.so.1"));
    let mut cc = Cc::gcc()
        .dtags(dtags)
        .link_dir(&lib)
        .lib("own")
        .lib(":libzz.so.1");
    for e in runpath(&out, &farm) {
        cc = cc.search(e);
    }
    let prog = cc.executable(&out.join("bin/p"), &exe_calling(&["own", "zz"]));
    assert_eq!(common::run(&prog, &[]).success().stdout, "41\n");
    Own {
        store,
        out,
        zz,
        aa,
        farm,
        prog,
    }
}

fn dry_plan(store: &Store, extra: &[&str], outs: &[&Path], file: &Path) -> Value {
    let mut a: Vec<String> = vec!["fix".into(), "--dry-run".into(), "--json".into()];
    a.push("--system".into());
    a.extend(extra.iter().map(|s| s.to_string()));
    a.extend(outs.iter().map(|p| p.to_str().unwrap().to_owned()));
    let json = store.unfarm(&a).json();
    json["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["path"].as_str() == file.to_str())
        .unwrap_or_else(|| panic!("no object {}: {json:#}", file.display()))["plans"][0]
        .clone()
}

fn check_errors(store: &Store, extra: &[&str], outs: &[&Path]) -> (Option<i32>, Vec<Value>) {
    let mut a: Vec<String> = vec!["check".into(), "--json".into(), "--system".into()];
    a.extend(extra.iter().map(|s| s.to_string()));
    a.extend(outs.iter().map(|p| p.to_str().unwrap().to_owned()));
    let r = store.unfarm(&a);
    let errors = r.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .cloned()
        .collect();
    (r.code, errors)
}

fn fix(store: &Store, extra: &[&str], outs: &[&Path]) {
    let mut a: Vec<String> = vec!["fix".into(), "--system".into()];
    a.extend(extra.iter().map(|s| s.to_string()));
    a.extend(outs.iter().map(|p| p.to_str().unwrap().to_owned()));
    store.unfarm(&a).success();
}

fn runpath_of(file: &Path, dtags: Dtags) -> Option<String> {
    common::readelf_dynamic(
        file,
        match dtags {
            Dtags::Runpath => "RUNPATH",
            Dtags::Rpath => "RPATH",
        },
    )
}

/// The reproduction of issue 21 §1: the program's `$ORIGIN/../lib` served
/// `libzz.so.1` through the farm link in its own `lib/`. `fix` retargets
/// the link, leaves the program's RUNPATH byte for byte, and `check` then
/// finds no farm, in every mode.
#[test]
fn origin_entry_over_an_own_lib_with_a_farm_link_is_kept() {
    for extra in [&[][..], &["--drop-unused"], &["--shrink"]] {
        let w = own_output(&|_, _| vec!["$ORIGIN/../lib".into()], Dtags::Runpath);
        let before = common::ld_so_list(&w.prog, &[]).unwrap();
        let plan = dry_plan(&w.store, extra, &[&w.out], &w.prog);
        assert_eq!(plan["status"], "unchanged", "{extra:?}: {plan:#}");
        assert_eq!(plan["entries"][0]["action"], "keep", "{plan:#}");
        let bytes = std::fs::read(&w.prog).unwrap();
        fix(&w.store, extra, &[&w.out]);
        assert_eq!(std::fs::read(&w.prog).unwrap(), bytes, "{extra:?}");
        let link = std::fs::read_link(w.out.join("lib/libzz.so.1")).unwrap();
        assert_eq!(link, w.zz.join("lib/libzz.so.1"), "the link is retargeted");
        let after = common::ld_so_list(&w.prog, &[]).unwrap();
        for n in ["libown.so", "libzz.so.1"] {
            assert!(before.real(n).is_some(), "{n}");
            assert_eq!(before.real(n), after.real(n), "{n}");
        }
        assert_eq!(common::run(&w.prog, &[]).success().stdout, "41\n");
        let (code, errors) = check_errors(&w.store, extra, &[&w.out]);
        assert_eq!((code, &errors), (Some(0), &vec![]), "{extra:?}");
    }
}

/// The output's own lib dir spelled absolutely, or through `..` hops, is
/// not a farm either; a farm entry beside it is replaced (or, serving
/// nothing for a program that cannot dlopen, dropped), and every `$ORIGIN`
/// entry stays in its place.
#[test]
fn own_dirs_however_spelled_stay_in_their_place() {
    type Spelling = dyn Fn(&Path, &Path) -> Vec<String>;
    // The entries, and the RUNPATH `fix` must write (OUT: the output, ZZ:
    // zz's lib dir).
    let spellings: [(&Spelling, &str); 3] = [
        (&|out, _| vec![format!("{}/lib", out.display())], "OUT/lib"),
        (
            &|out, farm| {
                vec![
                    "$ORIGIN/../bin/../lib".into(),
                    format!("{}/lib", farm.display()),
                    format!("{}/bin/../lib", out.display()),
                ]
            },
            "$ORIGIN/../bin/../lib:OUT/bin/../lib",
        ),
        (
            &|_, farm| vec![format!("{}/lib", farm.display()), "$ORIGIN/../lib".into()],
            "ZZ:$ORIGIN/../lib",
        ),
    ];
    for (i, (sp, want)) in spellings.iter().enumerate() {
        for dtags in [Dtags::Runpath, Dtags::Rpath] {
            let w = own_output(*sp, dtags);
            let old = runpath_of(&w.prog, dtags).unwrap();
            fix(&w.store, &[], &[&w.out]);
            let new = runpath_of(&w.prog, dtags).unwrap();
            let origins = |l: &str| -> Vec<String> {
                l.split(':')
                    .filter(|e| e.starts_with('$'))
                    .map(str::to_owned)
                    .collect()
            };
            assert_eq!(origins(&new), origins(&old), "spelling {i} {dtags:?}");
            assert!(!new.contains(w.farm.to_str().unwrap()), "{new}");
            if dtags == Dtags::Runpath {
                let want = want
                    .replace("OUT", w.out.to_str().unwrap())
                    .replace("ZZ", w.zz.join("lib").to_str().unwrap());
                assert_eq!(new, want, "spelling {i}: {old}");
            } else if old.contains(w.farm.to_str().unwrap()) {
                // RPATH is inherited: the farm's libraries stay offered.
                assert!(new.contains(w.aa.to_str().unwrap()), "{old} -> {new}");
            } else {
                assert_eq!(new, old);
            }
            // `$ORIGIN` first stays first: nothing moved ahead of it.
            if old.starts_with('$') {
                assert_eq!(new.split(':').next(), old.split(':').next());
            }
            assert_eq!(common::run(&w.prog, &[]).success().stdout, "41\n");
            let (code, errors) = check_errors(&w.store, &[], &[&w.out]);
            assert_eq!(
                (code, &errors),
                (Some(0), &vec![]),
                "spelling {i} {dtags:?}"
            );
        }
    }
}

/// A sibling output given in the same run (the hook passes out, lib, bin
/// together) is a real output, not a farm, even when its `lib/` holds a
/// link into a farm.
#[test]
fn a_sibling_output_of_the_same_run_is_not_a_farm() {
    let w = own_output(&|_, _| vec!["$ORIGIN/../lib".into()], Dtags::Runpath);
    // A second output `bin` whose program names `out`'s lib dir absolutely.
    let bin = w.store.output("app-1.0-bin");
    let lib = w.out.join("lib");
    let prog = Cc::gcc()
        .link_dir(&lib)
        .lib("own")
        .lib(":libzz.so.1")
        .search(&lib)
        .executable(&bin.join("bin/q"), &exe_calling(&["own", "zz"]));
    let old = runpath_of(&prog, Dtags::Runpath).unwrap();
    let plan = dry_plan(&w.store, &[], &[&w.out, &bin], &prog);
    assert_eq!(plan["status"], "unchanged", "{plan:#}");
    let reasons: Vec<&str> = plan["entries"][0]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["served", "served", "own-output"], "{plan:#}");
    fix(&w.store, &[], &[&w.out, &bin]);
    assert_eq!(runpath_of(&prog, Dtags::Runpath).unwrap(), old);
    assert_eq!(common::run(&prog, &[]).success().stdout, "41\n");
    let (code, errors) = check_errors(&w.store, &[], &[&w.out, &bin]);
    assert_eq!((code, &errors), (Some(0), &vec![]));
}

/// Issue 21 §5: a program with DT_RUNPATH that imports no `dlopen` gets
/// only the real dirs of its needs from a farm, in the default mode too;
/// one that imports `dlopen` (or whose list is the inherited DT_RPATH)
/// keeps every library the farm offered.
#[test]
fn only_an_object_that_can_dlopen_gets_the_whole_farm() {
    common::require_tools(&["gcc"]);
    let store = Store::new();
    let (zz, aa, farm) = deps_and_farm(&store);
    let fl = farm.join("lib");
    let out = store.output("app-1.0");
    let plain = Cc::gcc()
        .link_dir(&fl)
        .lib(":libzz.so.1")
        .search(&fl)
        .executable(&out.join("bin/plain"), &exe_calling(&["zz"]));
    let rpath = Cc::gcc()
        .dtags(Dtags::Rpath)
        .link_dir(&fl)
        .lib(":libzz.so.1")
        .search(&fl)
        .executable(&out.join("bin/rpath"), &exe_calling(&["zz"]));
    let opener = Cc::gcc()
        .link_dir(&fl)
        .lib(":libzz.so.1")
        .search(&fl)
        .arg("-ldl")
        .executable(&out.join("bin/opener"), &exe_dlopen("libaa.so.1", "aa"));
    assert_eq!(common::run(&opener, &[]).success().stdout, "5\n");
    let (z, a) = (zz.join("lib"), aa.join("lib"));
    let both = format!("{}:{}", a.display(), z.display());
    let both_rev = format!("{}:{}", z.display(), a.display());
    let p = dry_plan(&store, &[], &[&out], &plain);
    assert_eq!(p["new"].as_str(), Some(z.to_str().unwrap()), "{p:#}");
    let reasons: Vec<&str> = p["entries"][0]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"cannot-dlopen"), "{p:#}");
    for f in [&rpath, &opener] {
        let p = dry_plan(&store, &[], &[&out], f);
        let new = p["new"].as_str().unwrap();
        assert!(new == both || new == both_rev, "{}: {p:#}", f.display());
    }
    let text = store.unfarm(["fix", "--dry-run", "-v", "--system", out.to_str().unwrap()]);
    assert!(
        text.stdout.contains("cannot dlopen: only its needs"),
        "{}",
        text.stdout
    );
    fix(&store, &[], &[&out]);
    assert_eq!(common::run(&plain, &[]).success().stdout, "30\n");
    assert_eq!(common::run(&opener, &[]).success().stdout, "5\n");
    let (code, errors) = check_errors(&store, &[], &[&out]);
    assert_eq!((code, &errors), (Some(0), &vec![]));
}

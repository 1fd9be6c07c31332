//! `fix --libs DIR...` (issue 23 §1) on gcc-built prebuilt-style trees:
//! programs and libraries with no search path, or a pip-style
//! `$ORIGIN/../nvidia/x/lib` that does not exist in a Nix layout; the
//! inputs' `lib` dirs as `--libs`, among them a farm, a `-dev` dir and a
//! stub dir that must never be used. Each test checks the planned lists
//! exactly, then runs the programs under the real loader.

use crate::common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use common::{Cc, Dtags, LinkStyle, Run, Store, exe_calling, lib_calling, lib_source};

const TOOLS: &[&str] = &["gcc", "readelf"];

fn fix(store: &Store, flags: &[&str], out: &Path, libs: &[&Path]) -> Run {
    let mut a: Vec<OsString> = ["fix", "--system"].iter().map(OsString::from).collect();
    a.extend(flags.iter().map(OsString::from));
    a.push(out.as_os_str().to_owned());
    if !libs.is_empty() {
        a.push("--libs".into());
        a.extend(libs.iter().map(|l| l.as_os_str().to_owned()));
    }
    store.unfarm(a)
}

fn runpath(file: &Path) -> Option<String> {
    common::readelf_dynamic(file, "RUNPATH")
}

fn rpath(file: &Path) -> Option<String> {
    common::readelf_dynamic(file, "RPATH")
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

fn ran(exe: &Path) -> String {
    let r = common::run(exe, &[]);
    assert_eq!(r.code, Some(0), "{}: {r:#?}", exe.display());
    r.stdout
}

/// The inputs of a prebuilt package: two `-lib` outputs, a `-dev` output
/// holding a copy of one library, a stub dir offering `libbar.so.2`, and
/// a farm joining both `-lib` outputs.
struct Inputs {
    libfoo: PathBuf,
    bar: PathBuf,
    dev: PathBuf,
    stubs: PathBuf,
    farm: PathBuf,
}

fn inputs(store: &Store) -> Inputs {
    let libfoo = store.output("foo-1.0-lib").join("lib");
    Cc::gcc().shared_lib(&libfoo, "foo", "1.0", &lib_source("foo", 1));
    let bar = store.output("bar-2.0-lib").join("lib");
    Cc::gcc().shared_lib(&bar, "bar", "2.0", &lib_source("bar", 20));
    let dev = store.output("bar-2.0-dev").join("lib");
    Cc::gcc().shared_lib(&dev, "bar", "2.0", &lib_source("bar", 666));
    let stubs = store.output("fakecuda-1.0").join("lib/stubs");
    Cc::gcc().shared_lib(&stubs, "bar", "2.0", &lib_source("bar", 777));
    let farm = store
        .farm(
            "env",
            &[libfoo.parent().unwrap(), bar.parent().unwrap()],
            LinkStyle::Absolute,
        )
        .join("lib");
    Inputs {
        libfoo,
        bar,
        dev,
        stubs,
        farm,
    }
}

/// A prebuilt package: `bin/app` (needs libfoo, libbar and the package's
/// own libown) and `lib/libown.so.1` (needs libfoo), neither with a
/// search path, linked against copies the package no longer has.
fn prebuilt(store: &Store, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let build = store.scratch().join(format!("{name}-build"));
    Cc::gcc().shared_lib(&build, "foo", "1.0", &lib_source("foo", 0));
    Cc::gcc().shared_lib(&build, "bar", "2.0", &lib_source("bar", 0));
    let out = store.output(name);
    let own = Cc::gcc().link_dir(&build).lib(":libfoo.so.1").shared_lib(
        &out.join("lib"),
        "own",
        "1.0",
        &lib_calling("own", "foo"),
    );
    let app = Cc::gcc()
        .link_dir(&build)
        .link_dir(out.join("lib"))
        .lib(":libfoo.so.1")
        .lib(":libbar.so.2")
        .lib(":libown.so.1")
        .executable(&out.join("bin/app"), &exe_calling(&["foo", "bar", "own"]));
    (out, app, own)
}

#[test]
fn prebuilt_tree_gets_exactly_the_dirs_its_needs_use() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let i = inputs(&store);
    let (out, app, own) = prebuilt(&store, "pkg-1.0");
    assert_eq!(runpath(&app), None);
    // The farm, the -dev dir and the stub dir come first: none is used.
    let libs = [&*i.farm, &*i.dev, &*i.stubs, &*i.libfoo, &*i.bar];
    for flags in [&[][..], &["--drop-unused"], &["--shrink"]] {
        let r = fix(&store, &[&["--dry-run"], flags].concat(), &out, &libs);
        assert_eq!(r.code, Some(0), "{flags:?}: {r:#?}");
        assert!(
            r.stdout.contains(&format!(
                "add $ORIGIN/../lib: serves libown.so.1 (an output's own dir)\n  add {}: serves libfoo.so.1 (--libs)\n  add {}: serves libbar.so.2 (--libs)\n",
                s(&i.libfoo),
                s(&i.bar)
            )),
            "{flags:?}: {}",
            r.stdout
        );
        for (dir, why) in [
            (&i.farm, "a farm"),
            (&i.dev, "in a -dev output"),
            (&i.stubs, "a stub dir"),
        ] {
            assert!(
                r.stderr
                    .contains(&format!("unfarm: {}: --libs: {why}", dir.display())),
                "{}",
                r.stderr
            );
        }
    }
    let r = fix(&store, &[], &out, &libs);
    assert_eq!(r.code, Some(0), "{r:#?}");
    // Own outputs first, then inputs in the --libs order; a DT_RUNPATH
    // entry added where there was none.
    assert_eq!(
        runpath(&app).as_deref(),
        Some(format!("$ORIGIN/../lib:{}:{}", s(&i.libfoo), s(&i.bar)).as_str())
    );
    assert_eq!(runpath(&own), Some(s(&i.libfoo)));
    assert_eq!(ran(&app), "23\n");
    // A second run changes nothing.
    let again = fix(&store, &["-v"], &out, &libs);
    assert_eq!(again.code, Some(0), "{again:#?}");
    assert!(again.stdout.contains(" 0 changed,"), "{}", again.stdout);
}

/// A wheel's library names `$ORIGIN/../nvidia/x/lib` (pip's layout, absent
/// in Nix) and `$ORIGIN` (present): both stay verbatim in their place, the
/// `--libs` dir that holds its need is added after them.
#[test]
fn pip_layout_origin_entries_stay_and_the_input_is_added() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let i = inputs(&store);
    let build = store.scratch().join("wheel-build");
    Cc::gcc().shared_lib(&build, "bar", "2.0", &lib_source("bar", 0));
    let out = store.output("python3.12-jaxlib-0.4");
    let site = out.join("lib/python3.12/site-packages");
    let list = "$ORIGIN/../nvidia/cublas/lib:$ORIGIN";
    Cc::gcc().shared_lib(
        &site.join("jaxlib"),
        "helper",
        "1",
        &lib_source("helper", 2),
    );
    let ext = Cc::gcc()
        .link_dir(&build)
        .link_dir(site.join("jaxlib"))
        .lib(":libbar.so.2")
        .lib(":libhelper.so.1")
        .search("$ORIGIN/../nvidia/cublas/lib")
        .search("$ORIGIN")
        .executable(&site.join("jaxlib/run"), &exe_calling(&["bar", "helper"]));
    assert_eq!(runpath(&ext).as_deref(), Some(list));
    for flags in [&[][..], &["--drop-unused"], &["--shrink"]] {
        let r = fix(
            &store,
            &[&["--dry-run", "-v"], flags].concat(),
            &out,
            &[&i.bar],
        );
        assert_eq!(r.code, Some(0), "{flags:?}: {r:#?}");
        assert!(
            r.stdout.contains(&format!("  new: {list}:{}\n", s(&i.bar))),
            "{flags:?}: {}",
            r.stdout
        );
    }
    let r = fix(&store, &["--shrink"], &out, &[&i.bar]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert_eq!(runpath(&ext), Some(format!("{list}:{}", s(&i.bar))));
    assert_eq!(ran(&ext), "22\n");
}

/// Needs that nothing provides: one line per soname naming every file,
/// exit 1 after writing what could be written; `--ignore-missing` by name,
/// by glob and `*`.
#[test]
fn missing_needs_are_grouped_and_fail_unless_ignored() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let i = inputs(&store);
    let build = store.scratch().join("gone-build");
    Cc::gcc().shared_lib(&build, "gone", "3.0", &lib_source("gone", 0));
    Cc::gcc().shared_lib(&build, "foo", "1.0", &lib_source("foo", 0));
    let out = store.output("gone-user-1.0");
    let mk = |name: &str| {
        Cc::gcc()
            .link_dir(&build)
            .lib(":libgone.so.3")
            .lib(":libfoo.so.1")
            .executable(&out.join("bin").join(name), &exe_calling(&["gone", "foo"]))
    };
    let (a, b) = (mk("a"), mk("b"));
    let r = fix(&store, &["--dry-run"], &out, &[&i.libfoo]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    let lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("could not satisfy"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert!(
        lines[0].starts_with("unfarm: libgone.so.3: could not satisfy dependency")
            && lines[0].contains(&format!("needed by {}, {}", a.display(), b.display())),
        "{}",
        lines[0]
    );
    // Written anyway, as far as it goes, and the run fails.
    let r = fix(&store, &[], &out, &[&i.libfoo]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert_eq!(runpath(&a), Some(s(&i.libfoo)));
    for pat in ["libgone.so.3", "libgone*", "*"] {
        let r = fix(
            &store,
            &["--dry-run", "--ignore-missing", pat],
            &out,
            &[&i.libfoo],
        );
        assert_eq!(r.code, Some(0), "{pat}: {r:#?}");
        assert!(
            !r.stderr.contains("could not satisfy"),
            "{pat}: {}",
            r.stderr
        );
    }
    // Another pattern leaves it reported.
    let r = fix(
        &store,
        &["--dry-run", "--ignore-missing", "libother*"],
        &out,
        &[&i.libfoo],
    );
    assert_eq!(r.code, Some(1), "{r:#?}");
}

/// A list that serves a need only from a `-dev` output: the `--libs` dir
/// that holds it comes first (default mode keeps the old entry after it;
/// `--drop-unused` drops it), and the write verifies on disk.
#[test]
fn a_need_served_only_by_a_dev_output_moves_to_the_lib_dir() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let i = inputs(&store);
    let out = store.output("devuser-1.0");
    let mk = |name: &str| {
        Cc::gcc()
            .link_dir(&i.dev)
            .lib(":libbar.so.2")
            .search(&i.dev)
            .executable(&out.join("bin").join(name), &exe_calling(&["bar"]))
    };
    let app = mk("app");
    assert_eq!(ran(&app), "666\n");
    let r = fix(&store, &[], &out, &[&i.bar]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert_eq!(runpath(&app), Some(format!("{}:{}", s(&i.bar), s(&i.dev))));
    assert_eq!(ran(&app), "20\n");
    let app = mk("app");
    let r = fix(&store, &["--drop-unused"], &out, &[&i.bar]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert_eq!(runpath(&app), Some(s(&i.bar)));
    assert_eq!(ran(&app), "20\n");
}

/// RPATH stays RPATH (the dir is added to it); an object with no list gets
/// DT_RUNPATH.
#[test]
fn rpath_stays_rpath_and_a_new_list_is_runpath() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let i = inputs(&store);
    let build = store.scratch().join("r-build");
    Cc::gcc().shared_lib(&build, "foo", "1.0", &lib_source("foo", 0));
    let out = store.output("rp-1.0");
    let with_rpath = Cc::gcc()
        .link_dir(&build)
        .lib(":libfoo.so.1")
        .search("$ORIGIN")
        .dtags(Dtags::Rpath)
        .executable(&out.join("bin/old"), &exe_calling(&["foo"]));
    let bare = Cc::gcc()
        .link_dir(&build)
        .lib(":libfoo.so.1")
        .executable(&out.join("bin/bare"), &exe_calling(&["foo"]));
    let r = fix(&store, &[], &out, &[&i.libfoo]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert_eq!(
        rpath(&with_rpath),
        Some(format!("$ORIGIN:{}", s(&i.libfoo)))
    );
    assert_eq!(runpath(&with_rpath), None);
    assert_eq!(runpath(&bare), Some(s(&i.libfoo)));
    assert_eq!(rpath(&bare), None);
    assert_eq!(ran(&with_rpath), "1\n");
    assert_eq!(ran(&bare), "1\n");
}

#[test]
fn a_computed_name_takes_its_dir_from_libs() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let i = inputs(&store);
    let nccl = store.output("nccl-2.21-lib").join("lib");
    Cc::gcc().shared_lib(&nccl, "nccl", "2.21.5", &lib_source("nccl", 21));
    let out = store.output("jaxlike-1.0");
    let exe = Cc::gcc()
        .arg("-ldl")
        .arg("-O2")
        .executable(&out.join("bin/app"), crate::computed::TSL_EXE);
    // The runtime dependency goes to an object that can dlopen(); the
    // appended dir to every object.
    let plain = Cc::gcc().executable(&out.join("bin/plain"), &exe_calling(&[]));
    let extra = store.output("extra-1.0").join("lib");
    std::fs::create_dir_all(&extra).unwrap();
    let tail = store.output("tail-1.0").join("lib");
    std::fs::create_dir_all(&tail).unwrap();
    let r = fix(
        &store,
        &[
            "--shrink",
            "--runtime-dependency",
            extra.to_str().unwrap(),
            "--append-runpath",
            tail.to_str().unwrap(),
        ],
        &out,
        &[&i.libfoo, &nccl, &i.bar],
    );
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert_eq!(
        runpath(&exe),
        Some(format!("{}:{}:{}", s(&nccl), s(&extra), s(&tail)))
    );
    assert_eq!(runpath(&plain), Some(s(&tail)));
    assert_eq!(ran(&exe), "21\n");
}

/// The needs nothing provides in the JSON of `fix --json`, `fix --dry-run
/// --json` and `check --json` with `--libs` (docs/check-json.md
/// `unsatisfied`): one entry per soname with the files needing it, in walk
/// order, and whether `--ignore-missing` matched it; none without `--libs`.
#[test]
fn missing_needs_are_in_the_json_with_what_ignored_them() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let i = inputs(&store);
    let build = store.scratch().join("gone-build");
    Cc::gcc().shared_lib(&build, "gone", "3.0", &lib_source("gone", 0));
    Cc::gcc().shared_lib(&build, "lost", "1.0", &lib_source("lost", 0));
    let out = store.output("gone-user-1.0");
    let a = Cc::gcc()
        .link_dir(&build)
        .lib(":libgone.so.3")
        .lib(":liblost.so.1")
        .executable(&out.join("bin/a"), &exe_calling(&["gone", "lost"]));
    let b = Cc::gcc()
        .link_dir(&build)
        .link_dir(i.libfoo.clone())
        .lib(":libgone.so.3")
        .lib(":libfoo.so.1")
        .executable(&out.join("bin/b"), &exe_calling(&["gone", "foo"]));
    let want = serde_json::json!([
        { "soname": "libgone.so.3", "files": [s(&a), s(&b)], "ignored": false },
        { "soname": "liblost.so.1", "files": [s(&a)], "ignored": true },
    ]);
    let check = |args: &[&str]| {
        let mut v: Vec<OsString> = args.iter().map(OsString::from).collect();
        v.extend(["--system".into(), out.clone().into_os_string()]);
        v.extend(["--libs".into(), i.libfoo.clone().into_os_string()]);
        store.unfarm(v)
    };
    for args in [
        &["check", "--json", "--ignore-missing", "liblost*"][..],
        &["fix", "--dry-run", "--json", "--ignore-missing", "liblost*"],
        &["fix", "--json", "--ignore-missing", "liblost*"],
    ] {
        let r = check(args);
        // libgone.so.3 is not ignored: the exit status says so.
        assert_eq!(r.code, Some(1), "{args:?}: {r:#?}");
        assert_eq!(r.json()["unsatisfied"], want, "{args:?}");
        // The text on stderr names only what is not ignored.
        assert!(
            r.stderr.contains("libgone.so.3: could not satisfy"),
            "{}",
            r.stderr
        );
        assert!(!r.stderr.contains("liblost.so.1"), "{}", r.stderr);
    }
    let r = check(&["fix", "--dry-run", "--json", "--ignore-missing", "*"]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    let all = r.json()["unsatisfied"].clone();
    assert!(
        all.as_array().unwrap().iter().all(|u| u["ignored"] == true),
        "{all:#}"
    );
    assert_eq!(all.as_array().unwrap().len(), 2, "{all:#}");
    // Without --libs there is no such list (check has missing-library).
    let r = store.unfarm([
        "check".as_ref(),
        "--json".as_ref(),
        "--system".as_ref(),
        out.as_os_str(),
    ]);
    assert!(r.json().get("unsatisfied").is_none(), "{r:#?}");
}

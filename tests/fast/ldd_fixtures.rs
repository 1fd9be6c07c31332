//! `unfarm ldd` on fixture stores built with the host gcc, checked against
//! the real loader (`ld.so` in trace mode, and running the programs) and
//! against the details only unfarm reports: which RUNPATH entry (index and
//! text) served each need, and which hops crossed into another store path.

use crate::common;

use std::path::{Path, PathBuf};

use common::{Cc, Dtags, LinkStyle, Listed, Store, exe_calling, lib_calling, lib_source};
use serde_json::Value;

const TOOLS: &[&str] = &["gcc", "readelf", "ar"];

/// A split package `foo`: `lib` (libfoo.so.1.2.3 + SONAME link), `dev`
/// (header + linker-name link into lib), `static` (libfoo.a), and a
/// `cuda-stubs`-like output with a stub `libcuda.so`; and `bar` whose
/// libbar.so.2 needs libfoo.so.1 through its own RUNPATH.
struct Split {
    foo_lib: PathBuf,
    foo_dev: PathBuf,
    foo_static: PathBuf,
    stubs: PathBuf,
    bar_lib: PathBuf,
}

fn split(store: &Store) -> Split {
    let foo_lib = store.output("foo-1.0-lib");
    let foo_dev = store.output("foo-1.0-dev");
    let foo_static = store.output("foo-1.0-static");
    let stubs = store.output("cuda-stubs-12.4-stubs");
    let bar_lib = store.output("bar-2.0-lib");
    let file = Cc::gcc().shared_lib(&foo_lib.join("lib"), "foo", "1.2.3", &lib_source("foo", 40));
    common::dev_link(&foo_dev, "foo", &common::soname_link(&file));
    std::fs::create_dir_all(foo_dev.join("include")).unwrap();
    std::fs::write(foo_dev.join("include/foo.h"), "int foo(void);\n").unwrap();
    Cc::gcc().static_lib(&foo_static.join("lib"), "foo", &lib_source("foo", 40));
    Cc::gcc().shared_lib(
        &stubs.join("lib/stubs"),
        "cuda",
        "1",
        &lib_source("cuInit", 0),
    );
    std::fs::rename(
        stubs.join("lib/stubs/libcuda.so.1"),
        stubs.join("lib/stubs/libcuda.so"),
    )
    .unwrap();
    Cc::gcc()
        .link_dir(foo_dev.join("lib"))
        .lib("foo")
        .search(foo_lib.join("lib"))
        .shared_lib(
            &bar_lib.join("lib"),
            "bar",
            "2.0",
            &lib_calling("bar", "foo"),
        );
    Split {
        foo_lib,
        foo_dev,
        foo_static,
        stubs,
        bar_lib,
    }
}

/// A program calling foo() and bar() (prints 81), linked through `libdir`
/// with `libdir` as its only RUNPATH entry.
fn program(store: &Store, name: &str, libdir: &Path) -> PathBuf {
    let out = store.output(name);
    Cc::gcc()
        .link_dir(libdir)
        .lib(":libbar.so.2")
        .lib(":libfoo.so.1")
        .search(libdir)
        .executable(&out.join("bin/app"), &exe_calling(&["foo", "bar"]))
}

/// `unfarm --store-dir S ldd --system --json ARGS...` (the system model so
/// libc resolves as the real loader resolves it).
fn ldd_json(store: &Store, args: &[&std::ffi::OsStr]) -> Value {
    let mut all: Vec<&std::ffi::OsStr> =
        vec!["ldd".as_ref(), "--system".as_ref(), "--json".as_ref()];
    all.extend_from_slice(args);
    store.unfarm(all).json()
}

fn file_report<'a>(json: &'a Value, path: &Path) -> &'a Value {
    json["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str() == path.to_str())
        .unwrap_or_else(|| panic!("no report for {}: {json:#}", path.display()))
}

fn need<'a>(file: &'a Value, name: &str) -> &'a Value {
    file["needs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no need {name}: {file:#}"))
}

fn real(n: &Value) -> PathBuf {
    PathBuf::from(
        n["real"]
            .as_str()
            .unwrap_or_else(|| panic!("no real: {n:#}")),
    )
}

fn cross_hops(n: &Value) -> usize {
    n["hops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["cross_path"] == true)
        .count()
}

/// Every direct need unfarm found must be the file ld.so loads; every need
/// unfarm could not find, ld.so could not find either.
fn assert_agrees_with_ld_so(exe: &Path, json: &Value) {
    let listing = common::ld_so_list(exe, &[]).expect("ld.so refused the program");
    let f = file_report(json, exe);
    for n in f["needs"].as_array().unwrap() {
        let name = n["name"].as_str().unwrap();
        match n["status"].as_str().unwrap() {
            "found" => assert_eq!(
                listing.real(name),
                Some(real(n)),
                "{name}: unfarm and ld.so disagree on {}",
                exe.display()
            ),
            "not-found" | "error" => assert_eq!(
                listing.by_name.get(name),
                Some(&Listed::NotFound),
                "{name}: ld.so found it"
            ),
            s => assert!(!listing.by_name.contains_key(name), "{name}: {s}"),
        }
    }
}

fn os(p: &Path) -> &std::ffi::OsStr {
    p.as_os_str()
}

#[test]
fn flat_farm_of_split_outputs_absolute_links() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let s = split(&store);
    let farm = store.farm(
        "joined",
        &[&s.foo_lib, &s.foo_dev, &s.foo_static, &s.stubs, &s.bar_lib],
        LinkStyle::Absolute,
    );
    // The farm is what symlinkJoin makes: real dirs, links to each file.
    assert!(farm.join("lib").symlink_metadata().unwrap().is_dir());
    assert_eq!(
        std::fs::read_link(farm.join("include/foo.h")).unwrap(),
        s.foo_dev.join("include/foo.h")
    );
    assert!(farm.join("lib/libfoo.a").exists());
    assert!(farm.join("lib/stubs/libcuda.so").exists());

    let exe = program(&store, "app-1.0", &farm.join("lib"));
    assert_eq!(common::run(&exe, &[]).success().stdout.trim(), "81");
    assert_eq!(
        common::readelf_dynamic(&exe, "RUNPATH").as_deref(),
        farm.join("lib").to_str()
    );

    let json = ldd_json(&store, &[os(&exe)]);
    assert_agrees_with_ld_so(&exe, &json);
    let f = file_report(&json, &exe);
    for (name, out, file) in [
        ("libfoo.so.1", &s.foo_lib, "libfoo.so.1.2.3"),
        ("libbar.so.2", &s.bar_lib, "libbar.so.2.0"),
    ] {
        let n = need(f, name);
        assert_eq!(n["status"], "found");
        assert_eq!(real(n), out.join("lib").join(file));
        assert_eq!(n["entry"]["source"]["kind"], "runpath");
        assert_eq!(n["entry"]["index"], 0);
        assert_eq!(n["entry"]["text"].as_str(), farm.join("lib").to_str());
        assert_eq!(n["path"].as_str(), farm.join("lib").join(name).to_str());
        // farm/lib/libfoo.so.1 -> foo-lib/lib/libfoo.so.1 (cross) ->
        // libfoo.so.1.2.3 (inside the output).
        let hops = n["hops"].as_array().unwrap();
        assert_eq!(hops.len(), 2, "{n:#}");
        assert_eq!(hops[0]["cross_path"], true);
        assert_eq!(hops[1]["cross_path"], false);
    }
    // libc comes from the system, not through any farm.
    assert_eq!(cross_hops(need(f, "libc.so.6")), 0);
    assert_eq!(
        need(f, "libc.so.6")["entry"]["source"]["kind"],
        "ld-so-cache"
    );

    // The tree marks farm hops.
    let tree = store.unfarm([os("ldd".as_ref()), os(&exe)]);
    assert!(tree.stdout.contains("libfoo.so.1 => "), "{tree:?}");
    assert!(tree.stdout.contains("[via farm]"), "{tree:?}");
    assert!(tree.stdout.contains("⇢ farm hop"), "{tree:?}");
}

#[test]
fn relative_links_lib_dir_link_and_farm_of_farms() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let s = split(&store);
    let rel = store.farm("rel-farm", &[&s.foo_lib, &s.bar_lib], LinkStyle::Relative);
    let target = std::fs::read_link(rel.join("lib/libfoo.so.1")).unwrap();
    assert!(target.is_relative(), "{}", target.display());
    // A farm whose `lib` is itself a (relative) link to another farm's lib.
    let linkdir = store.output("libdir-link");
    store.symlink(
        common::relative_to(&rel.join("lib"), &linkdir),
        linkdir.join("lib"),
    );
    // Farm of farms: inner farms of one output each, joined again.
    let inner_foo = store.farm("inner-foo", &[&s.foo_lib, &s.foo_dev], LinkStyle::Absolute);
    let inner_bar = store.farm("inner-bar", &[&s.bar_lib], LinkStyle::Relative);
    let outer = store.farm("outer", &[&inner_foo, &inner_bar], LinkStyle::Absolute);

    for (label, libdir, min_cross) in [
        ("relative farm", rel.join("lib"), 1),
        ("lib is a link", linkdir.join("lib"), 2),
        ("farm of farms", outer.join("lib"), 2),
    ] {
        let exe = program(&store, &format!("app-{}", label.replace(' ', "-")), &libdir);
        assert_eq!(
            common::run(&exe, &[]).success().stdout.trim(),
            "81",
            "{label}"
        );
        let json = ldd_json(&store, &[os(&exe)]);
        assert_agrees_with_ld_so(&exe, &json);
        let f = file_report(&json, &exe);
        let n = need(f, "libfoo.so.1");
        assert_eq!(real(n), s.foo_lib.join("lib/libfoo.so.1.2.3"), "{label}");
        assert_eq!(n["entry"]["index"], 0, "{label}");
        assert!(cross_hops(n) >= min_cross, "{label}: {n:#}");
        assert_eq!(
            real(need(f, "libbar.so.2")),
            s.bar_lib.join("lib/libbar.so.2.0")
        );
    }
}

#[test]
fn origin_runpath_after_a_missing_entry() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let app = store.output("app-1.0");
    Cc::gcc().shared_lib(&app.join("lib"), "own", "3", &lib_source("own", 5));
    let exe = Cc::gcc()
        .link_dir(app.join("lib"))
        .arg(app.join("lib/libown.so.3"))
        .search(store.path_of("gone").join("lib"))
        .search("$ORIGIN/../lib")
        .executable(&app.join("bin/app"), &exe_calling(&["own"]));
    assert_eq!(common::run(&exe, &[]).success().stdout.trim(), "5");
    let json = ldd_json(&store, &[os(&exe)]);
    assert_agrees_with_ld_so(&exe, &json);
    let n = need(file_report(&json, &exe), "libown.so.3");
    assert_eq!(n["entry"]["index"], 1);
    assert_eq!(n["entry"]["text"], "$ORIGIN/../lib");
    assert_eq!(real(n), app.join("lib/libown.so.3"));
    assert_eq!(cross_hops(n), 0);
    assert_eq!(n["tried"][0]["outcome"], "missing");
}

/// liba.so.1 needs libfoo.so.1 and has no search path of its own. With the
/// program's DT_RPATH the need is found (RPATH is inherited down the load
/// chain); with DT_RUNPATH it is not (RUNPATH serves only its own object).
#[test]
fn rpath_is_inherited_runpath_is_not() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let s = split(&store);
    let a_lib = store.output("a-1-lib");
    Cc::gcc()
        .link_dir(s.foo_dev.join("lib"))
        .lib("foo")
        .shared_lib(&a_lib.join("lib"), "a", "1", &lib_calling("a", "foo"));
    for (dtags, tag, inherited) in [
        (Dtags::Rpath, "RPATH", true),
        (Dtags::Runpath, "RUNPATH", false),
    ] {
        let exe = Cc::gcc()
            .link_dir(a_lib.join("lib"))
            .lib(":liba.so.1")
            .arg("-Wl,--allow-shlib-undefined")
            .arg("-Wl,-rpath-link,".to_owned() + s.foo_lib.join("lib").to_str().unwrap())
            .search(a_lib.join("lib"))
            .search(s.foo_lib.join("lib"))
            .dtags(dtags)
            .executable(
                &store.output(&format!("app-{tag}")).join("bin/app"),
                &exe_calling(&["a"]),
            );
        assert!(common::readelf_dynamic(&exe, tag).is_some(), "{tag}");
        let json = ldd_json(&store, &[os("-r".as_ref()), os(&exe)]);
        assert_agrees_with_ld_so(&exe, &json);
        let a = need(file_report(&json, &exe), "liba.so.1");
        assert_eq!(a["entry"]["index"], 0, "{tag}");
        let foo = need(a, "libfoo.so.1");
        let listing = common::ld_so_list(&exe, &[]).unwrap();
        if inherited {
            assert_eq!(foo["status"], "found");
            assert_eq!(foo["entry"]["source"]["kind"], "rpath");
            assert_eq!(foo["entry"]["source"]["depth"], 1, "the program's RPATH");
            assert_eq!(foo["entry"]["index"], 1);
            assert_eq!(listing.real("libfoo.so.1"), Some(real(foo)));
            assert_eq!(common::run(&exe, &[]).success().stdout.trim(), "41");
        } else {
            assert_eq!(foo["status"], "not-found", "{foo:#}");
            assert_eq!(listing.by_name.get("libfoo.so.1"), Some(&Listed::NotFound));
            assert_ne!(common::run(&exe, &[]).code, Some(0));
        }
    }
}

#[test]
fn wrong_arch_candidate_is_skipped() {
    common::require_tools(&["gcc", "readelf"]);
    let store = Store::new();
    let arm = store.output("foo-1.0-aarch64-lib");
    let x86 = store.output("foo-1.0-lib");
    // aarch64-linux-gnu-gcc's build of lib_source("foo", 1), committed
    // (tests/fixtures/build.sh) so the fast tier needs no cross compiler.
    std::fs::create_dir_all(arm.join("lib")).unwrap();
    std::fs::copy(
        common::fixture("libfoo-aarch64.so.1.2.3"),
        arm.join("lib/libfoo.so.1.2.3"),
    )
    .unwrap();
    store.symlink("libfoo.so.1.2.3", arm.join("lib/libfoo.so.1"));
    Cc::gcc().shared_lib(&x86.join("lib"), "foo", "1.2.3", &lib_source("foo", 2));
    let exe = Cc::gcc()
        .link_dir(x86.join("lib"))
        .arg(x86.join("lib/libfoo.so.1"))
        .search(arm.join("lib"))
        .search(x86.join("lib"))
        .executable(&store.output("app").join("bin/app"), &exe_calling(&["foo"]));
    assert_eq!(common::run(&exe, &[]).success().stdout.trim(), "2");
    let json = ldd_json(&store, &[os(&exe)]);
    assert_agrees_with_ld_so(&exe, &json);
    let n = need(file_report(&json, &exe), "libfoo.so.1");
    assert_eq!(n["entry"]["index"], 1);
    assert_eq!(real(n), x86.join("lib/libfoo.so.1.2.3"));
    let tried = n["tried"].as_array().unwrap();
    assert_eq!(tried.len(), 1, "{n:#}");
    assert_eq!(
        tried[0]["path"].as_str(),
        arm.join("lib/libfoo.so.1").to_str()
    );
    assert_eq!(tried[0]["outcome"], "wrong class or machine (skipped)");
}

#[test]
fn symlink_loop_in_a_runpath_dir_is_reported() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let good = store.output("loop-1-lib");
    let looped = store.output("looped");
    Cc::gcc().shared_lib(&good.join("lib"), "loop", "1", &lib_source("lp", 3));
    store.symlink("libloop.so.1.b", looped.join("lib/libloop.so.1"));
    store.symlink("libloop.so.1", looped.join("lib/libloop.so.1.b"));
    let exe = Cc::gcc()
        .arg(good.join("lib/libloop.so.1"))
        .search(looped.join("lib"))
        .search(good.join("lib"))
        .executable(&store.output("app").join("bin/app"), &exe_calling(&["lp"]));
    // ld.so stops at the loop: the program does not start.
    assert_eq!(common::run(&exe, &[]).code, Some(127));
    let json = ldd_json(&store, &[os(&exe)]);
    assert_agrees_with_ld_so(&exe, &json);
    let n = need(file_report(&json, &exe), "libloop.so.1");
    assert_eq!(n["status"], "error", "{n:#}");
    assert!(
        n["error"].as_str().unwrap().contains("symlink loop"),
        "{n:#}"
    );
    let tried = n["tried"].as_array().unwrap();
    assert_eq!(tried.len(), 1, "the search stops at the loop, as ld.so's");
    assert_eq!(tried[0]["outcome"], "fatal");
}

#[test]
fn not_found_lists_every_path_tried() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let s = split(&store);
    let farm = store.farm("joined", &[&s.foo_lib, &s.bar_lib], LinkStyle::Absolute);
    // Linked through the farm, with a RUNPATH of only two dirs that do not
    // hold the SONAME files (one empty, one never built).
    let a = store.output("empty-a").join("lib");
    let b = store.path_of("never-built").join("lib");
    std::fs::create_dir_all(&a).unwrap();
    let exe = Cc::gcc()
        .link_dir(farm.join("lib"))
        .lib(":libbar.so.2")
        .lib(":libfoo.so.1")
        .search(&a)
        .search(&b)
        .executable(
            &store.output("app").join("bin/app"),
            &exe_calling(&["foo", "bar"]),
        );
    // Nix mode (the fixture's interpreter is the host's, so by name): no
    // cache, no default dirs; only the RUNPATH is searched.
    let json = store
        .unfarm([
            os("ldd".as_ref()),
            os("--loader=nix".as_ref()),
            os("--json".as_ref()),
            os(&exe),
        ])
        .json();
    let f = file_report(&json, &exe);
    for name in ["libfoo.so.1", "libbar.so.2"] {
        let n = need(f, name);
        assert_eq!(n["status"], "not-found");
        let tried: Vec<(&str, &Value)> = n["tried"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["path"].as_str().unwrap(), &t["index"]))
            .collect();
        assert_eq!(
            tried,
            [
                (a.join(name).to_str().unwrap(), &Value::from(0)),
                (b.join(name).to_str().unwrap(), &Value::from(1)),
            ]
        );
    }
    let out = store.unfarm([os("ldd".as_ref()), os("--loader=nix".as_ref()), os(&exe)]);
    assert_eq!(out.code, Some(1), "missing libraries exit 1");
    assert!(
        out.stdout.contains("libfoo.so.1 NOT FOUND (tried 2 paths)"),
        "{out:?}"
    );
    // With the system model ld.so agrees they are not found.
    let json = ldd_json(&store, &[os(&exe)]);
    assert_agrees_with_ld_so(&exe, &json);
}

#[test]
fn dlopen_through_a_farm_works_and_is_not_a_needed() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let s = split(&store);
    let farm = store.farm("joined", &[&s.foo_lib, &s.foo_dev], LinkStyle::Absolute);
    let exe = Cc::gcc().arg("-ldl").search(farm.join("lib")).executable(
        &store.output("loader").join("bin/loader"),
        &common::exe_dlopen("libfoo.so.1", "foo"),
    );
    assert_eq!(common::run(&exe, &[]).success().stdout.trim(), "40");
    let needed = common::readelf_needed(&exe);
    assert!(
        !needed.iter().any(|n| n.starts_with("libfoo")),
        "{needed:?}"
    );
    let json = ldd_json(&store, &[os(&exe)]);
    let f = file_report(&json, &exe);
    assert!(
        f["needs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["name"] != "libfoo.so.1")
    );
    assert_eq!(f["runpath"].as_str(), farm.join("lib").to_str());
}

#[test]
fn store_paths_look_real() {
    let store = Store::new();
    let p = store.output("foo-1.0-lib");
    let sp = store
        .store_dir()
        .store_path_of(&p.join("lib/libfoo.so.1"))
        .expect("a valid store path");
    assert_eq!(sp.name, "foo-1.0-lib");
    assert_eq!(sp.hash, common::nix_hash("foo-1.0-lib"));
    assert_eq!(sp.hash.len(), 32);
    assert_ne!(common::nix_hash("a"), common::nix_hash("b"));
    assert_eq!(common::nix_hash("a"), common::nix_hash("a"));
}

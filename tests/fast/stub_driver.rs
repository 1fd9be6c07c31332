//! Issue 21 §4: the stub that shadows the driver. cudart's regular `lib/`
//! holding `libcuda.so -> stubs/libcuda.so` (nixpkgs #293320) offers the fake
//! driver; a RUNPATH entry for it ahead of the driver dir, or a wrapper's
//! `LD_LIBRARY_PATH` naming it, makes a program load the stub.

use crate::common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use common::{Cc, Store, exe_calling, exe_dlopen, lib_source};
use serde_json::Value;

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

/// `check --json`: the exit code and the error findings.
fn check(store: &Store, extra: &[&str], outs: &[&Path]) -> (Option<i32>, Vec<Value>) {
    let run = store.unfarm(args(&["check", "--json"], extra, outs));
    let json = run.json();
    let errors = json["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("{run:#?}"))
        .iter()
        .filter(|f| f["severity"] == "error")
        .cloned()
        .collect();
    (run.code, errors)
}

/// cudart as nixpkgs shipped it: a real `libcudart.so.12` in `lib/`, the
/// fake driver in `lib/stubs/libcuda.so` (SONAME `libcuda.so.1`, `cuInit`
/// returns 0), and the stray links `lib/libcuda.so` and `lib/libcuda.so.1`
/// to it. The fake driver dir (outside the store) has the real one
/// (`cuInit` returns 5) under both names.
struct Cuda {
    cudart: PathBuf,
    stubs: PathBuf,
    driver: PathBuf,
}

fn cuda(store: &Store) -> Cuda {
    let cudart = store.output("cuda_cudart-12.4");
    let lib = cudart.join("lib");
    Cc::gcc().shared_lib(&lib, "cudart", "12.4", &lib_source("cudart", 40));
    let stubs = lib.join("stubs");
    Cc::gcc().shared_lib(&stubs, "cuda", "1", &lib_source("cuInit", 0));
    std::fs::rename(stubs.join("libcuda.so.1"), stubs.join("libcuda.so")).unwrap();
    store.symlink("stubs/libcuda.so", lib.join("libcuda.so"));
    store.symlink("stubs/libcuda.so", lib.join("libcuda.so.1"));
    let driver = store.scratch().join("opengl-driver/lib");
    Cc::gcc().shared_lib(&driver, "cuda", "1", &lib_source("cuInit", 5));
    store.symlink("libcuda.so.1", driver.join("libcuda.so"));
    Cuda {
        cudart,
        stubs,
        driver,
    }
}

/// Case A: a RUNPATH entry offering the stub through a link, the driver dir
/// absent (a program needing `libcuda.so.1`; one dlopen()ing `libcuda.so`)
/// or later. `check` reports each with the stub it reaches; `fix` puts the
/// driver dir first and drops the entry that offers nothing but the stub;
/// under the real loader the programs then load the driver, not the stub.
#[test]
fn stub_reached_through_a_link_shadows_the_driver() {
    common::require_tools(&["gcc", "readelf"]);
    let store = Store::new();
    let c = cuda(&store);
    let lib = c.cudart.join("lib");
    // Another output whose lib dir offers nothing but a link to the stub.
    let compat = store.output("cuda-compat-12.4");
    store.symlink(c.stubs.join("libcuda.so"), compat.join("lib/libcuda.so.1"));
    // And one whose only library is a link to another stub (not libcuda).
    Cc::gcc().shared_lib(&c.stubs, "nvidia-ml", "1", &lib_source("nvmlInit", 0));
    let nvml = store.output("nvml-compat-12.4");
    store.symlink(
        c.stubs.join("libnvidia-ml.so.1"),
        nvml.join("lib/libnvidia-ml.so.1"),
    );
    let out = store.output("app-1.0");
    let linked = |name: &str, rp: &[&Path]| {
        let mut cc = Cc::gcc()
            .link_dir(&c.stubs)
            .link_dir(&lib)
            .lib("cuda")
            .lib(":libcudart.so.12");
        for e in rp {
            cc = cc.search(e);
        }
        cc.executable(
            &out.join("bin").join(name),
            &exe_calling(&["cuInit", "cudart"]),
        )
    };
    let absent = linked("absent", &[&compat.join("lib"), &lib]);
    let later = linked("later", &[&lib, &nvml.join("lib"), &c.driver]);
    let opener = Cc::gcc()
        .link_dir(&lib)
        .lib(":libcudart.so.12")
        .search(&lib)
        .arg("-ldl")
        .executable(&out.join("bin/opener"), &exe_dlopen("libcuda.so", "cuInit"));
    let env: [(&str, &str); 0] = [];
    for exe in [&absent, &later] {
        assert_eq!(common::run(exe, &env).stdout.trim(), "40", "{exe:?} before");
    }
    assert_eq!(
        common::run(&opener, &env).stdout.trim(),
        "0",
        "opener before"
    );

    let d = s(&c.driver);
    let extra = ["--driver-dir", d.as_str()];
    let (code, errors) = check(&store, &extra, &[&out]);
    assert_eq!(code, Some(1), "{errors:#?}");
    let shadows: Vec<&Value> = errors
        .iter()
        .filter(|f| f["kind"] == "stub-shadows-driver")
        .collect();
    let at = |file: &Path, loc: String| {
        shadows
            .iter()
            .find(|f| f["file"].as_str() == file.to_str() && f["location"] == loc.as_str())
            .unwrap_or_else(|| panic!("no finding at {} {loc}: {errors:#?}", file.display()))
    };
    let f = at(&absent, format!("RUNPATH[1] {}", s(&lib)));
    let msg = f["message"].as_str().unwrap();
    assert!(msg.contains(&s(&c.stubs.join("libcuda.so"))), "{f:#}");
    assert!(msg.contains("is not in the list"), "{f:#}");
    assert!(f["fix"].as_str().unwrap().contains(&d), "{f:#}");
    let f = at(&later, format!("RUNPATH[0] {}", s(&lib)));
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("comes later, at entry 2"),
        "{f:#}"
    );
    at(&opener, format!("RUNPATH[0] {}", s(&lib)));
    // An entry that offers nothing but a stub is a stub dir, whatever the
    // stub's name.
    for (exe, loc) in [
        (&absent, format!("RUNPATH[0] {}", s(&compat.join("lib")))),
        (&later, format!("RUNPATH[1] {}", s(&nvml.join("lib")))),
    ] {
        assert!(
            errors.iter().any(|f| f["kind"] == "stub-entry"
                && f["file"].as_str() == exe.to_str()
                && f["location"] == loc.as_str()
                && f["message"]
                    .as_str()
                    .unwrap()
                    .contains("nothing but the stub")),
            "{loc}: {errors:#?}"
        );
    }

    store.unfarm(args(&["fix"], &extra, &[&out])).success();
    let want = format!("{d}:{}", s(&lib));
    for exe in [&absent, &later, &opener] {
        assert_eq!(
            common::readelf_dynamic(exe, "RUNPATH").as_deref(),
            Some(want.as_str()),
            "{exe:?}"
        );
    }
    for exe in [&absent, &later] {
        assert_eq!(common::run(exe, &env).stdout.trim(), "45", "{exe:?} after");
    }
    assert_eq!(
        common::run(&opener, &env).stdout.trim(),
        "5",
        "opener after"
    );
    let (code, errors) = check(&store, &extra, &[&out]);
    assert_eq!(code, Some(0), "{errors:#?}");
    // A second fix changes nothing.
    let before = std::fs::read(&absent).unwrap();
    store.unfarm(args(&["fix"], &extra, &[&out])).success();
    assert_eq!(std::fs::read(&absent).unwrap(), before);
}

/// Case B: wrappers in the output putting dirs into `LD_LIBRARY_PATH`,
/// which the loader searches before the RUNPATH: a makeWrapper script (old
/// `export` form) naming cudart's lib dir, which offers the stub through a
/// link; an `addValue`-style script naming a farm and a `-dev` output; a
/// makeBinaryWrapper program whose embedded command line names the stub dir.
/// Each is a `wrapper-library-path` error with the file, line (or offset),
/// the dir, what it reaches and the remedy; `fix` leaves wrappers as they are.
#[test]
fn wrappers_naming_stub_farm_or_dev_dirs() {
    common::require_tools(&["gcc", "readelf"]);
    let store = Store::new();
    let c = cuda(&store);
    let lib = c.cudart.join("lib");
    let foo = store.output("foo-1.0-lib");
    Cc::gcc().shared_lib(&foo.join("lib"), "foo", "1", &lib_source("foo", 1));
    let farm = store.farm("cuda-joined", &[&foo], common::LinkStyle::Absolute);
    let dev = store.output("foo-1.0-dev");
    std::fs::create_dir_all(dev.join("lib")).unwrap();
    let out = store.output("app-1.0");
    let d = s(&c.driver);
    // The program itself is right: the driver dir comes first.
    let wrapped = Cc::gcc()
        .link_dir(&c.stubs)
        .link_dir(&lib)
        .lib("cuda")
        .lib(":libcudart.so.12")
        .search(&c.driver)
        .search(&lib)
        .executable(
            &out.join("bin/.app-wrapped"),
            &exe_calling(&["cuInit", "cudart"]),
        );
    let script = out.join("bin/app");
    std::fs::write(
        &script,
        format!(
            "#! /bin/sh -e\nexport LD_LIBRARY_PATH='{}'${{LD_LIBRARY_PATH:+':'}}$LD_LIBRARY_PATH\nexec \"{}\" \"$@\"\n",
            s(&lib),
            s(&wrapped)
        ),
    )
    .unwrap();
    make_executable(&script);
    let env: [(&str, &str); 0] = [];
    assert_eq!(common::run(&wrapped, &env).stdout.trim(), "45");
    // LD_LIBRARY_PATH beats the RUNPATH's driver dir.
    assert_eq!(common::run(&script, &env).stdout.trim(), "40");
    let script2 = out.join("bin/app2");
    let (fl, dl) = (s(&farm.join("lib")), s(&dev.join("lib")));
    std::fs::write(
        &script2,
        format!(
            "#! /bin/sh -e\nLD_LIBRARY_PATH=${{LD_LIBRARY_PATH:+':'$LD_LIBRARY_PATH':'}}\nLD_LIBRARY_PATH=${{LD_LIBRARY_PATH/':''{fl}'':'/':'}}\nLD_LIBRARY_PATH='{fl}'$LD_LIBRARY_PATH\nexport LD_LIBRARY_PATH\nexport LD_LIBRARY_PATH=\"$LD_LIBRARY_PATH:{dl}\"\nexec \"{}\"\n",
            s(&wrapped)
        ),
    )
    .unwrap();
    make_executable(&script2);
    // makeBinaryWrapper: the C program carries its makeCWrapper command line.
    let bin = Cc::gcc().executable(
        &out.join("bin/app3"),
        &format!(
            "#include <stdio.h>\nconst char * DOCSTRING = \"\\n\\n# generated using the following command:\\n\\n\\nmakeCWrapper '{}' \\\\\\n    --prefix 'LD_LIBRARY_PATH' ':' '{}' \\\\\\n    --inherit-argv0\\n\\n\";\nint main(void) {{ puts(DOCSTRING); return 0; }}\n",
            s(&wrapped),
            s(&c.stubs)
        ),
    );

    let extra = ["--driver-dir", d.as_str()];
    let (code, errors) = check(&store, &extra, &[&out]);
    assert_eq!(code, Some(1), "{errors:#?}");
    let wrappers: Vec<&Value> = errors
        .iter()
        .filter(|f| f["kind"] == "wrapper-library-path")
        .collect();
    let at = |file: &Path, loc: String, says: &str| {
        let f = wrappers
            .iter()
            .find(|f| f["file"].as_str() == file.to_str() && f["location"] == loc.as_str())
            .unwrap_or_else(|| panic!("no finding at {} {loc}: {errors:#?}", file.display()));
        assert!(f["message"].as_str().unwrap().contains(says), "{f:#}");
        assert!(f["fix"].is_string(), "{f:#}");
        (*f).clone()
    };
    at(
        &script,
        format!("line 2, LD_LIBRARY_PATH {}", s(&lib)),
        &s(&c.stubs.join("libcuda.so")),
    );
    let f = at(
        &script2,
        format!("line 4, LD_LIBRARY_PATH {fl}"),
        "names farm",
    );
    assert_eq!(f["farms"][0].as_str(), farm.to_str(), "{f:#}");
    assert!(
        f["fix"].as_str().unwrap().contains(&s(&foo.join("lib"))),
        "{f:#}"
    );
    at(
        &script2,
        format!("line 6, LD_LIBRARY_PATH {dl}"),
        "build-time output",
    );
    let f = wrappers
        .iter()
        .find(|f| f["file"].as_str() == bin.to_str())
        .unwrap_or_else(|| panic!("no finding in the binary wrapper: {errors:#?}"));
    assert!(
        f["location"].as_str().unwrap().starts_with("offset 0x"),
        "{f:#}"
    );
    assert!(
        f["message"].as_str().unwrap().contains("offers the stub"),
        "{f:#}"
    );
    // The removal line (a pattern) and the plain `export` are not reported.
    assert_eq!(
        wrappers
            .iter()
            .filter(|f| f["file"].as_str() == script2.to_str())
            .count(),
        2,
        "{errors:#?}"
    );
    // Wrappers are reported, not rewritten.
    let text = std::fs::read(&script).unwrap();
    store.unfarm(args(&["fix"], &extra, &[&out]));
    assert_eq!(std::fs::read(&script).unwrap(), text);
}

fn make_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

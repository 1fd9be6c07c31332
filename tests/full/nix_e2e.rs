//! End to end against a real Nix (Debian's nix-bin): build an app whose
//! RUNPATH goes through a symlink farm, once as is and once with
//! nix/unfarm-hook.sh at the end of fixup, and compare what Nix says; and
//! a prebuilt package (no RUNPATH) under the hook's autoPatchelf mode.
//! These tests FAIL when Nix is missing; they run scripts/setup-nix.sh
//! first (idempotent; needs root, as in CI). Fixture: tests/nix/e2e.nix.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::common;

use common::nix::{self, closure, closure_size, output, run};
const UNFARM: &str = env!("CARGO_BIN_EXE_unfarm");

fn salt() -> &'static str {
    static S: OnceLock<String> = OnceLock::new();
    S.get_or_init(nix::fresh_salt)
}

fn build(attr: &str) -> PathBuf {
    let out = nix::build(
        "e2e.nix",
        Some(attr),
        &[("salt", salt()), ("unfarmBin", UNFARM)],
    );
    out.last().expect("nix-build printed a path").clone()
}

struct Built {
    app: PathBuf,
    fixed: PathBuf,
    farm: PathBuf,
}

fn built() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(|| Built {
        app: build("app"),
        fixed: build("appFixed"),
        farm: build("farm"),
    })
}

/// The outputs that must not be in a runtime closure.
fn unwanted(c: &[String]) -> Vec<&String> {
    c.iter()
        .filter(|p| {
            p.ends_with("-farm")
                || p.ends_with("-dev")
                || p.ends_with("-static")
                || p.ends_with("-stubs")
        })
        .collect()
}

#[test]
fn without_the_hook_the_farm_drags_everything_in() {
    let b = built();
    let c = closure(&b.app);
    // The fixture must show the bug, or the other tests prove nothing.
    assert_eq!(
        unwanted(&c).len(),
        4,
        "closure of {}: {c:#?}",
        b.app.display()
    );
}

#[test]
fn with_the_hook_no_farm_dev_static_or_stubs_remain() {
    let b = built();
    let c = closure(&b.fixed);
    assert!(
        unwanted(&c).is_empty(),
        "closure of {} still has {:#?}",
        b.fixed.display(),
        unwanted(&c)
    );
    // The real lib outputs are what the app now references.
    assert!(c.iter().any(|p| p.ends_with("-foo-1.2.3-lib")), "{c:#?}");
    assert!(
        c.iter().any(|p| p.ends_with("-cudalike-12.0-lib")),
        "{c:#?}"
    );
}

#[test]
fn every_program_runs_before_and_after() {
    let b = built();
    for app in [&b.app, &b.fixed] {
        for (prog, want) in [("app", "app 42"), ("dl", "dl 7"), ("orig", "orig 41")] {
            let p = app.join("bin").join(prog);
            let out = output(p.to_str().unwrap(), &[]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.trim() == want,
                "{}: status {:?}, stdout {stdout:?}, stderr {}",
                p.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn the_closure_is_smaller() {
    let b = built();
    let (before, after) = (closure_size(&b.app), closure_size(&b.fixed));
    // The dev, static and stubs outputs (200 KB of filler each) leave.
    assert!(
        after + 3 * 200_000 <= before,
        "closure size: {before} before, {after} after"
    );
}

#[test]
fn why_depends_finds_no_farm() {
    let b = built();
    let why = |p: &Path| {
        output(
            "nix",
            &[
                "--extra-experimental-features",
                "nix-command",
                "why-depends",
                p.to_str().unwrap(),
                b.farm.to_str().unwrap(),
            ],
        )
    };
    let before = why(&b.app);
    assert!(
        before.status.success() && String::from_utf8_lossy(&before.stdout).contains("farm"),
        "why-depends on the unfixed app should show the farm: {before:?}"
    );
    let after = why(&b.fixed);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&after.stdout),
        String::from_utf8_lossy(&after.stderr)
    );
    assert!(text.contains("does not depend"), "why-depends: {text}");
}

#[test]
fn the_hook_runs_after_a_late_hook_and_checks() {
    let b = built();
    // lateHook (sourced after ours) added the farm to bin/orig; unfarm ran
    // after it, so the fixed RUNPATH names no farm.
    let out = run(
        "readelf",
        &["-d", b.fixed.join("bin/orig").to_str().unwrap()],
    );
    let rp = out
        .lines()
        .find(|l| l.contains("RUNPATH"))
        .expect("RUNPATH");
    assert!(rp.contains("$ORIGIN/../lib"), "{rp}");
    assert!(!rp.contains("farm"), "{rp}");
    // unfarm check on the result is clean.
    let st = output(UNFARM, &["check", "--system", b.fixed.to_str().unwrap()]);
    assert!(st.status.success(), "{st:?}");
}

#[test]
fn check_only_mode_fails_the_build_with_a_clear_message() {
    let out = nix::build_output(
        "e2e.nix",
        Some("appCheckOnly"),
        &[("salt", salt()), ("unfarmBin", UNFARM)],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "check-only build should fail: {err}");
    assert!(err.contains("unfarm: error findings remain"), "{err}");
    assert!(err.contains("indirect-entry"), "{err}");
}

#[test]
fn a_structured_attrs_package_under_setup_sh_ends_clean() {
    // tests/nix/e2e.nix `jaxlike`: __structuredAttrs, outputs
    // out/lib/bin/dev/debug, fixup under tests/nix/stdenv-emu.sh with
    // stdenv's patchELF and autoAddDriverRunpath, then the hook.
    // The dev output's .pc names the farm: a warning in the log, and the
    // build goes on (dev is build-time only).
    let log = nix::build_output(
        "e2e.nix",
        Some("jaxlike"),
        &[("salt", salt()), ("unfarmBin", UNFARM)],
    );
    let text = String::from_utf8_lossy(&log.stderr);
    assert!(log.status.success(), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("warning[farm-reference]")
                && l.contains("-jaxlike-1.0-dev/lib/pkgconfig/jaxlike.pc")),
        "no farm-reference warning for the dev .pc in the log:\n{text}"
    );
    let outs: Vec<PathBuf> = ["out", "lib", "bin", "dev", "debug"]
        .iter()
        .map(|o| build(&format!("jaxlike.{o}")))
        .collect();
    for o in &outs {
        // The package's own dev output is no dependency of anything.
        let c: Vec<String> = closure(o)
            .into_iter()
            .filter(|p| !p.contains("-jaxlike-1.0"))
            .collect();
        if o.to_str().unwrap().ends_with("-jaxlike-1.0-dev") {
            assert!(c.iter().any(|p| p.ends_with("-farm")), "{c:#?}");
            continue;
        }
        assert!(
            unwanted(&c).is_empty(),
            "closure of {} still has {:#?}",
            o.display(),
            unwanted(&c)
        );
    }
    let find = |suffix: &str| {
        outs.iter()
            .find(|p| p.to_str().unwrap().ends_with(suffix))
            .unwrap_or_else(|| panic!("no output {suffix} in {outs:?}"))
    };
    for (prog, want) in [
        (find("-jaxlike-1.0-bin").join("bin/app"), "app 43"),
        (find("-jaxlike-1.0").join("bin/dl"), "dl 7"),
    ] {
        let out = output(prog.to_str().unwrap(), &[]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.trim() == want,
            "{}: {out:?}",
            prog.display()
        );
        let rp = run("readelf", &["-d", prog.to_str().unwrap()]);
        let rp = rp.lines().find(|l| l.contains("RUNPATH")).expect("RUNPATH");
        assert!(rp.contains("[/run/opengl-driver/lib:"), "{rp}");
    }
}

/// issue 21 §3: `unfarm fix` on a registered store path (and on
/// `./result` naming it) is refused and leaves it as Nix registered it;
/// with `--write-registered` it is written and Nix sees the corruption.
#[test]
fn fix_refuses_a_registered_store_path() {
    // A path of its own: the write below corrupts it, and it is deleted.
    let app = nix::build(
        "e2e.nix",
        Some("app"),
        &[("salt", &format!("{}-reg", salt())), ("unfarmBin", UNFARM)],
    )
    .last()
    .expect("nix-build printed a path")
    .clone();
    let p = app.to_str().unwrap();
    // Leave no corrupt path behind, whatever fails.
    struct Delete<'a>(&'a str);
    impl Drop for Delete<'_> {
        fn drop(&mut self) {
            let _ = output("nix-store", &["--delete", self.0]);
        }
    }
    let _delete = Delete(p);
    let verify = || output("nix-store", &["--verify-path", p]);
    assert!(verify().status.success(), "{:?}", verify());
    let dir = tempfile::tempdir().unwrap();
    let result = dir.path().join("result");
    std::os::unix::fs::symlink(&app, &result).unwrap();
    let before = std::fs::read(app.join("bin/app")).unwrap();
    for arg in [p, result.to_str().unwrap()] {
        let r = output(UNFARM, &["fix", "--system", arg]);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{r:?}");
        assert!(err.contains("a registered store path"), "{err}");
        assert_eq!(std::fs::read(app.join("bin/app")).unwrap(), before);
        let v = verify();
        assert!(v.status.success() && v.stderr.is_empty(), "{v:?}");
    }
    // check points at the derivation, not at `unfarm fix` on the path.
    let r = output(UNFARM, &["check", "--system", p]);
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(
        out.contains("registered in the Nix store") && !out.contains("fix: unfarm fix"),
        "{out}"
    );
    let r = output(UNFARM, &["fix", "--system", "--write-registered", p]);
    assert!(r.status.success(), "{r:?}");
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("nix-store --verify-path"),
        "{r:?}"
    );
    assert_ne!(std::fs::read(app.join("bin/app")).unwrap(), before);
    let v = verify();
    assert!(
        !v.status.success() || String::from_utf8_lossy(&v.stderr).contains("modified"),
        "verify-path after the forced write: {v:?}"
    );
}

/// The RUNPATH of `p` as readelf shows it ("" when it has none).
fn runpath_of(p: &Path) -> String {
    let d = run("readelf", &["-dW", p.to_str().unwrap()]);
    d.lines()
        .find(|l| l.contains("(RUNPATH)"))
        .and_then(|l| l.split_once("Library runpath: ["))
        .map(|(_, r)| r.trim_end_matches(']').to_owned())
        .unwrap_or_default()
}

/// PT_INTERP of `p` ("" when it has none).
fn interp_of(p: &Path) -> String {
    let l = run("readelf", &["-lW", p.to_str().unwrap()]);
    l.lines()
        .find_map(|l| l.split_once("Requesting program interpreter: "))
        .map(|(_, r)| r.trim_end_matches(']').to_owned())
        .unwrap_or_default()
}

/// issue 23 §4 under a real Nix: tests/nix/e2e.nix `prebuilt` (no RUNPATH
/// anywhere, inputs as `-dev` outputs propagating `lib`, a literal dlopen,
/// a computed-name dlopen served by runtimeDependencies, appendRunpaths, an
/// ignored missing soname) built with `unfarmAutoPatchelf = 1`.
#[test]
fn autopatchelf_mode_builds_a_prebuilt_package_with_the_lib_outputs_only() {
    // Plain env, then __structuredAttrs (the lists as bash arrays).
    for attr in ["prebuilt", "prebuiltStructured"] {
        prebuilt_package(attr);
    }
}

fn prebuilt_package(attr: &str) {
    let one = |attr: &str| build(attr);
    let (out, lib) = (one(&format!("{attr}.out")), one(&format!("{attr}.lib")));
    let (zeta, zeta_dev) = (one("zeta.lib"), one("zeta.dev"));
    let (cudart, cudart_dev) = (one("cudart.lib"), one("cudart.dev"));
    let (plugin, glibc) = (one("plugin"), one("glibcLike"));
    let d = |p: &Path| p.join("lib").to_str().unwrap().to_owned();
    let appended = "/opt/appended/lib";
    // Exactly the dirs each object's own needs use, in ld.so's order, then
    // appendRunpaths; runtimeDependencies only where dlopen() is imported.
    let want = [
        (out.join("bin/app"), format!("{}:{appended}", d(&lib))),
        (out.join("bin/plain"), format!("{}:{appended}", d(&zeta))),
        (
            lib.join("lib/libcore.so.1"),
            format!("{}:{appended}", d(&zeta)),
        ),
        (
            lib.join("lib/libloader.so.1"),
            format!("{}:{}:{appended}", d(&cudart), d(&plugin)),
        ),
        (
            lib.join("lib/libplugins.so.1"),
            format!("{}:{appended}", d(&plugin)),
        ),
        // Its one need (libghost.so.1) is ignored: appendRunpaths only.
        (lib.join("lib/libextra.so.1"), appended.to_owned()),
    ];
    let ld = glibc.join("lib/ld-linux-x86-64.so.2");
    for (f, rp) in &want {
        assert_eq!(&runpath_of(f), rp, "{}", f.display());
        let is_exe = f.starts_with(&out);
        let want_interp = if is_exe { ld.to_str().unwrap() } else { "" };
        assert_eq!(interp_of(f), want_interp, "{}", f.display());
    }
    for (prog, want) in [("app", "app 129"), ("plain", "plain 3")] {
        let p = out.join("bin").join(prog);
        let r = output(p.to_str().unwrap(), &[]);
        assert!(
            r.status.success() && String::from_utf8_lossy(&r.stdout).trim() == want,
            "{}: {r:?}",
            p.display()
        );
    }
    // What Nix scanned: the lib outputs (and the interpreter's glibc), never
    // a -dev output.
    let refs = |p: &Path| nix::references(p);
    assert_eq!(
        refs(&out),
        [lib.clone(), zeta.clone(), glibc.clone()].into(),
        "references of {}",
        out.display()
    );
    assert_eq!(
        refs(&lib),
        [zeta.clone(), cudart.clone(), plugin.clone()].into(),
        "references of {}",
        lib.display()
    );
    for dev in [&zeta_dev, &cudart_dev] {
        assert!(
            !closure(&out)
                .iter()
                .chain(&closure(&lib))
                .any(|p| Path::new(p) == dev.as_path()),
            "{} in the closure",
            dev.display()
        );
    }
}

#[test]
fn autopatchelf_mode_fails_the_build_on_a_missing_need_not_ignored() {
    let log = nix::build_output(
        "e2e.nix",
        Some("prebuiltMissing"),
        &[("salt", salt()), ("unfarmBin", UNFARM)],
    );
    let err = String::from_utf8_lossy(&log.stderr);
    assert!(!log.status.success(), "built with libghost missing: {err}");
    assert!(
        err.lines().any(
            |l| l.starts_with("unfarm: libghost.so.1: could not satisfy dependency")
                && l.contains("-prebuilt-missing-1.0-lib/lib/libextra.so.1")
        ),
        "{err}"
    );
}

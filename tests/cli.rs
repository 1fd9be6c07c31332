//! The command line as a new user meets it: symlink arguments (`./result`),
//! files that are not ELF, the loader model chosen per file from its
//! interpreter, a wrong store dir, and the one error format.

mod common;

use std::path::{Path, PathBuf};

use common::{Cc, LinkStyle, Store, exe_calling, lib_source};

const TOOLS: &[&str] = &["gcc", "patchelf"];

/// A package whose program reaches libfoo through a farm: the case `check`
/// must never call clean. Returns (farm, program's output).
fn farmed_app(store: &Store) -> (PathBuf, PathBuf) {
    let foo = store.output("foo-1.0-lib");
    Cc::gcc().shared_lib(&foo.join("lib"), "foo", "1.0", &lib_source("foo", 1));
    let farm = store.farm("env", &[&foo], LinkStyle::Absolute);
    let app = store.output("app-1.0");
    Cc::gcc()
        .link_dir(farm.join("lib"))
        .lib(":libfoo.so.1")
        .search(farm.join("lib"))
        .executable(&app.join("bin/app"), &exe_calling(&["foo"]));
    (farm, app)
}

/// Set a Nix-style interpreter: `<store>/<hash>-glibc-2.40/lib/ld-linux-x86-64.so.2`.
fn nix_interpreter(store: &Store, file: &Path) -> PathBuf {
    let interp = store.output("glibc-2.40").join("lib/ld-linux-x86-64.so.2");
    let st = std::process::Command::new("patchelf")
        .arg("--set-interpreter")
        .arg(&interp)
        .arg(file)
        .status()
        .expect("patchelf is required");
    assert!(st.success());
    interp
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or("")
}

/// `ln -s /nix/store/…-app result; unfarm check result` used to walk the
/// link alone: `1 files, 0 ELF objects: 0 errors`, exit 0.
#[test]
fn a_symlink_argument_is_followed() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let (_, app) = farmed_app(&store);
    let result = store.scratch().join("result");
    std::os::unix::fs::symlink(&app, &result).unwrap();
    let direct = store.unfarm(["check".as_ref(), app.as_os_str()]);
    let via_link = store.unfarm(["check".as_ref(), result.as_os_str()]);
    assert_eq!(direct.code, Some(1), "{direct:#?}");
    assert_eq!(via_link.code, Some(1), "{via_link:#?}");
    assert_eq!(direct.stdout, via_link.stdout);
    assert!(via_link.stdout.contains("indirect-entry"), "{via_link:#?}");
    // A relative link to a link, as `nix build` leaves `result` in a dir.
    let again = store.scratch().join("again");
    std::os::unix::fs::symlink("result", &again).unwrap();
    let plan = store.unfarm(["fix", "--dry-run", again.to_str().unwrap()]);
    assert!(
        plan.stdout.contains(app.join("bin/app").to_str().unwrap()),
        "{plan:#?}"
    );
    // ldd follows a link to a program, as ldd(1) does.
    let exe_link = store.scratch().join("app-link");
    std::os::unix::fs::symlink(app.join("bin/app"), &exe_link).unwrap();
    let l = store.unfarm(["ldd".as_ref(), exe_link.as_os_str()]);
    assert!(l.stdout.contains("libfoo.so.1 =>"), "{l:#?}");
}

/// `ldd` on a file that is not ELF printed nothing and exited 0.
#[test]
fn ldd_on_a_file_that_is_not_elf_fails() {
    let t = tempfile::tempdir().unwrap();
    let script = t.path().join("script.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let empty = t.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    for f in [&script, &empty] {
        let r = common::unfarm(["ldd".as_ref(), f.as_os_str()]);
        assert_eq!(r.code, Some(1), "{r:#?}");
        assert_eq!(
            r.stderr,
            format!("unfarm: {}: not an ELF file\n", f.display())
        );
        let j = common::unfarm(["ldd".as_ref(), "--json".as_ref(), f.as_os_str()]);
        assert_eq!(j.code, Some(1));
        assert_eq!(
            j.json()["errors"][0],
            format!("{}: not an ELF file", f.display())
        );
    }
    // A non-ELF file met while walking a directory is not an error.
    let r = common::unfarm(["ldd".as_ref(), t.path().as_os_str()]);
    assert_eq!(r.code, Some(0), "{r:#?}");
}

/// The loader model comes from each file's interpreter: the host's ld.so
/// finds libc in /etc/ld.so.cache (it said `libc.so.6 NOT FOUND (tried 0
/// paths)`); a Nix glibc searches no host dir.
#[test]
fn the_loader_model_follows_the_interpreter() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let (_, app) = farmed_app(&store);
    let host = common::unfarm(["ldd", "--json", "/usr/bin/ls"]);
    assert_eq!(host.code, Some(0), "{host:#?}");
    let f = &host.json()["files"][0];
    assert_eq!(f["loader"], "host");
    let libc = f["needs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "libc.so.6")
        .unwrap();
    assert_eq!(libc["status"], "found");
    let text = common::unfarm(["ldd", "/usr/bin/ls"]);
    assert!(
        text.stdout
            .starts_with("/usr/bin/ls [x86_64 64-bit, host loader")
    );

    let exe = app.join("bin/app");
    nix_interpreter(&store, &exe);
    let nix = store.unfarm(["ldd".as_ref(), "--json".as_ref(), exe.as_os_str()]);
    let f = &nix.json()["files"][0];
    assert_eq!(f["loader"], "nix", "{nix:#?}");
    let libc = f["needs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "libc.so.6")
        .unwrap();
    assert_eq!(libc["status"], "not-found", "{nix:#?}");
    assert_eq!(nix.code, Some(1));
    // Flags override the choice.
    let forced = store.unfarm(["ldd", "--loader", "host", "--json", exe.to_str().unwrap()]);
    assert_eq!(forced.json()["files"][0]["loader"], "host");
    let forced = store.unfarm(["ldd", "--system", "--json", exe.to_str().unwrap()]);
    assert_eq!(forced.json()["files"][0]["loader"], "host");
    let forced = common::unfarm(["ldd", "--loader", "nix", "--json", "/usr/bin/ls"]);
    assert_eq!(forced.json()["files"][0]["loader"], "nix");
    assert_eq!(forced.code, Some(1));
}

/// A store dir that is missing, relative, or does not hold the outputs gave
/// a quietly clean result.
#[test]
fn a_wrong_store_dir_is_an_error() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let (_, app) = farmed_app(&store);
    let app = app.to_str().unwrap();
    let other = tempfile::tempdir().unwrap();
    let other = other.path().to_str().unwrap();
    let cases: [(&[&str], String); 4] = [
        (
            &["--store-dir", "/no/such/store", "check", app],
            "unfarm: /no/such/store: --store-dir: No such file or directory\n".into(),
        ),
        (
            &["--store-dir", "store", "check", app],
            "unfarm: store: --store-dir must be an absolute path\n".into(),
        ),
        (
            &["--store-dir", other, "check", app],
            format!(
                "unfarm: {app}: not inside the store dir {other} (--store-dir); give the store dir the outputs are in\n"
            ),
        ),
        (
            &["--store-dir", other, "demo"],
            "unfarm: --store-dir: not used by demo (it builds its own store in a temp dir)\n"
                .into(),
        ),
    ];
    for (args, want) in cases {
        let r = common::unfarm(args);
        assert_ne!(r.code, Some(0), "{args:?}: {r:#?}");
        assert_eq!(r.stderr, want, "{args:?}");
        assert_eq!(r.stdout, "", "{args:?}");
    }
}

/// A missing argument: one line, the path, the cause once.
#[test]
fn a_missing_argument_is_one_error_line() {
    for cmd in ["check", "fix", "ldd"] {
        let r = common::unfarm([cmd, "/nonexistent"]);
        assert_eq!(r.code, Some(1), "{cmd}: {r:#?}");
        assert_eq!(
            r.stderr, "unfarm: /nonexistent: No such file or directory\n",
            "{cmd}"
        );
    }
    let _ = last_line("");
}

/// `demo --cc nosuchcc` printed the OS error twice and began with an output
/// file's path; the cause is the compiler, named once.
#[test]
fn demo_with_a_missing_compiler_is_one_error_line() {
    let r = common::unfarm(["demo", "--cc", "nosuchcc"]);
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert_eq!(
        r.stderr,
        "unfarm: nosuchcc: cannot run the C compiler (--cc): No such file or directory\n"
    );
}

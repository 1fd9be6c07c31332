//! nix/package.nix and nix/hook.nix as nixpkgs would take them: every Nix
//! file parses, and evaluated against stand-ins for the nixpkgs functions
//! they call (`tests/nix/package-shape.nix`; no nixpkgs here) they hand
//! nixpkgs the crate's version, licence and lock file, and a hook that
//! installs, unchanged, the very script the hook tests run.

use crate::common::{self, nix};

use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn nix_files() -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["nix", "tests/nix"] {
        for e in std::fs::read_dir(Path::new(ROOT).join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "nix") {
                files.push(p.to_str().unwrap().to_string());
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_nix_file_parses() {
    nix::setup();
    let files = nix_files();
    assert!(files.iter().any(|f| f.ends_with("nix/package.nix")));
    assert!(files.iter().any(|f| f.ends_with("nix/hook.nix")));
    for f in &files {
        nix::run("nix-instantiate", &["--parse", f]);
    }
}

fn shape() -> serde_json::Value {
    nix::setup();
    let expr = format!("{ROOT}/tests/nix/package-shape.nix");
    let out = nix::run("nix-instantiate", &["--eval", "--strict", "--json", &expr]);
    serde_json::from_str(&out).expect("JSON from nix-instantiate")
}

#[test]
fn the_package_carries_the_crates_version_licence_and_lock_file() {
    let v = shape();
    assert_eq!(v["pname"], env!("CARGO_PKG_NAME"));
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    // Cargo.toml's `MIT OR Apache-2.0`, in nixpkgs' names.
    assert_eq!(env!("CARGO_PKG_LICENSE"), "MIT OR Apache-2.0");
    assert_eq!(v["meta"]["license"], serde_json::json!(["mit", "asl20"]));
    assert_eq!(v["meta"]["mainProgram"], "unfarm");
    assert_eq!(v["meta"]["description"], env!("CARGO_PKG_DESCRIPTION"));
    assert_eq!(v["lockFile"], format!("{ROOT}/Cargo.lock"));
    assert_eq!(v["doInstallCheck"], true);
    for licence in ["LICENSE-MIT", "LICENSE-APACHE"] {
        assert!(Path::new(ROOT).join(licence).is_file(), "{licence}");
    }
    // Every target path the manifest names must be in the source cargo sees.
    let src: Vec<&str> = v["src"]["fileset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    let manifest = std::fs::read_to_string(format!("{ROOT}/Cargo.toml")).unwrap();
    let named = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("path = \""))
        .map(|l| format!("{ROOT}/{}", l.trim_end_matches('"')))
        .chain(["src/main.rs", "src/lib.rs", "Cargo.lock"].map(|p| format!("{ROOT}/{p}")));
    for path in named {
        assert!(
            src.iter()
                .any(|s| path.starts_with(&format!("{s}/")) || path == *s),
            "{path} is not in package.nix's src {src:?}"
        );
    }
}

#[test]
fn the_hook_installs_the_script_the_hook_tests_run() {
    let v = shape();
    let hook = &v["hook"];
    assert_eq!(hook["name"], "unfarm-hook");
    // No substitutions: makeSetupHook installs the file byte for byte.
    assert_eq!(hook["substitutions"], serde_json::Value::Null);
    assert_eq!(hook["propagatesUnfarm"], true);
    assert_eq!(hook["meta"]["license"], v["meta"]["license"]);
    let installed = std::fs::canonicalize(hook["script"].as_str().unwrap()).unwrap();
    assert_eq!(
        installed,
        std::fs::canonicalize(common::HOOK_SCRIPT).unwrap()
    );
    // tests/full/nix_e2e.rs sources e2e.nix's default `hook`.
    let e2e = std::fs::read_to_string(format!("{ROOT}/tests/nix/e2e.nix")).unwrap();
    let default = e2e
        .split("hook ? ")
        .nth(1)
        .and_then(|rest| rest.split([' ', ',', '\n']).next())
        .expect("e2e.nix takes `hook ? PATH`");
    let e2e_hook = std::fs::canonicalize(Path::new(ROOT).join("tests/nix").join(default)).unwrap();
    assert_eq!(e2e_hook, installed);
}

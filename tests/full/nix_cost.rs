//! Cost predictions against a real Nix (Debian's nix-bin): the closure size
//! that `unfarm fix --dry-run` predicts, inside a Nix build (output not yet
//! registered) and outside it (the registered unfixed app), equals
//! `nix path-info -S` of the same app actually fixed by `unfarm fix` in a
//! build; `check`'s per-farm cost equals what left the closure.
//! These tests FAIL when Nix is missing; they run scripts/setup-nix.sh first
//! (idempotent; needs root, as in CI). Fixture: tests/nix/cost.nix.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::common;

use common::nix::{self, run};
const UNFARM: &str = env!("CARGO_BIN_EXE_unfarm");

fn build(attr: &str, salt: &str) -> Vec<PathBuf> {
    nix::build(
        "cost.nix",
        Some(attr),
        &[("salt", salt), ("unfarmBin", UNFARM)],
    )
}

struct Built {
    app: PathBuf,
    fixed: PathBuf,
    pred: PathBuf,
    farm: PathBuf,
}

fn built() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(|| {
        let salt = format!("cost-{}", nix::fresh_salt());
        Built {
            app: build("app", &salt)[0].clone(),
            fixed: build("appRefixed", &salt)[0].clone(),
            pred: build("appRefixed.pred", &salt)[0].clone(),
            farm: build("farm", &salt)[0].clone(),
        }
    })
}

fn path_info(p: &Path) -> Value {
    let out = run(
        "nix",
        &[
            "--extra-experimental-features",
            "nix-command",
            "path-info",
            "--json",
            "-S",
            p.to_str().unwrap(),
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    v.as_array().map_or(v.clone(), |a| a[0].clone())
}

fn closure_size(p: &Path) -> u64 {
    path_info(p)["closureSize"].as_u64().unwrap()
}

fn nar_size(p: &Path) -> u64 {
    path_info(p)["narSize"].as_u64().unwrap()
}

fn unfarm_json(args: &[&str]) -> Value {
    let out = Command::new(UNFARM).args(args).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("unfarm {args:?}: {e}: {out:?}"))
}

#[test]
fn the_fixture_really_drops_the_farm() {
    let b = built();
    let refs = run("nix-store", &["-qR", b.fixed.to_str().unwrap()]);
    assert!(!refs.contains(b.farm.to_str().unwrap()), "{refs}");
    let refs = run("nix-store", &["-qR", b.app.to_str().unwrap()]);
    assert!(refs.contains(b.farm.to_str().unwrap()), "{refs}");
}

#[test]
fn prediction_inside_the_build_equals_what_nix_registers() {
    let b = built();
    let text = std::fs::read_to_string(b.pred.join("dry-run.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let c = &v["closure"];
    assert!(c.is_object(), "{v:#}");
    // Same bytes as the registered unfixed app, so the same closure.
    assert_eq!(c["before"].as_u64(), Some(closure_size(&b.app)), "{c:#}");
    assert_eq!(c["after"].as_u64(), Some(closure_size(&b.fixed)), "{c:#}");
}

#[test]
fn prediction_on_the_registered_app_equals_the_fixed_build() {
    let b = built();
    let v = unfarm_json(&[
        "fix",
        "--dry-run",
        "--json",
        "--system",
        b.app.to_str().unwrap(),
    ]);
    let c = &v["closure"];
    assert_eq!(c["before"].as_u64(), Some(closure_size(&b.app)), "{c:#}");
    assert_eq!(c["after"].as_u64(), Some(closure_size(&b.fixed)), "{c:#}");
}

#[test]
fn check_cost_is_what_left_the_closure() {
    let b = built();
    let v = unfarm_json(&["check", "--json", "--system", b.app.to_str().unwrap()]);
    let costs: Vec<u64> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "indirect-entry")
        .map(|f| f["cost_bytes"].as_u64().expect("cost_bytes"))
        .collect();
    assert!(!costs.is_empty(), "{v:#}");
    // What left, not counting the app's own growth (grown ELF edits).
    let left =
        closure_size(&b.app) + nar_size(&b.fixed) - closure_size(&b.fixed) - nar_size(&b.app);
    for c in costs {
        assert_eq!(c, left, "{v:#}");
    }
}

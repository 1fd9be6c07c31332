//! Running a real Nix (Debian's nix-bin) from tests: single-user, no
//! sandbox, no substituters (`scripts/setup-nix.sh` makes that work as root).
//! Nothing here skips: a missing `nix-build` is a panic naming it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Run `cmd`, whatever its exit status.
pub fn output(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd} (is nix-bin installed?): {e}"))
}

/// Run `cmd`, which must succeed; its stdout.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = output(cmd, args);
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// Set Nix up once per test process (idempotent; needs root, as in CI).
pub fn setup() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        run("sh", &[&format!("{ROOT}/scripts/setup-nix.sh")]);
    });
}

/// A salt unique to this run, so fixtures are built now, not found in the store.
pub fn fresh_salt() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{t}", std::process::id())
}

/// `nix-build tests/nix/<file> [-A attr] --argstr k v ...`, whatever its
/// exit status (for builds that are meant to fail).
pub fn build_output(file: &str, attr: Option<&str>, argstrs: &[(&str, &str)]) -> Output {
    setup();
    let fixture = format!("{ROOT}/tests/nix/{file}");
    let mut args: Vec<&str> = vec![&fixture];
    if let Some(a) = attr {
        args.extend(["-A", a]);
    }
    for (k, v) in argstrs {
        args.extend(["--argstr", k, v]);
    }
    args.extend([
        "--no-out-link",
        "--option",
        "sandbox",
        "false",
        "--option",
        "build-users-group",
        "",
        "--option",
        "substituters",
        "",
    ]);
    output("nix-build", &args)
}

/// [`build_output`], which must succeed: the out paths it prints (for a
/// set, in attribute-name order).
pub fn build(file: &str, attr: Option<&str>, argstrs: &[(&str, &str)]) -> Vec<PathBuf> {
    let out = build_output(file, attr, argstrs);
    assert!(
        out.status.success(),
        "nix-build {file} {attr:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .collect()
}

/// `nix path-info -S`: the closure's NAR size.
pub fn closure_size(p: &Path) -> u64 {
    let out = run(
        "nix",
        &[
            "--extra-experimental-features",
            "nix-command",
            "path-info",
            "-S",
            p.to_str().unwrap(),
        ],
    );
    out.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `nix-store -qR`: the closure's paths.
pub fn closure(p: &Path) -> Vec<String> {
    run("nix-store", &["-qR", p.to_str().unwrap()])
        .lines()
        .map(String::from)
        .collect()
}

/// `nix-store -q --references`.
pub fn references(p: &Path) -> BTreeSet<PathBuf> {
    run("nix-store", &["-q", "--references", p.to_str().unwrap()])
        .lines()
        .map(PathBuf::from)
        .collect()
}

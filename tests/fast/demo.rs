//! `unfarm demo` end to end: builds its scenario with the system cc, runs
//! check, fix, check and the programs, and reports the closure saved.

use std::process::Command;

const UNFARM: &str = env!("CARGO_BIN_EXE_unfarm");

#[test]
fn demo_succeeds_and_reports_the_fix() {
    let keep = tempfile::tempdir().unwrap();
    let dir = keep.path().join("scenario");
    let out = Command::new(UNFARM)
        .args(["demo", "--keep", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "-> exit 1: errors found, as expected",
        "[indirect-entry]",
        "[stub-entry]",
        "ok   $STORE/",
        "bin/dl: dl 7",
        "  old: $ORIGIN/../lib:$STORE/",
        "demo: OK",
        "Closure: ",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // The farm, dev, static and stubs outputs are listed as gone.
    let left = text
        .split("Left the closure:")
        .nth(1)
        .expect("Left the closure");
    for name in [
        "-foo-cuda-farm",
        "-foo-1.2.3-dev",
        "-foo-1.2.3-static",
        "-cudalike-12.0-stubs",
    ] {
        assert!(left.contains(name), "{name} did not leave:\n{text}");
    }
    // After the fix, check reports no error.
    let after = text.split("== 5.").nth(1).unwrap();
    let after = after.split("== 6.").next().unwrap();
    assert!(after.contains(": 0 errors"), "{after}");
    // --keep left the scenario; the new RUNPATHs name no farm.
    let app = std::fs::read_dir(dir.join("store"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-app-1.0"))
        .expect("app kept");
    let bytes = std::fs::read(app.join("bin/app")).unwrap();
    assert!(
        !bytes.windows(13).any(|w| w == b"foo-cuda-farm"),
        "farm name still in bin/app"
    );
}

#[test]
fn demo_refuses_an_existing_keep_dir_and_names_it() {
    let keep = tempfile::tempdir().unwrap();
    let out = Command::new(UNFARM)
        .args(["demo", "--keep", keep.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&keep.path().display().to_string()), "{err}");
}

#[test]
fn demo_without_keep_removes_its_temp_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(UNFARM)
        .arg("demo")
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// Ctrl-C (SIGINT) or a closed pipe (`demo | head`) used to leave the
/// temp dir behind: the watcher removes it and exits as the signal would.
#[test]
fn demo_removes_its_temp_dir_when_interrupted() {
    use std::io::BufRead;
    for (how, code) in [("pipe", 141), ("int", 130)] {
        let tmp = tempfile::tempdir().unwrap();
        // Its own process group, as a shell job: Ctrl-C reaches the demo and
        // the compiler it runs, and we can wait for both to be gone.
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(UNFARM)
            .arg("demo")
            .process_group(0)
            .env("TMPDIR", tmp.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("== 1."), "{line}");
        let started = std::time::Instant::now();
        while std::fs::read_dir(tmp.path()).unwrap().count() == 0 {
            assert!(started.elapsed().as_secs() < 20, "no temp dir made");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        match how {
            "pipe" => drop(out),
            _ => {
                let st = Command::new("kill")
                    .args(["-INT", "--", &format!("-{}", child.id())])
                    .status()
                    .unwrap();
                assert!(st.success());
            }
        }
        let st = child.wait().unwrap();
        assert_eq!(st.code(), Some(code), "{how}");
        // A compiler the demo started may still be finishing (its own temp
        // files live in TMPDIR too): wait until the whole group is gone.
        let group_alive = || {
            Command::new("kill")
                .args(["-0", "--", &format!("-{}", child.id())])
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let waited = std::time::Instant::now();
        while group_alive() {
            assert!(
                waited.elapsed().as_secs() < 30,
                "{how}: the demo's children live on"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "{how}: left {left:?}");
    }
}

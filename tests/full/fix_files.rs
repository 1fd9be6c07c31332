//! `unfarm fix` on unusual files: a library over 4 GiB (sparse) is edited in
//! place, reading and writing only what changes; a file over the in-memory
//! limit that must grow is grown in place, writing only the new bytes; a
//! hard-linked file follows the documented `--hard-links` policy and says
//! what it did; extended attributes survive the copy path.

use crate::common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{Cc, LinkStyle, Store, exe_calling, lib_source};

const TOOLS: &[&str] = &["gcc", "readelf"];

/// A library `libfoo.so.1` in its own output, an app that needs it, and a
/// farm with a long name (so the real dir fits the farm's slot: in place).
fn world() -> (Store, PathBuf, PathBuf, PathBuf) {
    let store = Store::new();
    let lib_out = store.output("foo-1.0-lib");
    Cc::gcc().shared_lib(&lib_out.join("lib"), "foo", "1.0", &lib_source("foo", 7));
    let farm = store.farm(
        "a-rather-long-symlink-farm-name-joined",
        &[&lib_out],
        LinkStyle::Absolute,
    );
    let app = store.output("app-1.0");
    let exe = Cc::gcc()
        .link_dir(farm.join("lib"))
        .lib(":libfoo.so.1")
        .search(farm.join("lib"))
        .executable(&app.join("bin/app"), &exe_calling(&["foo"]));
    (store, lib_out, app, exe)
}

/// Two libraries in their own outputs joined by a farm with a short name,
/// and an app that needs both: the two real dirs never fit the farm's slot,
/// so fixing the app grows it. Returns (store, foo, bar, app output, app).
fn growing_world() -> (Store, PathBuf, PathBuf, PathBuf, PathBuf) {
    let store = Store::new();
    let foo_out = store.output("foo-1.0-lib");
    let bar_out = store.output("bar-1.0-lib");
    Cc::gcc().shared_lib(&foo_out.join("lib"), "foo", "1.0", &lib_source("foo", 40));
    Cc::gcc().shared_lib(&bar_out.join("lib"), "bar", "1.0", &lib_source("bar", 2));
    let farm = store.farm("f", &[&foo_out, &bar_out], LinkStyle::Absolute);
    let app = store.output("app-1.0");
    let exe = Cc::gcc()
        .link_dir(farm.join("lib"))
        .lib(":libfoo.so.1")
        .lib(":libbar.so.1")
        .search(farm.join("lib"))
        .executable(&app.join("bin/app"), &exe_calling(&["foo", "bar"]));
    (store, foo_out, bar_out, app, exe)
}

fn fix(store: &Store, extra: &[&str], out: &Path) -> common::Run {
    let mut args: Vec<String> = vec!["fix".into(), "--system".into(), "--json".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(out.display().to_string());
    store.unfarm(args)
}

#[test]
fn file_over_4_gib_is_edited_in_place() {
    common::require_tools(TOOLS);
    let (store, lib_out, app, exe) = world();
    // Make the program a sparse 5 GiB file: ld.so maps only its segments, so
    // it still runs; unfarm must not read (or copy) the 5 GiB.
    let f = std::fs::OpenOptions::new().write(true).open(&exe).unwrap();
    f.set_len(5 << 30).unwrap();
    drop(f);
    let before_blocks = std::fs::metadata(&exe).unwrap().blocks();
    let r = fix(&store, &[], &app);
    assert_eq!(r.code, Some(0), "{r:#?}");
    let v = r.json();
    let res = &v["results"][0];
    assert_eq!(res["status"], "changed", "{v:#}");
    let written = res["bytes_written"].as_u64().unwrap();
    assert!(written > 0 && written < 64 << 10, "wrote {written} bytes");
    let meta = std::fs::metadata(&exe).unwrap();
    assert_eq!(meta.len(), 5 << 30);
    // Still sparse: nothing was copied.
    assert!(
        meta.blocks() <= before_blocks + 8,
        "{} blocks",
        meta.blocks()
    );
    assert_eq!(
        common::readelf_dynamic(&exe, "RUNPATH"),
        Some(lib_out.join("lib").display().to_string())
    );
    assert_eq!(common::run(&exe, &[]).success().stdout, "7\n");
}

#[test]
fn hard_links_follow_the_policy_and_say_so() {
    common::require_tools(TOOLS);
    let (store, lib_out, app, exe) = world();
    let other = app.join("bin/app-alias");
    std::fs::hard_link(&exe, &other).unwrap();
    let original = std::fs::read(&exe).unwrap();

    // refuse: nothing changes, one line naming the file, exit 1.
    let r = fix(&store, &["--hard-links", "refuse"], &app);
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert_eq!(std::fs::read(&exe).unwrap(), original);
    assert!(
        r.json()["results"].as_array().unwrap().iter().all(
            |x| x["status"] == "failed" && x["detail"].as_str().unwrap().contains("hard links")
        )
    );

    // break: this name gets its own fixed copy, the other keeps the old bytes.
    let r = fix(&store, &["--hard-links", "break"], &exe);
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert_ne!(std::fs::read(&exe).unwrap(), original);
    assert_eq!(std::fs::read(&other).unwrap(), original);
    assert_ne!(
        std::fs::metadata(&exe).unwrap().ino(),
        std::fs::metadata(&other).unwrap().ino()
    );

    // edit-shared (default): one inode edited in place, both names fixed,
    // and the result says so.
    std::fs::remove_file(&exe).unwrap();
    std::fs::hard_link(&other, &exe).unwrap();
    let r = fix(&store, &[], &app);
    assert_eq!(r.code, Some(0), "{r:#?}");
    let v = r.json();
    let res = &v["results"][0];
    assert_eq!(res["hard_links"], 2, "{v:#}");
    assert!(
        res["detail"]
            .as_str()
            .unwrap()
            .contains("2 hard links share this file"),
        "{v:#}"
    );
    // The other name is not edited a second time (in parallel it would see
    // the first edit as a concurrent change): it shares the result.
    let alias = &v["results"][1];
    assert!(
        alias["detail"]
            .as_str()
            .unwrap()
            .contains("a hard link): fixed with it"),
        "{v:#}"
    );
    assert_eq!(alias["status"], "changed");
    // One inode, one change: the summary counts it once.
    assert_eq!(v["changed"], 1, "{v:#}");
    let want = Some(lib_out.join("lib").display().to_string());
    assert_eq!(common::readelf_dynamic(&exe, "RUNPATH"), want);
    assert_eq!(common::readelf_dynamic(&other, "RUNPATH"), want);
    assert_eq!(
        std::fs::metadata(&exe).unwrap().ino(),
        std::fs::metadata(&other).unwrap().ino()
    );
}

/// `--hard-links break` on an output holding both names of one inode: each
/// name gets its own fixed file (the first rename changes the shared
/// inode's link count, which must not read as a concurrent write).
#[test]
fn hard_links_break_fixes_every_name() {
    common::require_tools(TOOLS);
    let (store, lib_out, app, exe) = world();
    let other = app.join("bin/app-alias");
    std::fs::hard_link(&exe, &other).unwrap();
    let r = fix(&store, &["--hard-links", "break"], &app);
    assert_eq!(r.code, Some(0), "{r:#?}");
    let v = r.json();
    assert_eq!(v["changed"], 2, "{v:#}");
    let want = Some(lib_out.join("lib").display().to_string());
    for p in [&exe, &other] {
        assert_eq!(common::readelf_dynamic(p, "RUNPATH"), want);
        assert_eq!(std::fs::metadata(p).unwrap().nlink(), 1);
        assert_eq!(common::run(p, &[]).success().stdout, "7\n");
    }
}

/// A file given its own copy (`--hard-links break` on a shared inode) is a
/// new file created with the original's mode: a strict umask (here 077)
/// must not narrow it (`unfarm` then sets it). Its extended attributes come
/// along (the copy dropped `user.*` ones).
#[test]
fn replaced_file_keeps_its_mode_and_xattrs_under_a_strict_umask() {
    use std::os::unix::fs::PermissionsExt;
    common::require_tools(TOOLS);
    let (store, _, _, app, exe) = growing_world();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o751)).unwrap();
    set_xattr(&exe, "user.origin", b"built by nix");
    std::fs::hard_link(&exe, app.join("bin/app-alias")).unwrap();
    let ino = std::fs::metadata(&exe).unwrap().ino();
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 077; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_unfarm"))
        .args(["--store-dir", store.dir().to_str().unwrap()])
        .args(["fix", "--system", "--json", "--hard-links", "break"])
        .arg(&exe)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:#?}");
    let meta = std::fs::metadata(&exe).unwrap();
    assert_ne!(meta.ino(), ino, "its own copy, renamed over it");
    assert_eq!(meta.mode() & 0o7777, 0o751);
    assert_eq!(
        get_xattr(&exe, "user.origin").as_deref(),
        Some(&b"built by nix"[..])
    );
    assert_eq!(common::run(&exe, &[]).success().stdout, "42\n");
}

/// A grown file is edited in place: same inode, every hard link sees the
/// fix (`--hard-links edit-shared`, the default), and its extended
/// attributes stay.
#[test]
fn grown_file_is_edited_in_place_for_every_link_and_keeps_xattrs() {
    common::require_tools(TOOLS);
    let (store, foo, bar, app, exe) = growing_world();
    set_xattr(&exe, "user.origin", b"built by nix");
    let other = app.join("bin/app-alias");
    std::fs::hard_link(&exe, &other).unwrap();
    let before = std::fs::metadata(&exe).unwrap();
    let r = fix(&store, &[], &app);
    assert_eq!(r.code, Some(0), "{r:#?}");
    let meta = std::fs::metadata(&exe).unwrap();
    assert_eq!(meta.ino(), before.ino(), "grown in place");
    assert!(meta.len() > before.len());
    assert_eq!((meta.mtime(), meta.nlink()), (before.mtime(), 2));
    let want = format!(
        "{}:{}",
        foo.join("lib").display(),
        bar.join("lib").display()
    );
    for p in [&exe, &other] {
        assert_eq!(common::readelf_dynamic(p, "RUNPATH"), Some(want.clone()));
        assert_eq!(common::run(p, &[]).success().stdout, "42\n");
    }
    assert_eq!(
        get_xattr(&exe, "user.origin").as_deref(),
        Some(&b"built by nix"[..])
    );
    let names: Vec<String> = std::fs::read_dir(app.join("bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains("unfarm-tmp")), "{names:?}");
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid NUL-terminated strings and a value buffer of its length.
    let r = unsafe {
        libc::setxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(r, 0, "setxattr {name}: {}", std::io::Error::last_os_error());
}

fn get_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid NUL-terminated strings and a buffer of its length.
    let r = unsafe { libc::getxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| {
        buf.truncate(r as usize);
        buf
    })
}

/// Surveying outputs reads every ELF file, but (our own files, or as root)
/// with O_NOATIME: with `relatime` the first read after a change would
/// otherwise write every inode (slow on xfs and btrfs), and an unchanged
/// file's times are not ours to touch.
#[test]
fn reading_outputs_leaves_access_times_alone() {
    common::require_tools(TOOLS);
    let (store, lib_out, _app, _exe) = world();
    let lib = lib_out.join("lib/libfoo.so.1.0");
    let lib = if lib.exists() {
        lib
    } else {
        lib_out.join("lib/libfoo.so.1")
    };
    // atime before mtime: a plain read would update it under relatime.
    let t = |s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
    let f = std::fs::File::options().write(true).open(&lib).unwrap();
    f.set_times(
        std::fs::FileTimes::new()
            .set_accessed(t(1000))
            .set_modified(t(2000)),
    )
    .unwrap();
    drop(f);
    let r = store.unfarm(["check", "--system", lib_out.to_str().unwrap()]);
    assert!(r.code.is_some(), "{r:#?}");
    let meta = std::fs::metadata(&lib).unwrap();
    assert_eq!((meta.atime(), meta.mtime()), (1000, 2000));
}

/// A grown program of 200 MiB (sparse), under the old in-memory limit: it
/// is planned and checked range by range, never read whole: the run's
/// peak RSS (the child's own, from `wait4`) stays under 64 MiB.
#[test]
fn mid_size_file_that_grows_is_not_read_whole() {
    common::require_tools(TOOLS);
    let (store, _, _, app, exe) = growing_world();
    let size = 200 << 20;
    let f = std::fs::OpenOptions::new().write(true).open(&exe).unwrap();
    f.set_len(size).unwrap();
    drop(f);
    // The child's own peak RSS. Not wait4 from here: a child spawned from
    // this (large, multi-test) process starts with its peak RSS, so a small
    // python3 parent forks it and reports its wait4 rusage.
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import os,sys\n\
pid=os.fork()\n\
if pid==0:\n    os.dup2(os.open('/dev/null',os.O_WRONLY),1); os.execv(sys.argv[1],sys.argv[1:])\n\
_,st,ru=os.wait4(pid,0)\n\
print(ru.ru_maxrss); sys.exit(os.waitstatus_to_exitcode(st))",
            env!("CARGO_BIN_EXE_unfarm"),
            "--store-dir",
            store.dir().to_str().unwrap(),
            "fix",
            "--system",
        ])
        .arg(&app)
        .output()
        .expect("python3 (scripts/test.sh installs it) runs");
    assert!(out.status.success(), "{out:?}");
    let maxrss: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(maxrss < 64 << 10, "peak RSS {maxrss} KiB");
    assert!(std::fs::metadata(&exe).unwrap().len() > size);
    assert_eq!(common::run(&exe, &[]).success().stdout, "42\n");
}

/// A program whose RUNPATH must grow (a short farm name, two real dirs)
/// of 512 MiB (sparse), larger than `fix` holds in memory: it is grown in
/// place, checked range by range through the patches, and the run writes
/// under 64 KiB: counted by the kernel (`wchar` of `/proc/PID/io`, which a
/// shell accumulates from the children it reaped, `copy_file_range`
/// included) and by the blocks the file allocates.
#[test]
fn file_over_the_memory_limit_that_grows_is_grown_in_place_writing_under_64_kib() {
    common::require_tools(TOOLS);
    let (store, foo, bar, app, exe) = growing_world();
    let size = 512 << 20;
    let f = std::fs::OpenOptions::new().write(true).open(&exe).unwrap();
    f.set_len(size).unwrap();
    drop(f);
    let before = std::fs::metadata(&exe).unwrap();
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg("\"$0\" \"$@\" >/dev/null || exit 9; grep ^wchar: /proc/$$/io")
        .arg(env!("CARGO_BIN_EXE_unfarm"))
        .args(["--store-dir", store.dir().to_str().unwrap()])
        .args(["fix", "--system"])
        .arg(&app)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:#?}");
    let out = String::from_utf8_lossy(&o.stdout);
    let wchar: u64 = out
        .trim()
        .trim_start_matches("wchar:")
        .trim()
        .parse()
        .unwrap();
    assert!(wchar < 64 << 10, "wrote {wchar} bytes");
    let meta = std::fs::metadata(&exe).unwrap();
    assert_eq!(meta.ino(), before.ino(), "grown in place");
    assert!(
        (meta.blocks() - before.blocks()) * 512 < 64 << 10,
        "allocated {} more blocks",
        meta.blocks() - before.blocks()
    );
    assert!(meta.len() > size);
    let want = format!(
        "{}:{}",
        foo.join("lib").display(),
        bar.join("lib").display()
    );
    assert_eq!(common::readelf_dynamic(&exe, "RUNPATH"), Some(want));
    assert_eq!(common::run(&exe, &[]).success().stdout, "42\n");
    // A second run changes nothing.
    let v = fix(&store, &[], &app).json();
    assert_eq!(v["changed"], 0, "{v:#}");
}

/// A file over the in-memory limit whose new RUNPATH fits in place, but
/// which must be copied (`--hard-links break` on a shared inode): the copy
/// is checked range by range like a grown one, and the other name keeps the
/// old file.
#[test]
fn file_over_the_memory_limit_that_must_be_copied_is_checked_as_a_copy() {
    common::require_tools(TOOLS);
    let (store, lib_out, _app, exe) = world();
    let size = unfarm::fix::IN_MEMORY_LIMIT + (8 << 20);
    let f = std::fs::OpenOptions::new().write(true).open(&exe).unwrap();
    f.set_len(size).unwrap();
    drop(f);
    let other = exe.with_file_name("app-alias");
    std::fs::hard_link(&exe, &other).unwrap();
    let old_runpath = common::readelf_dynamic(&exe, "RUNPATH");
    let r = fix(&store, &["--hard-links", "break"], &exe);
    assert_eq!(r.code, Some(0), "{r:#?}");
    let v = r.json();
    assert_eq!(v["results"][0]["status"], "changed", "{v:#}");
    assert_eq!(v["results"][0]["bytes_written"], size, "{v:#}");
    let meta = std::fs::metadata(&exe).unwrap();
    assert_ne!(meta.ino(), std::fs::metadata(&other).unwrap().ino());
    assert_eq!(meta.len(), size, "fits in place: same length");
    assert_eq!(
        common::readelf_dynamic(&exe, "RUNPATH"),
        Some(lib_out.join("lib").display().to_string())
    );
    assert_eq!(common::readelf_dynamic(&other, "RUNPATH"), old_runpath);
    assert_eq!(common::run(&exe, &[]).success().stdout, "7\n");
}

/// A file over the in-memory limit whose old RUNPATH is over 4 KiB (the farm
/// and many dirs that serve nothing): read range by range, the string is
/// found whole, and the shorter one is written in place.
#[test]
fn file_over_the_memory_limit_with_a_long_runpath_is_edited_in_place() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let lib_out = store.output("foo-1.0-lib");
    Cc::gcc().shared_lib(&lib_out.join("lib"), "foo", "1.0", &lib_source("foo", 7));
    let farm = store.farm("a-long-farm-name-joined", &[&lib_out], LinkStyle::Absolute);
    let app = store.output("app-1.0");
    let mut cc = Cc::gcc()
        .link_dir(farm.join("lib"))
        .lib(":libfoo.so.1")
        .search(farm.join("lib"));
    for i in 0..100 {
        cc = cc.search(format!(
            "/nonexistent/unused-search-dir-{i:03}-{}",
            "y".repeat(20)
        ));
    }
    let exe = cc.executable(&app.join("bin/app"), &exe_calling(&["foo"]));
    assert!(common::readelf_dynamic(&exe, "RUNPATH").unwrap().len() > 4096);
    let size = unfarm::fix::IN_MEMORY_LIMIT + (8 << 20);
    let f = std::fs::OpenOptions::new().write(true).open(&exe).unwrap();
    f.set_len(size).unwrap();
    drop(f);
    let ino = std::fs::metadata(&exe).unwrap().ino();
    let r = fix(&store, &[], &app);
    assert_eq!(r.code, Some(0), "{r:#?}");
    let v = r.json();
    assert_eq!(v["results"][0]["status"], "changed", "{v:#}");
    let written = v["results"][0]["bytes_written"].as_u64().unwrap();
    assert!(written > 4096 && written < 64 << 10, "{v:#}");
    let meta = std::fs::metadata(&exe).unwrap();
    assert_eq!((meta.ino(), meta.len()), (ino, size), "in place");
    let runpath = common::readelf_dynamic(&exe, "RUNPATH").unwrap();
    assert!(
        runpath.starts_with(&format!("{}:", lib_out.join("lib").display())),
        "{runpath}"
    );
    assert!(!runpath.contains("joined"), "{runpath}");
    assert_eq!(common::run(&exe, &[]).success().stdout, "7\n");
}

/// Nested roots (`fix OUT OUT/bin`) reach the program twice: it is fixed
/// once and reported once.
#[test]
fn nested_roots_fix_each_file_once() {
    common::require_tools(TOOLS);
    let (store, lib_out, app, exe) = world();
    let r = store.unfarm([
        std::ffi::OsStr::new("fix"),
        "--system".as_ref(),
        "--json".as_ref(),
        app.as_os_str(),
        app.join("bin").as_os_str(),
        app.as_os_str(),
    ]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    let v = r.json();
    assert_eq!(
        (v["changed"].as_u64(), v["failed"].as_u64()),
        (Some(1), Some(0)),
        "{v:#}"
    );
    assert_eq!(v["results"].as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(
        common::readelf_dynamic(&exe, "RUNPATH"),
        Some(lib_out.join("lib").display().to_string())
    );
}

/// The system calls that force data to disk which `fix` made (strace's log
/// of the whole process tree), and the run.
fn syncs_of(store: &Store, extra: &[&str], out: &Path) -> (Vec<String>, common::Run) {
    let log = store.dir().with_extension("strace");
    let mut args: Vec<String> = vec![
        "-f".into(),
        "-qq".into(),
        "-e".into(),
        "trace=syncfs,fsync,fdatasync,sync,sync_file_range,rename,renameat,renameat2".into(),
        "-o".into(),
        log.display().to_string(),
        env!("CARGO_BIN_EXE_unfarm").into(),
        "--store-dir".into(),
        store.dir().display().to_string(),
        "fix".into(),
        "--system".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(out.display().to_string());
    let o = std::process::Command::new("strace")
        .args(&args)
        .env_remove("NIX_STORE")
        .output()
        .expect("run strace");
    let run = common::Run {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    let calls = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    let _ = std::fs::remove_file(&log);
    (calls, run)
}

/// `--no-sync` (the hook's, inside a build) forces nothing to disk and
/// grows a small file in place (no copy renamed over it); without it the
/// run syncs its filesystem and copies; both write the same bytes, for an
/// edit in place and for a grow.
#[test]
fn no_sync_skips_every_sync_and_writes_the_same_bytes() {
    common::require_tools(&["gcc", "readelf", "strace"]);
    let (s1, _, app1, exe1) = world();
    let (s2, _, _, app2, exe2) = growing_world();
    for (store, app, exe) in [(&s1, &app1, &exe1), (&s2, &app2, &exe2)] {
        let pristine = std::fs::read(exe).unwrap();
        let (synced, run) = syncs_of(store, &[], app);
        assert_eq!(run.code, Some(0), "{run:#?}");
        let with = std::fs::read(exe).unwrap();
        assert_ne!(with, pristine, "nothing was fixed: {run:#?}");
        assert!(
            synced.iter().any(|c| c.contains("syncfs(")),
            "a plain fix syncs: {synced:?}"
        );
        let grows = exe == &exe2;
        assert_eq!(
            synced.iter().any(|c| c.contains("rename")),
            grows,
            "a plain fix copies and renames a growing small file, and only that: {synced:?}"
        );
        std::fs::write(exe, &pristine).unwrap();
        let (calls, run) = syncs_of(store, &["--no-sync"], app);
        assert_eq!(run.code, Some(0), "{run:#?}");
        assert!(
            calls.is_empty(),
            "--no-sync made these calls (a sync, or a rename: a copy): {calls:?}"
        );
        assert!(
            std::fs::read(exe).unwrap() == with,
            "--no-sync wrote other bytes than a plain fix"
        );
    }
}

//! Fault injection for `unfarm fix`: SIGKILL at deterministic moments, a
//! full disk, a read-only mount, permission denied, a file that changes
//! between plan and write: each failure is one line naming the file, exit 1,
//! and every other file is either fixed or byte-identical. A symlink loop,
//! a FIFO or a device node in an output is never followed or opened: it is
//! left alone and reported (one line, exit 1) while the rest is fixed. Needs
//! root (mount, mknod, setpriv), gcc.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Cc, LinkStyle, Run, Store, exe_calling, lib_source};

const TOOLS: &[&str] = &["gcc", "readelf"];

/// A store with three lib outputs with long names joined by a short farm,
/// and one program linked through the farm (RUNPATH = the farm's lib).
/// Fixing it expands the farm into three long dirs: the edit grows, in
/// place (journal, append, switch, scrub). Returns (store, program bytes).
struct World {
    store: Store,
    farm_lib: PathBuf,
    prog: Vec<u8>,
}

fn world() -> World {
    common::require_tools(TOOLS);
    let store = Store::new();
    let mut members = Vec::new();
    for (i, n) in ["foo", "bar", "baz"].iter().enumerate() {
        let out = store.output(&format!(
            "{n}-1.0-with-a-rather-long-output-name-so-the-path-grows-lib"
        ));
        Cc::gcc().shared_lib(&out.join("lib"), n, "1.0", &lib_source(n, 40 + i as i32));
        members.push(out);
    }
    let refs: Vec<&Path> = members.iter().map(PathBuf::as_path).collect();
    let farm = store.farm("f", &refs, LinkStyle::Absolute);
    let farm_lib = farm.join("lib");
    let exe = store.scratch().join("prog");
    // It imports dlopen (never called), so the farm expands to every
    // library it offers: the three long dirs, and every edit grows.
    let source = exe_calling(&["foo"]).replace(
        "int main(void) {",
        "#include <dlfcn.h>\nvoid *(*volatile keep_dlopen)(const char *, int) = dlopen;\nint main(void) {",
    );
    Cc::gcc()
        .link_dir(&farm_lib)
        .lib(":libfoo.so.1")
        .search(&farm_lib)
        .executable(&exe, &source);
    let prog = std::fs::read(&exe).unwrap();
    World {
        store,
        farm_lib,
        prog,
    }
}

impl World {
    /// An output `name` with `n` copies of the program in `bin/`.
    fn app(&self, name: &str, n: usize) -> PathBuf {
        let out = self.store.output(name);
        let bin = out.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for i in 0..n {
            put(&bin.join(format!("p{i:03}")), &self.prog);
        }
        out
    }

    fn fix(&self, extra: &[&str], outs: &[&Path]) -> Run {
        let mut a: Vec<std::ffi::OsString> = vec!["fix".into()];
        a.extend(extra.iter().map(Into::into));
        a.extend(outs.iter().map(|p| p.as_os_str().to_owned()));
        self.store.unfarm(a)
    }

    /// The bytes `fix` produces for the program (fixing a reference copy).
    fn fixed_bytes(&self) -> Vec<u8> {
        let out = self.app("reference-app", 1);
        self.fix(&[], &[&out]).success();
        let b = std::fs::read(out.join("bin/p000")).unwrap();
        assert_ne!(b, self.prog, "reference copy was not changed");
        b
    }

    /// The bytes an uninterrupted `fix` leaves, and the (growing) edit of
    /// the program that leads there.
    fn grow_edit(&self) -> (Vec<u8>, unfarm::edit::ElfEdit) {
        let fixed = self.fixed_bytes();
        let new_runpath = unfarm::elf::parse_facts(&fixed[..])
            .unwrap()
            .runpath
            .unwrap();
        let req = unfarm::edit::EditRequest {
            tag: unfarm::edit::SearchPathTag::Runpath,
            new_value: &new_runpath,
            scrub: &[],
            drop_ldcache_note: true,
        };
        let edit = unfarm::edit::plan_edit(&self.prog[..], self.prog.len() as u64, &req).unwrap();
        assert!(edit.grew);
        (fixed, edit)
    }
}

fn put(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Every file under `dir` (not following links): path -> bytes (or link target).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut m = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let e = e.unwrap();
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                m.insert(p, t.into_os_string().into_encoded_bytes());
            } else if ft.is_file() {
                m.insert(p.clone(), std::fs::read(&p).unwrap_or_default());
            } else {
                m.insert(p, b"<special>".to_vec());
            }
        }
    }
    m
}

fn temps(dir: &Path) -> Vec<PathBuf> {
    snapshot(dir)
        .into_keys()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(".unfarm-tmp-"))
        })
        .collect()
}

/// The program runs and prints what the library returns.
fn runs(p: &Path) {
    let r = common::run(p, &[]);
    assert_eq!(r.code, Some(0), "{} does not run: {r:#?}", p.display());
}

/// The error lines on stderr that name `path`.
fn lines_naming<'a>(r: &'a Run, path: &Path) -> Vec<&'a str> {
    let p = path.to_str().unwrap();
    r.stderr.lines().filter(|l| l.contains(p)).collect()
}

/// Assert `fix` failed with exit 1 and exactly one stderr line naming
/// `path` that contains `what`.
fn assert_one_line(r: &Run, path: &Path, what: &str) {
    assert_eq!(r.code, Some(1), "{r:#?}");
    let lines = lines_naming(r, path);
    assert_eq!(
        lines.len(),
        1,
        "want one line naming {}: {r:#?}",
        path.display()
    );
    eprintln!("error line: {}", lines[0]);
    assert!(lines[0].contains(what), "want {what:?} in {:?}", lines[0]);
}

/// A mount the test made; lazily unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount tmpfs at {} (needs root)", at.display());
        Mount(at.to_owned())
    }
    fn overlay(at: &Path, lower: &Path, upper: &Path, work: &Path) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        let st = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(
            st.success(),
            "mount overlay at {} (needs root)",
            at.display()
        );
        Mount(at.to_owned())
    }
    fn remount_ro(&self) {
        let st = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success(), "remount ro");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// SIGKILL `unfarm fix` over 200 files at deterministic moments, several
/// rounds. Every edit grows the file: the 100 with a second name (a hard
/// link) grow in place, journaled; the 100 small ones with one name are
/// copied whole and renamed over. Every file is the original, the fully
/// fixed image, or (killed between two steps of its in-place grow, its
/// journal beside it) a file that loads as one of the two; the next run
/// rolls those back, removes temp files and completes the job,
/// byte-identical to an uninterrupted run.
#[test]
fn sigkill_leaves_every_file_old_or_fixed() {
    let w = world();
    let fixed = w.fixed_bytes();
    let linked = |i: usize| i.is_multiple_of(2);
    let app = |name: &str| {
        let out = w.app(name, 200);
        let bin = out.join("bin");
        for i in (0..200).filter(|&i| linked(i)) {
            let p = bin.join(format!("p{i:03}"));
            std::fs::hard_link(&p, bin.join(format!("q{i:03}"))).unwrap();
        }
        out
    };
    let out = app("app-1.0");
    let bin = out.join("bin");
    let mut saw_journal = false;
    let args = |o: &Path| {
        vec![
            "--store-dir".into(),
            w.store.dir().as_os_str().to_owned(),
            std::ffi::OsString::from("fix"),
            o.as_os_str().to_owned(),
        ]
    };
    // How long a full run takes, on a copy.
    let probe = app("timing-app");
    let t0 = Instant::now();
    let st = Command::new(env!("CARGO_BIN_EXE_unfarm"))
        .args(args(&probe))
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    let full = t0.elapsed().max(Duration::from_millis(20));
    // Deterministic kill moments: fractions of a full run (LCG, fixed seed).
    let mut seed: u64 = 0x5eed_f00d;
    let mut saw_old = false;
    // Six rounds, more (up to 16) until a kill has landed both before the
    // end and during an in-place grow: a loaded machine shifts the moments.
    for round in 0..16 {
        if round >= 6 && saw_old && saw_journal {
            break;
        }
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let frac = 0.1 + ((seed >> 33) % 800) as f64 / 1000.0;
        let mut child = Command::new(env!("CARGO_BIN_EXE_unfarm"))
            .args(args(&out))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full.mul_f64(frac));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let mut old = 0;
        for i in 0..200 {
            let p = bin.join(format!("p{i:03}"));
            let b = std::fs::read(&p).unwrap();
            if b == w.prog {
                old += 1;
            } else if b != fixed {
                assert!(
                    linked(i) && journal_of(&p).is_some(),
                    "round {round}: p{i:03} is neither old nor fixed, and has no journal"
                );
                loads_old_or_new(&w, &p, &fixed);
            }
            saw_journal |= journal_of(&p).is_some();
        }
        saw_old |= old > 0;
        if old == 0 {
            // Everything done already: start again from the originals.
            for i in 0..200 {
                put(&bin.join(format!("p{i:03}")), &w.prog);
            }
        }
    }
    assert!(saw_old, "no kill landed before the run finished");
    assert!(saw_journal, "no kill landed during an in-place grow");
    // The next run completes the job and removes the temp files.
    w.fix(&[], &[&out]).success();
    assert!(temps(&out).is_empty(), "temp files left: {:?}", temps(&out));
    for i in 0..200 {
        let p = bin.join(format!("p{i:03}"));
        assert!(std::fs::read(&p).unwrap() == fixed, "p{i:03} not fixed");
        if linked(i) {
            let q = bin.join(format!("q{i:03}"));
            assert_eq!(
                std::fs::metadata(&q).unwrap().ino(),
                std::fs::metadata(&p).unwrap().ino()
            );
        }
    }
    let f = unfarm::elf::read_facts(&bin.join("p000")).unwrap();
    let rp = f.runpath.unwrap();
    assert!(
        !rp.contains(w.farm_lib.to_str().unwrap()) && rp.split(':').count() == 3,
        "{rp}"
    );
    runs(&bin.join("p000"));
    runs(&bin.join("p199"));
}

/// The journal an interrupted in-place edit of `p` left beside it.
fn journal_of(p: &Path) -> Option<PathBuf> {
    let name = p.file_name()?.to_str()?;
    std::fs::read_dir(p.parent()?)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|j| {
            j.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&format!(".{name}.unfarm-tmp-")) && n.ends_with("-journal")
            })
        })
}

/// `p`, part way through its edit, loads as the old or the new object: what
/// the loader reads (program headers, the dynamic array, the strings at
/// DT_STRTAB; not the section headers, which may still describe the old
/// layout until the last step) gives the old or the new RUNPATH and the
/// same NEEDED, and it runs.
fn loads_old_or_new(w: &World, p: &Path, fixed: &[u8]) {
    let got = loader_view(&std::fs::read(p).unwrap());
    assert!(
        got == loader_view(&w.prog) || got == loader_view(fixed),
        "{}: {got:?}",
        p.display()
    );
    runs(p);
}

/// (tag, value) of the dynamic entries a 64-bit little-endian object's
/// loader sees, string values read at DT_STRTAB through the PT_LOADs.
fn loader_view(data: &[u8]) -> Vec<(i64, String)> {
    use object::elf::{DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_STRTAB, FileHeader64, PT_LOAD};
    use object::read::elf::{Dyn, FileHeader, ProgramHeader};
    let e = object::LittleEndian;
    let h = FileHeader64::<object::LittleEndian>::parse(data).unwrap();
    let phdrs = h.program_headers(e, data).unwrap();
    let dynamic = phdrs
        .iter()
        .find_map(|ph| ph.dynamic(e, data).unwrap())
        .unwrap();
    let offset_of = |vaddr: u64| {
        phdrs
            .iter()
            .filter(|ph| ph.p_type(e) == PT_LOAD)
            .find(|ph| (ph.p_vaddr(e)..ph.p_vaddr(e) + ph.p_filesz(e)).contains(&vaddr))
            .map(|ph| (vaddr - ph.p_vaddr(e) + ph.p_offset(e)) as usize)
            .unwrap()
    };
    let strtab = dynamic
        .iter()
        .find(|d| d.d_tag(e) == DT_STRTAB)
        .map(|d| offset_of(d.d_val(e)))
        .unwrap();
    dynamic
        .iter()
        .filter(|d| [DT_NEEDED, DT_RUNPATH, DT_RPATH].contains(&d.d_tag(e)))
        .map(|d| {
            let s = &data[strtab + d.d_val(e) as usize..];
            let s = &s[..s.iter().position(|&b| b == 0).unwrap()];
            (d.d_tag(e).0, String::from_utf8_lossy(s).into_owned())
        })
        .collect()
}

/// Killed between any two steps of an in-place grow (the state a SIGKILL
/// or a power loss can leave: old bytes plus appended ones, the switch made
/// or not, the dead bytes scrubbed or not, and the journal): the file loads
/// as the old or the new object, and the next `fix` rolls it back and
/// redoes it, byte-identical to an uninterrupted run. The states are made
/// step by step through the library, then the journal is given the pid of
/// a process that no longer exists.
#[test]
fn killed_between_any_two_steps_of_a_grow_is_redone_byte_identical() {
    use unfarm::fix::atomic::{Durability, HardLinks, Staged, StepKind};
    let w = world();
    let (fixed, edit) = w.grow_edit();
    let mut kinds = Vec::new();
    for k in 0.. {
        let out = w.app(&format!("app-{k}"), 1);
        let p = out.join("bin/p000");
        let Staged::Patching(mut pending) =
            unfarm::fix::atomic::stage(&p, &edit, HardLinks::EditShared, Durability::Batch, |_| {
                Ok(())
            })
            .unwrap()
        else {
            panic!("a grow is written in place");
        };
        for _ in 0..k {
            pending.step(Durability::Batch).unwrap();
        }
        let Some(next) = pending.next_step() else {
            assert_eq!(
                std::fs::read(&p).unwrap(),
                fixed,
                "all steps: the fixed image"
            );
            break;
        };
        kinds.push(next);
        // Killed here: no rollback, the journal stays.
        pending.interrupt();
        loads_old_or_new(&w, &p, &fixed);
        let j = journal_of(&p).unwrap();
        let dead = j
            .to_str()
            .unwrap()
            .replace(&format!("-{}-", std::process::id()), "-2147483646-");
        std::fs::rename(&j, &dead).unwrap();
        let r = w.fix(&[], &[&out]);
        assert_eq!(r.code, Some(0), "killed before {next:?}: {r:#?}");
        assert!(
            std::fs::read(&p).unwrap() == fixed,
            "killed before {next:?}: not byte-identical"
        );
        assert!(
            temps(&out).is_empty(),
            "killed before {next:?}: {:?}",
            temps(&out)
        );
        runs(&p);
    }
    // The journal, the appended part, the switch and the scrubbed bytes
    // were each a state of their own.
    assert!(
        kinds.contains(&StepKind::Append) && kinds.contains(&StepKind::Dead),
        "{kinds:?}"
    );
    assert!(kinds.len() >= 4, "{kinds:?}");
}

/// Persist part of `writes`, as a disk that lost power part way through a
/// step can: each write is cut at 512-byte sector boundaries and `keep`
/// picks the pieces (by index among all of them) that reached the platter.
fn persist_part(p: &Path, writes: &[(u64, Vec<u8>)], keep: impl Fn(usize) -> bool) {
    use std::os::unix::fs::FileExt;
    const SECTOR: u64 = 512;
    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    let mut i = 0;
    for (off, bytes) in writes {
        let (mut at, end) = (*off, off + bytes.len() as u64);
        while at < end {
            let next = ((at / SECTOR + 1) * SECTOR).min(end);
            if keep(i) {
                let r = (at - off) as usize..(next - off) as usize;
                f.write_all_at(&bytes[r], at).unwrap();
            }
            i += 1;
            at = next;
        }
    }
}

/// A power loss part way through any step of an in-place grow (each step is
/// durable before the next begins, so only the step in flight can be
/// partial, torn at sector boundaries), or while the journal was written:
/// the next `fix` rolls the file back from the journal (or, for a torn
/// journal, leaves the untouched file alone) and redoes the edit,
/// byte-identical to an uninterrupted run.
#[test]
fn power_loss_part_way_through_any_step_is_redone_byte_identical() {
    use unfarm::fix::atomic::{Durability, HardLinks, Staged};
    let w = world();
    let (fixed, edit) = w.grow_edit();
    // Which sector pieces of the step in flight persisted.
    type Keep = fn(usize) -> bool;
    let tears: [(&str, Keep); 3] = [
        ("the first sector only", |i| i == 0),
        ("all but the first sector", |i| i != 0),
        ("every other sector", |i| i % 2 == 0),
    ];
    let mut torn_steps = 0;
    // Steps, then a torn journal (no step begun).
    for k in 0.. {
        let mut done = false;
        for (t, (how, keep)) in tears.iter().enumerate() {
            let out = w.app(&format!("app-{k}-{t}"), 1);
            let p = out.join("bin/p000");
            let Staged::Patching(mut pending) = unfarm::fix::atomic::stage(
                &p,
                &edit,
                HardLinks::EditShared,
                Durability::Batch,
                |_| Ok(()),
            )
            .unwrap() else {
                panic!("a grow is written in place");
            };
            for _ in 0..k {
                pending.step(Durability::Batch).unwrap();
            }
            let Some(next) = pending.next_step() else {
                done = true;
                break;
            };
            let writes = pending.next_writes().to_vec();
            pending.interrupt();
            let j = journal_of(&p).unwrap();
            if k == 0 && t == 0 {
                // Torn while the journal was written: the block holding the
                // start of the first range's old bytes (after the 104 bytes
                // of header, count, offset and length) never reached the
                // disk and reads as zeros. The file is untouched.
                let mut jb = std::fs::read(&j).unwrap();
                let lost = 104..(104 + 64).min(jb.len() - 16);
                assert!(
                    jb[lost.clone()].iter().any(|&b| b != 0),
                    "a tear that matters"
                );
                jb[lost].fill(0);
                std::fs::write(&j, jb).unwrap();
                assert_eq!(std::fs::read(&p).unwrap(), w.prog, "nothing written yet");
            } else {
                persist_part(&p, &writes, keep);
                torn_steps += usize::from(!writes.is_empty());
            }
            let dead = j
                .to_str()
                .unwrap()
                .replace(&format!("-{}-", std::process::id()), "-2147483646-");
            std::fs::rename(&j, &dead).unwrap();
            let r = w.fix(&[], &[&out]);
            assert_eq!(r.code, Some(0), "power lost in {next:?}, {how}: {r:#?}");
            assert!(
                std::fs::read(&p).unwrap() == fixed,
                "power lost in {next:?}, {how}: not byte-identical"
            );
            assert!(temps(&out).is_empty(), "{next:?}, {how}: {:?}", temps(&out));
            runs(&p);
        }
        if done {
            break;
        }
    }
    assert!(torn_steps >= 6, "{torn_steps} torn steps");
}

/// A temp file of a killed run (a pid that no longer exists) is removed by
/// the next `fix` in that directory, and is not itself treated as an object.
#[test]
fn stale_temp_is_removed_by_next_run() {
    let w = world();
    let out = w.app("app-1.0", 2);
    let stale = out.join("bin/.p000.unfarm-tmp-2147483646-0badf00d");
    put(&stale, &w.prog);
    let r = w.fix(&[], &[&out]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert!(!stale.exists());
    assert!(temps(&out).is_empty());
}

/// A full disk: the copy path fails with ENOSPC; one line names the file,
/// exit 1, the file is byte-identical, the file on another disk is fixed.
#[test]
fn disk_full() {
    let w = world();
    let fixed = w.fixed_bytes();
    let good = w.app("app-ok", 1);
    let out = w.store.output("app-full");
    let bin = out.join("bin");
    let _m = Mount::tmpfs(&bin, "256k");
    let victim = bin.join("p000");
    put(&victim, &w.prog);
    // Fill the rest.
    let mut i = 0;
    while std::fs::write(bin.join(format!(".fill{i}")), vec![0u8; 4096]).is_ok() {
        i += 1;
    }
    let _ = std::fs::remove_file(bin.join(format!(".fill{i}")));
    let before = snapshot(&out);
    let r = w.fix(&[], &[&out, &good]);
    assert_one_line(&r, &victim, "disk full (ENOSPC)");
    assert!(snapshot(&out) == before, "full-disk output changed");
    assert!(std::fs::read(good.join("bin/p000")).unwrap() == fixed);
}

/// A read-only mount: EROFS; nothing on it changes; other outputs are fixed.
#[test]
fn read_only_mount() {
    let w = world();
    let fixed = w.fixed_bytes();
    let good = w.app("app-ok", 1);
    let out = w.store.output("app-ro");
    let bin = out.join("bin");
    let m = Mount::tmpfs(&bin, "4m");
    let victim = bin.join("p000");
    put(&victim, &w.prog);
    m.remount_ro();
    let before = snapshot(&out);
    let r = w.fix(&[], &[&out, &good]);
    assert_one_line(&r, &victim, "read-only file system");
    assert!(snapshot(&out) == before);
    assert!(std::fs::read(good.join("bin/p000")).unwrap() == fixed);
}

/// A file with mode 0444: as root (who may write it anyway) it is fixed by
/// the copy path and keeps its mode.
/// A non-root run on small growing files: its own is copied whole and
/// renamed over (a new inode, still its own); another user's file it may
/// write is left as it was, with one line saying why (a copy would change
/// its owner, and writing it in place its times, which only the owner or
/// root may put back).
#[test]
fn a_non_root_run_keeps_owners_and_times() {
    use std::os::unix::fs::MetadataExt;
    let w = world();
    let fixed = w.fixed_bytes();
    let out = w.app("app-owners", 2);
    open_to_nobody(&w);
    let bin = out.join("bin");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (own, other) = (bin.join("p000"), bin.join("p001"));
    std::os::unix::fs::chown(&own, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o777)).unwrap();
    let meta = |p: &Path| std::fs::metadata(p).unwrap();
    let (own0, other0) = (meta(&own), meta(&other));
    let r = fix_as_nobody(&w, &out);
    assert_one_line(&r, &other, "owned by uid 0: its times could not be kept");
    assert!(
        std::fs::read(&own).unwrap() == fixed,
        "its own file not fixed"
    );
    assert!(
        std::fs::read(&other).unwrap() == w.prog,
        "another's file changed"
    );
    let (own1, other1) = (meta(&own), meta(&other));
    assert_ne!(own1.ino(), own0.ino(), "its own small file: copied whole");
    assert_eq!(own1.uid(), 65534);
    assert_eq!(
        (
            other1.ino(),
            other1.uid(),
            other1.mtime(),
            other1.mtime_nsec()
        ),
        (other0.ino(), 0, other0.mtime(), other0.mtime_nsec())
    );
    assert!(temps(&out).is_empty(), "temp files left: {:?}", temps(&out));
}

#[test]
fn read_only_file_mode_is_kept() {
    let w = world();
    let fixed = w.fixed_bytes();
    let out = w.app("app-0444", 1);
    let p = out.join("bin/p000");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).unwrap();
    w.fix(&[], &[&out]).success();
    assert!(std::fs::read(&p).unwrap() == fixed);
    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o444);
}

/// Permission denied: `fix` run as an unprivileged user (setpriv) on files
/// it may read but not write: one line per file naming it, exit 1, nothing
/// changes.
/// Let `nobody` traverse the dirs above the store (to /tmp) and read it.
fn open_to_nobody(w: &World) {
    let mut d = w.store.dir().to_owned();
    while d.pop() {
        if d.as_os_str().len() <= 1 || d == Path::new("/tmp") {
            break;
        }
        let m = std::fs::metadata(&d).unwrap().permissions().mode();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(m | 0o755)).unwrap();
    }
}

/// `unfarm fix OUT` run as `nobody` (uid 65534, no groups).
fn fix_as_nobody(w: &World, out: &Path) -> Run {
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_unfarm"))
        .arg("--store-dir")
        .arg(w.store.dir())
        .arg("fix")
        .arg(out)
        .output()
        .expect("run setpriv (util-linux)");
    Run {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

#[test]
fn permission_denied() {
    let w = world();
    let out = w.app("app-perm", 2);
    open_to_nobody(&w);
    let before = snapshot(w.store.dir());
    let r = fix_as_nobody(&w, &out);
    for i in 0..2 {
        assert_one_line(&r, &out.join(format!("bin/p{i:03}")), "permission denied");
    }
    assert!(snapshot(w.store.dir()) == before);
}

/// A symlink loop in the output is never followed and left as it is; it is
/// reported in one line (exit 1) and the program beside it is fixed.
#[test]
fn symlink_loop_in_output() {
    let w = world();
    let fixed = w.fixed_bytes();
    let out = w.app("app-loop", 1);
    let a = out.join("bin/loop-a");
    let b = out.join("bin/loop-b");
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    let r = w.fix(&[], &[&out]);
    assert_one_line(&r, &a, "symlink loop");
    assert_one_line(&r, &b, "symlink loop");
    assert!(std::fs::read(out.join("bin/p000")).unwrap() == fixed);
    assert_eq!(std::fs::read_link(&a).unwrap(), b);
    assert_eq!(std::fs::read_link(&b).unwrap(), a);
}

/// A FIFO and a device node in the output are never opened (no hang on the
/// FIFO) and left alone; each is reported in one line (exit 1) and the
/// program beside them is fixed.
#[test]
fn fifo_and_device_node() {
    let w = world();
    let fixed = w.fixed_bytes();
    let out = w.app("app-special", 1);
    let fifo = out.join("bin/fifo");
    let dev = out.join("bin/null-dev");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    assert!(
        Command::new("mknod")
            .arg(&dev)
            .args(["c", "1", "3"])
            .status()
            .unwrap()
            .success()
    );
    let r = w.fix(&[], &[&out]);
    assert_one_line(&r, &fifo, "a FIFO in an output");
    assert_one_line(&r, &dev, "a character device in an output");
    assert!(std::fs::read(out.join("bin/p000")).unwrap() == fixed);
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert!(
        std::fs::symlink_metadata(&dev)
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

/// A file that changes between plan and write: the atomic layer notices
/// (size before the in-place write; size/mtime after verification, on both
/// paths) and leaves the changed file alone, temp file removed.
#[test]
fn file_changed_during_write() {
    let w = world();
    let out = w.app("app-change", 1);
    let p = out.join("bin/p000");
    let append = |p: &Path, b: &[u8]| {
        let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
        std::io::Write::write_all(&mut f, b).unwrap();
    };
    let plan = |new_value: &str| {
        let data = std::fs::read(&p).unwrap();
        let req = unfarm::edit::EditRequest {
            tag: unfarm::edit::SearchPathTag::Runpath,
            new_value,
            scrub: &[],
            drop_ldcache_note: false,
        };
        unfarm::edit::plan_edit(&data[..], data.len() as u64, &req).unwrap()
    };
    let long = "/a/much/longer/runpath/than/before/so/that/the/file/grows/a/lot/xx:/y/z/w/v/u/t";
    let check = |r: Result<unfarm::fix::atomic::Method, unfarm::fix::atomic::AtomicError>| {
        let err = r.map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("changed since the edit was planned"), "{err}");
        assert!(
            err.contains(p.to_str().unwrap()) && !err.contains('\n'),
            "{err}"
        );
        assert!(temps(&out).is_empty());
    };
    // In place, modified after planning: the size check.
    let e = plan("/a");
    assert!(e.single_in_place().is_some());
    append(&p, b"appended");
    let now = std::fs::read(&p).unwrap();
    check(unfarm::fix::atomic::apply(
        &p,
        &e,
        unfarm::fix::atomic::HardLinks::Break,
        |_| Ok(()),
    ));
    assert!(std::fs::read(&p).unwrap() == now);
    // In place, modified by the verify hook (during the run).
    let e = plan("/a");
    let mut after = Vec::new();
    check(unfarm::fix::atomic::apply(
        &p,
        &e,
        unfarm::fix::atomic::HardLinks::Break,
        |_| {
            append(&p, b"more");
            after = std::fs::read(&p).unwrap();
            Ok(())
        },
    ));
    assert!(std::fs::read(&p).unwrap() == after);
    // Copy path (grow), modified by the verify hook: not renamed over it.
    let e = plan(long);
    assert!(e.grew);
    let mut after = Vec::new();
    check(unfarm::fix::atomic::apply(
        &p,
        &e,
        unfarm::fix::atomic::HardLinks::Break,
        |_| {
            append(&p, b"again");
            after = std::fs::read(&p).unwrap();
            Ok(())
        },
    ));
    assert!(std::fs::read(&p).unwrap() == after);
}

/// A program in an overlayfs lower layer (Nix in a container whose /nix
/// comes from the image): opening it for writing copies it up, keeping its
/// inode number, size and mtime but not its change time. That is not a
/// concurrent write: the in-place edit goes ahead, in the upper layer.
#[test]
fn overlayfs_lower_layer_file_is_edited_in_place() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let lib_out = store.output("foo-1.0-lib");
    Cc::gcc().shared_lib(&lib_out.join("lib"), "foo", "1.0", &lib_source("foo", 7));
    let farm = store.farm(
        "a-rather-long-symlink-farm-name-joined",
        &[&lib_out],
        LinkStyle::Absolute,
    );
    // All layers on one tmpfs (an overlay upper layer cannot itself be on
    // overlayfs, as /tmp may be in a container).
    let layers = store.scratch().join("layers");
    let _t = Mount::tmpfs(&layers, "16m");
    let [lower, upper, work] = ["lower", "upper", "work"].map(|d| layers.join(d));
    for d in [&lower, &upper, &work] {
        std::fs::create_dir_all(d).unwrap();
    }
    Cc::gcc()
        .link_dir(farm.join("lib"))
        .lib(":libfoo.so.1")
        .search(farm.join("lib"))
        .executable(&lower.join("app"), &exe_calling(&["foo"]));
    let out = store.output("app-1.0");
    let bin = out.join("bin");
    let _o = Mount::overlay(&bin, &lower, &upper, &work);
    assert!(!upper.join("app").exists());
    let r = store.unfarm([
        std::ffi::OsStr::new("fix"),
        "--json".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(r.code, Some(0), "{r:#?}");
    let v = r.json();
    let res = &v["results"][0];
    assert_eq!(res["status"], "changed", "{v:#}");
    assert!(
        res["bytes_written"].as_u64().unwrap() < 4096,
        "in place: {v:#}"
    );
    assert!(upper.join("app").exists(), "copied up");
    let exe = bin.join("app");
    assert_eq!(
        common::readelf_dynamic(&exe, "RUNPATH"),
        Some(lib_out.join("lib").display().to_string())
    );
    assert_eq!(common::run(&exe, &[]).success().stdout, "7\n");
}

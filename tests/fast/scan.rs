//! Scanner: the skip loop, chunk boundaries, and attribution of every hit.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::prelude::*;
use unfarm::closure::scan::{
    Candidates, Context, ElfMeaning, Hash, Hit, ScanError, ScannedFiles, Scanner,
    for_each_base32_window, hash_of,
};
use unfarm::store::{StoreDir, is_base32};

const H1: &str = "0123456789abcdfghijklmnpqrsvwxyz";
const H2: &str = "zyxwvsrqpnmlkjihgfdcba9876543210";
const H3: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn scanner(sd: &StoreDir, hashes: &[&str]) -> Scanner {
    Scanner::new(
        sd,
        Candidates::Hashes(hashes.iter().map(|h| hash_of(h).unwrap()).collect()),
    )
}

fn naive_windows(buf: &[u8]) -> Vec<usize> {
    (0..buf.len().saturating_sub(31))
        .filter(|&i| buf[i..i + 32].iter().all(|&b| is_base32(b)))
        .collect()
}

proptest! {
    // A fixed seed: CI must be repeatable.
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5ca1_ab1e), ..ProptestConfig::default() })]
    #[test]
    fn skip_loop_finds_every_window(bytes in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'0'), Just(b'e'), Just(b'/'), any::<u8>()], 0..400)) {
        let mut got = Vec::new();
        for_each_base32_window(&bytes, |i| got.push(i));
        prop_assert_eq!(got, naive_windows(&bytes));
    }
}

#[test]
fn hashes_across_chunk_boundaries_found_once_with_exact_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let sd = StoreDir::new(dir.path().join("store"));
    let root = dir.path().join("out");
    std::fs::create_dir(&root).unwrap();
    let chunk = 1usize << 20;
    let mut data = vec![0u8; 3 * chunk + 100];
    // Buffers end at chunk + 31, 2 * chunk + 31, ...: a hash ending exactly at a
    // buffer end (carried over, must not count twice), hashes straddling ends.
    let offsets = [0, 40, chunk - 1, chunk + 40, 2 * chunk + 15, 3 * chunk + 60];
    for &o in &offsets {
        data[o..o + 32].copy_from_slice(H1.as_bytes());
        data[o + 32] = 0;
    }
    std::fs::write(root.join("blob"), &data).unwrap();
    let hits = scanner(&sd, &[H1, H2]).hits(&root).unwrap();
    let got: Vec<u64> = hits.iter().map(|h| h.offset).collect();
    assert_eq!(got, offsets.iter().map(|&o| o as u64).collect::<Vec<_>>());
    assert!(
        hits.iter()
            .all(|h| matches!(h.context, Context::Binary { .. }))
    );
    // The fast path agrees.
    let refs = scanner(&sd, &[H1, H2]).references(&root).unwrap();
    assert_eq!(refs, BTreeSet::from([hash_of(H1).unwrap()]));

    // Store-path-looking mode: the prefix, hash and dash straddle boundaries too.
    let prefix = format!("{}/", sd);
    let mut data = vec![b'.'; 2 * chunk + 500];
    let starts = [
        chunk - prefix.len() - 10,
        chunk + prefix.len() + 12,
        2 * chunk + prefix.len() + 30,
    ];
    for &s in &starts {
        let p = format!("{prefix}{H2}-name");
        data[s..s + p.len()].copy_from_slice(p.as_bytes());
    }
    std::fs::write(root.join("blob"), &data).unwrap();
    let hits = Scanner::new(&sd, Candidates::AnyStorePath)
        .hits(&root)
        .unwrap();
    let got: Vec<u64> = hits.iter().map(|h| h.offset).collect();
    assert_eq!(
        got,
        starts
            .iter()
            .map(|&s| (s + prefix.len()) as u64)
            .collect::<Vec<_>>()
    );
}

#[test]
fn text_lines_symlinks_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let sd = StoreDir::new("/nix/store");
    let root = dir.path().join("out");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/conf"),
        format!("a\nb\nlib=/nix/store/{H1}-x/lib\n\nalso {H1}\n"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        format!("/nix/store/{H2}-y/lib/libz.so"),
        root.join("libz.so"),
    )
    .unwrap();
    std::fs::write(root.join(format!("{H3}-named")), "").unwrap();
    let hits = scanner(&sd, &[H1, H2, H3]).hits(&root).unwrap();
    let find = |f: &str| -> Vec<&Hit> { hits.iter().filter(|h| h.file == root.join(f)).collect() };
    let conf = find("etc/conf");
    assert_eq!(conf.len(), 2);
    assert_eq!(
        conf[0].context,
        Context::Text {
            line: 3,
            text: format!("lib=/nix/store/{H1}-x/lib")
        }
    );
    assert_eq!(conf[0].offset, 4 + 15);
    assert!(matches!(&conf[1].context, Context::Text { line: 5, .. }));
    let link = find("libz.so");
    assert_eq!(link.len(), 1);
    assert_eq!(link[0].offset, 11);
    assert_eq!(
        link[0].context,
        Context::SymlinkTarget {
            target: format!("/nix/store/{H2}-y/lib/libz.so")
        }
    );
    let named = find(&format!("{H3}-named"));
    assert!(matches!(named[0].context, Context::EntryName { .. }));
    let refs = scanner(&sd, &[H1, H2, H3]).references(&root).unwrap();
    assert_eq!(refs.len(), 3);
}

fn gcc(args: &[&str], cwd: &Path) {
    let out = Command::new("gcc")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("gcc is needed for the ELF tests");
    assert!(
        out.status.success(),
        "gcc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn elf_hits_are_attributed_to_sections_and_dynamic_entries() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sd = StoreDir::new("/nix/store");
    let (hr, hn, hi, hs, hnote, hdbg) = (
        "11111111111111111111111111111111",
        "22222222222222222222222222222222",
        "33333333333333333333333333333333",
        "44444444444444444444444444444444",
        "55555555555555555555555555555555",
        "66666666666666666666666666666666",
    );
    // A library whose soname carries a hash, so DT_NEEDED will.
    std::fs::write(d.join("n.c"), "int n(void){return 1;}\n").unwrap();
    let soname = format!("lib{hn}-n.so");
    gcc(
        &[
            "-shared",
            "-fPIC",
            "-o",
            &soname,
            &format!("-Wl,-soname,{soname}"),
            "n.c",
        ],
        d,
    );
    // Source in a store-like dir so debug info names it.
    let src_dir = d.join(format!("{hdbg}-src"));
    std::fs::create_dir(&src_dir).unwrap();
    std::fs::write(
        src_dir.join("m.c"),
        format!(
            "#include <stdio.h>\nint n(void);\n\
             __attribute__((section(\".note.test\"), used)) static const char note[] = \"{hnote}\";\n\
             int main(int c, char **v){{ puts(c > 5 ? \"/nix/store/{hs}-data/share\" : v[0]); return n(); }}\n"
        ),
    )
    .unwrap();
    let out = d.join("out");
    std::fs::create_dir_all(out.join("bin")).unwrap();
    let rpath = format!("/run/opengl-driver/lib:/nix/store/{hr}-farm/lib:$ORIGIN");
    gcc(
        &[
            "-g",
            "-o",
            out.join("bin/prog").to_str().unwrap(),
            src_dir.join("m.c").to_str().unwrap(),
            "-L.",
            &format!("-l:{soname}"),
            "-Wl,--enable-new-dtags",
            &format!("-Wl,-rpath,{rpath}"),
            &format!("-Wl,--dynamic-linker=/nix/store/{hi}-glibc/lib/ld-linux-x86-64.so.2"),
        ],
        d,
    );
    let hits = scanner(&sd, &[hr, hn, hi, hs, hnote, hdbg])
        .hits(&out)
        .unwrap();
    let of = |h: &str| -> Vec<(Option<String>, ElfMeaning, String)> {
        hits.iter()
            .filter(|x| x.hash == hash_of(h).unwrap())
            .map(|x| match &x.context {
                Context::Elf {
                    section,
                    meaning,
                    text,
                } => (section.clone(), meaning.clone(), text.clone()),
                c => panic!("not an ELF context: {c:?}"),
            })
            .collect()
    };
    let r = of(hr);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0.as_deref(), Some(".dynstr"));
    assert_eq!(r[0].1, ElfMeaning::Runpath { entry: 1 });
    assert_eq!(r[0].2, format!("/nix/store/{hr}-farm/lib"));
    let n = of(hn);
    assert_eq!(n[0].1, ElfMeaning::Needed);
    assert_eq!(n[0].2, soname);
    let i = of(hi);
    assert_eq!(i[0].1, ElfMeaning::Interpreter);
    assert_eq!(i[0].0.as_deref(), Some(".interp"));
    let s = of(hs);
    assert_eq!(s[0].1, ElfMeaning::Rodata);
    assert!(
        s[0].2.contains(&format!("/nix/store/{hs}-data/share")),
        "{s:?}"
    );
    let note = of(hnote);
    assert_eq!(note[0].1, ElfMeaning::Note);
    assert_eq!(note[0].0.as_deref(), Some(".note.test"));
    let dbg = of(hdbg);
    assert!(!dbg.is_empty());
    assert!(dbg.iter().all(|x| x.1 == ElfMeaning::DebugInfo), "{dbg:?}");
    // Offsets point at the hash.
    let bytes = std::fs::read(out.join("bin/prog")).unwrap();
    for h in &hits {
        let o = h.offset as usize;
        assert_eq!(&bytes[o..o + 32], &h.hash);
    }
}

#[test]
fn errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let sd = StoreDir::new("/nix/store");
    let s = scanner(&sd, &[H1]);
    let missing: PathBuf = dir.path().join("nope");
    let e = s.hits(&missing).unwrap_err();
    assert!(matches!(e, ScanError::Io { .. }));
    assert!(
        e.to_string().starts_with(&missing.display().to_string()),
        "{e}"
    );
    let root = dir.path().join("out");
    std::fs::create_dir(&root).unwrap();
    let fifo = root.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let e = s.references(&root).unwrap_err();
    assert!(
        e.to_string().contains("fifo") && e.to_string().contains("unsupported"),
        "{e}"
    );
    // A symlink loop is just a symlink: not followed, no error.
    std::fs::remove_file(&fifo).unwrap();
    std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
    assert!(s.references(&root).unwrap().is_empty());
}

/// A second scan for a subset of an earlier scan's candidates takes each
/// file's hits from the earlier one (filtered to its candidates, named by
/// its own path) instead of reading the file; files the earlier scan did
/// not read, and a scan for a candidate it did not look for, read the disk.
#[test]
fn a_scan_for_fewer_candidates_reuses_the_files_an_earlier_scan_read() {
    let dir = tempfile::tempdir().unwrap();
    let sd = StoreDir::new(dir.path().join("store"));
    let root = dir.path().join("out");
    std::fs::create_dir(&root).unwrap();
    let (a, b) = (root.join("a"), root.join("b"));
    std::fs::write(&a, format!("x {H1} y {H2} z")).unwrap();
    std::fs::write(&b, H2).unwrap();
    let all: Vec<Hash> = [H1, H2, H3].iter().map(|h| hash_of(h).unwrap()).collect();
    let mut earlier = ScannedFiles::new(all.iter().copied().collect());
    let wide = scanner(&sd, &[H1, H2, H3]);
    let id = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(p).unwrap();
        (m.dev(), m.ino())
    };
    earlier.insert(id(&a), wide.file_hits(&a).unwrap());
    let fresh = scanner(&sd, &[H1]).hits(&root).unwrap();
    // `a` changes on disk (same inode): reused hits still show its old bytes.
    std::fs::write(&a, "nothing here any more, same inode").unwrap();
    let reused = scanner(&sd, &[H1])
        .hits_reusing(&root, Some(&earlier))
        .unwrap();
    assert_eq!(
        reused
            .iter()
            .map(|h| (&h.file, h.offset))
            .collect::<Vec<_>>(),
        fresh
            .iter()
            .map(|h| (&h.file, h.offset))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        reused.len(),
        1,
        "H1 in a, from the earlier scan: {reused:?}"
    );
    // `b` was not read before: it is read now, and H2 found there.
    let reused = scanner(&sd, &[H1, H2])
        .hits_reusing(&root, Some(&earlier))
        .unwrap();
    let where_: Vec<(PathBuf, u64)> = reused.iter().map(|h| (h.file.clone(), h.offset)).collect();
    assert_eq!(
        where_,
        vec![(a.clone(), 2), (a.clone(), 37), (b.clone(), 0)]
    );
    // A candidate the earlier scan did not look for: nothing is reused.
    let other = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    let reused = scanner(&sd, &[H1, other])
        .hits_reusing(&root, Some(&earlier))
        .unwrap();
    assert!(reused.is_empty(), "a was read again: {reused:?}");
}

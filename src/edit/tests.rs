//! Unit tests on ELF files built by the real toolchains: gcc, and for other
//! architectures files the cross compilers built (tests/fixtures). A missing
//! compiler fails the test: these must not skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

const HASH_FARM: &str = "0123456789abcdfghijklmnpqrsvwxyz";
const HASH_KEEP: &str = "zyxwvsrqpnmlkjihgfdcba9876543210";

fn farm() -> String {
    format!("/nix/store/{HASH_FARM}-cuda-joined/lib")
}
fn keep() -> String {
    format!("/nix/store/{HASH_KEEP}-cuda-lib/lib")
}

const LIB_SRC: &str = "int bar_tail(void) { return 7; }\nint other(int x) { return x + 1; }\n";

/// Compile `src` with `cc` and `args` into `out` inside `dir`; returns bytes.
fn build(dir: &Path, cc: &str, args: &[&str], src: &str, out: &str) -> Vec<u8> {
    let c = dir.join(format!("{out}.c"));
    std::fs::write(&c, src).unwrap();
    let o = dir.join(out);
    let st = Command::new(cc)
        .args(args)
        .arg("-o")
        .arg(&o)
        .arg(&c)
        .status()
        .unwrap_or_else(|e| panic!("{cc} is required for this test: {e}"));
    assert!(st.success(), "{cc} {args:?} failed");
    std::fs::read(o).unwrap()
}

fn lib(cc: &str, rpath: &str, new_dtags: bool) -> (tempfile::TempDir, Vec<u8>) {
    let d = tempfile::tempdir().unwrap();
    let dt = if new_dtags {
        "-Wl,--enable-new-dtags"
    } else {
        "-Wl,--disable-new-dtags"
    };
    let rp = format!("-Wl,-rpath,{rpath}");
    let b = build(
        d.path(),
        cc,
        &["-shared", "-fPIC", "-O1", dt, &rp],
        LIB_SRC,
        "libt.so",
    );
    (d, b)
}

/// The search path of `tag` as the loader would read it.
fn read_path(data: &[u8], tag: SearchPathTag) -> Option<Vec<u8>> {
    let m = parse::parse(data, data.len() as u64).unwrap();
    let d = m.dynamic.as_ref().unwrap();
    let off = d.get(tag.dt())?;
    let strtab = d.get(elf::DT_STRTAB.0).unwrap();
    let strsz = d.get(elf::DT_STRSZ.0).unwrap();
    let base = m.vaddr_to_offset(strtab, strsz).unwrap() as usize;
    let s = &data[base + off as usize..];
    Some(s[..s.iter().position(|&b| b == 0).unwrap()].to_vec())
}

fn req<'a>(tag: SearchPathTag, v: &'a str, scrub: &'a [&'a [u8]]) -> EditRequest<'a> {
    EditRequest {
        tag,
        new_value: v,
        scrub,
        drop_ldcache_note: false,
    }
}

/// Plan, apply, check structure, value and scrubbing; returns (edit, result).
fn edit(data: &[u8], r: &EditRequest) -> (ElfEdit, Vec<u8>) {
    let e = plan_edit(data, data.len() as u64, r).unwrap();
    for w in e.patches.windows(2) {
        assert!(w[0].end() <= w[1].offset, "patches overlap or are unsorted");
    }
    let mut out = data.to_vec();
    apply_in_memory(&mut out, &e);
    assert_eq!(out.len() as u64, e.new_len);
    check_layout(&out).unwrap();
    let got = read_path(&out, r.tag);
    if r.new_value.is_empty() {
        assert_eq!(got, None);
    } else {
        assert_eq!(got.as_deref(), Some(r.new_value.as_bytes()));
    }
    for n in r.scrub {
        assert!(
            memchr::memmem::find(&out, n).is_none(),
            "scrubbed string survives"
        );
    }
    // Re-running the same edit changes nothing.
    let again = plan_edit(&out[..], out.len() as u64, r).unwrap();
    assert!(
        again.is_noop(),
        "second identical edit is not a no-op: {again:?}"
    );
    (e, out)
}

fn both() -> String {
    format!("{}:{}", farm(), keep())
}

#[test]
fn in_place_shorter_is_one_patch() {
    let (_d, b) = lib("gcc", &both(), true);
    let scrub: &[&[u8]] = &[HASH_FARM.as_bytes()];
    let (e, out) = edit(&b, &req(SearchPathTag::Runpath, &keep(), scrub));
    assert!(!e.grew);
    assert_eq!(out.len(), b.len());
    let p = e.single_in_place().expect("one contiguous patch");
    // Only the patch range differs.
    let diff: Vec<usize> = (0..b.len()).filter(|&i| b[i] != out[i]).collect();
    assert!(
        diff.iter()
            .all(|&i| i as u64 >= p.offset && (i as u64) < p.end())
    );
}

#[test]
fn in_place_equal_length() {
    let (_d, b) = lib("gcc", &both(), true);
    let same_len = format!("{}:{}", farm().replace(HASH_FARM, HASH_KEEP), keep());
    assert_eq!(same_len.len(), both().len());
    let (e, _) = edit(
        &b,
        &req(SearchPathTag::Runpath, &same_len, &[HASH_FARM.as_bytes()]),
    );
    assert!(e.single_in_place().is_some());
}

#[test]
fn same_value_is_noop() {
    let (_d, b) = lib("gcc", &both(), true);
    let e = plan_edit(
        &b[..],
        b.len() as u64,
        &req(SearchPathTag::Runpath, &both(), &[]),
    )
    .unwrap();
    assert!(e.is_noop());
}

#[test]
fn grow_longer_several_kb() {
    let (_d, b) = lib("gcc", &both(), true);
    let long: Vec<String> = (0..200)
        .map(|i| format!("/nix/store/{HASH_KEEP}-dep{i}/lib"))
        .collect();
    let long = long.join(":");
    assert!(long.len() > 5000);
    let (e, out) = edit(
        &b,
        &req(SearchPathTag::Runpath, &long, &[HASH_FARM.as_bytes()]),
    );
    assert!(e.grew);
    assert!(out.len() > b.len());
    // A shorter edit of the grown file goes in place again.
    let (e2, _) = edit(&out, &req(SearchPathTag::Runpath, &keep(), &[]));
    assert!(!e2.grew);
}

#[test]
fn rpath_stays_rpath() {
    let (_d, b) = lib("gcc", &both(), false);
    assert!(read_path(&b, SearchPathTag::Runpath).is_none());
    let (_, out) = edit(
        &b,
        &req(SearchPathTag::Rpath, &keep(), &[HASH_FARM.as_bytes()]),
    );
    assert!(read_path(&out, SearchPathTag::Runpath).is_none());
    // And growing keeps it an RPATH too.
    let long = format!("{}:{}", keep(), "/x".repeat(400));
    let (e, out) = edit(
        &b,
        &req(SearchPathTag::Rpath, &long, &[HASH_FARM.as_bytes()]),
    );
    assert!(e.grew);
    assert!(read_path(&out, SearchPathTag::Runpath).is_none());
}

#[test]
fn remove_entry() {
    let (_d, b) = lib("gcc", &both(), true);
    let (_, out) = edit(
        &b,
        &req(
            SearchPathTag::Runpath,
            "",
            &[HASH_FARM.as_bytes(), HASH_KEEP.as_bytes()],
        ),
    );
    let m = parse::parse(&out[..], out.len() as u64).unwrap();
    let before = parse::parse(&b[..], b.len() as u64).unwrap();
    assert_eq!(
        m.dynamic.unwrap().entries.len() + 1,
        before.dynamic.unwrap().entries.len()
    );
}

#[test]
fn add_entry_where_none() {
    let d = tempfile::tempdir().unwrap();
    let b = build(d.path(), "gcc", &["-shared", "-fPIC"], LIB_SRC, "libn.so");
    assert!(read_path(&b, SearchPathTag::Runpath).is_none());
    let (e, _) = edit(&b, &req(SearchPathTag::Runpath, &keep(), &[]));
    assert!(e.grew);
}

#[test]
fn executables_pie_and_no_pie() {
    let src = "#include <stdio.h>\nint main(void){puts(\"hi\");return 0;}\n";
    for pie in ["-pie", "-no-pie"] {
        let d = tempfile::tempdir().unwrap();
        let rp = format!("-Wl,-rpath,{}", both());
        let b = build(
            d.path(),
            "gcc",
            &[pie, "-Wl,--enable-new-dtags", &rp],
            src,
            "prog",
        );
        edit(
            &b,
            &req(SearchPathTag::Runpath, &keep(), &[HASH_FARM.as_bytes()]),
        );
        let long = format!("{}:{}", keep(), "/y".repeat(3000));
        let (e, _) = edit(
            &b,
            &req(SearchPathTag::Runpath, &long, &[HASH_FARM.as_bytes()]),
        );
        assert!(e.grew);
    }
}

#[test]
fn i686_and_s390x_and_aarch64() {
    // Committed builds of `lib(cc, &both(), true)` by the cross gccs
    // (tests/fixtures/build.sh), so `cargo test` needs no cross compiler;
    // tests/full's edit oracles build them fresh.
    for (cc, b) in [
        (
            "i686",
            &include_bytes!("../../tests/fixtures/libt-i686.so")[..],
        ),
        (
            "s390x",
            &include_bytes!("../../tests/fixtures/libt-s390x.so")[..],
        ),
        (
            "aarch64",
            &include_bytes!("../../tests/fixtures/libt-aarch64.so")[..],
        ),
    ] {
        assert_eq!(
            read_path(b, SearchPathTag::Runpath),
            Some(both().into_bytes())
        );
        edit(
            b,
            &req(SearchPathTag::Runpath, &keep(), &[HASH_FARM.as_bytes()]),
        );
        let long = format!("{}:{}", keep(), "/z".repeat(3000));
        let (e, _) = edit(
            b,
            &req(SearchPathTag::Runpath, &long, &[HASH_FARM.as_bytes()]),
        );
        assert!(e.grew, "{cc}");
    }
}

/// Find the dynamic symbol `name`'s string offset.
fn sym_name_offset(data: &[u8], name: &[u8]) -> Option<u64> {
    use object::read::elf::{FileHeader, Sym};
    let h = elf::FileHeader64::<object::Endianness>::parse(data).ok()?;
    let e = h.endian().ok()?;
    let secs = h.sections(e, data).ok()?;
    let syms = secs.symbols(e, data, elf::SHT_DYNSYM).ok()?;
    syms.iter()
        .find(|s| syms.symbol_name(e, s).ok() == Some(name))
        .map(|s| u64::from(s.st_name(e)))
}

#[test]
fn shared_string_tail_is_kept() {
    // GNU ld tail-merges .dynstr: the symbol `bar_tail` then points into the
    // last bytes of the rpath string.
    let rpath = format!("{}:/x/foo_bar_tail", farm());
    let (_d, b) = lib("gcc", &rpath, true);
    let m = parse::parse(&b[..], b.len() as u64).unwrap();
    let rp_off = m.dynamic.as_ref().unwrap().get(elf::DT_RUNPATH.0).unwrap();
    let sym_off = sym_name_offset(&b, b"bar_tail").unwrap();
    assert_eq!(
        sym_off,
        rp_off + rpath.len() as u64 - 8,
        "linker did not tail-merge; fixture is wrong"
    );

    // Fits before the tail: in place, tail intact.
    let (e, out) = edit(
        &b,
        &req(SearchPathTag::Runpath, "/a", &[HASH_FARM.as_bytes()]),
    );
    assert!(e.single_in_place().is_some());
    assert_eq!(sym_name_offset(&out, b"bar_tail"), Some(sym_off));
    // Does not fit before the tail: grows, the tail still resolves.
    let long = format!("{}:/more", "/q".repeat(60));
    let (e, out) = edit(
        &b,
        &req(SearchPathTag::Runpath, &long, &[HASH_FARM.as_bytes()]),
    );
    assert!(e.grew);
    let m2 = parse::parse(&out[..], out.len() as u64).unwrap();
    let d2 = m2.dynamic.as_ref().unwrap();
    let base = m2
        .vaddr_to_offset(d2.get(elf::DT_STRTAB.0).unwrap(), 1)
        .unwrap() as usize;
    assert_eq!(&out[base + sym_off as usize..][..9], b"bar_tail\0");
    // Removing the entry keeps the tail too.
    let (_, out) = edit(
        &b,
        &req(SearchPathTag::Runpath, "", &[HASH_FARM.as_bytes()]),
    );
    let base = m
        .vaddr_to_offset(
            m.dynamic.as_ref().unwrap().get(elf::DT_STRTAB.0).unwrap(),
            1,
        )
        .unwrap() as usize;
    assert_eq!(&out[base + sym_off as usize..][..9], b"bar_tail\0");
}

#[test]
fn no_section_headers_in_place() {
    let (_d, mut b) = lib("gcc", &both(), true);
    // Drop the section header table: e_shoff = e_shnum = e_shstrndx = 0.
    b[0x28..0x30].fill(0);
    b[0x3c..0x40].fill(0);
    edit(
        &b,
        &req(SearchPathTag::Runpath, &keep(), &[HASH_FARM.as_bytes()]),
    );
}

fn objcopy_ldcache(dir: &Path, input: &Path, owner_note: &[u8]) -> PathBuf {
    let notefile = dir.join("note.bin");
    std::fs::write(&notefile, owner_note).unwrap();
    let out = dir.join("with-note.so");
    let st = Command::new("objcopy")
        .arg(format!(
            "--add-section=.note.nixos.ldcache={}",
            notefile.display()
        ))
        .arg("--set-section-flags=.note.nixos.ldcache=noload,readonly")
        .arg(input)
        .arg(&out)
        .status()
        .expect("objcopy is required");
    assert!(st.success());
    out
}

fn ldcache_note(desc: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    n.extend_from_slice(&6u32.to_le_bytes());
    let dlen = desc.len().div_ceil(4) * 4;
    n.extend_from_slice(&(dlen as u32).to_le_bytes());
    n.extend_from_slice(&0x63a8_6cb6u32.to_le_bytes());
    n.extend_from_slice(b"NixOS\0\0\0");
    n.extend_from_slice(desc);
    n.resize(n.len() + dlen - desc.len(), 0);
    n
}

#[test]
fn ldcache_note_in_pt_note_is_removed() {
    // The note is linked into the PT_NOTE with .note.gnu.build-id (both are
    // 4-aligned), as a linker places any allocated note section.
    let d = tempfile::tempdir().unwrap();
    let desc = format!("libcudart.so.12\0={}/libcudart.so.12\0", farm());
    let note = ldcache_note(desc.as_bytes());
    let bytes: Vec<String> = note.iter().map(|b| format!("{b:#x}")).collect();
    let src = format!(
        "{LIB_SRC}__asm__(\".section .note.nixos.ldcache,\\\"a\\\",@note\\n.balign 4\\n.byte {}\\n.previous\");\n",
        bytes.join(",")
    );
    let rp = format!("-Wl,-rpath,{}", both());
    let b = build(
        d.path(),
        "gcc",
        &[
            "-shared",
            "-fPIC",
            "-Wl,--build-id",
            "-Wl,--enable-new-dtags",
            &rp,
        ],
        &src,
        "libnote.so",
    );
    assert!(memchr::memmem::find(&b, b"NixOS").is_some());
    let scrub: &[&[u8]] = &[HASH_FARM.as_bytes()];
    let k = keep();
    let r = EditRequest {
        drop_ldcache_note: true,
        ..req(SearchPathTag::Runpath, &k, scrub)
    };
    let (_, out) = edit(&b, &r);
    assert!(memchr::memmem::find(&out, b"NixOS").is_none());
    // The build-id note before it is still there.
    assert!(memchr::memmem::find(&out, b"GNU\0").is_some());

    // A note section that no segment maps (objcopy-added) is zeroed too.
    let so = d.path().join("plain.so");
    std::fs::write(&so, lib("gcc", &both(), true).1).unwrap();
    let with = std::fs::read(objcopy_ldcache(d.path(), &so, &note)).unwrap();
    let (_, out) = edit(&with, &r);
    assert!(memchr::memmem::find(&out, b"NixOS").is_none());
}

#[test]
fn scrub_in_new_value_is_refused() {
    let (_d, b) = lib("gcc", &both(), true);
    let (f, scrub) = (farm(), [HASH_FARM.as_bytes()]);
    let r = req(SearchPathTag::Runpath, &f, &scrub);
    assert!(plan_edit(&b[..], b.len() as u64, &r).is_err());
}

/// A grow planned on a file read range by range, its symbol tables
/// streamed window by window ([`planned::LargeFile`]), is the one planned on the
/// bytes in memory.
#[test]
fn a_large_file_source_plans_the_same_grow() {
    let (d, b) = lib("gcc", &both(), true);
    let f = std::fs::File::open(d.path().join("libt.so")).unwrap();
    let cache = object::ReadCache::new(&f);
    let long = format!("{}:{}", keep(), "/nix/store/x/lib".repeat(40));
    let scrub = [HASH_FARM.as_bytes()];
    let r = req(SearchPathTag::Runpath, &long, &scrub);
    let via_file = plan_edit(planned::LargeFile::new(&cache, &f), b.len() as u64, &r).unwrap();
    let via_slice = plan_edit(&b[..], b.len() as u64, &r).unwrap();
    assert!(via_slice.grew);
    assert_eq!(via_file, via_slice);
}

/// A grow keeps every section's index: a moved section leaves an empty
/// string table named as it was without the dot in its slot, its header is
/// appended, links follow it, and no symbol of an unmoved section changes
/// (a plugin's 17 MB `.symtab` is not rewritten). The file still ends with
/// the new segment, and the headers stay in offset order.
#[test]
fn a_grow_keeps_section_indices() {
    let (_d, b) = lib("gcc", &farm(), true);
    let long = format!("{}:{}", keep(), "/nix/store/x/lib".repeat(40));
    let (e, out) = edit(
        &b,
        &req(SearchPathTag::Runpath, &long, &[HASH_FARM.as_bytes()]),
    );
    assert!(e.grew);
    let m0 = parse::parse(&b[..], b.len() as u64).unwrap();
    let m1 = parse::parse(&out[..], out.len() as u64).unwrap();
    let n = m0.shdrs.len();
    assert!(m1.shdrs.len() > n, "no header appended");
    let mut moved = Vec::new();
    for (i, (old, new)) in m0.shdrs.iter().zip(&m1.shdrs).enumerate() {
        if old.name == new.name {
            assert_eq!(
                (old.sh_type, old.offset),
                (new.sh_type, new.offset),
                "section {i}"
            );
            continue;
        }
        assert_eq!(new.name, &old.name[1..], "placeholder {i} named as it was");
        assert_eq!((new.sh_type, new.size), (elf::SHT_STRTAB.0, 0));
        let j = n + m1.shdrs[n..]
            .iter()
            .position(|s| s.name == old.name)
            .unwrap();
        moved.push((i, j));
    }
    assert!(moved.iter().any(|(i, _)| m0.shdrs[*i].name == b".dynstr"));
    for (a, s) in m1.shdrs.iter().enumerate() {
        for (i, j) in &moved {
            assert_ne!(s.link as usize, *i, "section {a} still links to slot {i}");
            if m0.shdrs.get(a).is_some_and(|o| o.link as usize == *i) {
                assert_eq!(s.link as usize, *j);
            }
        }
    }
    let offsets: Vec<u64> = m1.shdrs.iter().map(|s| s.offset).collect();
    assert!(offsets.is_sorted(), "section headers out of offset order");
    let seg = m1.loads().last().unwrap();
    assert_eq!(seg.offset + seg.filesz, out.len() as u64);
    // `.symtab`: same place, and only symbols of moved sections differ.
    let st = m0
        .shdrs
        .iter()
        .position(|s| s.sh_type == elf::SHT_SYMTAB.0)
        .unwrap();
    let (o, size) = (m0.shdrs[st].offset as usize, m0.shdrs[st].size as usize);
    assert_eq!(m1.shdrs[st].offset as usize, o);
    for (old, new) in b[o..o + size].chunks(24).zip(out[o..o + size].chunks(24)) {
        if old != new {
            let shndx = usize::from(u16::from_le_bytes([old[6], old[7]]));
            assert!(
                moved.iter().any(|(i, _)| *i == shndx),
                "symbol of section {shndx} changed"
            );
        }
    }
}

#[test]
fn hostile_bytes_never_panic() {
    use proptest::prelude::*;
    let (_d, b) = lib("gcc", &both(), true);
    let scrub: &[&[u8]] = &[HASH_FARM.as_bytes()];
    // A fixed seed: CI must be repeatable (the `edit` fuzz target searches
    // further, with coverage guidance).
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_ed17),
        ..ProptestConfig::default()
    });
    runner
        .run(
            &(
                proptest::collection::vec((0..b.len(), any::<u8>()), 1..8),
                0..b.len(),
            ),
            |(muts, cut)| {
                let mut x = b.clone();
                for (i, v) in muts {
                    x[i] = v;
                }
                for data in [&x[..], &x[..cut]] {
                    let _ = check_layout(data);
                    for v in [keep(), String::new(), "/q".repeat(300)] {
                        if let Ok(e) = plan_edit(
                            data,
                            data.len() as u64,
                            &req(SearchPathTag::Runpath, &v, scrub),
                        ) {
                            let mut y = data.to_vec();
                            apply_in_memory(&mut y, &e);
                        }
                    }
                }
                Ok(())
            },
        )
        .unwrap();
}

/// A grown file is not padded to a page boundary before the new segment: it
/// grows by what the segment holds (a copy of `.dynstr`, the moved notes,
/// the new string) and the headers the section header table gains (one per
/// moved section, in room left before the segment, at most three headers'
/// worth unused), not up to 4 KiB more. This is what made `unfarm demo`'s
/// app output grow by ~4 KiB per file whose RUNPATH got longer. The file
/// still ends with the segment (patchelf extends a trailing one).
#[test]
fn grow_adds_no_page_padding() {
    let src = "#include <stdio.h>\nint main(void){puts(\"hi\");return 0;}\n";
    let d = tempfile::tempdir().unwrap();
    let rp = format!("-Wl,-rpath,{}", farm());
    let prog = build(
        d.path(),
        "gcc",
        &["-pie", "-Wl,--enable-new-dtags", &rp],
        src,
        "prog",
    );
    let (_lib_dir, lib) = lib("gcc", &farm(), true);
    let long = format!("{}:{}", keep(), "/nix/store/x/lib".repeat(2));
    for b in [prog, lib] {
        let (e, out) = edit(
            &b,
            &req(SearchPathTag::Runpath, &long, &[HASH_FARM.as_bytes()]),
        );
        assert!(e.grew);
        let m = parse::parse(&out[..], out.len() as u64).unwrap();
        let seg = m.loads().last().unwrap();
        assert_eq!(seg.offset + seg.filesz, out.len() as u64);
        let table_end = m.shoff + m.shdrs.len() as u64 * m.shdr_size();
        assert!(
            table_end <= seg.offset && seg.offset - table_end.max(b.len() as u64) < 4 * 64,
            "new segment at {:#x}, file ended at {:#x}, section headers at {:#x}",
            seg.offset,
            b.len(),
            table_end
        );
        assert_eq!(seg.offset % seg.align, seg.vaddr % seg.align);
    }
}

/// Plan setting RUNPATH of `data` to `value` (dropping any ldcache note),
/// as the fuzz target does.
fn edit_runpath(data: &[u8], value: &str) -> Result<ElfEdit, EditError> {
    let req = EditRequest {
        tag: SearchPathTag::Runpath,
        new_value: value,
        scrub: &[],
        drop_ldcache_note: true,
    };
    plan_edit(data, data.len() as u64, &req)
}

/// Found by fuzzing: 25 program headers whose table runs into the PT_NOTE
/// data. A grow edit rewrote the table and so corrupted the note; such a
/// layout is now refused (input and output both).
#[test]
fn phdr_table_overlapping_note_is_refused() {
    let data = include_bytes!("../../fuzz/seeds/edit/phdrs-overlap-note");
    let err = edit_runpath(&data[..], "/a/much/longer/value/than/before:/x").unwrap_err();
    assert!(
        err.to_string().contains("overlap the contents of segment"),
        "{err}"
    );
    assert!(check_layout(&data[..]).is_err());
}

/// Found by fuzzing: the RUNPATH string is the tail of a DT_NEEDED string
/// (a linker may merge them either way round). Overwriting it in place
/// changed the NEEDED name; the editor must leave those bytes alone.
#[test]
fn runpath_that_ends_another_string_is_not_overwritten() {
    let data = include_bytes!("../../fuzz/seeds/edit/runpath-tail-of-needed");
    let before = crate::elf::parse_facts(&data[..]).unwrap();
    let old = before.runpath.clone().or(before.rpath.clone()).unwrap();
    let tag = if before.runpath.is_some() {
        SearchPathTag::Runpath
    } else {
        SearchPathTag::Rpath
    };
    let longer = format!("{old}:/x/lib");
    let shorter = &old[..old.len() / 2];
    for new in [shorter, longer.as_str(), ""] {
        let req = EditRequest {
            tag,
            new_value: new,
            scrub: &[],
            drop_ldcache_note: true,
        };
        let Ok(e) = plan_edit(&data[..], data.len() as u64, &req) else {
            continue;
        };
        let mut out = data.to_vec();
        apply_in_memory(&mut out, &e);
        let after = crate::elf::parse_facts(&out[..]).unwrap();
        assert_eq!(
            after.needed, before.needed,
            "NEEDED changed editing to {new:?}"
        );
    }
}

/// Found by fuzzing: a section header claims a symbol table over the ELF and
/// program headers; growing the file "moved" symbols there and corrupted the
/// program headers. Such a layout is refused.
#[test]
fn section_over_the_headers_is_refused() {
    let data = include_bytes!("../../fuzz/seeds/edit/symtab-over-headers");
    let err = edit_runpath(
        &data[..],
        "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-x/lib:$ORIGIN/../lib",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("overlap the contents of section"),
        "{err}"
    );
    assert!(check_layout(&data[..]).is_err());
}

/// Found by fuzzing: making room for a new program header moves the sections
/// right after the table; a further (bogus) section inside that block was
/// not moved, so the grown table ran over it. Now the edit is refused.
#[test]
fn section_inside_the_block_to_move_is_refused() {
    let data = include_bytes!("../../fuzz/seeds/edit/section-inside-moved-block");
    assert!(check_layout(&data[..]).is_ok());
    match edit_runpath(
        &data[..],
        "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-farm/lib:/nix/store/0123456789abcdfghijklmnpqrsvwxyz-x/lib:$ORIGIN/../lib",
    ) {
        // Without room after the table the table itself would move, which
        // needs a symbol table that is updated here to share no bytes.
        Err(e) => assert!(
            e.to_string().contains("not movable") || e.to_string().contains("shares bytes"),
            "{e}"
        ),
        Ok(e) => {
            let mut out = data.to_vec();
            apply_in_memory(&mut out, &e);
            check_layout(&out).unwrap();
        }
    }
}

/// Found by fuzzing: a PT_NOTE claiming bytes far past the end of the file;
/// a grow edit appended the program header table "inside" it. Any segment
/// past the end now makes the layout invalid, and the edit is refused.
#[test]
fn segment_past_end_of_file_is_refused() {
    let data = include_bytes!("../../fuzz/seeds/edit/note-past-eof");
    assert!(check_layout(&data[..]).is_err());
    let err = edit_runpath(
        &data[..],
        "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-x/lib:$ORIGIN/../lib",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("past the end of the file"),
        "{err}"
    );
}

/// Found by fuzzing (as memory exhaustion): a `.note.nixos.ldcache` section
/// header (of type NULL) pointing 1.7 GB past the end of a 7 KB file; the
/// note removal zeroed "its" bytes there. Only SHT_NOTE bytes inside the file
/// are zeroed now, and no edit writes past the end of the file.
#[test]
fn ldcache_section_header_past_the_end_writes_nothing_there() {
    let data = include_bytes!("../../fuzz/seeds/edit/ldcache-section-past-eof");
    if let Ok(e) = edit_runpath(&data[..], "") {
        assert!(e.patches.iter().all(|p| p.end() <= e.new_len));
        assert!(e.patches.iter().map(|p| p.bytes.len()).sum::<usize>() < data.len());
    }
}

/// A RUNPATH over 4 KiB (what expand writes for a big farm) passes the layout
/// check read range by range (`ReadCache`, as for a file over the in-memory
/// limit), as it does whole.
#[test]
fn long_runpath_passes_the_layout_check_by_range() {
    let long: Vec<String> = (0..200)
        .map(|i| format!("/nix/store/dir-{i:03}/lib"))
        .collect();
    let (d, bytes) = lib("gcc", &long.join(":"), true);
    assert!(read_path(&bytes, SearchPathTag::Runpath).unwrap().len() > 4096);
    check_layout(&bytes).unwrap();
    let p = d.path().join("libt.so");
    let f = std::fs::File::open(&p).unwrap();
    check_layout_ref(&object::ReadCache::new(&f), bytes.len() as u64).unwrap();
}

/// A PT_DYNAMIC claiming megabytes (which `object` would read whole) is
/// refused, by the editor and by fact reading, before it is read.
#[test]
fn huge_dynamic_segment_is_refused_before_it_is_read() {
    use object::read::elf::{FileHeader, ProgramHeader};
    let (_d, mut bytes) = lib("gcc", &keep(), true);
    let hdr = elf::FileHeader64::<object::Endianness>::parse(&bytes[..]).unwrap();
    let phoff = hdr.e_phoff(object::Endianness::Little) as usize;
    let phdrs = hdr
        .program_headers(object::Endianness::Little, &bytes[..])
        .unwrap();
    let i = phdrs
        .iter()
        .position(|p| p.p_type(object::Endianness::Little) == elf::PT_DYNAMIC)
        .unwrap();
    // p_filesz of that header (64-bit little-endian), then room for it.
    let at = phoff + i * 56 + 32;
    bytes[at..at + 8].copy_from_slice(&(4u64 << 20).to_le_bytes());
    bytes.resize(bytes.len() + (8 << 20), 0);
    let e = check_layout(&bytes).unwrap_err().to_string();
    assert!(e.contains("PT_DYNAMIC is 4194304 bytes"), "{e}");
    let e = crate::elf::parse_facts(&bytes[..]).unwrap_err();
    assert_eq!(e, crate::elf::Malformed::DynamicTooLarge(4 << 20));
    assert!(
        e.to_string().starts_with("PT_DYNAMIC is 4194304 bytes"),
        "{e}"
    );
}

/// Found by fuzzing: a section header typed DYNSYM whose bytes cover the
/// dynamic array (and, in the input found, the section headers, which the
/// layout check now refuses: `strtab-lost`). A grow edit that moved sections
/// "updated" the symbols defined in them, writing into `.dynamic` (DT_STRTAB
/// was lost). A symbol table that shares bytes with anything else is now
/// left alone: the edit is refused. (`symtab-over-dynamic` is that input
/// with the table cut short of the section headers, so its layout passes.)
#[test]
fn symbol_table_sharing_bytes_with_dynamic_is_not_written() {
    let found = include_bytes!("../../fuzz/seeds/edit/strtab-lost");
    let long = "/a/much/longer/value/than/the/old/one:/x";
    let err = edit_runpath(&found[..], long).unwrap_err();
    assert!(
        err.to_string().contains("already fails the checks"),
        "{err}"
    );
    let data = include_bytes!("../../fuzz/seeds/edit/symtab-over-dynamic");
    check_layout(&data[..]).unwrap();
    // Refused, or (when the bytes after the program headers are free and
    // no section moves) done without writing the shared table: .dynamic and
    // DT_STRTAB stay intact.
    match edit_runpath(&data[..], long) {
        Err(err) => assert!(err.to_string().contains("shares bytes"), "{err}"),
        Ok(e) => {
            let mut out = data.to_vec();
            apply_in_memory(&mut out, &e);
            check_layout(&out).unwrap();
            assert_eq!(
                read_path(&out, SearchPathTag::Runpath).as_deref(),
                Some(long.as_bytes())
            );
        }
    }
    // A removal (in place) still works and stays valid.
    let e = edit_runpath(&data[..], "").unwrap();
    let mut out = data.to_vec();
    apply_in_memory(&mut out, &e);
    check_layout(&out).unwrap();
}

/// Found by fuzzing: a note section header pointing past the end of the
/// file. A grow edit appended a segment there, so the header pointed into
/// it (a "valid" layout whose notes no longer parse). And: a string table
/// over the dynamic array, where removing the RUNPATH entry turned a NEEDED
/// name into an empty one. A file whose layout fails the checks is not
/// edited at all (`fix` checks every result anyway, so such a file could
/// only ever be written "repaired" by accident); one with nothing to change
/// is still left alone without an error.
#[test]
fn invalid_layout_is_not_edited() {
    let data = include_bytes!("../../fuzz/seeds/edit/note-namesz");
    assert!(check_layout(&data[..]).is_err());
    let long = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-farm/lib:/a/much/longer/path/lib";
    for v in [long, "/nix/store/0123456789abcdf", ""] {
        let err = edit_runpath(&data[..], v).unwrap_err();
        assert!(
            err.to_string().contains("already fails the checks"),
            "{err}"
        );
    }
    let same = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-farm/lib";
    assert!(edit_runpath(&data[..], same).unwrap().patches.is_empty());
    let data = include_bytes!("../../fuzz/seeds/edit/strtab-over-dynamic-needed");
    assert!(check_layout(&data[..]).is_err());
    let err = edit_runpath(&data[..], "").unwrap_err();
    assert!(
        err.to_string().contains("already fails the checks"),
        "{err}"
    );
}

/// Found by fuzzing: a section header table that shares bytes with the
/// dynamic array. Removing the RUNPATH entry (which shifts the entries after
/// it) rewrote section headers. Such a layout is now invalid, and not
/// edited.
#[test]
fn section_headers_overlapping_dynamic_are_invalid() {
    let data = include_bytes!("../../fuzz/seeds/edit/section-past-end-after");
    let err = check_layout(&data[..]).unwrap_err().to_string();
    assert!(err.contains("section header table overlaps"), "{err}");
    let err = edit_runpath(&data[..], "").unwrap_err();
    assert!(
        err.to_string().contains("already fails the checks"),
        "{err}"
    );
}

/// Found by fuzzing: DT_STRTAB pointing into the program header table. An
/// in-place edit of the "string" there rewrote a PT_NOTE's offset. A string
/// table sharing bytes with the headers or the dynamic array is now an
/// invalid layout, and not edited.
#[test]
fn string_table_overlapping_the_headers_is_invalid() {
    let data = include_bytes!("../../fuzz/seeds/edit/phdrs-grow-into-note");
    let err = check_layout(&data[..]).unwrap_err().to_string();
    assert!(err.contains("dynamic string table overlaps"), "{err}");
    let long = "/a/much/longer/value/than/the/old/one:/x";
    let err = edit_runpath(&data[..], long).unwrap_err();
    assert!(
        err.to_string().contains("already fails the checks"),
        "{err}"
    );
}

/// Found by fuzzing: two section headers for `.dynstr` (section 0 a copy of
/// section 7, which `.dynamic` links to). A grow edit updated the first one
/// only, and the result's `.dynstr` header disagreed with DT_STRTAB. The
/// header `.dynamic` links to is the one updated now.
#[test]
fn grow_updates_the_dynstr_header_dynamic_links_to() {
    let data = include_bytes!("../../fuzz/seeds/edit/dynstr-header-disagrees");
    check_layout(&data[..]).unwrap();
    let e = edit_runpath(&data[..], "/x/lib:/a/much/longer/value/than/before:/y").unwrap();
    assert!(e.grew);
    let mut out = data.to_vec();
    apply_in_memory(&mut out, &e);
    check_layout(&out).unwrap();
}

/// Found by fuzzing: PT_INTERP inside the dynamic array. Removing the
/// RUNPATH entry shifted the entries and so changed the "interpreter".
/// Segments with contents of their own must not share bytes; such a file is
/// not edited.
#[test]
fn interpreter_inside_dynamic_is_invalid() {
    let data = include_bytes!("../../fuzz/seeds/edit/interp-inside-dynamic");
    let err = check_layout(&data[..]).unwrap_err().to_string();
    assert!(err.contains("overlap"), "{err}");
    let err = edit_runpath(&data[..], "").unwrap_err();
    assert!(
        err.to_string().contains("already fails the checks"),
        "{err}"
    );
}

/// Libraries patchelf (0.14.3, 0.19.3) gave a farm RUNPATH: patchelf moved
/// `.dynstr` & co. into a new PT_LOAD and left the bytes after the program
/// headers unused. They were refused ("no spare program header slot"); now
/// the trailing PT_LOAD grows (no new program header), a second grow
/// rewrites the string where it is (the file grows only by the difference),
/// the scrubbed farm hash is gone, and section headers stay in offset order.
#[test]
fn patchelf_grown_libraries_grow_again_bounded() {
    let hash: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    for data in [
        &include_bytes!("../../fuzz/seeds/edit/patchelf-0.14-grown-lib")[..],
        &include_bytes!("../../fuzz/seeds/edit/patchelf-0.19-grown-lib")[..],
    ] {
        let m0 = parse::parse(data, data.len() as u64).unwrap();
        let long: String = (0..8)
            .map(|i| format!("/nix/store/{}-lib{i}/lib:", "a".repeat(32)))
            .collect();
        let (e, out) = edit(data, &req(SearchPathTag::Runpath, &long, &[hash]));
        assert!(e.grew);
        let m1 = parse::parse(&out[..], out.len() as u64).unwrap();
        assert_eq!(m1.phdrs.len(), m0.phdrs.len(), "no new program header");
        let offsets: Vec<u64> = m1.shdrs.iter().map(|s| s.offset).collect();
        assert!(offsets.is_sorted(), "section headers out of offset order");
        let longer = format!("{long}/one/more/dir");
        let (e2, out2) = edit(&out, &req(SearchPathTag::Runpath, &longer, &[hash]));
        assert!(e2.grew);
        assert!(
            out2.len() - out.len() <= "/one/more/dir".len() + 8,
            "second grow added {} bytes",
            out2.len() - out.len()
        );
    }
}

/// patchelf 0.14.3 gives a non-PIE a new first PT_LOAD (one page) whose
/// `.dynsym` runs on into the next PT_LOAD, contiguous in memory and file.
/// ld.so reads it by address; unfarm said "dynamic symbol table lies outside
/// the file" and refused every edit.
#[test]
fn table_running_into_the_next_contiguous_segment_is_edited() {
    let data = include_bytes!("../../fuzz/seeds/edit/patchelf-0.14-nonpie-dynsym-spans");
    let hash: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    let (e, _) = edit(
        &data[..],
        &req(SearchPathTag::Runpath, "/run/opengl-driver/lib", &[hash]),
    );
    assert!(!e.grew);
    let long: String = (0..8)
        .map(|i| format!("/nix/store/{}-lib{i}/lib:", "a".repeat(32)))
        .collect();
    let (e, _) = edit(&data[..], &req(SearchPathTag::Runpath, &long, &[hash]));
    assert!(e.grew);
}

/// What the `edit` fuzz target asks of one input: each list of
/// [`super::fuzz_lists`] is refused, or its image passes `check_layout`, or
/// the input already failed it.
fn replay_edit_fuzz(data: &[u8]) {
    let Ok(f) = crate::elf::parse_facts(data) else {
        return;
    };
    let (tag, lists) = super::fuzz_lists(&f);
    for value in &lists {
        let Ok(e) = plan_edit(data, data.len() as u64, &req(tag, value, &[])) else {
            continue;
        };
        let mut out = data.to_vec();
        apply_in_memory(&mut out, &e);
        if let Err(err) = check_layout(&out) {
            assert!(
                check_layout(data).is_err(),
                "edit to {value:?} of a valid input: {err}"
            );
        }
    }
}

/// Found by fuzzing: two `.dynamic` section headers (one empty, at offset
/// 0). The checks took the first in header order; a grow puts the headers
/// in offset order, so the empty one came first and the edited image
/// failed ("disagrees with PT_DYNAMIC"). One rule now, whatever the order:
/// a second `.dynamic` header is malformed, and the file is not edited.
#[test]
fn second_dynamic_section_header_is_refused_before_the_edit() {
    let data = include_bytes!("../../fuzz/seeds/edit/dynamic-shdr-disagrees-after-edit");
    let err = check_layout(&data[..]).unwrap_err().to_string();
    assert!(
        err.contains("more than one .dynamic section header"),
        "{err}"
    );
    replay_edit_fuzz(&data[..]);
    for seed in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/edit")).unwrap()
    {
        replay_edit_fuzz(&std::fs::read(seed.unwrap().path()).unwrap());
    }
}

/// One rule for PT_DYNAMIC in every reader: the facts reader took the first
/// of two, the editor refused them. Both refuse now.
#[test]
fn second_pt_dynamic_is_refused_by_facts_and_editor() {
    let mut data = include_bytes!("../../fuzz/seeds/edit/patchelf-0.19-grown-lib").to_vec();
    let le = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().unwrap());
    let phoff = le(&data[0x20..]) as usize;
    let phnum = u16::from_le_bytes([data[0x38], data[0x39]]) as usize;
    let at = |i: usize| phoff + i * 56;
    let p_type = |d: &[u8], i: usize| u32::from_le_bytes(d[at(i)..at(i) + 4].try_into().unwrap());
    let dynamic = (0..phnum)
        .find(|&i| p_type(&data, i) == elf::PT_DYNAMIC.0)
        .unwrap();
    let stack = (0..phnum)
        .find(|&i| p_type(&data, i) == elf::PT_GNU_STACK.0)
        .unwrap();
    crate::elf::parse_facts(&data[..]).unwrap();
    data.copy_within(at(dynamic)..at(dynamic) + 56, at(stack));
    let err = crate::elf::parse_facts(&data[..]).unwrap_err();
    assert_eq!(err, crate::elf::Malformed::SeveralDynamic);
    // The editor carries the reader's typed reason, in the same words.
    let err = check_layout(&data[..]).unwrap_err();
    assert!(
        matches!(err, EditError::Elf(crate::elf::Malformed::SeveralDynamic)),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "malformed ELF: more than one PT_DYNAMIC");
}

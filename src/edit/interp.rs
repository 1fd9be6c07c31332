//! Setting PT_INTERP, the program interpreter of a dynamic executable
//! (`unfarm fix --interpreter`).
//!
//! A path that fits in the old PT_INTERP bytes is written over them, the
//! rest NUL (no byte of the old store path survives for Nix's scanner);
//! PT_INTERP and `.interp` keep their offset and size. A longer one goes
//! where the dynamic-string grow puts a new `.dynstr`: the end of the
//! trailing PT_LOAD an earlier grow left, or a new PT_LOAD (see `grow`),
//! since glibc's ld.so reads the name through `p_vaddr` and it must be
//! mapped. PT_INTERP keeps its slot in the program header table (before
//! every PT_LOAD), the old bytes are zeroed, and the `.interp` section
//! header follows, so that strip, objcopy and patchelf (which rebuilds
//! PT_INTERP from `.interp`) see the same place.

use object::{ReadRef, elf};

use super::Source;
use super::extend::trailing_load;
use super::grow::{self, Layout, Parts, cover_front_pages, emit_section_headers};
use super::parse::{Model, Phdr};
use super::shdrs::{self, Moved};
use super::write::{Enc, Writes};
use super::{EditError, ElfEdit, StrCtx, check, check_patches_in_file, contains};

/// The kernel refuses a PT_INTERP longer than PATH_MAX (4096 with its NUL).
const MAX_INTERP: usize = 4095;

/// What kind of file an interpreter change meets: only a dynamic
/// executable (PT_INTERP and PT_DYNAMIC: a PIE is an ET_DYN with both) has
/// one to set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterpTarget {
    /// PT_INTERP and PT_DYNAMIC.
    DynamicExecutable,
    /// No PT_INTERP, but PT_DYNAMIC: a shared library.
    Library,
    /// Neither: a static executable (or an object file).
    Static,
}

/// The old PT_INTERP: its index in the program header table and its string.
struct OldInterp {
    index: usize,
    ph: Phdr,
    bytes: Vec<u8>,
}

/// Plan setting the interpreter of the ELF file `data` (length
/// `file_len`) to `new`. The same value gives an empty edit. Only a
/// dynamic executable is edited; anything else is an `Unsupported` error
/// naming what the file is. `scrub` as in [`super::EditRequest`].
pub fn plan_interpreter<'d, R: Source<'d>>(
    data: R,
    file_len: u64,
    new: &str,
    scrub: &[&[u8]],
) -> Result<ElfEdit, EditError> {
    let new = new.as_bytes();
    if new.contains(&0) {
        return Err(EditError::NulInValue);
    }
    if new.is_empty() || new.len() > MAX_INTERP {
        return Err(EditError::Unsupported(format!(
            "an interpreter path must have 1 to {MAX_INTERP} bytes, not {}",
            new.len()
        )));
    }
    if let Some(n) = scrub.iter().find(|n| contains(new, n)) {
        return Err(EditError::Unsupported(format!(
            "the new interpreter contains scrubbed string {:?}",
            String::from_utf8_lossy(n)
        )));
    }
    let m = super::parse::parse(data, file_len)?;
    match target_of(&m) {
        InterpTarget::DynamicExecutable => {}
        InterpTarget::Library => {
            return Err(EditError::Unsupported(
                "a shared library has no interpreter to set".into(),
            ));
        }
        InterpTarget::Static => {
            return Err(EditError::Unsupported(
                "a static executable has no interpreter to set".into(),
            ));
        }
    }
    check::phdrs_clear_of_contents(&m)?;
    check::segments_inside_file(&m)?;
    let old = old_interp(&m, data)?;
    if old.bytes == new {
        return Ok(ElfEdit {
            patches: Vec::new(),
            new_len: file_len,
            grew: false,
        });
    }
    check::check_parsed(&m, data).map_err(|e| {
        EditError::Unsupported(format!(
            "its layout already fails the checks an edit must pass ({e})"
        ))
    })?;
    let mut w = Writes::default();
    let mut blob = new.to_vec();
    blob.push(0);
    let new_len = if blob.len() as u64 <= old.ph.filesz {
        // In place: the new name, then NULs over the rest of the old one.
        blob.resize(old.ph.filesz as usize, 0);
        w.put(old.ph.offset, blob);
        file_len
    } else if let Some(li) = trailing_load(&m) {
        extend(&m, data, &old, li, &blob, &mut w)?
    } else {
        new_segment(&m, data, &old, &blob, &mut w)?
    };
    let patches = w.finish();
    check_patches_in_file(&patches, scrub, new_len)?;
    Ok(ElfEdit {
        patches,
        new_len,
        grew: new_len > file_len,
    })
}

/// What `data` is to an interpreter change.
pub fn interp_target<'d, R: ReadRef<'d>>(
    data: R,
    file_len: u64,
) -> Result<InterpTarget, EditError> {
    Ok(target_of(&super::parse::parse(data, file_len)?))
}

fn target_of(m: &Model) -> InterpTarget {
    match (m.has_interp(), m.dynamic.is_some()) {
        (true, true) => InterpTarget::DynamicExecutable,
        (false, true) => InterpTarget::Library,
        // PT_INTERP without PT_DYNAMIC is not something ld.so can run.
        _ => InterpTarget::Static,
    }
}

fn old_interp<'d, R: ReadRef<'d>>(m: &Model, data: R) -> Result<OldInterp, EditError> {
    let mut found = m
        .phdrs
        .iter()
        .enumerate()
        .filter(|(_, p)| p.p_type == elf::PT_INTERP.0);
    let (index, ph) = found
        .next()
        .ok_or_else(|| EditError::Malformed("no PT_INTERP".into()))?;
    if found.next().is_some() {
        return Err(EditError::Unsupported("file has two PT_INTERP".into()));
    }
    if ph.filesz == 0 || ph.filesz > 1 << 16 {
        return Err(EditError::Malformed(format!(
            "PT_INTERP has {} bytes",
            ph.filesz
        )));
    }
    let raw = data
        .read_bytes_at(ph.offset, ph.filesz)
        .map_err(|_| EditError::Malformed("PT_INTERP lies outside the file".into()))?;
    let bytes = raw.split(|&b| b == 0).next().unwrap_or_default().to_vec();
    Ok(OldInterp {
        index,
        ph: *ph,
        bytes,
    })
}

/// The `.interp` section: named so, or the PROGBITS section PT_INTERP
/// covers exactly.
fn interp_section(m: &Model, old: &OldInterp) -> Option<usize> {
    m.shdrs
        .iter()
        .position(|s| s.name == b".interp")
        .or_else(|| {
            m.shdrs.iter().position(|s| {
                s.sh_type == elf::SHT_PROGBITS.0
                    && s.offset == old.ph.offset
                    && s.size == old.ph.filesz
            })
        })
}

/// PT_INTERP (and `.interp`) at `(offset, vaddr)`, `len` bytes.
fn point_at(p: &mut Phdr, offset: u64, vaddr: u64, len: u64) {
    p.offset = offset;
    p.vaddr = vaddr;
    p.paddr = vaddr;
    p.filesz = len;
    p.memsz = len;
}

/// The file ends with a PT_LOAD an earlier grow left: the name goes at its
/// end and the segment gets longer. Returns the new file length.
fn extend<'d, R: Source<'d>>(
    m: &Model,
    data: R,
    old: &OldInterp,
    li: usize,
    blob: &[u8],
    w: &mut Writes,
) -> Result<u64, EditError> {
    let last = m.phdrs[li];
    let seg_end = last
        .file_end()
        .ok_or_else(|| EditError::Malformed("PT_LOAD end overflows".into()))?;
    let at = seg_end;
    let vaddr = last.vaddr + (at - last.offset);
    let end = at + blob.len() as u64;
    if !m.is64 && vaddr + blob.len() as u64 > u64::from(u32::MAX) {
        return Err(EditError::Unsupported(
            "no 32-bit address space left to extend the last segment".into(),
        ));
    }
    // Old bytes first: later writes win where they overlap.
    w.put(old.ph.offset, vec![0; old.ph.filesz as usize]);
    if seg_end < m.file_len {
        w.put(seg_end, vec![0; (m.file_len - seg_end) as usize]);
    }
    w.put(at, blob.to_vec());
    let mut ph = m.phdrs.clone();
    cover_front_pages(m, &mut ph);
    ph[li].filesz = end - last.offset;
    ph[li].memsz = ph[li].filesz;
    point_at(&mut ph[old.index], at, vaddr, blob.len() as u64);
    let enc = Enc::of(m);
    for (i, (a, b)) in m.phdrs.iter().zip(&ph).enumerate() {
        if a != b {
            w.put(m.phoff + i as u64 * u64::from(m.phentsize), enc.phdr(b)?);
        }
    }
    if m.shdrs.is_empty() {
        return Ok(end.max(m.file_len));
    }
    let mut sh = m.shdrs.clone();
    let mut moved = Vec::new();
    if let Some(i) = interp_section(m, old) {
        moved.push(Moved {
            index: i,
            old_addr: sh[i].addr,
            new_addr: vaddr,
        });
        sh[i].offset = at;
        sh[i].addr = vaddr;
        sh[i].size = blob.len() as u64;
    }
    let tail = shdrs::Tail {
        content_end: end,
        clobber_from: seg_end,
        move_table: m.shoff >= seg_end,
        headers_end: m.headers_end(),
        table_room: None,
    };
    Ok(shdrs::emit(m, data, &sh, &moved, tail, w)?.max(m.file_len))
}

/// A new PT_LOAD past the end of the file holds the name, laid out as the
/// dynamic-string grow lays out its segment (a spare program header slot,
/// the block after the table moved into it, or the table itself moved).
/// Returns the new file length.
fn new_segment<'d, R: Source<'d>>(
    m: &Model,
    data: R,
    old: &OldInterp,
    blob: &[u8],
    w: &mut Writes,
) -> Result<u64, EditError> {
    let d = super::grow::growable(m)?;
    let ctx = StrCtx::of(m)?;
    let l = Layout::new(
        m,
        &ctx,
        d.entries.len() as u64 + 1,
        false,
        blob.len() as u64,
    )?;
    let mut entries = d.entries.clone();
    l.shift_moved_entries(&mut entries);
    // The block moved out of the table's way may hold `.dynstr` (the
    // dynamic-string grow writes a new one; here the moved copy is it).
    if let Some(r) = &l.room {
        let moved = r.start..r.end;
        if moved.contains(&ctx.str_off) && ctx.str_off + ctx.strsz <= r.end {
            grow::set(&mut entries, elf::DT_STRTAB.0, ctx.strtab + l.dv);
        }
    }
    let (off, vaddr) = (l.off0 + l.str_rel, l.vaddr0 + l.str_rel);
    let mut ph = l.program_headers(m);
    let p = ph
        .iter_mut()
        .find(|p| p.p_type == elf::PT_INTERP.0)
        .ok_or_else(|| EditError::Malformed("no PT_INTERP".into()))?;
    point_at(p, off, vaddr, blob.len() as u64);
    // The old name is zeroed first: the grown program header table, written
    // by `write_segment`, may cover its place. The copy of it in a moved
    // block is zeroed after.
    w.put(old.ph.offset, vec![0; old.ph.filesz as usize]);
    let parts = Parts {
        entries: &entries,
        dynstr: blob,
        old: None,
    };
    grow::write_segment(m, data, &ctx, &l, &ph, &parts, w)?;
    if let Some(r) = &l.room
        && old.ph.offset >= r.start
        && old.ph.offset + old.ph.filesz <= r.end
    {
        w.put(old.ph.offset + l.doff, vec![0; old.ph.filesz as usize]);
    }
    if m.shdrs.is_empty() {
        return Ok(l.off0 + l.total);
    }
    let (mut sh, mut moved) = l.moved_sections(m);
    if let Some(i) = interp_section(m, old) {
        moved.retain(|mv| mv.index != i);
        moved.push(Moved {
            index: i,
            old_addr: m.shdrs[i].addr,
            new_addr: vaddr,
        });
        sh[i].offset = off;
        sh[i].addr = vaddr;
        sh[i].size = blob.len() as u64;
    }
    emit_section_headers(m, data, &l, &sh, &moved, w)
}

#[cfg(test)]
mod tests {
    //! On executables built by gcc: each result is re-read by the crate's
    //! ELF reader, passes the layout checks and, where the new interpreter
    //! is a link to the real one, runs.

    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::process::Command;

    use super::super::{EditRequest, SearchPathTag, apply_in_memory, check_layout, plan_edit};
    use super::*;

    const HASH: &str = "0123456789abcdfghijklmnpqrsvwxyz";
    const SRC: &str = "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 42; }\n";
    const LD: &str = "/lib64/ld-linux-x86-64.so.2";

    fn gcc(dir: &Path, args: &[&str], src: &str, out: &str) -> Vec<u8> {
        let c = dir.join(format!("{out}.c"));
        std::fs::write(&c, src).unwrap();
        let o = dir.join(out);
        let st = Command::new("gcc")
            .args(args)
            .arg("-o")
            .arg(&o)
            .arg(&c)
            .status()
            .expect("gcc is required for this test");
        assert!(st.success(), "gcc {args:?} failed");
        std::fs::read(o).unwrap()
    }

    /// A link to the real ld.so under a path of about `len` bytes.
    fn long_ld(dir: &Path, len: usize) -> String {
        let mut p = dir.to_path_buf();
        while p.as_os_str().len() + 40 < len {
            p.push("a-long-directory-name-for-the-interpreter");
        }
        std::fs::create_dir_all(&p).unwrap();
        let l = p.join("ld-linux-x86-64.so.2");
        std::os::unix::fs::symlink(LD, &l).unwrap();
        l.to_str().unwrap().to_owned()
    }

    fn set(data: &[u8], new: &str) -> (ElfEdit, Vec<u8>) {
        let e = plan_interpreter(data, data.len() as u64, new, &[HASH.as_bytes()]).unwrap();
        let mut out = data.to_vec();
        apply_in_memory(&mut out, &e);
        check_all(&out, new);
        (e, out)
    }

    /// Re-read, layout, PT_INTERP before every PT_LOAD and mapped by one,
    /// `.interp` the same bytes, no old hash left.
    fn check_all(data: &[u8], want: &str) {
        check_layout(data).unwrap();
        let facts = crate::elf::parse_facts(data).unwrap();
        assert_eq!(facts.interpreter.as_deref(), Some(want));
        let m = super::super::parse::parse(data, data.len() as u64).unwrap();
        let pi = m
            .phdrs
            .iter()
            .position(|p| p.p_type == elf::PT_INTERP.0)
            .unwrap();
        let first_load = m
            .phdrs
            .iter()
            .position(|p| p.p_type == elf::PT_LOAD.0)
            .unwrap();
        assert!(pi < first_load, "PT_INTERP after a PT_LOAD");
        let p = m.phdrs[pi];
        assert!(
            m.loads().any(|l| l.offset <= p.offset
                && p.offset + p.filesz <= l.offset + l.filesz
                && l.vaddr + (p.offset - l.offset) == p.vaddr),
            "PT_INTERP is not mapped where it lies"
        );
        if let Some(s) = m.shdrs.iter().find(|s| s.name == b".interp") {
            assert_eq!((s.offset, s.addr, s.size), (p.offset, p.vaddr, p.filesz));
        }
        assert!(memchr::memmem::find(data, HASH.as_bytes()).is_none());
    }

    fn run(dir: &Path, data: &[u8], name: &str) {
        let f = dir.join(name);
        std::fs::write(&f, data).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = Command::new(&f).output().unwrap();
        assert_eq!(out.status.code(), Some(42), "{name}: {out:?}");
        assert_eq!(out.stdout, b"hi\n");
    }

    #[test]
    fn shorter_is_written_in_place_and_scrubbed() {
        let d = tempfile::tempdir().unwrap();
        let old =
            format!("-Wl,--dynamic-linker=/nix/store/{HASH}-glibc-2.40/lib/ld-linux-x86-64.so.2");
        let exe = gcc(d.path(), &[&old], SRC, "exe");
        let (e, out) = set(&exe, LD);
        let p = e.single_in_place().expect("one in-place patch");
        assert_eq!(out.len(), exe.len());
        assert!(p.bytes.len() > LD.len() && p.bytes[LD.len()..].iter().all(|&b| b == 0));
        run(d.path(), &out, "short");
        // A second run changes nothing.
        let again = plan_interpreter(&out[..], out.len() as u64, LD, &[]).unwrap();
        assert!(again.is_noop());
    }

    #[test]
    fn longer_grows_pie_and_non_pie() {
        let d = tempfile::tempdir().unwrap();
        let new = long_ld(d.path(), 300);
        for (name, args) in [("pie", &["-pie", "-fPIE"][..]), ("nopie", &["-no-pie"][..])] {
            let exe = gcc(d.path(), args, SRC, name);
            let (e, out) = set(&exe, &new);
            assert!(e.grew, "{name}");
            assert!(
                memchr::memmem::find(&out, LD.as_bytes()).is_none(),
                "{name}"
            );
            run(d.path(), &out, &format!("{name}-out"));
            // Longer again: the trailing segment is extended.
            let newer = long_ld(&d.path().join(format!("{name}.d")), 600);
            let (e2, out2) = set(&out, &newer);
            assert!(e2.grew);
            let loads = |b: &[u8]| {
                let m = super::super::parse::parse(b, b.len() as u64).unwrap();
                m.loads().count()
            };
            assert_eq!(
                loads(&out2),
                loads(&out),
                "{name}: extended, no new PT_LOAD"
            );
            run(d.path(), &out2, &format!("{name}-out2"));
            // Back to a short one: in place, still runs.
            let (e3, out3) = set(&out2, LD);
            assert!(!e3.grew);
            run(d.path(), &out3, &format!("{name}-out3"));
        }
    }

    /// The interpreter and a RUNPATH grow composed on one image, in both
    /// orders (`fix` sets the interpreter first).
    #[test]
    fn combined_with_a_runpath_grow() {
        let d = tempfile::tempdir().unwrap();
        let new = long_ld(d.path(), 250);
        let exe = gcc(
            d.path(),
            &["-Wl,-rpath,/x", "-Wl,--enable-new-dtags"],
            SRC,
            "rp",
        );
        let runpath = format!(
            "/nix/store/{}-cuda/lib:{}",
            "z".repeat(32),
            "/y".repeat(200)
        );
        let rp = |data: &[u8]| {
            let r = EditRequest {
                tag: SearchPathTag::Runpath,
                new_value: &runpath,
                scrub: &[],
                drop_ldcache_note: false,
            };
            let e = plan_edit(data, data.len() as u64, &r).unwrap();
            assert!(e.grew);
            let mut out = data.to_vec();
            apply_in_memory(&mut out, &e);
            out
        };
        let (_, a) = set(&exe, &new);
        let a = rp(&a);
        let (_, b) = set(&rp(&exe), &new);
        for (i, out) in [a, b].iter().enumerate() {
            check_all(out, &new);
            let f = crate::elf::parse_facts(&out[..]).unwrap();
            assert_eq!(f.runpath.as_deref(), Some(runpath.as_str()));
            run(d.path(), out, &format!("both{i}"));
        }
    }

    #[test]
    fn libraries_and_static_executables_are_not_edited() {
        let d = tempfile::tempdir().unwrap();
        let lib = gcc(
            d.path(),
            &["-shared", "-fPIC"],
            "int f(void) { return 1; }\n",
            "l.so",
        );
        let stat = gcc(d.path(), &["-static"], SRC, "static");
        let exe = gcc(d.path(), &[], SRC, "exe");
        let t = |b: &[u8]| interp_target(b, b.len() as u64).unwrap();
        assert_eq!(t(&lib), InterpTarget::Library);
        assert_eq!(t(&stat), InterpTarget::Static);
        assert_eq!(t(&exe), InterpTarget::DynamicExecutable);
        for b in [&lib, &stat] {
            let e = plan_interpreter(&b[..], b.len() as u64, LD, &[]).unwrap_err();
            assert!(matches!(e, EditError::Unsupported(_)), "{e}");
        }
    }

    /// gold, a one-byte interpreter name and no dynamic symbol: the block
    /// moved out of the table's way runs into `.dynstr`, which moves with
    /// it (DT_STRTAB follows).
    #[test]
    fn dynstr_in_the_moved_block() {
        const RAW: &str = "__attribute__((force_align_arg_pointer)) void _start(void) {\n\
            __asm__ volatile(\"syscall\" : : \"a\"(1), \"D\"(1), \"S\"(\"hi\\n\"), \"d\"(3) \
            : \"rcx\", \"r11\", \"memory\");\n\
            __asm__ volatile(\"syscall\" : : \"a\"(60), \"D\"(42) : \"rcx\", \"r11\", \"memory\");\n\
            __builtin_unreachable(); }\n";
        let d = tempfile::tempdir().unwrap();
        let exe = gcc(
            d.path(),
            &[
                "-fuse-ld=gold",
                "-nostdlib",
                "-no-pie",
                "-fno-pie",
                "-fcf-protection=none",
                "-Wl,--dynamic-linker=/l",
                "-Wl,--build-id=none",
                "-Wl,--no-as-needed",
                "-lc",
            ],
            RAW,
            "raw",
        );
        let m = super::super::parse::parse(&exe[..], exe.len() as u64).unwrap();
        let dynstr = m.shdrs.iter().find(|s| s.name == b".dynstr").unwrap();
        let table_end = m.phoff + m.phdrs.len() as u64 * 56;
        assert!(dynstr.offset < table_end + 56, "the layout this test needs");
        let new = long_ld(d.path(), 200);
        let (e, out) = set(&exe, &new);
        assert!(e.grew);
        let f = crate::elf::parse_facts(&out[..]).unwrap();
        assert_eq!(f.needed, ["libc.so.6"]);
        let f = d.path().join("raw-out");
        std::fs::write(&f, &out).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        let r = Command::new(&f).output().unwrap();
        assert_eq!((r.status.code(), &r.stdout[..]), (Some(42), &b"hi\n"[..]));
    }

    /// 32-bit and big-endian files (structure only: the full tier runs
    /// them under qemu). Needs the cross gccs, so it runs with the full
    /// tier's tools (`--features full-tests`), not in a bare `cargo test`.
    #[cfg(feature = "full-tests")]
    #[test]
    fn i686_s390x_aarch64_pie_and_not() {
        let d = tempfile::tempdir().unwrap();
        let new = format!(
            "/nix/store/{}-glibc-2.40/lib/{}",
            "z".repeat(32),
            "l".repeat(200)
        );
        for cc in [
            "i686-linux-gnu-gcc",
            "s390x-linux-gnu-gcc",
            "aarch64-linux-gnu-gcc",
        ] {
            for pie in ["-pie", "-no-pie"] {
                let c = d.path().join("m.c");
                std::fs::write(&c, SRC).unwrap();
                let o = d.path().join("m");
                let st = Command::new(cc)
                    .args([pie, "-o"])
                    .arg(&o)
                    .arg(&c)
                    .status()
                    .unwrap_or_else(|e| panic!("{cc} is required for this test: {e}"));
                assert!(st.success(), "{cc} {pie}");
                let exe = std::fs::read(&o).unwrap();
                let old = crate::elf::parse_facts(&exe[..])
                    .unwrap()
                    .interpreter
                    .unwrap();
                let (e, out) = set(&exe, &new);
                assert!(e.grew, "{cc} {pie}");
                assert!(
                    memchr::memmem::find(&out, old.as_bytes()).is_none(),
                    "{cc} {pie}"
                );
                let (e, back) = set(&out, &old);
                assert!(!e.grew, "{cc} {pie}: back in place");
                assert!(memchr::memmem::find(&back, new.as_bytes()).is_none());
            }
        }
    }

    #[test]
    fn bad_values_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let exe = gcc(d.path(), &[], SRC, "exe");
        let n = exe.len() as u64;
        assert!(plan_interpreter(&exe[..], n, "", &[]).is_err());
        assert!(plan_interpreter(&exe[..], n, "/a\0b", &[]).is_err());
        assert!(plan_interpreter(&exe[..], n, &"/a".repeat(3000), &[]).is_err());
        let bad = format!("/nix/store/{HASH}-glibc/lib/ld.so");
        assert!(plan_interpreter(&exe[..], n, &bad, &[HASH.as_bytes()]).is_err());
    }
}

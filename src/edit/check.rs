//! Structural invariants of an edited file, checked before it replaces the
//! original. Each failure names the rule broken.

use object::{ReadRef, elf};

use super::EditError;
use super::parse::{self, Model};

/// Check the invariants of §2 of the design on a whole file in memory.
pub fn check_layout(data: &[u8]) -> Result<(), EditError> {
    check_layout_ref(data, data.len() as u64)
}

/// [`check_layout`] for any [`ReadRef`] (e.g. `object::ReadCache<File>`).
///
/// Rules: program headers lie within the file; every PT_LOAD has a
/// power-of-two alignment, `p_vaddr % p_align == p_offset % p_align`, file
/// bytes inside the file, `p_filesz <= p_memsz`, ascending addresses, and no
/// two overlap in memory; PT_PHDR (if any) comes before every PT_LOAD, equals
/// `e_phoff` and lies in a PT_LOAD; PT_DYNAMIC lies in a writable PT_LOAD
/// (except on MIPS, where it is read-only by ABI); DT_STRTAB lies in a PT_LOAD
/// and agrees with the `.dynstr` section header; every string-valued dynamic
/// entry is below DT_STRSZ and NUL-terminated.
pub(crate) fn check_layout_ref<'d, R: ReadRef<'d>>(data: R, len: u64) -> Result<(), EditError> {
    check_parsed(&parse::parse(data, len)?, data)
}

/// [`check_layout_ref`] on a file already parsed into `m`.
pub(super) fn check_parsed<'d, R: ReadRef<'d>>(m: &Model, data: R) -> Result<(), EditError> {
    let len = m.file_len;
    let bad = |s: String| Err(EditError::Layout(s));
    let ph_end = u64::from(m.phentsize)
        .checked_mul(m.phdrs.len() as u64)
        .and_then(|n| n.checked_add(m.phoff));
    if ph_end.is_none_or(|e| e > len) {
        return bad("program header table extends past the end of the file".into());
    }
    phdrs_clear_of_contents(m)?;
    shdrs_clear_of_contents(m)?;
    contents_disjoint(m)?;
    segments_inside_file(m)?;
    check_loads(m)?;
    for p in m.phdrs.iter().filter(|p| p.p_type == elf::PT_PHDR.0) {
        if p.offset != m.phoff {
            return bad(format!(
                "PT_PHDR offset {:#x} is not e_phoff {:#x}",
                p.offset, m.phoff
            ));
        }
        if m.vaddr_to_offset(p.vaddr, p.filesz) != Some(p.offset) {
            return bad("PT_PHDR is not inside a PT_LOAD at its offset".into());
        }
    }
    if let Some(d) = &m.dynamic {
        check_dynamic(m, data, d)?;
    }
    for (i, s) in m.shdrs.iter().enumerate() {
        if s.sh_type != elf::SHT_NOBITS.0
            && s.sh_type != elf::SHT_NULL.0
            && s.offset.checked_add(s.size).is_none_or(|e| e > len)
        {
            return bad(format!("section {i} extends past the end of the file"));
        }
    }
    Ok(())
}

/// PT_PHDR before every PT_LOAD; each PT_LOAD aligned as it says, inside
/// the file, no more file bytes than memory, in address order without
/// overlap (what the kernel and ld.so need to map it).
fn check_loads(m: &Model) -> Result<(), EditError> {
    let len = m.file_len;
    let bad = |s: String| Err(EditError::Layout(s));
    let mut prev: Option<(u64, u64)> = None;
    let mut seen_load = false;
    for (i, p) in m.phdrs.iter().enumerate() {
        if p.p_type == elf::PT_PHDR.0 && seen_load {
            return bad(format!("PT_PHDR (header {i}) comes after a PT_LOAD"));
        }
        if p.p_type != elf::PT_LOAD.0 {
            continue;
        }
        seen_load = true;
        if p.align > 1 {
            if !p.align.is_power_of_two() {
                return bad(format!(
                    "PT_LOAD {i} alignment {:#x} is not a power of two",
                    p.align
                ));
            }
            if p.vaddr % p.align != p.offset % p.align {
                return bad(format!(
                    "PT_LOAD {i}: p_vaddr {:#x} and p_offset {:#x} differ modulo p_align {:#x}",
                    p.vaddr, p.offset, p.align
                ));
            }
        }
        if p.file_end().is_none_or(|e| e > len) {
            return bad(format!(
                "PT_LOAD {i} file bytes extend past the end of the file"
            ));
        }
        if p.filesz > p.memsz {
            return bad(format!("PT_LOAD {i} has p_filesz > p_memsz"));
        }
        let Some(end) = p.mem_end() else {
            return bad(format!("PT_LOAD {i} end address overflows"));
        };
        if let Some((pstart, pend)) = prev {
            if p.vaddr < pstart {
                return bad(format!("PT_LOAD {i} is out of address order"));
            }
            if p.vaddr < pend {
                return bad(format!(
                    "PT_LOAD {i} overlaps the previous PT_LOAD in memory"
                ));
            }
        }
        prev = Some((p.vaddr, end));
    }
    Ok(())
}

/// The ELF header and program header table must not share file bytes with
/// the contents of a segment (a note, the interpreter, `.dynamic`) or of a
/// section: an edit may rewrite either, and would corrupt the other. (Whole
/// segments that merely cover the headers, PT_LOAD and PT_PHDR, are fine.)
pub(super) fn phdrs_clear_of_contents(m: &Model) -> Result<(), EditError> {
    let start = m.phoff;
    let end = u64::from(m.phentsize)
        .checked_mul(m.phdrs.len() as u64)
        .and_then(|n| n.checked_add(start))
        .ok_or_else(|| EditError::Layout("program header table size overflows".into()))?;
    let ehdr_end = m.ehdr_size();
    let overlaps = |off: u64, size: u64| {
        let e = off.saturating_add(size);
        (off < end && start < e) || off < ehdr_end
    };
    for (i, p) in m.phdrs.iter().enumerate() {
        let contents = [elf::PT_NOTE.0, elf::PT_INTERP.0, elf::PT_DYNAMIC.0];
        if contents.contains(&p.p_type) && p.filesz > 0 && overlaps(p.offset, p.filesz) {
            return Err(EditError::Layout(format!(
                "the ELF or program headers overlap the contents of segment {i} (type {:#x})",
                p.p_type
            )));
        }
    }
    for (i, s) in m.shdrs.iter().enumerate() {
        let no_bytes = s.sh_type == elf::SHT_NOBITS.0 || s.sh_type == elf::SHT_NULL.0;
        if !no_bytes && s.size > 0 && overlaps(s.offset, s.size) {
            return Err(EditError::Layout(format!(
                "the ELF or program headers overlap the contents of section {i}"
            )));
        }
    }
    Ok(())
}

/// Segments with contents of their own (the interpreter, notes, `.dynamic`)
/// share no bytes: an edit of one (entries shifted, a note removed) would
/// change the other.
pub(super) fn contents_disjoint(m: &Model) -> Result<(), EditError> {
    let contents = [elf::PT_NOTE.0, elf::PT_INTERP.0, elf::PT_DYNAMIC.0];
    let segs: Vec<(usize, &parse::Phdr)> = m
        .phdrs
        .iter()
        .enumerate()
        .filter(|(_, p)| contents.contains(&p.p_type) && p.filesz > 0)
        .collect();
    for (k, &(i, a)) in segs.iter().enumerate() {
        for &(j, b) in &segs[k + 1..] {
            let (a_end, b_end) = (
                a.offset.saturating_add(a.filesz),
                b.offset.saturating_add(b.filesz),
            );
            if a.offset < b_end && b.offset < a_end {
                return Err(EditError::Layout(format!(
                    "the contents of segments {i} and {j} overlap"
                )));
            }
        }
    }
    Ok(())
}

/// The section header table lies inside the file and shares no bytes with
/// the ELF or program headers, a segment's contents (a note, the
/// interpreter, `.dynamic`) or a section: an edit rewriting either would
/// corrupt the other.
pub(super) fn shdrs_clear_of_contents(m: &Model) -> Result<(), EditError> {
    if m.shdrs.is_empty() {
        return Ok(());
    }
    let bad = |s: String| Err(EditError::Layout(s));
    let Some(end) = u64::from(m.shentsize)
        .checked_mul(m.shdrs.len() as u64)
        .and_then(|n| n.checked_add(m.shoff))
        .filter(|&e| e <= m.file_len)
    else {
        return bad("section header table extends past the end of the file".into());
    };
    let overlaps = |off: u64, size: u64| off < end && m.shoff < off.saturating_add(size);
    let ph_end = u64::from(m.phentsize)
        .saturating_mul(m.phdrs.len() as u64)
        .saturating_add(m.phoff);
    if overlaps(0, m.ehdr_size()) || overlaps(m.phoff, ph_end - m.phoff) {
        return bad("the section header table overlaps the ELF or program headers".into());
    }
    for (i, p) in m.phdrs.iter().enumerate() {
        let contents = [elf::PT_NOTE.0, elf::PT_INTERP.0, elf::PT_DYNAMIC.0];
        if contents.contains(&p.p_type) && p.filesz > 0 && overlaps(p.offset, p.filesz) {
            return bad(format!(
                "the section header table overlaps the contents of segment {i} (type {:#x})",
                p.p_type
            ));
        }
    }
    for (i, s) in m.shdrs.iter().enumerate() {
        let no_bytes = s.sh_type == elf::SHT_NOBITS.0 || s.sh_type == elf::SHT_NULL.0;
        if !no_bytes && s.size > 0 && overlaps(s.offset, s.size) {
            return bad(format!(
                "the section header table overlaps the contents of section {i}"
            ));
        }
    }
    Ok(())
}

/// Every segment's file bytes lie inside the file (not only PT_LOADs: a note
/// or the interpreter past the end is as broken, and an edit placing data at
/// the end would land "inside" it).
pub(super) fn segments_inside_file(m: &Model) -> Result<(), EditError> {
    for (i, p) in m.phdrs.iter().enumerate() {
        if p.p_type != elf::PT_NULL.0 && p.filesz > 0 && p.file_end().is_none_or(|e| e > m.file_len)
        {
            return Err(EditError::Layout(format!(
                "segment {i} (type {:#x}) extends past the end of the file",
                p.p_type
            )));
        }
    }
    Ok(())
}

fn check_dynamic<'d, R: ReadRef<'d>>(
    m: &Model,
    data: R,
    d: &parse::DynInfo,
) -> Result<(), EditError> {
    let bad = |s: &str| Err(EditError::Layout(s.into()));
    let p = m.phdrs[d.phdr_index];
    let host = m.loads().find(|l| {
        p.vaddr >= l.vaddr
            && p.vaddr
                .checked_add(p.memsz)
                .is_some_and(|e| Some(e) <= l.mem_end())
    });
    let Some(host) = host else {
        return bad("PT_DYNAMIC is not inside a PT_LOAD");
    };
    if m.vaddr_to_offset(p.vaddr, p.filesz) != Some(p.offset) {
        return bad("PT_DYNAMIC offset does not match its address");
    }
    if host.flags & elf::PF_W.0 == 0 && m.e_machine != elf::EM_MIPS.0 {
        return bad("PT_DYNAMIC is in a read-only PT_LOAD");
    }
    let (Some(strtab), Some(strsz)) = (d.get(elf::DT_STRTAB.0), d.get(elf::DT_STRSZ.0)) else {
        return bad("DT_STRTAB or DT_STRSZ is missing");
    };
    let Some(str_off) = m.vaddr_to_offset(strtab, strsz) else {
        return bad("DT_STRTAB..DT_STRSZ is not inside a PT_LOAD");
    };
    // The string table is rewritten in place: it must not share bytes with
    // the headers or the dynamic array, which an edit rewrites too.
    let str_end = str_off.saturating_add(strsz);
    let hits = |off: u64, size: u64| off < str_end && str_off < off.saturating_add(size);
    let ph_size = u64::from(m.phentsize).saturating_mul(m.phdrs.len() as u64);
    let sh_size = u64::from(m.shentsize).saturating_mul(m.shdrs.len() as u64);
    if hits(0, m.ehdr_size())
        || hits(m.phoff, ph_size)
        || (sh_size > 0 && hits(m.shoff, sh_size))
        || hits(p.offset, p.filesz)
    {
        return bad("the dynamic string table overlaps the headers or the dynamic array");
    }
    if m.phdrs.iter().any(|q| {
        (q.p_type == elf::PT_INTERP.0 || q.p_type == elf::PT_NOTE.0)
            && q.filesz > 0
            && hits(q.offset, q.filesz)
    }) {
        return bad("the dynamic string table overlaps the interpreter or a note");
    }
    let dyn_sec = m.dynamic_shdr.map(|i| &m.shdrs[i]);
    if let Some(ds) = dyn_sec {
        if ds.addr != p.vaddr || ds.offset != p.offset {
            return bad(".dynamic section header disagrees with PT_DYNAMIC");
        }
        if let Some(ss) = m.shdrs.get(ds.link as usize)
            && ss.sh_type == elf::SHT_STRTAB.0
            && (ss.addr != strtab || ss.offset != str_off || ss.size != strsz)
        {
            return bad(".dynstr section header disagrees with DT_STRTAB/DT_STRSZ");
        }
    }
    let spent = std::cell::Cell::new(0);
    for (t, v) in &d.entries {
        if !parse::STRING_TAGS.contains(t) {
            continue;
        }
        if *v >= strsz {
            return Err(EditError::Layout(format!(
                "dynamic entry {t:#x} string offset {v:#x} is past DT_STRSZ {strsz:#x}"
            )));
        }
        let end = str_off
            .checked_add(strsz)
            .ok_or_else(|| EditError::Layout("DT_STRSZ overflows".into()))?;
        crate::elf::read_string_until(data, str_off + v, end, &spent)
            .map_err(|e| EditError::Layout(format!("dynamic entry {t:#x} string: {e}")))?;
    }
    Ok(())
}

//! The grow path: append a PT_LOAD holding a new `.dynstr` (and, when there
//! is no room for them where they are, the program header table and
//! `.dynamic`).

use object::{ReadRef, elf};

use super::parse::{Model, Phdr};
use super::write::{Enc, Writes, align_up};
use super::{EditError, OldString, StrCtx};

/// Offsets inside the new segment start on this boundary (cosmetic: only
/// `p_vaddr % p_align == p_offset % p_align` matters to loaders).
const PAGE: u64 = 4096;
/// Largest zero gap we accept between the old end of file and the new
/// segment when placement rules force one (executables whose program headers
/// move: see `place`).
const MAX_HOLE: u64 = 64 << 20;
const DT_MIPS_RLD_MAP_REL: i64 = 0x7000_0035;

#[allow(clippy::too_many_arguments)]
pub(super) fn plan_grow<'d, R: ReadRef<'d>>(
    m: &Model,
    data: R,
    ctx: &StrCtx,
    tag: i64,
    entry: Option<usize>,
    old: Option<&OldString>,
    new: &[u8],
    w: &mut Writes,
) -> Result<u64, EditError> {
    let d = m.dynamic.as_ref().ok_or(EditError::NoDynamic)?;
    let enc = Enc::of(m);
    if m.phentsize != m.ph_entsize_expected() {
        return Err(EditError::Unsupported(format!(
            "unexpected program header entry size {}",
            m.phentsize
        )));
    }
    let strsz_usize = usize::try_from(ctx.strsz)
        .map_err(|_| EditError::Malformed("DT_STRSZ is too large".into()))?;
    let mut dynstr = data
        .read_bytes_at(ctx.str_off, ctx.strsz)
        .map_err(|_| EditError::Malformed(".dynstr lies outside the file".into()))?
        .to_vec();
    // The old string's private bytes are freed in both copies.
    if let Some(o) = old {
        let (s, e) = (o.start as usize, o.private_end() as usize);
        dynstr[s..e].fill(0);
        if e > s {
            w.put(ctx.str_off + o.start, vec![0; e - s]);
        }
    }
    let new_index = ctx.strsz;
    dynstr.extend_from_slice(new);
    dynstr.push(0);
    debug_assert_eq!(dynstr.len(), strsz_usize + new.len() + 1);

    let mut entries = d.entries.clone();
    match entry {
        Some(i) => entries[i].1 = new_index,
        None => entries.push((tag, new_index)),
    }
    set(&mut entries, elf::DT_STRSZ.0, dynstr.len() as u64);

    let needed_slots = entries.len() as u64 + 1;
    let dyn_moves = needed_slots > d.slots;
    if dyn_moves {
        check_dynamic_movable(m)?;
    }
    let spare = m.phdrs.iter().position(|p| p.p_type == elf::PT_NULL.0);
    let phdr_moves = spare.is_none();
    let new_phnum = m.phdrs.len() + usize::from(phdr_moves);
    if new_phnum >= usize::from(elf::PN_XNUM) {
        return Err(EditError::Unsupported("too many program headers".into()));
    }
    let ph_size = new_phnum as u64 * u64::from(m.phentsize);

    // Layout of the new segment: [phdrs][.dynamic][.dynstr].
    let mut cur = 0u64;
    if phdr_moves {
        cur = ph_size;
    }
    let dyn_rel = align_up(cur, m.word_size()).unwrap_or(cur);
    // One spare slot so a later added entry need not move `.dynamic` again.
    let new_slots = needed_slots + 1;
    if dyn_moves {
        cur = dyn_rel + new_slots * m.dyn_entsize();
    }
    let str_rel = cur;
    let total = cur + dynstr.len() as u64;

    let (off0, vaddr0, align) = place(m, phdr_moves)?;
    let seg_end = vaddr0
        .checked_add(total)
        .ok_or_else(|| EditError::Unsupported("no address space left for a new segment".into()))?;
    if !m.is64 && seg_end > u64::from(u32::MAX) {
        return Err(EditError::Unsupported(
            "no 32-bit address space left for a new segment".into(),
        ));
    }

    let mut flags = elf::PF_R.0;
    if dyn_moves {
        flags |= elf::PF_W.0;
    }
    let load = Phdr {
        p_type: elf::PT_LOAD.0,
        flags,
        offset: off0,
        vaddr: vaddr0,
        paddr: vaddr0,
        filesz: total,
        memsz: total,
        align,
    };
    let mut ph = m.phdrs.clone();
    if let Some(i) = spare {
        ph.remove(i);
    }
    // PT_LOADs must stay sorted by address: ours is the highest.
    let at = ph
        .iter()
        .rposition(|p| p.p_type == elf::PT_LOAD.0)
        .map_or(ph.len(), |i| i + 1);
    ph.insert(at, load);
    for p in ph.iter_mut() {
        if phdr_moves && p.p_type == elf::PT_PHDR.0 {
            p.offset = off0;
            p.vaddr = vaddr0;
            p.paddr = vaddr0;
            p.filesz = ph_size;
            p.memsz = ph_size;
        }
        if dyn_moves && p.p_type == elf::PT_DYNAMIC.0 {
            p.offset = off0 + dyn_rel;
            p.vaddr = vaddr0 + dyn_rel;
            p.paddr = vaddr0 + dyn_rel;
            p.filesz = new_slots * m.dyn_entsize();
            p.memsz = p.filesz;
        }
    }
    set(&mut entries, elf::DT_STRTAB.0, vaddr0 + str_rel);

    let mut seg = vec![0u8; total as usize];
    let mut phbytes = Vec::with_capacity(ph_size as usize);
    for p in &ph {
        phbytes.extend_from_slice(&enc.phdr(p)?);
    }
    if phdr_moves {
        seg[..phbytes.len()].copy_from_slice(&phbytes);
        let (phoff_at, phnum_at) = if m.is64 { (0x20, 0x38) } else { (0x1c, 0x2c) };
        w.put(phoff_at, enc.word_bytes("program header offset", off0)?);
        let mut n = Vec::new();
        enc.u16(&mut n, new_phnum as u16);
        w.put(phnum_at, n);
    } else {
        w.put(m.phoff, phbytes);
    }
    if dyn_moves {
        let bytes = enc.dyn_array(&entries, new_slots)?;
        let s = dyn_rel as usize;
        seg[s..s + bytes.len()].copy_from_slice(&bytes);
    } else {
        w.put(d.offset, enc.dyn_array(&entries, d.slots)?);
    }
    let s = str_rel as usize;
    seg[s..s + dynstr.len()].copy_from_slice(&dynstr);
    w.put(off0, seg);

    // Section headers, so that readelf, strip and objcopy see the new places.
    if !m.shdrs.is_empty() {
        let expected = if m.is64 { 64 } else { 40 };
        if m.shentsize != expected {
            return Err(EditError::Unsupported(format!(
                "unexpected section header entry size {}",
                m.shentsize
            )));
        }
        let dyn_sec = m.shdrs.iter().position(|s| s.sh_type == elf::SHT_DYNAMIC.0);
        let str_sec = m.section_at(elf::SHT_STRTAB.0, ctx.strtab).or_else(|| {
            dyn_sec
                .map(|i| m.shdrs[i].link as usize)
                .filter(|&l| l < m.shdrs.len() && m.shdrs[l].sh_type == elf::SHT_STRTAB.0)
        });
        let put_sec = |w: &mut Writes, i: usize, s: &super::parse::Shdr| -> Result<(), EditError> {
            let at = m.shoff + i as u64 * u64::from(m.shentsize);
            w.put(at, enc.shdr(s)?);
            Ok(())
        };
        if let Some(i) = str_sec {
            let mut s = m.shdrs[i].clone();
            s.offset = off0 + str_rel;
            s.addr = vaddr0 + str_rel;
            s.size = dynstr.len() as u64;
            put_sec(w, i, &s)?;
        }
        if let (true, Some(i)) = (dyn_moves, dyn_sec) {
            let mut s = m.shdrs[i].clone();
            s.offset = off0 + dyn_rel;
            s.addr = vaddr0 + dyn_rel;
            s.size = new_slots * m.dyn_entsize();
            put_sec(w, i, &s)?;
        }
    }
    Ok(off0 + total)
}

fn set(entries: &mut [(i64, u64)], tag: i64, val: u64) {
    for e in entries.iter_mut().filter(|e| e.0 == tag) {
        e.1 = val;
    }
}

/// Moving `.dynamic` is refused where something addresses it other than
/// through PT_DYNAMIC: MIPS (DT_MIPS_RLD_MAP_REL is relative to the entry's
/// own address, and the ABI ties `.dynamic` to the GOT layout) and static
/// PIEs (they find `_DYNAMIC` PC-relatively to relocate themselves).
fn check_dynamic_movable(m: &Model) -> Result<(), EditError> {
    let d = m.dynamic.as_ref().ok_or(EditError::NoDynamic)?;
    if m.e_machine == elf::EM_MIPS.0 || d.get(DT_MIPS_RLD_MAP_REL).is_some() {
        return Err(EditError::Unsupported(
            "the dynamic section is full and moving it is unsafe on MIPS".into(),
        ));
    }
    let pie = d
        .get(elf::DT_FLAGS_1.0)
        .is_some_and(|f| f & elf::DF_1_PIE.0 != 0);
    if pie && !m.has_interp() {
        return Err(EditError::Unsupported(
            "the dynamic section is full and this static PIE finds it by address".into(),
        ));
    }
    Ok(())
}

/// File offset, address and alignment for the new segment: past the end of
/// the file, above every existing segment, congruent modulo the largest
/// PT_LOAD alignment.
///
/// When an executable's program headers move, some kernels (before Linux
/// 5.18) and emulators compute AT_PHDR as `first PT_LOAD's (vaddr - offset) +
/// e_phoff`; the new segment then keeps that same vaddr - offset difference,
/// which may leave a zero gap in the file as large as the memory image.
fn place(m: &Model, phdr_moves: bool) -> Result<(u64, u64, u64), EditError> {
    let mut align = 1u64;
    let mut max_end = 0u64;
    let mut first: Option<&Phdr> = None;
    for p in m.loads() {
        if p.align > 1 && !p.align.is_power_of_two() {
            return Err(EditError::Malformed(format!(
                "PT_LOAD alignment {:#x} is not a power of two",
                p.align
            )));
        }
        align = align.max(p.align);
        max_end = max_end.max(
            p.mem_end()
                .ok_or_else(|| EditError::Malformed("PT_LOAD end overflows".into()))?,
        );
        first = first.or(Some(p));
    }
    let first = first.ok_or_else(|| EditError::Malformed("no PT_LOAD segment".into()))?;
    // glibc rejects PT_LOADs whose alignment is not a page multiple; a page
    // shared with the previous segment would also be mapped over it.
    let align = align.max(PAGE);
    let overflow = || EditError::Unsupported("no room for a new segment".into());
    let mut off0 = align_up(m.file_len, PAGE).ok_or_else(overflow)?;
    if phdr_moves && m.has_interp() {
        let bias = first.vaddr.checked_sub(first.offset).ok_or_else(|| {
            EditError::Unsupported("first PT_LOAD has an address below its offset".into())
        })?;
        if bias % align != 0 {
            return Err(EditError::Malformed(
                "first PT_LOAD is not congruent".into(),
            ));
        }
        if off0.checked_add(bias).ok_or_else(overflow)? < max_end {
            off0 = align_up(max_end - bias, PAGE).ok_or_else(overflow)?;
        }
        if off0 - m.file_len > MAX_HOLE {
            return Err(EditError::Unsupported(format!(
                "moving the program headers of this executable needs a {} byte gap",
                off0 - m.file_len
            )));
        }
        // bias is a multiple of `align`, so vaddr and offset are congruent.
        Ok((off0, off0 + bias, align))
    } else {
        let vaddr0 = align_up(max_end, align)
            .and_then(|v| v.checked_add(off0 % align))
            .ok_or_else(overflow)?;
        Ok((off0, vaddr0, align))
    }
}

//! Growing a file that was grown before: patchelf and our own grow leave a
//! PT_LOAD at the end of the file. Extending it (instead of adding another
//! PT_LOAD) needs no program header slot, moves no section, and keeps every
//! later grow of the same file bounded: when `.dynstr` is already the tail
//! of that segment, the search path is rewritten where it is and the segment
//! just gets longer; otherwise one copy of `.dynstr` is appended.

use object::elf;

use super::Source;
use super::grow::{cover_front_pages, relocate_dyn_sections, set};
use super::parse::{Model, Phdr};
use super::shdrs;
use super::write::{Enc, Writes, align_up};
use super::{EditError, OldString, StrCtx};

/// `.dynstr` counts as ending its segment when fewer than this many bytes
/// (alignment padding) follow it.
const TAIL_SLACK: u64 = 16;

/// Largest number of unused bytes between the trailing PT_LOAD and the end
/// of the file that the extension takes over (patchelf pads its segment
/// with one byte for old readelf versions).
const MAX_TAIL_PAD: u64 = 4096;

/// Index of a PT_LOAD that ends the file and may grow: highest in memory
/// and in the file, no `.bss` part (`p_filesz == p_memsz`), not executable,
/// with nothing (sections, the section header table) after its bytes.
pub(super) fn trailing_load(m: &Model) -> Option<usize> {
    let (li, last) = m
        .phdrs
        .iter()
        .enumerate()
        .filter(|(_, p)| p.p_type == elf::PT_LOAD.0)
        .max_by_key(|(_, p)| p.vaddr)?;
    let end = last.file_end()?;
    let others_below = m.loads().all(|p| {
        std::ptr::eq(p, last)
            || (p.mem_end().is_some_and(|e| e <= last.vaddr)
                && p.file_end().is_some_and(|e| e <= last.offset))
    });
    // The section header table may come before the segment, or after it
    // (where our grow put a table that had to move): then it moves again.
    let sh_end = u64::from(m.shentsize)
        .checked_mul(m.shdrs.len() as u64)
        .and_then(|n| n.checked_add(m.shoff))?;
    // patchelf >= 0.18 puts the table at the start of its segment.
    let shdrs_below =
        m.shdrs.is_empty() || sh_end <= last.offset || (m.shoff >= last.offset && sh_end <= end);
    let shdrs_after = !m.shdrs.is_empty() && m.shoff >= end && sh_end <= m.file_len;
    let tail_end = if shdrs_after { sh_end } else { end };
    // (The section name table may follow: our grow of an executable puts it
    // there for patchelf, and puts it after the extension again.)
    let nothing_after = m.shdrs.iter().enumerate().all(|(i, s)| {
        s.sh_type == elf::SHT_NOBITS.0
            || s.size == 0
            || s.offset.saturating_add(s.size) <= end
            || (i == m.shstrndx as usize && s.flags & elf::SHF_ALLOC.0 == 0)
    }) && m
        .phdrs
        .iter()
        .all(|p| p.filesz == 0 || p.file_end().is_some_and(|e| e <= end));
    let ok = tail_end <= m.file_len
        && m.file_len - tail_end <= MAX_TAIL_PAD
        && last.filesz == last.memsz
        && last.flags & elf::PF_X.0 == 0
        && last.offset > 0
        && others_below
        && (shdrs_below || shdrs_after)
        && nothing_after;
    ok.then_some(li)
}

/// What the grow path computed: the dynamic entries with the search path
/// at `pos` (its value is set here), `.dynstr` with the old string freed and
/// the new one appended, and whether `.dynamic` needs more slots.
pub(super) struct Grown<'a> {
    pub(crate) load: usize,
    pub(crate) entries: Vec<(i64, u64)>,
    pub(crate) pos: usize,
    pub(crate) dynstr: Vec<u8>,
    pub(crate) old: Option<&'a OldString>,
    pub(crate) new: &'a [u8],
    pub(crate) dyn_moves: bool,
}

/// Plan the extension; returns the new file length.
pub(super) fn plan<'d, R: Source<'d>>(
    m: &Model,
    data: R,
    ctx: &StrCtx,
    g: Grown,
    w: &mut Writes,
) -> Result<u64, EditError> {
    let last = m.phdrs[g.load];
    let vaddr_of = |off: u64| last.vaddr + (off - last.offset);
    let seg_end = last
        .file_end()
        .ok_or_else(|| EditError::Malformed("PT_LOAD end overflows".into()))?;
    // What followed the segment (padding, a section header table that moves
    // on) is zeroed; new contents start right at the segment's end.
    if seg_end < m.file_len {
        w.put(seg_end, vec![0; (m.file_len - seg_end) as usize]);
    }
    let p = place(m, ctx, &g, last, seg_end, w);
    let mut entries = g.entries;
    entries[g.pos].1 = p.index;
    for &j in g.old.map_or(&[][..], |o| &o.twins) {
        entries[j].1 = p.index;
    }
    set(&mut entries, elf::DT_STRSZ.0, p.strsz);
    set(&mut entries, elf::DT_STRTAB.0, vaddr_of(p.str_off));
    if !m.is64 && vaddr_of(p.end) > u64::from(u32::MAX) {
        return Err(EditError::Unsupported(
            "no 32-bit address space left to extend the last segment".into(),
        ));
    }
    write_headers(m, g.load, g.dyn_moves, &p, &entries, w)?;
    if m.shdrs.is_empty() {
        return Ok(p.end.max(m.file_len));
    }
    let mut sh = m.shdrs.clone();
    let mut moved = Vec::new();
    let str_at = (p.str_off, vaddr_of(p.str_off), p.strsz);
    relocate_dyn_sections(m, ctx, &mut sh, &mut moved, str_at, p.dyn_at);
    let tail = shdrs::Tail {
        content_end: p.end,
        clobber_from: seg_end,
        move_table: m.shoff >= seg_end,
        headers_end: m.headers_end(),
        table_room: None,
    };
    let end = shdrs::emit(m, data, &sh, &moved, tail, w)?;
    Ok(end.max(m.file_len))
}

/// Where the extension puts `.dynstr` and (when it moves) `.dynamic`.
struct Placed {
    /// `.dynstr`'s offset, and the new string's index in it.
    str_off: u64,
    index: u64,
    strsz: u64,
    /// `.dynamic`'s new (offset, address, size), when it moves, and its
    /// slots there.
    dyn_at: Option<(u64, u64, u64)>,
    dyn_slots: u64,
    /// Where the segment's contents now end.
    end: u64,
}

/// Place the strings (and `.dynamic`) and write `.dynstr`'s new bytes.
/// `.dynstr` already ending this segment just gets longer: the new string
/// goes over the old one when that is the last string, else after the last
/// string. Otherwise `.dynamic` goes first and a whole new `.dynstr` after
/// it, so that `.dynstr` ends the file and a later grow can reuse it.
fn place(m: &Model, ctx: &StrCtx, g: &Grown, last: Phdr, seg_end: u64, w: &mut Writes) -> Placed {
    let vaddr_of = |off: u64| last.vaddr + (off - last.offset);
    let str_end = ctx.str_off.saturating_add(ctx.strsz);
    let in_tail = ctx.str_off >= last.offset
        && str_end <= seg_end
        && seg_end - str_end < TAIL_SLACK
        && !m.shdrs.iter().any(|s| {
            s.sh_type != elf::SHT_NOBITS.0
                && s.size > 0
                && s.offset >= str_end
                && s.offset < seg_end
        });
    let dyn_slots = g.entries.len() as u64 + 2;
    let place_dyn = |end: &mut u64| {
        let at = align_up(*end, m.word_size()).unwrap_or(*end);
        *end = at + dyn_slots * m.dyn_entsize();
        (at, vaddr_of(at), dyn_slots * m.dyn_entsize())
    };
    if in_tail {
        let at = match g.old {
            Some(o)
                if o.shared_from.is_none() && o.start + o.bytes.len() as u64 + 1 == ctx.strsz =>
            {
                o.start
            }
            _ => ctx.strsz,
        };
        let mut bytes = g.new.to_vec();
        bytes.push(0);
        w.put(ctx.str_off + at, bytes);
        let mut end = ctx.str_off + at + g.new.len() as u64 + 1;
        let dyn_at = g.dyn_moves.then(|| place_dyn(&mut end));
        Placed {
            str_off: ctx.str_off,
            index: at,
            strsz: at + g.new.len() as u64 + 1,
            dyn_at,
            dyn_slots,
            end,
        }
    } else {
        let mut end = seg_end;
        let dyn_at = g.dyn_moves.then(|| place_dyn(&mut end));
        let str_off = end;
        w.put(str_off, g.dynstr.clone());
        Placed {
            str_off,
            index: ctx.strsz,
            strsz: g.dynstr.len() as u64,
            dyn_at,
            dyn_slots,
            end: str_off + g.dynstr.len() as u64,
        }
    }
}

/// The grown PT_LOAD (and front pages covered, see `cover_front_pages`),
/// PT_DYNAMIC where `.dynamic` moved, and `.dynamic` itself.
fn write_headers(
    m: &Model,
    load: usize,
    dyn_moves: bool,
    p: &Placed,
    entries: &[(i64, u64)],
    w: &mut Writes,
) -> Result<(), EditError> {
    let d = m.dynamic.as_ref().ok_or(EditError::NoDynamic)?;
    let enc = Enc::of(m);
    let last = m.phdrs[load];
    let mut ph = m.phdrs.clone();
    cover_front_pages(m, &mut ph);
    let grown = &mut ph[load];
    grown.filesz = p.end - last.offset;
    grown.memsz = grown.filesz;
    if dyn_moves {
        grown.flags |= elf::PF_W.0;
    }
    match p.dyn_at {
        Some((off, vaddr, size)) => {
            w.put(off, enc.dyn_array(entries, p.dyn_slots)?);
            let q = &mut ph[d.phdr_index];
            q.offset = off;
            q.vaddr = vaddr;
            q.paddr = vaddr;
            q.filesz = size;
            q.memsz = size;
        }
        None => w.put(d.offset, enc.dyn_array(entries, d.slots)?),
    }
    for (i, (a, b)) in m.phdrs.iter().zip(&ph).enumerate() {
        if a != b {
            w.put(m.phoff + i as u64 * u64::from(m.phentsize), enc.phdr(b)?);
        }
    }
    Ok(())
}

//! The grow path: append a PT_LOAD holding a new `.dynstr` (and, when there
//! is no room for them where they are, the program header table and
//! `.dynamic`).

use object::{ReadRef, elf};

use super::Source;
use super::extend;
use super::parse::{DynInfo, Model, Phdr};
use super::shdrs::{self, Moved};
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

/// Grow the string at `entry` (or add `tag`): a new `.dynstr` past the end
/// of the file, in a new PT_LOAD or the trailing one an earlier grow left.
/// Returns the new end of the file.
/// The dynamic array of an object a new PT_LOAD can be added to: one
/// with a dynamic segment and program header entries of the standard size
/// (what a grow, of the strings or of the interpreter, first checks).
pub(super) fn growable(m: &Model) -> Result<&DynInfo, EditError> {
    let d = m.dynamic.as_ref().ok_or(EditError::NoDynamic)?;
    if m.phentsize != m.ph_entsize_expected() {
        return Err(EditError::Unsupported(format!(
            "unexpected program header entry size {}",
            m.phentsize
        )));
    }
    Ok(d)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn plan_grow<'d, R: Source<'d>>(
    m: &Model,
    data: R,
    ctx: &StrCtx,
    tag: i64,
    entry: Option<usize>,
    old: Option<&OldString>,
    new: &[u8],
    w: &mut Writes,
) -> Result<u64, EditError> {
    let d = growable(m)?;
    let dynstr = new_dynstr(data, ctx, old, new, w)?;
    // The new string starts where the old table ended.
    let new_index = ctx.strsz;
    let mut entries = d.entries.clone();
    match entry {
        Some(i) => entries[i].1 = new_index,
        None => entries.push((tag, new_index)),
    }
    for &j in old.map_or(&[][..], |o| &o.twins) {
        entries[j].1 = new_index;
    }
    set(&mut entries, elf::DT_STRSZ.0, dynstr.len() as u64);

    let needed_slots = entries.len() as u64 + 1;
    let dyn_moves = needed_slots > d.slots;
    if dyn_moves {
        check_dynamic_movable(m)?;
    }
    // A file grown before (by patchelf or by us) ends with a PT_LOAD: extend
    // it rather than add another, so repeated grows need no new header.
    if let Some(li) = extend::trailing_load(m) {
        let pos = entry.unwrap_or(entries.len() - 1);
        return extend::plan(
            m,
            data,
            ctx,
            extend::Grown {
                load: li,
                entries,
                pos,
                dynstr,
                old,
                new,
                dyn_moves,
            },
            w,
        );
    }
    let l = Layout::new(m, ctx, needed_slots, dyn_moves, dynstr.len() as u64)?;
    l.shift_moved_entries(&mut entries);
    set(&mut entries, elf::DT_STRTAB.0, l.vaddr0 + l.str_rel);
    let ph = l.program_headers(m);
    let parts = Parts {
        entries: &entries,
        dynstr: &dynstr,
        old,
    };
    write_segment(m, data, ctx, &l, &ph, &parts, w)?;
    if m.shdrs.is_empty() {
        return Ok(l.off0 + l.total);
    }
    grow_section_headers(m, data, ctx, &l, dynstr.len() as u64, w)
}

/// The new `.dynstr`: the old table with the old string's private bytes
/// freed (in the file's copy too), then the new string.
fn new_dynstr<'d, R: ReadRef<'d>>(
    data: R,
    ctx: &StrCtx,
    old: Option<&OldString>,
    new: &[u8],
    w: &mut Writes,
) -> Result<Vec<u8>, EditError> {
    let strsz_usize = usize::try_from(ctx.strsz)
        .map_err(|_| EditError::Malformed("DT_STRSZ is too large".into()))?;
    let mut dynstr = data
        .read_bytes_at(ctx.str_off, ctx.strsz)
        .map_err(|_| EditError::Malformed(".dynstr lies outside the file".into()))?
        .to_vec();
    if let Some(o) = old {
        let (s, e) = (o.start as usize, o.private_end() as usize);
        dynstr[s..e].fill(0);
        if e > s {
            w.put(ctx.str_off + o.start, vec![0; e - s]);
        }
    }
    dynstr.extend_from_slice(new);
    dynstr.push(0);
    debug_assert_eq!(dynstr.len(), strsz_usize + new.len() + 1);
    Ok(dynstr)
}

/// Where a new segment goes and what it holds:
/// `[program headers][moved block][.dynamic][.dynstr]`, offsets relative to
/// its start; the program headers and `.dynamic` only when they move.
pub(super) struct Layout {
    /// A PT_NULL slot the new PT_LOAD takes.
    spare: Option<usize>,
    /// The `.interp`/note block moved out of the table's way.
    pub(super) room: Option<Room>,
    /// The table moves into the new segment (no spare slot, no room).
    phdr_moves: bool,
    dyn_moves: bool,
    new_phnum: usize,
    ph_size: u64,
    blk_rel: u64,
    dyn_rel: u64,
    /// `.dynamic` slots when it moves.
    new_slots: u64,
    /// Where the tail blob (`.dynstr`, or the interpreter) starts.
    pub(super) str_rel: u64,
    pub(super) total: u64,
    pub(super) off0: u64,
    pub(super) vaddr0: u64,
    align: u64,
    /// How far the moved block travels in the file and in memory.
    pub(super) doff: u64,
    pub(super) dv: u64,
    /// Where the section header table goes when it grows (its place when it
    /// ends the file, else the old end of the file): room for it is left
    /// before the new segment, so the file still ends with the segment.
    table_at: Option<u64>,
}

impl Layout {
    /// `dynstr_len` is the size of the blob that ends the segment (at
    /// `str_rel`): the new `.dynstr`, or a new interpreter string.
    pub(super) fn new(
        m: &Model,
        ctx: &StrCtx,
        needed_slots: u64,
        dyn_moves: bool,
        dynstr_len: u64,
    ) -> Result<Layout, EditError> {
        let spare = m.phdrs.iter().position(|p| p.p_type == elf::PT_NULL.0);
        // Without a spare slot, make room right after the table by moving the
        // .interp / note sections there into the new segment; the table itself
        // stays put, since `strip` (BFD) always puts it back after the ELF header.
        // Where code follows the table (gold --rosegment), the table moves into
        // the new segment instead, as patchelf moves it.
        let room = match (spare, m.shdrs.is_empty()) {
            (None, false) => find_room(m, u64::from(m.phentsize), ctx.strtab).ok(),
            _ => None,
        };
        let phdr_moves = spare.is_none() && room.is_none();
        let new_phnum = m.phdrs.len() + usize::from(spare.is_none());
        if new_phnum >= usize::from(elf::PN_XNUM) {
            return Err(EditError::Unsupported("too many program headers".into()));
        }
        let ph_size = new_phnum as u64 * u64::from(m.phentsize);
        let mut cur = if phdr_moves { ph_size } else { 0 };
        let mut blk_rel = 0;
        if let Some(r) = &room {
            // Same offset modulo the sections' alignment as before.
            blk_rel = align_up(cur, r.align).unwrap_or(cur) + r.start % r.align;
            cur = blk_rel + (r.end - r.start);
        }
        let dyn_rel = align_up(cur, m.word_size()).unwrap_or(cur);
        // One spare slot so a later added entry need not move `.dynamic` again.
        let new_slots = needed_slots + 1;
        if dyn_moves {
            cur = dyn_rel + new_slots * m.dyn_entsize();
        } else {
            cur = cur.max(dyn_rel);
        }
        let str_rel = cur;
        let total = cur + dynstr_len;
        // What the blocks inside the new segment need: their relative offsets
        // keep this alignment if the segment's start does.
        let inner_align = room.as_ref().map_or(1, |r| r.align).max(m.word_size());
        // A table moved to the end anyway (Go's, after the program headers)
        // needs no room here.
        let table = match room.as_ref().is_some_and(|r| r.moves_shdrs) {
            true => None,
            false => shdrs::table_room(m, room.as_ref().map_or(0, |r| r.secs.len())),
        };
        let reserve = table.map_or(0, |(_, reserve)| reserve);
        let (off0, vaddr0, align) = place(m, phdr_moves, inner_align, reserve)?;
        let seg_end = vaddr0.checked_add(total).ok_or_else(|| {
            EditError::Unsupported("no address space left for a new segment".into())
        })?;
        if !m.is64 && seg_end > u64::from(u32::MAX) {
            return Err(EditError::Unsupported(
                "no 32-bit address space left for a new segment".into(),
            ));
        }
        let (doff, dv) = match &room {
            Some(r) => (
                off0 + blk_rel - r.start,
                (vaddr0 + blk_rel).checked_sub(r.vstart).ok_or_else(|| {
                    EditError::Unsupported("new segment below moved sections".into())
                })?,
            ),
            None => (0, 0),
        };
        Ok(Layout {
            spare,
            room,
            phdr_moves,
            dyn_moves,
            new_phnum,
            ph_size,
            blk_rel,
            dyn_rel,
            new_slots,
            str_rel,
            total,
            off0,
            vaddr0,
            align,
            doff,
            dv,
            table_at: table.map(|(at, _)| at),
        })
    }

    /// Dynamic entries that address a section of the moved block follow it.
    pub(super) fn shift_moved_entries(&self, entries: &mut [(i64, u64)]) {
        if let Some(r) = &self.room {
            for e in entries.iter_mut().filter(|e| MOVABLE_TAGS.contains(&e.0)) {
                if e.1 >= r.vstart && e.1 < r.vstart + (r.end - r.start) {
                    e.1 += self.dv;
                }
            }
        }
    }

    /// `.dynamic`'s new (offset, address, size), when it moves.
    fn dynamic_at(&self, m: &Model) -> Option<(u64, u64, u64)> {
        self.dyn_moves.then(|| {
            (
                self.off0 + self.dyn_rel,
                self.vaddr0 + self.dyn_rel,
                self.new_slots * m.dyn_entsize(),
            )
        })
    }

    /// The new program header table: the new PT_LOAD (in the spare slot's
    /// stead, after the last PT_LOAD), and every header of what moved
    /// pointed at its new place.
    pub(super) fn program_headers(&self, m: &Model) -> Vec<Phdr> {
        let mut flags = elf::PF_R.0;
        if self.dyn_moves {
            flags |= elf::PF_W.0;
        }
        let load = Phdr {
            p_type: elf::PT_LOAD.0,
            flags,
            offset: self.off0,
            vaddr: self.vaddr0,
            paddr: self.vaddr0,
            filesz: self.total,
            memsz: self.total,
            align: self.align,
        };
        let mut ph = m.phdrs.clone();
        if let Some(i) = self.spare {
            ph.remove(i);
        }
        // PT_LOADs must stay sorted by address: ours is the highest.
        let at = ph
            .iter()
            .rposition(|p| p.p_type == elf::PT_LOAD.0)
            .map_or(ph.len(), |i| i + 1);
        ph.insert(at, load);
        for p in ph.iter_mut() {
            if let Some(r) = &self.room {
                if p.p_type == elf::PT_PHDR.0 {
                    p.filesz = self.ph_size;
                    p.memsz = self.ph_size;
                }
                if r.contains(p) {
                    p.offset += self.doff;
                    p.vaddr += self.dv;
                    p.paddr = p.paddr.wrapping_add(self.dv);
                }
            }
            if self.phdr_moves && p.p_type == elf::PT_PHDR.0 {
                p.offset = self.off0;
                p.vaddr = self.vaddr0;
                p.paddr = self.vaddr0;
                p.filesz = self.ph_size;
                p.memsz = self.ph_size;
            }
            if let Some((offset, vaddr, size)) = self.dynamic_at(m)
                && p.p_type == elf::PT_DYNAMIC.0
            {
                p.offset = offset;
                p.vaddr = vaddr;
                p.paddr = vaddr;
                p.filesz = size;
                p.memsz = size;
            }
        }
        cover_front_pages(m, &mut ph);
        ph
    }
}

/// What the new segment holds besides the layout: the final dynamic
/// entries, the new `.dynstr`, and the old string whose bytes are freed.
pub(super) struct Parts<'a> {
    pub(super) entries: &'a [(i64, u64)],
    pub(super) dynstr: &'a [u8],
    pub(super) old: Option<&'a OldString>,
}

/// The writes of a new segment: the program headers (in place, or in the
/// segment with `e_phoff` pointed there), the moved block, `.dynamic`
/// (in place or moved) and `.dynstr`, appended at `off0`.
pub(super) fn write_segment<'d, R: ReadRef<'d>>(
    m: &Model,
    data: R,
    ctx: &StrCtx,
    l: &Layout,
    ph: &[Phdr],
    parts: &Parts,
    w: &mut Writes,
) -> Result<(), EditError> {
    let enc = Enc::of(m);
    let mut seg = vec![0u8; l.total as usize];
    let mut phbytes = Vec::with_capacity(l.ph_size as usize);
    for p in ph {
        phbytes.extend_from_slice(&enc.phdr(p)?);
    }
    let (phoff_at, phnum_at) = m.phoff_phnum_at();
    if l.spare.is_none() {
        let mut n = Vec::new();
        enc.u16(&mut n, l.new_phnum as u16);
        w.put(phnum_at, n);
    }
    if l.phdr_moves {
        seg[..phbytes.len()].copy_from_slice(&phbytes);
        w.put(phoff_at, enc.word_bytes("program header offset", l.off0)?);
    } else {
        w.put(m.phoff, phbytes);
        if let Some(r) = &l.room {
            move_block(m, data, ctx, l, r, parts.old, &mut seg, w)?;
        }
    }
    if l.dyn_moves {
        let bytes = enc.dyn_array(parts.entries, l.new_slots)?;
        let s = l.dyn_rel as usize;
        seg[s..s + bytes.len()].copy_from_slice(&bytes);
    } else {
        let d = m.dynamic.as_ref().ok_or(EditError::NoDynamic)?;
        w.put(d.offset, enc.dyn_array(parts.entries, d.slots)?);
    }
    let s = l.str_rel as usize;
    seg[s..s + parts.dynstr.len()].copy_from_slice(parts.dynstr);
    w.put(l.off0, seg);
    Ok(())
}

/// Copy the `.interp`/note block into the new segment and zero what the
/// grown table does not cover of its old place.
#[allow(clippy::too_many_arguments)]
fn move_block<'d, R: ReadRef<'d>>(
    m: &Model,
    data: R,
    ctx: &StrCtx,
    l: &Layout,
    r: &Room,
    old: Option<&OldString>,
    seg: &mut [u8],
    w: &mut Writes,
) -> Result<(), EditError> {
    let table_end = m.phoff + l.ph_size;
    let b = data.read_bytes_at(r.start, r.end - r.start).map_err(|_| {
        EditError::Malformed("sections after the program headers are truncated".into())
    })?;
    let s = l.blk_rel as usize;
    seg[s..s + b.len()].copy_from_slice(b);
    // The moved copy of the old .dynstr (if in the block) loses the
    // old string's private bytes too.
    if let Some(o) = old {
        let from = ctx.str_off + o.start;
        let to = ctx.str_off + o.private_end();
        if from >= r.start && to <= r.end {
            let a = s + (from - r.start) as usize;
            seg[a..a + (to - from) as usize].fill(0);
        }
    }
    if r.end > table_end {
        w.put(table_end, vec![0; (r.end - table_end) as usize]);
    }
    Ok(())
}

/// Section headers, so that readelf, strip and objcopy see the new places:
/// the moved block's sections, `.dynstr` and `.dynamic`; returns the new end
/// of the file.
fn grow_section_headers<'d, R: Source<'d>>(
    m: &Model,
    data: R,
    ctx: &StrCtx,
    l: &Layout,
    dynstr_len: u64,
    w: &mut Writes,
) -> Result<u64, EditError> {
    let (mut shdrs, mut moved) = l.moved_sections(m);
    let str_at = (l.off0 + l.str_rel, l.vaddr0 + l.str_rel, dynstr_len);
    relocate_dyn_sections(m, ctx, &mut shdrs, &mut moved, str_at, l.dynamic_at(m));
    emit_section_headers(m, data, l, &shdrs, &moved, w)
}

impl Layout {
    /// Where the ELF and program headers end after the grow: a table that
    /// stays where it is grows over the block moved out of its way.
    pub(super) fn headers_end(&self, m: &Model) -> u64 {
        if self.phdr_moves {
            m.headers_end()
        } else {
            m.headers_end().max(m.phoff.saturating_add(self.ph_size))
        }
    }

    /// The section headers with the moved block's sections at their new
    /// places, and what moved.
    pub(super) fn moved_sections(&self, m: &Model) -> (Vec<super::parse::Shdr>, Vec<Moved>) {
        let mut shdrs = m.shdrs.clone();
        let mut moved = Vec::new();
        if let Some(r) = &self.room {
            for &i in &r.secs {
                let s = &mut shdrs[i];
                moved.push(Moved {
                    index: i,
                    old_addr: s.addr,
                    new_addr: s.addr + self.dv,
                });
                s.offset += self.doff;
                s.addr += self.dv;
            }
        }
        (shdrs, moved)
    }
}

/// Write the section headers `shdrs` of a new segment laid out by `l`;
/// returns the new end of the file.
pub(super) fn emit_section_headers<'d, R: Source<'d>>(
    m: &Model,
    data: R,
    l: &Layout,
    shdrs: &[super::parse::Shdr],
    moved: &[Moved],
    w: &mut Writes,
) -> Result<u64, EditError> {
    let moves_table = l.room.as_ref().is_some_and(|r| r.moves_shdrs);
    if moves_table {
        // What the grown program header table does not cover is zeroed.
        let from = m.shoff.max(m.phoff + l.ph_size);
        let to = m.shoff + u64::from(m.shentsize) * m.shdrs.len() as u64;
        if to > from {
            w.put(from, vec![0; (to - from) as usize]);
        }
    }
    let tail = shdrs::Tail {
        content_end: l.off0 + l.total,
        clobber_from: u64::MAX,
        move_table: moves_table,
        headers_end: l.headers_end(m),
        table_room: l.table_at.map(|at| at..l.off0),
    };
    shdrs::emit(m, data, shdrs, moved, tail, w)
}

/// Extend an executable's PT_LOADs that come before its first PROGBITS
/// section over the rest of the last page each maps anyway (up to the next
/// segment, section or the section header table): the memory image is
/// unchanged.
///
/// Why: patchelf 0.14.3 (Debian 12) rewrites an ET_EXEC by moving sections
/// to the front of the file, between the program header table and the first
/// PROGBITS section (or the section after `.dynstr`), and never grows a
/// PT_LOAD over what it writes. In a linker's output `.dynstr` sits in the
/// first segment and patchelf stops right after it; once `.dynstr` lives in
/// our appended segment, patchelf fills the front up to the code, past the
/// end of the segment there: the result runs (the page is mapped), but
/// `strip` drops the tables it finds outside every segment.
pub(super) fn cover_front_pages(m: &Model, ph: &mut [Phdr]) {
    if m.e_type != elf::ET_EXEC.0 {
        return;
    }
    let Some(stop) = m
        .shdrs
        .iter()
        .filter(|s| s.sh_type == elf::SHT_PROGBITS.0 && s.name != b".interp")
        .map(|s| s.offset)
        .min()
    else {
        return;
    };
    for i in 0..ph.len() {
        let p = ph[i];
        let (Some(end), Some(mem_end)) = (p.file_end(), p.mem_end()) else {
            continue;
        };
        if p.p_type != elf::PT_LOAD.0 || p.filesz != p.memsz || end >= stop {
            continue;
        }
        let mut limit = align_up(end, PAGE).unwrap_or(end).min(m.file_len);
        for (j, q) in ph.iter().enumerate() {
            if j == i || q.p_type != elf::PT_LOAD.0 {
                continue;
            }
            if q.offset >= end {
                limit = limit.min(q.offset);
            }
            if q.vaddr >= mem_end {
                limit = limit.min(end + (q.vaddr - mem_end));
            }
        }
        // Nothing that lies after the segment in the file is swallowed.
        for s in &m.shdrs {
            if s.sh_type != elf::SHT_NOBITS.0 && s.size > 0 && s.offset >= end {
                limit = limit.min(s.offset);
            }
        }
        if m.shoff >= end {
            limit = limit.min(m.shoff);
        }
        if limit > end {
            ph[i].filesz = limit - p.offset;
            ph[i].memsz = ph[i].filesz;
        }
    }
}

/// Point the section headers of `.dynstr` (and of `.dynamic`, if it moved)
/// at their new (offset, address, size).
pub(super) fn relocate_dyn_sections(
    m: &Model,
    ctx: &StrCtx,
    shdrs: &mut [super::parse::Shdr],
    moved: &mut Vec<Moved>,
    str_at: (u64, u64, u64),
    dyn_at: Option<(u64, u64, u64)>,
) {
    let dyn_sec = m.dynamic_shdr;
    // The one `.dynamic`'s header links to (what tools, and our layout
    // check, take for `.dynstr`), else the string table at DT_STRTAB.
    let str_sec = dyn_sec
        .map(|i| m.shdrs[i].link as usize)
        .filter(|&l| l < m.shdrs.len() && m.shdrs[l].sh_type == elf::SHT_STRTAB.0)
        .or_else(|| m.section_at(elf::SHT_STRTAB.0, ctx.strtab));
    let mut put = |i: usize, (offset, addr, size): (u64, u64, u64)| {
        moved.push(Moved {
            index: i,
            old_addr: m.shdrs[i].addr,
            new_addr: addr,
        });
        let s = &mut shdrs[i];
        s.offset = offset;
        s.addr = addr;
        s.size = size;
    };
    if let Some(i) = str_sec {
        put(i, str_at);
    }
    if let (Some(at), Some(i)) = (dyn_at, dyn_sec) {
        put(i, at);
    }
}

/// Bytes right after the program header table that can be moved away: only
/// `.interp` and note sections live there, and only PT_INTERP, PT_NOTE and
/// PT_GNU_PROPERTY point into them (the kernel and ld.so find them through
/// those headers, wherever they are).
pub(super) struct Room {
    pub(super) start: u64,
    pub(super) end: u64,
    vstart: u64,
    align: u64,
    secs: Vec<usize>,
    /// The section header table lies where the program header table grows
    /// (Go's internal linker puts it right after): it moves to the end.
    moves_shdrs: bool,
}

impl Room {
    fn contains(&self, p: &Phdr) -> bool {
        matches!(p.p_type, t if t == elf::PT_INTERP.0 || t == elf::PT_NOTE.0 || t == elf::PT_GNU_PROPERTY.0)
            && p.offset >= self.start
            && p.file_end().is_some_and(|e| e <= self.end)
            && p.filesz > 0
    }
}

/// Section types that only program headers or dynamic entries address (so
/// moving them means updating those), never code or relocations.
const MOVABLE_TYPES: [u32; 7] = [
    elf::SHT_NOTE.0,
    elf::SHT_GNU_HASH.0,
    elf::SHT_HASH.0,
    elf::SHT_DYNSYM.0,
    elf::SHT_GNU_VERSYM.0,
    elf::SHT_GNU_VERDEF.0,
    elf::SHT_GNU_VERNEED.0,
];
/// Dynamic entries holding the address of a movable section.
const MOVABLE_TAGS: [i64; 6] = [
    elf::DT_GNU_HASH.0,
    elf::DT_HASH.0,
    elf::DT_SYMTAB.0,
    elf::DT_VERSYM.0,
    elf::DT_VERDEF.0,
    elf::DT_VERNEED.0,
];

/// The block right after the program header table to move out of its way
/// (at least `need` bytes): unclaimed bytes, or the movable sections there.
// Long because it is one scan over the sections in offset order, whose
// stopping rules (need met, a segment not straddled, a section not movable)
// share the running end and alignment.
fn find_room(m: &Model, need: u64, dynstr_addr: u64) -> Result<Room, EditError> {
    let no = || {
        EditError::Unsupported(
            "no spare program header slot and the bytes after the table are not movable \
             (.interp/.note sections only)"
                .into(),
        )
    };
    let start = (m.phdrs.len() as u64)
        .checked_mul(u64::from(m.phentsize))
        .and_then(|n| n.checked_add(m.phoff))
        .ok_or_else(no)?;
    let host = m
        .loads()
        .find(|l| l.offset <= start && l.file_end().is_some_and(|e| start < e))
        .ok_or_else(no)?;
    let vstart = host.vaddr + (start - host.offset);
    let mut secs: Vec<usize> = (0..m.shdrs.len())
        .filter(|&i| {
            let s = &m.shdrs[i];
            s.sh_type != elf::SHT_NOBITS.0 && s.sh_type != elf::SHT_NULL.0 && s.size > 0
        })
        .collect();
    if secs.iter().any(|&i| {
        let s = &m.shdrs[i];
        s.offset < start && s.offset.saturating_add(s.size) > start
    }) {
        return Err(no());
    }
    secs.retain(|&i| m.shdrs[i].offset >= start);
    secs.sort_by_key(|&i| m.shdrs[i].offset);
    let free_end = unclaimed_end(m, &secs, start, host);
    // The section header table is not loaded: its bytes are room too.
    let sh_size = u64::from(m.shentsize) * m.shdrs.len() as u64;
    let shdrs_at = |from: u64, to: u64| sh_size > 0 && m.shoff < to && m.shoff + sh_size > from;
    if free_end - start >= need {
        return Ok(Room {
            start,
            end: start,
            vstart,
            align: 1,
            secs: Vec::new(),
            moves_shdrs: shdrs_at(start, start + need),
        });
    }
    let mut end = start;
    let mut align = 1u64;
    let mut chosen = Vec::new();
    // A segment (e.g. one PT_NOTE over several notes) must move whole.
    let straddles = |end: u64| {
        m.phdrs.iter().any(|p| {
            p.p_type != elf::PT_LOAD.0
                && p.p_type != elf::PT_PHDR.0
                && p.filesz > 0
                && p.offset < end
                && p.file_end().is_some_and(|e| e > end)
        })
    };
    for i in secs {
        if end - start >= need && !straddles(end) {
            break;
        }
        let s = &m.shdrs[i];
        let movable = (MOVABLE_TYPES.contains(&s.sh_type)
            || s.name == b".interp"
            || (s.sh_type == elf::SHT_STRTAB.0 && s.addr == dynstr_addr))
            && s.flags & elf::SHF_ALLOC.0 != 0
            && s.offset >= end
            && s.addr == host.vaddr + (s.offset - host.offset)
            && (s.addralign <= 1 || (s.addralign.is_power_of_two() && s.addralign <= 4096));
        if !movable {
            break;
        }
        end = s.offset.checked_add(s.size).ok_or_else(no)?;
        align = align.max(s.addralign);
        chosen.push(i);
    }
    if end - start < need || host.file_end().is_none_or(|e| end > e) {
        return Err(no());
    }
    let room = Room {
        start,
        end,
        vstart,
        align,
        secs: chosen,
        moves_shdrs: shdrs_at(start, end),
    };
    if !only_moved_point_into(m, &room) {
        return Err(no());
    }
    Ok(room)
}

/// Where the bytes after the table that no section or segment describes
/// end (patchelf moves the sections there away and leaves them): room as
/// they are.
fn unclaimed_end(m: &Model, secs: &[usize], start: u64, host: &Phdr) -> u64 {
    secs.iter()
        .map(|&i| m.shdrs[i].offset)
        .chain(
            m.phdrs
                .iter()
                .filter(|p| {
                    p.p_type != elf::PT_LOAD.0 && p.p_type != elf::PT_PHDR.0 && p.filesz > 0
                })
                .map(|p| p.offset)
                .filter(|&o| o >= start),
        )
        .chain(host.file_end())
        .min()
        .unwrap_or(start)
}

/// Nothing but the block's own sections and the segments moved whole
/// with it may point into the block.
fn only_moved_point_into(m: &Model, room: &Room) -> bool {
    let (start, end) = (room.start, room.end);
    let section_inside = m.shdrs.iter().enumerate().any(|(i, s)| {
        let has_bytes = s.sh_type != elf::SHT_NOBITS.0 && s.sh_type != elf::SHT_NULL.0;
        let overlaps = s.offset < end && s.offset.saturating_add(s.size) > start;
        has_bytes && s.size > 0 && overlaps && !room.secs.contains(&i)
    });
    let segment_inside = m.phdrs.iter().any(|p| {
        let t = p.p_type;
        if t == elf::PT_LOAD.0 || t == elf::PT_PHDR.0 || t == elf::PT_NULL.0 || p.filesz == 0 {
            return false;
        }
        let overlaps = p.offset < end && p.file_end().is_some_and(|e| e > start);
        overlaps && !room.contains(p)
    });
    !section_inside && !segment_inside
}

pub(super) fn set(entries: &mut [(i64, u64)], tag: i64, val: u64) {
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
/// The file offset is only rounded up to `inner_align` (what the blocks
/// inside need), not to a page: the loader maps from the page below
/// `p_offset` anyway, and the address range starts on a fresh page, so
/// padding the file to a page boundary would only add up to 4 KiB of zeros
/// to every grown file.
///
/// When an executable's program headers move, some kernels (before Linux
/// 5.18) and emulators compute AT_PHDR as `first PT_LOAD's (vaddr - offset) +
/// e_phoff`; the new segment then keeps that same vaddr - offset difference,
/// which may leave a zero gap in the file as large as the memory image.
/// Where the new segment goes: past the end of the file and `reserve` more
/// bytes (the grown section header table).
fn place(
    m: &Model,
    phdr_moves: bool,
    inner_align: u64,
    reserve: u64,
) -> Result<(u64, u64, u64), EditError> {
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
    let file_end = m.file_len.checked_add(reserve).ok_or_else(overflow)?;
    if !(phdr_moves && m.has_interp()) {
        let off0 = align_up(file_end, inner_align.clamp(1, PAGE)).ok_or_else(overflow)?;
        let vaddr0 = align_up(max_end, align)
            .and_then(|v| v.checked_add(off0 % align))
            .ok_or_else(overflow)?;
        return Ok((off0, vaddr0, align));
    }
    let mut off0 = align_up(file_end, PAGE).ok_or_else(overflow)?;
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
}

//! Section headers after a grow: moved sections get their new places, and
//! the table stays in file-offset order, the order linkers write and
//! patchelf, `strip` and `objcopy` rely on (patchelf walks the headers by
//! index to find what lies after the program headers; with a moved `.interp`
//! first it overwrote `.gnu.hash` with program headers).
//!
//! Indices are kept where they can be: a moved section leaves a placeholder
//! in its slot (`dynstr` for `.dynstr`: an empty string table at its old
//! place) and its header is appended, so only what refers to the moved
//! sections changes (a few links, their own symbols). Renumbering every
//! section would rewrite each `st_shndx` past the first moved index: the
//! whole 17 MB `.symtab` of a large plugin, for a 4 KB change. Where the
//! placeholders cannot keep the order (or their names would clash), the
//! table is sorted and renumbered, and every reference to an index follows:
//! `sh_link`, `sh_info` of relocation sections, `e_shstrndx` and the
//! `st_shndx` of symbols.

use std::mem::offset_of;

use object::{Endian, elf};

use super::EditError;
use super::Source;
use super::parse::{Model, Shdr};
use super::write::{Enc, Writes, align_up};

/// A section that moved: its index and old and new address (symbols
/// defined relative to it move by the same distance).
pub(super) struct Moved {
    pub(crate) index: usize,
    pub(crate) old_addr: u64,
    pub(crate) new_addr: u64,
}

/// From this many changed symbols in a window on, the window of a symbol
/// table is written whole (one patch) rather than entry by entry.
const WHOLE_TABLE_FROM: usize = 16;

/// Where a grow's contents end (see [`emit`]).
pub(super) struct Tail {
    pub(crate) content_end: u64,
    pub(crate) clobber_from: u64,
    pub(crate) move_table: bool,
    /// Where the ELF and program headers end after the edit (a table grown
    /// in place covers the start of what moved out of its way).
    pub(crate) headers_end: u64,
    /// Bytes before the new contents the section header table may take
    /// when it grows (a grow that adds a segment leaves room for it), so
    /// the file still ends with the segment: patchelf extends a trailing
    /// segment that ends the file, and a table after it made patchelf
    /// 0.19's next grow produce a file `strip` cannot lay out.
    pub(crate) table_room: Option<std::ops::Range<u64>>,
}

/// The most section headers a grow moves besides those of the block moved
/// out of the program header table's way: `.dynstr`, `.dynamic` and the
/// section name table.
const MOVED_BESIDES_BLOCK: usize = 3;

/// Room for the section header table before a new segment when the grow
/// moves up to `block` sections besides [`MOVED_BESIDES_BLOCK`]: where the
/// table goes (its own place when it ends the file, else the old end of
/// the file) and how many bytes past the old end it needs.
pub(super) fn table_room(m: &Model, block: usize) -> Option<(u64, u64)> {
    if m.shdrs.is_empty() {
        return None;
    }
    let ent = u64::from(m.shentsize);
    let n = m.shdrs.len() as u64;
    let more = (block + MOVED_BESIDES_BLOCK) as u64 * ent;
    let end = m.shoff.checked_add(n.checked_mul(ent)?)?;
    if end == m.file_len {
        return Some((m.shoff, more));
    }
    let at = align_up(m.file_len, m.word_size())?;
    Some((at, at - m.file_len + n * ent + more))
}

/// Write the section headers `shdrs` (the input's, with moved sections
/// updated), in file-offset order ([`Order`]: moved headers appended
/// behind placeholders, or as a fallback all sorted), and update what
/// refers to them.
/// `content_end` is where the grown file's contents end, written from
/// `clobber_from` on (`u64::MAX`: nothing existing is overwritten); with `move_table`
/// the table is written after them and `e_shoff` points to it. Returns the
/// end of everything written.
pub(super) fn emit<'d, R: Source<'d>>(
    m: &Model,
    data: R,
    shdrs: &[Shdr],
    moved: &[Moved],
    tail: Tail,
    w: &mut Writes,
) -> Result<u64, EditError> {
    let Tail {
        content_end,
        clobber_from,
        move_table,
        headers_end,
        table_room,
    } = tail;
    if shdrs.is_empty() {
        return Ok(content_end);
    }
    let mut shdrs = shdrs.to_vec();
    let mut end = content_end;
    if let Some(i) = marker_needed(m, &shdrs, clobber_from) {
        // patchelf's executable path asserts that some section follows the
        // last one it replaces (`.dynstr`, now at the end): the section name
        // table, never loaded, goes after it.
        let s = &m.shdrs[i];
        let bytes = data
            .read_bytes_at(s.offset, s.size)
            .map_err(|_| EditError::Malformed("section name table lies outside the file".into()))?;
        w.put(end, bytes.to_vec());
        shdrs[i].offset = end;
        end += s.size;
    }
    // How many headers the table may hold where it goes: any number at the
    // end of the file, else what its room holds (no more than now without).
    let ent = u64::from(m.shentsize).max(1);
    let place = match (move_table, table_room) {
        (true, _) => Place::End,
        (false, Some(r)) => Place::Room(r),
        (false, None) => Place::Kept,
    };
    let max_len = match &place {
        Place::End => usize::MAX,
        Place::Room(r) => usize::try_from((r.end - r.start) / ent).unwrap_or(usize::MAX),
        Place::Kept => shdrs.len(),
    };
    let order = Order::of(m, &shdrs, headers_end, max_len)?;
    emit_table(m, data, &shdrs, &order, moved, end, place, w)
}

/// Where the section header table is written.
enum Place {
    /// Where it is (it does not grow).
    Kept,
    /// After the new contents, `e_shoff` pointed there.
    End,
    /// At the start of this room before the new contents (in its own place
    /// when it ended the file), when it grows; else where it is.
    Room(std::ops::Range<u64>),
}

/// The new section header table: each slot's header (before links are
/// mapped to new indices) and each old index's new one.
struct Order {
    table: Vec<Shdr>,
    new_index: Vec<usize>,
}

impl Order {
    /// The order for `shdrs` (the input's headers, moved sections at their
    /// new places): unchanged when still in offset order; else each moved
    /// section leaves a placeholder and is appended (when the table, at most
    /// `max_len` headers where it goes, has room); else (no room, the
    /// placeholders would break the order or could not be named) sorted by
    /// offset.
    fn of(m: &Model, shdrs: &[Shdr], headers_end: u64, max_len: usize) -> Result<Order, EditError> {
        let n = shdrs.len();
        let identity: Vec<usize> = (0..n).collect();
        if in_offset_order(shdrs) {
            return Ok(Order {
                table: shdrs.to_vec(),
                new_index: identity,
            });
        }
        if let Some(o) = Order::appended(m, shdrs, headers_end)
            && o.table.len() <= max_len
            && in_offset_order(&o.table)
            && check_renumberable(&o.table).is_ok()
        {
            return Ok(o);
        }
        // Section 0 stays first; the rest are stably sorted by offset, as
        // patchelf sorts them.
        check_renumberable(shdrs)?;
        let mut order: Vec<usize> = (1..n).collect();
        order.sort_by_key(|&i| shdrs[i].offset);
        order.insert(0, 0);
        let mut new_index = identity;
        for (new, &old) in order.iter().enumerate() {
            new_index[old] = new;
        }
        Ok(Order {
            table: order.iter().map(|&i| shdrs[i].clone()).collect(),
            new_index,
        })
    }

    /// Placeholders in the slots of the sections that moved, their headers
    /// appended in offset order.
    fn appended(m: &Model, shdrs: &[Shdr], headers_end: u64) -> Option<Order> {
        let n = shdrs.len();
        let mut moved: Vec<usize> = (1..n)
            .filter(|&i| (shdrs[i].offset, shdrs[i].addr) != (m.shdrs[i].offset, m.shdrs[i].addr))
            .collect();
        let mut table = shdrs.to_vec();
        for &i in &moved {
            table[i] = placeholder(m, i, headers_end)?;
        }
        moved.sort_by_key(|&i| shdrs[i].offset);
        let mut new_index: Vec<usize> = (0..n).collect();
        for &i in &moved {
            new_index[i] = table.len();
            table.push(shdrs[i].clone());
        }
        Some(Order { table, new_index })
    }

    fn renumbers(&self) -> bool {
        self.new_index.iter().enumerate().any(|(i, &j)| i != j)
    }
}

/// Section 0 aside, offsets never decrease.
fn in_offset_order(shdrs: &[Shdr]) -> bool {
    shdrs
        .get(1..)
        .is_none_or(|r| r.is_sorted_by_key(|s| s.offset))
}

/// What stays in the slot of section `i` when it moves: an empty string
/// table at its old place (past the grown program header table), named as
/// it was without the leading dot (a suffix of its name, so `.shstrtab`
/// needs no new string). No link, no symbol points there. `None` where the
/// name is not a dotted one or the short name is taken (patchelf and
/// `objcopy` find sections by name).
///
/// Empty, so that the old bytes lie in their segment without a section, as
/// when the headers were renumbered, and a later patchelf moves nothing
/// for it: 0.14.3 rewrites a non-PIE executable by moving every section up
/// to the first PROGBITS to the front of the file, and the old `.dynstr` of
/// `node` would not fit below its first page. A string table, not PROGBITS:
/// patchelf 0.19 moves the program header table to its new segment when a
/// PROGBITS section (other than `.interp`) lies where the table would grow,
/// and `strip` then cannot lay the file out; a string table it moves out of
/// the way, as it moves notes.
fn placeholder(m: &Model, i: usize, headers_end: u64) -> Option<Shdr> {
    let s = &m.shdrs[i];
    let short = s.name.strip_prefix(b".").filter(|n| !n.is_empty())?;
    if s.sh_type == elf::SHT_NOBITS.0 || m.shdrs.iter().any(|o| o.name == short) {
        return None;
    }
    let end = s.offset.checked_add(s.size)?;
    let start = if s.offset < headers_end {
        headers_end.min(end)
    } else {
        s.offset
    };
    let addr = match s.addr {
        0 => 0,
        a => a.checked_add(start - s.offset)?,
    };
    Some(Shdr {
        name: short.to_vec(),
        sh_name: s.sh_name.checked_add(1)?,
        sh_type: elf::SHT_STRTAB.0,
        flags: s.flags & (elf::SHF_ALLOC.0 | elf::SHF_WRITE.0 | elf::SHF_EXECINSTR.0),
        addr,
        offset: start,
        size: 0,
        link: 0,
        info: 0,
        addralign: 1,
        entsize: 0,
    })
}

/// Write the section header table `order` where `place` says (`e_shoff`
/// pointed there when it moves), and what a new index touches: links,
/// `e_shnum`, `e_shstrndx`, symbols. `end` is where the contents end. A
/// table that moves leaves its old bytes (headers only) unreferenced.
// Long because the order, the indices it changes and the table's place (in
// place or moved) decide together which bytes are written.
#[allow(clippy::too_many_arguments)]
fn emit_table<'d, R: Source<'d>>(
    m: &Model,
    data: R,
    shdrs: &[Shdr],
    order: &Order,
    moved: &[Moved],
    end: u64,
    place: Place,
    w: &mut Writes,
) -> Result<u64, EditError> {
    let n = shdrs.len();
    let grows = order.table.len() != n;
    let new_shoff = match place {
        Place::End => Some(align_up(end, m.word_size()).unwrap_or(end)),
        Place::Room(r) if grows => Some(r.start),
        _ => None,
    };
    if u64::from(m.shentsize) != m.shdr_size() {
        return Err(EditError::Unsupported(format!(
            "unexpected section header entry size {}",
            m.shentsize
        )));
    }
    let renumbers = order.renumbers();
    let remap = |i: u32| -> u32 {
        let i = i as usize;
        if renumbers && i != 0 && i < n {
            order.new_index[i] as u32
        } else {
            i as u32
        }
    };
    let rewrite_whole = renumbers || new_shoff.is_some();
    let enc = Enc::of(m);
    let entsize = u64::from(m.shentsize);
    let mut table = Vec::with_capacity(order.table.len() * m.shdr_size() as usize);
    for (new, s) in order.table.iter().enumerate() {
        let mut s = s.clone();
        s.link = remap(s.link);
        let info_is_index = s.sh_type == elf::SHT_REL.0
            || s.sh_type == elf::SHT_RELA.0
            || s.flags & elf::SHF_INFO_LINK.0 != 0;
        if info_is_index {
            s.info = remap(s.info);
        }
        let bytes = enc.shdr(&s)?;
        if rewrite_whole {
            table.extend_from_slice(&bytes);
        } else if s != m.shdrs[new] {
            w.put(m.shoff + new as u64 * entsize, bytes);
        }
    }
    let table_end = new_shoff.unwrap_or(m.shoff) + table.len() as u64;
    let at_end = new_shoff.is_some_and(|at| at >= end);
    if let Some(at) = new_shoff {
        w.put(at, table);
        let field = if m.is64 {
            offset_of!(elf::FileHeader64<object::Endianness>, e_shoff)
        } else {
            offset_of!(elf::FileHeader32<object::Endianness>, e_shoff)
        };
        if at != m.shoff {
            w.put(field as u64, enc.word_bytes("section header offset", at)?);
        }
    } else if rewrite_whole {
        w.put(m.shoff, table);
    }
    if grows {
        write_shnum(m, order.table.len(), w)?;
    }
    if renumbers {
        write_shstrndx(m, remap(m.shstrndx), w)?;
    }
    let renumbered = renumbers.then_some(&order.new_index[..]);
    update_symbols(m, data, shdrs, moved, renumbered, w)?;
    Ok(if at_end { table_end } else { end })
}

/// `e_shnum` of a table that grew.
fn write_shnum(m: &Model, shnum: usize, w: &mut Writes) -> Result<(), EditError> {
    let at = if m.is64 {
        offset_of!(elf::FileHeader64<object::Endianness>, e_shnum)
    } else {
        offset_of!(elf::FileHeader32<object::Endianness>, e_shnum)
    };
    let v = u16::try_from(shnum)
        .ok()
        .filter(|&v| v < elf::SHN_LORESERVE)
        .ok_or_else(|| EditError::Unsupported("too many section headers for e_shnum".into()))?;
    let mut b = Vec::new();
    Enc::of(m).u16(&mut b, v);
    w.put(at as u64, b);
    Ok(())
}

/// `e_shstrndx` after a renumbering, when it changed.
fn write_shstrndx(m: &Model, shstrndx: u32, w: &mut Writes) -> Result<(), EditError> {
    if shstrndx == m.shstrndx {
        return Ok(());
    }
    let at = if m.is64 {
        offset_of!(elf::FileHeader64<object::Endianness>, e_shstrndx)
    } else {
        offset_of!(elf::FileHeader32<object::Endianness>, e_shstrndx)
    };
    let v = u16::try_from(shstrndx)
        .map_err(|_| EditError::Unsupported("section name table index needs SHN_XINDEX".into()))?;
    let mut b = Vec::new();
    Enc::of(m).u16(&mut b, v);
    w.put(at as u64, b);
    Ok(())
}

/// In an executable (ET_EXEC) whose last section in the file is loaded, the
/// index of the section name table to put after it, if it can move: a
/// non-loaded string table.
/// Also when the table lies where the grow writes (`clobber_from` on: an
/// earlier grow put it after the segment being extended).
fn marker_needed(m: &Model, shdrs: &[Shdr], clobber_from: u64) -> Option<usize> {
    let i = m.shstrndx as usize;
    let names = m.shdrs.get(i)?;
    let movable = i != 0
        && names.sh_type == elf::SHT_STRTAB.0
        && names.flags & elf::SHF_ALLOC.0 == 0
        && names.size > 0;
    if !movable {
        return None;
    }
    if names.offset >= clobber_from {
        return Some(i);
    }
    if m.e_type != elf::ET_EXEC.0 {
        return None;
    }
    let last = shdrs
        .iter()
        .enumerate()
        .filter(|(j, s)| {
            *j != i && s.sh_type != elf::SHT_NOBITS.0 && s.sh_type != elf::SHT_NULL.0 && s.size > 0
        })
        .max_by_key(|(_, s)| s.offset)?
        .1;
    (last.flags & elf::SHF_ALLOC.0 != 0 && last.offset >= shdrs[i].offset).then_some(i)
}

/// Renumbering is refused where an index hides somewhere we do not update:
/// extended section numbering (SHT_SYMTAB_SHNDX, e_shnum overflow) and
/// section groups (only in relocatable objects anyway).
fn check_renumberable(shdrs: &[Shdr]) -> Result<(), EditError> {
    if shdrs.len() >= usize::from(elf::SHN_LORESERVE)
        || shdrs
            .iter()
            .any(|s| s.sh_type == elf::SHT_SYMTAB_SHNDX.0 || s.sh_type == elf::SHT_GROUP.0)
    {
        return Err(EditError::Unsupported(
            "cannot keep the section headers in offset order: extended section numbering or \
             section groups"
                .into(),
        ));
    }
    Ok(())
}

/// Symbols defined relative to a moved section (its section symbol,
/// `_DYNAMIC`) move with it, and every `st_shndx` follows a renumbering
/// (`renumbered`: the new index of each old one), so `.symtab` and
/// `.dynsym` stay consistent for tools. A table is read at its old place
/// and written at its new one (`.dynsym` may have moved too).
fn update_symbols<'d, R: Source<'d>>(
    m: &Model,
    data: R,
    shdrs: &[Shdr],
    moved: &[Moved],
    renumbered: Option<&[usize]>,
    w: &mut Writes,
) -> Result<(), EditError> {
    let f = SymFields::of(m);
    let by_index = SymMap::new(shdrs.len(), moved, renumbered);
    for (j, s) in m.shdrs.iter().enumerate() {
        if s.sh_type != elf::SHT_SYMTAB.0 && s.sh_type != elf::SHT_DYNSYM.0 {
            continue;
        }
        let size = s.size - s.size % f.size as u64;
        let at = shdrs[j].offset;
        // Streamed window by window (a large plugin's `.symtab` is 17 MB,
        // and a grow that keeps the indices changes a symbol or two): each
        // changed entry is its own patch, or, from WHOLE_TABLE_FROM of them
        // in a window on (a renumbering), the window is written whole.
        let mut touched = false;
        let mut writes = false;
        data.windows(s.offset, size, f.size, &mut |pos, buf| {
            let mut changed: Vec<(usize, Vec<u8>)> = Vec::new();
            for (k, sym) in buf.chunks_exact(f.size).enumerate() {
                // Most symbols' sections neither move nor are renumbered.
                let Some((value, shndx, moves)) = f.change(m, sym, &by_index) else {
                    continue;
                };
                touched |= moves;
                if value.is_some() || shndx.is_some() {
                    let mut new = sym.to_vec();
                    f.write(m, &mut new, value, shndx)?;
                    changed.push((k * f.size, new));
                }
            }
            writes |= !changed.is_empty();
            if changed.len() >= WHOLE_TABLE_FROM {
                let mut window = buf.to_vec();
                for (o, b) in changed {
                    window[o..o + b.len()].copy_from_slice(&b);
                }
                w.put(at + pos, window);
            } else {
                for (o, b) in changed {
                    w.put(at + pos + o as u64, b);
                }
            }
            Ok(())
        })?;
        // A table that shares bytes with anything else (the dynamic array,
        // headers, another section) would corrupt it when written.
        if (touched || writes) && shares_bytes(m, j) {
            return Err(EditError::Layout(
                "a symbol table to update shares bytes with other contents".into(),
            ));
        }
    }
    Ok(())
}

/// What happens to the symbols of one section: its new index after a
/// renumbering, and its old and new address when it moved.
#[derive(Clone, Copy, Default)]
struct SymEntry {
    new_index: Option<u16>,
    moved: Option<(u64, u64)>,
}

/// [`SymEntry`] by old section index, so each symbol costs one lookup
/// (a large plugin has 730k of them).
struct SymMap(Vec<SymEntry>);

impl SymMap {
    fn new(n: usize, moved: &[Moved], renumbered: Option<&[usize]>) -> SymMap {
        let mut v = vec![SymEntry::default(); n];
        if let Some(new_index) = renumbered {
            // Index 0 and the reserved indices (SHN_ABS, SHN_COMMON, ...)
            // keep their meaning.
            for (i, e) in v.iter_mut().enumerate().skip(1) {
                e.new_index = (i < usize::from(elf::SHN_LORESERVE))
                    .then(|| new_index[i] as u16)
                    .filter(|&x| usize::from(x) != i);
            }
        }
        // The first entry for a section wins, as a search in `moved` would.
        for x in moved.iter().rev() {
            if let Some(e) = v.get_mut(x.index) {
                e.moved = Some((x.old_addr, x.new_addr));
            }
        }
        SymMap(v)
    }

    /// The entry of section `shndx`, when its symbols change.
    fn get(&self, shndx: u16) -> Option<&SymEntry> {
        self.0
            .get(usize::from(shndx))
            .filter(|e| e.new_index.is_some() || e.moved.is_some())
    }
}

/// Field positions inside Elf64_Sym / Elf32_Sym.
struct SymFields {
    size: usize,
    value_at: usize,
    shndx_at: usize,
}

impl SymFields {
    fn of(m: &Model) -> SymFields {
        if m.is64 {
            SymFields {
                size: size_of::<elf::Sym64<object::Endianness>>(),
                value_at: offset_of!(elf::Sym64<object::Endianness>, st_value),
                shndx_at: offset_of!(elf::Sym64<object::Endianness>, st_shndx),
            }
        } else {
            SymFields {
                size: size_of::<elf::Sym32<object::Endianness>>(),
                value_at: offset_of!(elf::Sym32<object::Endianness>, st_value),
                shndx_at: offset_of!(elf::Sym32<object::Endianness>, st_shndx),
            }
        }
    }

    /// The new value of symbol `sym` of a section that moved, when it
    /// changes.
    fn moved_value(&self, m: &Model, sym: &[u8], e: &SymEntry) -> Option<u64> {
        let (old_addr, new_addr) = e.moved?;
        let vb = &sym[self.value_at..self.value_at + m.word_size() as usize];
        let value = if m.is64 {
            m.endian.read_u64(vb.try_into().unwrap_or_default())
        } else {
            u64::from(m.endian.read_u32(vb.try_into().unwrap_or_default()))
        };
        value
            .checked_sub(old_addr)
            .and_then(|d| d.checked_add(new_addr))
            .filter(|&nv| nv != value)
    }

    /// What happens to symbol `sym`: its new value and section index (each
    /// when it changes), and whether its section moved; `None` when its
    /// section neither moves nor is renumbered.
    fn change(
        &self,
        m: &Model,
        sym: &[u8],
        by_index: &SymMap,
    ) -> Option<(Option<u64>, Option<u16>, bool)> {
        let shndx = m
            .endian
            .read_u16([sym[self.shndx_at], sym[self.shndx_at + 1]]);
        let e = by_index.get(shndx)?;
        Some((self.moved_value(m, sym, e), e.new_index, e.moved.is_some()))
    }

    /// Write a symbol's new value and section index into `sym`.
    fn write(
        &self,
        m: &Model,
        sym: &mut [u8],
        value: Option<u64>,
        shndx: Option<u16>,
    ) -> Result<(), EditError> {
        if let Some(nv) = value {
            let b = Enc::of(m).word_bytes("symbol value", nv)?;
            sym[self.value_at..self.value_at + b.len()].copy_from_slice(&b);
        }
        if let Some(v) = shndx {
            sym[self.shndx_at..self.shndx_at + 2].copy_from_slice(&m.endian.write_u16(v));
        }
        Ok(())
    }
}

fn shares_bytes(m: &Model, j: usize) -> bool {
    let s = &m.shdrs[j];
    let end = s.offset.saturating_add(s.size);
    let overlaps = |o: u64, n: u64| o < end && o.saturating_add(n) > s.offset;
    overlaps(
        0,
        m.phoff
            .saturating_add(m.phdrs.len() as u64 * u64::from(m.phentsize)),
    ) || m
        .dynamic
        .as_ref()
        .is_some_and(|d| overlaps(d.offset, d.slots * m.dyn_entsize()))
        || m.shdrs.iter().enumerate().any(|(i, o)| {
            i != j
                && o.sh_type != elf::SHT_NOBITS.0
                && o.sh_type != elf::SHT_NULL.0
                && overlaps(o.offset, o.size)
        })
}

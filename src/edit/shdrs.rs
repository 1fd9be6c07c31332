//! Section headers after a grow: moved sections get their new places, and
//! the table is put back in file-offset order, the order linkers write and
//! patchelf, `strip` and `objcopy` rely on (patchelf walks the headers by
//! index to find what lies after the program headers; with a moved `.interp`
//! first it overwrote `.gnu.hash` with program headers). Reordering renumbers
//! sections, so every reference to an index follows: `sh_link`, `sh_info`
//! of relocation sections, `e_shstrndx` and the `st_shndx` of symbols.

use std::mem::offset_of;

use object::{Endian, ReadRef, elf};

use super::EditError;
use super::parse::{Model, Shdr};
use super::write::{Enc, Writes, align_up};

/// A section that moved: its index and old and new address (symbols
/// defined relative to it move by the same distance).
pub(super) struct Moved {
    pub(crate) index: usize,
    pub(crate) old_addr: u64,
    pub(crate) new_addr: u64,
}

/// Above this many changed symbols a symbol table is written whole (one
/// patch) rather than entry by entry.
const WHOLE_TABLE_FROM: usize = 16;

/// Where a grow's contents end (see [`emit`]).
pub(super) struct Tail {
    pub(crate) content_end: u64,
    pub(crate) clobber_from: u64,
    pub(crate) move_table: bool,
}

/// Write the section headers `shdrs` (the input's, with moved sections
/// updated), sorted by file offset, and update what refers to them.
/// `content_end` is where the grown file's contents end, written from
/// `clobber_from` on (`u64::MAX`: nothing existing is overwritten); with `move_table`
/// the table is written after them and `e_shoff` points to it. Returns the
/// end of everything written.
pub(super) fn emit<'d, R: ReadRef<'d>>(
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
    emit_table(m, data, &shdrs, moved, end, move_table, w)
}

/// Write the section header table (in place, or at the end with `e_shoff`
/// pointed there), sorted by offset, and what a renumbering touches:
/// links, `e_shstrndx`, symbols. `end` is where the contents end.
// Long because the sort order, the renumbering it implies and the table's
// place (in place or moved) decide together which bytes are written.
fn emit_table<'d, R: ReadRef<'d>>(
    m: &Model,
    data: R,
    shdrs: &[Shdr],
    moved: &[Moved],
    end: u64,
    move_table: bool,
    w: &mut Writes,
) -> Result<u64, EditError> {
    let new_shoff = move_table.then(|| align_up(end, m.word_size()).unwrap_or(end));
    if u64::from(m.shentsize) != m.shdr_size() {
        return Err(EditError::Unsupported(format!(
            "unexpected section header entry size {}",
            m.shentsize
        )));
    }
    let n = shdrs.len();
    // Section 0 stays first; the rest are stably sorted by offset, as
    // patchelf sorts them.
    let mut order: Vec<usize> = (1..n).collect();
    order.sort_by_key(|&i| shdrs[i].offset);
    order.insert(0, 0);
    let mut new_index = vec![0usize; n];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }
    let reorders = order.iter().enumerate().any(|(a, &b)| a != b);
    if reorders {
        check_renumberable(shdrs)?;
    }
    let remap = |i: u32| -> u32 {
        let i = i as usize;
        if reorders && i != 0 && i < n {
            new_index[i] as u32
        } else {
            i as u32
        }
    };
    let enc = Enc::of(m);
    let entsize = u64::from(m.shentsize);
    let mut table = Vec::with_capacity(n * m.shdr_size() as usize);
    for (new, &old) in order.iter().enumerate() {
        let mut s = shdrs[old].clone();
        s.link = remap(s.link);
        let info_is_index = s.sh_type == elf::SHT_REL.0
            || s.sh_type == elf::SHT_RELA.0
            || s.flags & elf::SHF_INFO_LINK.0 != 0;
        if info_is_index {
            s.info = remap(s.info);
        }
        let bytes = enc.shdr(&s)?;
        if reorders || new_shoff.is_some() {
            table.extend_from_slice(&bytes);
        } else if s != m.shdrs[old] {
            w.put(m.shoff + new as u64 * entsize, bytes);
        }
    }
    let table_end = new_shoff.unwrap_or(m.shoff) + table.len() as u64;
    if let Some(at) = new_shoff {
        w.put(at, table);
        let field = if m.is64 {
            offset_of!(elf::FileHeader64<object::Endianness>, e_shoff)
        } else {
            offset_of!(elf::FileHeader32<object::Endianness>, e_shoff)
        };
        w.put(field as u64, enc.word_bytes("section header offset", at)?);
    } else if reorders {
        w.put(m.shoff, table);
    }
    if reorders {
        write_shstrndx(m, remap(m.shstrndx), w)?;
    }
    let renumbered = reorders.then_some(&new_index[..]);
    update_symbols(m, data, shdrs, moved, renumbered, w)?;
    Ok(if move_table { table_end } else { end })
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
fn update_symbols<'d, R: ReadRef<'d>>(
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
        let Ok(table) = data.read_bytes_at(s.offset, s.size - s.size % f.size as u64) else {
            return Err(EditError::Malformed(
                "symbol table lies outside the file".into(),
            ));
        };
        // Copied only once a symbol changes: the 730k-symbol `.symtab` of
        // a large plugin is 17 MB.
        let mut out: Option<Vec<u8>> = None;
        // The first few changed symbols (more are written as one table).
        let mut changed = Vec::new();
        let mut n_changed = 0usize;
        let mut touched = false;
        for (k, sym) in table.chunks_exact(f.size).enumerate() {
            let shndx = m.endian.read_u16([sym[f.shndx_at], sym[f.shndx_at + 1]]);
            let Some(e) = by_index.get(shndx) else {
                continue;
            };
            touched |= e.moved.is_some();
            let value = f.moved_value(m, sym, e);
            if value.is_none() && e.new_index.is_none() {
                continue;
            }
            let o = k * f.size;
            let new = &mut out.get_or_insert_with(|| table.to_vec())[o..o + f.size];
            f.write(m, new, value, e.new_index)?;
            if n_changed < WHOLE_TABLE_FROM {
                changed.push(k);
            }
            n_changed += 1;
        }
        // A table that shares bytes with anything else (the dynamic array,
        // headers, another section) would corrupt it when written.
        if (touched || n_changed > 0) && shares_bytes(m, j) {
            return Err(EditError::Layout(
                "a symbol table to update shares bytes with other contents".into(),
            ));
        }
        let Some(out) = out else {
            continue;
        };
        let at = shdrs[j].offset;
        if n_changed >= WHOLE_TABLE_FROM {
            w.put(at, out);
        } else {
            for k in changed {
                let o = k * f.size;
                w.put(at + o as u64, out[o..o + f.size].to_vec());
            }
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

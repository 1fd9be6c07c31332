//! Reading the parts of an ELF file that a search-path edit touches, into a
//! plain model (all values widened to `u64`) that the planner and the layout
//! checker share. Reading goes through `object` so that it works on a byte
//! slice as well as on `object::ReadCache<File>` without reading whole files.

use std::mem::{offset_of, size_of};

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader, Sym};
use object::{Endian, Endianness, ReadRef};

use super::EditError;

/// One program header, widened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Phdr {
    pub(crate) p_type: u32,
    pub(crate) flags: u32,
    pub(crate) offset: u64,
    pub(crate) vaddr: u64,
    pub(crate) paddr: u64,
    pub(crate) filesz: u64,
    pub(crate) memsz: u64,
    pub(crate) align: u64,
}

impl Phdr {
    pub(crate) fn file_end(&self) -> Option<u64> {
        self.offset.checked_add(self.filesz)
    }
    pub(crate) fn mem_end(&self) -> Option<u64> {
        self.vaddr.checked_add(self.memsz)
    }
}

/// One section header, widened, with its name resolved (empty if unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shdr {
    pub(crate) name: Vec<u8>,
    pub(crate) sh_name: u32,
    pub(crate) sh_type: u32,
    pub(crate) flags: u64,
    pub(crate) addr: u64,
    pub(crate) offset: u64,
    pub(crate) size: u64,
    pub(crate) link: u32,
    pub(crate) info: u32,
    pub(crate) addralign: u64,
    pub(crate) entsize: u64,
}

/// The dynamic array as found through PT_DYNAMIC.
#[derive(Debug, Clone)]
pub(crate) struct DynInfo {
    /// Index of the PT_DYNAMIC program header.
    pub(crate) phdr_index: usize,
    pub(crate) offset: u64,
    /// Number of entry slots PT_DYNAMIC provides (p_filesz / entry size).
    pub(crate) slots: u64,
    /// Entries before the first DT_NULL.
    pub(crate) entries: Vec<(i64, u64)>,
}

impl DynInfo {
    pub(crate) fn get(&self, tag: i64) -> Option<u64> {
        self.entries.iter().find(|e| e.0 == tag).map(|e| e.1)
    }
}

/// Everything the editor and checker need to know about a file.
#[derive(Debug, Clone)]
pub(crate) struct Model {
    pub(crate) is64: bool,
    pub(crate) endian: Endianness,
    pub(crate) e_machine: u16,
    pub(crate) phoff: u64,
    pub(crate) phentsize: u16,
    pub(crate) shoff: u64,
    pub(crate) shentsize: u16,
    /// Index of the section-name string table (`e_shstrndx`, resolved).
    pub(crate) shstrndx: u32,
    pub(crate) e_type: u16,
    pub(crate) phdrs: Vec<Phdr>,
    pub(crate) shdrs: Vec<Shdr>,
    /// Index of the one `.dynamic` section header (SHT_DYNAMIC), if any.
    pub(crate) dynamic_shdr: Option<usize>,
    pub(crate) dynamic: Option<DynInfo>,
    pub(crate) file_len: u64,
}

pub(crate) fn obj_err(what: &str, e: object::read::Error) -> EditError {
    EditError::Malformed(format!("{what}: {e}"))
}

impl Model {
    pub(crate) fn word_size(&self) -> u64 {
        if self.is64 { 8 } else { 4 }
    }
    pub(crate) fn dyn_entsize(&self) -> u64 {
        2 * self.word_size()
    }
    pub(crate) fn ph_entsize_expected(&self) -> u16 {
        let n = if self.is64 {
            size_of::<elf::ProgramHeader64<Endianness>>()
        } else {
            size_of::<elf::ProgramHeader32<Endianness>>()
        };
        n as u16
    }
    /// Size of the ELF file header (the bytes before anything else).
    pub(crate) fn ehdr_size(&self) -> u64 {
        let n = if self.is64 {
            size_of::<elf::FileHeader64<Endianness>>()
        } else {
            size_of::<elf::FileHeader32<Endianness>>()
        };
        n as u64
    }
    /// Where the ELF header and the program header table end (the table
    /// right after the header, as linkers put it; else the header's end).
    pub(crate) fn headers_end(&self) -> u64 {
        let ph_end = u64::from(self.phentsize)
            .saturating_mul(self.phdrs.len() as u64)
            .saturating_add(self.phoff);
        self.ehdr_size().max(ph_end)
    }
    /// Size of one section header.
    pub(crate) fn shdr_size(&self) -> u64 {
        let n = if self.is64 {
            size_of::<elf::SectionHeader64<Endianness>>()
        } else {
            size_of::<elf::SectionHeader32<Endianness>>()
        };
        n as u64
    }
    /// File offsets of `e_phoff` and `e_phnum` in the file header.
    pub(crate) fn phoff_phnum_at(&self) -> (u64, u64) {
        let (phoff, phnum) = if self.is64 {
            type H = elf::FileHeader64<Endianness>;
            (offset_of!(H, e_phoff), offset_of!(H, e_phnum))
        } else {
            type H = elf::FileHeader32<Endianness>;
            (offset_of!(H, e_phoff), offset_of!(H, e_phnum))
        };
        (phoff as u64, phnum as u64)
    }

    /// File offset of virtual address `addr`, if some PT_LOAD maps it from the
    /// file (and `len` bytes from there stay inside that segment's file part).
    ///
    /// The range may run on into PT_LOADs that continue the segment in both
    /// memory and file (patchelf 0.14 gives a non-PIE a first PT_LOAD whose
    /// `.dynsym` ends in the next one).
    pub(crate) fn vaddr_to_offset(&self, addr: u64, len: u64) -> Option<u64> {
        let loads = self.loads().map(|p| (p.vaddr, p.offset, p.filesz));
        crate::elf::vaddr_to_offset(loads, addr, len)
    }

    pub(crate) fn loads(&self) -> impl Iterator<Item = &Phdr> + Clone {
        self.phdrs.iter().filter(|p| p.p_type == elf::PT_LOAD.0)
    }

    /// Index of the section header of type `sh_type` at address `addr`.
    pub(crate) fn section_at(&self, sh_type: u32, addr: u64) -> Option<usize> {
        self.shdrs
            .iter()
            .position(|s| s.sh_type == sh_type && s.addr == addr && addr != 0)
    }

    pub(crate) fn has_interp(&self) -> bool {
        self.phdrs.iter().any(|p| p.p_type == elf::PT_INTERP.0)
    }
}

/// Parse the headers and the dynamic array.
pub(crate) fn parse<'d, R: ReadRef<'d>>(data: R, file_len: u64) -> Result<Model, EditError> {
    let ident = data
        .read_bytes_at(0, size_of::<elf::Ident>() as u64)
        .map_err(|_| EditError::Malformed("file is shorter than an ELF identification".into()))?;
    if ident.get(..elf::ELFMAG.len()) != Some(&elf::ELFMAG[..]) {
        return Err(EditError::Malformed("not an ELF file (bad magic)".into()));
    }
    match ident.get(offset_of!(elf::Ident, class)).copied() {
        Some(c) if c == elf::ELFCLASS32.0 => {
            parse_as::<elf::FileHeader32<Endianness>, R>(data, file_len)
        }
        Some(c) if c == elf::ELFCLASS64.0 => {
            parse_as::<elf::FileHeader64<Endianness>, R>(data, file_len)
        }
        _ => Err(EditError::Malformed("unknown ELF class".into())),
    }
}

fn parse_as<'d, Elf: FileHeader<Endian = Endianness>, R: ReadRef<'d>>(
    data: R,
    file_len: u64,
) -> Result<Model, EditError> {
    let hdr = Elf::parse(data).map_err(|e| obj_err("ELF header", e))?;
    let endian = hdr.endian().map_err(|e| obj_err("ELF header", e))?;
    let phdrs_raw = hdr
        .program_headers(endian, data)
        .map_err(|e| obj_err("program headers", e))?;
    let phdrs: Vec<Phdr> = phdrs_raw
        .iter()
        .map(|p| Phdr {
            p_type: p.p_type(endian).0,
            flags: p.p_flags(endian).0,
            offset: p.p_offset(endian).into(),
            vaddr: p.p_vaddr(endian).into(),
            paddr: p.p_paddr(endian).into(),
            filesz: p.p_filesz(endian).into(),
            memsz: p.p_memsz(endian).into(),
            align: p.p_align(endian).into(),
        })
        .collect();

    let shoff: u64 = hdr.e_shoff(endian).into();
    let shdrs = if shoff == 0 {
        Vec::new()
    } else {
        section_headers(hdr, endian, data)?
    };
    // One rule, as for PT_DYNAMIC: a second `.dynamic` header is refused.
    // Taking the first would make the answer depend on the headers' order,
    // which an edit changes (it keeps them in offset order).
    let mut dynamic_shdrs = shdrs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.sh_type == elf::SHT_DYNAMIC.0)
        .map(|(i, _)| i);
    let dynamic_shdr = dynamic_shdrs.next();
    if dynamic_shdrs.next().is_some() {
        return Err(EditError::Malformed(
            "more than one .dynamic section header".into(),
        ));
    }
    Ok(Model {
        is64: hdr.is_type_64(),
        endian,
        e_machine: hdr.e_machine(endian).0,
        phoff: hdr.e_phoff(endian).into(),
        phentsize: hdr.e_phentsize(endian),
        shoff,
        shentsize: hdr.e_shentsize(endian),
        shstrndx: if shoff == 0 {
            0
        } else {
            hdr.shstrndx(endian, data)
                .map_err(|e| obj_err("section headers", e))?
        },
        e_type: hdr.e_type(endian).0,
        phdrs,
        shdrs,
        dynamic_shdr,
        dynamic: dynamic_info::<Elf, R>(phdrs_raw, endian, data)?,
        file_len,
    })
}

/// The section headers, each with its name.
fn section_headers<'d, Elf: FileHeader<Endian = Endianness>, R: ReadRef<'d>>(
    hdr: &Elf,
    endian: Endianness,
    data: R,
) -> Result<Vec<Shdr>, EditError> {
    let table = hdr
        .sections(endian, data)
        .map_err(|e| obj_err("section headers", e))?;
    let shdr = |s: &Elf::SectionHeader| Shdr {
        // A section name we cannot read is not fatal: names are only used
        // to find `.note.nixos.ldcache`.
        name: table
            .section_name(endian, s)
            .map(|n| n.to_vec())
            .unwrap_or_default(),
        sh_name: s.sh_name(endian),
        sh_type: s.sh_type(endian).0,
        flags: s.sh_flags(endian).0,
        addr: s.sh_addr(endian).into(),
        offset: s.sh_offset(endian).into(),
        size: s.sh_size(endian).into(),
        link: s.sh_link(endian),
        info: s.sh_info(endian),
        addralign: s.sh_addralign(endian).into(),
        entsize: s.sh_entsize(endian).into(),
    };
    Ok(table.iter().map(shdr).collect())
}

/// The one PT_DYNAMIC, by the rule every reader shares
/// ([`crate::elf::dynamic_segment`]).
fn dynamic_info<'d, Elf: FileHeader<Endian = Endianness>, R: ReadRef<'d>>(
    phdrs_raw: &'d [Elf::ProgramHeader],
    endian: Endianness,
    data: R,
) -> Result<Option<DynInfo>, EditError> {
    let d = crate::elf::dynamic_segment::<Elf, R>(endian, phdrs_raw, data)?;
    Ok(d.map(|d| DynInfo {
        phdr_index: d.index,
        offset: d.offset,
        slots: d.slots,
        entries: d.entries,
    }))
}

/// Every offset into the dynamic string table that the symbol table and the
/// version definitions / requirements refer to. The planner must keep the bytes from
/// each of these offsets to the next NUL intact (linkers tail-merge strings).
pub(crate) fn dynstr_refs<'d, R: ReadRef<'d>>(m: &Model, data: R) -> Result<Vec<u64>, EditError> {
    if m.is64 {
        refs_as::<elf::FileHeader64<Endianness>, R>(m, data)
    } else {
        refs_as::<elf::FileHeader32<Endianness>, R>(m, data)
    }
}

pub(crate) const STRING_TAGS: [i64; 9] = [
    elf::DT_NEEDED.0,
    elf::DT_SONAME.0,
    elf::DT_RPATH.0,
    elf::DT_RUNPATH.0,
    elf::DT_AUXILIARY.0,
    elf::DT_FILTER.0,
    elf::DT_CONFIG.0,
    elf::DT_DEPAUDIT.0,
    elf::DT_AUDIT.0,
];

// Bounds loops over file-provided chains so hostile input cannot spin forever.
const MAX_CHAIN: usize = 1 << 20;

fn refs_as<'d, Elf: FileHeader<Endian = Endianness>, R: ReadRef<'d>>(
    m: &Model,
    data: R,
) -> Result<Vec<u64>, EditError> {
    let dynamic = m.dynamic.as_ref().ok_or(EditError::NoDynamic)?;
    // String-valued dynamic entries are left to the caller, which knows
    // which one of them it is about to rewrite.
    let mut refs: Vec<u64> = Vec::new();
    if let Some(symtab) = dynamic.get(elf::DT_SYMTAB.0) {
        dynsym_names::<Elf, R>(m, data, symtab, &mut refs)?;
    }
    if let (Some(addr), Some(num)) = (
        dynamic.get(elf::DT_VERDEF.0),
        dynamic.get(elf::DT_VERDEFNUM.0),
    ) {
        version_names(m, data, Versions::Definitions, (addr, num), &mut refs)?;
    }
    if let (Some(addr), Some(num)) = (
        dynamic.get(elf::DT_VERNEED.0),
        dynamic.get(elf::DT_VERNEEDNUM.0),
    ) {
        version_names(m, data, Versions::Requirements, (addr, num), &mut refs)?;
    }
    refs.sort_unstable();
    refs.dedup();
    Ok(refs)
}

fn outside(what: &str) -> EditError {
    EditError::Malformed(format!("{what} lies outside the file"))
}

/// The names of the dynamic symbols at `symtab`.
fn dynsym_names<'d, Elf: FileHeader<Endian = Endianness>, R: ReadRef<'d>>(
    m: &Model,
    data: R,
    symtab: u64,
    refs: &mut Vec<u64>,
) -> Result<(), EditError> {
    let count = dynsym_count(m, data, symtab)?;
    if count == 0 {
        return Ok(());
    }
    let symsz = std::mem::size_of::<Elf::Sym>() as u64;
    let bytes = count
        .checked_mul(symsz)
        .ok_or_else(|| outside("dynamic symbol table"))?;
    let off = m
        .vaddr_to_offset(symtab, bytes)
        .ok_or_else(|| outside("dynamic symbol table"))?;
    let syms = data
        .read_slice_at::<Elf::Sym>(off, count as usize)
        .map_err(|_| outside("dynamic symbol table"))?;
    refs.extend(syms.iter().map(|s| u64::from(s.st_name(m.endian))));
    Ok(())
}

/// One entry of a version chain (Verdef or Verneed), as the walk needs it:
/// a name of its own (Verneed's file), its count of aux entries, and the
/// offsets to its first aux entry and to the next entry.
struct VersionEntry {
    own_name: Option<u32>,
    count: u16,
    aux: u32,
    next: u32,
}

/// Which version chain: definitions (each with Verdaux names) or
/// requirements (a file name plus Vernaux names).
#[derive(Clone, Copy)]
enum Versions {
    Definitions,
    Requirements,
}

impl Versions {
    fn what(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Versions::Definitions => (
                "version definitions",
                "version definition",
                "version definition name",
            ),
            Versions::Requirements => (
                "version requirements",
                "version requirement",
                "version requirement name",
            ),
        }
    }

    fn entry<'d, R: ReadRef<'d>>(self, data: R, e: Endianness, off: u64) -> Option<VersionEntry> {
        Some(match self {
            Versions::Definitions => {
                let vd = data.read_at::<elf::Verdef<Endianness>>(off).ok()?;
                VersionEntry {
                    own_name: None,
                    count: vd.vd_cnt.get(e),
                    aux: vd.vd_aux.get(e),
                    next: vd.vd_next.get(e),
                }
            }
            Versions::Requirements => {
                let vn = data.read_at::<elf::Verneed<Endianness>>(off).ok()?;
                VersionEntry {
                    own_name: Some(vn.vn_file.get(e)),
                    count: vn.vn_cnt.get(e),
                    aux: vn.vn_aux.get(e),
                    next: vn.vn_next.get(e),
                }
            }
        })
    }

    /// An aux entry's (name, offset to the next).
    fn aux<'d, R: ReadRef<'d>>(self, data: R, e: Endianness, off: u64) -> Option<(u32, u32)> {
        Some(match self {
            Versions::Definitions => {
                let va = data.read_at::<elf::Verdaux<Endianness>>(off).ok()?;
                (va.vda_name.get(e), va.vda_next.get(e))
            }
            Versions::Requirements => {
                let va = data.read_at::<elf::Vernaux<Endianness>>(off).ok()?;
                (va.vna_name.get(e), va.vna_next.get(e))
            }
        })
    }

    /// The size of the first entry, which must lie in a loaded segment.
    fn entry_size(self) -> u64 {
        match self {
            Versions::Definitions => size_of::<elf::Verdef<Endianness>>() as u64,
            Versions::Requirements => size_of::<elf::Verneed<Endianness>>() as u64,
        }
    }
}

/// The names of the `num` entries of a version chain at `addr` and of
/// their aux entries (each chain bounded by [`MAX_CHAIN`]).
fn version_names<'d, R: ReadRef<'d>>(
    m: &Model,
    data: R,
    which: Versions,
    (addr, num): (u64, u64),
    refs: &mut Vec<u64>,
) -> Result<(), EditError> {
    let e = m.endian;
    let (table, entry, name) = which.what();
    let mut off = m
        .vaddr_to_offset(addr, which.entry_size())
        .ok_or_else(|| outside(table))?;
    for _ in 0..num.min(MAX_CHAIN as u64) {
        let v = which.entry(data, e, off).ok_or_else(|| outside(entry))?;
        refs.extend(v.own_name.map(u64::from));
        let mut aux = off
            .checked_add(v.aux.into())
            .ok_or_else(|| outside(entry))?;
        for _ in 0..v.count {
            let (n, next) = which.aux(data, e, aux).ok_or_else(|| outside(name))?;
            refs.push(n.into());
            if next == 0 {
                break;
            }
            aux = aux
                .checked_add(next.into())
                .ok_or_else(|| outside("version name"))?;
        }
        if v.next == 0 {
            break;
        }
        off = off
            .checked_add(v.next.into())
            .ok_or_else(|| outside(entry))?;
    }
    Ok(())
}

fn read_u32<'d, R: ReadRef<'d>>(data: R, e: Endianness, off: u64) -> Option<u32> {
    let b = data.read_bytes_at(off, 4).ok()?;
    Some(e.read_u32(b.try_into().ok()?))
}

/// DT_HASH's header: `nbucket`, `nchain` (32-bit words).
const HASH_HEADER: u64 = 2 * 4;
/// DT_GNU_HASH's header: `nbuckets`, `symoffset`, `bloom_size`,
/// `bloom_shift` (32-bit words); the bloom filter follows.
const GNU_HASH_HEADER: u64 = 4 * 4;

/// Number of dynamic symbols: the largest of what DT_HASH, DT_GNU_HASH and
/// the `.dynsym` section header say. With none of them we cannot know which
/// strings are in use, so that is an error.
fn dynsym_count<'d, R: ReadRef<'d>>(m: &Model, data: R, symtab: u64) -> Result<u64, EditError> {
    let e = m.endian;
    let dynamic = m.dynamic.as_ref().ok_or(EditError::NoDynamic)?;
    let mut best: Option<u64> = None;
    let bad = |what: &str| EditError::Malformed(format!("{what} is truncated or misplaced"));
    if let Some(addr) = dynamic.get(elf::DT_HASH.0) {
        let off = m
            .vaddr_to_offset(addr, HASH_HEADER)
            .ok_or_else(|| bad("DT_HASH table"))?;
        let nchain =
            read_u32(data, e, off.saturating_add(4)).ok_or_else(|| bad("DT_HASH table"))?;
        best = Some(u64::from(nchain));
    }
    if let Some(addr) = dynamic.get(elf::DT_GNU_HASH.0) {
        let off = m
            .vaddr_to_offset(addr, GNU_HASH_HEADER)
            .ok_or_else(|| bad("DT_GNU_HASH table"))?;
        let h = |i: u64| {
            read_u32(data, e, off.saturating_add(i * 4)).ok_or_else(|| bad("DT_GNU_HASH table"))
        };
        let nbuckets = u64::from(h(0)?);
        let symbase = u64::from(h(1)?);
        let bloom = u64::from(h(2)?);
        let buckets_off = bloom
            .checked_mul(m.word_size())
            .and_then(|b| b.checked_add(GNU_HASH_HEADER))
            .and_then(|b| off.checked_add(b))
            .ok_or_else(|| bad("DT_GNU_HASH table"))?;
        let mut max_idx = 0u64;
        for i in 0..nbuckets.min(MAX_CHAIN as u64) {
            let b = read_u32(data, e, buckets_off.saturating_add(i * 4))
                .ok_or_else(|| bad("DT_GNU_HASH buckets"))?;
            max_idx = max_idx.max(u64::from(b));
        }
        let mut count = symbase;
        if max_idx >= symbase {
            let chains_off = buckets_off
                .checked_add(nbuckets * 4)
                .ok_or_else(|| bad("DT_GNU_HASH table"))?;
            let mut idx = max_idx;
            let mut steps = 0usize;
            loop {
                let c = read_u32(data, e, chains_off.saturating_add((idx - symbase) * 4))
                    .ok_or_else(|| bad("DT_GNU_HASH chains"))?;
                if c & 1 == 1 {
                    break;
                }
                idx += 1;
                steps += 1;
                if steps > MAX_CHAIN {
                    return Err(bad("DT_GNU_HASH chain"));
                }
            }
            count = idx + 1;
        }
        best = Some(best.map_or(count, |b| b.max(count)));
    }
    if let Some(i) = m.section_at(elf::SHT_DYNSYM.0, symtab) {
        let s = &m.shdrs[i];
        if let Some(n) = s.size.checked_div(s.entsize) {
            best = Some(best.map_or(n, |b| b.max(n)));
        }
    }
    let n = best.ok_or_else(|| {
        EditError::Unsupported(
            "cannot count dynamic symbols (no DT_HASH, DT_GNU_HASH or .dynsym header)".into(),
        )
    })?;
    // A count larger than the file could hold is hostile or corrupt.
    if n > m.file_len / size_of::<elf::Sym32<Endianness>>() as u64 + 1 {
        return Err(bad("dynamic symbol count"));
    }
    Ok(n)
}

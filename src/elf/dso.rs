//! Evidence for the computed-name recognisers (`loader::computed`): the
//! `tsl::internal::DsoLoader::Get<X>DsoHandle` functions an object defines
//! and the version each of their calls passes. Bounded like every read
//! here: symbol and string tables are streamed in chunks, a function's
//! code and a version string are read by range.

use std::borrow::Cow;

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};
use object::{Endianness, ReadCache, ReadRef};

use super::buffers::{Lease, READ_POOL};
use super::{ByteOrder, Class, Contents, FileBytes, read_ident};

/// One `tsl::internal::DsoLoader::Get<X>DsoHandle` function defined in the
/// object (`.symtab` or `.dynsym`), with the version strings its calls pass
/// to the name builder, in call order (`None`: the machine code was not
/// decoded, so the version is unknown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DsoLoaderFn {
    /// `X` of `Get<X>DsoHandle` (`Cublas`, `CudaRuntime`, ...).
    pub what: String,
    /// The version argument of each call, in order (`""`: unversioned).
    pub versions: Option<Vec<String>>,
}

/// The mangled prefix of every `tsl::internal::DsoLoader` function.
const TSL_PREFIX: &[u8] = b"_ZN3tsl8internal9DsoLoader";
/// Chunk of a symbol or string table read at once: one of the shared read
/// buffers ([`super::buffers::READ_POOL`]) holds it with the names' overlap.
const CHUNK: usize = 1 << 20;
/// How far a name may run past its chunk (the longest name we accept).
const CHUNK_OVERLAP: usize = 256;
/// The longest function body decoded (they are ~130-230 bytes).
const MAX_FN: u64 = 4096;

/// Bytes by range, whole file or not.
trait Ranges: Sync {
    fn range(&self, off: u64, len: usize) -> Option<Cow<'_, [u8]>>;

    /// `len` bytes at `off` for a scan of a table chunk by chunk: borrowed
    /// where the file is held whole, else read into `buf`, a shared read
    /// buffer taken on the first call and kept for the next chunks (a
    /// fresh one each time is memory the kernel clears and faults in
    /// again: a large plugin's `.strtab` is 91 MB).
    fn chunk<'a>(
        &'a self,
        off: u64,
        len: usize,
        buf: &'a mut Option<Lease<'static>>,
    ) -> Option<&'a [u8]>;
}

impl Ranges for Vec<u8> {
    fn range(&self, off: u64, len: usize) -> Option<Cow<'_, [u8]>> {
        let off = usize::try_from(off).ok()?;
        self.get(off..off.checked_add(len)?).map(Cow::Borrowed)
    }

    fn chunk<'a>(
        &'a self,
        off: u64,
        len: usize,
        _: &'a mut Option<Lease<'static>>,
    ) -> Option<&'a [u8]> {
        let off = usize::try_from(off).ok()?;
        self.get(off..off.checked_add(len)?)
    }
}

impl Ranges for std::fs::File {
    fn range(&self, off: u64, len: usize) -> Option<Cow<'_, [u8]>> {
        let mut buf = vec![0; len];
        std::os::unix::fs::FileExt::read_exact_at(self, &mut buf, off).ok()?;
        Some(Cow::Owned(buf))
    }

    fn chunk<'a>(
        &'a self,
        off: u64,
        len: usize,
        buf: &'a mut Option<Lease<'static>>,
    ) -> Option<&'a [u8]> {
        let lease = buf.get_or_insert_with(|| READ_POOL.take(CHUNK + CHUNK_OVERLAP));
        let buf = lease.get_mut(..len)?;
        std::os::unix::fs::FileExt::read_exact_at(self, buf, off).ok()?;
        Some(buf)
    }
}

impl FileBytes {
    /// The TSL `DsoLoader::Get<X>DsoHandle` functions this object defines,
    /// with the versions their calls pass (decoded on x86-64 and AArch64). Empty
    /// for any file that does not parse.
    pub fn dso_loader_fns(&self) -> Vec<DsoLoaderFn> {
        match &self.data {
            Contents::Whole(v) => dso_loader_fns(&v[..], v),
            Contents::Large(f) => dso_loader_fns(&ReadCache::new(f), f),
        }
    }
}

fn dso_loader_fns<'d, R: ReadRef<'d>>(data: R, bytes: &impl Ranges) -> Vec<DsoLoaderFn> {
    let Some((ident, _)) = data.read_bytes_at(0, 20).ok().and_then(read_ident) else {
        return Vec::new();
    };
    match ident.class {
        Class::Elf32 => scan::<elf::FileHeader32<Endianness>, R>(data, bytes, false, None),
        Class::Elf64 => {
            let machine = match (ident.machine, ident.data) {
                (62, ByteOrder::Little) => Some(Machine::X86_64),
                (183, ByteOrder::Little) => Some(Machine::Aarch64),
                _ => None,
            };
            scan::<elf::FileHeader64<Endianness>, R>(data, bytes, true, machine)
        }
    }
}

/// A defined function symbol: (mangled name, address, size).
type FnSym = (String, u64, u64);

/// The machines whose calls are decoded (little-endian, 64-bit).
#[derive(Clone, Copy)]
enum Machine {
    X86_64,
    Aarch64,
}

fn scan<'d, Elf, R>(
    data: R,
    bytes: &impl Ranges,
    is64: bool,
    machine: Option<Machine>,
) -> Vec<DsoLoaderFn>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'d>,
{
    let Ok(header) = Elf::parse(data) else {
        return Vec::new();
    };
    let Ok(endian) = header.endian() else {
        return Vec::new();
    };
    let sections = header.section_headers(endian, data).unwrap_or(&[]);
    let segments = header.program_headers(endian, data).unwrap_or(&[]);
    let mut syms: Vec<FnSym> = Vec::new();
    for s in sections {
        let kind = s.sh_type(endian);
        if kind != elf::SHT_SYMTAB && kind != elf::SHT_DYNSYM {
            continue;
        }
        let Some(strtab) = sections.get(s.sh_link(endian) as usize) else {
            continue;
        };
        let names = tsl_names(
            bytes,
            strtab.sh_offset(endian).into(),
            strtab.sh_size(endian).into(),
        );
        if !names.is_empty() {
            defined_functions::<Elf>(endian, bytes, s, is64, &names, &mut syms);
        }
    }
    syms.sort();
    syms.dedup_by(|a, b| a.0 == b.0);
    syms.into_iter()
        .filter_map(|(name, addr, size)| {
            let what = what_of(name.as_bytes())?.to_owned();
            let versions = machine
                .and_then(|m| decode_versions::<Elf>(m, endian, segments, bytes, addr, size));
            Some(DsoLoaderFn { what, versions })
        })
        .collect()
}

/// `X` of `_ZN3tsl8internal9DsoLoader<n>Get<X>DsoHandleEv`, if the name is
/// one (the length prefix checked).
fn what_of(name: &[u8]) -> Option<&str> {
    let rest = name.strip_prefix(TSL_PREFIX)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let len: usize = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let end = digits.checked_add(len)?;
    let ident = rest.get(digits..end)?;
    if rest.get(end..)? != b"Ev" {
        return None;
    }
    let what = ident.strip_prefix(b"Get")?.strip_suffix(b"DsoHandle")?;
    (!what.is_empty() && what.iter().all(u8::is_ascii_alphanumeric))
        .then(|| std::str::from_utf8(what).ok())
        .flatten()
}

/// Offsets (in the string table) and names of the DsoLoader functions,
/// streamed in chunks that overlap by the longest name we accept.
fn tsl_names(bytes: &impl Ranges, off: u64, size: u64) -> Vec<(u64, String)> {
    let finder = memchr::memmem::Finder::new(TSL_PREFIX);
    windows(bytes, off, size, 0, CHUNK_OVERLAP, |base, buf, own| {
        let mut out = Vec::new();
        for start in finder.find_iter(buf) {
            if !own.contains(&start) {
                continue;
            }
            let Some(end) = memchr::memchr(0, &buf[start..]) else {
                continue;
            };
            let name = &buf[start..start + end];
            if what_of(name).is_some() {
                out.push((
                    base + start as u64,
                    String::from_utf8_lossy(name).into_owned(),
                ));
            }
        }
        out
    })
}

/// Stream the `size` bytes at `off` window by window, the windows in
/// parallel: each owns `CHUNK` bytes and also holds up to `lead` bytes
/// before them and `overlap` after (both at most [`CHUNK_OVERLAP`] in all),
/// read into a shared read buffer (borrowed where the file is held whole).
/// `f(base, window, own)`: the window's offset from `off`, its bytes, and
/// the range of them it owns (a match starting there is counted by this
/// window only); what it returns, in window order. Stops at a read that
/// fails (the windows after it count for nothing). In parallel because
/// one `.strtab` is 91 MB: a large plugin's scan would otherwise end a
/// survey alone on one core.
fn windows<T: Send>(
    bytes: &impl Ranges,
    off: u64,
    size: u64,
    lead: usize,
    overlap: usize,
    f: impl Fn(u64, &[u8], std::ops::Range<usize>) -> Vec<T> + Sync,
) -> Vec<T> {
    use rayon::prelude::*;
    debug_assert!(lead + overlap <= CHUNK_OVERLAP);
    let parts: Vec<Option<Vec<T>>> = (0..size.div_ceil(CHUNK as u64))
        .into_par_iter()
        .map(|k| {
            let pos = k * CHUNK as u64;
            let start = pos.saturating_sub(lead as u64);
            let end = size.min(pos + (CHUNK + overlap) as u64);
            let mut lease = None;
            let buf = bytes.chunk(off.checked_add(start)?, (end - start) as usize, &mut lease)?;
            let own_end = size.min(pos + CHUNK as u64);
            Some(f(
                start,
                buf,
                (pos - start) as usize..(own_end - start) as usize,
            ))
        })
        .collect();
    parts.into_iter().map_while(|p| p).flatten().collect()
}

/// Defined function symbols of table `s` whose name is one of `names`,
/// entries streamed in chunks.
fn defined_functions<Elf: FileHeader<Endian = Endianness>>(
    endian: Endianness,
    bytes: &impl Ranges,
    s: &Elf::SectionHeader,
    is64: bool,
    names: &[(u64, String)],
    out: &mut Vec<FnSym>,
) {
    use object::Endian as _;
    let (Some(&(lo, _)), Some(&(hi, _))) = (names.first(), names.last()) else {
        return;
    };
    let entsize: usize = if is64 { 24 } else { 16 };
    let off: u64 = s.sh_offset(endian).into();
    let size: u64 = s.sh_size(endian).into();
    let per_chunk = (CHUNK / entsize) as u64 * entsize as u64;
    let mut lease = None;
    let mut pos = 0u64;
    while pos < size {
        let len = (size - pos).min(per_chunk) as usize;
        let Some(buf) = off
            .checked_add(pos)
            .and_then(|at| bytes.chunk(at, len, &mut lease))
        else {
            return;
        };
        // 730k entries in a large plugin: the type byte first, the rest
        // only for the few functions whose name offset can be one found.
        let info_at = if is64 { 4 } else { 12 };
        for e in buf.chunks_exact(entsize) {
            if e[info_at] & 0xf != elf::STT_FUNC.0 {
                continue;
            }
            let name = u64::from(endian.read_u32(field(e, 0)));
            if name < lo || name > hi {
                continue;
            }
            // Elf64_Sym: name, info, other, shndx, value, size;
            // Elf32_Sym: name, value, size, info, other, shndx.
            let (shndx, value, sz) = if is64 {
                (
                    endian.read_u16(field(e, 6)),
                    endian.read_u64(field(e, 8)),
                    endian.read_u64(field(e, 16)),
                )
            } else {
                (
                    endian.read_u16(field(e, 14)),
                    u64::from(endian.read_u32(field(e, 4))),
                    u64::from(endian.read_u32(field(e, 8))),
                )
            };
            if shndx == elf::SHN_UNDEF.0 || sz == 0 {
                continue;
            }
            // `names` is in string table order, as `tsl_names` finds them.
            if let Ok(i) = names.binary_search_by_key(&name, |(o, _)| *o) {
                out.push((names[i].1.clone(), value, sz));
            }
        }
        pos += len as u64;
    }
}

/// The `N` bytes at `i` of a symbol entry (inside it: the offsets are the
/// entry's own fields).
fn field<const N: usize>(e: &[u8], i: usize) -> [u8; N] {
    std::array::from_fn(|k| e[i + k])
}

/// The version arguments of the calls in one `Get<X>DsoHandle` at `addr`
/// (`size` bytes of code): each call's `string_view` found by the
/// machine's decoder ([`calls_x86_64`], [`calls_aarch64`]), read at the
/// address it points to; at most 16 bytes, digits and dots. `None` when no
/// call decodes.
fn decode_versions<Elf: FileHeader<Endian = Endianness>>(
    machine: Machine,
    endian: Endianness,
    segments: &[Elf::ProgramHeader],
    bytes: &impl Ranges,
    addr: u64,
    size: u64,
) -> Option<Vec<String>> {
    let loads = super::loads_of::<Elf>(endian, segments);
    let off = super::vaddr_to_offset(loads.clone(), addr, 1)?;
    let code = bytes.range(off, size.min(MAX_FN) as usize)?;
    let calls = match machine {
        Machine::X86_64 => calls_x86_64(addr, &code),
        Machine::Aarch64 => calls_aarch64(addr, &code)?,
    };
    let out: Vec<String> = calls
        .into_iter()
        .filter(|&(_, len)| len <= 16)
        .filter_map(|(ptr, len)| match len {
            0 => Some(String::new()),
            len => super::vaddr_to_offset(loads.clone(), ptr, 1)
                .and_then(|o| bytes.range(o, len as usize))
                .filter(|v| v.iter().all(|b| b.is_ascii_digit() || *b == b'.'))
                .map(|v| String::from_utf8_lossy(&v).into_owned()),
        })
        .collect();
    (!out.is_empty()).then_some(out)
}

/// The `(pointer, length)` arguments of the calls in x86-64 code at
/// `addr`: TSL's `GetDsoHandle(name, version)` takes the version as a
/// `string_view` in `rdx` (length) and `rcx` (pointer), so each call is
/// preceded by `lea rcx, [rip+disp32]` (`48 8d 0d`) with `mov edx, imm32`
/// (`ba`) or `xor edx, edx` (`31 d2`) next to it.
fn calls_x86_64(addr: u64, code: &[u8]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for at in memchr::memmem::find_iter(code, &[0x48, 0x8d, 0x0d]) {
        let Some(&[a, b, c, d]) = code.get(at + 3..at + 7) else {
            continue;
        };
        let disp = i32::from_le_bytes([a, b, c, d]) as i64;
        let next = at + 7;
        let Some(target) = addr
            .checked_add(next as u64)
            .and_then(|a| a.checked_add_signed(disp))
        else {
            continue;
        };
        if let Some(len) = edx_near(code, at, next) {
            out.push((target, u64::from(len)));
        }
    }
    out
}

/// The `(pointer, length)` arguments of the calls in AArch64 code at
/// `addr`: the `string_view` goes in `x1` (length: `mov w1, #n`, or from
/// `wzr`) and `x2` (pointer: `adrp x2` + `add x2, x2, #lo`, or `adr x2`),
/// set before the `bl`. Each `bl` with both set since the previous one is
/// a call. `None` when the code's addresses overflow.
fn calls_aarch64(addr: u64, code: &[u8]) -> Option<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    let (mut page, mut ptr, mut len): (Option<u64>, Option<u64>, Option<u64>) = (None, None, None);
    for (i, w) in code.chunks_exact(4).enumerate() {
        let insn = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        let pc = addr.checked_add(4 * i as u64)?;
        if insn & 0x9f00_001f == 0x9000_0002 {
            // adrp x2, page
            let imm = (((insn >> 5) & 0x7_ffff) << 2 | ((insn >> 29) & 3)) as i64;
            let imm = (imm << 43) >> 43; // sign-extend 21 bits
            page = (pc & !0xfff).checked_add_signed(imm << 12);
        } else if insn & 0x9f00_001f == 0x1000_0002 {
            // adr x2, target (within 1 MiB)
            let imm = (((insn >> 5) & 0x7_ffff) << 2 | ((insn >> 29) & 3)) as i64;
            ptr = pc.checked_add_signed((imm << 43) >> 43);
        } else if insn & 0xffc0_03ff == 0x9100_0042 {
            // add x2, x2, #imm12
            ptr = page.and_then(|p| p.checked_add(u64::from((insn >> 10) & 0xfff)));
        } else if insn & 0xffe0_001f == 0x5280_0001 || insn & 0xffe0_001f == 0xd280_0001 {
            // mov w1/x1, #imm16
            len = Some(u64::from((insn >> 5) & 0xffff));
        } else if insn == 0x2a1f_03e1 || insn == 0xaa1f_03e1 {
            // mov w1/x1, wzr/xzr
            len = Some(0);
        } else if insn & 0xfc00_0000 == 0x9400_0000 {
            // bl: a call with both arguments set is one to the name builder.
            if let (Some(p), Some(n)) = (ptr, len) {
                out.push((p, n));
            }
            (page, ptr, len) = (None, None, None);
        }
    }
    Some(out)
}

/// The value `edx` gets right after (or, failing that, right before) the
/// `lea` at `lea..next`: `mov edx, imm32` or `xor edx, edx`.
fn edx_near(code: &[u8], lea: usize, next: usize) -> Option<u32> {
    let at = |i: usize| -> Option<u32> {
        match code.get(i..)? {
            [0xba, a, b, c, d, ..] => Some(u32::from_le_bytes([*a, *b, *c, *d])),
            [0x31, 0xd2, ..] => Some(0),
            _ => None,
        }
    };
    // Within the next few instructions (a `lea rsi`/`mov rdi` may sit between).
    (next..(next + 12).min(code.len()))
        .find_map(at)
        .or_else(|| (lea.saturating_sub(7)..lea).find_map(at))
}

/// A NUL-terminated literal in read-only data that starts a soname built
/// at run time: a printf format `lib<stem>.so.%d`, or a prefix
/// `lib<stem>.so.` a version is appended to. For a format, `args` holds
/// the integer each x86-64 call site passes for `%d` (decoded; empty when
/// none was).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SonameTemplate {
    /// The literal, e.g. `libnvrtc.so.%d` or `libnvrtc.so.`.
    pub text: String,
    /// Decoded `%d` arguments, each once, in code order.
    pub args: Vec<u32>,
}

impl SonameTemplate {
    /// `lib<stem>.so.` of a format (`None` for a prefix).
    pub fn format_prefix(&self) -> Option<&str> {
        self.text.strip_suffix("%d")
    }
}

impl FileBytes {
    /// The soname templates in the object's read-only data (`.rodata`,
    /// streamed in chunks) and, for formats on x86-64, the `%d` each call
    /// passes (the code read in chunks only when a format was found).
    pub fn soname_templates(&self) -> Vec<SonameTemplate> {
        match &self.data {
            Contents::Whole(v) => soname_templates(&v[..], v),
            Contents::Large(f) => soname_templates(&ReadCache::new(f), f),
        }
    }
}

fn soname_templates<'d, R: ReadRef<'d>>(data: R, bytes: &impl Ranges) -> Vec<SonameTemplate> {
    let Some((ident, _)) = data.read_bytes_at(0, 20).ok().and_then(read_ident) else {
        return Vec::new();
    };
    let Ok(ranges) = super::readonly_ranges_of(data) else {
        return Vec::new();
    };
    let mut found: Vec<(String, u64)> = Vec::new();
    for (off, size) in ranges {
        template_literals(bytes, off, size, &mut found);
    }
    if found.is_empty() {
        return Vec::new();
    }
    let x86_64 =
        ident.class == Class::Elf64 && ident.machine == 62 && ident.data == ByteOrder::Little;
    let args = match x86_64 && found.iter().any(|(t, _)| t.ends_with("%d")) {
        true => format_args_x86_64(data, bytes, &found),
        false => Vec::new(),
    };
    let mut out: Vec<SonameTemplate> = Vec::new();
    for (i, (text, _)) in found.iter().enumerate() {
        let mut a: Vec<u32> = Vec::new();
        for (j, v) in &args {
            if *j == i && !a.contains(v) {
                a.push(*v);
            }
        }
        match out.iter_mut().find(|t| &t.text == text) {
            Some(t) => {
                for v in a {
                    if !t.args.contains(&v) {
                        t.args.push(v);
                    }
                }
            }
            None => out.push(SonameTemplate {
                text: text.clone(),
                args: a,
            }),
        }
    }
    out
}

/// The template in `bytes` starting at `start` (after a byte that cannot
/// precede a name), if it is one: `lib<stem>.so.%d` or `lib<stem>.so.`,
/// NUL-terminated.
fn template_at(bytes: &[u8], start: usize) -> Option<&str> {
    if start > 0 && (super::is_soname_byte(bytes[start - 1]) || bytes[start - 1] == b'/') {
        return None;
    }
    let rest = bytes.get(start..)?;
    let end = memchr::memchr(0, &rest[..rest.len().min(256)])?;
    let lit = &rest[..end];
    let body = lit.strip_suffix(b"%d").unwrap_or(lit);
    let stem = body.strip_prefix(b"lib")?.strip_suffix(b".so.")?;
    let ok = !stem.is_empty()
        && stem.iter().all(|&b| super::is_soname_byte(b))
        && memchr::memmem::find(stem, b".so").is_none();
    ok.then(|| std::str::from_utf8(lit).ok()).flatten()
}

/// Templates in one read-only range, with their file offsets, streamed in
/// chunks that overlap by the longest template accepted.
fn template_literals(bytes: &impl Ranges, off: u64, size: u64, out: &mut Vec<(String, u64)>) {
    out.extend(windows(
        bytes,
        off,
        size,
        0,
        CHUNK_OVERLAP,
        |base, buf, own| {
            let mut out = Vec::new();
            for start in memchr::memmem::find_iter(buf, b"lib") {
                if !own.contains(&start) {
                    continue;
                }
                if let Some(t) = template_at(buf, start) {
                    out.push((t.to_owned(), off + base + start as u64));
                }
            }
            out
        },
    ));
}

/// The `%d` argument of each x86-64 call passing a format of `found` to an
/// `snprintf`-style function: `lea rdx, [rip+disp32]` (`48 8d 15`, the
/// third argument) at the format, and `mov ecx, imm32` (`b9`, the fourth)
/// within a few instructions before or after it. `(index into found,
/// value)`; the executable segments are read in chunks.
fn format_args_x86_64<'d, R: ReadRef<'d>>(
    data: R,
    bytes: &impl Ranges,
    found: &[(String, u64)],
) -> Vec<(usize, u32)> {
    let Ok(header) = elf::FileHeader64::<Endianness>::parse(data) else {
        return Vec::new();
    };
    let Ok(endian) = header.endian() else {
        return Vec::new();
    };
    let segments = header.program_headers(endian, data).unwrap_or(&[]);
    let loads: Vec<(u64, u64, u64, bool)> = segments
        .iter()
        .filter(|s| s.p_type(endian) == elf::PT_LOAD)
        .map(|s| {
            let x = s.p_flags(endian).0 & elf::PF_X.0 != 0;
            (s.p_vaddr(endian), s.p_offset(endian), s.p_filesz(endian), x)
        })
        .collect();
    // The formats' addresses, as the code computes them.
    let targets: Vec<(u64, usize)> = found
        .iter()
        .enumerate()
        .filter(|(_, (t, _))| t.ends_with("%d"))
        .filter_map(|(i, (_, off))| {
            let (va, o, _, _) = loads
                .iter()
                .find(|(_, o, sz, _)| (*o..o.saturating_add(*sz)).contains(off))?;
            Some((va + (off - o), i))
        })
        .collect();
    let mut out = Vec::new();
    for &(va, off, size, _) in loads.iter().filter(|l| l.3) {
        // 16 bytes before a `lea` for the `mov ecx` ahead of it, 12 after.
        out.extend(windows(bytes, off, size, 16, 32, |base, code, own| {
            let mut out = Vec::new();
            for at in memchr::memmem::find_iter(code, &[0x48, 0x8d, 0x15]) {
                if !own.contains(&at) {
                    continue;
                }
                let Some(disp) = code.get(at + 3..at + 7) else {
                    continue;
                };
                let disp = i32::from_le_bytes([disp[0], disp[1], disp[2], disp[3]]) as i64;
                let Some(target) = (va + base + at as u64 + 7).checked_add_signed(disp) else {
                    continue;
                };
                let Some(&(_, i)) = targets.iter().find(|(t, _)| *t == target) else {
                    continue;
                };
                if let Some(v) = ecx_near(code, at, at + 7) {
                    out.push((i, v));
                }
            }
            out
        }));
    }
    out
}

/// The small integer `ecx` gets right before (or, failing that, right
/// after) the `lea` at `lea..next`: `mov ecx, imm32` with a value a
/// soname version can be (under 1000).
fn ecx_near(code: &[u8], lea: usize, next: usize) -> Option<u32> {
    let at = |i: usize| -> Option<u32> {
        match code.get(i..)? {
            [0xb9, a, b, c, d, ..] => {
                Some(u32::from_le_bytes([*a, *b, *c, *d])).filter(|v| *v < 1000)
            }
            _ => None,
        }
    };
    (lea.saturating_sub(16)..lea)
        .rev()
        .find_map(at)
        .or_else(|| (next..(next + 12).min(code.len())).find_map(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names and symbols found in tables read by windows are the same
    /// whether the file is held whole or read into a shared buffer, with a
    /// name across a window's end and symbols in the second window.
    /// The owned ranges of the windows tile the range exactly once, and a
    /// window holds its `lead` bytes before and `overlap` after (a `lea` at
    /// a window's start still sees the `mov ecx` before it).
    #[test]
    fn windows_own_each_byte_once_and_carry_their_lead() {
        let size = 2 * CHUNK + CHUNK / 2;
        let data: Vec<u8> = (0..size + 100).map(|i| (i % 251) as u8).collect();
        let mut owned = vec![0u8; size];
        let seen = windows(&data, 100, size as u64, 16, 32, |base, buf, own| {
            let base = base as usize;
            assert_eq!(buf, &data[100 + base..100 + base + buf.len()]);
            assert!(base == 0 || own.start == 16, "lead kept: {own:?}");
            assert!(own.end == buf.len() || buf.len() - own.end == 32);
            own.map(|k| base + k).collect()
        });
        // In window order, each owned byte once.
        assert!(seen.is_sorted());
        for k in seen {
            owned[k] += 1;
        }
        assert!(owned.iter().all(|&n| n == 1));
    }

    #[test]
    fn windows_of_a_file_and_of_its_bytes_agree() {
        let name = |x: &str| {
            format!(
                "_ZN3tsl8internal9DsoLoader{}Get{x}DsoHandleEv",
                x.len() + 12
            )
        };
        let mut strtab = vec![0u8; 3 * CHUNK + 100];
        let mut names = Vec::new();
        for (at, x) in [
            (5, "Cublas"),
            (CHUNK - 10, "Cufft"),
            (2 * CHUNK + 1, "Cudnn"),
        ] {
            let n = name(x);
            strtab[at..at + n.len()].copy_from_slice(n.as_bytes());
            names.push((at as u64, n));
        }
        let mut symtab = Vec::new();
        let count = CHUNK / 24 + 100;
        for i in 0..count {
            // The DsoLoader functions are the last three entries, in the
            // second window; the others are functions of unrelated names.
            let which = i.checked_sub(count - 3);
            let st_name = which.map_or(1, |w| names[w].0 as u32);
            // Elf64_Sym: name, info, other, shndx, value, size.
            symtab.extend_from_slice(&st_name.to_le_bytes());
            symtab.extend_from_slice(&[elf::STT_FUNC.0, 0]);
            symtab.extend_from_slice(&1u16.to_le_bytes());
            symtab.extend_from_slice(&(0x1000 + i as u64).to_le_bytes());
            symtab.extend_from_slice(&16u64.to_le_bytes());
        }
        let image = [strtab.clone(), symtab.clone()].concat();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tables");
        std::fs::write(&path, &image).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        // Elf64_Shdr: name, type, flags, addr, offset, size, link, info,
        // addralign, entsize.
        let mut raw = Vec::new();
        raw.extend_from_slice(&0u32.to_le_bytes());
        raw.extend_from_slice(&elf::SHT_SYMTAB.0.to_le_bytes());
        for v in [0u64, 0, strtab.len() as u64, symtab.len() as u64] {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        raw.extend_from_slice(&[0; 8]);
        raw.extend_from_slice(&8u64.to_le_bytes());
        raw.extend_from_slice(&24u64.to_le_bytes());
        let (shdr, _) = object::pod::from_bytes::<elf::SectionHeader64<Endianness>>(&raw).unwrap();
        fn found(
            bytes: &impl Ranges,
            size: u64,
            shdr: &elf::SectionHeader64<Endianness>,
        ) -> (Vec<(u64, String)>, Vec<FnSym>) {
            let n = tsl_names(bytes, 0, size);
            let mut out = Vec::new();
            defined_functions::<elf::FileHeader64<Endianness>>(
                Endianness::Little,
                bytes,
                shdr,
                true,
                &n,
                &mut out,
            );
            (n, out)
        }
        let via_vec = found(&image, strtab.len() as u64, shdr);
        let via_file = found(&file, strtab.len() as u64, shdr);
        assert_eq!(via_vec.0, names);
        let want: Vec<FnSym> = (0..3)
            .map(|w| (names[w].1.clone(), 0x1000 + (count - 3 + w) as u64, 16))
            .collect();
        assert_eq!(via_vec.1, want);
        assert_eq!(via_file, via_vec);
    }

    #[test]
    fn what_of_checks_the_mangling() {
        assert_eq!(
            what_of(b"_ZN3tsl8internal9DsoLoader18GetCublasDsoHandleEv"),
            Some("Cublas")
        );
        assert_eq!(
            what_of(b"_ZN3tsl8internal9DsoLoader23GetCudaRuntimeDsoHandleEv"),
            Some("CudaRuntime")
        );
        // Wrong length prefix, other signature, not a getter.
        assert_eq!(
            what_of(b"_ZN3tsl8internal9DsoLoader17GetCublasDsoHandleEv"),
            None
        );
        assert_eq!(
            what_of(b"_ZN3tsl8internal9DsoLoader18GetCublasDsoHandleEi"),
            None
        );
        assert_eq!(what_of(b"_ZN3tsl8internal9DsoLoader6FooBarEv"), None);
        // A length that overflows is not a name, not a panic.
        assert_eq!(
            what_of(b"_ZN3tsl8internal9DsoLoader18446744073709551615GetXDsoHandleEv"),
            None
        );
    }

    #[test]
    fn templates_are_formats_or_prefixes_ending_a_string() {
        fn t(b: &[u8], at: usize) -> Option<&str> {
            template_at(b, at)
        }
        assert_eq!(t(b"libnvrtc.so.%d\0", 0), Some("libnvrtc.so.%d"));
        assert_eq!(t(b"\0libnvrtc.so.\0", 1), Some("libnvrtc.so."));
        // A name, a message, part of a longer word or path: not templates.
        for (b, at) in [
            (&b"libnvrtc.so.12\0"[..], 0),
            (b"libnvrtc.so.%d is missing\0", 0),
            (b"xlibnvrtc.so.%d\0", 1),
            (b"/libnvrtc.so.%d\0", 1),
            (b"lib.so.%d\0", 0),
            (b"libnvrtc.so.%s\0", 0),
            (b"libnvrtc.so.%d", 0),
        ] {
            assert_eq!(t(b, at), None, "{:?}", String::from_utf8_lossy(b));
        }
    }

    #[test]
    fn ecx_before_or_after_the_lea() {
        // mov ecx,12; lea rdx,[rip+0] (cuDNN 9.28's nvrtcHelper::load)
        let c = [0xb9, 12, 0, 0, 0, 0x48, 0x8d, 0x15, 0, 0, 0, 0];
        assert_eq!(ecx_near(&c, 5, 12), Some(12));
        // lea rdx,[rip+0]; mov ecx,9
        let c = [0x48, 0x8d, 0x15, 0, 0, 0, 0, 0xb9, 9, 0, 0, 0];
        assert_eq!(ecx_near(&c, 0, 7), Some(9));
        // Not a version: too large, or no mov at all.
        let c = [0xb9, 0, 0x10, 0, 0, 0x48, 0x8d, 0x15, 0, 0, 0, 0];
        assert_eq!(ecx_near(&c, 5, 12), None);
        let c = [0x48, 0x8d, 0x15, 0, 0, 0, 0, 0x90];
        assert_eq!(ecx_near(&c, 0, 7), None);
    }

    #[test]
    fn edx_after_or_before_the_lea() {
        // lea rcx,[rip+0]; mov edx,2
        let c = [0x48, 0x8d, 0x0d, 0, 0, 0, 0, 0xba, 2, 0, 0, 0];
        assert_eq!(edx_near(&c, 0, 7), Some(2));
        // xor edx,edx; lea rcx,[rip+0]
        let c = [0x31, 0xd2, 0x48, 0x8d, 0x0d, 0, 0, 0, 0];
        assert_eq!(edx_near(&c, 2, 9), Some(0));
        let c = [0x48, 0x8d, 0x0d, 0, 0, 0, 0, 0x90];
        assert_eq!(edx_near(&c, 0, 7), None);
    }
}

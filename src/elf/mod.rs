//! ELF facts: what the dynamic loader will read from an object (class, byte
//! order, machine, DT_NEEDED, RUNPATH/RPATH, SONAME, flags, `.note.dlopen`),
//! read through the program headers the way ld.so does, with the `object` crate.
//!
//! Reading never requires the whole file in memory: callers pass any
//! `object::ReadRef` (a byte slice, or `ReadCache<File>` for large files).

pub(crate) mod buffers;
/// Evidence for the computed-name recognisers (TSL DsoLoader functions).
mod dso;
pub use dso::{DsoLoaderFn, SonameTemplate};

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{Dyn, FileHeader, NoteIterator, ProgramHeader, SectionHeader, Sym};
use object::{Endianness, ReadCache, ReadRef};
use serde::Serialize;

/// Why a file could not be read as ELF. Each message is one line that names
/// what is wrong; the caller adds the file name.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// The file could not be opened or read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failed call's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not ELF, or its headers or dynamic section are broken.
    #[error("{path}: malformed ELF: {what}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: Malformed,
    },
}

impl ElfError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ElfError::Io { path, .. } | ElfError::Malformed { path, .. } => path,
        }
    }

    /// What is wrong, without the file name.
    pub fn reason(&self) -> String {
        match self {
            ElfError::Io { source, .. } => format!("cannot read: {source}"),
            ElfError::Malformed { what, .. } => format!("malformed ELF: {what}"),
        }
    }
}

/// 32- or 64-bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// ELFCLASS32.
    Elf32,
    /// ELFCLASS64.
    Elf64,
}

/// Byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ByteOrder {
    /// ELFDATA2LSB.
    Little,
    /// ELFDATA2MSB.
    Big,
}

/// What ld.so compares before it accepts a candidate file: class, byte order
/// and machine. (A mismatch in class or machine makes it skip the candidate.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
pub struct ElfIdent {
    /// EI_CLASS.
    pub class: Class,
    /// EI_DATA.
    pub data: ByteOrder,
    /// e_machine.
    pub machine: u16,
    /// EI_OSABI.
    pub osabi: u8,
}

impl ElfIdent {
    /// True when a loader for `self` would accept `other` as a dependency
    /// (same class, byte order and machine; OS ABI SYSV/GNU are interchangeable).
    pub fn loadable_by(&self, other: &ElfIdent) -> bool {
        self.class == other.class && self.data == other.data && self.machine == other.machine
    }

    /// A short human name of the machine, e.g. `x86_64`.
    pub fn machine_name(&self) -> String {
        machine_name(self.machine, self.class)
    }
}

/// Human name of an `e_machine` value.
pub fn machine_name(machine: u16, class: Class) -> String {
    match (elf::Machine(machine), class) {
        (elf::EM_X86_64, _) => "x86_64".into(),
        (elf::EM_386, _) => "i386".into(),
        (elf::EM_AARCH64, _) => "aarch64".into(),
        (elf::EM_ARM, _) => "arm".into(),
        (elf::EM_RISCV, Class::Elf64) => "riscv64".into(),
        (elf::EM_RISCV, Class::Elf32) => "riscv32".into(),
        (elf::EM_S390, _) => "s390x".into(),
        (elf::EM_PPC64, _) => "ppc64".into(),
        (elf::EM_PPC, _) => "ppc".into(),
        (elf::EM_MIPS, _) => "mips".into(),
        (elf::EM_LOONGARCH, _) => "loongarch64".into(),
        (m, _) => format!("machine-{m}"),
    }
}

/// The SONAME of glibc's dynamic loader for the ABI of `ident`, where it is
/// unambiguous (ARM and RISC-V depend on the float ABI and are left out).
/// ld.so maps itself into every process, so a need of this name is always
/// satisfied by the loader already there.
pub fn glibc_loader_soname(ident: &ElfIdent) -> Option<&'static str> {
    Some(
        match (elf::Machine(ident.machine), ident.class, ident.data) {
            (elf::EM_X86_64, Class::Elf64, _) => "ld-linux-x86-64.so.2",
            (elf::EM_X86_64, Class::Elf32, _) => "ld-linux-x32.so.2",
            (elf::EM_386, _, _) => "ld-linux.so.2",
            (elf::EM_AARCH64, _, ByteOrder::Little) => "ld-linux-aarch64.so.1",
            (elf::EM_AARCH64, _, ByteOrder::Big) => "ld-linux-aarch64_be.so.1",
            (elf::EM_PPC64, _, ByteOrder::Little) => "ld64.so.2",
            (elf::EM_PPC64, _, ByteOrder::Big) => "ld64.so.1",
            (elf::EM_S390, Class::Elf64, _) => "ld64.so.1",
            _ => return None,
        },
    )
}

/// One entry of a `.note.dlopen` note (systemd's ELF dlopen metadata).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DlopenNote {
    /// The sonames, any one of which satisfies the entry.
    pub soname: Vec<String>,
    /// The feature the library provides.
    pub feature: Option<String>,
    /// What the feature is, for people.
    pub description: Option<String>,
    /// `required`, `recommended` or `suggested`.
    pub priority: Option<String>,
}

/// ELF object type as far as the loader cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectType {
    /// ET_EXEC: a fixed-address executable.
    Exec,
    /// ET_DYN: a shared library or a PIE.
    Dyn,
    /// ET_REL: a relocatable object (`.o`).
    Rel,
    /// ET_CORE: a core dump.
    Core,
    /// Any other e_type.
    Other,
}

/// Everything unfarm needs to know about one ELF file.
#[derive(Clone, Debug, Serialize)]
pub struct ElfFacts {
    /// Class, byte order, machine, OS ABI.
    pub ident: ElfIdent,
    /// e_type.
    pub object_type: ObjectType,
    /// True when the file has a PT_DYNAMIC segment (dynamically linked).
    pub dynamic: bool,
    /// PT_INTERP, the program interpreter (`ld.so`) an executable names.
    pub interpreter: Option<String>,
    /// DT_NEEDED names, in order.
    pub needed: Vec<String>,
    /// DT_RUNPATH.
    pub runpath: Option<String>,
    /// DT_RPATH.
    pub rpath: Option<String>,
    /// DT_SONAME.
    pub soname: Option<String>,
    /// DF_1_NODEFLIB: the loader skips ld.so.cache and the default dirs.
    pub nodeflib: bool,
    /// The `.note.dlopen` entries: libraries it may `dlopen()`.
    pub dlopen_notes: Vec<DlopenNote>,
    /// The object imports `dlopen` or `dlmopen`, so it may load libraries by
    /// names that appear nowhere in its dynamic section.
    pub imports_dlopen: bool,
    /// The object imports `dlsym` (through which it may reach `dlopen`).
    pub imports_dlsym: bool,
    /// Whether the file has section headers (some stripped files do not).
    pub has_section_headers: bool,
    /// File offset of the DT_RUNPATH string.
    pub runpath_offset: Option<u64>,
    /// File offset of the DT_RPATH string.
    pub rpath_offset: Option<u64>,
}

#[cfg(test)]
impl ElfFacts {
    /// A dynamically linked x86-64 object with nothing else set, for unit
    /// tests to fill in.
    pub(crate) fn test_object(object_type: ObjectType) -> ElfFacts {
        ElfFacts {
            ident: ElfIdent {
                class: Class::Elf64,
                data: ByteOrder::Little,
                machine: 62,
                osabi: 0,
            },
            object_type,
            dynamic: true,
            interpreter: None,
            needed: Vec::new(),
            runpath: None,
            rpath: None,
            soname: None,
            nodeflib: false,
            dlopen_notes: Vec::new(),
            imports_dlopen: false,
            imports_dlsym: false,
            has_section_headers: true,
            runpath_offset: None,
            rpath_offset: None,
        }
    }
}

/// Which search-path entry of the dynamic section: DT_RUNPATH or DT_RPATH.
/// A rewrite never changes it (the two have different lookup semantics);
/// planner, editor and checks share this one type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SearchPathTag {
    /// DT_RUNPATH: searched after LD_LIBRARY_PATH, not inherited.
    Runpath,
    /// DT_RPATH: searched before LD_LIBRARY_PATH, inherited; ignored when the
    /// object also has DT_RUNPATH.
    Rpath,
}

impl SearchPathTag {
    /// The dynamic tag value.
    pub fn dt(self) -> i64 {
        match self {
            SearchPathTag::Runpath => elf::DT_RUNPATH.0,
            SearchPathTag::Rpath => elf::DT_RPATH.0,
        }
    }

    /// `RUNPATH` or `RPATH`: the text and JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            SearchPathTag::Runpath => "RUNPATH",
            SearchPathTag::Rpath => "RPATH",
        }
    }

    /// The dynamic tag's name, `DT_RUNPATH` or `DT_RPATH` (for errors about
    /// the dynamic section; [`Display`](std::fmt::Display) gives `RUNPATH`).
    pub fn name(self) -> &'static str {
        match self {
            SearchPathTag::Runpath => "DT_RUNPATH",
            SearchPathTag::Rpath => "DT_RPATH",
        }
    }
}

named_by_as_str!(SearchPathTag);

impl ElfFacts {
    /// True when `tag`'s list is the one ld.so searches for this object's
    /// own needs: DT_RUNPATH always (a plan may add one to an object that
    /// had no search path), DT_RPATH only when there is no DT_RUNPATH (ld.so
    /// then ignores it).
    pub fn is_effective(&self, tag: SearchPathTag) -> bool {
        tag == SearchPathTag::Runpath || self.runpath.is_none()
    }

    /// Whether a soname literal in this object's read-only data can be
    /// looked up through this object's own search list, so that it is worth
    /// scanning for (a dlopen hint). glibc's `dlopen` searches the
    /// DT_RUNPATH of the calling object only (dl-load.c, `_dl_map_object`:
    /// the caller's map is the loader), so an object that imports neither
    /// `dlopen` nor `dlmopen` lends its DT_RUNPATH to no lookup by name. A
    /// DT_RPATH is also searched for calls made by the objects it loads (and
    /// an executable's by every object without DT_RUNPATH), where a literal
    /// of this object may be the name: such an object's literals count.
    pub fn literals_searched(&self) -> bool {
        self.imports_dlopen || (self.runpath.is_none() && self.rpath.is_some())
    }

    /// Whether a `dlopen()` by name may be made from this object, and so
    /// search its own DT_RUNPATH (glibc searches the caller's): it imports
    /// `dlopen`, `dlmopen` or `dlsym` (a way to reach them), or its imports
    /// cannot be read (no section headers: assume it may).
    pub fn may_dlopen(&self) -> bool {
        self.imports_dlopen || self.imports_dlsym || !self.has_section_headers
    }

    /// The string of `tag`, when the object has that entry.
    pub fn search_path(&self, tag: SearchPathTag) -> Option<&String> {
        match tag {
            SearchPathTag::Runpath => self.runpath.as_ref(),
            SearchPathTag::Rpath => self.rpath.as_ref(),
        }
    }

    /// Set (or, with `None`, remove) the string of `tag`.
    pub fn set_search_path(&mut self, tag: SearchPathTag, value: Option<String>) {
        match tag {
            SearchPathTag::Runpath => self.runpath = value,
            SearchPathTag::Rpath => self.rpath = value,
        }
    }

    /// The file offset of `tag`'s string.
    pub fn search_path_offset(&self, tag: SearchPathTag) -> Option<u64> {
        match tag {
            SearchPathTag::Runpath => self.runpath_offset,
            SearchPathTag::Rpath => self.rpath_offset,
        }
    }
}

/// What a file is, as far as unfarm cares, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// `\x7fELF`: an ELF object.
    Elf,
    /// `!<arch>`: a static archive.
    Archive,
    /// `#!`: a script.
    Script,
    /// Anything else (text linker scripts such as glibc's `libc.so`, data).
    Other,
}

/// Classify by magic bytes.
fn sniff(head: &[u8]) -> FileKind {
    if head.starts_with(&elf::ELFMAG) {
        FileKind::Elf
    } else if head.starts_with(b"!<arch>\n") || head.starts_with(b"!<thin>\n") {
        FileKind::Archive
    } else if head.starts_with(b"#!") {
        FileKind::Script
    } else {
        FileKind::Other
    }
}

/// Read the first bytes of a file and classify it.
pub fn sniff_file(path: &Path) -> Result<FileKind, ElfError> {
    let mut f = open_for_reading(path).map_err(|source| ElfError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut head = [0u8; 8];
    let n = read_full(&mut f, &mut head).map_err(|source| ElfError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(sniff(&head[..n]))
}

/// Read the ident (class, byte order, machine) from the first 20 bytes,
/// without parsing anything else. `None` when it is not a valid ELF header.
pub fn read_ident(head: &[u8]) -> Option<(ElfIdent, ObjectType)> {
    // e_type and e_machine sit at the same offsets in both classes.
    type Ehdr = elf::FileHeader64<Endianness>;
    let at_type = std::mem::offset_of!(Ehdr, e_type);
    let at_machine = std::mem::offset_of!(Ehdr, e_machine);
    if head.len() < at_machine + 2 || !head.starts_with(&elf::ELFMAG) {
        return None;
    }
    let class = match head[std::mem::offset_of!(elf::Ident, class)] {
        c if c == elf::ELFCLASS32.0 => Class::Elf32,
        c if c == elf::ELFCLASS64.0 => Class::Elf64,
        _ => return None,
    };
    let data = match head[std::mem::offset_of!(elf::Ident, data)] {
        d if d == elf::ELFDATA2LSB.0 => ByteOrder::Little,
        d if d == elf::ELFDATA2MSB.0 => ByteOrder::Big,
        _ => return None,
    };
    let half = |at: usize| {
        let b = [head[at], head[at + 1]];
        match data {
            ByteOrder::Little => u16::from_le_bytes(b),
            ByteOrder::Big => u16::from_be_bytes(b),
        }
    };
    let (t, m) = (half(at_type), half(at_machine));
    let ident = ElfIdent {
        class,
        data,
        machine: m,
        osabi: head[std::mem::offset_of!(elf::Ident, os_abi)],
    };
    Some((ident, object_type(t)))
}

fn object_type(t: u16) -> ObjectType {
    match elf::FileType(t) {
        elf::ET_EXEC => ObjectType::Exec,
        elf::ET_DYN => ObjectType::Dyn,
        elf::ET_REL => ObjectType::Rel,
        elf::ET_CORE => ObjectType::Core,
        _ => ObjectType::Other,
    }
}

/// Open a file and read its ELF facts, reading only the parts needed.
pub fn read_facts(path: &Path) -> Result<ElfFacts, ElfError> {
    match FileBytes::open(path, None, Use::Facts)? {
        Sniffed::Elf(b) => b.facts(),
        // Not ELF: the header check says why, in the words `facts` uses.
        Sniffed::Other { head } => Err(ElfError::Malformed {
            path: path.to_owned(),
            what: parse_facts(&head[..]).err().unwrap_or(Malformed::NotElf),
        }),
    }
}

/// Files up to this size are read whole (one `read`); larger ones are read
/// range by range (dlopen hints in chunks), so no library is held in
/// memory: a CUDA package's 43 libraries (842 MiB) are surveyed in tens of
/// MiB, not hundreds (`bench/cuda.sh`).
pub const WHOLE_FILE_LIMIT: u64 = 1 << 20;

/// One opened file, read the cheapest way for its size. Reading facts, the
/// kind and dlopen hints from one `FileBytes` opens and reads the file once.
pub struct FileBytes {
    path: PathBuf,
    data: Contents,
}

enum Contents {
    Whole(Vec<u8>),
    Large(File),
}

/// A file opened by [`FileBytes::open`]: ELF, or the first bytes of another.
pub enum Sniffed {
    /// An ELF file, read for the asked [`Use`].
    Elf(FileBytes),
    /// Not ELF: its first bytes (up to 64 KiB).
    Other {
        /// The bytes read.
        head: Vec<u8>,
    },
}

/// How much of a file [`FileBytes::open`] reads before knowing whether it
/// is ELF: most small objects fit, and a large non-ELF file costs one read.
const HEAD_READ: usize = 64 << 10;

/// Open `path` for reading without updating its access time where that is
/// allowed (files we own, or as root). With `relatime`, the first read after
/// a change updates atime: on xfs and btrfs an inode transaction per file,
/// which made reading a few thousand fresh build outputs several times
/// slower.
pub fn open_for_reading(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => File::open(path),
        r => r,
    }
}

/// Read from `f` until `v` holds `want` bytes or the file ends: for a
/// regular file, one `read` (std's `read_to_end` would start with 8 KiB
/// chunks, or stat the file again for a size hint).
pub(crate) fn read_up_to(mut f: &File, v: &mut Vec<u8>, want: usize) -> std::io::Result<()> {
    let have = v.len();
    if want <= have {
        return Ok(());
    }
    v.resize(want, 0);
    match read_full(&mut f, &mut v[have..]) {
        Ok(n) => {
            v.truncate(have + n);
            Ok(())
        }
        Err(e) => {
            v.truncate(have);
            Err(e)
        }
    }
}

/// Read into `buf` until it is full or the input ends, retrying a read a
/// signal interrupted. The count is below `buf.len()` only at the end of the
/// input (a short read alone does not mean the end).
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// What a caller will ask of a [`FileBytes`]: it decides how much of the
/// file is read at once (the bounds live here, in `Use::whole_limit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// Only [`FileBytes::facts`] (headers, dynamic section, strings): a file
    /// over 64 KiB is read range by range, so gathering a farm of large
    /// libraries for their SONAMEs reads kilobytes, not gigabytes.
    Facts,
    /// Facts, [`FileBytes::hints`] and [`FileBytes::is_debug_info`]: a file
    /// up to [`WHOLE_FILE_LIMIT`] is read whole (one read), a larger one range
    /// by range.
    All,
}

impl Use {
    /// The largest file read whole into memory for this use.
    fn whole_limit(self) -> u64 {
        match self {
            Use::Facts => HEAD_READ as u64,
            Use::All => WHOLE_FILE_LIMIT,
        }
    }
}

impl FileBytes {
    /// Open `path` and sniff it: an ELF file is read for `usage` (one open
    /// and, for a small file, usually one read); for any other file only its
    /// first 64 KiB are read and kept. `size`, when the caller has just
    /// stat'ed the file (a walk), spares a second stat.
    pub fn open(path: &Path, size: Option<u64>, usage: Use) -> Result<Sniffed, ElfError> {
        Self::open_with(path, size, usage.whole_limit())
    }

    /// [`FileBytes::open`] for callers that skip files that are not ELF
    /// (`None`).
    pub fn open_elf(path: &Path, size: Option<u64>, usage: Use) -> Result<Option<Self>, ElfError> {
        Ok(match Self::open(path, size, usage)? {
            Sniffed::Elf(b) => Some(b),
            Sniffed::Other { .. } => None,
        })
    }

    fn open_with(path: &Path, size: Option<u64>, whole_limit: u64) -> Result<Sniffed, ElfError> {
        let io = |source| ElfError::Io {
            path: path.to_owned(),
            source,
        };
        let file = open_for_reading(path).map_err(io)?;
        let len = match size {
            Some(n) => n,
            None => file.metadata().map_err(io)?.len(),
        };
        let whole = len <= whole_limit;
        // One byte past the size: a file that grew since it was measured
        // is seen to have grown.
        let head = if whole {
            (len as usize + 1).min(HEAD_READ)
        } else {
            HEAD_READ
        };
        let mut v = Vec::with_capacity(head);
        read_up_to(&file, &mut v, head).map_err(io)?;
        if sniff(&v[..v.len().min(8)]) != FileKind::Elf {
            return Ok(Sniffed::Other { head: v });
        }
        let data = if whole {
            let len = len as usize;
            read_up_to(&file, &mut v, len + 1).map_err(io)?;
            match v.len() > len {
                false => Contents::Whole(v),
                // Grew: read it at its size now, or range by range.
                true => {
                    let now = file.metadata().map_err(io)?.len();
                    if now <= whole_limit {
                        read_up_to(&file, &mut v, now as usize).map_err(io)?;
                        Contents::Whole(v)
                    } else {
                        Contents::Large(file)
                    }
                }
            }
        } else {
            Contents::Large(file)
        };
        Ok(Sniffed::Elf(FileBytes {
            path: path.to_owned(),
            data,
        }))
    }

    /// The first `n` bytes (fewer if the file is shorter).
    pub fn head(&self, n: usize) -> Vec<u8> {
        match &self.data {
            Contents::Whole(v) => v[..v.len().min(n)].to_vec(),
            Contents::Large(f) => {
                let mut head = vec![0; n];
                let k = std::os::unix::fs::FileExt::read_at(f, &mut head, 0).unwrap_or(0);
                head.truncate(k);
                head
            }
        }
    }

    fn malformed(&self, what: Malformed) -> ElfError {
        ElfError::Malformed {
            path: self.path.clone(),
            what,
        }
    }

    /// What the file is, from its first bytes.
    pub fn kind(&self) -> FileKind {
        sniff(&self.head(8))
    }

    /// The file's ELF facts (see [`parse_facts`]).
    pub fn facts(&self) -> Result<ElfFacts, ElfError> {
        match &self.data {
            Contents::Whole(v) => parse_facts(&v[..]),
            Contents::Large(f) => parse_facts(&ReadCache::new(f)),
        }
        .map_err(|w| self.malformed(w))
    }

    /// See `is_debug_info_file`.
    pub fn is_debug_info(&self) -> bool {
        match &self.data {
            Contents::Whole(v) => is_debug_info_file(&v[..]),
            Contents::Large(f) => is_debug_info_file(&ReadCache::new(f)),
        }
    }

    /// Soname-like string literals (`libfoo.so`, `libfoo.so.1.2`) in the
    /// object's read-only data: how most `dlopen()` names appear. A literal
    /// preceded by `/` is part of a path and is not searched, so it is not a
    /// hint.
    pub fn hints(&self) -> Result<Vec<String>, ElfError> {
        let mut out = match &self.data {
            Contents::Whole(v) => {
                let ranges = readonly_ranges_of(&v[..]).map_err(|w| self.malformed(w))?;
                let mut out = Vec::new();
                for (off, size) in ranges {
                    let range = usize::try_from(off)
                        .ok()
                        .and_then(|o| Some(o..o.checked_add(usize::try_from(size).ok()?)?))
                        .and_then(|r| v.get(r));
                    if let Some(bytes) = range {
                        soname_literals(bytes, bytes.len(), &mut out);
                    }
                }
                out
            }
            Contents::Large(f) => {
                let ranges =
                    readonly_ranges_of(&ReadCache::new(f)).map_err(|w| self.malformed(w))?;
                large_file_literals(f, &ranges)
            }
        };
        out.sort();
        out.dedup();
        Ok(out)
    }
}

fn readonly_ranges_of<'d, R: ReadRef<'d>>(data: R) -> Result<Vec<(u64, u64)>, Malformed> {
    let head = data.read_bytes_at(0, 20).map_err(|_| Malformed::TooShort)?;
    let (ident, _) = read_ident(head).ok_or(Malformed::BadIdent)?;
    match ident.class {
        Class::Elf32 => readonly_ranges::<elf::FileHeader32<Endianness>, _>(data),
        Class::Elf64 => readonly_ranges::<elf::FileHeader64<Endianness>, _>(data),
    }
}

/// Scan read-only ranges of a large file in bounded chunks, in parallel, so
/// a huge `.rodata` never sits in memory whole; chunks overlap by the longest
/// name we accept. Each chunk is read into a buffer of the process's one
/// read budget ([`buffers::READ_POOL`]), not one per worker thread.
fn large_file_literals(file: &File, ranges: &[(u64, u64)]) -> Vec<String> {
    use rayon::prelude::*;
    const CHUNK: u64 = 1 << 20;
    const OVERLAP: u64 = 256;
    let chunks: Vec<(u64, u64)> = ranges
        .iter()
        .flat_map(|&(off, size)| {
            (0..size.div_ceil(CHUNK)).filter_map(move |i| {
                let pos = i * CHUNK;
                Some((off.checked_add(pos)?, (size - pos).min(CHUNK + OVERLAP)))
            })
        })
        .collect();
    chunks
        .par_iter()
        .map(|&(at, len)| {
            let mut out = Vec::new();
            let mut lease = buffers::READ_POOL.take(len as usize);
            let buf = &mut lease[..len as usize];
            if std::os::unix::fs::FileExt::read_exact_at(file, buf, at).is_ok() {
                // Only count literals that start inside this chunk's own span.
                soname_literals(buf, len.min(CHUNK) as usize, &mut out);
            }
            out
        })
        .flatten_iter()
        .collect()
}

/// True for a separate debug-info file (`objcopy --only-keep-debug`, what
/// `separateDebugInfo` puts under `lib/debug/.build-id/`): its program
/// headers are the original's, but the interpreter or dynamic segment has no
/// bytes in the file (its sections are NOBITS). The loader never loads one,
/// so it has no search path to plan. False for anything that does not parse.
fn is_debug_info_file<'d, R: ReadRef<'d>>(data: R) -> bool {
    fn check<'d, Elf: FileHeader<Endian = Endianness>, R: ReadRef<'d>>(data: R) -> bool {
        let Ok(header) = Elf::parse(data) else {
            return false;
        };
        let Ok(endian) = header.endian() else {
            return false;
        };
        let Ok(segments) = header.program_headers(endian, data) else {
            return false;
        };
        segments.iter().any(|seg| {
            matches!(seg.p_type(endian), elf::PT_INTERP | elf::PT_DYNAMIC)
                && seg.p_filesz(endian).into() == 0
                && seg.p_memsz(endian).into() != 0
        })
    }
    match data.read_bytes_at(0, 20).ok().and_then(read_ident) {
        Some((ident, _)) if ident.class == Class::Elf32 => {
            check::<elf::FileHeader32<Endianness>, R>(data)
        }
        Some(_) => check::<elf::FileHeader64<Endianness>, R>(data),
        None => false,
    }
}

/// Why a file's bytes are not ELF facts (not ELF, broken headers or
/// dynamic section): one variant per rule the file breaks, worded by its
/// `Display` (one phrase; [`ElfError::Malformed`] adds the file).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Fewer bytes than an ELF header.
    #[error("file too short for an ELF header")]
    TooShort,
    /// The identification bytes are not ELF's.
    #[error("invalid ELF header")]
    BadIdent,
    /// Not ELF at all (the sniff said so, the header parses).
    #[error("not ELF")]
    NotElf,
    /// The file header does not parse.
    #[error("{0}")]
    Header(object::Error),
    /// The section headers do not parse.
    #[error("section headers: {0}")]
    SectionHeaders(object::Error),
    /// The program headers do not parse.
    #[error("program headers: {0}")]
    ProgramHeaders(object::Error),
    /// Several PT_DYNAMIC segments (ld.so would use the last, tools the first).
    #[error("more than one PT_DYNAMIC")]
    SeveralDynamic,
    /// A PT_DYNAMIC over [`MAX_DYNAMIC_SEGMENT`] bytes.
    #[error("PT_DYNAMIC is {0} bytes, over {max} MiB: not a dynamic section", max = MAX_DYNAMIC_SEGMENT >> 20)]
    DynamicTooLarge(u64),
    /// The PT_DYNAMIC segment cannot be read.
    #[error("dynamic segment: {0}")]
    DynamicSegment(object::Error),
    /// DT_STRTAB's range lies outside every PT_LOAD.
    #[error("DT_STRTAB..DT_STRSZ is not inside a PT_LOAD")]
    StrtabOutsideLoad,
    /// Only one of DT_STRTAB and DT_STRSZ.
    #[error("DT_STRTAB without DT_STRSZ (or the reverse)")]
    StrtabHalf,
    /// A dynamic string without a DT_STRTAB.
    #[error("dynamic string used but no DT_STRTAB")]
    NoStrtab,
    /// A string offset at or past DT_STRSZ.
    #[error("string offset {offset} is past DT_STRSZ {size}")]
    PastStrsz {
        /// The offset into the string table.
        offset: u64,
        /// DT_STRSZ.
        size: u64,
    },
    /// DT_STRTAB + offset overflows.
    #[error("string offset overflows")]
    OffsetOverflow,
    /// DT_STRTAB + DT_STRSZ overflows.
    #[error("DT_STRSZ overflows")]
    StrszOverflow,
    /// The dynamic string at this offset cannot be read.
    #[error("dynamic string at offset {0}: {1}")]
    DynamicString(u64, StringError),
    /// A string the facts hold is not UTF-8 (`DT_NEEDED`, `PT_INTERP`, ...).
    #[error("{0} is not valid UTF-8")]
    NotUtf8(&'static str),
    /// PT_INTERP cannot be read.
    #[error("PT_INTERP: {0}")]
    Interp(object::Error),
    /// A note section or segment does not parse.
    #[error("note: {0}")]
    Note(object::Error),
    /// A `.note.dlopen` note is malformed.
    #[error(".note.dlopen {0}")]
    DlopenNote(DlopenNoteError),
}

/// What is wrong with a `.note.dlopen` note (the words after its name).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DlopenNoteError {
    /// Its text is not UTF-8.
    #[error("is not UTF-8")]
    NotUtf8,
    /// Its text is not JSON (serde_json's message).
    #[error("JSON: {0}")]
    Json(String),
    /// The JSON is not an array.
    #[error("JSON is not an array")]
    NotArray,
    /// An entry is not an object.
    #[error("entry is not an object")]
    EntryNotObject,
    /// An entry's `soname` array holds a non-string.
    #[error("soname array holds a non-string")]
    SonameNotString,
    /// An entry has no `soname`.
    #[error("entry has no soname array")]
    NoSoname,
}

/// Why one NUL-terminated dynamic string could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StringError {
    /// The reader cannot tell the file's length.
    #[error("cannot get the file's length")]
    NoLength,
    /// The string table ends past the end of the file.
    #[error("its string table runs past the end of the file")]
    PastEof,
    /// The object's strings exceed [`DYNAMIC_STRINGS_BUDGET`].
    #[error("dynamic strings take more than {} MiB to read", DYNAMIC_STRINGS_BUDGET >> 20)]
    OverBudget,
    /// The bytes cannot be read.
    #[error("cannot read it")]
    Unreadable,
    /// Longer than [`MAX_DYNAMIC_STRING`].
    #[error("longer than {} MiB", MAX_DYNAMIC_STRING >> 20)]
    TooLong,
    /// No NUL before the end of the string table.
    #[error("not NUL-terminated before the end of its string table")]
    Unterminated,
}

/// Parse ELF facts from any `ReadRef`.
pub fn parse_facts<'d, R: ReadRef<'d>>(data: R) -> Result<ElfFacts, Malformed> {
    let head = data.read_bytes_at(0, 20).map_err(|_| Malformed::TooShort)?;
    let (ident, _) = read_ident(head).ok_or(Malformed::BadIdent)?;
    match (ident.class, ident.data) {
        (Class::Elf32, _) => parse_with::<elf::FileHeader32<Endianness>, R>(data, ident),
        (Class::Elf64, _) => parse_with::<elf::FileHeader64<Endianness>, R>(data, ident),
    }
}

/// A read-only view of an ELF file's dynamic section, resolved through the
/// program headers. Shared by fact reading and by the editor's checks.
pub struct DynamicView<'d, Elf: FileHeader> {
    /// The file's byte order.
    pub endian: Elf::Endian,
    /// The ELF header.
    pub header: &'d Elf,
    /// The program headers.
    pub segments: &'d [Elf::ProgramHeader],
    /// The PT_DYNAMIC entries up to (not including) the first DT_NULL.
    pub entries: Vec<(i64, u64)>,
    /// File offset and size of the dynamic string table (DT_STRTAB, DT_STRSZ).
    pub strtab: Option<(u64, u64)>,
    /// Bytes [`Self::string`] has read so far, against its budget.
    string_bytes_read: std::cell::Cell<u64>,
}

/// File offset of the `len` bytes at virtual address `addr`, if a PT_LOAD
/// maps them from the file; `loads` are the PT_LOADs' (`p_vaddr`,
/// `p_offset`, `p_filesz`). The one address-to-offset rule of every reader
/// (facts, scanner, editor, layout checks).
///
/// The range may run on into PT_LOADs that continue the segment in both
/// memory and file (patchelf 0.14 gives a non-PIE a first PT_LOAD whose
/// `.dynsym` ends in the next one).
pub fn vaddr_to_offset(
    loads: impl Iterator<Item = (u64, u64, u64)> + Clone,
    addr: u64,
    len: u64,
) -> Option<u64> {
    loads.clone().find_map(|(vaddr, offset, filesz)| {
        let rel = addr.checked_sub(vaddr)?;
        if rel >= filesz && !(len == 0 && rel == filesz) {
            return None;
        }
        let start = offset.checked_add(rel)?;
        let end = addr.checked_add(len)?;
        // Follow contiguous segments until `end` is covered.
        let (mut v, mut o, mut f) = (vaddr, offset, filesz);
        while v.checked_add(f)? < end {
            let (nv, no) = (v + f, o.checked_add(f)?);
            (v, o, f) = loads
                .clone()
                .find(|&(qv, qo, qf)| qv == nv && qo == no && qf > 0)?;
        }
        Some(start)
    })
}

/// The PT_LOADs of `segments` as [`vaddr_to_offset`] takes them.
fn loads_of<Elf: FileHeader>(
    endian: Elf::Endian,
    segments: &[Elf::ProgramHeader],
) -> impl Iterator<Item = (u64, u64, u64)> + Clone + '_ {
    segments
        .iter()
        .filter(move |s| s.p_type(endian) == elf::PT_LOAD)
        .map(move |s| {
            (
                s.p_vaddr(endian).into(),
                s.p_offset(endian).into(),
                s.p_filesz(endian).into(),
            )
        })
}

/// The file's one PT_DYNAMIC, as every reader sees it.
#[derive(Clone, Debug)]
pub struct DynamicSegment {
    /// Index of its program header.
    pub index: usize,
    /// Its file offset.
    pub offset: u64,
    /// Entry slots it provides (`p_filesz` / entry size).
    pub slots: u64,
    /// The entries up to (not including) the first DT_NULL.
    pub entries: Vec<(i64, u64)>,
}

/// The dynamic array through the program headers: the one rule of every
/// reader (facts, scanner, editor). A file with more than one PT_DYNAMIC is
/// refused: ld.so takes the last, tools like readelf the first, so no
/// answer would be right; a PT_DYNAMIC over [`MAX_DYNAMIC_SEGMENT`] too.
pub fn dynamic_segment<'d, Elf: FileHeader<Endian = Endianness>, R: ReadRef<'d>>(
    endian: Endianness,
    segments: &'d [Elf::ProgramHeader],
    data: R,
) -> Result<Option<DynamicSegment>, Malformed> {
    let mut found = None;
    for (index, seg) in segments.iter().enumerate() {
        if seg.p_type(endian) != elf::PT_DYNAMIC {
            continue;
        }
        if found.is_some() {
            return Err(Malformed::SeveralDynamic);
        }
        check_dynamic_size(seg.p_filesz(endian).into())?;
        let dyns = seg
            .dynamic(endian, data)
            .map_err(Malformed::DynamicSegment)?
            .unwrap_or(&[]);
        let entries = dyns
            .iter()
            .map(|d| (d.d_tag(endian).0, d.d_val(endian).into()))
            .take_while(|&(tag, _)| tag != elf::DT_NULL.0)
            .collect();
        found = Some(DynamicSegment {
            index,
            offset: seg.p_offset(endian).into(),
            slots: dyns.len() as u64,
            entries,
        });
    }
    Ok(found)
}

impl<'d, Elf: FileHeader<Endian = Endianness>> DynamicView<'d, Elf> {
    /// Parse the header, program headers and PT_DYNAMIC.
    pub fn parse<R: ReadRef<'d>>(data: R) -> Result<Self, Malformed> {
        let header = Elf::parse(data).map_err(Malformed::Header)?;
        let endian = header.endian().map_err(Malformed::Header)?;
        let segments = header
            .program_headers(endian, data)
            .map_err(Malformed::ProgramHeaders)?;
        let entries = dynamic_segment::<Elf, R>(endian, segments, data)?
            .map(|d| d.entries)
            .unwrap_or_default();
        let get = |t: elf::DynamicTag| entries.iter().find(|(k, _)| *k == t.0).map(|(_, v)| *v);
        let strtab = match (get(elf::DT_STRTAB), get(elf::DT_STRSZ)) {
            (Some(addr), Some(size)) => {
                let off = vaddr_to_offset(loads_of::<Elf>(endian, segments), addr, size)
                    .ok_or(Malformed::StrtabOutsideLoad)?;
                Some((off, size))
            }
            (None, None) => None,
            _ => return Err(Malformed::StrtabHalf),
        };
        Ok(DynamicView {
            endian,
            header,
            segments,
            entries,
            strtab,
            string_bytes_read: std::cell::Cell::new(0),
        })
    }

    /// True when the file has a PT_DYNAMIC segment.
    pub fn has_dynamic(&self) -> bool {
        self.segments
            .iter()
            .any(|s| s.p_type(self.endian) == elf::PT_DYNAMIC)
    }

    /// Values of all entries with this tag, in order.
    pub fn values(&self, tag: elf::DynamicTag) -> impl Iterator<Item = u64> + '_ {
        self.entries
            .iter()
            .filter(move |(k, _)| *k == tag.0)
            .map(|(_, v)| *v)
    }

    /// The NUL-terminated dynamic string at `offset` in DT_STRTAB (see
    /// [`read_string_until`]).
    pub fn string<R: ReadRef<'d>>(&self, data: R, offset: u64) -> Result<&'d [u8], Malformed> {
        let (base, size) = self.strtab.ok_or(Malformed::NoStrtab)?;
        if offset >= size {
            return Err(Malformed::PastStrsz { offset, size });
        }
        let start = base.checked_add(offset).ok_or(Malformed::OffsetOverflow)?;
        let end = base.checked_add(size).ok_or(Malformed::StrszOverflow)?;
        read_string_until(data, start, end, &self.string_bytes_read)
            .map_err(|e| Malformed::DynamicString(offset, e))
    }
}

/// The NUL-terminated string at file offset `start` that must end before
/// `end` (a string table's end), read in growing windows (4 KiB, 64 KiB,
/// then [`MAX_DYNAMIC_STRING`]) rather than with `read_bytes_at_until`, whose
/// `ReadCache` version gives up after 4 KiB: a long RUNPATH is real, and is
/// what `fix` writes in expand mode. Every window read counts against
/// `spent`, which may not pass [`DYNAMIC_STRINGS_BUDGET`]: many entries
/// naming long strings must not make the reads (or the copies made of
/// them) unbounded.
pub fn read_string_until<'d, R: ReadRef<'d>>(
    data: R,
    start: u64,
    end: u64,
    spent: &std::cell::Cell<u64>,
) -> Result<&'d [u8], StringError> {
    let file_len = data.len().map_err(|_| StringError::NoLength)?;
    if end > file_len {
        return Err(StringError::PastEof);
    }
    let room = end.saturating_sub(start);
    let mut window = 0;
    for step in [4 << 10, 64 << 10, MAX_DYNAMIC_STRING + 1] {
        let want = room.min(step);
        if want <= window {
            break;
        }
        window = want;
        let used = spent.get().saturating_add(window);
        if used > DYNAMIC_STRINGS_BUDGET {
            return Err(StringError::OverBudget);
        }
        spent.set(used);
        let bytes = data
            .read_bytes_at(start, window)
            .map_err(|_| StringError::Unreadable)?;
        if let Some(len) = memchr::memchr(0, bytes) {
            return Ok(&bytes[..len]);
        }
    }
    if window > MAX_DYNAMIC_STRING {
        Err(StringError::TooLong)
    } else {
        Err(StringError::Unterminated)
    }
}

/// The largest PT_DYNAMIC read (65536 64-bit entries). Real ones hold a few
/// dozen entries; `object` reads the whole segment (into memory, for a
/// `ReadCache`), so a hostile size must stop here.
pub const MAX_DYNAMIC_SEGMENT: u64 = 1 << 20;

/// Refuse a PT_DYNAMIC of `filesz` bytes over [`MAX_DYNAMIC_SEGMENT`].
pub fn check_dynamic_size(filesz: u64) -> Result<(), Malformed> {
    if filesz > MAX_DYNAMIC_SEGMENT {
        return Err(Malformed::DynamicTooLarge(filesz));
    }
    Ok(())
}

/// The longest dynamic string read. ld.so sets no limit, but no real
/// library name or search path comes near it.
pub const MAX_DYNAMIC_STRING: u64 = 1 << 20;

/// What reading one object's dynamic strings may cost in all (windows read,
/// and so the copies made of them): many entries naming long strings must
/// not add up to unbounded memory.
pub const DYNAMIC_STRINGS_BUDGET: u64 = 64 << 20;

fn utf8(bytes: &[u8], what: &'static str) -> Result<String, Malformed> {
    String::from_utf8(bytes.to_vec()).map_err(|_| Malformed::NotUtf8(what))
}

fn parse_with<'d, Elf, R>(data: R, ident: ElfIdent) -> Result<ElfFacts, Malformed>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'d>,
{
    let view = DynamicView::<Elf>::parse(data)?;
    let endian = view.endian;
    let header = view.header;
    let object_type = object_type(header.e_type(endian).0);

    let mut interpreter = None;
    for seg in view.segments {
        if let Some(interp) = seg.interpreter(endian, data).map_err(Malformed::Interp)? {
            interpreter = Some(utf8(interp, "PT_INTERP")?);
        }
    }

    let string_of = |tag: elf::DynamicTag, name: &'static str| -> Result<Vec<String>, Malformed> {
        view.values(tag)
            .map(|off| utf8(view.string(data, off)?, name))
            .collect()
    };
    let needed = string_of(elf::DT_NEEDED, "DT_NEEDED")?;
    let runpath = string_of(elf::DT_RUNPATH, "DT_RUNPATH")?.into_iter().next();
    let rpath = string_of(elf::DT_RPATH, "DT_RPATH")?.into_iter().next();
    let soname = string_of(elf::DT_SONAME, "DT_SONAME")?.into_iter().next();
    let file_offset = |tag: elf::DynamicTag| {
        let v = view.values(tag).next()?;
        view.strtab.and_then(|(base, _)| base.checked_add(v))
    };
    let nodeflib = view
        .values(elf::DT_FLAGS_1)
        .any(|v| v & elf::DF_1_NODEFLIB.0 != 0);

    let sections = header.section_headers(endian, data).unwrap_or(&[]);
    let has_section_headers = !sections.is_empty();
    let dlopen_notes = read_dlopen_notes::<Elf, R>(endian, data, sections, view.segments)?;
    let (imports_dlopen, imports_dlsym) = imports_dl::<Elf, R>(endian, data, header, sections);

    Ok(ElfFacts {
        ident,
        object_type,
        dynamic: view.has_dynamic(),
        interpreter,
        needed,
        runpath,
        rpath,
        soname,
        nodeflib,
        dlopen_notes,
        imports_dlopen,
        imports_dlsym,
        has_section_headers,
        runpath_offset: file_offset(elf::DT_RUNPATH),
        rpath_offset: file_offset(elf::DT_RPATH),
    })
}

/// systemd's ELF dlopen metadata: owner `FDO`, type 0x407c0c0a.
pub const NT_FDO_DLOPEN_METADATA: u32 = 0x407c_0c0a;

fn read_dlopen_notes<'d, Elf, R>(
    endian: Endianness,
    data: R,
    sections: &'d [Elf::SectionHeader],
    segments: &'d [Elf::ProgramHeader],
) -> Result<Vec<DlopenNote>, Malformed>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'d>,
{
    let mut out = Vec::new();
    if !sections.is_empty() {
        for s in sections {
            if let Ok(Some(notes)) = s.notes(endian, data) {
                out.extend(collect_dlopen(endian, notes)?);
            }
        }
    } else {
        for seg in segments {
            let Ok(Some(notes)) = seg.notes(endian, data) else {
                continue;
            };
            match collect_dlopen(endian, notes) {
                Ok(found) => out.extend(found),
                // One PT_NOTE may mix 8- and 4-aligned notes (mold puts
                // .note.gnu.property and the 4-aligned notes in one
                // segment; readelf warns, ld.so runs it): walk it 4-aligned.
                Err(e) => {
                    let bytes = seg.data(endian, data).map_err(|_| e.clone())?;
                    out.extend(dlopen_notes_4_aligned(endian, bytes).ok_or(e)?);
                }
            }
        }
    }
    Ok(out)
}

fn collect_dlopen<Elf: FileHeader<Endian = Endianness>>(
    endian: Endianness,
    mut notes: NoteIterator<'_, Elf>,
) -> Result<Vec<DlopenNote>, Malformed> {
    let mut out = Vec::new();
    while let Some(note) = notes.next().map_err(Malformed::Note)? {
        if note.name() == b"FDO" && note.n_type(endian).0 == NT_FDO_DLOPEN_METADATA {
            out.extend(parse_dlopen_json(note.desc()).map_err(Malformed::DlopenNote)?);
        }
    }
    Ok(out)
}

/// The dlopen notes of a note segment walked with 4-byte alignment; `None`
/// if the notes do not parse that way either.
fn dlopen_notes_4_aligned(endian: Endianness, mut bytes: &[u8]) -> Option<Vec<DlopenNote>> {
    use object::Endian as _;
    let mut out = Vec::new();
    let word = |b: &[u8], at: usize| Some(endian.read_u32(b.get(at..at + 4)?.try_into().ok()?));
    let pad4 = |n: u32| (n as usize).checked_next_multiple_of(4);
    while !bytes.is_empty() {
        let (namesz, descsz, n_type) = (word(bytes, 0)?, word(bytes, 4)?, word(bytes, 8)?);
        let name_end = 12usize.checked_add(namesz as usize)?;
        let desc_at = 12usize.checked_add(pad4(namesz)?)?;
        let desc_end = desc_at.checked_add(descsz as usize)?;
        let next = desc_at.checked_add(pad4(descsz)?)?.min(bytes.len());
        let name = bytes.get(12..name_end)?;
        let name = name.strip_suffix(&[0]).unwrap_or(name);
        let desc = bytes.get(desc_at..desc_end)?;
        if name == b"FDO" && n_type == NT_FDO_DLOPEN_METADATA {
            out.extend(parse_dlopen_json(desc).ok()?);
        }
        bytes = &bytes[next..];
    }
    Some(out)
}

/// Parse the NUL-terminated JSON array of a dlopen note.
fn parse_dlopen_json(desc: &[u8]) -> Result<Vec<DlopenNote>, DlopenNoteError> {
    let end = desc.iter().position(|&b| b == 0).unwrap_or(desc.len());
    let text = std::str::from_utf8(&desc[..end]).map_err(|_| DlopenNoteError::NotUtf8)?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| DlopenNoteError::Json(e.to_string()))?;
    let arr = value.as_array().ok_or(DlopenNoteError::NotArray)?;
    let field = |o: &serde_json::Map<String, serde_json::Value>, k: &str| {
        o.get(k).and_then(|v| v.as_str()).map(str::to_owned)
    };
    arr.iter()
        .map(|item| {
            let o = item.as_object().ok_or(DlopenNoteError::EntryNotObject)?;
            let soname = match o.get("soname") {
                Some(serde_json::Value::Array(a)) => a
                    .iter()
                    .map(|s| s.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or(DlopenNoteError::SonameNotString)?,
                Some(serde_json::Value::String(s)) => vec![s.clone()],
                _ => return Err(DlopenNoteError::NoSoname),
            };
            Ok(DlopenNote {
                soname,
                feature: field(o, "feature"),
                description: field(o, "description"),
                priority: field(o, "priority"),
            })
        })
        .collect()
}

/// Whether the object imports `dlopen`/`dlmopen`, and `dlsym`.
fn imports_dl<'d, Elf, R>(
    endian: Endianness,
    data: R,
    header: &'d Elf,
    sections: &'d [Elf::SectionHeader],
) -> (bool, bool)
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'d>,
{
    if sections.is_empty() {
        return (false, false);
    }
    let Ok(table) = header.sections(endian, data) else {
        return (false, false);
    };
    let Ok(symbols) = table.symbols(endian, data, elf::SHT_DYNSYM) else {
        return (false, false);
    };
    let (mut open, mut sym) = (false, false);
    for s in symbols.iter().filter(|s| s.is_undefined(endian)) {
        match symbols.symbol_name(endian, s) {
            Ok(b"dlopen" | b"dlmopen") => open = true,
            Ok(b"dlsym") => sym = true,
            _ => {}
        }
    }
    (open, sym)
}

fn readonly_ranges<'d, Elf, R>(data: R) -> Result<Vec<(u64, u64)>, Malformed>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'d>,
{
    let header = Elf::parse(data).map_err(Malformed::Header)?;
    let endian = header.endian().map_err(Malformed::Header)?;
    let sections = header.section_headers(endian, data).unwrap_or(&[]);
    let mut ranges = Vec::new();
    if !sections.is_empty() {
        let table = header
            .sections(endian, data)
            .map_err(Malformed::SectionHeaders)?;
        for s in sections {
            let Ok(name) = table.section_name(endian, s) else {
                continue;
            };
            if (name == b".rodata" || name.starts_with(b".rodata."))
                && s.sh_type(endian) == elf::SHT_PROGBITS
            {
                ranges.push((s.sh_offset(endian).into(), s.sh_size(endian).into()));
            }
        }
    } else {
        // No section headers: scan segments that are loaded read-only.
        let segments = header
            .program_headers(endian, data)
            .map_err(Malformed::ProgramHeaders)?;
        for seg in segments {
            let flags = seg.p_flags(endian).0;
            if seg.p_type(endian) == elf::PT_LOAD && flags & (elf::PF_W.0 | elf::PF_X.0) == 0 {
                ranges.push((seg.p_offset(endian).into(), seg.p_filesz(endian).into()));
            }
        }
    }
    Ok(ranges)
}

fn is_soname_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'.')
}

/// True for `lib<name>.so` optionally followed by `.<digits>` groups.
fn is_soname_like(s: &[u8]) -> bool {
    let Some(rest) = s.strip_prefix(b"lib") else {
        return false;
    };
    let Some(pos) = memchr::memmem::rfind(rest, b".so") else {
        return false;
    };
    if pos == 0 {
        return false;
    }
    let (stem, tail) = (&rest[..pos], &rest[pos + 3..]);
    if !stem.iter().all(|&b| is_soname_byte(b)) {
        return false;
    }
    if tail.is_empty() {
        return true;
    }
    // ".1", ".1.2.3"
    tail.strip_prefix(b".").is_some_and(|v| {
        !v.is_empty()
            && v.split(|&b| b == b'.')
                .all(|g| !g.is_empty() && g.iter().all(u8::is_ascii_digit))
    })
}

/// Collect soname literals from `bytes` that start before `limit`.
fn soname_literals(bytes: &[u8], limit: usize, out: &mut Vec<String>) {
    for start in memchr::memmem::find_iter(bytes, b"lib") {
        if start >= limit {
            break;
        }
        if start > 0 && (is_soname_byte(bytes[start - 1]) || bytes[start - 1] == b'/') {
            continue;
        }
        let end = bytes[start..]
            .iter()
            .position(|&b| !is_soname_byte(b))
            .map_or(bytes.len(), |p| start + p);
        // A literal must end the string (NUL); "libfoo.so.%d" or
        // "libfoo.so is missing" are messages, not names.
        if bytes.get(end) != Some(&0) {
            continue;
        }
        let cand = &bytes[start..end];
        if cand.len() <= 255
            && is_soname_like(cand)
            && let Ok(s) = std::str::from_utf8(cand)
        {
            out.push(s.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_grew_since_its_walk_is_read_whole() {
        let mut data = b"\x7fELF".to_vec();
        data.resize(70_000, 7);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("libgrew.so");
        std::fs::write(&p, &data).unwrap();
        for hint in [Some(100), Some(69_999), Some(70_000), None] {
            let Ok(Sniffed::Elf(b)) = FileBytes::open(&p, hint, Use::All) else {
                panic!("{hint:?}: not read as ELF");
            };
            let Contents::Whole(v) = &b.data else {
                panic!("{hint:?}: not read whole");
            };
            assert_eq!(v, &data, "{hint:?}");
        }
    }

    #[test]
    fn large_file_literals_across_chunk_boundaries() {
        // 20 MiB in 1 MiB chunks: literals inside a chunk, straddling a
        // boundary, starting exactly on one, and in a range not at offset 0.
        let mut data = vec![b'x'; 20 << 20];
        let put = |data: &mut Vec<u8>, at: usize, s: &str| {
            data[at - 1] = 0;
            data[at..at + s.len()].copy_from_slice(s.as_bytes());
            data[at + s.len()] = 0;
        };
        put(&mut data, 100, "libfirst.so.1");
        put(&mut data, (8 << 20) - 5, "libstraddle.so.2");
        put(&mut data, 16 << 20, "libonedge.so");
        put(&mut data, (20 << 20) - 40, "liblast.so.3");
        let f = tempfile::tempfile().unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &data, 0).unwrap();
        let mut got = large_file_literals(&f, &[(0, 20 << 20)]);
        got.sort();
        assert_eq!(
            got,
            [
                "libfirst.so.1",
                "liblast.so.3",
                "libonedge.so",
                "libstraddle.so.2"
            ]
        );
        // A range starting mid-file sees only what lies inside it.
        let got = large_file_literals(&f, &[((8 << 20) - 6, 9 << 20)]);
        assert_eq!(got, ["libstraddle.so.2", "libonedge.so"]);
    }

    #[test]
    fn soname_like_names() {
        for ok in [
            "libfoo.so",
            "libfoo.so.1",
            "libnvrtc-builtins.so.12.4",
            "libc++.so.1",
        ] {
            assert!(is_soname_like(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "libfoo",
            "lib.so",
            "libfoo.so.",
            "libfoo.so.x",
            "libfoo.sox",
            "foo.so",
        ] {
            assert!(!is_soname_like(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn literals_need_nul_and_no_slash() {
        let data = b"\0libcudnn.so.9\0/usr/lib/libbad.so.1\0libfmt.so.%d\0xlibno.so\0libyes.so\0";
        let mut out = Vec::new();
        soname_literals(data, data.len(), &mut out);
        assert_eq!(out, vec!["libcudnn.so.9", "libyes.so"]);
    }

    #[test]
    fn dlopen_json() {
        let desc = br#"[{"feature":"gpu","description":"GPU","priority":"recommended","soname":["libcuda.so.1","libcuda.so"]}]"#;
        let mut bytes = desc.to_vec();
        bytes.push(0);
        bytes.extend([0, 0]);
        let n = parse_dlopen_json(&bytes).unwrap();
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].soname, vec!["libcuda.so.1", "libcuda.so"]);
        assert_eq!(n[0].feature.as_deref(), Some("gpu"));
        assert!(parse_dlopen_json(b"{}\0").is_err());
        assert!(parse_dlopen_json(b"[1]\0").is_err());
    }

    #[test]
    fn sniffing() {
        assert_eq!(sniff(b"\x7fELF\x02\x01"), FileKind::Elf);
        assert_eq!(sniff(b"!<arch>\nxx"), FileKind::Archive);
        assert_eq!(sniff(b"#!/bin/sh"), FileKind::Script);
        assert_eq!(sniff(b"/* GNU ld script"), FileKind::Other);
        assert_eq!(sniff(b""), FileKind::Other);
    }

    #[test]
    fn truncated_and_garbage_never_panic() {
        let mut buf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0\x3e\0".to_vec();
        assert!(parse_facts(&buf[..]).is_err());
        buf.resize(64, 0xff);
        assert!(parse_facts(&buf[..]).is_err());
        assert!(parse_facts(&b"\x7fEL"[..]).is_err());
    }

    #[test]
    fn reads_this_test_binary() {
        let exe = std::env::current_exe().unwrap();
        let f = read_facts(&exe).unwrap();
        assert!(f.dynamic);
        assert!(f.needed.iter().any(|n| n.starts_with("libc.so")));
    }

    /// A library built by gcc with a RUNPATH of `len` bytes; its bytes.
    fn lib_with_runpath(dir: &Path, len: usize) -> (PathBuf, String) {
        let rp: String = (0..)
            .map(|i| format!("/nonexistent/dir-{i:04}:"))
            .flat_map(|s| s.chars().collect::<Vec<_>>())
            .take(len)
            .collect::<String>()
            .trim_end_matches(':')
            .to_owned();
        let c = dir.join("l.c");
        std::fs::write(&c, "int f(void) { return 1; }\n").unwrap();
        let out = dir.join("libl.so.1");
        let st = std::process::Command::new("gcc")
            .args([
                "-shared",
                "-fPIC",
                "-Wl,-soname,libl.so.1",
                "-Wl,--enable-new-dtags",
            ])
            .arg(format!("-Wl,-rpath,{rp}"))
            .arg("-o")
            .arg(&out)
            .arg(&c)
            .status()
            .expect("gcc is required for this test");
        assert!(st.success());
        (out, rp)
    }

    /// A RUNPATH longer than `ReadCache` reads a string (4 KiB) is read the
    /// same whole and range by range.
    #[test]
    fn long_runpath_reads_the_same_whole_and_by_range() {
        let d = tempfile::tempdir().unwrap();
        let (lib, rp) = lib_with_runpath(d.path(), 9000);
        let whole = std::fs::read(&lib).unwrap();
        let a = parse_facts(&whole[..]).unwrap();
        let f = File::open(&lib).unwrap();
        let b = parse_facts(&ReadCache::new(&f)).unwrap();
        assert_eq!(a.runpath.as_deref(), Some(rp.as_str()));
        assert_eq!(a.soname.as_deref(), Some("libl.so.1"));
        assert_eq!(
            (a.runpath, a.soname, a.needed),
            (b.runpath, b.soname, b.needed)
        );
    }

    /// Strings over 1 MiB, strings with no NUL, and reads past the budget
    /// are errors, not unbounded reads.
    #[test]
    fn dynamic_strings_are_bounded() {
        type H = elf::FileHeader64<Endianness>;
        let d = tempfile::tempdir().unwrap();
        let (lib, _) = lib_with_runpath(d.path(), 5000);
        let mut data = std::fs::read(&lib).unwrap();
        let base = data.len() as u64;
        let big = MAX_DYNAMIC_STRING as usize;
        // At `base`: exactly 1 MiB and its NUL; then 1 MiB + 1 with none.
        data.resize(data.len() + big, b'x');
        data.push(0);
        data.resize(data.len() + big + 1, b'y');
        let view = DynamicView::<H>::parse(&data[..]).unwrap();
        let view = DynamicView {
            strtab: Some((base, data.len() as u64 - base)),
            ..view
        };
        assert_eq!(view.string(&data[..], 0).unwrap().len(), big);
        let e = view.string(&data[..], big as u64 + 1).unwrap_err();
        assert_eq!(
            e,
            Malformed::DynamicString(big as u64 + 1, StringError::TooLong)
        );
        assert!(e.to_string().ends_with("longer than 1 MiB"), "{e}");
        // Unterminated: the table ends before a NUL.
        let short = DynamicView::<H>::parse(&data[..]).unwrap();
        let short = DynamicView {
            strtab: Some((base, 100)),
            ..short
        };
        let e = short.string(&data[..], 0).unwrap_err();
        assert_eq!(e, Malformed::DynamicString(0, StringError::Unterminated));
        // A table past the end of the file.
        let past = DynamicView::<H>::parse(&data[..]).unwrap();
        let past = DynamicView {
            strtab: Some((base, data.len() as u64)),
            ..past
        };
        let e = past.string(&data[..], 0).unwrap_err();
        assert_eq!(e, Malformed::DynamicString(0, StringError::PastEof));
        // The same long string asked for again and again runs out the budget.
        let again = DynamicView::<H>::parse(&data[..]).unwrap();
        let again = DynamicView {
            strtab: Some((base, data.len() as u64 - base)),
            ..again
        };
        let calls = (0..100)
            .position(|_| again.string(&data[..], 0).is_err())
            .expect("the budget ran out");
        // Each call reads 4 KiB, 64 KiB, then 1 MiB + 1.
        let per_call = (4 << 10) + (64 << 10) + big as u64 + 1;
        assert_eq!(calls as u64, DYNAMIC_STRINGS_BUDGET / per_call);
    }
}

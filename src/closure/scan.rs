//! The reference scanner, compatible with Nix's.
//!
//! Nix serialises a store path as a NAR and looks for the 32-character hash
//! parts of a set of candidate store paths anywhere in that byte stream. In
//! practice the hashes live in regular file contents, symlink targets and
//! (rarely) directory entry names, and those are what this module scans. Like
//! Nix it matches hash parts only, not the store dir prefix.
//!
//! Two entry points:
//! - [`Scanner::references`]: the set of candidate hashes found (what Nix
//!   would register as references). Fast path, no attribution.
//! - [`Scanner::hits`]: every occurrence with file, byte offset and context:
//!   for ELF files the section and its meaning (DT_RUNPATH entry k, DT_NEEDED,
//!   interpreter, `.rodata`, `.note.*`, debug info, stale `.dynstr` bytes), for
//!   text files the line, for symlinks the target.
//!
//! Files are read in chunks with an overlap (never whole into memory, never
//! mmapped: a file truncated under us must not SIGBUS), and scanned in parallel
//! with rayon. The inner loop is Nix's skip loop: look at the last byte of the
//! 32-byte window first; if it is not base32, no window containing it can
//! match, so jump past it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::elf::DynamicView;
use crate::store::{HASH_LEN, StoreDir, StorePath, is_base32};
use crate::walk::{Entry, EntryKind, NarWalkError, walk_nar};

/// The hash part of a store path, as bytes.
pub type Hash = [u8; HASH_LEN];

/// Size of one read. Large enough that syscall overhead is noise.
const CHUNK: usize = 1 << 20;
/// How many bytes around a hit are kept as context, each side.
const CONTEXT_BYTES: usize = 80;

/// A hasher for hash parts: they are already uniformly random base32, so the
/// first 8 bytes are a fine hash. (SipHash on every candidate window in a long
/// base32 run would dominate the scan.)
#[derive(Default)]
pub struct HashPartHasher(u64);

impl Hasher for HashPartHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut w = [0u8; 8];
        let n = bytes.len().min(8);
        w[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(17) ^ u64::from_le_bytes(w).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_usize(&mut self, _: usize) {}
}

/// A set of hash parts.
pub type HashSetFast = HashSet<Hash, BuildHasherDefault<HashPartHasher>>;

/// Parse a 32-character hash part.
pub fn hash_of(s: &str) -> Option<Hash> {
    let b: Hash = s.as_bytes().try_into().ok()?;
    b.iter().all(|&c| is_base32(c)).then_some(b)
}

/// A hash part as a string (always ASCII).
fn hash_str(h: &Hash) -> &str {
    std::str::from_utf8(h).unwrap_or("?")
}

/// Which hashes count as references.
#[derive(Clone, Debug)]
pub enum Candidates {
    /// Exactly these hash parts (all valid paths, the build's inputs, ...).
    Hashes(HashSetFast),
    /// The hash part of anything that looks like `<storedir>/<32 base32>-`.
    AnyStorePath,
}

impl Candidates {
    /// The hash parts of the given store paths.
    pub fn of_paths<'a>(paths: impl IntoIterator<Item = &'a StorePath>) -> Self {
        Candidates::Hashes(paths.into_iter().filter_map(|p| hash_of(&p.hash)).collect())
    }
}

/// An I/O or format problem with one file; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    // The io::Error is deliberately not a `#[source]`: the message already
    // includes it, and `{:#}` chains would print it twice.
    /// The file could not be read (or its entry `lstat`ed, listed).
    #[error("{}: {err}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The failed call's error.
        err: io::Error,
    },
    /// A FIFO, socket or device in a store path: a NAR cannot hold it.
    #[error("{}: unsupported file type (not a regular file, directory or symlink)", path.display())]
    Unsupported {
        /// The entry.
        path: PathBuf,
    },
}

impl From<crate::store::PathIoError> for ScanError {
    fn from(e: crate::store::PathIoError) -> Self {
        ScanError::Io {
            path: e.path,
            err: e.err,
        }
    }
}

impl From<NarWalkError> for ScanError {
    fn from(e: NarWalkError) -> Self {
        match e {
            NarWalkError::Io { path, err } => ScanError::Io { path, err },
            NarWalkError::Unsupported { path } => ScanError::Unsupported { path },
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ScanError + '_ {
    move |source| ScanError::Io {
        path: path.to_owned(),
        err: source,
    }
}

/// What a hit in an ELF file means.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum ElfMeaning {
    /// Entry `entry` (0-based) of DT_RUNPATH.
    Runpath {
        /// Which `:`-separated entry.
        entry: usize,
    },
    /// Entry `entry` (0-based) of DT_RPATH.
    Rpath {
        /// Which `:`-separated entry.
        entry: usize,
    },
    /// A DT_NEEDED name.
    Needed,
    /// The DT_SONAME.
    Soname,
    /// Another string-valued dynamic tag (DT_AUXILIARY, DT_FILTER, ...).
    DynamicString {
        /// The entry's tag.
        tag: i64,
    },
    /// The PT_INTERP program interpreter.
    Interpreter,
    /// Bytes of the dynamic string table that no dynamic entry uses any more
    /// (a stale RUNPATH left behind, a shared tail).
    UnreferencedDynstr,
    /// A string in read-only data (`.rodata*`).
    Rodata,
    /// A note section (`.note.*`, e.g. `.note.nixos.ldcache`).
    Note,
    /// Debug info (`.debug_*`, `.zdebug_*`).
    DebugInfo,
    /// Some other section.
    Section,
    /// Outside every section (or the file has no section headers).
    NoSection,
}

/// Where a hit is and what it means.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Context {
    /// In the target of a symlink.
    SymlinkTarget {
        /// The link's target.
        target: String,
    },
    /// In the name of a directory entry (part of the NAR too).
    EntryName {
        /// The name.
        name: String,
    },
    /// In an ELF file: section name, meaning, and the string around the hit
    /// (for RUNPATH/RPATH the single entry, for DT_NEEDED the name).
    Elf {
        /// The smallest section holding the hit; `None` outside every one.
        section: Option<String>,
        /// What the bytes are for.
        #[serde(flatten)]
        meaning: ElfMeaning,
        /// The string around the hit.
        text: String,
    },
    /// In a text file: 1-based line and the text around the hit.
    Text {
        /// 1-based line number.
        line: u64,
        /// The text around the hit.
        text: String,
    },
    /// In another binary file: the printable bytes around the hit.
    Binary {
        /// The printable bytes around the hit.
        text: String,
    },
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Context::SymlinkTarget { target } => write!(f, "symlink -> {target}"),
            Context::EntryName { name } => write!(f, "entry name {name}"),
            Context::Text { line, text } => write!(f, "line {line}: {text}"),
            Context::Binary { text } => write!(f, "binary: {text}"),
            Context::Elf {
                section,
                meaning,
                text,
            } => {
                let sec = section.as_deref().unwrap_or("no section");
                match meaning {
                    ElfMeaning::Runpath { entry } => write!(f, "DT_RUNPATH entry {entry}: {text}"),
                    ElfMeaning::Rpath { entry } => write!(f, "DT_RPATH entry {entry}: {text}"),
                    ElfMeaning::Needed => write!(f, "DT_NEEDED: {text}"),
                    ElfMeaning::Soname => write!(f, "DT_SONAME: {text}"),
                    ElfMeaning::DynamicString { tag } => write!(f, "dynamic tag {tag:#x}: {text}"),
                    ElfMeaning::Interpreter => write!(f, "interpreter: {text}"),
                    ElfMeaning::UnreferencedDynstr => {
                        write!(f, "{sec} (unreferenced, stale string): {text}")
                    }
                    ElfMeaning::Rodata => write!(f, "{sec} string: {text}"),
                    ElfMeaning::Note => write!(f, "note {sec}: {text}"),
                    ElfMeaning::DebugInfo => write!(f, "debug info {sec}: {text}"),
                    ElfMeaning::Section => write!(f, "section {sec}: {text}"),
                    ElfMeaning::NoSection => write!(f, "outside any section: {text}"),
                }
            }
        }
    }
}

/// One occurrence of a candidate hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hit {
    /// The hash part found.
    #[serde(serialize_with = "ser_hash")]
    pub hash: Hash,
    /// The file (or symlink, or directory for entry names) it was found in.
    pub file: PathBuf,
    /// Byte offset of the hash in the file contents / symlink target / name.
    pub offset: u64,
    /// Where it is and what it means.
    pub context: Context,
}

fn ser_hash<S: serde::Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(hash_str(h))
}

// ---------------------------------------------------------------------------
// The matcher: pure byte-buffer scanning.

static BASE32: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = is_base32(i as u8);
        i += 1;
    }
    t
};

/// Calls `f(i)` for every `i` such that `buf[i..i + 32]` is all base32.
/// Nix's skip loop, with one refinement: after a match at `i`, the window at
/// `i + 1` only needs its last byte checked.
#[inline]
pub fn for_each_base32_window(buf: &[u8], mut f: impl FnMut(usize)) {
    let n = buf.len();
    let mut i = 0usize;
    'outer: while i + HASH_LEN <= n {
        let w = &buf[i..i + HASH_LEN];
        let mut j = HASH_LEN;
        while j > 0 {
            j -= 1;
            if !BASE32[w[j] as usize] {
                i += j + 1;
                continue 'outer;
            }
        }
        f(i);
        // Slide while the next byte extends the run.
        while i + HASH_LEN < n {
            if BASE32[buf[i + HASH_LEN] as usize] {
                i += 1;
                f(i);
            } else {
                i += HASH_LEN + 1;
                continue 'outer;
            }
        }
        break;
    }
}

/// Every window of `buf` that is one of `cands`, with its offset: the
/// matcher of the scanner, for callers that hold bytes rather than files
/// (the cost model's predicted edits).
#[inline]
pub(crate) fn find_candidates(buf: &[u8], cands: &HashSetFast, mut f: impl FnMut(usize, &Hash)) {
    for_each_base32_window(buf, |i| {
        let h: &Hash = buf[i..i + HASH_LEN].try_into().expect("window");
        if cands.contains(h) {
            f(i, h);
        }
    });
}

enum Matcher {
    Hashes(HashSetFast),
    Prefix {
        finder: Box<memchr::memmem::Finder<'static>>,
        len: usize,
    },
}

impl Matcher {
    fn new(store_dir: &StoreDir, c: Candidates) -> Self {
        match c {
            Candidates::Hashes(h) => Matcher::Hashes(h),
            Candidates::AnyStorePath => {
                let mut p = store_dir.path().as_os_str().as_bytes().to_vec();
                p.push(b'/');
                let len = p.len();
                Matcher::Prefix {
                    finder: Box::new(memchr::memmem::Finder::new(&p).into_owned()),
                    len,
                }
            }
        }
    }

    /// Bytes of look-ahead a match needs beyond its start.
    fn window(&self) -> usize {
        match self {
            Matcher::Hashes(_) => HASH_LEN,
            Matcher::Prefix { len, .. } => len + HASH_LEN + 1,
        }
    }

    /// Calls `f(pos_of_hash, hash)` for each match whose window ends after
    /// `min_end` (matches ending earlier were reported with the previous
    /// chunk). A prefix match needs its trailing dash in `buf`, at the end of
    /// the stream too.
    fn find(&self, buf: &[u8], min_end: usize, mut f: impl FnMut(usize, &Hash)) {
        match self {
            Matcher::Hashes(set) => {
                if set.is_empty() {
                    return;
                }
                find_candidates(buf, set, |i, h| {
                    if i + HASH_LEN > min_end {
                        f(i, h);
                    }
                });
            }
            Matcher::Prefix { finder, len } => {
                for p in finder.find_iter(buf) {
                    let hs = p + len;
                    let end = hs + HASH_LEN + 1;
                    if end <= min_end || end > buf.len() {
                        continue;
                    }
                    let h: &Hash = buf[hs..hs + HASH_LEN].try_into().expect("window");
                    if buf[hs + HASH_LEN] == b'-' && h.iter().all(|&b| BASE32[b as usize]) {
                        f(hs, h);
                    }
                }
            }
        }
    }
}

/// Scan an in-memory byte string (a symlink target, a name): (offset, hash).
fn scan_bytes(m: &Matcher, buf: &[u8]) -> Vec<(usize, Hash)> {
    let mut out = Vec::new();
    m.find(buf, 0, |i, h| out.push((i, *h)));
    out
}

/// The printable text around `buf[at..at + len]`, bounded; stops at NUL and,
/// for text, at newlines.
fn snippet(buf: &[u8], at: usize, len: usize, stop_nl: bool) -> String {
    let ok = |b: u8| (0x20..0x7f).contains(&b) || (b == b'\t') || (!stop_nl && b == b'\n');
    let mut s = at;
    while s > 0 && at - s < CONTEXT_BYTES && ok(buf[s - 1]) {
        s -= 1;
    }
    let mut e = (at + len).min(buf.len());
    while e < buf.len() && e - at - len < CONTEXT_BYTES && ok(buf[e]) {
        e += 1;
    }
    String::from_utf8_lossy(&buf[s..e]).replace('\n', "\\n")
}

struct RawHit {
    offset: u64,
    hash: Hash,
    line: u64,
    text: String,
}

#[derive(Default)]
struct StreamInfo {
    is_elf: bool,
    is_text: bool,
}

/// Stream a reader through the matcher in chunks with overlap. With
/// `context`, also record line numbers (text files) and snippets.
fn scan_stream(
    m: &Matcher,
    mut r: impl Read,
    size_hint: u64,
    context: bool,
    mut on_hit: impl FnMut(RawHit),
) -> io::Result<StreamInfo> {
    let overlap = m.window() - 1;
    // +1 so that EOF is seen without a second round. The buffer is one of
    // the process's shared read buffers (one budget for all workers, kept
    // between files: no page is cleared again).
    let cap = (size_hint.saturating_add(1) as usize).clamp(overlap + 1, CHUNK) + overlap;
    let mut lease = crate::elf::buffers::READ_POOL.take(cap);
    let buf = &mut lease[..cap];
    let mut carry = 0usize; // bytes at buf[..carry] kept from the previous chunk
    let mut base: u64 = 0; // file offset of buf[0]
    let mut lines_before: u64 = 0; // newlines in the file before buf[0]
    let mut info = StreamInfo::default();
    let mut first = true;
    loop {
        // Fill the rest of the buffer (short reads are fine; loop until EOF or full).
        let filled = carry + crate::elf::read_full(&mut r, &mut buf[carry..])?;
        let eof = filled < buf.len();
        let data = &buf[..filled];
        if first {
            first = false;
            info.is_elf = data.starts_with(b"\x7fELF");
            info.is_text =
                !info.is_elf && memchr::memchr(0, &data[..data.len().min(8192)]).is_none();
        }
        // Newlines are counted lazily, only when a hit needs its line.
        let mut counted_to = 0usize;
        let mut lines_in = 0u64;
        m.find(data, carry, |i, h| {
            let mut hit = RawHit {
                offset: base + i as u64,
                hash: *h,
                line: 0,
                text: String::new(),
            };
            if context {
                if info.is_text {
                    lines_in += memchr::memchr_iter(b'\n', &data[counted_to..i]).count() as u64;
                    counted_to = i;
                    hit.line = lines_before + lines_in + 1;
                }
                hit.text = snippet(data, i, HASH_LEN, info.is_text);
            }
            on_hit(hit);
        });
        if eof || filled <= overlap {
            return Ok(info);
        }
        let keep_from = filled - overlap;
        if context && info.is_text {
            lines_before += memchr::memchr_iter(b'\n', &data[..keep_from]).count() as u64;
        }
        buf.copy_within(keep_from..filled, 0);
        carry = overlap;
        base += keep_from as u64;
    }
}

// ---------------------------------------------------------------------------
// The scanner.

/// A reference scanner over a candidate set.
pub struct Scanner {
    matcher: Matcher,
}

impl Scanner {
    /// A scanner for `candidates` in a store under `store_dir`.
    pub fn new(store_dir: &StoreDir, candidates: Candidates) -> Self {
        Scanner {
            matcher: Matcher::new(store_dir, candidates),
        }
    }

    /// The candidate hashes that occur anywhere under `root` (file contents,
    /// symlink targets, entry names): Nix's notion of references.
    pub fn references(&self, root: &Path) -> Result<BTreeSet<Hash>, ScanError> {
        let entries = walk_nar(root)?;
        self.references_of(&entries)
    }

    /// [`Self::references`] over an already walked tree.
    pub fn references_of(&self, entries: &[Entry]) -> Result<BTreeSet<Hash>, ScanError> {
        let mut found = BTreeSet::new();
        for e in entries {
            for (_, h) in self.scan_meta(e) {
                found.insert(h);
            }
        }
        let files: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.kind == EntryKind::File && e.size >= HASH_LEN as u64)
            .collect();
        let per_file: Vec<HashSetFast> = files
            .par_iter()
            .map(|e| self.file_references(&e.path, e.size))
            .collect::<Result<_, ScanError>>()?;
        for s in per_file {
            found.extend(s);
        }
        Ok(found)
    }

    /// The candidate hashes in the contents of the regular file `path` of
    /// `size` bytes (its walked or `lstat` size; what is read is bounded by
    /// it).
    pub fn file_references(&self, path: &Path, size: u64) -> Result<HashSetFast, ScanError> {
        let mut set = HashSetFast::default();
        if size < HASH_LEN as u64 {
            return Ok(set);
        }
        // No atime update: scanning is reading, not using.
        let f = crate::elf::open_for_reading(path).map_err(io_err(path))?;
        scan_stream(&self.matcher, f, size, false, |h| {
            set.insert(h.hash);
        })
        .map_err(io_err(path))?;
        Ok(set)
    }

    /// Hits in the entry name and symlink target of one entry.
    fn scan_meta(&self, e: &Entry) -> Vec<(Option<Context>, Hash)> {
        let mut out = Vec::new();
        if let Some(name) = &e.name {
            for (_, h) in scan_bytes(&self.matcher, name.as_bytes()) {
                out.push((
                    Some(Context::EntryName {
                        name: name.to_string_lossy().into_owned(),
                    }),
                    h,
                ));
            }
        }
        if let Some(target) = &e.link_target {
            for (_, h) in scan_bytes(&self.matcher, target.as_bytes()) {
                out.push((
                    Some(Context::SymlinkTarget {
                        target: target.to_string_lossy().into_owned(),
                    }),
                    h,
                ));
            }
        }
        out
    }

    /// Every occurrence of a candidate hash under `root`, attributed, sorted
    /// by file and offset.
    pub fn hits(&self, root: &Path) -> Result<Vec<Hit>, ScanError> {
        self.hits_reusing(root, None)
    }

    /// [`Self::hits`], taking a file's hits from `earlier` where an earlier
    /// scan read it looking for all of this scanner's candidates (and more):
    /// the file is not read again.
    pub fn hits_reusing(
        &self,
        root: &Path,
        earlier: Option<&ScannedFiles>,
    ) -> Result<Vec<Hit>, ScanError> {
        self.entry_hits(&walk_nar(root)?, earlier)
    }

    /// [`Self::hits_reusing`] over the entries of a store path its caller
    /// has already walked ([`walk_nar`]).
    pub fn entry_hits(
        &self,
        entries: &[Entry],
        earlier: Option<&ScannedFiles>,
    ) -> Result<Vec<Hit>, ScanError> {
        let mut hits = Vec::new();
        for e in entries {
            if let Some(name) = &e.name {
                for (off, h) in scan_bytes(&self.matcher, name.as_bytes()) {
                    hits.push(Hit {
                        hash: h,
                        // The name lives in the parent directory's listing.
                        file: e.path.clone(),
                        offset: off as u64,
                        context: Context::EntryName {
                            name: name.to_string_lossy().into_owned(),
                        },
                    });
                }
            }
            if let Some(target) = &e.link_target {
                for (off, h) in scan_bytes(&self.matcher, target.as_bytes()) {
                    hits.push(Hit {
                        hash: h,
                        file: e.path.clone(),
                        offset: off as u64,
                        context: Context::SymlinkTarget {
                            target: target.to_string_lossy().into_owned(),
                        },
                    });
                }
            }
        }
        let files: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .collect();
        let earlier = match (&self.matcher, earlier) {
            (Matcher::Hashes(cands), Some(s)) if s.covers(cands) => Some((s, cands)),
            _ => None,
        };
        let per_file: Vec<Vec<Hit>> = files
            .par_iter()
            .map(|e| match earlier.and_then(|(s, c)| s.get(&e.path, c)) {
                Some(hits) => Ok(hits),
                None => self.file_hits(&e.path),
            })
            .collect::<Result<_, ScanError>>()?;
        hits.extend(per_file.into_iter().flatten());
        hits.sort_by(|a, b| a.file.cmp(&b.file).then(a.offset.cmp(&b.offset)));
        Ok(hits)
    }

    /// Attributed hits in one regular file.
    pub fn file_hits(&self, path: &Path) -> Result<Vec<Hit>, ScanError> {
        Ok(self.file_hits_of(path)?.0)
    }

    /// Attributed hits in one regular file, and the (device, inode) of the
    /// file read (for [`ScannedFiles`]: the very file, not what the path
    /// names afterwards).
    pub(crate) fn file_hits_of(&self, path: &Path) -> Result<(Vec<Hit>, (u64, u64)), ScanError> {
        use std::os::unix::fs::MetadataExt;
        let f = crate::elf::open_for_reading(path).map_err(io_err(path))?;
        let meta = f.metadata().map_err(io_err(path))?;
        let (size, id) = (meta.len(), (meta.dev(), meta.ino()));
        let mut raw = Vec::new();
        let info =
            scan_stream(&self.matcher, f, size, true, |h| raw.push(h)).map_err(io_err(path))?;
        if raw.is_empty() {
            return Ok((Vec::new(), id));
        }
        let elf = if info.is_elf {
            let offsets: Vec<u64> = raw.iter().map(|h| h.offset).collect();
            let f = crate::elf::open_for_reading(path).map_err(io_err(path))?;
            elf_attribution(f, &offsets)
        } else {
            None
        };
        let hits = raw
            .into_iter()
            .enumerate()
            .map(|(k, r)| {
                let context = match &elf {
                    Some(attr) => {
                        let (section, meaning, text) = attr[k].clone();
                        Context::Elf {
                            section,
                            meaning,
                            text: text.unwrap_or(r.text),
                        }
                    }
                    None if info.is_text => Context::Text {
                        line: r.line,
                        text: r.text,
                    },
                    None => Context::Binary { text: r.text },
                };
                Hit {
                    hash: r.hash,
                    file: path.to_owned(),
                    offset: r.offset,
                    context,
                }
            })
            .collect();
        Ok((hits, id))
    }
}

/// The files one scan read (in order, with their attributed hits) and the
/// candidates it looked for. A later scan for a subset of those candidates
/// (`check`'s closure cost after its findings) takes a file's hits from
/// here instead of reading the file again: the matcher reports every
/// window that is a candidate, so a subset's hits are a filter of these.
#[derive(Debug, Default)]
pub struct ScannedFiles {
    cands: HashSetFast,
    files: Vec<Vec<Hit>>,
    /// (device, inode) of each file read, to its place in `files`.
    by_inode: HashMap<(u64, u64), usize>,
}

impl ScannedFiles {
    /// An empty record for a scan looking for `cands`.
    pub fn new(cands: HashSetFast) -> Self {
        ScannedFiles {
            cands,
            ..Default::default()
        }
    }

    /// Record the hits of one file read whole without error, by the
    /// (device, inode) of the file read.
    pub fn insert(&mut self, id: (u64, u64), hits: Vec<Hit>) {
        self.by_inode.insert(id, self.files.len());
        self.files.push(hits);
    }

    /// Every hit recorded, file by file in the order they were recorded.
    pub fn hits(&self) -> impl Iterator<Item = &Hit> {
        self.files.iter().flatten()
    }

    /// Whether this scan looked for every one of `cands`.
    fn covers(&self, cands: &HashSetFast) -> bool {
        cands.iter().all(|h| self.cands.contains(h))
    }

    /// The hits of `cands` in the file at `path` (another name of a file
    /// recorded counts), named by `path`; `None` if it was not read.
    fn get(&self, path: &Path, cands: &HashSetFast) -> Option<Vec<Hit>> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(path).ok()?;
        let i = *self.by_inode.get(&(m.dev(), m.ino()))?;
        Some(
            self.files[i]
                .iter()
                .filter(|h| cands.contains(&h.hash))
                .map(|h| Hit {
                    file: path.to_owned(),
                    ..h.clone()
                })
                .collect(),
        )
    }
}

// ---------------------------------------------------------------------------
// ELF attribution.

type Attribution = (Option<String>, ElfMeaning, Option<String>);

/// Attribute file offsets in an ELF file. `None` when the file does not parse
/// as ELF (the caller falls back to binary context). Reads only the headers,
/// the dynamic section and its strings, through a read cache, with the
/// `elf` module's reader and bounds: the dynamic entries are PT_DYNAMIC's (as
/// ld.so reads them), their strings DT_STRTAB's, each read within
/// [`crate::elf::MAX_DYNAMIC_STRING`] and all within the dynamic strings
/// budget.
fn elf_attribution(f: File, offsets: &[u64]) -> Option<Vec<Attribution>> {
    use object::elf::{FileHeader32, FileHeader64};
    use object::read::ReadCache;
    let cache = ReadCache::new(f);
    let head = object::ReadRef::read_bytes_at(&cache, 0, 20).ok()?;
    match crate::elf::read_ident(head)?.0.class {
        crate::elf::Class::Elf64 => attribute::<FileHeader64<object::Endianness>>(&cache, offsets),
        crate::elf::Class::Elf32 => attribute::<FileHeader32<object::Endianness>>(&cache, offsets),
    }
}

/// A string named by a dynamic entry: where it starts in the file, its bytes
/// (without the NUL) and the entry's tag.
struct DynString {
    start: u64,
    bytes: Vec<u8>,
    tag: i64,
}

/// The strings the dynamic entries name (DT_NEEDED, DT_RUNPATH, ... as
/// `object` lists them), RUNPATH/RPATH first: when strings share bytes (a
/// tail merged into another), the search path is what the hit means.
fn dynamic_strings<'d, Elf, R>(view: &DynamicView<'d, Elf>, data: R) -> Vec<DynString>
where
    Elf: object::read::elf::FileHeader<Endian = object::Endianness>,
    R: object::ReadRef<'d>,
{
    use object::elf;
    let Some((base, _)) = view.strtab else {
        return Vec::new();
    };
    let mut out: Vec<DynString> = view
        .entries
        .iter()
        .filter(|&&(tag, val)| {
            let tag = elf::DynamicTag(tag);
            object::read::elf::Dynamic { tag, val }.is_string()
        })
        .filter_map(|&(tag, val)| {
            let bytes = view.string(data, val).ok()?;
            Some(DynString {
                start: base.checked_add(val)?,
                bytes: bytes.to_vec(),
                tag,
            })
        })
        .collect();
    out.sort_by_key(|d| match d.tag {
        t if t == elf::DT_RUNPATH.0 => 0,
        t if t == elf::DT_RPATH.0 => 1,
        t if t == elf::DT_NEEDED.0 => 2,
        _ => 3,
    });
    out
}

/// What attribution needs of an ELF file: its sections' file ranges and
/// names, the dynamic entries' strings, the string table's range and the
/// interpreter.
struct ElfLayout {
    secs: Vec<(u64, u64, String)>,
    dstrings: Vec<DynString>,
    strtab: Option<(u64, u64)>,
    interp: Option<(u64, u64, String)>,
}

fn attribute<Elf: object::read::elf::FileHeader<Endian = object::Endianness>>(
    cache: &object::read::ReadCache<File>,
    offsets: &[u64],
) -> Option<Vec<Attribution>> {
    let layout = ElfLayout::read::<Elf>(cache)?;
    Some(offsets.iter().map(|&off| layout.attribute(off)).collect())
}

impl ElfLayout {
    fn read<Elf: object::read::elf::FileHeader<Endian = object::Endianness>>(
        data: &object::read::ReadCache<File>,
    ) -> Option<ElfLayout> {
        use object::elf;
        use object::read::elf::{ProgramHeader, SectionHeader};
        let header = Elf::parse(data).ok()?;
        let endian = header.endian().ok()?;
        let sections = header.sections(endian, data).ok()?;
        let phdrs = header.program_headers(endian, data).unwrap_or(&[]);
        let mut secs: Vec<(u64, u64, String)> = Vec::new();
        for s in sections.iter() {
            if s.sh_type(endian) == elf::SHT_NOBITS {
                continue;
            }
            let (off, size) = (s.sh_offset(endian).into(), s.sh_size(endian).into());
            if size == 0 {
                continue;
            }
            let name = sections
                .section_name(endian, s)
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_default();
            secs.push((off, size, name));
        }
        // A dynamic section the loader would reject attributes nothing to it.
        let view = DynamicView::<Elf>::parse(data).ok();
        let interp = phdrs
            .iter()
            .find(|p| p.p_type(endian) == elf::PT_INTERP)
            .map(|p| {
                let (off, sz): (u64, u64) = (p.p_offset(endian).into(), p.p_filesz(endian).into());
                let spent = std::cell::Cell::new(0);
                let s = crate::elf::read_string_until(data, off, off.saturating_add(sz), &spent)
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                (off, sz, s)
            });
        Some(ElfLayout {
            secs,
            strtab: view.as_ref().and_then(|v| v.strtab),
            dstrings: view
                .as_ref()
                .map(|v| dynamic_strings(v, data))
                .unwrap_or_default(),
            interp,
        })
    }

    /// The smallest section holding `off`, what the bytes there are to the
    /// loader, and the string (or search-path entry) they belong to.
    fn attribute(&self, off: u64) -> Attribution {
        let section = self
            .secs
            .iter()
            .filter(|(o, s, _)| off >= *o && off < o + s)
            .min_by_key(|(_, s, _)| *s)
            .map(|s| s.2.clone());
        if let Some(d) = self
            .dstrings
            .iter()
            .find(|d| off >= d.start && off < d.start + d.bytes.len() as u64)
        {
            let (meaning, text) = d.meaning_at((off - d.start) as usize);
            return (section, meaning, Some(text));
        }
        if let Some((io, isz, s)) = &self.interp
            && off >= *io
            && off < io + isz
        {
            return (section, ElfMeaning::Interpreter, Some(s.clone()));
        }
        let meaning = match section.as_deref() {
            None => ElfMeaning::NoSection,
            Some(_) if self.strtab.is_some_and(|(o, s)| off >= o && off < o + s) => {
                ElfMeaning::UnreferencedDynstr
            }
            Some(n) if n.starts_with(".note") => ElfMeaning::Note,
            Some(n) if n.starts_with(".debug") || n.starts_with(".zdebug") => ElfMeaning::DebugInfo,
            Some(n) if n.starts_with(".rodata") => ElfMeaning::Rodata,
            Some(_) => ElfMeaning::Section,
        };
        (section, meaning, None)
    }
}

impl DynString {
    /// What the byte `rel` into this string is: a search-path entry (its
    /// index and text) or the whole string of its tag.
    fn meaning_at(&self, rel: usize) -> (ElfMeaning, String) {
        use object::elf;
        let entry_of = |b: &[u8]| -> (usize, String) {
            let k = b[..rel].iter().filter(|&&c| c == b':').count();
            let e = b.split(|&c| c == b':').nth(k).unwrap_or(&[]);
            (k, String::from_utf8_lossy(e).into_owned())
        };
        let text = || String::from_utf8_lossy(&self.bytes).into_owned();
        match self.tag {
            t if t == elf::DT_RUNPATH.0 => {
                let (k, e) = entry_of(&self.bytes);
                (ElfMeaning::Runpath { entry: k }, e)
            }
            t if t == elf::DT_RPATH.0 => {
                let (k, e) = entry_of(&self.bytes);
                (ElfMeaning::Rpath { entry: k }, e)
            }
            t if t == elf::DT_NEEDED.0 => (ElfMeaning::Needed, text()),
            t if t == elf::DT_SONAME.0 => (ElfMeaning::Soname, text()),
            t => (ElfMeaning::DynamicString { tag: t }, text()),
        }
    }
}

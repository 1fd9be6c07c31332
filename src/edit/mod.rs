//! In-place editing of an ELF file's DT_RUNPATH / DT_RPATH string.
//!
//! [`plan_edit`] is pure: it reads the file through a [`Source`] (a byte
//! slice, or a file too large to read, by range and long tables by window) and
//! returns an [`ElfEdit`], a list of byte patches plus the new file length, so
//! that a caller can write only the bytes that change.
//!
//! Two strategies, tried in this order:
//! - **in place**: the new string is written over the old one in `.dynstr`,
//!   the rest of the old bytes are NUL-padded (so removed store paths are
//!   scrubbed), and DT_RUNPATH keeps its offset. Bytes that another dynamic
//!   string shares (linkers tail-merge `.dynstr`: a symbol name may end inside
//!   the search path) are never touched. The result is one contiguous patch.
//! - **grow**: a new PT_LOAD is appended at the end of the file, holding a copy
//!   of `.dynstr` plus the new string, and `.dynamic` when an entry must be
//!   added and it has no spare DT_NULL. The program header table stays where
//!   it is (BFD `strip` always rewrites it after the ELF header): the extra
//!   entry reuses a PT_NULL slot, or room is made by moving the `.interp`,
//!   note and dynamic-symbol tables that follow it into the new segment
//!   (updating PT_INTERP/PT_NOTE/PT_GNU_PROPERTY and DT_SYMTAB & co.). Only a
//!   file without section headers, or one where code follows the table
//!   (gold `--rosegment`), gets its table moved. Bytes after the table that
//!   nothing describes (patchelf leaves them) are used as they are. DT_STRTAB
//!   / DT_STRSZ, section headers and symbols of moved sections are updated,
//!   and the section headers are kept in file-offset order, as patchelf and
//!   `strip` expect: a moved section leaves a placeholder in its slot and its
//!   header is appended, so no index changes (where that cannot keep the
//!   order, the table is sorted and renumbered, with links, `e_shstrndx` and
//!   symbols following). In an executable, the PT_LOADs before the code are extended
//!   over the rest of the page they map anyway, where patchelf 0.14.3 puts
//!   the sections it moves.
//! - **extend**: a file that already ends with a PT_LOAD (grown before, by
//!   patchelf or by us) has that segment extended instead; when `.dynstr`
//!   already ends it, the string is rewritten where it is, so repeated grows
//!   stay bounded.
//!
//! Editing to the value a file already has produces no patches.

mod check;
mod note;
mod parse;
pub(crate) mod planned;
mod shdrs;
mod source;
mod write;

pub use check::check_layout;
pub(crate) use check::check_layout_ref;
pub use source::{Source, WindowFn};

use object::{ReadRef, elf};
use parse::Model;
use write::{Enc, Writes};

/// Which dynamic entry to rewrite (the one type the planner uses too).
pub use crate::elf::SearchPathTag;

/// What to change.
#[derive(Debug, Clone)]
pub struct EditRequest<'a> {
    /// Which dynamic entry to rewrite. If the file has no such entry and
    /// `new_value` is not empty, one is added (note: adding DT_RUNPATH to a
    /// file with DT_RPATH makes the loader ignore the DT_RPATH).
    pub tag: SearchPathTag,
    /// The new colon-separated search path. The empty string removes the
    /// entry: later dynamic entries shift down and DT_NULL pads the end.
    pub new_value: &'a str,
    /// Byte strings (store-path hash parts) that must not survive in any byte
    /// the edit frees or moves. Planning fails rather than leave one there.
    pub scrub: &'a [&'a [u8]],
    /// Remove a `.note.nixos.ldcache` note (written by patchelf >= 0.19; it
    /// records resolved library paths) and zero its bytes.
    pub drop_ldcache_note: bool,
}

/// Bytes to write at one file offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// Where the bytes go in the file.
    pub offset: u64,
    /// The bytes to write there.
    pub bytes: Vec<u8>,
}

impl Patch {
    /// One past the last byte written.
    pub(crate) fn end(&self) -> u64 {
        self.offset.saturating_add(self.bytes.len() as u64)
    }
}

/// The planned edit: patches sorted by offset and non-overlapping. When
/// `new_len` exceeds the old length, bytes between the old end and the first
/// patch past it are zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfEdit {
    pub(crate) patches: Vec<Patch>,
    /// The file's length after the edit.
    pub new_len: u64,
    /// True when the file had to grow (a new PT_LOAD was appended).
    pub grew: bool,
}

impl ElfEdit {
    /// True when nothing needs writing.
    pub(crate) fn is_noop(&self) -> bool {
        self.patches.is_empty() && !self.grew
    }
    /// The single patch of an edit that changes one contiguous byte range of
    /// the file without growing it (the case a caller can write in one go).
    pub fn single_in_place(&self) -> Option<&Patch> {
        match self.patches.as_slice() {
            [p] if !self.grew && p.end() <= self.new_len => Some(p),
            _ => None,
        }
    }
}

/// Why an edit cannot be planned or a layout is wrong. Each names the problem.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The file is not a well-formed ELF file (what is wrong).
    #[error("malformed ELF: {0}")]
    Malformed(String),
    /// The file breaks a rule of the one ELF reader (its PT_DYNAMIC).
    #[error("malformed ELF: {0}")]
    Elf(#[from] crate::elf::Malformed),
    /// The file has no dynamic section, so no search path to edit.
    #[error("file has no dynamic section (static executable or object file)")]
    NoDynamic,
    /// The file is valid but this edit cannot be made safely (why).
    #[error("cannot edit safely: {0}")]
    Unsupported(String),
    /// The new search path cannot be stored as a C string.
    #[error("new search path contains a NUL byte")]
    NulInValue,
    /// A string that must be scrubbed would remain at this offset.
    #[error("a scrubbed string would survive at file offset {0:#x}")]
    ScrubSurvives(u64),
    /// The (edited) file fails a layout check (which).
    #[error("bad layout: {0}")]
    Layout(String),
}

/// Plan the edit described by `req` on the ELF file `data` of length
/// `file_len`. Reads only headers, the dynamic array, `.dynstr`, the dynamic
/// symbol table and version tables, and for a grow the symbol tables
/// (through [`Source::windows`]: window by window from a large file), never
/// the whole file.
pub fn plan_edit<'d, R: Source<'d>>(
    data: R,
    file_len: u64,
    req: &EditRequest,
) -> Result<ElfEdit, EditError> {
    check_request(req)?;
    let mut m = parse::parse(data, file_len)?;
    // An edit may rewrite the program header table; if its bytes are also a
    // note's or the interpreter's, that would corrupt them.
    check::phdrs_clear_of_contents(&m)?;
    check::segments_inside_file(&m)?;
    // Whether the input passes the checks its result must pass (needed
    // only if something changes; checked before the note removal below
    // updates the model).
    let layout = check::check_parsed(&m, data);
    let mut w = Writes::default();
    if req.drop_ldcache_note {
        note::drop_ldcache(&mut m, data, &mut w)?;
    }
    let m = m;
    let dynamic = m.dynamic.as_ref().ok_or(EditError::NoDynamic)?;
    let tag = req.tag.dt();
    let positions: Vec<usize> = (0..dynamic.entries.len())
        .filter(|&i| dynamic.entries[i].0 == tag)
        .collect();
    if positions.len() > 1 {
        return Err(EditError::Unsupported(format!(
            "file has {} {} entries",
            positions.len(),
            req.tag.name()
        )));
    }
    let ctx = StrCtx::of(&m)?;

    let entry = positions.first().copied();
    let old = match entry {
        Some(i) => Some(OldString::find(&m, data, &ctx, i)?),
        None => None,
    };
    let old_bytes = old.as_ref().map(|o| o.bytes.as_slice());
    let new = req.new_value.as_bytes();
    let mut new_len = file_len;
    let unchanged = match old_bytes {
        Some(b) => b == new,
        None => new.is_empty(),
    };
    if !unchanged {
        // Only a layout we can vouch for is edited: one that already fails
        // the checks its result must pass can only come out "repaired" by
        // accident (a section header past the end pointing into a grown
        // segment; a string table over the dynamic array turning an entry
        // removal into a NEEDED change).
        layout.map_err(|e| {
            EditError::Unsupported(format!(
                "its layout already fails the checks an edit must pass ({e})"
            ))
        })?;
        match (&old, entry) {
            (Some(o), Some(i)) if new.is_empty() => {
                plan_remove(&m, i, o, &ctx, &mut w)?;
            }
            (Some(o), _) if o.fits(new) => {
                plan_in_place(o, new, &ctx, &mut w);
            }
            _ => {
                new_len = grow::plan_grow(&m, data, &ctx, tag, entry, old.as_ref(), new, &mut w)?;
            }
        }
    }
    let patches = w.finish();
    check_patches(&patches, req, new_len)?;
    Ok(ElfEdit {
        patches,
        new_len,
        grew: new_len > file_len,
    })
}

/// The new value is a C string free of every string to scrub.
fn check_request(req: &EditRequest) -> Result<(), EditError> {
    if req.new_value.as_bytes().contains(&0) {
        return Err(EditError::NulInValue);
    }
    if let Some(n) = req
        .scrub
        .iter()
        .find(|n| contains(req.new_value.as_bytes(), n))
    {
        return Err(EditError::Unsupported(format!(
            "the new search path contains scrubbed string {:?}",
            String::from_utf8_lossy(n)
        )));
    }
    Ok(())
}

/// No scrubbed string is written back, and every byte an edit writes lies
/// inside the resulting file: a claim in a hostile header must never turn
/// into a write somewhere else.
fn check_patches(patches: &[Patch], req: &EditRequest, new_len: u64) -> Result<(), EditError> {
    check_patches_in_file(patches, req.scrub, new_len)
}

/// [`check_patches`] for any edit: no string of `scrub` is written, and
/// every patch lies inside the resulting file.
fn check_patches_in_file(
    patches: &[Patch],
    scrub: &[&[u8]],
    new_len: u64,
) -> Result<(), EditError> {
    for p in patches {
        for n in scrub.iter().filter(|n| !n.is_empty()) {
            if let Some(pos) = memchr::memmem::find(&p.bytes, n) {
                return Err(EditError::ScrubSurvives(
                    p.offset.saturating_add(pos as u64),
                ));
            }
        }
    }
    if let Some(p) = patches.iter().find(|p| p.end() > new_len) {
        return Err(EditError::Malformed(format!(
            "the edit would write at {:#x}..{:#x}, past the end of the file",
            p.offset,
            p.end()
        )));
    }
    Ok(())
}

/// The search lists the `edit` fuzz target (`fuzz/fuzz_targets/edit.rs`)
/// tries on an object, which the unit tests replay on its seeds: the list
/// it edits (DT_RUNPATH, else DT_RPATH, else a new DT_RUNPATH) and, in
/// order, the first entry cut in half (when that is shorter), the list plus
/// a store dir and `$ORIGIN/../lib` (a grow), and the empty list (when
/// there was one). Not part of the API.
#[doc(hidden)]
pub fn fuzz_lists(f: &crate::elf::ElfFacts) -> (SearchPathTag, Vec<String>) {
    let (tag, old) = match (&f.runpath, &f.rpath) {
        (Some(r), _) => (SearchPathTag::Runpath, r.clone()),
        (None, Some(r)) => (SearchPathTag::Rpath, r.clone()),
        (None, None) => (SearchPathTag::Runpath, String::new()),
    };
    let mut lists = Vec::new();
    let first = old.split(':').next().unwrap_or("");
    let shorter: String = first
        .chars()
        .take(first.chars().count().div_ceil(2))
        .collect();
    if !shorter.is_empty() && shorter.len() < old.len() {
        lists.push(shorter);
    }
    lists.push(format!(
        "{old}{}/nix/store/0123456789abcdfghijklmnpqrsvwxyz-unfarm-fuzz-lib/lib:$ORIGIN/../lib",
        if old.is_empty() { "" } else { ":" }
    ));
    if !old.is_empty() {
        lists.push(String::new());
    }
    (tag, lists)
}

/// Apply `edit` to a whole file held in memory.
pub fn apply_in_memory(data: &mut Vec<u8>, edit: &ElfEdit) {
    let want = edit
        .patches
        .iter()
        .map(|p| p.end())
        .fold(edit.new_len, u64::max);
    if let Ok(want) = usize::try_from(want)
        && want > data.len()
    {
        data.resize(want, 0);
    }
    for p in &edit.patches {
        let start = p.offset as usize;
        data[start..start + p.bytes.len()].copy_from_slice(&p.bytes);
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && memchr::memmem::find(hay, needle).is_some()
}

/// How far from a string's NUL an edit looks for free NUL bytes to reclaim
/// (bounds the read on a hostile `.dynstr`).
const MAX_FREE_NULS: u64 = 1 << 16;

/// Where the dynamic string table is.
pub(crate) struct StrCtx {
    pub(crate) strtab: u64,
    pub(crate) strsz: u64,
    /// File offset of DT_STRTAB.
    pub(crate) str_off: u64,
}

impl StrCtx {
    /// DT_STRTAB and DT_STRSZ of the parsed file, and where the table lies.
    fn of(m: &Model) -> Result<StrCtx, EditError> {
        let dynamic = m.dynamic.as_ref().ok_or(EditError::NoDynamic)?;
        let strtab = dynamic
            .get(elf::DT_STRTAB.0)
            .ok_or_else(|| EditError::Malformed("dynamic section has no DT_STRTAB".into()))?;
        let strsz = dynamic
            .get(elf::DT_STRSZ.0)
            .ok_or_else(|| EditError::Malformed("dynamic section has no DT_STRSZ".into()))?;
        let str_off = m.vaddr_to_offset(strtab, strsz).ok_or_else(|| {
            EditError::Malformed("DT_STRTAB is not inside a loaded segment".into())
        })?;
        Ok(StrCtx {
            strtab,
            strsz,
            str_off,
        })
    }
}

/// The current search-path string and what around it may be overwritten.
pub(crate) struct OldString {
    /// Offset of the string inside `.dynstr`.
    pub(crate) start: u64,
    pub(crate) bytes: Vec<u8>,
    /// Offset (inside `.dynstr`) of the first byte another reference shares;
    /// bytes from here to the old string's NUL must stay. `None` if unshared.
    pub(crate) shared_from: Option<u64>,
    /// End (exclusive, inside `.dynstr`) of the bytes we may overwrite: the
    /// shared tail's start, or past the NUL and any unreferenced NUL run.
    pub(crate) avail_end: u64,
    /// Entries of the other search-path tag (DT_RPATH for DT_RUNPATH and
    /// back) naming the very same string: one value, written by old linkers
    /// under both tags. They are edited together, as patchelf does.
    pub(crate) twins: Vec<usize>,
}

impl OldString {
    /// The current string of `entry`, with what around it is ours to
    /// overwrite (bytes no other reference shares) and its twins.
    // Long because every reference into `.dynstr` (refs_as) bounds what may
    // be overwritten, and the bounds are computed together.
    fn find<'d, R: ReadRef<'d>>(
        m: &Model,
        data: R,
        ctx: &StrCtx,
        entry: usize,
    ) -> Result<Self, EditError> {
        let dynamic = m.dynamic.as_ref().ok_or(EditError::NoDynamic)?;
        let start = dynamic.entries[entry].1;
        if start >= ctx.strsz {
            return Err(EditError::Malformed(
                "search path offset is past DT_STRSZ".into(),
            ));
        }
        let abs = ctx.str_off + start;
        let end = ctx.str_off + ctx.strsz;
        // Not `read_bytes_at_until`: through a `ReadCache` (a file over the
        // in-memory limit) it gives up on strings over 4 KiB.
        let bytes = crate::elf::read_string_until(data, abs, end, &std::cell::Cell::new(0))
            .map_err(|e| EditError::Malformed(format!("search path string: {e}")))?
            .to_vec();
        let nul = start + bytes.len() as u64;
        let tag = dynamic.entries[entry].0;
        let twin_tag = if tag == elf::DT_RUNPATH.0 {
            elf::DT_RPATH.0
        } else {
            elf::DT_RUNPATH.0
        };
        let twins: Vec<usize> = (0..dynamic.entries.len())
            .filter(|&i| dynamic.entries[i] == (twin_tag, start))
            .collect();
        let mut refs = parse::dynstr_refs(m, data)?;
        refs.extend(
            dynamic
                .entries
                .iter()
                .enumerate()
                .filter(|(i, (t, _))| {
                    *i != entry && !twins.contains(i) && parse::STRING_TAGS.contains(t)
                })
                .map(|(_, (_, v))| *v),
        );
        refs.sort_unstable();
        // The old string may itself be the tail of a longer string (a NEEDED
        // name ending in it): then none of its bytes are ours to overwrite.
        let head_start = if start == 0 {
            0
        } else {
            let before = data
                .read_bytes_at(ctx.str_off, start)
                .map_err(|_| EditError::Malformed(".dynstr is truncated".into()))?;
            memchr::memrchr(0, before).map_or(0, |i| i as u64 + 1)
        };
        let inside_longer = refs.iter().any(|&r| r >= head_start && r < start);
        let shared_from = if inside_longer {
            Some(start)
        } else {
            refs.iter().copied().find(|&r| r >= start && r <= nul)
        };
        let avail_end = match shared_from {
            Some(s) => s,
            None => {
                // The old string's NUL plus following NUL bytes nothing refers
                // to (e.g. what an earlier shortening edit left) are free.
                let next_ref = refs.iter().copied().find(|&r| r > nul).unwrap_or(ctx.strsz);
                let limit = next_ref
                    .min(ctx.strsz)
                    .min(nul.saturating_add(MAX_FREE_NULS));
                let tail = data
                    .read_bytes_at(ctx.str_off + nul, limit.saturating_sub(nul))
                    .map_err(|_| EditError::Malformed(".dynstr is truncated".into()))?;
                let run = tail.iter().take_while(|&&b| b == 0).count() as u64;
                nul + run.max(1)
            }
        };
        Ok(OldString {
            start,
            bytes,
            shared_from,
            avail_end,
            twins,
        })
    }

    fn fits(&self, new: &[u8]) -> bool {
        // new string + its NUL must fit before the shared tail / free end.
        (new.len() as u64) < self.avail_end - self.start
    }

    /// End (exclusive, inside `.dynstr`) of the old bytes no one else uses.
    fn private_end(&self) -> u64 {
        self.shared_from
            .unwrap_or(self.start + self.bytes.len() as u64)
    }
}

fn plan_in_place(o: &OldString, new: &[u8], ctx: &StrCtx, w: &mut Writes) {
    // Write the new string, then NULs over the rest of the old private bytes.
    let len = (new.len() as u64 + 1).max(o.private_end() - o.start) as usize;
    let mut buf = vec![0u8; len];
    buf[..new.len()].copy_from_slice(new);
    w.put(ctx.str_off + o.start, buf);
}

fn plan_remove(
    m: &Model,
    entry: usize,
    o: &OldString,
    ctx: &StrCtx,
    w: &mut Writes,
) -> Result<(), EditError> {
    let d = m.dynamic.as_ref().ok_or(EditError::NoDynamic)?;
    let enc = Enc::of(m);
    let mut entries = d.entries.clone();
    let mut gone: Vec<usize> = o.twins.iter().copied().chain([entry]).collect();
    gone.sort_unstable();
    for &i in gone.iter().rev() {
        entries.remove(i);
    }
    let first = gone[0];
    // Rewrite from the first removed slot to the old terminator (if there is
    // room for one: a dynamic array may fill PT_DYNAMIC without a DT_NULL).
    let slots = ((d.entries.len() - first) as u64 + 1).min(d.slots - first as u64);
    let tail = enc.dyn_array(&entries[first..], slots)?;
    let at = d.offset + first as u64 * m.dyn_entsize();
    w.put(at, tail);
    let private = o.private_end() - o.start;
    if private > 0 {
        w.put(ctx.str_off + o.start, vec![0; private as usize]);
    }
    Ok(())
}

mod extend;
mod grow;
mod interp;

pub use interp::{InterpTarget, interp_target, plan_interpreter};

#[cfg(test)]
mod tests;

/// The byte ranges of a file the loader reads to find everything else: the
/// ELF header, the program header table and the dynamic array. A writer
/// that patches a file in place orders its writes by them (see
/// `crate::fix::atomic`): what the old object does not reference first, these
/// last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LoaderRanges {
    pub(crate) ehdr: (u64, u64),
    pub(crate) phdrs: (u64, u64),
    pub(crate) dynamic: Option<(u64, u64)>,
}

/// [`LoaderRanges`] of the ELF file `data` of length `file_len`.
pub(crate) fn loader_ranges<'d, R: ReadRef<'d>>(
    data: R,
    file_len: u64,
) -> Result<LoaderRanges, EditError> {
    let m = parse::parse(data, file_len)?;
    let ehdr = m.ehdr_size();
    let phend = m.phoff + m.phdrs.len() as u64 * u64::from(m.phentsize);
    let dynamic = m
        .dynamic
        .as_ref()
        .map(|d| (d.offset, d.offset + d.slots * m.dyn_entsize()));
    Ok(LoaderRanges {
        ehdr: (0, ehdr),
        phdrs: (m.phoff, phend),
        dynamic,
    })
}

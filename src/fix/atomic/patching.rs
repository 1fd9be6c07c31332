//! Writing an edit of several patches (a grow, an entry removal, a dropped
//! note) into the file itself, so that at every instant the file loads as
//! the old object or the new one, and a killed run can be undone.
//!
//! The order (each step forced to disk before the next one starts: an
//! `fdatasync`, or one `syncfs` per filesystem for a batch):
//! 1. a **journal** beside the file (`.NAME.unfarm-tmp-PID-journal`): the
//!    old length, times and the old bytes of every range the edit
//!    overwrites inside the old file;
//! 2. **append**: the file is extended and the new parts written past the
//!    old end; nothing the old object reads refers to them;
//! 3. **switch**: the program header table (the new PT_LOAD, and what it
//!    grows into), then the ELF header (when its `e_phnum`/`e_phoff`
//!    change), then the dynamic array: each one `pwrite` of one contiguous
//!    range (the first two are merged when they lie within a page). Until
//!    the dynamic array is written the old `.dynamic` still names the old
//!    string table, so the object loads as before with one unused mapping
//!    more;
//! 4. **dead bytes**: the old string's bytes (scrubbed: no removed hash
//!    survives), section headers, freed notes, which the loader no longer
//!    reads;
//! 5. the journal is removed.
//!
//! What an interruption leaves:
//! - a **SIGKILL**: the journal, the steps before the kill whole, and the
//!   step in flight whole or not begun (each write of a step is one
//!   `pwrite`; the kernel may cut one short only at a page boundary, which
//!   the switch writes do not cross in practice): the file loads as the old
//!   or the new object;
//! - a **power loss**: the journal (it is durable before the first step;
//!   one torn while being written fails its checksum and is dropped, the
//!   file being untouched), the steps before the one in flight, and that
//!   step possibly in part, torn at sector boundaries: a torn switch write
//!   may leave a file that loads as neither object until the next run.
//!
//! Either way the next `unfarm fix` finds the journal first and rolls the
//! file back to its exact old bytes, length and times (see
//! [`recover_journal`]), then edits it as if for the first time: the result
//! is byte-identical to an uninterrupted run.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{AtomicError, Durability, Method, TMP_MARK, io_err, open_nofollow, set_times, sizes};
use crate::edit::{ElfEdit, LoaderRanges};
use crate::fix::VerifyError;

/// Which part of the edit a step writes, in the order they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StepKind {
    /// Bytes past the old end of file.
    Append,
    /// The program header table and what it grows into.
    ProgramHeaders,
    /// The ELF header (with the program headers when they share a page).
    ElfHeader,
    /// The dynamic array.
    Dynamic,
    /// Bytes the loader no longer reads once the switch is made.
    Dead,
    /// Remove the journal.
    Done,
}

#[derive(Debug)]
struct Step {
    kind: StepKind,
    writes: Vec<(u64, Vec<u8>)>,
}

/// A verified edit being written into the file, step by step.
#[derive(Debug)]
pub struct PendingPatch {
    path: PathBuf,
    file: File,
    meta: Metadata,
    old_len: u64,
    new_len: u64,
    steps: Vec<Step>,
    next: usize,
    /// The old bytes of every range written inside the old file.
    undo: Vec<(u64, Vec<u8>)>,
    journal: Option<PathBuf>,
    journal_len: u64,
    /// Whether a step has begun to write into the file.
    touched: bool,
}

/// Writes of one kind closer than this are merged into one `pwrite`.
const PAGE: u64 = 4096;

impl PendingPatch {
    /// Plan the steps of `edit` on `file` (opened for writing; `meta` as
    /// read when the edit was planned; `content` its bytes when they were
    /// read whole).
    pub(super) fn new(
        path: PathBuf,
        file: File,
        meta: Metadata,
        edit: &ElfEdit,
        ranges: LoaderRanges,
        content: Option<&[u8]>,
    ) -> Result<Self, AtomicError> {
        let old_len = meta.len();
        let p = path.as_path();
        if edit.new_len < old_len {
            return Err(AtomicError::Verify(
                p.into(),
                VerifyError::Shrinks {
                    new_len: edit.new_len,
                    old_len,
                },
            ));
        }
        // The old bytes from the content already read (a small file), else
        // from the file.
        let read_old = |off: u64, len: u64| -> Result<Vec<u8>, AtomicError> {
            let held = content.filter(|c| c.len() as u64 == old_len).and_then(|c| {
                c.get(usize::try_from(off).ok()?..usize::try_from(off.checked_add(len)?).ok()?)
            });
            if let Some(b) = held {
                return Ok(b.to_vec());
            }
            let mut b = vec![0; len as usize];
            file.read_exact_at(&mut b, off)
                .map_err(io_err(p, "cannot read"))?;
            Ok(b)
        };
        let mut by_kind = writes_by_kind(edit, old_len, &ranges);
        merge_switch_writes(&mut by_kind, &read_old)?;
        let mut undo = Vec::new();
        for (kind, ws) in &by_kind {
            if *kind != StepKind::Append {
                for (o, b) in ws {
                    undo.push((*o, read_old(*o, b.len() as u64)?));
                }
            }
        }
        let steps = steps_of(by_kind, edit.new_len > old_len);
        Ok(PendingPatch {
            path,
            file,
            meta,
            old_len,
            new_len: edit.new_len,
            steps,
            next: 0,
            undo,
            journal: None,
            journal_len: 0,
            touched: false,
        })
    }

    /// The file being patched in place.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written for this edit: the journal and every step.
    pub(crate) fn bytes_written(&self) -> u64 {
        self.journal_len
            + self
                .steps
                .iter()
                .flat_map(|s| &s.writes)
                .map(|w| w.1.len() as u64)
                .sum::<u64>()
    }

    /// Hard links to the inode (all of them see the edit).
    pub(crate) fn links(&self) -> u64 {
        self.meta.nlink()
    }

    /// The kind of the next step, `None` once done.
    pub fn next_step(&self) -> Option<StepKind> {
        self.steps.get(self.next).map(|s| s.kind)
    }

    /// What the next step writes: (offset, bytes) ranges, one `pwrite`
    /// each. Fault tests persist part of them to model a power loss in the
    /// middle of the step.
    pub fn next_writes(&self) -> &[(u64, Vec<u8>)] {
        self.steps.get(self.next).map_or(&[], |s| &s.writes)
    }

    pub(super) fn write_journal(&mut self, durability: Durability) -> Result<(), AtomicError> {
        let p = self.path.clone();
        let jpath = journal_path(&p).ok_or_else(|| AtomicError::NotRegular(p.clone()))?;
        // The old bytes are lent to the journal, not copied: for a large
        // plugin they are its whole 17 MB `.symtab`.
        let journal = Journal {
            dev: self.meta.dev(),
            ino: self.meta.ino(),
            old_len: self.old_len,
            new_len: self.new_len,
            times: [
                self.meta.atime(),
                self.meta.atime_nsec(),
                self.meta.mtime(),
                self.meta.mtime_nsec(),
            ],
            undo: std::mem::take(&mut self.undo),
        };
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&jpath)
            .map_err(io_err(&p, "cannot create journal"))
            .and_then(|f| {
                self.journal = Some(jpath.clone());
                let mut out = io::BufWriter::with_capacity(64 << 10, f);
                let n = journal
                    .write_to(&mut out)
                    .map_err(io_err(&p, "cannot write journal"))?;
                let f = out
                    .into_inner()
                    .map_err(|e| io_err(&p, "cannot write journal")(e.into_error()))?;
                Ok((f, n))
            });
        self.undo = journal.undo;
        let (f, n) = written?;
        if durability == Durability::PerFile {
            f.sync_all().map_err(io_err(&p, "cannot fsync journal"))?;
            sync_dir(&jpath);
        }
        self.journal_len = n;
        Ok(())
    }

    /// Carry out the next step; `Ok(true)` while steps remain. Batch
    /// callers sync the filesystem between two calls. On an error the file
    /// is rolled back to its old bytes.
    pub fn step(&mut self, durability: Durability) -> Result<bool, AtomicError> {
        if self.next >= self.steps.len() {
            return Ok(false);
        }
        if let Err(e) = self.do_step(durability) {
            return Err(match self.roll_back() {
                Ok(()) => e,
                Err(u) => AtomicError::Io {
                    path: self.path.clone(),
                    what: "interrupted, and undoing it failed (the next `unfarm fix` restores it)",
                    source: io::Error::other(format!("{e}; {u}")),
                },
            });
        }
        self.next += 1;
        Ok(self.next < self.steps.len())
    }

    /// Stop here without finishing or undoing, as a SIGKILL would: the
    /// journal stays for the next run to roll the file back (fault tests).
    pub fn interrupt(mut self) {
        self.next = self.steps.len();
    }

    /// Every remaining step.
    pub(crate) fn finish(mut self, durability: Durability) -> Result<Method, AtomicError> {
        while self.step(durability)? {}
        Ok(Method::InPlace {
            links: self.links(),
        })
    }

    fn do_step(&mut self, durability: Durability) -> Result<(), AtomicError> {
        let p = self.path.as_path();
        let step = &self.steps[self.next];
        if step.kind == StepKind::Done {
            if let Some(j) = self.journal.take() {
                std::fs::remove_file(&j).map_err(io_err(p, "cannot remove journal"))?;
            }
            return Ok(());
        }
        // Nobody else may have resized the file between two steps.
        let expect = if step.kind == StepKind::Append {
            self.old_len
        } else {
            self.new_len
        };
        let now = self.file.metadata().map_err(io_err(p, "cannot stat"))?;
        if now.len() != expect {
            return Err(AtomicError::Changed(p.into(), sizes(now.len(), expect)));
        }
        self.touched = true;
        if step.kind == StepKind::Append {
            self.file
                .set_len(self.new_len)
                .map_err(io_err(p, "cannot extend"))?;
        }
        for (o, b) in &step.writes {
            self.file
                .write_all_at(b, *o)
                .map_err(io_err(p, "cannot write"))?;
        }
        if durability == Durability::PerFile {
            self.file.sync_data().map_err(io_err(p, "cannot fsync"))?;
        }
        set_times(&self.file, &self.meta).map_err(io_err(p, "cannot restore times"))
    }

    /// Put the old bytes, length and times back; the journal goes once that
    /// is on disk.
    fn roll_back(&mut self) -> io::Result<()> {
        if self.touched {
            self.restore()?;
        }
        if let Some(j) = self.journal.take() {
            std::fs::remove_file(j)?;
        }
        self.next = self.steps.len();
        Ok(())
    }

    fn restore(&self) -> io::Result<()> {
        for (o, b) in &self.undo {
            self.file.write_all_at(b, *o)?;
        }
        self.file.set_len(self.old_len)?;
        set_times(&self.file, &self.meta)?;
        self.file.sync_all()
    }
}

impl Drop for PendingPatch {
    /// Abandoned half way (a failed sync): back to the old bytes.
    fn drop(&mut self) {
        if self.next < self.steps.len() {
            let _ = self.roll_back();
        }
    }
}

type Writes = Vec<(u64, Vec<u8>)>;
type ByKind = std::collections::BTreeMap<StepKind, Writes>;

/// The edit's patches sorted into steps by what the loader reads there; a
/// patch running from the old file into the appended part is cut in two.
fn writes_by_kind(edit: &ElfEdit, old_len: u64, ranges: &LoaderRanges) -> ByKind {
    let mut by_kind = ByKind::new();
    for patch in &edit.patches {
        let split = patch.offset.max(old_len).min(patch.end());
        let inside = (split - patch.offset) as usize;
        if inside > 0 {
            let kind = kind_of(ranges, patch.offset, split);
            by_kind
                .entry(kind)
                .or_default()
                .push((patch.offset, patch.bytes[..inside].to_vec()));
        }
        if inside < patch.bytes.len() {
            by_kind
                .entry(StepKind::Append)
                .or_default()
                .push((split, patch.bytes[inside..].to_vec()));
        }
    }
    by_kind
}

/// The switch writes become one contiguous `pwrite` each (the bytes between
/// the patches as they are), and program headers plus ELF header one write
/// when they lie within a page.
fn merge_switch_writes(
    by_kind: &mut ByKind,
    read_old: &impl Fn(u64, u64) -> Result<Vec<u8>, AtomicError>,
) -> Result<(), AtomicError> {
    for kind in [
        StepKind::ProgramHeaders,
        StepKind::ElfHeader,
        StepKind::Dynamic,
    ] {
        coalesce(by_kind, kind, read_old)?;
    }
    if let (Some(ph), Some(eh)) = (
        by_kind.get(&StepKind::ProgramHeaders),
        by_kind.get(&StepKind::ElfHeader),
    ) && ph[0].0.max(eh[0].0) - ph[0].0.min(eh[0].0) < PAGE
    {
        let ph = by_kind
            .remove(&StepKind::ProgramHeaders)
            .unwrap_or_default();
        by_kind.entry(StepKind::ElfHeader).or_default().extend(ph);
        coalesce(by_kind, StepKind::ElfHeader, read_old)?;
    }
    Ok(())
}

/// The steps in order: an append step first whenever the file grows (the
/// extension alone, if nothing is written past the old end), `Done` last.
fn steps_of(by_kind: ByKind, grows: bool) -> Vec<Step> {
    let mut steps: Vec<Step> = by_kind
        .into_iter()
        .map(|(kind, writes)| Step { kind, writes })
        .collect();
    if grows && steps.first().is_none_or(|s| s.kind != StepKind::Append) {
        steps.insert(
            0,
            Step {
                kind: StepKind::Append,
                writes: Vec::new(),
            },
        );
    }
    steps.push(Step {
        kind: StepKind::Done,
        writes: Vec::new(),
    });
    steps
}

/// Merge the writes of `kind` into one, filling the gaps with `read_old`.
fn coalesce(
    by_kind: &mut ByKind,
    kind: StepKind,
    read_old: &impl Fn(u64, u64) -> Result<Vec<u8>, AtomicError>,
) -> Result<(), AtomicError> {
    let Some(ws) = by_kind.get_mut(&kind) else {
        return Ok(());
    };
    let start = ws.iter().map(|w| w.0).min().unwrap_or(0);
    let end = ws.iter().map(|w| w.0 + w.1.len() as u64).max().unwrap_or(0);
    let mut buf = read_old(start, end - start)?;
    for (o, b) in ws.iter() {
        let r = (o - start) as usize;
        buf[r..r + b.len()].copy_from_slice(b);
    }
    *ws = vec![(start, buf)];
    Ok(())
}

fn kind_of(r: &LoaderRanges, start: u64, end: u64) -> StepKind {
    let hits = |(s, e): (u64, u64)| start < e && s < end;
    if hits(r.ehdr) {
        StepKind::ElfHeader
    } else if hits(r.phdrs) {
        StepKind::ProgramHeaders
    } else if r.dynamic.is_some_and(hits) {
        StepKind::Dynamic
    } else {
        StepKind::Dead
    }
}

fn sync_dir(path: &Path) {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

const JOURNAL_SUFFIX: &str = "-journal";
/// A journal with a CRC-32 of its body before its trailer (written since
/// version 3).
const MAGIC: &[u8; 16] = b"unfarm-journal3\n";
/// A journal with an FNV-1a checksum, as version 2 wrote it (byte by byte:
/// slow on a large plugin's 17 MB of old bytes); still rolled back.
const MAGIC_V2: &[u8; 16] = b"unfarm-journal2\n";
/// A journal without a checksum, as earlier versions wrote it; still rolled
/// back, so a file they left part way is not stranded.
const MAGIC_V1: &[u8; 16] = b"unfarm-journal1\n";
const TRAILER: &[u8; 4] = b"end\n";

// Why a checksum: a power loss while the journal was being written can
// persist some of its blocks and not others (a torn journal with the right
// length and ends). The file is not touched until the journal is durable,
// so a journal that fails its check is dropped, never applied: applying it
// would write its missing blocks' zeros over the old bytes.

/// Version 2's FNV-1a over the journal's body.
fn fnv1a(body: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    body.iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// `.NAME.unfarm-tmp-PID-journal` beside `path`.
fn journal_path(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    Some(path.with_file_name(format!(
        ".{name}{TMP_MARK}{}{JOURNAL_SUFFIX}",
        std::process::id()
    )))
}

/// True for a journal's file name.
pub(crate) fn is_journal_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TMP_MARK) && name.ends_with(JOURNAL_SUFFIX)
}

#[derive(Debug, PartialEq, Eq)]
struct Journal {
    dev: u64,
    ino: u64,
    old_len: u64,
    new_len: u64,
    /// atime, its ns, mtime, its ns.
    times: [i64; 4],
    undo: Vec<(u64, Vec<u8>)>,
}

impl Journal {
    /// Write the journal (version 3) to `out` piece by piece, the old bytes
    /// straight from `undo`; returns its length.
    fn write_to(&self, out: &mut impl Write) -> io::Result<u64> {
        let mut head = Vec::with_capacity(128);
        for x in [self.dev, self.ino, self.old_len, self.new_len] {
            head.extend_from_slice(&x.to_le_bytes());
        }
        for t in self.times {
            head.extend_from_slice(&t.to_le_bytes());
        }
        head.extend_from_slice(&(self.undo.len() as u64).to_le_bytes());
        out.write_all(MAGIC)?;
        let mut crc = crc32fast::Hasher::new();
        let mut len = MAGIC.len() as u64;
        let mut summed = |b: &[u8]| -> io::Result<()> {
            crc.update(b);
            len += b.len() as u64;
            out.write_all(b)
        };
        summed(&head)?;
        for (o, b) in &self.undo {
            let mut range = [0u8; 16];
            range[..8].copy_from_slice(&o.to_le_bytes());
            range[8..].copy_from_slice(&(b.len() as u64).to_le_bytes());
            summed(&range)?;
            summed(b)?;
        }
        out.write_all(&crc.finalize().to_le_bytes())?;
        out.write_all(TRAILER)?;
        len += 4 + TRAILER.len() as u64;
        Ok(len)
    }

    #[cfg(test)]
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = self.write_to(&mut v);
        v
    }

    /// `None` for anything but a complete journal (a run killed, or a
    /// machine that lost power, while writing it had not touched the file
    /// yet).
    fn decode(b: &[u8]) -> Option<Journal> {
        let body = b.strip_suffix(TRAILER)?;
        let mut rest = if let Some(v3) = body.strip_prefix(MAGIC) {
            let (rest, sum) = v3.split_last_chunk::<4>()?;
            (crc32fast::hash(rest) == u32::from_le_bytes(*sum)).then_some(rest)?
        } else if let Some(v2) = body.strip_prefix(MAGIC_V2) {
            let (rest, sum) = v2.split_last_chunk::<8>()?;
            (fnv1a(rest) == u64::from_le_bytes(*sum)).then_some(rest)?
        } else {
            body.strip_prefix(MAGIC_V1)?
        };
        fn u(rest: &mut &[u8]) -> Option<u64> {
            let (h, t) = rest.split_first_chunk::<8>()?;
            *rest = t;
            Some(u64::from_le_bytes(*h))
        }
        let r = &mut rest;
        let (dev, ino, old_len, new_len) = (u(r)?, u(r)?, u(r)?, u(r)?);
        let times = [u(r)? as i64, u(r)? as i64, u(r)? as i64, u(r)? as i64];
        let n = u(r)?;
        let mut undo = Vec::new();
        for _ in 0..n {
            let (o, len) = (u(&mut rest)?, u(&mut rest)?);
            let len = usize::try_from(len).ok().filter(|&l| l <= rest.len())?;
            let (h, t) = rest.split_at(len);
            undo.push((o, h.to_vec()));
            rest = t;
        }
        rest.is_empty().then_some(Journal {
            dev,
            ino,
            old_len,
            new_len,
            times,
            undo,
        })
    }
}

/// What [`recover_journal`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// The file was rolled back to its bytes before the interrupted edit.
    RolledBack,
    /// Incomplete journal (the file was not touched yet), or the file is no
    /// longer the one journaled: left alone.
    Discarded,
}

/// Undo the interrupted edit a journal (see [`is_journal_name`]) records,
/// then remove the journal.
pub(crate) fn recover_journal(journal: &Path) -> io::Result<Recovery> {
    let j = Journal::decode(&std::fs::read(journal)?);
    let target = journal.file_name().and_then(|n| {
        let n = n.to_str()?;
        let end = n.find(TMP_MARK)?;
        Some(journal.with_file_name(n.get(1..end)?))
    });
    let r = match (j, target) {
        (Some(j), Some(t)) => roll_back_file(&j, &t)?,
        _ => Recovery::Discarded,
    };
    std::fs::remove_file(journal)?;
    sync_dir(journal);
    Ok(r)
}

fn roll_back_file(j: &Journal, target: &Path) -> io::Result<Recovery> {
    let f = match open_nofollow(target, true) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Recovery::Discarded),
        Err(e) => return Err(e),
    };
    let m = f.metadata()?;
    // Not the mtime: a run killed between a write and putting the times
    // back left it moved.
    let ours = (m.dev(), m.ino()) == (j.dev, j.ino) && (j.old_len..=j.new_len).contains(&m.len());
    if !m.is_file() || !ours {
        return Ok(Recovery::Discarded);
    }
    for (o, b) in &j.undo {
        f.write_all_at(b, *o)?;
    }
    f.set_len(j.old_len)?;
    // A timespec: whole seconds (maybe before the epoch) plus nanoseconds.
    let at = |secs: i64, nanos: i64| {
        let whole = std::time::Duration::from_secs(secs.unsigned_abs());
        let base = if secs >= 0 {
            std::time::UNIX_EPOCH + whole
        } else {
            std::time::UNIX_EPOCH - whole
        };
        base + std::time::Duration::from_nanos(nanos.clamp(0, 999_999_999) as u64)
    };
    f.set_times(
        std::fs::FileTimes::new()
            .set_accessed(at(j.times[0], j.times[1]))
            .set_modified(at(j.times[2], j.times[3])),
    )?;
    f.sync_all()?;
    Ok(Recovery::RolledBack)
}

/// A journal beside `target` (an existing file) that a dead run left and
/// whose roll-back cannot be written (an offset no file has: pwrite says
/// EINVAL on any filesystem): what a
/// failed recovery looks like, for the tests of its reporting.
#[cfg(test)]
pub(crate) fn write_unrecoverable_journal(target: &Path) {
    let m = std::fs::metadata(target).unwrap();
    let j = Journal {
        dev: m.dev(),
        ino: m.ino(),
        old_len: m.len(),
        new_len: m.len(),
        times: [1, 0, 1, 0],
        undo: vec![(u64::MAX - 8, vec![0])],
    };
    let name = target.file_name().unwrap().to_str().unwrap();
    // PID i32::MAX: never a running process.
    let journal = target.with_file_name(format!(".{name}{TMP_MARK}2147483647{JOURNAL_SUFFIX}"));
    std::fs::write(journal, j.encode()).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A power loss that persisted the journal's first and last blocks but
    /// not one between: 8 zero bytes at each offset, one at a time; every
    /// such journal is refused, never applied.
    fn refused_with_zeros_at(journal: &[u8], ats: &[usize]) {
        for &at in ats {
            let mut torn = journal.to_vec();
            torn[at..at + 8].fill(0);
            assert_eq!(Journal::decode(&torn), None, "zeros at {at}");
        }
    }

    #[test]
    fn journal_round_trips_and_refuses_a_torn_one() {
        let j = Journal {
            dev: 1,
            ino: 2,
            old_len: 100,
            new_len: 4196,
            times: [1, 0, 1, 0],
            undo: vec![(64, vec![1, 2, 3]), (90, vec![0; 10])],
        };
        let b = j.encode();
        assert_eq!(Journal::decode(&b), Some(j));
        for cut in [0, 10, 60, b.len() - 5, b.len() - 1] {
            assert_eq!(Journal::decode(&b[..cut]), None, "cut at {cut}");
        }
    }

    /// A power loss while the journal was written can persist its first
    /// and last blocks but not one between: same length, right ends, zeros
    /// inside. Applied, its zeros would overwrite the old bytes.
    #[test]
    fn a_journal_torn_inside_is_refused() {
        let j = Journal {
            dev: 1,
            ino: 2,
            old_len: 100,
            new_len: 9000,
            times: [1, 0, 1, 0],
            undo: vec![(64, vec![0xaa; 600]), (4096, vec![0x55; 700])],
        };
        let b = j.encode();
        refused_with_zeros_at(&b, &[100, 512, 700, b.len() - 20]);
    }

    /// A journal an earlier version wrote (no checksum) is still rolled
    /// back.
    #[test]
    fn a_version_1_journal_still_decodes() {
        let j = Journal {
            dev: 3,
            ino: 4,
            old_len: 10,
            new_len: 20,
            times: [5, 6, 7, 8],
            undo: vec![(0, vec![1, 2])],
        };
        let v3 = j.encode();
        let body = &v3[MAGIC.len()..v3.len() - TRAILER.len() - 4];
        let v1 = [&MAGIC_V1[..], body, TRAILER].concat();
        assert_eq!(Journal::decode(&v1), Some(j));
    }

    fn sample() -> Journal {
        Journal {
            dev: 3,
            ino: 4,
            old_len: 10,
            new_len: 5000,
            times: [5, 6, 7, 8],
            undo: vec![(0, vec![1, 2]), (8, vec![0x5a; 4000])],
        }
    }

    /// The body every version shares: header fields, then the ranges.
    fn body(j: &Journal) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [j.dev, j.ino, j.old_len, j.new_len] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        for t in j.times {
            v.extend_from_slice(&t.to_le_bytes());
        }
        v.extend_from_slice(&(j.undo.len() as u64).to_le_bytes());
        for (o, b) in &j.undo {
            v.extend_from_slice(&o.to_le_bytes());
            v.extend_from_slice(&(b.len() as u64).to_le_bytes());
            v.extend_from_slice(b);
        }
        v
    }

    /// Version 3: the body's CRC-32 (IEEE) before the trailer, as written
    /// piece by piece; one with a block of zeros inside is refused.
    #[test]
    fn a_version_3_journal_decodes_and_a_torn_one_is_refused() {
        let j = sample();
        let b = body(&j);
        let v3 = [
            &b"unfarm-journal3\n"[..],
            &b,
            &crc32fast::hash(&b).to_le_bytes(),
            TRAILER,
        ]
        .concat();
        assert_eq!(j.encode(), v3);
        assert_eq!(Journal::decode(&v3), Some(j));
        refused_with_zeros_at(&v3, &[16, 200, 3000, v3.len() - 16]);
    }

    /// A journal version 2 wrote (FNV-1a) is still rolled back, and still
    /// refused when torn.
    #[test]
    fn a_version_2_journal_still_decodes() {
        let j = sample();
        let b = body(&j);
        let v2 = [&MAGIC_V2[..], &b, &fnv1a(&b).to_le_bytes(), TRAILER].concat();
        assert_eq!(Journal::decode(&v2), Some(j));
        refused_with_zeros_at(&v2, &[300]);
    }

    /// `write_journal` streams the journal into the file: the bytes are the
    /// encoding, its length is counted, and the old bytes it lent come back.
    #[test]
    fn written_journal_is_the_encoding() {
        let j = sample();
        let mut out = io::BufWriter::with_capacity(64, Vec::new());
        let n = j.write_to(&mut out).unwrap();
        let bytes = out.into_inner().unwrap();
        assert_eq!((n, bytes), (j.encode().len() as u64, j.encode()));
    }

    #[test]
    fn journal_names() {
        let p = journal_path(Path::new("/x/libfoo.so")).unwrap();
        let n = p.file_name().unwrap().to_str().unwrap();
        assert!(is_journal_name(n) && crate::walk::is_temp_name(p.file_name().unwrap()));
        assert!(!is_journal_name(".libfoo.so.unfarm-tmp-1-0badcafe"));
    }
}

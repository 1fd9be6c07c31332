//! The one place a plan becomes an edit of a file on disk: the file's
//! changing plans turned into byte patches, on an image held in memory
//! (several plans compose there) or, for a large file with one plan, range
//! by range. Shared by `fix`, which verifies and writes the edit, and
//! `closure::cost`, which predicts a closure from it without writing: both
//! see the very same bytes.

use std::fs::File;
use std::ops::Range;
use std::path::Path;

use object::{ReadCache, ReadRef};

use super::source::{self, Source, WindowFn};
use crate::edit::{self, EditError, EditRequest, ElfEdit};
use crate::elf::buffers::READ_POOL;
use crate::plan::Plan;

/// Bytes of one window of a streamed table (one shared read buffer).
const WINDOW: usize = 1 << 20;

/// Files up to this size with two search lists to change are edited and
/// verified wholly in memory (the two edits compose there).
pub const IN_MEMORY_LIMIT: u64 = 256 << 20;

/// Files up to this size are read whole (one `read` is the cheapest way to
/// get a small file's headers); larger ones with one search list to change
/// are planned and verified range by range and never held in memory: the
/// cost of fixing a file does not depend on its size.
const READ_WHOLE_LIMIT: u64 = 1 << 20;

/// Whether a file of `len` bytes with `plans` (and an interpreter change,
/// `interp`) is edited in memory.
pub(crate) fn in_memory(len: u64, plans: &[&Plan], interp: Option<&str>) -> bool {
    let edits = plans.len() + usize::from(interp.is_some());
    len <= READ_WHOLE_LIMIT || (edits > 1 && len <= IN_MEMORY_LIMIT)
}

/// The editor's request for one plan, scrubbing the hashes it removes.
fn request<'a>(p: &'a Plan, scrub: &'a [&'a [u8]]) -> EditRequest<'a> {
    EditRequest {
        tag: p.tag,
        new_value: &p.new,
        scrub,
        drop_ldcache_note: true,
    }
}

/// The byte edit `fix` makes to one file for its changing plans, computed
/// without writing anything. `fix` writes it; `cost` predicts from it.
pub(crate) enum PlannedEdit {
    /// Small files, and files up to [`IN_MEMORY_LIMIT`] with several
    /// plans (they compose here): the whole image before and after.
    InMemory {
        original: Vec<u8>,
        /// The byte patches from `original` to the edited image.
        edit: ElfEdit,
    },
    /// Larger files: one plan, planned range by range (the file is never
    /// held in memory): one in-place patch, or a grow that `fix` writes
    /// into the file step by step.
    Large { edit: ElfEdit, old_len: u64 },
}

/// Why the edit of a file could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanEditError {
    /// The file could not be opened, stat'ed or read (which step).
    #[error("cannot {what}: {err}")]
    Io {
        /// `open`, `stat` or `read`.
        what: &'static str,
        /// The error from the system.
        err: std::io::Error,
    },
    /// Setting the interpreter cannot be planned.
    #[error("interpreter: {0}")]
    Interpreter(EditError),
    /// Writing the search list cannot be planned.
    #[error(transparent)]
    SearchPath(EditError),
    /// A file too large to hold in memory with two edits to compose.
    #[error(
        "a file over 256 MiB with two search lists (or a search list and the interpreter) to change is not supported"
    )]
    TwoEditsTooLarge,
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> PlanEditError {
    move |err| PlanEditError::Io { what, err }
}

/// Plan the edit of `path` for `plans` (those that change it) and the
/// interpreter it gets (`interp`, `--interpreter`).
pub(crate) fn plan_file_edit(
    path: &Path,
    plans: &[&Plan],
    interp: Option<&str>,
) -> Result<PlannedEdit, PlanEditError> {
    let file = crate::elf::open_for_reading(path).map_err(io("open"))?;
    let len = file.metadata().map_err(io("stat"))?.len();
    if in_memory(len, plans, interp) {
        let mut original = Vec::with_capacity(len as usize);
        std::io::Read::read_to_end(&mut &file, &mut original).map_err(io("read"))?;
        let (_, edit) = edit_image(&original, plans, interp)?;
        return Ok(PlannedEdit::InMemory { original, edit });
    }
    Ok(PlannedEdit::Large {
        edit: plan_large_edit(&file, len, plans, interp)?,
        old_len: len,
    })
}

/// The whole edited image of a file held in memory, and the byte edit from
/// the original to it (several plans on one file compose here). The
/// interpreter goes first: a longer one opens a segment at the end that the
/// search path's grow then extends, with `.dynstr` last, where a later grow
/// rewrites it in place.
pub(crate) fn edit_image(
    original: &[u8],
    plans: &[&Plan],
    interp: Option<&str>,
) -> Result<(Vec<u8>, ElfEdit), PlanEditError> {
    let mut edited = original.to_vec();
    let mut edits = Vec::new();
    if let Some(i) = interp {
        let e = edit::plan_interpreter(&edited[..], edited.len() as u64, i, &[])
            .map_err(PlanEditError::Interpreter)?;
        edit::apply_in_memory(&mut edited, &e);
        edits.push(e);
    }
    for p in plans {
        let scrub: Vec<&[u8]> = p.removed_hashes.iter().map(|h| h.as_bytes()).collect();
        let e = edit::plan_edit(&edited[..], edited.len() as u64, &request(p, &scrub))
            .map_err(PlanEditError::SearchPath)?;
        edit::apply_in_memory(&mut edited, &e);
        edits.push(e);
    }
    // One edit is its own patch list; several compose by diffing.
    let edit = match <[ElfEdit; 1]>::try_from(edits) {
        Ok([e]) => e,
        Err(_) => diff_edit(original, &edited),
    };
    Ok((edited, edit))
}

/// A file not held in memory: one plan or the interpreter, read range by
/// range.
pub(crate) fn plan_large_edit(
    file: &std::fs::File,
    len: u64,
    plans: &[&Plan],
    interp: Option<&str>,
) -> Result<ElfEdit, PlanEditError> {
    let cache = ReadCache::new(file);
    let source = LargeFile::new(&cache, file);
    let p = match (plans, interp) {
        ([p], None) => p,
        ([], Some(i)) => {
            return edit::plan_interpreter(source, len, i, &[]).map_err(PlanEditError::Interpreter);
        }
        _ => return Err(PlanEditError::TwoEditsTooLarge),
    };
    let scrub: Vec<&[u8]> = p.removed_hashes.iter().map(|h| h.as_bytes()).collect();
    edit::plan_edit(source, len, &request(p, &scrub)).map_err(PlanEditError::SearchPath)
}

/// The edit that turns `old` into `new`: runs of differing bytes (runs closer
/// than 64 bytes merge), plus whatever `new` appends. Several planned edits
/// on one file compose into one, so the writer sees a single change.
fn diff_edit(old: &[u8], new: &[u8]) -> ElfEdit {
    const GAP: usize = 64;
    let common = old.len().min(new.len());
    let mut patches: Vec<edit::Patch> = Vec::new();
    let mut i = 0;
    while i < common {
        if old[i] == new[i] {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i + 1;
        let mut j = end;
        while j < common && j - end < GAP {
            if old[j] != new[j] {
                end = j + 1;
            }
            j += 1;
        }
        patches.push(edit::Patch {
            offset: start as u64,
            bytes: new[start..end].to_vec(),
        });
        i = end;
    }
    if new.len() > old.len() {
        patches.push(edit::Patch {
            offset: old.len() as u64,
            bytes: new[old.len()..].to_vec(),
        });
    }
    ElfEdit {
        patches,
        new_len: new.len() as u64,
        grew: new.len() > old.len(),
    }
}

/// A file too large to hold in memory: ranges through a [`ReadCache`]
/// (headers, the dynamic array, `.dynstr`), tables streamed with `pread`
/// into a shared read buffer.
#[derive(Clone, Copy)]
pub(crate) struct LargeFile<'a> {
    cache: &'a ReadCache<&'a File>,
    file: &'a File,
}

impl<'a> LargeFile<'a> {
    pub(crate) fn new(cache: &'a ReadCache<&'a File>, file: &'a File) -> Self {
        LargeFile { cache, file }
    }
}

impl<'a> ReadRef<'a> for LargeFile<'a> {
    fn len(self) -> Result<u64, ()> {
        self.cache.len()
    }

    fn read_bytes_at(self, offset: u64, size: u64) -> Result<&'a [u8], ()> {
        self.cache.read_bytes_at(offset, size)
    }

    fn read_bytes_at_until(self, range: Range<u64>, delimiter: u8) -> Result<&'a [u8], ()> {
        self.cache.read_bytes_at_until(range, delimiter)
    }
}

impl<'a> Source<'a> for LargeFile<'a> {
    fn windows(
        self,
        off: u64,
        len: u64,
        unit: usize,
        f: &mut WindowFn<'_>,
    ) -> Result<(), EditError> {
        let step = (WINDOW / unit.max(1)).max(1) * unit.max(1);
        let mut lease = READ_POOL.take(step);
        let mut pos = 0u64;
        while pos < len {
            let n = (len - pos).min(step as u64) as usize;
            let buf = &mut lease[..n];
            let at = off.checked_add(pos).ok_or_else(source::outside)?;
            std::os::unix::fs::FileExt::read_exact_at(self.file, buf, at).map_err(|e| {
                EditError::Malformed(format!("cannot read a table at offset {at:#x}: {e}"))
            })?;
            f(pos, buf)?;
            pos += n as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::diff_edit;

    /// Applying the patches to `old` (grown to the new length) gives `new`.
    fn apply(old: &[u8], e: &crate::edit::ElfEdit) -> Vec<u8> {
        let mut v = old.to_vec();
        v.resize(e.new_len as usize, 0);
        for p in &e.patches {
            let at = p.offset as usize;
            v[at..at + p.bytes.len()].copy_from_slice(&p.bytes);
        }
        v
    }

    #[test]
    fn equal_inputs_need_no_patch() {
        let e = diff_edit(b"same bytes", b"same bytes");
        assert!(e.patches.is_empty() && !e.grew);
        assert_eq!(e.new_len, 10);
    }

    /// Runs closer than 64 bytes merge into one patch; farther apart they
    /// stay two, each only as long as its run.
    #[test]
    fn close_runs_merge_far_runs_do_not() {
        let old = vec![0u8; 400];
        let mut near = old.clone();
        near[10] = 1;
        near[10 + 63] = 1;
        let e = diff_edit(&old, &near);
        assert_eq!(e.patches.len(), 1);
        assert_eq!((e.patches[0].offset, e.patches[0].bytes.len()), (10, 64));
        assert_eq!(apply(&old, &e), near);

        let mut far = old.clone();
        far[10] = 1;
        far[10 + 65] = 2;
        far[300..303].copy_from_slice(b"abc");
        let e = diff_edit(&old, &far);
        let spans: Vec<(u64, usize)> = e
            .patches
            .iter()
            .map(|p| (p.offset, p.bytes.len()))
            .collect();
        assert_eq!(spans, vec![(10, 1), (75, 1), (300, 3)]);
        assert_eq!(apply(&old, &e), far);
    }

    /// Bytes past the old end come as one appended patch, and the edit says
    /// the file grew.
    #[test]
    fn growth_is_one_appended_patch() {
        let old = b"ELF header and data".to_vec();
        let mut new = old.clone();
        new[0] = b'X';
        new.extend_from_slice(&[7u8; 100]);
        let e = diff_edit(&old, &new);
        assert!(e.grew);
        assert_eq!(e.new_len, new.len() as u64);
        let last = e.patches.last().unwrap();
        assert_eq!((last.offset, last.bytes.len()), (old.len() as u64, 100));
        assert_eq!(apply(&old, &e), new);
    }
}

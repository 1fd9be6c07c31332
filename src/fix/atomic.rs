//! Applying an [`ElfEdit`] to a file on disk without ever leaving a broken
//! or half-written file behind.
//!
//! Three ways, chosen by `OpenFile::stage` (what `fix` calls; [`apply`](crate::fix::atomic::apply) is
//! the one-call form for a single file, used by tests and tools):
//! - **in place**: an edit that is one contiguous patch and does not grow the
//!   file is written with a single `pwrite` of just those bytes (then
//!   `fsync`, or a `syncfs` for a batch). A 1 GB library is never copied for
//!   a RUNPATH change.
//! - **in place, journaled**: an edit of several patches (it grows, or frees
//!   bytes elsewhere) is written into the file step by step behind a journal,
//!   so that it always loads as the old or the new object (see
//!   `PendingPatch`, in `atomic/patching.rs`).
//! - **replace**: otherwise (`--hard-links break`, a file whose loader ranges
//!   cannot be found, a read-only file of ours, a running program with
//!   several patches) the file is copied to a temporary file in the same
//!   directory (`.<name>.unfarm-tmp-<pid>-<rand>`, created with `O_EXCL`), the
//!   patches are applied, the copy gets the original's owner (when running
//!   as root), mode and extended attributes, is fsynced (unless a batch),
//!   verified, given the original's access/modification times, and renamed
//!   over the original. On any error the temporary file is removed and the
//!   original is untouched.
//!
//! All three keep the original's atime and mtime (Nix store files have mtime 1).
//! Symlinks are never followed or replaced: the path must name a regular file.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::VerifyError;
use crate::edit::{ElfEdit, Patch};
use crate::walk::TMP_MARK;

mod patching;
#[cfg(test)]
pub(crate) use patching::write_unrecoverable_journal;
pub use patching::{PendingPatch, StepKind};
pub(crate) use patching::{is_journal_name, recover_journal};

/// What to do when the file has more than one hard link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HardLinks {
    /// Edit the shared inode in place: every link sees the fix (the result
    /// reports how many links share it). An edit that needs the copy path
    /// (it grows, or has several patches) is refused, since replacing this
    /// name would leave the other links unfixed.
    EditShared,
    /// Always take the copy path: this name gets a new inode with the fix,
    /// other links keep the old content.
    Break,
    /// Refuse to touch hard-linked files.
    Refuse,
}

/// What the verification hook is given, before anything is changed.
#[derive(Debug, Clone, Copy)]
pub enum Candidate<'a> {
    /// The complete new file, a temporary file beside the original. Renamed
    /// over the original only if the hook returns `Ok`.
    File(&'a Path),
    /// In-place path: the original (still unchanged) and the one patch that
    /// will be written into it if the hook returns `Ok`.
    InPlace {
        /// The file to be patched.
        original: &'a Path,
        /// The bytes to be written into it.
        patch: &'a Patch,
    },
    /// In-place path for an edit of several patches (it grows, or frees
    /// bytes elsewhere): the original (still unchanged) and the whole edit,
    /// written into it step by step (see [`PendingPatch`]) if the hook
    /// returns `Ok`.
    Edit {
        /// The file to be patched.
        original: &'a Path,
        /// The patches to be written into it.
        edit: &'a ElfEdit,
    },
}

/// How the edit was carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The edit had no patches: nothing was written.
    Unchanged,
    /// Bytes were written into the existing inode. `links` is its link
    /// count: above 1, every hard link to the file now sees the change.
    InPlace {
        /// The inode's link count.
        links: u64,
    },
    /// A new file replaced the original by rename (new inode).
    Replaced,
}

/// Why a file could not be edited. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum AtomicError {
    /// The path is a symlink.
    #[error("{0}: is a symlink; refusing to follow or replace it")]
    Symlink(PathBuf),
    /// The path is not a regular file.
    #[error("{0}: not a regular file")]
    NotRegular(PathBuf),
    /// The file has this many hard links and `--hard-links refuse` is in force.
    #[error("{0}: has {1} hard links and the policy refuses hard-linked files")]
    HardLinked(PathBuf, u64),
    /// The file changed between planning and writing (what changed).
    #[error("{0}: changed since the edit was planned ({1})")]
    Changed(PathBuf, String),
    /// Another user's file we may write but whose times we could not put
    /// back (only its owner or root may): left as it was.
    #[error("{0}: owned by uid {1}: its times could not be kept; run as its owner or as root")]
    NotOwner(PathBuf, u32),
    /// The verification hook rejected the new content, or the writer could
    /// not hand over exactly the bytes it checked (why).
    #[error("{0}: verification failed: {1}")]
    Verify(PathBuf, VerifyError),
    /// A system call failed.
    #[error("{path}: {what}: {}", describe(source))]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The error from the system.
        source: io::Error,
    },
}

fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => "permission denied".into(),
        Some(libc::ENOSPC) => "disk full (ENOSPC)".into(),
        Some(libc::EDQUOT) => "disk quota exceeded (EDQUOT)".into(),
        Some(libc::EROFS) => "read-only file system".into(),
        _ => e.to_string(),
    }
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> AtomicError + 'a {
    move |source| AtomicError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// Apply `edit` (planned on the current content of `path`) to `path`.
///
/// `verify` runs before anything is changed (see [`Candidate`]); an `Err`
/// from it leaves the file byte-identical and is returned as
/// [`AtomicError::Verify`]. A read-only file (no write permission) that we
/// own is edited by the copy path instead of in place, keeping its mode.
pub fn apply(
    path: &Path,
    edit: &ElfEdit,
    links: HardLinks,
    verify: impl FnOnce(Candidate<'_>) -> Result<(), VerifyError>,
) -> Result<Method, AtomicError> {
    match stage(path, edit, links, Durability::PerFile, verify)? {
        Staged::Done(m) => Ok(m),
        Staged::Pending(p) => p.commit(Durability::PerFile),
        Staged::Patching(p) => p.finish(Durability::PerFile),
    }
}

/// When written bytes are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `fsync` each file before its rename, and its directory after: every
    /// file is durable when [`apply`] returns.
    PerFile,
    /// No per-file `fsync`: the caller stages a whole batch, calls
    /// `sync_filesystems`, commits every [`PendingRename`], and calls
    /// `sync_filesystems` again. The data still reaches the disk before any
    /// rename does, with one sync per filesystem instead of two per file.
    Batch,
    /// Nothing forced to disk (`fix --no-sync`): a batch whose caller never
    /// syncs. A kill still leaves every file old or new; a power loss may
    /// not. With no sync rounds to save, a small file that grows is written
    /// in place behind its journal, not copied: no new inode, no rename
    /// (2000 growing files: 0.24 s against 0.38 s on ext4).
    Unsynced,
}

/// The outcome of [`stage`].
#[derive(Debug)]
pub enum Staged {
    /// Nothing left to do (unchanged, or written in place).
    Done(Method),
    /// A verified temp file waiting to be renamed over the original.
    Pending(Box<PendingRename>),
    /// A verified edit of several patches, journaled, to be written into
    /// the file step by step.
    Patching(Box<PendingPatch>),
}

/// A verified temp file beside `path`; removed if dropped uncommitted.
#[derive(Debug)]
pub struct PendingRename {
    path: PathBuf,
    guard: TempGuard,
    meta: std::fs::Metadata,
}

impl PendingRename {
    /// The file this rename will replace.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rename the temp file over the original, unless the original changed
    /// since it was staged (then the temp file goes and it is left alone).
    pub(crate) fn commit(mut self, durability: Durability) -> Result<Method, AtomicError> {
        let path = self.path.clone();
        let terr = |what| io_err(&path, what);
        let now = std::fs::symlink_metadata(&path).map_err(terr("cannot stat"))?;
        if let Some(e) = changed_since(&path, &self.meta, &self.meta, &now) {
            return Err(e);
        }
        // A name linked to it meanwhile would keep the old inode: leave the
        // file for the next run, which sees every name.
        if now.nlink() > self.meta.nlink() {
            return Err(AtomicError::Changed(
                path,
                "another name was linked to it since it was read; a rename would leave that name unfixed".into(),
            ));
        }
        let tmp = self
            .guard
            .0
            .clone()
            .ok_or_else(|| AtomicError::NotRegular(path.clone()))?;
        std::fs::rename(&tmp, &path).map_err(terr("cannot rename temporary file over it"))?;
        self.guard.0 = None;
        if durability == Durability::PerFile
            && let Some(dir) = path.parent()
        {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            // The rename is durable only once the directory is synced.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(Method::Replaced)
    }
}

/// `syncfs` once for each filesystem holding one of `paths`: after it, every
/// byte written there (file data, renames) is on disk.
pub(crate) fn sync_filesystems<'a>(
    paths: impl IntoIterator<Item = &'a Path>,
) -> Result<(), AtomicError> {
    let mut seen = std::collections::HashSet::new();
    let mut dirs = std::collections::HashSet::new();
    for p in paths {
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // Many files share a dir: one stat each.
        if !dirs.insert(dir) {
            continue;
        }
        // A dir we cannot stat is one we cannot sync: say so, rather than
        // let renames go ahead unsynced.
        let meta = std::fs::metadata(dir).map_err(io_err(dir, "cannot stat directory to sync"))?;
        if !seen.insert(meta.dev()) {
            continue;
        }
        let d = File::open(dir).map_err(io_err(dir, "cannot open directory to sync"))?;
        rustix::fs::syncfs(&d).map_err(|e| io_err(dir, "cannot sync filesystem")(e.into()))?;
    }
    Ok(())
}

/// Files up to this size whose edit takes several writes are copied whole
/// where the copy keeps everything (see `OpenFile::copies_whole`).
const COPY_WHOLE_LIMIT: u64 = 1 << 20;

/// Like [`apply`], but a copy-path edit stops before the rename, and with
/// [`Durability::Batch`] nothing is fsynced (see [`Durability`]).
pub fn stage(
    path: &Path,
    edit: &ElfEdit,
    links: HardLinks,
    durability: Durability,
    verify: impl FnOnce(Candidate<'_>) -> Result<(), VerifyError>,
) -> Result<Staged, AtomicError> {
    OpenFile::open(path)?.stage(edit, None, links, durability, verify)
}

/// A regular file opened for an edit: read (once) through this read-only
/// descriptor; an in-place write reopens it for writing only after the edit
/// is verified, and only if the path still names the same unchanged file.
/// (Opening every file for writing up front would make an overlayfs copy
/// up each one, and block executing it meanwhile, even when nothing ends up
/// written to it.)
#[derive(Debug)]
pub(crate) struct OpenFile {
    path: PathBuf,
    file: File,
    meta: std::fs::Metadata,
    /// The whole content, once [`Self::read_all`] read it (small files):
    /// the parts the loader reads are then found in memory, not through
    /// dozens of small reads of the file.
    content: std::cell::OnceCell<Vec<u8>>,
}

/// Open `path` (never following a final symlink) with `write` or not, and
/// without updating its access time where allowed (see
/// `elf::open_for_reading`). O_NONBLOCK: a FIFO swapped in after the walk
/// must not hang us.
fn open_nofollow(path: &Path, write: bool) -> io::Result<File> {
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
    let with = |extra| {
        OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(flags | extra)
            .open(path)
    };
    match with(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => with(0),
        r => r,
    }
}

impl OpenFile {
    /// Open `path`, which must be a regular file (never a symlink, never
    /// followed), for reading.
    pub(crate) fn open(path: &Path) -> Result<Self, AtomicError> {
        let file = match open_nofollow(path, false) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(AtomicError::Symlink(path.into()));
            }
            Err(e) => return Err(io_err(path, "cannot open for reading")(e)),
        };
        let meta = file.metadata().map_err(io_err(path, "cannot stat"))?;
        if !meta.is_file() {
            return Err(AtomicError::NotRegular(path.into()));
        }
        Ok(OpenFile {
            path: path.to_owned(),
            file,
            meta,
            content: std::cell::OnceCell::new(),
        })
    }

    pub(crate) fn len(&self) -> u64 {
        self.meta.len()
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The whole content, as of this read (one `read` for a small file).
    pub(crate) fn read_all(&self) -> Result<&[u8], AtomicError> {
        if let Some(v) = self.content.get() {
            return Ok(v);
        }
        let mut v = Vec::new();
        crate::elf::read_up_to(&self.file, &mut v, self.meta.len() as usize)
            .map_err(io_err(&self.path, "cannot read"))?;
        if v.len() as u64 != self.meta.len() {
            return Err(AtomicError::Changed(
                self.path.clone(),
                sizes(v.len() as u64, self.meta.len()),
            ));
        }
        Ok(self.content.get_or_init(|| v))
    }

    /// Carry out `edit` (planned on this content). `image`, when given, is
    /// the complete edited file: the copy path then writes it in one go and
    /// reads it back, instead of copying the original and patching it.
    pub fn stage(
        self,
        edit: &ElfEdit,
        image: Option<&[u8]>,
        links: HardLinks,
        durability: Durability,
        verify: impl FnOnce(Candidate<'_>) -> Result<(), VerifyError>,
    ) -> Result<Staged, AtomicError> {
        let path = self.path.as_path();
        if edit.is_noop() {
            return Ok(Staged::Done(Method::Unchanged));
        }
        if image.is_some_and(|i| i.len() as u64 != edit.new_len) {
            return Err(AtomicError::Verify(
                path.into(),
                VerifyError::LengthDisagrees,
            ));
        }
        let nlink = self.meta.nlink();
        let shared = nlink > 1;
        if shared && links == HardLinks::Refuse {
            return Err(AtomicError::HardLinked(path.into(), nlink));
        }
        if image.is_some()
            && !shared
            && durability != Durability::Unsynced
            && self.copies_whole(edit)
        {
            return self.stage_copy(edit, image, durability, verify);
        }
        // An edit of several writes is ordered by the parts of the file the
        // loader reads; one whose parts we cannot find is replaced instead.
        let multi = edit.single_in_place().is_none();
        let ranges = multi
            .then(|| match self.content.get() {
                Some(bytes) => crate::edit::loader_ranges(&bytes[..], self.meta.len()),
                None => {
                    crate::edit::loader_ranges(&object::ReadCache::new(&self.file), self.meta.len())
                }
            })
            .and_then(Result::ok);
        if multi && ranges.is_none() && shared && links == HardLinks::EditShared {
            return Err(AtomicError::Verify(
                path.into(),
                VerifyError::UnorderedSharedEdit,
            ));
        }
        if (shared && links == HardLinks::Break) || (multi && ranges.is_none()) {
            return self.stage_copy(edit, image, durability, verify);
        }
        let Some(w) = self.open_for_writing(edit, shared)? else {
            return self.stage_copy(edit, image, durability, verify);
        };
        // Writable is not enough: putting the times back after the write
        // takes the owner (or root). Checked before anything is written.
        let euid = geteuid();
        if euid != 0 && self.meta.uid() != euid {
            return Err(AtomicError::NotOwner(path.into(), self.meta.uid()));
        }
        let opened = w.metadata().map_err(io_err(path, "cannot stat"))?;
        let candidate = match edit.single_in_place() {
            Some(patch) => Candidate::InPlace {
                original: path,
                patch,
            },
            None => Candidate::Edit {
                original: path,
                edit,
            },
        };
        verify(candidate).map_err(|m| AtomicError::Verify(path.into(), m))?;
        self.check_unchanged(&w, &opened)?;
        let (Some(patch), None) = (edit.single_in_place(), ranges) else {
            let ranges = ranges.ok_or_else(|| AtomicError::NotRegular(path.into()))?;
            let content = self.content.get().map(Vec::as_slice);
            let mut p = PendingPatch::new(self.path, w, self.meta, edit, ranges, content)?;
            p.write_journal(durability)?;
            return Ok(Staged::Patching(Box::new(p)));
        };
        self.write_in_place(&w, patch, edit.new_len, durability)
    }

    /// A small file with one name whose edit takes several writes (a grow)
    /// is better written whole to a temp file and renamed over: two synced
    /// rounds (the copy, the rename) instead of the journal's five
    /// (journal, append, switch headers, switch `.dynamic`, scrub), and one
    /// new file instead of a journal plus the steps' writes. At this size the
    /// copy is the cheaper (2000 small files, half of them growing: 0.09 s
    /// against 0.14 s on tmpfs; more on disks, where each round is a sync)
    /// and the rename is atomic (not for [`Durability::Unsynced`], with no
    /// rounds to save). Only where the copy keeps everything the
    /// inode has: root, or the caller's own file with no extended attribute
    /// outside `user.*` (a copy could not keep another owner, nor
    /// `security.*` without privileges). Larger files grow in place.
    fn copies_whole(&self, edit: &ElfEdit) -> bool {
        if edit.single_in_place().is_some() || self.meta.len() > COPY_WHOLE_LIMIT {
            return false;
        }
        let euid = geteuid();
        euid == 0
            || (self.meta.uid() == euid
                && xattr_call(
                    || rustix::fs::flistxattr_query(&self.file),
                    |buf| rustix::fs::flistxattr(&self.file, buf),
                )
                .is_ok_and(|names| {
                    names
                        .split(|&b| b == 0)
                        .all(|n| n.is_empty() || n.starts_with(b"user."))
                }))
    }

    /// The copy path: a verified temp file, to be renamed over the file.
    fn stage_copy(
        self,
        edit: &ElfEdit,
        image: Option<&[u8]>,
        durability: Durability,
        verify: impl FnOnce(Candidate<'_>) -> Result<(), VerifyError>,
    ) -> Result<Staged, AtomicError> {
        Ok(Staged::Pending(Box::new(
            self.replace(edit, image, durability, verify)?,
        )))
    }

    /// The file opened for writing, only now that it is to be written; `None`
    /// when the copy path should take it instead.
    fn open_for_writing(&self, edit: &ElfEdit, shared: bool) -> Result<Option<File>, AtomicError> {
        let path = self.path.as_path();
        match open_nofollow(path, true) {
            Ok(w) => Ok(Some(w)),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                Err(AtomicError::Symlink(path.into()))
            }
            // Read-only file of ours: the copy path can keep its mode. A
            // running program (ETXTBSY) is replaced when the edit needs
            // more than one write anyway. Not for shared inodes, where a
            // copy would leave other links stale.
            Err(e)
                if !shared
                    && ((e.raw_os_error() == Some(libc::EACCES)
                        && self.meta.uid() == geteuid())
                        || (e.raw_os_error() == Some(libc::ETXTBSY)
                            && edit.single_in_place().is_none())) =>
            {
                Ok(None)
            }
            Err(e) => Err(io_err(path, "cannot open for writing")(e)),
        }
    }

    /// Refuse a file replaced or modified since we read it: leave it to
    /// whoever did that. overlayfs copies a lower-layer file up when it is
    /// opened for writing (`w`, whose metadata was `opened` then), keeping
    /// device, inode, size and mtime but not the change time: there it
    /// counts from that open.
    fn check_unchanged(&self, w: &File, opened: &std::fs::Metadata) -> Result<(), AtomicError> {
        let path = self.path.as_path();
        let now = w.metadata().map_err(io_err(path, "cannot stat"))?;
        let ctime_from = if on_overlayfs(w) { opened } else { &self.meta };
        match changed_since(path, &self.meta, ctime_from, &now) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The in-place path: one `pwrite` of the one patch into `w` (this file
    /// opened for writing), its times put back.
    fn write_in_place(
        &self,
        w: &File,
        patch: &Patch,
        new_len: u64,
        durability: Durability,
    ) -> Result<Staged, AtomicError> {
        let path = self.path.as_path();
        if self.meta.len() != new_len {
            return Err(AtomicError::Changed(
                path.into(),
                sizes(self.meta.len(), new_len),
            ));
        }
        w.write_all_at(&patch.bytes, patch.offset)
            .map_err(io_err(path, "cannot write"))?;
        if durability == Durability::PerFile {
            w.sync_all().map_err(io_err(path, "cannot fsync"))?;
        }
        set_times(w, &self.meta).map_err(io_err(path, "cannot restore times"))?;
        Ok(Staged::Done(Method::InPlace {
            links: self.meta.nlink(),
        }))
    }

    /// The copy path up to the rename: a temp file beside the original
    /// holding the edited content, with the original's owner, mode, extended
    /// attributes and times, verified.
    fn replace(
        self,
        edit: &ElfEdit,
        image: Option<&[u8]>,
        durability: Durability,
        verify: impl FnOnce(Candidate<'_>) -> Result<(), VerifyError>,
    ) -> Result<PendingRename, AtomicError> {
        let path = self.path.as_path();
        let (tmp, mut out) = create_temp(path)?;
        let guard = TempGuard(Some(tmp.clone()));
        let terr = |what| io_err(path, what);
        match image {
            Some(image) => write_image(path, &mut out, image)?,
            None => self.copy_patched(&mut out, edit)?,
        }
        self.copy_owner_mode_xattrs(&out)?;
        if durability == Durability::PerFile {
            out.sync_all()
                .map_err(terr("cannot fsync temporary file"))?;
        }
        verify(Candidate::File(&tmp)).map_err(|m| AtomicError::Verify(path.into(), m))?;
        // After verification, whose reads may have updated the access time.
        set_times(&out, &self.meta).map_err(terr("cannot set times"))?;
        drop(out);
        // Whether the original changed meanwhile is checked at commit.
        Ok(PendingRename {
            path: self.path,
            guard,
            meta: self.meta,
        })
    }

    /// Copy this file into `out` and apply `edit`'s patches there.
    fn copy_patched(&self, out: &mut File, edit: &ElfEdit) -> Result<(), AtomicError> {
        let path = self.path.as_path();
        let terr = |what| io_err(path, what);
        // From offset 0 whatever read the descriptor before, and all of it.
        let mut f = &self.file;
        let copied = f
            .seek(io::SeekFrom::Start(0))
            .and_then(|_| io::copy(&mut f.take(self.meta.len()), out))
            .map_err(terr("cannot copy to temporary file"))?;
        if copied != self.meta.len() {
            return Err(AtomicError::Changed(
                path.into(),
                sizes(copied, self.meta.len()),
            ));
        }
        if edit.new_len > self.meta.len() {
            out.set_len(edit.new_len)
                .map_err(terr("cannot extend temporary file"))?;
        }
        for p in &edit.patches {
            out.write_all_at(&p.bytes, p.offset)
                .map_err(terr("cannot write temporary file"))?;
        }
        Ok(())
    }

    /// Give `out` (a new file of ours) this file's owner, mode and extended
    /// attributes, in the order that keeps each.
    fn copy_owner_mode_xattrs(&self, out: &File) -> Result<(), AtomicError> {
        let terr = |what| io_err(&self.path, what);
        // A new file is ours; only root can (and must) hand it back.
        if geteuid() == 0 {
            let have = out
                .metadata()
                .map(|m| (m.uid(), m.gid()))
                .map_err(terr("cannot stat temporary file"))?;
            if have != (self.meta.uid(), self.meta.gid()) {
                std::os::unix::fs::fchown(out, Some(self.meta.uid()), Some(self.meta.gid()))
                    .map_err(terr("cannot set owner"))?;
            }
        }
        // Always, and after chown (which clears set-id bits): the mode at
        // creation went through the umask or a directory's default ACL.
        out.set_permissions(std::fs::Permissions::from_mode(self.meta.mode() & 0o7777))
            .map_err(terr("cannot set mode"))?;
        // After chown, which drops `security.capability`; an ACL set here
        // keeps the mode just set.
        copy_xattrs(&self.file, out).map_err(terr("cannot copy extended attributes"))
    }
}

/// A new temp file beside `path` (`O_EXCL`, mode 0600), named
/// `.NAME.unfarm-tmp-PID-RAND` (the walker skips it, `cleanup_stale_temps`
/// reads the PID) with `tempfile`'s random part and retries.
fn create_temp(path: &Path) -> Result<(PathBuf, File), AtomicError> {
    let name = path
        .file_name()
        .ok_or_else(|| AtomicError::NotRegular(path.into()))?
        .to_string_lossy();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let pid = *PID.get_or_init(std::process::id);
    // Say which directory could not be written.
    let err = |e| io_err(dir, "cannot create a temporary file in this directory")(e);
    // `make_in`, not `tempfile_in`: our open, and its error as the OS gave
    // it (tempfile_in's carries the temp path, and hides the code
    // `describe` reads).
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}{TMP_MARK}{pid}-"))
        .rand_bytes(8)
        .make_in(dir, |p| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(p)
        })
        .map_err(err)?;
    // Ours to remove from here on (`TempGuard`), not tempfile's.
    let (f, p) = tmp.keep().map_err(|e| err(e.error))?;
    Ok((p, f))
}

/// Write the verified `image` of `path` into `out` and read it back: what
/// the rename will publish is exactly the verified image.
fn write_image(path: &Path, out: &mut File, image: &[u8]) -> Result<(), AtomicError> {
    let terr = |what| io_err(path, what);
    out.write_all(image)
        .map_err(terr("cannot write temporary file"))?;
    let mut back = vec![0; image.len()];
    out.read_exact_at(&mut back, 0)
        .map_err(terr("cannot read back temporary file"))?;
    if back != image {
        return Err(AtomicError::Verify(path.into(), VerifyError::CopyDiffers));
    }
    Ok(())
}

/// Copy every extended attribute of `from` to `to`. Namespaces only root
/// may write (`trusted.`, `security.`) are skipped when we may not.
fn copy_xattrs(from: &File, to: &File) -> io::Result<()> {
    use rustix::fs::{fgetxattr, fgetxattr_query, flistxattr, flistxattr_query};
    let names = xattr_call(|| flistxattr_query(from), |buf| flistxattr(from, buf))?;
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let value = xattr_call(
            || fgetxattr_query(from, name),
            |buf| fgetxattr(from, name, buf),
        )?;
        if let Err(e) = rustix::fs::fsetxattr(to, name, &value, rustix::fs::XattrFlags::empty()) {
            let privileged = !name.starts_with(b"user.") && !name.starts_with(b"system.");
            if !(privileged && e == rustix::io::Errno::PERM) {
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// Ask an xattr call for its size, then fill a buffer that big, again
/// while it comes back too small (an attribute may grow between the two
/// calls). ENOTSUP: none.
fn xattr_call(
    query: impl Fn() -> rustix::io::Result<usize>,
    fill: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
) -> io::Result<Vec<u8>> {
    use rustix::io::Errno;
    loop {
        let n = match query() {
            Ok(n) => n,
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; n];
        match fill(&mut buf) {
            Ok(got) => {
                buf.truncate(got);
                return Ok(buf);
            }
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The effective uid, asked once: a run never changes it, and each file
/// asked twice (a system call each, 2000 files: 4000).
fn geteuid() -> u32 {
    static EUID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *EUID.get_or_init(|| rustix::process::geteuid().as_raw())
}

/// Removes the temporary file unless disarmed (after a successful rename).
#[derive(Debug)]
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

use std::os::unix::fs::PermissionsExt;

fn set_times(f: &File, meta: &std::fs::Metadata) -> io::Result<()> {
    f.set_times(
        std::fs::FileTimes::new()
            .set_accessed(meta.accessed()?)
            .set_modified(meta.modified()?),
    )
}

fn process_exists(pid: i32) -> bool {
    rustix::process::Pid::from_raw(pid).is_some_and(|p| {
        matches!(
            rustix::process::test_kill_process(p),
            Ok(()) | Err(rustix::io::Errno::PERM)
        )
    })
}

/// Whether `f` lies on overlayfs.
fn on_overlayfs(f: &File) -> bool {
    /// `OVERLAYFS_SUPER_MAGIC` from linux/magic.h.
    const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
    // `f_type`'s width differs between targets.
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::fstatfs(f).is_ok_and(|st| st.f_type as i64 == OVERLAYFS_SUPER_MAGIC)
}

/// Whether `path` (now `now`) differs from the file read (`meta`); the change
/// time is compared with `ctime_from`'s.
fn changed_since(
    path: &Path,
    meta: &std::fs::Metadata,
    ctime_from: &std::fs::Metadata,
    now: &std::fs::Metadata,
) -> Option<AtomicError> {
    // The change time too: Nix outputs all have mtime 1, so a writer that
    // puts the mtime back (as we do) shows only there. Not when the link
    // count moved, which changes it too: another name of the inode renamed
    // over (`--hard-links break` on two names) is not a write.
    let ctime_moved = now.nlink() == ctime_from.nlink()
        && (now.ctime(), now.ctime_nsec()) != (ctime_from.ctime(), ctime_from.ctime_nsec());
    let what = if (now.dev(), now.ino()) != (meta.dev(), meta.ino()) {
        "replaced by another file".to_string()
    } else if now.len() != meta.len() {
        sizes(now.len(), meta.len())
    } else if (now.mtime(), now.mtime_nsec()) != (meta.mtime(), meta.mtime_nsec()) {
        "modified: its mtime moved".to_string()
    } else if ctime_moved {
        "modified: its change time moved".to_string()
    } else {
        return None;
    };
    Some(AtomicError::Changed(path.into(), what))
}

fn sizes(now: u64, expected: u64) -> String {
    format!("size {now}, expected {expected}")
}

/// Remove temporary files (`.*.unfarm-tmp-<pid>-*`) left in `dir` by a run
/// that was killed; a journal of an in-place edit first rolls its file back
/// (see [`recover_journal`]). Files whose `<pid>` is a running process other than this
/// one are kept: they may belong to a concurrent run. Returns how many were
/// removed.
pub(crate) fn cleanup_stale_temps(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(idx) = name.find(TMP_MARK) else {
            continue;
        };
        if !name.starts_with('.') || !entry.file_type()?.is_file() {
            continue;
        }
        let journal = is_journal_name(&name);
        let pid: Option<i32> = name[idx + TMP_MARK.len()..]
            .split('-')
            .next()
            .and_then(|p| p.parse().ok());
        if let Some(pid) = pid
            && pid > 0
            && u32::try_from(pid) != Ok(std::process::id())
            && process_exists(pid)
        {
            continue;
        }
        // A killed in-place edit: its file goes back to the old bytes.
        if journal {
            recover_journal(&entry.path())?;
            removed += 1;
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn patch(offset: u64, bytes: &[u8]) -> Patch {
        Patch {
            offset,
            bytes: bytes.to_vec(),
        }
    }
    fn small(len: u64) -> ElfEdit {
        ElfEdit {
            patches: vec![patch(10, b"XYZ")],
            new_len: len,
            grew: false,
        }
    }
    fn grow(len: u64) -> ElfEdit {
        ElfEdit {
            patches: vec![patch(2, b"A"), patch(len + 100, b"TAIL")],
            new_len: len + 104,
            grew: true,
        }
    }

    /// `path` staged for a grow edit (the copy path), not yet renamed.
    fn staged_grow(path: &Path, len: u64) -> Box<PendingRename> {
        match stage(path, &grow(len), HardLinks::Refuse, Durability::Batch, ok).unwrap() {
            Staged::Pending(p) => p,
            _ => panic!("a grow edit of a non-ELF file takes the copy path"),
        }
    }
    fn setup() -> (tempfile::TempDir, PathBuf, Vec<u8>) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("libx.so");
        let content: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8 + 1).collect();
        std::fs::write(&p, &content).unwrap();
        // Nix store style times.
        let f = File::open(&p).unwrap();
        let t = std::fs::FileTimes::new()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1))
            .set_accessed(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1));
        f.set_times(t).unwrap();
        (d, p, content)
    }
    fn ok(_: Candidate<'_>) -> Result<(), VerifyError> {
        Ok(())
    }
    fn no_temps(dir: &Path) {
        let n = std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(TMP_MARK)
            })
            .count();
        assert_eq!(n, 0, "temporary file left behind");
    }

    #[test]
    fn in_place_writes_only_the_range() {
        let (d, p, before) = setup();
        let ino = std::fs::metadata(&p).unwrap().ino();
        let m = apply(&p, &small(before.len() as u64), HardLinks::Refuse, ok).unwrap();
        assert_eq!(m, Method::InPlace { links: 1 });
        let after = std::fs::read(&p).unwrap();
        assert_eq!(after.len(), before.len());
        for i in 0..before.len() {
            if !(10..13).contains(&i) {
                assert_eq!(after[i], before[i], "byte {i} changed");
            }
        }
        assert_eq!(&after[10..13], b"XYZ");
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(meta.ino(), ino);
        assert_eq!(meta.mtime(), 1);
        no_temps(d.path());
    }

    #[test]
    fn copy_path_preserves_mode_and_times() {
        let (d, p, before) = setup();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o751)).unwrap();
        let ino = std::fs::metadata(&p).unwrap().ino();
        let e = grow(before.len() as u64);
        let mut seen = None;
        let m = apply(&p, &e, HardLinks::Refuse, |c| {
            if let Candidate::File(t) = c {
                seen = Some(std::fs::read(t).unwrap());
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(m, Method::Replaced);
        // Before reading it ourselves (reads update atime).
        let meta = std::fs::metadata(&p).unwrap();
        let after = std::fs::read(&p).unwrap();
        assert_eq!(seen.as_ref(), Some(&after), "verify saw a different file");
        let mut expect = before.clone();
        crate::edit::apply_in_memory(&mut expect, &e);
        assert_eq!(after, expect);
        assert_ne!(meta.ino(), ino);
        assert_eq!(meta.mode() & 0o7777, 0o751);
        assert_eq!(meta.mtime(), 1);
        assert_eq!(meta.atime(), 1);
        no_temps(d.path());
    }

    #[test]
    fn verify_failure_leaves_file_identical() {
        let (d, p, before) = setup();
        for e in [small(before.len() as u64), grow(before.len() as u64)] {
            let r = apply(&p, &e, HardLinks::Refuse, |_| {
                Err(VerifyError::NeededOrSoname)
            });
            assert!(matches!(r, Err(AtomicError::Verify(_, _))), "{r:?}");
            assert_eq!(std::fs::read(&p).unwrap(), before);
            assert_eq!(std::fs::metadata(&p).unwrap().mtime(), 1);
            no_temps(d.path());
        }
    }

    #[test]
    fn batch_stage_changes_nothing_until_commit() {
        let (d, p, before) = setup();
        let pending = staged_grow(&p, before.len() as u64);
        // Staged: the original is untouched, the temp file exists.
        assert_eq!(std::fs::read(&p).unwrap(), before);
        assert_eq!(
            std::fs::read_dir(d.path())
                .unwrap()
                .filter(|e| crate::walk::is_temp_name(&e.as_ref().unwrap().file_name()))
                .count(),
            1
        );
        sync_filesystems([p.as_path()]).unwrap();
        assert_eq!(pending.commit(Durability::Batch).unwrap(), Method::Replaced);
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            grow(before.len() as u64).new_len
        );
        no_temps(d.path());

        // Dropped uncommitted: the temp file goes, the file stays as it was.
        let now = std::fs::read(&p).unwrap();
        let e = grow(now.len() as u64);
        let staged = stage(&p, &e, HardLinks::Refuse, Durability::Batch, ok).unwrap();
        drop(staged);
        assert_eq!(std::fs::read(&p).unwrap(), now);
        no_temps(d.path());
    }

    #[test]
    fn hard_link_policies() {
        let (d, p, before) = setup();
        let other = d.path().join("other-name.so");
        std::fs::hard_link(&p, &other).unwrap();
        let len = before.len() as u64;

        let r = apply(&p, &small(len), HardLinks::Refuse, ok);
        assert!(matches!(r, Err(AtomicError::HardLinked(_, 2))));
        let r = apply(&p, &grow(len), HardLinks::EditShared, ok);
        // Not an ELF file: its writes cannot be ordered, and a copy would
        // leave the other name stale.
        assert!(matches!(r, Err(AtomicError::Verify(..))), "{r:?}");
        assert_eq!(std::fs::read(&other).unwrap(), before);

        // Shared in-place edit: both names see it.
        let m = apply(&p, &small(len), HardLinks::EditShared, ok).unwrap();
        assert_eq!(m, Method::InPlace { links: 2 });
        assert_eq!(&std::fs::read(&other).unwrap()[10..13], b"XYZ");

        // Break: this name gets its own inode; the other keeps old content.
        let snapshot = std::fs::read(&other).unwrap();
        let m = apply(&p, &grow(len), HardLinks::Break, ok).unwrap();
        assert_eq!(m, Method::Replaced);
        assert_eq!(std::fs::read(&other).unwrap(), snapshot);
        assert_eq!(std::fs::metadata(&other).unwrap().nlink(), 1);
        assert_eq!(std::fs::read(&p).unwrap().len() as u64, len + 104);
    }

    #[test]
    fn read_only_file_keeps_mode() {
        let (d, p, before) = setup();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).unwrap();
        let m = apply(&p, &small(before.len() as u64), HardLinks::Refuse, ok).unwrap();
        // Root may open a read-only file for writing; anyone else copies.
        let expect = if geteuid() == 0 {
            Method::InPlace { links: 1 }
        } else {
            Method::Replaced
        };
        assert_eq!(m, expect);
        assert_eq!(&std::fs::read(&p).unwrap()[10..13], b"XYZ");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o444);
        no_temps(d.path());
    }

    #[test]
    fn symlink_is_refused() {
        let (d, p, before) = setup();
        let l = d.path().join("link.so");
        std::os::unix::fs::symlink(&p, &l).unwrap();
        let r = apply(&l, &small(before.len() as u64), HardLinks::Break, ok);
        assert!(matches!(r, Err(AtomicError::Symlink(_))));
        assert!(r.unwrap_err().to_string().contains("symlink"));
        assert_eq!(std::fs::read(&p).unwrap(), before);
        assert!(
            std::fs::symlink_metadata(&l)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn changed_file_is_refused() {
        let (_d, p, before) = setup();
        let r = apply(&p, &small(before.len() as u64 + 1), HardLinks::Refuse, ok);
        assert!(matches!(r, Err(AtomicError::Changed(..))));
        assert_eq!(std::fs::read(&p).unwrap(), before);
    }

    #[test]
    fn image_is_written_whole_and_read_back() {
        let (d, p, before) = setup();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o750)).unwrap();
        let e = grow(before.len() as u64);
        let mut image = before.clone();
        crate::edit::apply_in_memory(&mut image, &e);
        let f = OpenFile::open(&p).unwrap();
        assert_eq!(f.read_all().unwrap(), before);
        let Staged::Pending(pending) = f
            .stage(&e, Some(&image), HardLinks::Refuse, Durability::Batch, ok)
            .unwrap()
        else {
            panic!("a grow edit takes the copy path");
        };
        assert_eq!(std::fs::read(&p).unwrap(), before, "nothing replaced yet");
        assert_eq!(pending.commit(Durability::Batch).unwrap(), Method::Replaced);
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), image);
        assert_eq!(meta.mode() & 0o7777, 0o750);
        assert_eq!(meta.mtime(), 1);
        no_temps(d.path());

        // An image that disagrees with the edit is refused, nothing written.
        let f = OpenFile::open(&p).unwrap();
        let e = grow(image.len() as u64);
        let r = f.stage(&e, Some(&image), HardLinks::Refuse, Durability::Batch, ok);
        assert!(matches!(r, Err(AtomicError::Verify(..))), "{r:?}");
        assert_eq!(std::fs::read(&p).unwrap(), image);
        no_temps(d.path());
    }

    /// Another writer renames a file of the same size and mtime (1, as in
    /// the Nix store) over `p`: only the inode tells. Returns its bytes.
    fn rename_over_with_same_size_and_mtime(dir: &Path, p: &Path, before: &[u8]) -> Vec<u8> {
        let other = dir.join("other");
        let mut theirs = before.to_vec();
        theirs[0] ^= 0xff;
        std::fs::write(&other, &theirs).unwrap();
        let t = std::fs::FileTimes::new()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1));
        File::options()
            .write(true)
            .open(&other)
            .unwrap()
            .set_times(t)
            .unwrap();
        std::fs::rename(&other, p).unwrap();
        theirs
    }

    #[test]
    fn file_replaced_after_staging_is_left_alone() {
        // Same size and mtime, another inode: only its identity tells.
        let (d, p, before) = setup();
        let pending = staged_grow(&p, before.len() as u64);
        let theirs = rename_over_with_same_size_and_mtime(d.path(), &p, &before);
        let r = pending.commit(Durability::Batch);
        assert!(matches!(r, Err(AtomicError::Changed(..))), "{r:?}");
        assert_eq!(std::fs::read(&p).unwrap(), theirs);
        no_temps(d.path());
    }

    #[test]
    fn a_name_linked_after_staging_stops_the_rename() {
        // The rename would leave the new name with the old inode.
        let (d, p, before) = setup();
        let pending = staged_grow(&p, before.len() as u64);
        let other = d.path().join("libx-alias.so");
        std::fs::hard_link(&p, &other).unwrap();
        let r = pending.commit(Durability::Batch);
        assert!(
            matches!(&r, Err(AtomicError::Changed(_, why)) if why.contains("another name was linked")),
            "{r:?}"
        );
        assert_eq!(std::fs::read(&p).unwrap(), before);
        assert_eq!(
            std::fs::metadata(&p).unwrap().ino(),
            std::fs::metadata(&other).unwrap().ino()
        );
        no_temps(d.path());
    }

    #[test]
    fn file_rewritten_after_staging_with_its_mtime_put_back_is_left_alone() {
        // Same inode, size and mtime: only the change time tells.
        let (d, p, before) = setup();
        let pending = staged_grow(&p, before.len() as u64);
        let old = std::fs::metadata(&p).unwrap();
        // The change time ticks at the kernel's coarse clock.
        std::thread::sleep(std::time::Duration::from_millis(30));
        let mut theirs = before.clone();
        theirs[0] ^= 0xff;
        let f = File::options().write(true).open(&p).unwrap();
        f.write_all_at(&theirs, 0).unwrap();
        f.set_times(std::fs::FileTimes::new().set_modified(old.modified().unwrap()))
            .unwrap();
        drop(f);
        let now = std::fs::metadata(&p).unwrap();
        assert_eq!((now.len(), now.ino()), (old.len(), old.ino()));
        assert_eq!(now.modified().unwrap(), old.modified().unwrap());
        let r = pending.commit(Durability::Batch);
        assert!(matches!(r, Err(AtomicError::Changed(..))), "{r:?}");
        assert_eq!(std::fs::read(&p).unwrap(), theirs);
        no_temps(d.path());
    }

    #[test]
    fn copy_path_copies_from_the_start_after_a_read() {
        // `read_all` leaves the descriptor's offset at the end; the copy
        // must still be the whole file.
        let (d, p, before) = setup();
        let f = OpenFile::open(&p).unwrap();
        assert_eq!(f.read_all().unwrap(), before);
        let e = grow(before.len() as u64);
        let Staged::Pending(pending) = f
            .stage(&e, None, HardLinks::Refuse, Durability::Batch, ok)
            .unwrap()
        else {
            panic!("a grow edit takes the copy path");
        };
        pending.commit(Durability::Batch).unwrap();
        let mut expect = before.clone();
        crate::edit::apply_in_memory(&mut expect, &e);
        assert_eq!(std::fs::read(&p).unwrap(), expect);
        no_temps(d.path());
    }

    #[test]
    fn in_place_edit_of_a_replaced_path_is_refused() {
        // Read, then the path is renamed over by a file of the same size
        // and mtime: the write must not go to either.
        let (d, p, before) = setup();
        let f = OpenFile::open(&p).unwrap();
        let theirs = rename_over_with_same_size_and_mtime(d.path(), &p, &before);
        let r = f.stage(
            &small(before.len() as u64),
            None,
            HardLinks::Refuse,
            Durability::Batch,
            ok,
        );
        assert!(matches!(r, Err(AtomicError::Changed(..))), "{r:?}");
        assert_eq!(std::fs::read(&p).unwrap(), theirs);
    }

    #[test]
    fn fifo_is_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("libfifo.so");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let r = OpenFile::open(&fifo);
        assert!(matches!(r, Err(AtomicError::NotRegular(_))), "{r:?}");
    }

    #[test]
    fn running_program_is_replaced_not_written() {
        // A running executable cannot be opened for writing (ETXTBSY): the
        // copy path replaces it; an in-place edit says why it cannot.
        let d = tempfile::tempdir().unwrap();
        let prog = d.path().join("sleep");
        std::fs::copy("/bin/sleep", &prog).unwrap();
        let mut child = std::process::Command::new(&prog).arg("30").spawn().unwrap();
        let before = std::fs::read(&prog).unwrap();
        let len = before.len() as u64;
        let r = apply(&prog, &small(len), HardLinks::Refuse, ok);
        let msg = r
            .as_ref()
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(
            matches!(r, Err(AtomicError::Io { .. })) && msg.contains("cannot open for writing"),
            "{r:?}"
        );
        assert_eq!(std::fs::read(&prog).unwrap(), before);
        let m = apply(&prog, &grow(len), HardLinks::Refuse, ok);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(m.unwrap(), Method::Replaced);
        assert_eq!(std::fs::metadata(&prog).unwrap().len(), len + 104);
        no_temps(d.path());
    }

    #[test]
    fn errors_name_file_and_cause() {
        let e = AtomicError::Io {
            path: "/nix/store/x/lib/libfoo.so".into(),
            what: "cannot write",
            source: io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert_eq!(
            e.to_string(),
            "/nix/store/x/lib/libfoo.so: cannot write: disk full (ENOSPC)"
        );
        let e = AtomicError::Io {
            path: "f".into(),
            what: "cannot open for writing",
            source: io::Error::from_raw_os_error(libc::EROFS),
        };
        assert!(e.to_string().ends_with("read-only file system"));
    }

    /// tempfile's error carries the temp file's path: the line names the
    /// dir once, with the OS error alone (so `describe` still reads it).
    #[test]
    fn temp_file_errors_name_the_dir_once() {
        let d = tempfile::tempdir().unwrap();
        let gone = d.path().join("gone");
        let e = create_temp(&gone.join("libx.so")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: cannot create a temporary file in this directory: {}",
                gone.display(),
                io::Error::from_raw_os_error(libc::ENOENT)
            )
        );
    }

    #[test]
    fn stale_temps_are_cleaned() {
        let (d, p, _) = setup();
        // pid 0x7fffffff cannot be running; our own pid counts as stale too.
        let dead = d.path().join(".libx.so.unfarm-tmp-2147483647-deadbeef");
        let mine = d
            .path()
            .join(format!(".libx.so.unfarm-tmp-{}-0", std::process::id()));
        let live = d.path().join(".libx.so.unfarm-tmp-1-0"); // init is running
        for f in [&dead, &mine, &live] {
            std::fs::write(f, b"junk").unwrap();
        }
        assert_eq!(cleanup_stale_temps(d.path()).unwrap(), 2);
        assert!(!dead.exists() && !mine.exists());
        assert!(live.exists());
        assert!(p.exists());
    }
}

//! `unfarm fix`: turn a survey's plans into edited files, one file at a time,
//! in parallel. For each file: plan the byte edit (`edit::planned`), apply it to
//! a copy in memory (a file over 1 MiB with one list to change: read range
//! by range, never whole, and checked as the original read through the
//! edit's patches), check the result's
//! structure, re-read its facts and re-resolve every need against the real
//! filesystem, and only then write (see [`atomic`]). Any failure
//! leaves the file as it was and is reported.

/// Writing an edit safely: in place with a journal, or by staging and renaming.
pub mod atomic;
mod error;
/// A plan becomes the byte edit of a file on disk (shared with `cost`).
pub use crate::edit::planned::IN_MEMORY_LIMIT;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use object::ReadCache;
use rayon::prelude::*;
use serde::Serialize;

use crate::edit::planned::{edit_image, in_memory, plan_large_edit};
use atomic::HardLinks;
use error::FileError;
pub use error::{ReadBack, VerifyError};

use crate::edit::{self, ElfEdit};
use crate::elf::{self, ElfFacts};
use crate::loader::resolve::{self, FsProbe, LoaderConfig, Requester, SearchDir, Source};
use crate::plan::{Plan, PlanOptions};
use crate::store::{HASH_LEN, StoreDir};
use crate::survey::{FarmLink, ObjectSurvey, Survey};

/// How `fix` writes files.
#[derive(Clone, Debug)]
pub struct FixOptions {
    /// What to do with a file that has more than one hard link.
    pub hard_links: HardLinks,
    /// Force the writes to disk (`syncfs`) before and after the renames and
    /// between the steps of in-place edits. Without it every file is still
    /// replaced atomically or journaled (a killed run leaves each file old or
    /// new), but a power loss may lose the change: right inside a Nix build,
    /// where a crash discards the build, `syncfs` would only wait for every
    /// other build's writes on that filesystem.
    pub sync: bool,
}

/// What happened to one file; the JSON strings are in `docs/check-json.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileStatus {
    /// The file was rewritten (or is a hard link to one that was).
    Changed,
    /// A symlink through a farm now points at the same file without it.
    Retargeted,
    /// The file could not be changed (see [`FileResult::detail`]).
    Failed,
}

impl FileStatus {
    /// The word shown to users, the same as the JSON string.
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Changed => "changed",
            FileStatus::Retargeted => "retargeted",
            FileStatus::Failed => "failed",
        }
    }
}

named_by_as_str!(FileStatus);

/// What happened to one file.
#[derive(Clone, Debug, Serialize)]
pub struct FileResult {
    /// The file (or symlink) in the outputs.
    pub path: PathBuf,
    /// What happened to it.
    pub status: FileStatus,
    /// One line for the user: what changed, or why it failed.
    pub detail: String,
    /// Bytes of removed store paths (hash parts scrubbed from the file).
    pub(crate) store_path_bytes_removed: usize,
    /// Bytes written to disk for this file.
    pub(crate) bytes_written: u64,
    /// Hard links to the inode edited in place (above 1: every link changed).
    pub(crate) hard_links: u64,
}

/// The outcome of a run.
#[derive(Clone, Debug, Serialize, Default)]
pub struct FixReport {
    /// Files walked under the outputs.
    pub files_scanned: usize,
    /// ELF objects among them.
    pub elf_files: usize,
    /// Files rewritten (one inode through several names counts once).
    pub changed: usize,
    /// Files that could not be changed.
    pub failed: usize,
    /// Symlinks through a farm pointed at the same file without it.
    pub symlinks_retargeted: usize,
    /// Bytes of store paths scrubbed from all files.
    pub store_path_bytes_removed: usize,
    /// One entry per file changed or failed.
    pub results: Vec<FileResult>,
}

/// Apply every changing plan of the survey. `progress` is called once per
/// finished file.
pub fn fix(
    survey: &Survey,
    store: &StoreDir,
    plan_opts: &PlanOptions,
    opts: &FixOptions,
    progress: &(dyn Fn() + Sync),
) -> FixReport {
    let unrecovered = clean_stale_temps(survey);
    let probe = FsProbe::new(store.clone());
    // Names of one inode (hard links inside the outputs) are edited once,
    // through the first name; the others share the result.
    let (todo, aliases) = one_name_per_inode(objects_to_fix(survey), opts.hard_links);
    let cx = Ctx {
        plan_opts,
        opts,
        probe: &probe,
        survey,
    };
    let staged = stage_in_chunks(&todo, &cx, progress);
    // Every staged byte reaches the disk before any rename does: one sync
    // per filesystem rather than an fsync per file and per directory.
    let touched: Vec<PathBuf> = staged
        .iter()
        .filter(|(r, _)| r.status == FileStatus::Changed)
        .map(|(r, _)| r.path.clone())
        .collect();
    let synced = sync_if(opts, touched.iter().map(PathBuf::as_path));
    let mut results = commit_all(staged, synced, &touched, opts);
    // One inode edited through N names is one change, counted once.
    let alias_paths: HashSet<PathBuf> = aliases.iter().map(|(a, _)| a.path.clone()).collect();
    let alias_results = results_of_aliases(&aliases, &results);
    results.extend(alias_results);
    for l in &survey.farm_links {
        results.push(retarget(l));
    }
    // The renames (and retargeted links) themselves.
    let renamed: Vec<&Path> = results
        .iter()
        .filter(|r| matches!(r.status, FileStatus::Changed | FileStatus::Retargeted))
        .map(|r| r.path.as_path())
        .collect();
    if let Err(e) = sync_if(opts, renamed) {
        results.push(failed(
            Path::new(""),
            format!("changes may not be on disk: {e}"),
        ));
    }
    results.extend(left_alone(survey));
    results.extend(unrecovered);
    results.sort_by(|a, b| a.path.cmp(&b.path));
    tally(survey, results, &alias_paths)
}

/// Leftovers of a killed run in the objects' dirs are ours to remove; a
/// dir where that failed (a roll-back that could not be written) is a
/// failure of the run.
fn clean_stale_temps(survey: &Survey) -> Vec<FileResult> {
    let mut dirs: Vec<&Path> = survey
        .objects
        .iter()
        .filter_map(|o| o.path.parent())
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs.into_iter()
        .filter_map(|d| {
            let e = atomic::cleanup_stale_temps(d).err()?;
            Some(failed(d, RecoveryError::detail(&e)))
        })
        .collect()
}

/// A dir where undoing what a killed run left (rolling a journaled edit
/// back, removing a temp file) failed: its files may still hold the
/// interrupted edit.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}", dir.display(), RecoveryError::detail(err))]
pub struct RecoveryError {
    /// The dir holding the journal or temp file.
    pub dir: PathBuf,
    /// What failed.
    pub err: std::io::Error,
}

impl RecoveryError {
    fn detail(e: &std::io::Error) -> String {
        format!("cannot undo what a killed run left here: {e}")
    }
}

/// The objects with a plan that changes them or refuses to (reported),
/// or an interpreter to set.
fn objects_to_fix(survey: &Survey) -> Vec<&ObjectSurvey> {
    survey
        .objects
        .iter()
        .filter(|o| {
            survey.interpreter_change(o).is_some()
                || o.plans.iter().any(|p| {
                    p.changes() || matches!(p.outcome, crate::plan::Outcome::Refused { .. })
                })
        })
        .collect()
}

/// Stage every file in parallel: edited, verified, written in place or to
/// a temp file beside it, nothing forced to disk yet.
///
/// A long run is staged in chunks while a helper thread syncs what the
/// chunks before wrote: the disk works while we edit, and the sync before
/// the renames finds little left to do. (Its errors are the final sync's
/// to report.)
fn stage_in_chunks(todo: &[&ObjectSurvey], cx: &Ctx, progress: &(dyn Fn() + Sync)) -> Vec<Staged> {
    let stage_all = |objs: &[&ObjectSurvey]| -> Vec<Staged> {
        objs.par_iter()
            .map(|o| {
                let r = fix_object(o, cx);
                progress();
                r
            })
            .collect()
    };
    if !cx.opts.sync {
        return stage_all(todo);
    }
    let chunk = todo.len().div_ceil(FLUSH_CHUNKS).max(FLUSH_CHUNK_MIN);
    let mut staged: Vec<Staged> = Vec::with_capacity(todo.len());
    std::thread::scope(|sc| {
        let mut flusher: Option<std::thread::ScopedJoinHandle<'_, ()>> = None;
        for (k, part) in todo.chunks(chunk).enumerate() {
            staged.extend(stage_all(part));
            let last = (k + 1) * chunk >= todo.len();
            if !last && flusher.as_ref().is_none_or(|h| h.is_finished()) {
                if let Some(h) = flusher.take() {
                    let _ = h.join();
                }
                let written = &todo[..(k + 1) * chunk];
                flusher = Some(sc.spawn(move || {
                    let _ = atomic::sync_filesystems(written.iter().map(|o| o.path.as_path()));
                }));
            }
        }
        if let Some(h) = flusher {
            let _ = h.join();
        }
    });
    staged
}

/// The result of each further name of an inode: changed with its first
/// name, or failed if that was not.
fn results_of_aliases(aliases: &Aliases<'_>, results: &[FileResult]) -> Vec<FileResult> {
    aliases
        .iter()
        .map(
            |(alias, first)| match results.iter().find(|r| r.path == first.path) {
                Some(r) if r.status == FileStatus::Changed => FileResult {
                    path: alias.path.clone(),
                    status: FileStatus::Changed,
                    detail: format!(
                        "the same file as {} (a hard link): fixed with it",
                        first.path.display()
                    ),
                    store_path_bytes_removed: r.store_path_bytes_removed,
                    bytes_written: 0,
                    hard_links: r.hard_links,
                },
                _ => failed(
                    &alias.path,
                    format!(
                        "the same file as {} (a hard link), which was not fixed",
                        first.path.display()
                    ),
                ),
            },
        )
        .collect()
}

/// Special files and symlink loops: never opened or followed, but not
/// silently passed over either.
fn left_alone(survey: &Survey) -> Vec<FileResult> {
    let special = survey.special_files.iter().map(|p| {
        failed(
            p,
            format!(
                "{} in an output: left alone",
                crate::survey::special_kind(p)
            ),
        )
    });
    let loops = survey
        .link_loops
        .iter()
        .map(|p| failed(p, "symlink loop: left alone".into()));
    special.chain(loops).collect()
}

/// The report: every result, counted once per inode (`alias_paths` are the
/// further names of an inode already counted), plus the walk's errors.
fn tally(survey: &Survey, results: Vec<FileResult>, alias_paths: &HashSet<PathBuf>) -> FixReport {
    let mut report = FixReport {
        files_scanned: survey.files_scanned,
        elf_files: survey.objects.len(),
        ..Default::default()
    };
    for r in results.iter().filter(|r| !alias_paths.contains(&r.path)) {
        match r.status {
            FileStatus::Changed => report.changed += 1,
            FileStatus::Retargeted => report.symlinks_retargeted += 1,
            FileStatus::Failed => report.failed += 1,
        }
        report.store_path_bytes_removed += r.store_path_bytes_removed;
    }
    report.failed += survey.errors.len();
    report.results = results;
    report
}

/// One staged file: its result, and what is still to write.
type Staged = (FileResult, Option<Pending>);

/// What staging left to do for one file.
enum Pending {
    /// A verified copy to rename over it.
    Rename(Box<atomic::PendingRename>),
    /// An in-place edit of several patches, journaled (see
    /// [`atomic::PendingPatch`]), whose steps are still to write.
    Patch(Box<atomic::PendingPatch>),
}

/// Finish every staged file once the staged bytes (copies, journals) are on
/// disk (`synced`): renames and the first step of each in-place edit in one
/// parallel round, then one round per further step, a sync of the
/// filesystems between two rounds: every file's step `k` is on disk before
/// any file's step `k + 1` starts. Whatever fails or is abandoned is left
/// as it was (an in-place edit rolls back).
fn commit_all(
    mut staged: Vec<Staged>,
    synced: Result<(), atomic::AtomicError>,
    touched: &[PathBuf],
    opts: &FixOptions,
) -> Vec<FileResult> {
    let mut synced = synced;
    loop {
        if let Err(e) = &synced {
            for (r, p) in &mut staged {
                if p.take().is_some() {
                    *r = failed(&r.path, format!("left as it was: {e}"));
                }
            }
        }
        if staged.iter().all(|(_, p)| p.is_none()) {
            break;
        }
        // Renames in parallel too: on a journaled filesystem each one waits.
        staged.par_iter_mut().for_each(|(r, pending)| {
            let res = match pending.take() {
                None => return,
                Some(Pending::Rename(p)) => p.commit(durability(opts)).map(|_| ()),
                Some(Pending::Patch(mut p)) => match p.step(durability(opts)) {
                    Ok(more) => {
                        if more {
                            *pending = Some(Pending::Patch(p));
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = res {
                *r = failed(&r.path, format!("left as it was: {e}"));
            }
        });
        if staged.iter().any(|(_, p)| p.is_some()) {
            synced = sync_if(opts, touched.iter().map(PathBuf::as_path));
        }
    }
    staged.into_iter().map(|(r, _)| r).collect()
}

/// How each file's writes are made durable: in a batch synced by the run,
/// or not at all (`--no-sync`).
fn durability(opts: &FixOptions) -> atomic::Durability {
    if opts.sync {
        atomic::Durability::Batch
    } else {
        atomic::Durability::Unsynced
    }
}

/// One `syncfs` per filesystem of `paths`, unless the run was asked not to
/// sync ([`FixOptions::sync`]).
fn sync_if<'a>(
    opts: &FixOptions,
    paths: impl IntoIterator<Item = &'a Path>,
) -> Result<(), atomic::AtomicError> {
    if opts.sync {
        atomic::sync_filesystems(paths)
    } else {
        Ok(())
    }
}

/// Runs with fewer files than this are staged in one go, then synced.
const FLUSH_CHUNK_MIN: usize = 256;

/// A longer run is staged in this many chunks, each synced in the
/// background while the next is staged.
const FLUSH_CHUNKS: usize = 4;

/// (a further name, the first name of its inode)
type Aliases<'a> = Vec<(&'a ObjectSurvey, &'a ObjectSurvey)>;

/// With `EditShared`, split off the second and later names of an inode:
/// editing it once, in place, fixes them all. (With `Break`, each name gets
/// its own copy; with `Refuse`, each is refused: no grouping.)
fn one_name_per_inode(
    objects: Vec<&ObjectSurvey>,
    policy: HardLinks,
) -> (Vec<&ObjectSurvey>, Aliases<'_>) {
    use std::os::unix::fs::MetadataExt;
    if policy != HardLinks::EditShared {
        return (objects, Vec::new());
    }
    let mut first: std::collections::HashMap<(u64, u64), &ObjectSurvey> = Default::default();
    let mut todo = Vec::new();
    let mut aliases = Vec::new();
    for o in objects {
        // The walk's link count spares a stat of every singly linked file.
        let key = (o.nlink > 1)
            .then(|| std::fs::symlink_metadata(&o.path).ok())
            .flatten()
            .filter(|m| m.nlink() > 1)
            .map(|m| (m.dev(), m.ino()));
        match key.and_then(|k| first.get(&k).copied()) {
            Some(f) => aliases.push((o, f)),
            None => {
                if let Some(k) = key {
                    first.insert(k, o);
                }
                todo.push(o);
            }
        }
    }
    (todo, aliases)
}

fn failed(path: &Path, detail: String) -> FileResult {
    FileResult {
        path: path.to_owned(),
        status: FileStatus::Failed,
        detail,
        store_path_bytes_removed: 0,
        bytes_written: 0,
        hard_links: 1,
    }
}

/// One file: its result, and what is still to write.
fn fix_object(o: &ObjectSurvey, cx: &Ctx) -> Staged {
    let path = &o.path;
    let refused = o.plans.iter().find_map(|p| match &p.outcome {
        crate::plan::Outcome::Refused { reason } => Some((p.tag, reason)),
        _ => None,
    });
    if let Some((tag, reason)) = refused {
        return (
            failed(path, format!("{tag}: left as it was: {reason}")),
            None,
        );
    }
    let plans: Vec<&Plan> = o.plans.iter().filter(|p| p.changes()).collect();
    let interp = cx.survey.interpreter_change(o);
    // One open serves the read, the in-place write and the final checks.
    let result = atomic::OpenFile::open(path)
        .map_err(FileError::from)
        .and_then(|file| {
            if in_memory(file.len(), &plans, interp) {
                let original = file.read_all()?;
                let (edited, edit) = edit_image(original, &plans, interp)?;
                write_in_memory(file, &edited, &edit, &plans, o, cx)
            } else {
                let edit = plan_large_edit(file.file(), file.len(), &plans, interp)?;
                write_large(file, &edit, &plans, o, cx)
            }
        });
    match result {
        Ok(w) => (changed(path, &plans, interp.map(|i| (o, i)), &w), w.pending),
        Err(e) => (failed(path, format!("left as it was: {e}")), None),
    }
}

/// The result of a file staged for `plans` (and the interpreter it got):
/// each list's old and new value, the hard links that see the change, the
/// hash bytes removed.
fn changed(
    path: &Path,
    plans: &[&Plan],
    interp: Option<(&ObjectSurvey, &str)>,
    w: &Written,
) -> FileResult {
    let removed: usize = plans
        .iter()
        .map(|p| p.removed_hashes.iter().map(String::len).sum::<usize>())
        .sum();
    let interp_line = interp.map(|(o, new)| {
        let old = o.facts.interpreter.as_deref().unwrap_or_default();
        format!("interpreter: {old} -> {new}")
    });
    let mut detail = interp_line
        .into_iter()
        .chain(
            plans
                .iter()
                .map(|p| format!("{}: {} -> {}", p.tag, p.old, p.new)),
        )
        .collect::<Vec<_>>()
        .join("; ");
    if w.links > 1 {
        detail.push_str(&format!(
            " (edited in place: {} hard links share this file, all see the change)",
            w.links
        ));
    }
    FileResult {
        path: path.to_owned(),
        status: FileStatus::Changed,
        detail,
        store_path_bytes_removed: removed,
        bytes_written: w.bytes,
        hard_links: w.links,
    }
}

/// What every per-file step needs besides the file.
struct Ctx<'a> {
    plan_opts: &'a PlanOptions,
    opts: &'a FixOptions,
    probe: &'a FsProbe,
    /// The survey (for `--interpreter`).
    survey: &'a Survey,
}

fn write_in_memory(
    file: atomic::OpenFile,
    data: &[u8],
    combined: &ElfEdit,
    plans: &[&Plan],
    o: &ObjectSurvey,
    cx: &Ctx,
) -> Result<Written, FileError> {
    verify(data, data.len() as u64, plans, o, cx)?;
    // Verified in memory; a copy is written from `data` and read back by
    // the writer before it may be renamed.
    let staged = file.stage(
        combined,
        Some(data),
        cx.opts.hard_links,
        durability(cx.opts),
        |_| Ok(()),
    )?;
    Ok(Written::from(staged, combined, data.len() as u64))
}

/// What staging one file did.
struct Written {
    bytes: u64,
    /// What is still to write.
    pending: Option<Pending>,
    /// Hard links to the inode edited in place (1 for most files).
    links: u64,
}

impl Written {
    fn from(staged: atomic::Staged, edit: &ElfEdit, copy_bytes: u64) -> Self {
        match staged {
            atomic::Staged::Done(atomic::Method::InPlace { links }) => Written {
                bytes: edit.patches.iter().map(|p| p.bytes.len() as u64).sum(),
                pending: None,
                links,
            },
            atomic::Staged::Patching(p) => Written {
                bytes: p.bytes_written(),
                links: p.links(),
                pending: Some(Pending::Patch(p)),
            },
            atomic::Staged::Done(_) => Written {
                bytes: 0,
                pending: None,
                links: 1,
            },
            atomic::Staged::Pending(p) => Written {
                bytes: copy_bytes,
                pending: Some(Pending::Rename(p)),
                links: 1,
            },
        }
    }
}

fn write_large(
    file: atomic::OpenFile,
    e: &ElfEdit,
    plans: &[&Plan],
    o: &ObjectSurvey,
    cx: &Ctx,
) -> Result<Written, FileError> {
    let interp = cx.survey.interpreter_change(o);
    let len = e.new_len;
    // A copy (`copy_file_range`, a reflink where the filesystem can; for a
    // grow, a read-only file of ours, `--hard-links break`), patched, is
    // checked as a whole file, range by range, before it is renamed over.
    let verify_copy = |tmp: &Path| {
        let f = crate::elf::open_for_reading(tmp).map_err(|err| VerifyError::ReadBack {
            what: ReadBack::Copy,
            err,
        })?;
        verify(&ReadCache::new(&f), len, plans, o, cx)
    };
    // An in-place edit changes only the search-path string: check the patch
    // spells the planned value where the string lives, and re-resolve every
    // need on disk under that value.
    let verify_patch = |patch: &edit::Patch| {
        let [p] = plans else {
            return Err(VerifyError::NotOnePlan);
        };
        let off = o
            .facts
            .search_path_offset(p.tag)
            .ok_or(VerifyError::NoSearchPathOffset)?;
        let rel = off
            .checked_sub(patch.offset)
            .ok_or(VerifyError::PatchMissesSearchPath)? as usize;
        let want = p.new.as_bytes();
        let got = patch.bytes.get(rel..rel + want.len() + 1);
        if got.is_none_or(|g| &g[..want.len()] != want || g[want.len()] != 0) {
            return Err(VerifyError::PatchNotPlanned);
        }
        let mut after = o.facts.clone();
        after.set_search_path(p.tag, Some(p.new.clone()));
        verify_resolution(&after, plans, o, cx.plan_opts, cx.probe)
    };
    // An edit of several patches (it grows) is checked as the whole file
    // it will make: the original read through the patches.
    let old_len = file.len();
    let verify_edit = |original: &Path, edit: &ElfEdit| {
        let f = crate::elf::open_for_reading(original).map_err(|err| VerifyError::ReadBack {
            what: ReadBack::Original,
            err,
        })?;
        let patched = Patched {
            file: &f,
            old_len,
            edit,
            pos: 0,
        };
        verify(&ReadCache::new(patched), len, plans, o, cx)
    };
    let staged = file.stage(
        e,
        None,
        cx.opts.hard_links,
        durability(cx.opts),
        |cand| match cand {
            atomic::Candidate::File(tmp) => verify_copy(tmp),
            // The interpreter's patch is checked as the file it makes.
            atomic::Candidate::InPlace { original, .. } if interp.is_some() => {
                verify_edit(original, e)
            }
            atomic::Candidate::InPlace { patch, .. } => verify_patch(patch),
            atomic::Candidate::Edit { original, edit } => verify_edit(original, edit),
        },
    )?;
    Ok(Written::from(staged, e, len))
}

/// A file as an edit will leave it, read through the original and the
/// edit's patches (zeros between the old end and the appended bytes).
struct Patched<'a> {
    file: &'a std::fs::File,
    old_len: u64,
    edit: &'a ElfEdit,
    pos: u64,
}

impl std::io::Read for Patched<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self
            .edit
            .new_len
            .saturating_sub(self.pos)
            .min(buf.len() as u64) as usize;
        let buf = &mut buf[..n];
        let (start, end) = (self.pos, self.pos + n as u64);
        let inside = self.old_len.saturating_sub(start).min(n as u64) as usize;
        self.file.read_exact_at(&mut buf[..inside], start)?;
        buf[inside..].fill(0);
        for p in &self.edit.patches {
            let (s, e) = (p.offset.max(start), p.end().min(end));
            if s < e {
                buf[(s - start) as usize..(e - start) as usize]
                    .copy_from_slice(&p.bytes[(s - p.offset) as usize..(e - p.offset) as usize]);
            }
        }
        self.pos = end;
        Ok(n)
    }
}

impl std::io::Seek for Patched<'_> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        self.pos = match to {
            std::io::SeekFrom::Start(p) => p,
            std::io::SeekFrom::End(d) => self.edit.new_len.saturating_add_signed(d),
            std::io::SeekFrom::Current(d) => self.pos.saturating_add_signed(d),
        };
        Ok(self.pos)
    }
}

/// Undo what killed runs left in the directories under `roots` (see
/// `atomic::cleanup_stale_temps`): run before the survey, so that it
/// plans on the files as they were before the interrupted edit. Returns the
/// dirs where that failed.
pub fn recover_interrupted(roots: &[PathBuf]) -> Vec<RecoveryError> {
    let mut failures = Vec::new();
    let mut dirs: Vec<PathBuf> = roots
        .iter()
        .filter(|r| std::fs::symlink_metadata(r).is_ok_and(|m| m.is_dir()))
        .cloned()
        .collect();
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut journals = false;
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(e.path());
            } else if atomic::is_journal_name(&e.file_name().to_string_lossy()) {
                journals = true;
            }
        }
        if journals && let Err(err) = atomic::cleanup_stale_temps(&d) {
            failures.push(RecoveryError { dir: d, err });
        }
    }
    failures
}

/// The edited image (in memory, or a large copy on disk read range by
/// range) must be well formed, carry the planned search path, keep every
/// other dynamic string, and resolve every need to the planned file.
fn verify<'d, R: object::ReadRef<'d>>(
    data: R,
    len: u64,
    plans: &[&Plan],
    o: &ObjectSurvey,
    cx: &Ctx,
) -> Result<(), VerifyError> {
    edit::check_layout_ref(data, len).map_err(VerifyError::Layout)?;
    let facts = elf::parse_facts(data).map_err(VerifyError::Parse)?;
    verify_facts(&o.facts, &facts, plans, cx.survey.interpreter_change(o))?;
    verify_resolution(&facts, plans, o, cx.plan_opts, cx.probe)
}

fn verify_facts(
    before: &ElfFacts,
    after: &ElfFacts,
    plans: &[&Plan],
    interp: Option<&str>,
) -> Result<(), VerifyError> {
    for p in plans {
        let got = after.search_path(p.tag);
        let want = (!p.new.is_empty()).then_some(&p.new);
        if got != want {
            return Err(VerifyError::SearchPath {
                tag: p.tag,
                got: got.cloned(),
                want: want.cloned(),
            });
        }
    }
    if before.needed != after.needed || before.soname != after.soname {
        return Err(VerifyError::NeededOrSoname);
    }
    let want = interp.or(before.interpreter.as_deref());
    if after.interpreter.as_deref() != want {
        return Err(VerifyError::Interpreter {
            got: after.interpreter.clone(),
            want: want.map(str::to_owned),
        });
    }
    Ok(())
}

/// Re-resolve every need on the real filesystem under the new path.
fn verify_resolution(
    after: &ElfFacts,
    plans: &[&Plan],
    o: &ObjectSurvey,
    plan_opts: &PlanOptions,
    probe: &FsProbe,
) -> Result<(), VerifyError> {
    let Some(p) = plans.iter().find(|p| o.facts.is_effective(p.tag)) else {
        return Ok(());
    };
    let cfg = LoaderConfig {
        ld_library_path: None,
        ld_so_cache: None,
        // The fallback of the interpreter the file will have.
        default_dirs: crate::plan::fallback_dirs(after, plan_opts),
        ..plan_opts.loader.clone()
    };
    let req = Requester::from_facts(&o.path, after);
    let source = Source::of_tag(p.tag, &o.path);
    let list = after.search_path(p.tag).cloned().unwrap_or_default();
    let dirs: Vec<SearchDir> = if list.is_empty() {
        Vec::new()
    } else {
        resolve::search_dirs(&list, &source, &req.origin(), &cfg, &after.ident)
    };
    for n in &p.needs {
        // The planned file: the one it loaded before (the planner proved
        // that), or for a need `--libs` serves (none before, or a file of
        // a `-dev`/`-static` output) the dir's file.
        let Some(want) = n.after.as_ref().or(n.before.as_ref()) else {
            continue;
        };
        if n.was_stub {
            continue;
        }
        let got = resolve::resolve_in(&n.need.name, &dirs, &req, &cfg, probe)
            .found
            .map(|f| f.resolved.real);
        if got.as_ref() != Some(want) {
            return Err(VerifyError::WrongFile {
                need: n.need.name.clone(),
                got,
                want: want.clone(),
            });
        }
    }
    Ok(())
}

/// Point a symlink that goes through a farm at the same file without it.
fn retarget(l: &FarmLink) -> FileResult {
    match replace_symlink(&l.path, &l.canonical) {
        Ok(()) => FileResult {
            path: l.path.clone(),
            status: FileStatus::Retargeted,
            detail: format!("{} -> {}", l.target.display(), l.canonical.display()),
            store_path_bytes_removed: HASH_LEN * l.farms.len(),
            bytes_written: 0,
            hard_links: 1,
        },
        Err(e) => failed(&l.path, format!("symlink left as it was: {e}")),
    }
}

/// Atomically point the symlink at `path` to `target`: a new link beside it,
/// renamed over it (named like the editor's temp files, so a killed run's
/// leftover is cleaned up by the next one).
fn replace_symlink(path: &Path, target: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_symlink() {
        return Err(std::io::Error::other("no longer a symlink"));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.unfarm-tmp-{}-link", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A roll-back that cannot be written was dropped (`let _ =`): `fix`
    /// then planned on the half-edited file and said nothing.
    #[test]
    fn a_failed_recovery_is_reported() {
        let d = tempfile::tempdir().unwrap();
        let lib = d.path().join("lib");
        std::fs::create_dir(&lib).unwrap();
        let f = lib.join("libx.so");
        std::fs::write(&f, b"\x7fELF, the old bytes").unwrap();
        atomic::write_unrecoverable_journal(&f);
        let errs = recover_interrupted(&[d.path().to_owned()]);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].dir, lib);
        let line = errs[0].to_string();
        let want = format!(
            "{}: cannot undo what a killed run left here: ",
            lib.display()
        );
        assert!(line.starts_with(&want), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }

    /// Verification's failures are typed values (the checks decide by
    /// variant); the line a user reads is the one written before.
    #[test]
    fn verification_failures_are_typed_and_read_as_before() {
        let before = ElfFacts::test_object(elf::ObjectType::Dyn);
        let mut after = before.clone();
        after.needed.push("libz.so.1".into());
        assert!(matches!(
            verify_facts(&before, &after, &[], None),
            Err(VerifyError::NeededOrSoname)
        ));
        let e = verify_facts(&before, &before, &[], Some("/ld.so")).unwrap_err();
        assert!(matches!(e, VerifyError::Interpreter { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "the interpreter reads back as None, planned Some(\"/ld.so\")"
        );
        let e = atomic::AtomicError::Verify(
            "/o/lib/libx.so".into(),
            VerifyError::WrongFile {
                need: "liba.so".into(),
                got: None,
                want: "/a/lib/liba.so".into(),
            },
        );
        assert_eq!(
            e.to_string(),
            "/o/lib/libx.so: verification failed: liba.so would load nothing instead of /a/lib/liba.so"
        );
        let e = VerifyError::SearchPath {
            tag: crate::plan::Tag::Runpath,
            got: Some("/x".into()),
            want: None,
        };
        assert_eq!(
            e.to_string(),
            "RUNPATH reads back as Some(\"/x\"), planned None"
        );
    }
}

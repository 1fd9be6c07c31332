//! Why `fix` left a file as it was: the checks an edited file must pass
//! before it is written ([`VerifyError`]), and the steps of one file
//! ([`FileError`]). Typed here; worded once, by `Display`.

use std::path::PathBuf;

use crate::edit::EditError;
use crate::edit::planned::PlanEditError;
use crate::elf::Malformed;
use crate::plan::Tag;

use super::atomic::AtomicError;

/// Why an edited file was not written: it failed a check on its bytes,
/// facts or resolution, or the writer could not hand over exactly the
/// bytes that were checked. Carried by [`AtomicError::Verify`].
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The edited image breaks a layout rule (which).
    #[error("edited file fails layout checks: {0}")]
    Layout(EditError),
    /// The edited image's facts do not parse (why).
    #[error("edited file does not parse: {0}")]
    Parse(Malformed),
    /// A search list reads back other than planned.
    #[error("{tag} reads back as {got:?}, planned {want:?}")]
    SearchPath {
        /// Which list.
        tag: Tag,
        /// Its value in the edited file (None: absent).
        got: Option<String>,
        /// The planned value (None: removed).
        want: Option<String>,
    },
    /// DT_NEEDED or DT_SONAME differ from the original's.
    #[error("DT_NEEDED or DT_SONAME changed")]
    NeededOrSoname,
    /// The interpreter reads back other than planned.
    #[error("the interpreter reads back as {got:?}, planned {want:?}")]
    Interpreter {
        /// PT_INTERP of the edited file.
        got: Option<String>,
        /// The original's, or the one `--interpreter` sets.
        want: Option<String>,
    },
    /// A need re-resolved on disk lands on another file than planned.
    #[error(
        "{need} would load {} instead of {}",
        .got.as_ref().map_or("nothing".into(), |p| p.display().to_string()),
        .want.display()
    )]
    WrongFile {
        /// The need's name.
        need: String,
        /// The file it would load (None: nothing).
        got: Option<PathBuf>,
        /// The planned file.
        want: PathBuf,
    },
    /// The file to check (the copy, or the original under the patches)
    /// cannot be read.
    #[error("cannot read the {what} back: {err}")]
    ReadBack {
        /// Which file.
        what: ReadBack,
        /// The error from the system.
        err: std::io::Error,
    },
    /// An in-place patch of a large file checked against several plans.
    #[error("one plan expected for a file over 256 MiB")]
    NotOnePlan,
    /// The facts name no offset of the search-list string.
    #[error("no search-path string offset")]
    NoSearchPathOffset,
    /// The in-place patch starts after the search-list string.
    #[error("the patch does not cover the search path")]
    PatchMissesSearchPath,
    /// The in-place patch spells something else where the string lives.
    #[error("the patch does not hold the planned search path")]
    PatchNotPlanned,
    /// The image in memory is not the length the edit makes.
    #[error("the edited image and the edit disagree on the length")]
    LengthDisagrees,
    /// An in-place edit would shrink the file (its size, the file's).
    #[error("size {new_len}, expected {old_len}")]
    Shrinks {
        /// The edit's length.
        new_len: u64,
        /// The file's length.
        old_len: u64,
    },
    /// A grow of a hard-linked file whose writes cannot be ordered.
    #[error(
        "cannot order the writes of an in-place edit (not an ELF file?), and a copy would leave its other hard links unfixed"
    )]
    UnorderedSharedEdit,
    /// The temp file read back differs from the verified image.
    #[error("the written copy differs from the verified image")]
    CopyDiffers,
}

/// The file a check reads back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadBack {
    /// The patched copy that would be renamed over the file.
    Copy,
    /// The original, read through the edit's patches.
    Original,
}

impl std::fmt::Display for ReadBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReadBack::Copy => "copy",
            ReadBack::Original => "original",
        })
    }
}

/// Why one file was left as it was (`fix`'s per-file steps).
#[derive(Debug, thiserror::Error)]
pub(crate) enum FileError {
    /// Opening, reading, checking or writing the file.
    #[error(transparent)]
    Atomic(#[from] AtomicError),
    /// The edit could not be planned on the file's bytes.
    #[error(transparent)]
    Edit(#[from] PlanEditError),
    /// The edited image failed a check (before the writer saw it).
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

//! What the editor reads a file through: byte ranges, and long tables
//! streamed window by window (`edit::planned::LargeFile` reads a file too
//! large to hold that way; the editor itself does no I/O).

use object::ReadRef;

use super::EditError;

/// What a streamed table's windows are given to: `(pos, bytes)`.
pub type WindowFn<'f> = dyn FnMut(u64, &[u8]) -> Result<(), EditError> + 'f;

/// Bytes by range ([`ReadRef`]), and a table streamed window by window.
///
/// The default reads the table whole through `read_bytes_at` (free for
/// bytes in memory). `fix` reads a large file window by window into one
/// shared buffer: a large plugin's `.symtab` is 17 MB, which a `ReadCache`
/// would copy into fresh memory and keep until the edit ends.
pub trait Source<'d>: ReadRef<'d> {
    /// `f(pos, bytes)` on consecutive windows covering `off..off + len`
    /// (`pos` counted from `off`), each a whole number of `unit`-byte
    /// entries; stops at the first error.
    fn windows(
        self,
        off: u64,
        len: u64,
        unit: usize,
        f: &mut WindowFn<'_>,
    ) -> Result<(), EditError> {
        let _ = unit;
        let bytes = self.read_bytes_at(off, len).map_err(|_| outside())?;
        f(0, bytes)
    }
}

/// A table that does not lie inside the file.
pub(crate) fn outside() -> EditError {
    EditError::Malformed("a table lies outside the file".into())
}

impl<'d> Source<'d> for &'d [u8] {}

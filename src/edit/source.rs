//! What the editor reads a file through: byte ranges, and long tables
//! streamed window by window.

use std::fs::File;
use std::ops::Range;

use object::ReadRef;
use object::read::{ReadCache, ReadCacheOps};

use super::EditError;
use crate::elf::buffers::READ_POOL;

/// Bytes of one window of a streamed table (one shared read buffer).
const WINDOW: usize = 1 << 20;

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

fn outside() -> EditError {
    EditError::Malformed("a table lies outside the file".into())
}

impl<'d> Source<'d> for &'d [u8] {}

impl<'d, R: ReadCacheOps> Source<'d> for &'d ReadCache<R> {}

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
            let at = off.checked_add(pos).ok_or_else(outside)?;
            std::os::unix::fs::FileExt::read_exact_at(self.file, buf, at).map_err(|e| {
                EditError::Malformed(format!("cannot read a table at offset {at:#x}: {e}"))
            })?;
            f(pos, buf)?;
            pos += n as u64;
        }
        Ok(())
    }
}

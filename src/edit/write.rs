//! Encoding headers back into bytes (class and byte order of the file), and
//! collecting byte writes into sorted, non-overlapping patches.

use object::{Endian, Endianness, elf};

use super::parse::{Model, Phdr, Shdr};
use super::{EditError, Patch};

/// Encoder for one file's class and byte order. Every value is range-checked:
/// a 32-bit file cannot hold a 64-bit address.
#[derive(Clone, Copy)]
pub(crate) struct Enc {
    pub(crate) is64: bool,
    pub(crate) e: Endianness,
}

fn too_big(what: &str, v: u64) -> EditError {
    EditError::Unsupported(format!("{what} {v:#x} does not fit in a 32-bit ELF field"))
}

impl Enc {
    pub(crate) fn of(m: &Model) -> Self {
        Enc {
            is64: m.is64,
            e: m.endian,
        }
    }
    pub(crate) fn u16(&self, out: &mut Vec<u8>, v: u16) {
        out.extend_from_slice(&self.e.write_u16(v));
    }
    pub(crate) fn u32(&self, out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&self.e.write_u32(v));
    }
    pub(crate) fn word(&self, out: &mut Vec<u8>, what: &str, v: u64) -> Result<(), EditError> {
        if self.is64 {
            out.extend_from_slice(&self.e.write_u64(v));
        } else {
            let v32 = u32::try_from(v).map_err(|_| too_big(what, v))?;
            self.u32(out, v32);
        }
        Ok(())
    }
    pub(crate) fn word_bytes(&self, what: &str, v: u64) -> Result<Vec<u8>, EditError> {
        let mut out = Vec::new();
        self.word(&mut out, what, v)?;
        Ok(out)
    }
    pub(crate) fn phdr(&self, p: &Phdr) -> Result<Vec<u8>, EditError> {
        let mut o = Vec::with_capacity(size_of::<elf::ProgramHeader64<Endianness>>());
        self.u32(&mut o, p.p_type);
        if self.is64 {
            self.u32(&mut o, p.flags);
        }
        self.word(&mut o, "segment offset", p.offset)?;
        self.word(&mut o, "segment address", p.vaddr)?;
        self.word(&mut o, "segment address", p.paddr)?;
        self.word(&mut o, "segment size", p.filesz)?;
        self.word(&mut o, "segment size", p.memsz)?;
        if !self.is64 {
            self.u32(&mut o, p.flags);
        }
        self.word(&mut o, "segment alignment", p.align)?;
        Ok(o)
    }
    pub(crate) fn shdr(&self, s: &Shdr) -> Result<Vec<u8>, EditError> {
        let mut o = Vec::with_capacity(size_of::<elf::SectionHeader64<Endianness>>());
        self.u32(&mut o, s.sh_name);
        self.u32(&mut o, s.sh_type);
        self.word(&mut o, "section flags", s.flags)?;
        self.word(&mut o, "section address", s.addr)?;
        self.word(&mut o, "section offset", s.offset)?;
        self.word(&mut o, "section size", s.size)?;
        self.u32(&mut o, s.link);
        self.u32(&mut o, s.info);
        self.word(&mut o, "section alignment", s.addralign)?;
        self.word(&mut o, "section entry size", s.entsize)?;
        Ok(o)
    }
    pub(crate) fn dyn_entry(&self, out: &mut Vec<u8>, tag: i64, val: u64) -> Result<(), EditError> {
        if self.is64 {
            out.extend_from_slice(&self.e.write_u64(tag as u64));
            out.extend_from_slice(&self.e.write_u64(val));
        } else {
            let t = i32::try_from(tag).map_err(|_| {
                EditError::Unsupported(format!("dynamic tag {tag:#x} does not fit in 32 bits"))
            })?;
            self.u32(out, t as u32);
            self.word(out, "dynamic entry value", val)?;
        }
        Ok(())
    }
    /// The dynamic array `entries`, padded with DT_NULL to `slots` entries.
    pub(crate) fn dyn_array(
        &self,
        entries: &[(i64, u64)],
        slots: u64,
    ) -> Result<Vec<u8>, EditError> {
        let mut o = Vec::new();
        for &(t, v) in entries {
            self.dyn_entry(&mut o, t, v)?;
        }
        for _ in (entries.len() as u64)..slots {
            self.dyn_entry(&mut o, 0, 0)?;
        }
        Ok(o)
    }
}

/// Byte writes in the order they were made; later writes win where they
/// overlap. `finish` turns them into sorted, merged, non-overlapping patches.
#[derive(Default)]
pub(crate) struct Writes {
    list: Vec<(u64, Vec<u8>)>,
}

impl Writes {
    pub(crate) fn put(&mut self, offset: u64, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.list.push((offset, bytes));
        }
    }
    pub(crate) fn finish(self) -> Vec<Patch> {
        // Union of the written intervals, merging overlapping and adjacent
        // ones; every byte of a union interval is covered by some write.
        let mut spans: Vec<(u64, u64)> = self
            .list
            .iter()
            .map(|(o, b)| (*o, o.saturating_add(b.len() as u64)))
            .collect();
        spans.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in spans {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let at = |o: u64| merged.partition_point(|&(s, _)| s <= o) - 1;
        // A span made by one write is that write's bytes, moved rather
        // than copied (a whole symbol table is one write of many MB).
        let mut writers = vec![0usize; merged.len()];
        for (o, _) in &self.list {
            writers[at(*o)] += 1;
        }
        let mut patches: Vec<Patch> = merged
            .iter()
            .zip(&writers)
            .map(|(&(s, e), &n)| Patch {
                offset: s,
                bytes: if n == 1 {
                    Vec::new()
                } else {
                    vec![0; (e - s) as usize]
                },
            })
            .collect();
        for (o, b) in self.list {
            let i = at(o);
            if writers[i] == 1 {
                patches[i].bytes = b;
            } else {
                let rel = (o - merged[i].0) as usize;
                patches[i].bytes[rel..rel + b.len()].copy_from_slice(&b);
            }
        }
        patches
    }
}

pub(crate) fn align_up(v: u64, a: u64) -> Option<u64> {
    if a <= 1 {
        return Some(v);
    }
    v.checked_add(a - 1).map(|x| x / a * a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_merge_and_later_wins() {
        let mut w = Writes::default();
        w.put(10, vec![1, 1, 1, 1]);
        w.put(12, vec![2, 2, 2]);
        w.put(15, vec![3]);
        w.put(100, vec![9]);
        let p = w.finish();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].offset, 10);
        assert_eq!(p[0].bytes, vec![1, 1, 2, 2, 2, 3]);
        assert_eq!(p[1].offset, 100);
    }

    /// A span made by one write keeps that write's buffer: a rewritten
    /// symbol table (17 MB in a large plugin) is not copied again.
    #[test]
    fn a_lone_write_is_moved_not_copied() {
        let mut w = Writes::default();
        let table = vec![7u8; 1 << 16];
        let at = table.as_ptr();
        w.put(4096, table);
        w.put(10, vec![1, 2]);
        w.put(11, vec![3]);
        let p = w.finish();
        assert_eq!((p[0].offset, &p[0].bytes[..]), (10, &[1, 3][..]));
        assert_eq!((p[1].offset, p[1].bytes.len()), (4096, 1 << 16));
        assert_eq!(p[1].bytes.as_ptr(), at);
    }

    #[test]
    fn align() {
        assert_eq!(align_up(0, 4096), Some(0));
        assert_eq!(align_up(1, 4096), Some(4096));
        assert_eq!(align_up(4096, 4096), Some(4096));
        assert_eq!(align_up(u64::MAX, 4096), None);
    }
}

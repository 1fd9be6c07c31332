//! Removing the `.note.nixos.ldcache` note (patchelf >= 0.19,
//! `--build-resolution-cache`): it lists resolved library paths, so it keeps
//! store references alive and would go stale after a RUNPATH change.

use object::{Endian, ReadRef, elf};

use super::EditError;
use super::parse::Model;
use super::write::{Enc, Writes};

const SECTION: &[u8] = b".note.nixos.ldcache";
const OWNER: &[u8] = b"NixOS";
const NOTE_TYPE: u32 = 0x63a8_6cb6;

/// One note found in a PT_NOTE segment: file range and its header fields.
struct Hit {
    phdr: usize,
    start: u64,
    end: u64,
    namesz: u32,
    descsz: u32,
}

/// Plan the removal: a PT_NOTE holding only this note becomes PT_NULL; one
/// ending with it is shortened; otherwise the note is kept as an empty-owner,
/// type-0 note of the same size. Its bytes are zeroed and its section header
/// (if any) becomes an all-zero SHT_NULL entry. Updates `m.phdrs` so a later
/// rewrite of the whole table keeps the change.
pub(super) fn drop_ldcache<'d, R: ReadRef<'d>>(
    m: &mut Model,
    data: R,
    w: &mut Writes,
) -> Result<(), EditError> {
    let enc = Enc::of(m);
    let hits = find(m, data);
    for h in &hits {
        let p = m.phdrs[h.phdr];
        let mut changed = p;
        let whole = h.start == p.offset && Some(h.end) == p.file_end();
        if whole {
            changed.p_type = elf::PT_NULL.0;
            w.put(h.start, vec![0; (h.end - h.start) as usize]);
        } else if Some(h.end) == p.file_end() {
            changed.filesz -= h.end - h.start;
            changed.memsz = changed.memsz.saturating_sub(h.end - h.start);
            w.put(h.start, vec![0; (h.end - h.start) as usize]);
        } else {
            let mut b = Vec::new();
            enc.u32(&mut b, h.namesz);
            enc.u32(&mut b, h.descsz);
            enc.u32(&mut b, 0);
            b.resize((h.end - h.start) as usize, 0);
            w.put(h.start, b);
        }
        if changed != p {
            m.phdrs[h.phdr] = changed;
            let at = m.phoff + h.phdr as u64 * u64::from(m.phentsize);
            w.put(at, enc.phdr(&changed)?);
        }
    }
    let size = m.shdr_size();
    for (i, s) in m.shdrs.iter().enumerate() {
        if s.name == SECTION && u64::from(m.shentsize) == size {
            w.put(m.shoff + i as u64 * size, vec![0; size as usize]);
            if s.sh_type == elf::SHT_NOTE.0 && !hits.iter().any(|h| h.start == s.offset) {
                // A note section no PT_NOTE maps: just zero its bytes, which
                // must lie in the file (a section header is only a claim).
                let end = s.offset.checked_add(s.size);
                if end.is_none_or(|e| e > m.file_len) {
                    return Err(EditError::Malformed(format!(
                        "section {i} ({}) extends past the end of the file",
                        String::from_utf8_lossy(SECTION)
                    )));
                }
                let len = usize::try_from(s.size)
                    .map_err(|_| EditError::Malformed("note section too large".into()))?;
                w.put(s.offset, vec![0; len]);
            }
        }
    }
    Ok(())
}

fn find<'d, R: ReadRef<'d>>(m: &Model, data: R) -> Vec<Hit> {
    let e = m.endian;
    let mut hits = Vec::new();
    for (i, p) in m.phdrs.iter().enumerate() {
        if p.p_type != elf::PT_NOTE.0 {
            continue;
        }
        let align = if p.align == 8 { 8 } else { 4 };
        let Some(end) = p.file_end() else { continue };
        let mut at = p.offset;
        while at.saturating_add(12) <= end {
            let Ok(hdr) = data.read_bytes_at(at, 12) else {
                break;
            };
            let word = |k: usize| e.read_u32([hdr[k], hdr[k + 1], hdr[k + 2], hdr[k + 3]]);
            let (namesz, descsz, ntype) = (word(0), word(4), word(8));
            let pad = |n: u32| u64::from(n).div_ceil(align) * align;
            let name_at = at + 12;
            let next = name_at + pad(namesz) + pad(descsz);
            if next > end {
                break;
            }
            let name = data
                .read_bytes_at(name_at, u64::from(namesz))
                .unwrap_or(&[]);
            let name = name.strip_suffix(&[0]).unwrap_or(name);
            if name == OWNER && ntype == NOTE_TYPE {
                hits.push(Hit {
                    phdr: i,
                    start: at,
                    end: next,
                    namesz,
                    descsz,
                });
            }
            at = next;
        }
    }
    hits
}

//! Scanner throughput: `scanbench PATH [CANDIDATES_FROM_DB]`.
//! Scans PATH for the hash parts of every valid path in the Nix DB (or, if
//! the DB is absent, 10 000 random hashes), as Nix does after a build, and
//! prints bytes, seconds and GB/s. Used by bench/scan.sh.

use std::time::Instant;

use unfarm::closure::scan::{Candidates, HashSetFast, Scanner, hash_of};
use unfarm::closure::{NixDb, nar_size};
use unfarm::store::{NIX_BASE32, StoreDir};
use unfarm::walk::{EntryKind, walk_nar};

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: scanbench PATH"))?;
    let sd = StoreDir::new("/nix/store");
    let mut set: HashSetFast = match NixDb::open(std::path::Path::new("/nix/var/nix/db/db.sqlite"))
    {
        Ok(db) => db
            .valid_paths()?
            .iter()
            .filter_map(|p| sd.store_path_of(p))
            .filter_map(|s| hash_of(&s.hash))
            .collect(),
        Err(_) => HashSetFast::default(),
    };
    let mut x = 88172645463325252u64;
    while set.len() < 10_000 {
        let mut h = [0u8; 32];
        for b in h.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = NIX_BASE32[(x % 32) as usize];
        }
        set.insert(h);
    }
    let n = set.len();
    let entries = walk_nar(path.as_ref())?;
    let bytes: u64 = entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .map(|e| e.size)
        .sum();
    let scanner = Scanner::new(&sd, Candidates::Hashes(set));
    let mut best = f64::MAX;
    let mut found = 0;
    for _ in 0..3 {
        let t = Instant::now();
        found = scanner.references_of(&entries)?.len();
        best = best.min(t.elapsed().as_secs_f64());
    }
    let threads = rayon::current_num_threads();
    println!(
        "unfarm scan: {bytes} bytes in {} files, {n} candidates, {found} found, best of 3: {best:.3} s = {:.2} GB/s ({threads} threads, {:.2} GB/s per thread); NAR {} bytes",
        entries.len(),
        bytes as f64 / best / 1e9,
        bytes as f64 / best / 1e9 / threads as f64,
        nar_size(path.as_ref())?
    );
    Ok(())
}

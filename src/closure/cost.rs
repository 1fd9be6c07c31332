//! What a fix is worth: the closure size before and after a survey's plans,
//! and, per farm, what the closure loses when the outputs stop referencing it.
//!
//! # The model
//!
//! The outputs are always **scanned** (they may be unregistered: inside a Nix
//! build they are not in the database yet, and after `fix` their bytes are
//! not what the database recorded). Their dependencies come from the closure
//! [`Source`]: the Nix database when there is one (the references Nix
//! registered, what `nix path-info -S` adds up), else a scan of the store dir
//! (inside a sandboxed build the store dir lists exactly the build's input
//! closure, which is Nix's own candidate set). The scanner's candidates are
//! the database's valid paths plus the outputs, or every entry of the store
//! dir when scanning.
//!
//! An output store path P references Q before the fix when Q's hash occurs in
//! P's bytes (file contents, symlink targets, entry names: what Nix scans).
//! After the fix, P references Q when a byte of the *fixed* P still names Q.
//! The fixed bytes are predicted without writing anything:
//!
//! - each ELF object `fix` would edit (every plan proven, at least one change)
//!   is edited in memory by the same editor `fix` uses, giving the byte
//!   patches and the new length. A hit survives when none of its 32 bytes is
//!   patched; the patched ranges (with 31 bytes of context either side) are
//!   scanned for hits of their own (the new RUNPATH string, a `.dynstr` copy
//!   in a grown file). This covers the old RUNPATH/RPATH string, the
//!   `.note.nixos.ldcache` note and anything else the editor rewrites;
//! - each symlink through a farm loses its old target's hits and gains those
//!   of the canonical target;
//! - everything else is unchanged.
//!
//! The removed and added edges go into [`ClosureGraph::closure_size_with`];
//! the outputs' NAR sizes are recomputed with the new file lengths and link
//! targets. An edit that `fix` would refuse at write time (a failed
//! re-resolution on disk, a hard-link policy) is not foreseen: the prediction
//! assumes every file the planner proved is written.
//!
//! # Per-farm cost
//!
//! [`CostModel::farm_cost`] of a set of farms F is the closure size drop when
//! *every* reference from the outputs to F is removed and the real dirs that
//! replace F's RUNPATH entries (and the canonical targets of links through F)
//! are referenced instead, with sizes unchanged. It is the same for every
//! finding about F, since fixing one of them alone frees nothing while
//! another byte still names F; the costs of two farms are not additive when
//! they share members.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::closure::scan::{
    self, Candidates, Context, Hash, HashSetFast, ScanError, ScannedFiles, Scanner,
};
use crate::closure::{
    ClosureError, ClosureGraph, NixDb, RefChange, Source, nar_size_of, scan_closure, to_store_path,
};
use crate::edit;
use crate::plan::{Action, Outcome, Plan};
use crate::report::findings::Finding;
use crate::store::{HASH_LEN, StoreDir};
use crate::survey::Survey;
use crate::survey::walk::{EntryKind, walk_nar};

/// Why a closure cost could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    /// The closure graph could not be built.
    #[error(transparent)]
    Closure(#[from] ClosureError),
    /// A file could not be scanned for references.
    #[error(transparent)]
    Scan(#[from] ScanError),
}

/// Closure size of the outputs before and after the survey's plans.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PlanCost {
    /// The outputs' top-level store paths (the roots).
    pub(crate) roots: Vec<PathBuf>,
    /// Closure size now (bytes of NAR).
    pub before: u64,
    /// Closure size after the fix.
    pub after: u64,
    /// `before - after`; negative if the fix grows the closure.
    pub saved: i64,
    /// References (referrer, reference) the fix removes.
    pub(crate) removed_refs: Vec<(PathBuf, PathBuf)>,
    /// References the fix adds (the real dirs that replace a farm).
    pub(crate) added_refs: Vec<(PathBuf, PathBuf)>,
}

/// Everything needed to price the survey's findings and plans.
pub struct CostModel {
    graph: ClosureGraph,
    outputs: Vec<PathBuf>,
    /// Per output: what it references now, and after the fix.
    before: HashMap<PathBuf, BTreeSet<PathBuf>>,
    after: HashMap<PathBuf, BTreeSet<PathBuf>>,
    /// Per output: NAR size now and after the fix.
    nar_before: HashMap<PathBuf, u64>,
    nar_after: HashMap<PathBuf, u64>,
    /// Per output: (farm, replacement store path) pairs from its plans and links.
    replacements: HashMap<PathBuf, Vec<(PathBuf, PathBuf)>>,
}

type Inode = (u64, u64);

fn inode(p: &Path) -> Option<Inode> {
    std::fs::symlink_metadata(p)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// The predicted edit of one ELF file: patches and new length.
struct Predicted {
    patches: Vec<edit::Patch>,
    old_len: u64,
    new_len: u64,
}

/// The edit `fix` would make to `path`, computed the way it computes it
/// (one plan after the other on an in-memory copy; a file over
/// [`crate::fix::IN_MEMORY_LIMIT`] planned range by range). `None` when
/// `fix` would leave the file alone.
fn predict_edit(path: &Path, plans: &[&Plan], interp: Option<&str>) -> Option<Predicted> {
    // The very edit `fix` will make (same planning code), never written.
    match crate::fix::planned::plan_file_edit(path, plans, interp).ok()? {
        crate::fix::planned::PlannedEdit::InMemory { original, edit, .. } => Some(Predicted {
            old_len: original.len() as u64,
            new_len: edit.new_len,
            patches: edit.patches,
        }),
        crate::fix::planned::PlannedEdit::Large { edit, old_len } => Some(Predicted {
            old_len,
            new_len: edit.new_len,
            patches: edit.patches,
        }),
    }
}

/// Candidate hashes in `buf` whose window overlaps `[lo, hi)` of `buf`.
fn hashes_in(buf: &[u8], lo: usize, hi: usize, cands: &HashSetFast, out: &mut BTreeSet<Hash>) {
    scan::find_candidates(buf, cands, |i, h| {
        if i < hi && i + HASH_LEN > lo {
            out.insert(*h);
        }
    });
}

/// Hashes present in the patched bytes of a predicted edit (each patch with
/// up to 31 bytes of the edited file on either side).
fn patched_hashes(
    path: &Path,
    p: &Predicted,
    cands: &HashSetFast,
) -> Result<BTreeSet<Hash>, ScanError> {
    let io = |err| ScanError::Io {
        path: path.to_owned(),
        err,
    };
    let f = crate::elf::open_for_reading(path).map_err(io)?;
    // The byte at `off` of the edited file.
    let edited = |start: u64, end: u64| -> Result<Vec<u8>, std::io::Error> {
        let mut buf = vec![0u8; (end - start) as usize];
        let from_file = end.min(p.old_len);
        if start < from_file {
            f.read_exact_at(&mut buf[..(from_file - start) as usize], start)?;
        }
        for q in &p.patches {
            let (s, e) = (q.offset.max(start), q.end().min(end));
            if s < e {
                buf[(s - start) as usize..(e - start) as usize]
                    .copy_from_slice(&q.bytes[(s - q.offset) as usize..(e - q.offset) as usize]);
            }
        }
        Ok(buf)
    };
    let mut out = BTreeSet::new();
    let ctx = HASH_LEN as u64 - 1;
    for q in &p.patches {
        let start = q.offset.saturating_sub(ctx);
        let end = q.end().saturating_add(ctx).min(p.new_len.max(q.end()));
        let buf = edited(start, end).map_err(io)?;
        let lo = (q.offset - start) as usize;
        let hi = (q.end() - start) as usize;
        hashes_in(&buf, lo, hi, cands, &mut out);
    }
    Ok(out)
}

fn overlaps(patches: &[edit::Patch], off: u64) -> bool {
    let end = off + HASH_LEN as u64;
    patches.iter().any(|q| q.offset < end && off < q.end())
}

/// Hash index for the candidates: the Nix DB's valid paths (plus the
/// outputs), or every entry of the store dir.
fn candidates(
    store: &StoreDir,
    source: &Source,
    outputs: &[PathBuf],
) -> Result<HashMap<Hash, PathBuf>, CostError> {
    let paths: Vec<PathBuf> = match source {
        Source::NixDb(db) => NixDb::open(db)?.valid_paths()?,
        Source::Scan => {
            let io = |err| ScanError::Io {
                path: store.path().to_owned(),
                err,
            };
            let mut v = Vec::new();
            for e in std::fs::read_dir(store.path()).map_err(io)? {
                v.push(e.map_err(io)?.path());
            }
            v
        }
    };
    let mut index = HashMap::new();
    for p in paths.iter().chain(outputs) {
        if let Some(sp) = store.store_path_of(p)
            && sp.path == *p
            && let Some(h) = scan::hash_of(&sp.hash)
        {
            index.insert(h, sp.path);
        }
    }
    Ok(index)
}

/// Load the closure of `roots` from `source` and merge it into `g`, leaving
/// the outputs' own edges alone (they come from the scan).
fn merge(
    g: &mut ClosureGraph,
    store: &StoreDir,
    source: &Source,
    roots: &[PathBuf],
    outputs: &[PathBuf],
) -> Result<(), CostError> {
    if roots.is_empty() {
        return Ok(());
    }
    let dep = match source {
        Source::NixDb(db) => NixDb::open(db)?.closure(roots)?,
        Source::Scan => scan_closure(store, roots)?,
    };
    for n in dep.nodes() {
        if outputs.contains(&n.path) {
            continue;
        }
        let from = g.insert(n.path.clone(), n.nar_size);
        for &r in &n.refs {
            let rp = &dep.node(r).path;
            let to = match g.id(rp) {
                Some(id) => id,
                None => g.insert(rp.clone(), dep.node(r).nar_size),
            };
            g.add_ref(from, to);
        }
    }
    Ok(())
}

/// What `fix` would change, keyed by inode (survey paths may go through
/// `./result` or another spelling of the store dir): the predicted edits
/// and the retargeted symlinks, and the scanner and candidates that find
/// hashes in the new bytes.
struct Fixed<'a> {
    edited: HashMap<Inode, (Predicted, &'a Path)>,
    links: HashMap<Inode, &'a crate::survey::FarmLink>,
    cands: HashSetFast,
}

impl<'a> Fixed<'a> {
    fn predict(survey: &'a Survey, cands: HashSetFast) -> Self {
        let edited: Vec<(Inode, Predicted, &Path)> = survey
            .objects
            .par_iter()
            .filter(|o| {
                !o.plans
                    .iter()
                    .any(|p| matches!(p.outcome, Outcome::Refused { .. }))
            })
            .filter_map(|o| {
                let plans: Vec<&Plan> = o.plans.iter().filter(|p| p.changes()).collect();
                let interp = survey.interpreter_change(o);
                if plans.is_empty() && interp.is_none() {
                    return None;
                }
                Some((
                    inode(&o.path)?,
                    predict_edit(&o.path, &plans, interp)?,
                    &*o.path,
                ))
            })
            .collect();
        Fixed {
            edited: edited.into_iter().map(|(i, p, f)| (i, (p, f))).collect(),
            links: survey
                .farm_links
                .iter()
                .filter_map(|l| Some((inode(&l.path)?, l)))
                .collect(),
            cands,
        }
    }
}

/// One output's references and NAR size, now and after the fix, and the
/// inodes of its entries.
struct OutputScan {
    before: BTreeSet<Hash>,
    after: BTreeSet<Hash>,
    nar_before: u64,
    nar_after: u64,
    inodes: Vec<Inode>,
}

/// Scan an output and predict its bytes after the fix: a hit survives
/// unless the edit patches it or its symlink is retargeted; the patched
/// ranges and new link targets add their own hits.
fn scan_output(
    o: &Path,
    scanner: &Scanner,
    earlier: Option<&ScannedFiles>,
    fixed: &Fixed,
) -> Result<OutputScan, CostError> {
    let entries = walk_nar(o).map_err(ScanError::from)?;
    let inodes: HashMap<&Path, Inode> = entries
        .iter()
        .filter_map(|e| Some((e.path.as_path(), inode(&e.path)?)))
        .collect();
    let ino_of = |p: &Path| inodes.get(p).copied();
    let mut before: BTreeSet<Hash> = BTreeSet::new();
    let mut after: BTreeSet<Hash> = BTreeSet::new();
    for h in &scanner.entry_hits(&entries, earlier)? {
        before.insert(h.hash);
        let gone = match &h.context {
            Context::EntryName { .. } => false,
            Context::SymlinkTarget { .. } => {
                ino_of(&h.file).is_some_and(|i| fixed.links.contains_key(&i))
            }
            _ => ino_of(&h.file)
                .and_then(|i| fixed.edited.get(&i))
                .is_some_and(|(p, _)| overlaps(&p.patches, h.offset)),
        };
        if !gone {
            after.insert(h.hash);
        }
    }
    // New bytes, and the NAR after.
    let mut new_entries = entries.clone();
    for e in &mut new_entries {
        let Some(i) = ino_of(&e.path) else {
            continue;
        };
        match e.kind {
            EntryKind::File => {
                if let Some((p, path)) = fixed.edited.get(&i) {
                    e.size = p.new_len;
                    after.extend(patched_hashes(path, p, &fixed.cands)?);
                }
            }
            EntryKind::Symlink => {
                if let Some(l) = fixed.links.get(&i) {
                    e.link_target = Some(l.canonical.clone().into_os_string());
                    let b = l.canonical.as_os_str().as_encoded_bytes();
                    hashes_in(b, 0, b.len(), &fixed.cands, &mut after);
                }
            }
            EntryKind::Dir | EntryKind::Special => {}
        }
    }
    Ok(OutputScan {
        before,
        after,
        nar_before: nar_size_of(&entries),
        nar_after: nar_size_of(&new_entries),
        inodes: inodes.into_values().collect(),
    })
}

/// Per output: the (farm, replacement store path) pairs its plans and
/// links make, for the per-farm cost. `owner` maps an inode to its output.
fn farm_replacements(
    survey: &Survey,
    store: &StoreDir,
    owner: &HashMap<Inode, PathBuf>,
) -> HashMap<PathBuf, Vec<(PathBuf, PathBuf)>> {
    let mut out: HashMap<PathBuf, Vec<(PathBuf, PathBuf)>> = HashMap::new();
    let farms: HashSet<PathBuf> = survey.farm_store_paths().into_iter().collect();
    let out_of = |p: &Path| inode(p).and_then(|i| owner.get(&i).cloned());
    for ob in &survey.objects {
        let Some(o) = out_of(&ob.path) else { continue };
        for e in ob.plans.iter().flat_map(|p| &p.entries) {
            let (Some(f), Action::Replace { with }) =
                (store.store_path_of(&e.dir).map(|s| s.path), &e.action)
            else {
                continue;
            };
            if !farms.contains(&f) {
                continue;
            }
            for w in with {
                if let Some(r) = store.store_path_of(Path::new(w)) {
                    out.entry(o.clone()).or_default().push((f.clone(), r.path));
                }
            }
        }
    }
    for l in &survey.farm_links {
        let Some(o) = out_of(&l.path) else { continue };
        if let Some(r) = store.store_path_of(&l.canonical) {
            for f in &l.farms {
                out.entry(o.clone())
                    .or_default()
                    .push((f.clone(), r.path.clone()));
            }
        }
    }
    out
}

impl CostModel {
    /// Build the model for a survey: scan the outputs, load their
    /// dependencies from `source`, and predict the fixed bytes.
    pub fn new(survey: &Survey, store: &StoreDir, source: &Source) -> Result<Self, CostError> {
        Self::reusing(survey, store, source, None)
    }

    /// [`Self::new`], taking the hits of files an earlier scan read (the
    /// findings' scan of `check`) from `earlier` instead of reading them
    /// again, where that scan looked for every candidate of this one.
    pub fn reusing(
        survey: &Survey,
        store: &StoreDir,
        source: &Source,
        earlier: Option<&ScannedFiles>,
    ) -> Result<Self, CostError> {
        let mut outputs: Vec<PathBuf> = Vec::new();
        for r in &survey.roots {
            let o = to_store_path(store, r)?;
            if !outputs.contains(&o) {
                outputs.push(o);
            }
        }
        let index = candidates(store, source, &outputs)?;
        let cands: HashSetFast = index.keys().copied().collect();
        let scanner = Scanner::new(store, Candidates::Hashes(cands.clone()));
        let fixed = Fixed::predict(survey, cands);
        let mut m = CostModel {
            graph: ClosureGraph::new(),
            outputs: outputs.clone(),
            before: HashMap::new(),
            after: HashMap::new(),
            nar_before: HashMap::new(),
            nar_after: HashMap::new(),
            replacements: HashMap::new(),
        };
        let to_paths = |s: &BTreeSet<Hash>| -> BTreeSet<PathBuf> {
            s.iter().filter_map(|h| index.get(h).cloned()).collect()
        };
        let mut owner: HashMap<Inode, PathBuf> = HashMap::new();
        for o in &outputs {
            let scan = scan_output(o, &scanner, earlier, &fixed)?;
            owner.extend(scan.inodes.iter().map(|&i| (i, o.clone())));
            m.before.insert(o.clone(), to_paths(&scan.before));
            m.after.insert(o.clone(), to_paths(&scan.after));
            m.nar_before.insert(o.clone(), scan.nar_before);
            m.nar_after.insert(o.clone(), scan.nar_after);
        }
        m.replacements = farm_replacements(survey, store, &owner);
        m.graph = m.graph_of(store, source)?;
        Ok(m)
    }

    /// The closure graph: the outputs and their edges from the scan,
    /// everything else (what they reference now or after the fix, and the
    /// farms' replacements) from the source.
    fn graph_of(&self, store: &StoreDir, source: &Source) -> Result<ClosureGraph, CostError> {
        let outputs = &self.outputs;
        let mut g = ClosureGraph::new();
        for o in outputs {
            g.insert(o.clone(), self.nar_before[o]);
        }
        let mut deps: BTreeSet<PathBuf> = BTreeSet::new();
        for o in outputs {
            deps.extend(self.before[o].iter().cloned());
            deps.extend(self.after[o].iter().cloned());
        }
        for rs in self.replacements.values() {
            deps.extend(rs.iter().map(|(_, r)| r.clone()));
        }
        let deps: Vec<PathBuf> = deps.into_iter().filter(|d| !outputs.contains(d)).collect();
        merge(&mut g, store, source, &deps, outputs)?;
        for o in outputs {
            let from = g.id(o).expect("output inserted");
            for r in &self.before[o] {
                let to = g
                    .id(r)
                    .ok_or_else(|| ClosureError::UnknownPath(r.clone()))?;
                g.add_ref(from, to);
            }
        }
        Ok(g)
    }

    fn before_size(&self) -> u64 {
        let ids: Vec<usize> = self
            .outputs
            .iter()
            .filter_map(|o| self.graph.id(o))
            .collect();
        self.graph.closure_size(&ids)
    }

    /// Closure size before and after the plans, without writing anything.
    pub fn plan_cost(&self) -> Result<PlanCost, CostError> {
        let mut change = RefChange::default();
        for o in &self.outputs {
            let (b, a) = (&self.before[o], &self.after[o]);
            change
                .removed
                .extend(b.difference(a).map(|q| (o.clone(), q.clone())));
            change
                .added
                .extend(a.difference(b).map(|q| (o.clone(), q.clone())));
        }
        let before = self.before_size();
        let refs_after = self.graph.closure_size_with(&self.outputs, &change)?;
        // The outputs are roots: their size change applies as is.
        let growth: i128 = self
            .outputs
            .iter()
            .map(|o| i128::from(self.nar_after[o]) - i128::from(self.nar_before[o]))
            .sum();
        let after = u64::try_from(i128::from(refs_after) + growth).unwrap_or(0);
        Ok(PlanCost {
            roots: self.outputs.clone(),
            before,
            after,
            saved: (i128::from(before) - i128::from(after)) as i64,
            removed_refs: change.removed,
            added_refs: change.added,
        })
    }

    /// The added size of each of `farms` in the outputs' closure, as `unfarm
    /// closure` shows it: the bytes only that farm keeps alive, what it joins
    /// included (most of it stays after a fix: the real dirs it joined are
    /// then referenced directly; [`CostModel::farm_cost`] is what leaves).
    pub fn added_sizes(&self, farms: &[&Path]) -> BTreeMap<PathBuf, u64> {
        let roots: Vec<_> = self
            .outputs
            .iter()
            .filter_map(|o| self.graph.id(o))
            .collect();
        self.graph
            .added_sizes(&roots)
            .into_iter()
            .filter(|c| farms.contains(&c.path.as_path()))
            .map(|c| (c.path, c.added_size))
            .collect()
    }

    /// Bytes the closure loses when every reference from the outputs to
    /// `farms` goes and the replacements the plans name (real dirs, canonical
    /// link targets) are referenced instead; NAR sizes unchanged.
    pub(crate) fn farm_cost(&self, farms: &[PathBuf]) -> Result<u64, CostError> {
        let mut change = RefChange::default();
        for o in &self.outputs {
            let b = &self.before[o];
            for f in farms.iter().filter(|f| b.contains(*f)) {
                change.removed.push((o.clone(), f.clone()));
            }
            for (f, r) in self.replacements.get(o).into_iter().flatten() {
                if farms.contains(f) && !b.contains(r) && !farms.contains(r) {
                    change.added.push((o.clone(), r.clone()));
                }
            }
        }
        let after = self.graph.closure_size_with(&self.outputs, &change)?;
        Ok(self.before_size().saturating_sub(after))
    }
}

/// Set `cost_bytes` of every finding that names farms (`indirect-entry`,
/// `symlink-into-farm`, `farm-reference`): [`CostModel::farm_cost`] of its
/// farms.
pub fn add_costs(findings: &mut [Finding], model: &CostModel) -> Result<(), CostError> {
    let mut memo: HashMap<Vec<PathBuf>, u64> = HashMap::new();
    for f in findings.iter_mut().filter(|f| !f.farms.is_empty()) {
        let c = match memo.get(&f.farms) {
            Some(&c) => c,
            None => {
                let c = model.farm_cost(&f.farms)?;
                memo.insert(f.farms.clone(), c);
                c
            }
        };
        f.cost_bytes = Some(c);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: [&str; 6] = [
        "0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r",
        "1a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r",
        "2a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r",
        "3a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r",
        "4a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r",
        "5a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r",
    ];

    fn p(i: usize, name: &str) -> PathBuf {
        PathBuf::from(format!("/nix/store/{}-{name}", H[i]))
    }

    /// app -> farm -> {lib, dev, static}; app -> other -> dev (optional).
    fn model(other_keeps_dev: bool, after: &[usize], nar_after_app: u64) -> CostModel {
        let names = ["app", "farm", "lib", "dev", "static", "other"];
        let sizes = [10, 1, 100, 1000, 10000, 5];
        let mut g = ClosureGraph::new();
        for (i, n) in names.iter().enumerate() {
            g.insert(p(i, n), sizes[i]);
        }
        let mut before = vec![1];
        for (a, b) in [(1, 2), (1, 3), (1, 4), (5, 3)] {
            g.add_ref(a, b);
        }
        if other_keeps_dev {
            before.push(5);
        }
        for &b in &before {
            g.add_ref(0, b);
        }
        let app = p(0, "app");
        let set =
            |v: &[usize]| -> BTreeSet<PathBuf> { v.iter().map(|&i| p(i, names[i])).collect() };
        CostModel {
            graph: g,
            outputs: vec![app.clone()],
            before: HashMap::from([(app.clone(), set(&before))]),
            after: HashMap::from([(app.clone(), set(after))]),
            nar_before: HashMap::from([(app.clone(), 10)]),
            nar_after: HashMap::from([(app.clone(), nar_after_app)]),
            replacements: HashMap::from([(app, vec![(p(1, "farm"), p(2, "lib"))])]),
        }
    }

    #[test]
    fn plan_cost_removes_and_adds_edges() {
        let m = model(false, &[2], 10);
        let c = m.plan_cost().unwrap();
        assert_eq!(c.before, 10 + 1 + 100 + 1000 + 10000);
        assert_eq!(c.after, 10 + 100);
        assert_eq!(c.saved, 11001);
        assert_eq!(c.removed_refs, vec![(p(0, "app"), p(1, "farm"))]);
        assert_eq!(c.added_refs, vec![(p(0, "app"), p(2, "lib"))]);
    }

    #[test]
    fn plan_cost_counts_the_outputs_growth() {
        // Nothing removed, the ELF edit grew the app by 90 bytes.
        let m = model(false, &[1], 100);
        let c = m.plan_cost().unwrap();
        assert_eq!(c.after, c.before + 90);
        assert_eq!(c.saved, -90);
    }

    #[test]
    fn farm_cost_keeps_what_another_path_references() {
        // The real lib replaces the farm; dev stays through `other`.
        let m = model(true, &[2, 5], 10);
        assert_eq!(m.farm_cost(&[p(1, "farm")]).unwrap(), 1 + 10000);
        let m = model(false, &[2], 10);
        assert_eq!(m.farm_cost(&[p(1, "farm")]).unwrap(), 1 + 1000 + 10000);
        // A path no output references costs nothing.
        assert_eq!(m.farm_cost(&[p(4, "static")]).unwrap(), 0);
    }

    fn cands() -> HashSetFast {
        H.iter().filter_map(|h| scan::hash_of(h)).collect()
    }

    #[test]
    fn hashes_only_in_the_window_range() {
        let buf = format!("/nix/store/{}-a:/nix/store/{}-b", H[0], H[1]);
        let mut out = BTreeSet::new();
        // Only the second hash overlaps [20, len).
        let second = buf.find(H[1]).unwrap();
        hashes_in(buf.as_bytes(), second, buf.len(), &cands(), &mut out);
        assert_eq!(out.len(), 1);
        assert!(out.contains(&scan::hash_of(H[1]).unwrap()));
        let patches = [edit::Patch {
            offset: 40,
            bytes: vec![0; 4],
        }];
        assert!(overlaps(&patches, 9));
        assert!(overlaps(&patches, 43));
        assert!(!overlaps(&patches, 8));
        assert!(!overlaps(&patches, 44));
    }

    #[test]
    fn patched_bytes_are_scanned_with_their_context() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        let old = format!("xx/nix/store/{}-farm/lib\0yy", H[1]);
        std::fs::write(&f, &old).unwrap();
        // The patch rewrites the hash's first 4 bytes only: the other 28
        // come from the file, and H[2]'s window is made of patch + file.
        let at = old.find(H[1]).unwrap() as u64;
        let pr = Predicted {
            patches: vec![edit::Patch {
                offset: at,
                bytes: H[2].as_bytes()[..4].to_vec(),
            }],
            old_len: old.len() as u64,
            new_len: old.len() as u64,
        };
        let mut want = BTreeSet::new();
        // H[1] and H[2] differ only in their first byte.
        want.insert(scan::hash_of(H[2]).unwrap());
        assert_eq!(patched_hashes(&f, &pr, &cands()).unwrap(), want);
        // A grown file: bytes past the end are the patch's or zero.
        let pr = Predicted {
            patches: vec![edit::Patch {
                offset: old.len() as u64 + 8,
                bytes: H[3].as_bytes().to_vec(),
            }],
            old_len: old.len() as u64,
            new_len: old.len() as u64 + 40,
        };
        let got = patched_hashes(&f, &pr, &cands()).unwrap();
        assert_eq!(got, BTreeSet::from([scan::hash_of(H[3]).unwrap()]));
    }
}

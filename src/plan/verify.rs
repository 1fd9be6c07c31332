//! Step 6 of planning a list: prove the new list equivalent by resolving
//! again every need (and, in expand mode, every library the replaced entries
//! offered), reordering where two real dirs offer one name, or refuse.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::assemble::NewEntry;
use super::snapshot::is_stub_location;
use super::{ListContext, Misresolved, NeedPlan, Refusal};
use crate::loader::resolve::{self, SearchDir, Source};

/// The real file each checked name must still resolve to: every need found
/// before (but stubs, dropped on purpose), then every offered name the old
/// path resolved. Empty for the ignored list, which nothing searches.
pub(super) fn expected_files(
    ctx: &ListContext,
    needs: &[NeedPlan],
    offered_names: &mut Vec<String>,
) -> BTreeMap<String, PathBuf> {
    offered_names.sort();
    offered_names.dedup();
    let mut expected: BTreeMap<String, PathBuf> = BTreeMap::new();
    if !ctx.effective {
        return expected;
    }
    for n in needs {
        if let (Some(b), false) = (&n.before, n.was_stub) {
            expected.insert(n.need.name.clone(), b.clone());
        }
    }
    for name in offered_names.iter() {
        if expected.contains_key(name) {
            continue;
        }
        let r = ctx.resolve(name, &ctx.old_dirs);
        if let Some(f) = r.found
            && !is_stub_location(&f.resolved.real, ctx.input.store)
        {
            expected.insert(name.clone(), f.resolved.real);
        }
    }
    expected
}

/// Record where each need lands under the new list.
pub(super) fn resolve_after(ctx: &ListContext, needs: &mut [NeedPlan], new: &[NewEntry]) {
    let new_dirs = to_search_dirs(ctx, new, &ctx.source);
    for n in needs {
        n.after = ctx
            .resolve(&n.need.name, &new_dirs)
            .found
            .map(|f| f.resolved.real);
    }
}

pub(super) fn to_search_dirs(
    ctx: &ListContext,
    new: &[NewEntry],
    source: &Source,
) -> Vec<SearchDir> {
    new.iter()
        .enumerate()
        .map(|(index, e)| SearchDir {
            source: source.clone(),
            index,
            text: e.text.clone(),
            dir: resolve::expand_entry(&e.text, &ctx.origin, &ctx.cfg, &ctx.input.facts.ident),
        })
        .collect()
}

/// Check that every expected name resolves to the same real file under
/// `new`; where a name lands on the wrong file only because another dir
/// that offers it comes first, move the right dir ahead (stable topological
/// order). Fails when no order works.
pub(super) fn order_and_verify(
    ctx: &ListContext,
    new: &mut Vec<NewEntry>,
    expected: &BTreeMap<String, PathBuf>,
) -> Result<(), Refusal> {
    let source = Source::Runpath;
    let mut before: Vec<(PathBuf, PathBuf)> = Vec::new(); // (must come first, then)
    for _round in 0..4 {
        let dirs = to_search_dirs(ctx, new, &source);
        let mut failures = Vec::new();
        for (name, want) in expected {
            let r = ctx.resolve(name, &dirs);
            let got = r.found.as_ref().map(|f| f.resolved.real.clone());
            if got.as_deref() == Some(want.as_path()) {
                continue;
            }
            // The first new dir that would give the right file.
            let good = dirs.iter().position(|d| {
                ctx.resolve(name, std::slice::from_ref(d))
                    .found
                    .is_some_and(|f| &f.resolved.real == want)
            });
            let bad = r
                .found
                .as_ref()
                .and_then(|f| f.by.as_ref())
                .map(|b| b.index);
            match (good, bad) {
                // Nothing moves ahead of the driver dir: it comes first
                // (docs/design.md#the-canonical-runpath, step 4), nor ahead
                // of a dir of the outputs themselves (`$ORIGIN`): another
                // output never shadows the package's own libraries. A need
                // either would now shadow makes no order work.
                (Some(g), Some(b)) if g > b && !new[g].first && !new[b].first && !new[b].stays => {
                    before.push((new[g].dir.clone(), new[b].dir.clone()));
                }
                _ => failures.push(Misresolved {
                    name: name.clone(),
                    got,
                    want: want.clone(),
                }),
            }
        }
        if !failures.is_empty() {
            return Err(Refusal::NoEquivalentOrder { misses: failures });
        }
        if before.is_empty() {
            return Ok(());
        }
        *new = topo_order(new, &before)?;
        // Re-check with the new order in the next round.
        let dirs = to_search_dirs(ctx, new, &source);
        if expected.iter().all(|(name, want)| {
            ctx.resolve(name, &dirs)
                .found
                .is_some_and(|f| &f.resolved.real == want)
        }) {
            return Ok(());
        }
    }
    Err(Refusal::OrderUnsettled)
}

/// Reorder `new` so that for each `(a, b)` in `before`, `a` comes before `b`,
/// moving `a` just ahead of `b` (the smallest change to first-use order).
/// Fails when the constraints contradict each other.
fn topo_order(new: &[NewEntry], before: &[(PathBuf, PathBuf)]) -> Result<Vec<NewEntry>, Refusal> {
    let mut out = new.to_vec();
    for _ in 0..=before.len() {
        let mut moved = false;
        for (a, b) in before {
            let pa = out.iter().position(|e| &e.dir == a);
            let pb = out.iter().position(|e| &e.dir == b);
            if let (Some(pa), Some(pb)) = (pa, pb)
                && pa > pb
            {
                let e = out.remove(pa);
                out.insert(pb, e);
                moved = true;
            }
        }
        if !moved {
            return Ok(out);
        }
    }
    Err(Refusal::OppositeOrders)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topo_is_stable_and_detects_cycles() {
        let e = |s: &str| NewEntry {
            text: s.into(),
            dir: s.into(),
            first: false,
            stays: false,
        };
        let v = vec![e("/a"), e("/b"), e("/c")];
        let o = topo_order(&v, &[("/c".into(), "/a".into())]).unwrap();
        let t: Vec<_> = o.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(t, ["/c", "/a", "/b"]);
        let cycle = [("/a".into(), "/b".into()), ("/b".into(), "/a".into())];
        assert!(matches!(
            topo_order(&v, &cycle),
            Err(Refusal::OppositeOrders)
        ));
    }
}

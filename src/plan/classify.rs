//! Steps 2-4 of planning a list: what happens to each old entry (kept,
//! dropped, or replaced by real dirs), each decision with its reasons.

use std::path::{Path, PathBuf};

use super::snapshot::{self, DirSnapshot, Snapshot, is_stub_location};
use super::{
    Action, EntryPlan, Insecurity, ListContext, Mode, NeedPlan, PlanInput, Reason, Refusal,
};
use crate::loader::resolve::SearchDir;
use crate::store::StoreDir;

/// Every entry's plan, and what the decisions found along the way.
pub(super) struct Classified {
    pub(super) entries: Vec<EntryPlan>,
    /// Why no equivalent path exists, from the first entry that proved it.
    pub(super) refusal: Option<Refusal>,
    /// Libraries the replaced entries offered (checked again in step 6).
    pub(super) offered_names: Vec<String>,
}

/// Decide every entry of the old list, in order.
pub(super) fn classify_entries(
    ctx: &ListContext,
    needs: &[NeedPlan],
    missing_required: Option<&str>,
) -> Classified {
    let mut out = Classified {
        entries: Vec::new(),
        refusal: None,
        offered_names: Vec::new(),
    };
    for sd in &ctx.old_dirs {
        let entry = Entry {
            sd,
            served: needs
                .iter()
                .filter(|n| n.served_by == Some(sd.index))
                .collect(),
            dir_snap: ctx.input.snapshot.dir(&sd.dir),
            first: ctx
                .old_dirs
                .iter()
                .find(|d| d.dir == sd.dir)
                .map(|d| d.index),
            missing_required,
        };
        let d = classify(ctx, &entry);
        if out.refusal.is_none() {
            out.refusal = d.refusal;
        }
        out.offered_names.extend(d.offered);
        out.entries.push(EntryPlan {
            index: sd.index,
            text: sd.text.clone(),
            dir: sd.dir.clone(),
            action: d.action,
            reasons: d.reasons,
        });
    }
    out
}

/// One old entry and what the list's needs say about it.
struct Entry<'a> {
    sd: &'a SearchDir,
    /// The needs this entry served under the old path.
    served: Vec<&'a NeedPlan>,
    dir_snap: Option<&'a DirSnapshot>,
    /// Index of the first entry naming the same dir.
    first: Option<usize>,
    /// A required need the old path did not find (guards unused entries).
    missing_required: Option<&'a str>,
}

/// The decision for one entry.
struct Decision {
    action: Action,
    reasons: Vec<Reason>,
    /// Set when a served need has no home outside a farm.
    refusal: Option<Refusal>,
    /// Library names the entry's replacement dirs were chosen for.
    offered: Vec<String>,
}

/// The decision chain for one entry: the rules on the entry's text and dir
/// first (in their priority order), then what it serves.
fn classify(ctx: &ListContext, e: &Entry) -> Decision {
    let mut reasons: Vec<Reason> = e
        .served
        .iter()
        .map(|n| Reason::Served {
            need: n.need.name.clone(),
            via_farm: n.via_farm,
        })
        .collect();
    if let Some(r) = offers_stub(ctx, e) {
        reasons.push(r);
    }
    if let Some((action, reason)) = by_rule(ctx, e) {
        reasons.push(reason);
        return Decision {
            action,
            reasons,
            refusal: None,
            offered: Vec::new(),
        };
    }
    by_use(ctx, e, reasons)
}

/// An entry of the effective list (other than the driver dir) that offers
/// a stub by any name, itself or through a link: the driver dir must come
/// before it.
fn offers_stub(ctx: &ListContext, e: &Entry) -> Option<Reason> {
    let driver = &ctx.input.opts.driver_dir;
    if !ctx.effective || &e.sd.dir == driver {
        return None;
    }
    let stubs = e.dir_snap?.stubs();
    if stubs.is_empty() {
        return None;
    }
    let driver_index = ctx
        .old_dirs
        .iter()
        .find(|d| &d.dir == driver)
        .map(|d| d.index);
    Some(Reason::OffersStub {
        stubs,
        driver: driver.clone(),
        driver_index,
    })
}

/// Steps 2-3: the rules that decide an entry whatever it serves; `None`
/// when it is an ordinary dir, decided by use.
fn by_rule(ctx: &ListContext, e: &Entry) -> Option<(Action, Reason)> {
    let input = ctx.input;
    let opts = input.opts;
    let sd = e.sd;
    let text = sd.text.as_str();
    Some(if text.is_empty() {
        (
            Action::Drop,
            Reason::Insecure {
                why: Insecurity::Empty,
            },
        )
    } else if is_origin(text)
        && (input.is_own_dir(&sd.dir) || farms_behind(input, e.dir_snap).is_empty())
    {
        // Relative to the object: kept as spelled, in its place, when it
        // names a dir of the outputs (a link in it through a farm is
        // retargeted by `fix`) or leads to no farm. One that climbs out
        // of the outputs into a farm (`$ORIGIN/../../<farm>/lib`) is
        // planned like any other entry.
        (Action::Keep, Reason::Origin)
    } else if sd.dir == opts.driver_dir {
        (Action::Keep, Reason::Driver)
    } else if let Some(p) = opts.keep.iter().find(|p| glob_match(p, text)) {
        (Action::Keep, Reason::KeptByPattern { pattern: p.clone() })
    } else if let Some(of) = e.first.filter(|&i| i < sd.index) {
        // After the keep rules: a kept spelling of a dir survives even if
        // an earlier, unkept one of the same dir is dropped.
        (Action::Drop, Reason::Duplicate { of })
    } else if !text.starts_with('/') && !text.starts_with('$') {
        (
            Action::Drop,
            Reason::Insecure {
                why: Insecurity::Relative,
            },
        )
    } else if is_build_dir(&sd.dir, input.store, &opts.build_dirs) {
        (Action::Drop, Reason::BuildDir)
    } else if is_stub_dir(&sd.dir, input.snapshot, input.store) {
        (Action::Drop, Reason::Stub)
    } else {
        return None;
    })
}

/// Step 4 for an ordinary dir: replaced when it offers libraries through a
/// farm, kept when it serves a need, else unused.
fn by_use(ctx: &ListContext, e: &Entry, mut reasons: Vec<Reason>) -> Decision {
    let offers = loadable_offers(ctx.input, e.dir_snap);
    let crosses = e.served.iter().any(|n| n.via_farm) || offers.iter().any(|(_, o)| o.crosses());
    // A dir of the outputs is never a farm: its links are retargeted.
    let own = crosses && ctx.input.is_own_dir(&e.sd.dir);
    if own {
        reasons.push(Reason::OwnOutput);
    }
    if crosses && !own {
        reasons.push(Reason::Indirect {
            offers: offers.len(),
            farms: farms_behind(ctx.input, e.dir_snap),
        });
        return replace_indirect(ctx, e, &offers, reasons);
    }
    let action = if !e.served.is_empty() {
        Action::Keep
    } else if ctx.drop_unused && ctx.effective {
        if let Some(m) = e.missing_required {
            reasons.push(Reason::MissingNeedGuard { need: m.to_owned() });
            Action::Keep
        } else {
            reasons.push(Reason::Unused);
            Action::Drop
        }
    } else {
        reasons.push(if ctx.effective {
            Reason::Unused
        } else {
            Reason::IgnoredList
        });
        Action::Keep
    };
    Decision {
        action,
        reasons,
        refusal: None,
        offered: Vec::new(),
    }
}

/// An indirect entry becomes the real dirs of the needs it served and, in
/// expand mode (or for the ignored list), of every library it offers.
fn replace_indirect(
    ctx: &ListContext,
    e: &Entry,
    offers: &[(&String, &snapshot::Offer)],
    mut reasons: Vec<Reason>,
) -> Decision {
    let opts = ctx.input.opts;
    let mut with: Vec<String> = Vec::new();
    let push = |d: &Path, with: &mut Vec<String>| {
        let s = d.to_string_lossy().into_owned();
        if !with.contains(&s) {
            with.push(s);
        }
    };
    let mut refusal = None;
    for n in &e.served {
        let o = ctx.input.snapshot.offer(&e.sd.dir.join(&n.need.name));
        match o.and_then(|o| o.real_dir.clone()) {
            Some(d) if !n.was_stub => push(&d, &mut with),
            Some(_) => {}
            None => {
                refusal.get_or_insert_with(|| Refusal::OnlyThroughFarm {
                    need: n.need.name.clone(),
                    entry: e.sd.text.clone(),
                });
            }
        }
    }
    let mut offered = Vec::new();
    if opts.mode == Mode::Expand && ctx.only_needs {
        reasons.push(Reason::CannotDlopen);
    }
    if (opts.mode == Mode::Expand && !ctx.only_needs) || !ctx.effective {
        for (name, o) in offers {
            if let Some(d) = &o.real_dir {
                push(d, &mut with);
                offered.push((*name).clone());
            }
        }
    }
    if opts.mode == Mode::Shrink && !ctx.effective {
        with.clear();
    }
    let action = if with.is_empty() {
        Action::Drop
    } else {
        Action::Replace { with }
    };
    Decision {
        action,
        reasons,
        refusal,
        offered,
    }
}

/// The shared libraries `dir` offers that this object could load.
fn loadable_offers<'a>(
    input: &PlanInput,
    dir: Option<&'a DirSnapshot>,
) -> Vec<(&'a String, &'a snapshot::Offer)> {
    dir.map(|d| {
        d.entries
            .iter()
            .filter(|(n, o)| {
                o.is_loadable_library(n)
                    && o.elf
                        .is_some_and(|(i, _)| input.facts.ident.loadable_by(&i))
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The store paths, other than the outputs', through which `dir`
/// offers its libraries by a cross-path hop (where a link is followed out
/// of them, before the store path the file is in): the farms behind it.
fn farms_behind(input: &PlanInput, dir: Option<&DirSnapshot>) -> Vec<PathBuf> {
    let mut farms: Vec<PathBuf> = loadable_offers(input, dir)
        .into_iter()
        .filter_map(|(_, o)| o.resolved.as_ref())
        .flat_map(|r| {
            let last = input.store.store_path_of(&r.real).map(|p| p.path);
            r.hops
                .iter()
                .filter(|h| h.is_cross_path())
                .filter_map(|h| h.from.clone())
                .filter(move |f| Some(f) != last.as_ref())
        })
        .filter(|f| !input.is_own_dir(f))
        .collect();
    farms.sort();
    farms.dedup();
    farms
}

fn is_origin(text: &str) -> bool {
    text.starts_with("$ORIGIN") || text.starts_with("${ORIGIN}")
}

/// A `--keep` pattern: exact text, or a glob where `*` matches any run.
pub(crate) fn glob_match(pat: &str, text: &str) -> bool {
    let parts: Vec<&str> = pat.split('*').collect();
    if parts.len() == 1 {
        return pat == text;
    }
    let mut rest = text;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            match rest.find(p) {
                Some(pos) => rest = &rest[pos + p.len()..],
                None => return false,
            }
        }
    }
    true
}

/// A build dir: outside the store, under `/build` or a configured one.
fn is_build_dir(dir: &Path, store: &StoreDir, extra: &[PathBuf]) -> bool {
    if store.contains(dir) {
        return false;
    }
    dir.starts_with("/build") || extra.iter().any(|b| dir.starts_with(b))
}

/// A stub dir: in a stub location, or offering no library but stubs (every
/// library it holds resolves, through links or not, to a stub): nothing
/// else is lost by dropping it.
pub(super) fn is_stub_dir(dir: &Path, snap: &Snapshot, store: &StoreDir) -> bool {
    if is_stub_location(dir, store) {
        return true;
    }
    snap.dir(dir).is_some_and(|d| {
        let libs: Vec<_> = d
            .entries
            .iter()
            .filter(|(n, o)| n.contains(".so") && o.elf.is_some())
            .collect();
        !libs.is_empty() && libs.iter().all(|(_, o)| o.is_stub)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(
            "/nix/store/*-cuda*/lib",
            "/nix/store/abc-cudart/lib"
        ));
        assert!(glob_match("/exact", "/exact"));
        assert!(!glob_match("/exact", "/exact2"));
        assert!(glob_match("*", "anything"));
        assert!(!glob_match("/a/*/c", "/a/b/d"));
    }

    /// The typed reason serialises as the JSON the dry run always wrote.
    #[test]
    fn insecure_reasons_keep_their_json() {
        let json = |why| serde_json::to_value(Reason::Insecure { why }).unwrap();
        assert_eq!(
            json(Insecurity::Empty),
            serde_json::json!({"kind": "insecure", "why": "empty entry: the loader searches the current directory"})
        );
        assert_eq!(
            json(Insecurity::Relative),
            serde_json::json!({"kind": "insecure", "why": "relative entry: the loader searches it from the current directory"})
        );
    }
}

//! Steps 4-5 of planning a list: the new list from the decided entries:
//! the driver dir first, then every kept or replacing dir at its first use,
//! one entry per dir.

use std::path::PathBuf;

use super::snapshot::Snapshot;
use super::{Action, EntryPlan, PlanOptions, Reason};

/// A new entry under construction.
#[derive(Clone, Debug)]
pub(super) struct NewEntry {
    pub(super) text: String,
    pub(super) dir: PathBuf,
    /// Pinned first (the driver dir).
    pub(super) first: bool,
    /// A dir of the outputs themselves (`$ORIGIN`, or an own dir whose
    /// links are retargeted): nothing from another output moves ahead of it.
    pub(super) stays: bool,
}

/// The new list, before step 6 verifies (and perhaps reorders) it.
pub(super) fn assemble(
    entries: &[EntryPlan],
    opts: &PlanOptions,
    effective: bool,
) -> Vec<NewEntry> {
    dedup_dirs(first_use_order(entries, opts, effective), entries)
}

/// The driver dir (when the list had it, or it is wanted), then what each
/// entry becomes, in the old order.
fn first_use_order(entries: &[EntryPlan], opts: &PlanOptions, effective: bool) -> Vec<NewEntry> {
    let mut new: Vec<NewEntry> = Vec::new();
    let has_driver = entries.iter().any(|e| e.reasons.contains(&Reason::Driver));
    if has_driver || (opts.want_driver && effective) {
        new.push(NewEntry {
            text: opts.driver_dir.to_string_lossy().into_owned(),
            dir: opts.driver_dir.clone(),
            first: true,
            stays: false,
        });
    }
    for e in entries {
        match &e.action {
            Action::Keep => new.push(NewEntry {
                text: e.text.clone(),
                dir: e.dir.clone(),
                first: false,
                stays: e
                    .reasons
                    .iter()
                    .any(|r| matches!(r, Reason::Origin | Reason::OwnOutput)),
            }),
            Action::Replace { with } => new.extend(with.iter().map(|w| NewEntry {
                text: w.clone(),
                dir: PathBuf::from(w),
                first: false,
                stays: false,
            })),
            Action::Drop => {}
        }
    }
    new
}

/// When a dir of the new list offers a stub (a kept entry, or a real dir
/// that replaced a farm), the driver dir goes first: whatever the object
/// asks for by the driver's names must reach the host's driver before the
/// fake one.
pub(super) fn driver_before_stubs(new: &mut Vec<NewEntry>, opts: &PlanOptions, snap: &Snapshot) {
    if new.first().is_some_and(|e| e.first) {
        return;
    }
    let shadows = new.iter().any(|e| {
        e.dir != opts.driver_dir && snap.dir(&e.dir).is_some_and(|d| !d.stubs().is_empty())
    });
    if shadows {
        new.retain(|e| e.dir != opts.driver_dir);
        new.insert(
            0,
            NewEntry {
                text: opts.driver_dir.to_string_lossy().into_owned(),
                dir: opts.driver_dir.clone(),
                first: true,
                stays: false,
            },
        );
    }
}

/// One entry per dir, at its first position; if another spelling of the
/// dir is the one the packager asked to keep, that spelling stays (else a
/// later run, no longer seeing the kept text, could drop the dir).
fn dedup_dirs(new: Vec<NewEntry>, entries: &[EntryPlan]) -> Vec<NewEntry> {
    let pinned: Vec<&str> = entries
        .iter()
        .filter(|e| {
            e.reasons
                .iter()
                .any(|r| matches!(r, Reason::KeptByPattern { .. } | Reason::Origin))
        })
        .map(|e| e.text.as_str())
        .collect();
    let mut deduped: Vec<NewEntry> = Vec::with_capacity(new.len());
    for e in new {
        match deduped.iter_mut().find(|d| d.dir == e.dir) {
            Some(d) => {
                if pinned.contains(&e.text.as_str()) && !pinned.contains(&d.text.as_str()) {
                    d.text = e.text;
                }
            }
            None => deduped.push(e),
        }
    }
    deduped
}

//! Property tests of the planner's invariants (docs/design.md, ARCHITECTURE
//! "Invariants") over random small worlds: split outputs, farms (and farms
//! of farms), versioned links, foreign-arch and non-ELF candidates, stubs,
//! the driver dir, `$ORIGIN`, empty/relative/build/missing entries, both
//! modes, `--keep`. The world generator is `tests/world/mod.rs`, shared with
//! the `plan` fuzz target. Invariants checked by `world::check`:
//! * every need that resolved before resolves to the same real file after
//!   (stubs excepted), unless the plan is refused;
//! * no duplicate entries in the new path;
//! * `$ORIGIN` and `--keep` entries survive;
//! * the new path never contains a farm dir (unless kept by pattern);
//! * planning again over the new path changes nothing (idempotent).

use crate::world;

use proptest::prelude::*;

/// Seeds run by default: the original one, and 1-3, which found the
/// idempotence bugs (a duplicate farm entry kept as unused; `--shrink`
/// entries that became redundant only once the real dirs came first).
/// `PLAN_PROP_SEED` / `PLAN_PROP_CASES` run others.
const SEEDS: [u64; 4] = [0x00f4_a2b1, 1, 2, 3];

#[test]
fn planner_invariants() {
    use proptest::test_runner::{Config, RngSeed, TestRunner};
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let seeds: Vec<u64> = match env("PLAN_PROP_SEED") {
        Some(s) => vec![s],
        None => SEEDS.to_vec(),
    };
    // The full run (`--features full-tests`) walks 20,000 worlds per seed;
    // the fast tier a sample of them.
    let default_cases = if cfg!(feature = "full-tests") {
        20_000
    } else {
        500
    };
    let cases = env("PLAN_PROP_CASES").unwrap_or(default_cases) as u32;
    for seed in seeds {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(seed),
            ..Config::default()
        });
        let strategy = proptest::collection::vec(any::<u8>(), 0..96);
        if let Err(e) = runner.run(&strategy, |bytes| {
            world::check(&world::decode(&bytes));
            Ok(())
        }) {
            panic!("seed {seed}: {e}");
        }
    }
}

/// Found by `planner_invariants`: a need the requested driver dir would now
/// shadow (a `libcuda.so.1` in a lib output, requested `want_driver`) made the
/// planner move that output ahead of the driver dir, breaking "driver first"
/// (and a second `fix` reordered again). Now no order works and it refuses.
#[test]
fn driver_dir_stays_first() {
    let bytes = [
        57, 58, 1, 0, 0, 0, 0, 11, 0, 0, 0, 27, 0, 19, 0, 0, 0, 0, 0, 16, 0, 0, 11, 109, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 17, 124, 0, 0, 48, 0,
    ];
    let w = world::decode(&bytes);
    world::check(&w);
}

/// Found by the `plan` fuzz target: `d` (unused, dropped by `--shrink`) then
/// `d/` (kept by `--keep`): the duplicate rule dropped the kept spelling too.
#[test]
fn kept_spelling_of_a_duplicate_dir_survives() {
    let bytes = [
        57, 58, 52, 252, 254, 254, 254, 254, 124, 119, 120, 115, 99, 1, 0, 255, 108, 124, 99, 0, 0,
        0, 95, 124, 255, 215, 105, 98, 98, 46, 105, 98, 98, 46, 141, 149, 93, 0, 11, 0, 0, 0, 0, 0,
        255, 255, 255, 12, 0, 0, 17, 1, 0, 17, 0, 52, 59, 1, 46, 49, 124, 0, 0,
    ];
    world::check(&world::decode(&bytes));
}

/// Found by the `plan` fuzz target: `d/` before `d` (kept by `--keep`), both
/// kept on the first pass; deduplication kept the spelling `d/`, and the
/// next pass, no longer seeing the kept text, dropped the dir.
#[test]
fn kept_entry_after_its_unkept_spelling_survives() {
    let bytes = [
        57, 8, 91, 253, 255, 0, 0, 0, 41, 0, 243, 255, 255, 255, 194, 49, 65, 255, 255, 109, 114,
        16, 0, 0, 19, 16, 51, 0,
    ];
    let w = world::decode(&bytes);
    world::check(&w);
}

/// `plan_objects` plans each distinct `PlanKey` once and copies the plans to
/// the objects that share it: over random worlds, each object (the world's
/// own, a twin beside it, a twin in another dir, and one with other needs)
/// gets exactly what planning it alone gives.
#[test]
fn grouped_planning_equals_planning_each() {
    use proptest::test_runner::{Config, RngSeed, TestRunner};
    use unfarm::plan::{self, PlanInput};
    use unfarm::store::StoreDir;
    let mut runner = TestRunner::new(Config {
        cases: if cfg!(feature = "full-tests") {
            3_000
        } else {
            300
        },
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(7),
        ..Config::default()
    });
    let strategy = proptest::collection::vec(any::<u8>(), 0..96);
    runner
        .run(&strategy, |bytes| {
            let w = world::decode(&bytes);
            let store = StoreDir::new(world::STORE);
            let dir = w.path.parent().unwrap_or(std::path::Path::new("/"));
            let beside = dir.join("twin-beside");
            let elsewhere = dir.with_file_name("other-dir").join("twin");
            let fewer: Vec<_> = w.needs.iter().skip(1).cloned().collect();
            // A need named by path (`$ORIGIN/../lib/…`), found beside the
            // world's object but not beside the twin in another dir.
            let by_path = "$ORIGIN/../lib/libbypath.so";
            let mut snapshot = w.snapshot.clone();
            let found = dir.join("../lib/libbypath.so");
            snapshot
                .dirs
                .entry(dir.join("../lib"))
                .or_default()
                .entries
                .insert(
                    "libbypath.so".into(),
                    unfarm::plan::snapshot::Offer {
                        resolved: Some(unfarm::farm::Resolved {
                            path: found.clone(),
                            hops: Vec::new(),
                            real: found.clone(),
                        }),
                        elf: Some((w.facts.ident, unfarm::elf::ObjectType::Dyn)),
                        fatal: None,
                        soname: Some("libbypath.so".into()),
                        is_stub: false,
                        real_dir: found.parent().map(|p| p.to_owned()),
                    },
                );
            let mut with_path = w.needs.clone();
            with_path.push(unfarm::plan::needs::Need {
                name: by_path.into(),
                provenance: vec![unfarm::plan::needs::Provenance::Needed],
            });
            // A twin that differs only in importing dlsym: it may dlopen(),
            // so a farm expands for it and not for the other (or both do).
            let dlsym = unfarm::elf::ElfFacts {
                imports_dlsym: !w.facts.imports_dlsym,
                ..w.facts.clone()
            };
            let f = &w.facts;
            let objects = [
                (w.path.clone(), &w.needs[..], f),
                (beside, &w.needs[..], f),
                (elsewhere.clone(), &w.needs[..], f),
                (w.path.with_file_name("fewer-needs"), &fewer[..], f),
                (w.path.with_file_name("twin-2"), &w.needs[..], f),
                (w.path.with_file_name("path-need"), &with_path[..], f),
                (elsewhere.with_file_name("path-need"), &with_path[..], f),
                (w.path.with_file_name("dlsym-twin"), &w.needs[..], &dlsym),
            ];
            let inputs: Vec<PlanInput> = objects
                .iter()
                .map(|(path, needs, facts)| PlanInput {
                    path,
                    facts,
                    needs,
                    snapshot: &snapshot,
                    store: &store,
                    opts: &w.opts,
                    outputs: &[],
                    own_libs: &[],
                })
                .collect();
            let grouped = plan::plan_objects(&inputs);
            for (input, got) in inputs.iter().zip(&grouped) {
                let want = plan::plan_object(input);
                prop_assert_eq!(
                    serde_json::to_string(got).unwrap(),
                    serde_json::to_string(&want).unwrap(),
                    "{}",
                    input.path.display()
                );
            }
            Ok(())
        })
        .unwrap();
}

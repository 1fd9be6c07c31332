//! Random small worlds for the planner, decoded from plain bytes so that the
//! same generator serves the property tests (`tests/fast/plan_props.rs`, proptest
//! feeds random bytes) and the fuzz target (`fuzz/fuzz_targets/plan.rs`,
//! libFuzzer feeds mutated bytes).
//!
//! A world: a store `/nix/store` with split `lib` outputs (regular or
//! versioned libraries, some of another machine, some not ELF), a stub
//! output, farms linking into the outputs (a farm of farms too), the object's
//! own output reached by `$ORIGIN/../lib`, a driver dir, and an object whose
//! RUNPATH (or RPATH) picks entries from all of these plus empty, relative,
//! build and missing dirs, with DT_NEEDED and dlopen needs.
//!
//! [`check`] plans the object and asserts the planner's invariants.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use unfarm::elf::{ByteOrder, Class, ElfFacts, ElfIdent, ObjectType};
use unfarm::farm::{Hop, Resolved};
use unfarm::loader::resolve::{self, LoaderConfig};
use unfarm::plan::snapshot::{DirSnapshot, Offer, Snapshot};
use unfarm::plan::{self, Mode, Outcome, PlanInput, PlanOptions, Tag};
use unfarm::store::{HASH_LEN, NIX_BASE32, StoreDir};

pub const STORE: &str = "/nix/store";
pub const DRIVER: &str = "/run/opengl-driver/lib";
const NAMES: [&str; 6] = [
    "liba.so.1",
    "libb.so.2",
    "libc.so.6",
    "libd.so.1",
    "libcuda.so.1",
    "libe.so.3",
];

/// Bytes read front to back; zeros once exhausted.
pub struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn below(&mut self, n: usize) -> usize {
        self.u8() as usize % n
    }
    fn bit(&mut self) -> bool {
        self.u8() & 1 == 1
    }
}

fn x86_64() -> ElfIdent {
    ElfIdent {
        class: Class::Elf64,
        data: ByteOrder::Little,
        machine: 62,
        osabi: 0,
    }
}

fn aarch64() -> ElfIdent {
    ElfIdent {
        machine: 183,
        ..x86_64()
    }
}

/// `/nix/store/<32 base32 chars>-<name>`, the hash derived from `n`.
pub fn store_path(n: usize, name: &str) -> PathBuf {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15 ^ (n as u64);
    let hash: String = (0..HASH_LEN)
        .map(|_| {
            h = h
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            NIX_BASE32[(h >> 59) as usize] as char
        })
        .collect();
    PathBuf::from(format!("{STORE}/{hash}-{name}"))
}

fn sp_of(p: &Path) -> Option<PathBuf> {
    StoreDir::new(STORE).store_path_of(p).map(|s| s.path)
}

fn hop(link: &Path, lands: &Path) -> Hop {
    Hop {
        link: link.to_owned(),
        target: lands.to_owned(),
        lands: lands.to_owned(),
        from: sp_of(link),
        to: sp_of(lands),
    }
}

/// A regular library file (or a non-ELF file when `not_elf`).
fn regular(path: &Path, soname: &str, ident: ElfIdent, not_elf: bool, stub: bool) -> Offer {
    Offer {
        resolved: Some(Resolved {
            path: path.to_owned(),
            hops: Vec::new(),
            real: path.to_owned(),
        }),
        elf: (!not_elf).then_some((ident, ObjectType::Dyn)),
        fatal: not_elf.then(|| "file too short".to_string()),
        soname: (!not_elf).then(|| soname.to_string()),
        is_stub: stub,
        real_dir: path.parent().map(Path::to_owned),
    }
}

/// `link` reached through one more symlink, landing on `target`'s offer.
fn link_to(link: &Path, target_path: &Path, target: &Offer) -> Offer {
    let mut o = target.clone();
    let r = o.resolved.as_mut().expect("linked offers resolve");
    r.path = link.to_owned();
    r.hops.insert(0, hop(link, target_path));
    // A link within one output keeps the link's dir as the real dir; a link
    // into another output (a farm) has the target's real dir.
    if sp_of(link) == sp_of(target_path) {
        o.real_dir = link.parent().map(Path::to_owned);
    }
    o
}

/// A decoded world.
pub struct World {
    pub snapshot: Snapshot,
    pub facts: ElfFacts,
    pub path: PathBuf,
    pub needs: Vec<unfarm::plan::needs::Need>,
    pub opts: PlanOptions,
    /// Dirs that offer some library through a cross-path hop.
    pub farm_dirs: Vec<PathBuf>,
}

fn add(snap: &mut Snapshot, dir: &Path, name: &str, o: Offer) {
    let d = snap.dirs.entry(dir.to_owned()).or_default();
    d.exists = true;
    d.entries.insert(name.to_string(), o);
}

/// Decode a world from bytes. Every byte string gives some world.
pub fn decode(data: &[u8]) -> World {
    let mut b = Bytes(data);
    let mut snap = Snapshot::default();
    let n_out = 1 + b.below(4);
    // (name -> first output dir offering it, and its offer) for farms.
    let mut offers: Vec<(String, PathBuf, Offer)> = Vec::new();
    let mut out_dirs = Vec::new();
    for k in 0..n_out {
        let dir = store_path(k, &format!("pkg{k}-lib")).join("lib");
        let mask = b.u8();
        let foreign = b.u8() % 8 == 0;
        for (i, name) in NAMES.iter().enumerate() {
            if mask & (1 << i) == 0 {
                continue;
            }
            let style = b.below(8);
            let ident = if foreign { aarch64() } else { x86_64() };
            let path = dir.join(name);
            let o = if style < 3 {
                // Versioned: name -> name.0.0 in the same output.
                let real_name = format!("{name}.0.0");
                let real = dir.join(&real_name);
                let ro = regular(&real, name, ident, false, false);
                add(&mut snap, &dir, &real_name, ro.clone());
                offers.push((real_name, real.clone(), ro.clone()));
                link_to(&path, &real, &ro)
            } else if style == 7 {
                regular(&path, name, ident, true, false)
            } else {
                regular(&path, name, ident, false, false)
            };
            add(&mut snap, &dir, name, o.clone());
            offers.push((name.to_string(), path, o));
            if b.u8() % 4 == 0 {
                // A linker name (`liba.so` -> `liba.so.1`): not a library a program loads.
                let stem = name.split(".so").next().unwrap_or(name);
                let lname = format!("{stem}.so");
                let lpath = dir.join(&lname);
                let lo = link_to(
                    &lpath,
                    &dir.join(name),
                    snap.offer(&dir.join(name)).unwrap(),
                );
                add(&mut snap, &dir, &lname, lo);
            }
        }
        snap.dirs.entry(dir.clone()).or_default().exists = true;
        out_dirs.push(dir);
    }
    // A stub output: lib/stubs/libcuda.so.1, a stub.
    let stub_dir = store_path(90, "cuda-stubs").join("lib/stubs");
    let stub_path = stub_dir.join("libcuda.so.1");
    let stub = regular(&stub_path, "libcuda.so.1", x86_64(), false, true);
    add(&mut snap, &stub_dir, "libcuda.so.1", stub.clone());
    if b.bit() {
        offers.push(("libcuda.so.1".into(), stub_path.clone(), stub));
    }
    // The driver dir, outside the store.
    if b.bit() {
        let p = Path::new(DRIVER).join("libcuda.so.1");
        add(
            &mut snap,
            Path::new(DRIVER),
            "libcuda.so.1",
            regular(&p, "libcuda.so.1", x86_64(), false, false),
        );
    }
    // Farms: links to the first offer of each name (lndir: first member wins).
    let mut farm_dirs: Vec<PathBuf> = Vec::new();
    let n_farms = b.below(3);
    for j in 0..n_farms {
        let fdir = store_path(100 + j, &format!("farm{j}")).join("lib");
        let order = b.u8() as usize;
        let mut seen = std::collections::HashSet::new();
        let n = offers.len();
        for t in 0..n {
            let (name, tpath, to) = &offers[(t + order) % n.max(1)];
            if !seen.insert(name.clone()) || b.u8() % 4 == 0 {
                continue;
            }
            let lpath = fdir.join(name);
            // A farm of farms links to the previous farm's link.
            let (tp, tof) = match (j, farm_dirs.last()) {
                (1, Some(prev)) if b.bit() => {
                    let pp: PathBuf = prev.join(name);
                    match snap.offer(&pp) {
                        Some(po) => (pp.clone(), po.clone()),
                        None => (tpath.clone(), to.clone()),
                    }
                }
                _ => (tpath.clone(), to.clone()),
            };
            let lo = link_to(&lpath, &tp, &tof);
            add(&mut snap, &fdir, name, lo);
        }
        snap.dirs.entry(fdir.clone()).or_default().exists = true;
        farm_dirs.push(fdir);
    }
    // The object, in its own output, with an own lib dir.
    let app = store_path(200, "app");
    let path = app.join("bin/app");
    let origin_lib = resolve::expand_entry(
        "$ORIGIN/../lib",
        &app.join("bin"),
        &LoaderConfig::default(),
        &x86_64(),
    );
    let own_mask = b.u8();
    for (i, name) in NAMES.iter().enumerate() {
        if own_mask & (1 << i) != 0 && own_mask & 0x80 != 0 {
            let p = origin_lib.join(name);
            add(
                &mut snap,
                &origin_lib,
                name,
                regular(&p, name, x86_64(), false, false),
            );
        }
    }
    // The search path.
    let missing = store_path(300, "gone").join("lib");
    let pool = |k: usize| -> String {
        match k {
            0..=2 => farm_dirs
                .get(k % farm_dirs.len().max(1))
                .map(|d| d.display().to_string())
                .unwrap_or_else(|| "/nix/store/nothing".into()),
            3..=6 => out_dirs[k % out_dirs.len()].display().to_string(),
            7 => "$ORIGIN/../lib".into(),
            8 => stub_dir.display().to_string(),
            9 => "/build/source/lib".into(),
            10 => String::new(),
            11 => "rel/lib".into(),
            12 => missing.display().to_string(),
            13 => DRIVER.into(),
            _ => format!("{}/", out_dirs[0].display()),
        }
    };
    let n_entries = b.below(8);
    let entries: Vec<String> = (0..n_entries).map(|_| pool(b.below(15))).collect();
    let list = entries.join(":");
    let kind = b.below(6);
    let (runpath, rpath) = match kind {
        0 => (None, Some(list.clone())),
        1 => (Some(list.clone()), Some(pool(b.below(15)))),
        2 if entries.is_empty() => (None, None),
        _ => (Some(list.clone()), None),
    };
    // Needs: DT_NEEDED and declared dlopen names (one that exists nowhere).
    let mut needed = Vec::new();
    let mut declared = Vec::new();
    let all: Vec<&str> = NAMES.iter().copied().chain(["libmissing.so.9"]).collect();
    let need_mask = b.u8();
    let dl_mask = b.u8();
    for (i, n) in all.iter().enumerate() {
        if need_mask & (1 << i) != 0 {
            needed.push(n.to_string());
        } else if dl_mask & (1 << i) != 0 {
            declared.push(n.to_string());
        }
    }
    let facts = ElfFacts {
        ident: x86_64(),
        object_type: ObjectType::Dyn,
        dynamic: true,
        interpreter: None,
        needed,
        runpath,
        rpath,
        soname: None,
        nodeflib: false,
        dlopen_notes: Vec::new(),
        imports_dlopen: b.bit(),
        imports_dlsym: b.bit(),
        has_section_headers: true,
        runpath_offset: None,
        rpath_offset: None,
    };
    let needs = unfarm::plan::needs::collect(&facts, &declared, &[]);
    let mut opts = PlanOptions {
        mode: if b.bit() { Mode::Shrink } else { Mode::Expand },
        drop_unused: b.bit(),
        want_driver: b.u8() % 4 == 0,
        loader: LoaderConfig {
            cwd: Some(PathBuf::from("/cwd")),
            ..LoaderConfig::default()
        },
        ..PlanOptions::default()
    };
    let keep = b.u8() as usize;
    if keep.is_multiple_of(3) && !entries.is_empty() {
        let t = &entries[keep / 3 % entries.len()];
        if !t.is_empty() {
            opts.keep.push(t.clone());
        }
    }
    // A stray stub link in the first lib output (nixpkgs #293320):
    // `libcuda.so -> stubs/libcuda.so`, the stub in that same output.
    // (Decoded last: the worlds before it stay as they were.)
    if b.bit() {
        let d = &out_dirs[0];
        let sp = d.join("stubs/libcuda.so");
        let so = regular(&sp, "libcuda.so.1", x86_64(), false, true);
        add(&mut snap, &d.join("stubs"), "libcuda.so", so.clone());
        add(
            &mut snap,
            d,
            "libcuda.so",
            link_to(&d.join("libcuda.so"), &sp, &so),
        );
    }
    // Every dir the planner will look at is in the snapshot (maybe as missing).
    let mut dirs = plan::dirs_to_gather(&path, &facts, &opts);
    dirs.extend(plan::fallback_dirs(&facts, &opts));
    for d in dirs {
        snap.dirs.entry(d).or_insert_with(|| DirSnapshot {
            exists: false,
            entries: BTreeMap::new(),
            partial: false,
        });
    }
    World {
        snapshot: snap,
        facts,
        path,
        needs,
        opts,
        farm_dirs,
    }
}

fn plans(w: &World, facts: &ElfFacts) -> Vec<plan::Plan> {
    let store = StoreDir::new(STORE);
    plan::plan_object(&PlanInput {
        path: &w.path,
        facts,
        needs: &w.needs,
        snapshot: &w.snapshot,
        store: &store,
        opts: &w.opts,
        outputs: &[],
        own_libs: &[],
    })
}

fn is_origin(t: &str) -> bool {
    t.starts_with("$ORIGIN") || t.starts_with("${ORIGIN}")
}

/// A dir that offers a library this object could load through a cross-path
/// hop (a farm dir holding only foreign-arch or non-ELF files is not one).
pub fn is_indirect(w: &World, dir: &Path) -> bool {
    w.snapshot.dir(dir).is_some_and(|d| {
        d.entries.iter().any(|(n, o)| {
            o.crosses()
                && o.is_loadable_library(n)
                && o.elf.is_some_and(|(i, _)| w.facts.ident.loadable_by(&i))
        })
    })
}

/// Plan the world's object and assert the planner's invariants. Panics with
/// a description of the broken invariant.
pub fn check(w: &World) {
    let ps = plans(w, &w.facts);
    for p in &ps {
        let effective = match p.tag {
            Tag::Runpath => true,
            Tag::Rpath => w.facts.runpath.is_none(),
        };
        if matches!(p.outcome, Outcome::Refused { .. }) {
            continue;
        }
        let new: Vec<&str> = if p.new.is_empty() {
            Vec::new()
        } else {
            p.new.split(':').collect()
        };
        // No duplicates.
        let mut seen = std::collections::HashSet::new();
        for e in &new {
            assert!(seen.insert(*e), "duplicate entry {e:?} in {:?}", p.new);
        }
        // $ORIGIN and --keep entries survive.
        for e in p.old.split(':').filter(|e| !e.is_empty()) {
            if is_origin(e) || w.opts.keep.iter().any(|k| k == e) {
                // Duplicates by directory (`d` and `d/`) collapse to the first.
                let same = |x: &&str| x.trim_end_matches('/') == e.trim_end_matches('/');
                assert!(
                    new.iter().any(same),
                    "kept entry {e:?} lost: {:?} -> {:?}",
                    p.old,
                    p.new
                );
            }
        }
        // The driver dir, when there, comes first (docs/design.md#the-canonical-runpath, step 4).
        if let Some(i) = new.iter().position(|e| *e == DRIVER) {
            assert_eq!(i, 0, "driver dir not first: {:?} -> {:?}", p.old, p.new);
        }
        // A dir of the new effective list that offers a stub (by any name,
        // through a link or not) has the driver dir before it.
        let offers_stub = |e: &&str| {
            *e != DRIVER
                && w.snapshot
                    .dir(Path::new(e))
                    .is_some_and(|d| !d.stubs().is_empty())
        };
        if effective && new.iter().any(offers_stub) {
            assert_eq!(
                new.first(),
                Some(&DRIVER),
                "a stub ahead of the driver: {:?} -> {:?}",
                p.old,
                p.new
            );
        }
        // No farm dir, unless asked to keep it.
        for e in &new {
            let dir = Path::new(e.trim_end_matches('/'));
            if is_indirect(w, dir) {
                assert!(
                    w.opts.keep.iter().any(|k| k == e),
                    "farm dir {e:?} in new path {:?} (old {:?})",
                    p.new,
                    p.old
                );
            }
        }
        if !effective || p.new == p.old {
            continue;
        }
        // Every need that resolved before resolves to the same real file after
        // (stubs excepted): re-plan with the new path and compare `before`s.
        let mut facts = w.facts.clone();
        match p.tag {
            Tag::Runpath => facts.runpath = Some(p.new.clone()),
            Tag::Rpath => facts.rpath = Some(p.new.clone()),
        }
        if p.new.is_empty() {
            match p.tag {
                Tag::Runpath => facts.runpath = None,
                Tag::Rpath => facts.rpath = None,
            }
        }
        let again = plans(w, &facts);
        let after: BTreeMap<&str, Option<&PathBuf>> = again
            .iter()
            .find(|q| q.tag == p.tag)
            .map(|q| {
                q.needs
                    .iter()
                    .map(|n| (n.need.name.as_str(), n.before.as_ref()))
                    .collect()
            })
            .unwrap_or_default();
        // Idempotent: planning over the new path keeps it.
        if let Some(q) = again.iter().find(|q| q.tag == p.tag) {
            assert!(
                q.new == p.new && q.outcome == Outcome::Unchanged,
                "not idempotent: {:?} -> {:?} -> {:?} ({:?})",
                p.old,
                p.new,
                q.new,
                q.entries
                    .iter()
                    .map(|e| (&e.text, &e.action, &e.reasons))
                    .collect::<Vec<_>>()
            );
        }
        for n in &p.needs {
            let (Some(before), false) = (&n.before, n.was_stub) else {
                continue;
            };
            let got = after.get(n.need.name.as_str()).copied().flatten();
            assert_eq!(
                got,
                Some(before),
                "need {} moved: {:?} -> {:?}",
                n.need.name,
                p.old,
                p.new
            );
        }
    }
}

//! Against a real Nix (Debian's nix-bin): references, closure sizes, NAR
//! sizes, why-chains and added sizes must agree with Nix's own answers.
//! These tests FAIL when Nix is missing. They run scripts/setup-nix.sh first
//! (idempotent; needs root, as in CI).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::nix::{self, run};

use unfarm::closure::scan::{Candidates, Scanner, hash_of};
use unfarm::closure::{NixDb, Source, nar_size, scan_closure};
use unfarm::store::StoreDir;

use crate::common;

struct Fixture {
    app: PathBuf,
    appnofarm: PathBuf,
    joined: PathBuf,
    liba: PathBuf,
    libadev: PathBuf,
}

impl Fixture {
    fn all(&self) -> Vec<&PathBuf> {
        vec![
            &self.app,
            &self.appnofarm,
            &self.joined,
            &self.liba,
            &self.libadev,
        ]
    }
}

/// Build the fixture once per test process.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // A fresh salt per run: paths not seen before, built now.
        let salt = format!("{}", std::process::id());
        let p = nix::build("fixture.nix", None, &[("salt", &salt)]);
        assert_eq!(p.len(), 5, "nix-build output: {p:?}");
        // nix-build prints attributes in name order.
        Fixture {
            app: p[0].clone(),
            appnofarm: p[1].clone(),
            joined: p[2].clone(),
            liba: p[3].clone(),
            libadev: p[4].clone(),
        }
    })
}

fn sd() -> StoreDir {
    StoreDir::new("/nix/store")
}

fn db() -> PathBuf {
    PathBuf::from("/nix/var/nix/db/db.sqlite")
}

#[test]
fn scanned_references_equal_nix_references() {
    let f = fixture();
    let valid = NixDb::open(&db()).unwrap().valid_paths().unwrap();
    let store = sd();
    let sps: Vec<_> = valid
        .iter()
        .filter_map(|p| store.store_path_of(p))
        .collect();
    let scanner = Scanner::new(&store, Candidates::of_paths(&sps));
    let by_hash: BTreeMap<_, _> = sps
        .iter()
        .map(|sp| (hash_of(&sp.hash).unwrap(), sp.path.clone()))
        .collect();
    for p in f.all() {
        let ours: BTreeSet<PathBuf> = scanner
            .references(p)
            .unwrap()
            .iter()
            .map(|h| by_hash[h].clone())
            .collect();
        assert_eq!(ours, nix::references(p), "references of {}", p.display());
    }
    // The self-reference (liba's own RUNPATH) is found.
    assert!(nix::references(&f.liba).contains(&f.liba));
    // Plain-dir scanning of the whole store gives the same graph edges.
    let g = scan_closure(&store, &[f.app.clone(), f.appnofarm.clone()]).unwrap();
    for n in g.nodes() {
        let ours: BTreeSet<PathBuf> = n.refs.iter().map(|&r| g.node(r).path.clone()).collect();
        assert_eq!(
            ours,
            nix::references(&n.path),
            "scan_closure refs of {}",
            n.path.display()
        );
    }
}

#[test]
fn nar_sizes_equal_nix_dump() {
    let f = fixture();
    for p in f.all() {
        let dump = Command::new("nix-store")
            .args(["--dump"])
            .arg(p)
            .output()
            .unwrap();
        assert!(dump.status.success());
        assert_eq!(
            nar_size(p).unwrap(),
            dump.stdout.len() as u64,
            "{}",
            p.display()
        );
    }
}

#[test]
fn closure_sizes_equal_nix_path_info() {
    let f = fixture();
    for p in f.all() {
        let want = nix::closure_size(p);
        for source in [Source::NixDb(db()), Source::Scan] {
            let g = source.load(&sd(), std::slice::from_ref(p)).unwrap();
            let id = g.id(p).unwrap();
            assert_eq!(
                g.closure_size(&[id]),
                want,
                "{} via {source:?}",
                p.display()
            );
        }
    }
}

/// Parse `nix why-depends --all` (tree drawing, ANSI colours) into edges.
fn why_depends_edges(from: &Path, to: &Path) -> BTreeSet<(PathBuf, PathBuf)> {
    let out = run(
        "nix",
        &[
            "--extra-experimental-features",
            "nix-command",
            "why-depends",
            "--all",
            from.to_str().unwrap(),
            to.to_str().unwrap(),
        ],
    );
    let mut stack: Vec<PathBuf> = Vec::new();
    let mut edges = BTreeSet::new();
    for line in out.lines() {
        let Some(pos) = line.find("/nix/store/") else {
            continue;
        };
        let depth = line[..pos].chars().count() / 4;
        let path: String = line[pos..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '\x1b')
            .collect();
        stack.truncate(depth);
        if let Some(parent) = stack.last() {
            edges.insert((parent.clone(), PathBuf::from(&path)));
        }
        stack.push(PathBuf::from(path));
    }
    edges
}

#[test]
fn why_chains_agree_with_nix_why_depends() {
    let f = fixture();
    for source in [Source::NixDb(db()), Source::Scan] {
        let g = source.load(&sd(), std::slice::from_ref(&f.app)).unwrap();
        for dep in [&f.liba, &f.libadev, &f.joined] {
            let (chains, truncated) = g.all_chains(g.id(&f.app).unwrap(), g.id(dep).unwrap(), 1000);
            assert!(!truncated);
            let ours: BTreeSet<(PathBuf, PathBuf)> = chains
                .iter()
                .flat_map(|c| {
                    c.windows(2)
                        .map(|w| (g.node(w[0]).path.clone(), g.node(w[1]).path.clone()))
                })
                .collect();
            assert_eq!(
                ours,
                why_depends_edges(&f.app, dep),
                "why {} via {source:?}",
                dep.display()
            );
        }
    }
    // The CLI: JSON, the farm hop labelled, RUNPATH entry attributed.
    let out = Command::new(env!("CARGO_BIN_EXE_unfarm"))
        .args(["why", "--json"])
        .arg(&f.app)
        .arg(&f.libadev)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hops = v["hops"].as_array().unwrap();
    let first = hops
        .iter()
        .find(|h| h["to"] == f.joined.to_str().unwrap())
        .unwrap();
    assert_eq!(first["to_is_farm"], true);
    let hit = &first["hits"][0];
    assert_eq!(hit["file"], format!("{}/bin/app", f.app.display()));
    assert_eq!(hit["context"]["what"], "runpath");
    assert_eq!(hit["context"]["entry"], 1);
}

#[test]
fn farm_added_size_equals_measured_drop() {
    let f = fixture();
    // appnofarm is app with the farm's hash blanked: same NAR size, one
    // reference fewer. The drop Nix measures is the farm's cost.
    let drop = nix::closure_size(&f.app) - nix::closure_size(&f.appnofarm);
    for source in [Source::NixDb(db()), Source::Scan] {
        let g = source.load(&sd(), std::slice::from_ref(&f.app)).unwrap();
        let root = g.id(&f.app).unwrap();
        let farm = g.id(&f.joined).unwrap();
        assert_eq!(g.added_size(&[root], farm), drop, "{source:?}");
        let without = g
            .closure_size_without_refs(
                std::slice::from_ref(&f.app),
                &[(f.app.clone(), f.joined.clone())],
            )
            .unwrap();
        assert_eq!(g.closure_size(&[root]) - without, drop);
    }
}

//! Closure graphs: added sizes (against brute force), planned changes, NAR
//! accounting, the Nix DB reader (read-only, never blocking a writer).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use unfarm::closure::{ClosureError, ClosureGraph, NixDb, RefChange, nar_size, scan_closure};
use unfarm::store::StoreDir;

fn p(n: &str) -> PathBuf {
    PathBuf::from(format!("/nix/store/{n}"))
}

/// Graph from (name, size) and (from, to) edges.
fn graph(nodes: &[(&str, u64)], edges: &[(&str, &str)]) -> ClosureGraph {
    let mut g = ClosureGraph::new();
    for &(n, s) in nodes {
        g.insert(p(n), s);
    }
    for &(a, b) in edges {
        let (a, b) = (g.id(&p(a)).unwrap(), g.id(&p(b)).unwrap());
        g.add_ref(a, b);
    }
    g
}

fn added(g: &ClosureGraph, root: &str) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = g
        .added_sizes(&[g.id(&p(root)).unwrap()])
        .into_iter()
        .map(|c| {
            (
                c.path.file_name().unwrap().to_string_lossy().into_owned(),
                c.added_size,
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn diamond_and_shared_deps() {
    // app -> {a, b} -> c -> d ; a -> e. Removing a alone frees a and e; c is
    // shared, so only app dominates it.
    let g = graph(
        &[
            ("app", 1),
            ("a", 10),
            ("b", 100),
            ("c", 1000),
            ("d", 10000),
            ("e", 100000),
        ],
        &[
            ("app", "a"),
            ("app", "b"),
            ("a", "c"),
            ("b", "c"),
            ("c", "d"),
            ("a", "e"),
            ("c", "c"),
        ],
    );
    let root = g.id(&p("app")).unwrap();
    assert_eq!(g.closure_size(&[root]), 111111);
    assert_eq!(
        added(&g, "app"),
        vec![
            ("a".into(), 100010),
            ("app".into(), 111111),
            ("b".into(), 100),
            ("c".into(), 11000),
            ("d".into(), 10000),
            ("e".into(), 100000)
        ]
    );
    // Sorted by added size.
    let order: Vec<u64> = g
        .added_sizes(&[root])
        .iter()
        .map(|c| c.added_size)
        .collect();
    assert!(order.windows(2).all(|w| w[0] >= w[1]));
}

#[test]
fn planned_changes() {
    // app -> farm -> {lib, dev(big)}; the fix replaces app->farm with app->lib.
    let g = graph(
        &[
            ("app", 1),
            ("farm", 2),
            ("lib", 30),
            ("dev", 4000),
            ("other", 50000),
        ],
        &[
            ("app", "farm"),
            ("farm", "lib"),
            ("farm", "dev"),
            ("dev", "lib"),
        ],
    );
    let roots = [p("app")];
    let change = RefChange {
        removed: vec![(p("app"), p("farm"))],
        added: vec![(p("app"), p("lib"))],
    };
    assert_eq!(
        g.closure_size_with(&roots, &RefChange::default()).unwrap(),
        4033
    );
    assert_eq!(g.closure_size_with(&roots, &change).unwrap(), 31);
    assert_eq!(
        g.closure_size_without_refs(&roots, &[(p("app"), p("farm"))])
            .unwrap(),
        1
    );
    // Adding an edge to a path outside the closure brings its size in.
    let c2 = RefChange {
        removed: vec![],
        added: vec![(p("lib"), p("other"))],
    };
    assert_eq!(g.closure_size_with(&roots, &c2).unwrap(), 54033);
    // Added size of the farm = what removing the reference saves.
    let root = g.id(&p("app")).unwrap();
    assert_eq!(g.added_size(&[root], g.id(&p("farm")).unwrap()), 4032);
    // Errors name what is wrong.
    let bad = RefChange {
        removed: vec![(p("app"), p("lib"))],
        added: vec![],
    };
    assert!(matches!(
        g.closure_size_with(&roots, &bad),
        Err(ClosureError::UnknownEdge(..))
    ));
    let bad = RefChange {
        removed: vec![],
        added: vec![(p("app"), p("nope"))],
    };
    let e = g.closure_size_with(&roots, &bad).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn added_sizes_match_brute_force_on_random_graphs() {
    let mut seed = 0x2545F4914F6CDD1Du64;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _ in 0..200 {
        let n = 2 + rnd(14) as usize;
        let mut g = ClosureGraph::new();
        for i in 0..n {
            g.insert(p(&format!("n{i}")), 1 + rnd(1000));
        }
        // Mostly forward edges, some cycles (Nix graphs may have self-refs;
        // cycles between paths are not possible in Nix but must not break us).
        for _ in 0..rnd(3 * n as u64) {
            let (a, b) = (rnd(n as u64) as usize, rnd(n as u64) as usize);
            if a < b || rnd(10) == 0 {
                g.add_ref(a, b);
            }
        }
        let roots: Vec<usize> = if rnd(3) == 0 { vec![0, 1] } else { vec![0] };
        let total = g.closure_size(&roots);
        for c in g.added_sizes(&roots) {
            let v = g.id(&c.path).unwrap();
            // Brute force: remove every edge into v (and v as a root).
            let mut h = ClosureGraph::new();
            for k in 0..g.len() {
                h.insert(g.node(k).path.clone(), g.node(k).nar_size);
            }
            for k in 0..g.len() {
                for &r in &g.node(k).refs {
                    if r != v {
                        h.add_ref(k, r);
                    }
                }
            }
            let rest: Vec<usize> = roots.iter().copied().filter(|&r| r != v).collect();
            assert_eq!(
                c.added_size,
                total - h.closure_size(&rest),
                "node {v} roots {roots:?}"
            );
        }
    }
}

#[test]
fn chains() {
    let g = graph(
        &[("app", 1), ("a", 1), ("b", 1), ("c", 1), ("d", 1)],
        &[
            ("app", "a"),
            ("app", "b"),
            ("a", "c"),
            ("b", "c"),
            ("c", "d"),
            ("app", "d"),
            ("a", "a"),
        ],
    );
    let id = |n: &str| g.id(&p(n)).unwrap();
    assert_eq!(
        g.shortest_chain(id("app"), id("d")),
        Some(vec![id("app"), id("d")])
    );
    let (all, trunc) = g.all_chains(id("app"), id("d"), 100);
    assert!(!trunc);
    assert_eq!(all.len(), 3);
    let (some, trunc) = g.all_chains(id("app"), id("d"), 2);
    assert!(trunc);
    assert_eq!(some.len(), 2);
    assert_eq!(g.shortest_chain(id("d"), id("app")), None);
}

const H: [&str; 3] = [
    "0123456789abcdfghijklmnpqrsvwxyz",
    "zyxwvsrqpnmlkjihgfdcba9876543210",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
];

#[test]
fn nar_sizes_by_hand() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("f");
    std::fs::write(&f, "").unwrap();
    // "nix-archive-1"(24) ( type regular contents <u64> ) = 24 + 16*5 + 8
    assert_eq!(nar_size(&f).unwrap(), 112);
    std::fs::write(&f, "hi\n").unwrap();
    assert_eq!(nar_size(&f).unwrap(), 120);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
    // + "executable"(24) + ""(8)
    assert_eq!(nar_size(&f).unwrap(), 152);
    let l = d.path().join("l");
    std::os::unix::fs::symlink("abcdefghi", &l).unwrap();
    // 24 + ( type symlink target <9 -> 24> ) = 24 + 16*5 + 24
    assert_eq!(nar_size(&l).unwrap(), 128);
    let e = d.path().join("e");
    std::fs::create_dir(&e).unwrap();
    // 24 + ( type directory(24) ) = 24 + 48 + 24
    assert_eq!(nar_size(&e).unwrap(), 96);
}

#[test]
fn plain_store_closure() {
    let d = tempfile::tempdir().unwrap();
    let sd = StoreDir::new(d.path());
    let path = |i: usize, n: &str| d.path().join(format!("{}-{n}", H[i]));
    std::fs::create_dir_all(path(0, "app").join("bin")).unwrap();
    std::fs::write(
        path(0, "app").join("bin/x"),
        format!("{}/lib\n", path(1, "farm").display()),
    )
    .unwrap();
    std::fs::create_dir_all(path(1, "farm")).unwrap();
    std::os::unix::fs::symlink(path(2, "lib").join("l.so"), path(1, "farm").join("l.so")).unwrap();
    std::fs::create_dir_all(path(2, "lib")).unwrap();
    std::fs::write(path(2, "lib").join("l.so"), vec![7u8; 5000]).unwrap();
    let g = scan_closure(&sd, &[path(0, "app")]).unwrap();
    assert_eq!(g.len(), 3);
    let total: u64 = [0, 1, 2]
        .iter()
        .map(|&i| nar_size(&[path(0, "app"), path(1, "farm"), path(2, "lib")][i]).unwrap())
        .sum();
    assert_eq!(g.closure_size(&[g.id(&path(0, "app")).unwrap()]), total);
    assert!(unfarm::farm::is_farm(&sd, &path(1, "farm")).unwrap());
    assert!(!unfarm::farm::is_farm(&sd, &path(2, "lib")).unwrap());
    let e = scan_closure(&sd, &[d.path().join("not-a-store-path")]).unwrap_err();
    assert!(e.to_string().contains("not-a-store-path"), "{e}");
}

/// Nix's schema (the parts we read, verbatim), in WAL mode like Nix's.
pub(crate) fn make_db(path: &std::path::Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c.execute_batch(
        "create table ValidPaths (
            id integer primary key autoincrement not null,
            path text unique not null, hash text not null,
            registrationTime integer not null, deriver text, narSize integer,
            ultimate integer, sigs text, ca text);
         create table Refs (
            referrer integer not null, reference integer not null,
            primary key (referrer, reference),
            foreign key (referrer) references ValidPaths(id) on delete cascade,
            foreign key (reference) references ValidPaths(id) on delete restrict);
         create index IndexReferrer on Refs(referrer);
         create index IndexReference on Refs(reference);",
    )
    .unwrap();
    c
}

pub(crate) fn add(c: &Connection, path: &str, size: i64) -> i64 {
    c.execute(
        "insert into ValidPaths (path, hash, registrationTime, narSize) values (?1, 'sha256:x', 1, ?2)",
        rusqlite::params![path, size],
    )
    .unwrap();
    c.last_insert_rowid()
}

#[test]
fn nix_db_read_only_and_never_blocks_a_writer() {
    let d = tempfile::tempdir().unwrap();
    let dbp = d.path().join("db.sqlite");
    let w = make_db(&dbp);
    let a = add(&w, &p(&format!("{}-app", H[0])).to_string_lossy(), 100);
    let b = add(&w, &p(&format!("{}-lib", H[1])).to_string_lossy(), 20);
    w.execute(
        "insert into Refs values (?1, ?2), (?1, ?1), (?2, ?2)",
        [a, b],
    )
    .unwrap();

    let db = NixDb::open(&dbp).unwrap();
    let g = db.closure(&[p(&format!("{}-app", H[0]))]).unwrap();
    assert_eq!(g.len(), 2);
    assert_eq!(g.closure_size(&[0]), 120);
    assert!(db.is_valid(&p(&format!("{}-lib", H[1]))).unwrap());
    assert!(matches!(
        db.closure(&[p("nope")]),
        Err(ClosureError::NotValid { .. })
    ));

    // A writer holds a write transaction with uncommitted changes: our read
    // neither blocks nor sees them.
    w.execute_batch("begin immediate").unwrap();
    let c = add(&w, &p(&format!("{}-new", H[2])).to_string_lossy(), 5);
    w.execute("insert into Refs values (?1, ?2)", [b, c])
        .unwrap();
    let t = Instant::now();
    let db2 = NixDb::open(&dbp).unwrap();
    let g = db2.closure(&[p(&format!("{}-app", H[0]))]).unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(g.len(), 2);
    // Our open connections do not stop the writer from committing.
    w.busy_timeout(Duration::from_millis(100)).unwrap();
    w.execute_batch("commit").unwrap();
    // And a checkpoint while we are connected succeeds too.
    w.query_row("pragma wal_checkpoint(passive)", [], |_| Ok(()))
        .unwrap();
    let g = db2.closure(&[p(&format!("{}-app", H[0]))]).unwrap();
    assert_eq!(g.len(), 3);
    // Writing through our handle is impossible.
    let e = NixDb::open(&dbp).unwrap();
    drop(e);
    let ro = Connection::open_with_flags(
        format!("file:{}?mode=ro", dbp.display()),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )
    .unwrap();
    assert!(ro.execute("delete from Refs", []).is_err());
}

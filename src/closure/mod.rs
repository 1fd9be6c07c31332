//! Closure graphs: where they come from (the Nix database, or a plain
//! directory used as a store, scanned), NAR size accounting, and what things
//! cost (closure size, added size, size after a planned change of references).
//!
//! # Cost API
//!
//! Load a [`ClosureGraph`] covering every path you will talk about (the
//! outputs, and any path a planned change adds a reference to), then:
//!
//! - [`ClosureGraph::closure_size`]: total NAR size of the closure of `roots`;
//! - [`ClosureGraph::added_sizes`]: per path, its own size and its *added
//!   size*: the bytes that leave the closure when every reference to it is
//!   removed (the size of the subtree it dominates, itself included);
//! - [`ClosureGraph::closure_size_with`]: the total after a [`RefChange`]
//!   (edges removed, edges added), e.g. for `fix --dry-run`'s before/after;
//! - [`ClosureGraph::closure_size_without_refs`]: the same with removals only,
//!   e.g. for `check` ("dropping the reference to this farm saves N bytes").
//!
//! Self-references are kept in the graph (Nix records them) but never matter
//! for reachability.

pub mod cost;
pub mod scan;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rayon::prelude::*;
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::farm::is_farm;
use crate::store::{StoreDir, normalize_lexically};
use crate::walk::{Entry, EntryKind, walk_nar};
use scan::{Candidates, HashSetFast, ScanError, Scanner};

/// Index of a node in a [`ClosureGraph`].
pub type NodeId = usize;

/// Why a closure could not be built or queried; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum ClosureError {
    /// The Nix database could not be opened or queried.
    #[error("{}: Nix database: {source}", path.display())]
    Db {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The path is not registered as valid in the database.
    #[error("{}: not a valid path in the Nix database {}", path.display(), db.display())]
    NotValid {
        /// The path asked for.
        path: PathBuf,
        /// The database file.
        db: PathBuf,
    },
    /// The path is not below the store dir.
    #[error("{}: not a store path under {store}", path.display())]
    NotInStore {
        /// The path given.
        path: PathBuf,
        /// The store dir.
        store: String,
    },
    /// Walking or scanning a store path failed.
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// A path that is not a node of the graph.
    #[error("{}: not in the closure graph", .0.display())]
    UnknownPath(PathBuf),
    /// An edge (referrer, reference) the graph does not have.
    #[error("{} does not reference {}", .0.display(), .1.display())]
    UnknownEdge(PathBuf, PathBuf),
}

/// One store path of a closure graph.
#[derive(Clone, Debug)]
pub struct Node {
    /// The store path.
    pub path: PathBuf,
    /// Size of the path's NAR serialisation (Nix's `narSize`).
    pub nar_size: u64,
    /// Referenced nodes, sorted, without duplicates; may include the node itself.
    pub refs: Vec<NodeId>,
}

/// A set of store paths with sizes and references.
#[derive(Clone, Debug, Default)]
pub struct ClosureGraph {
    nodes: Vec<Node>,
    by_path: HashMap<PathBuf, NodeId>,
}

/// A planned change of references: edges (referrer, reference) removed and
/// added. All paths must be nodes of the graph.
#[derive(Clone, Debug, Default)]
pub struct RefChange {
    /// Edges (referrer, reference) that go away.
    pub removed: Vec<(PathBuf, PathBuf)>,
    /// Edges (referrer, reference) that appear.
    pub added: Vec<(PathBuf, PathBuf)>,
}

/// A path of a closure with its own size and its added size.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PathCost {
    /// The store path.
    pub path: PathBuf,
    /// Its own NAR size.
    pub nar_size: u64,
    /// Bytes that leave the closure when every reference to this path is
    /// removed: the NAR sizes of the paths it alone keeps alive, itself
    /// included. For a root, what its being a root alone keeps.
    pub added_size: u64,
}

impl ClosureGraph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a path (or update its size if present) and return its id.
    pub fn insert(&mut self, path: impl Into<PathBuf>, nar_size: u64) -> NodeId {
        let path = path.into();
        if let Some(&id) = self.by_path.get(&path) {
            self.nodes[id].nar_size = nar_size;
            return id;
        }
        let id = self.nodes.len();
        self.by_path.insert(path.clone(), id);
        self.nodes.push(Node {
            path,
            nar_size,
            refs: Vec::new(),
        });
        id
    }

    /// Record that `from` references `to`.
    pub fn add_ref(&mut self, from: NodeId, to: NodeId) {
        let r = &mut self.nodes[from].refs;
        if let Err(pos) = r.binary_search(&to) {
            r.insert(pos, to);
        }
    }

    /// The id of `path`, if it is a node.
    pub fn id(&self, path: &Path) -> Option<NodeId> {
        self.by_path.get(path).copied()
    }

    fn need(&self, path: &Path) -> Result<NodeId, ClosureError> {
        self.id(path)
            .ok_or_else(|| ClosureError::UnknownPath(path.to_owned()))
    }

    /// The node with id `id` (an id this graph gave).
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the graph has no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every node, indexed by id.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The nodes reachable from `roots` (roots included), in BFS order.
    pub fn closure(&self, roots: &[NodeId]) -> Vec<NodeId> {
        self.reach(roots, |n| self.nodes[n].refs.to_vec())
    }

    fn reach(&self, roots: &[NodeId], succ: impl Fn(NodeId) -> Vec<NodeId>) -> Vec<NodeId> {
        let mut seen = vec![false; self.nodes.len()];
        let mut order = Vec::new();
        let mut q: VecDeque<NodeId> = VecDeque::new();
        for &r in roots {
            if !seen[r] {
                seen[r] = true;
                q.push_back(r);
            }
        }
        while let Some(n) = q.pop_front() {
            order.push(n);
            for m in succ(n) {
                if !seen[m] {
                    seen[m] = true;
                    q.push_back(m);
                }
            }
        }
        order
    }

    /// Total NAR size of the closure of `roots`.
    pub fn closure_size(&self, roots: &[NodeId]) -> u64 {
        self.closure(roots)
            .iter()
            .map(|&n| self.nodes[n].nar_size)
            .sum()
    }

    /// Total NAR size of the closure of `roots` after `change`. Errors if a
    /// path is not in the graph or a removed edge does not exist.
    pub fn closure_size_with(
        &self,
        roots: &[PathBuf],
        change: &RefChange,
    ) -> Result<u64, ClosureError> {
        let roots: Vec<NodeId> = roots
            .iter()
            .map(|p| self.need(p))
            .collect::<Result<_, _>>()?;
        let mut removed: HashSet<(NodeId, NodeId)> = HashSet::new();
        for (a, b) in &change.removed {
            let (ia, ib) = (self.need(a)?, self.need(b)?);
            if self.nodes[ia].refs.binary_search(&ib).is_err() {
                return Err(ClosureError::UnknownEdge(a.clone(), b.clone()));
            }
            removed.insert((ia, ib));
        }
        let mut added: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
        for (a, b) in &change.added {
            added.entry(self.need(a)?).or_default().push(self.need(b)?);
        }
        let reach = self.reach(&roots, |n| {
            let mut v: Vec<NodeId> = self.nodes[n]
                .refs
                .iter()
                .copied()
                .filter(|&m| !removed.contains(&(n, m)))
                .collect();
            if let Some(extra) = added.get(&n) {
                v.extend(extra);
            }
            v
        });
        Ok(reach.iter().map(|&n| self.nodes[n].nar_size).sum())
    }

    /// Total NAR size of the closure of `roots` with the given references
    /// removed.
    pub fn closure_size_without_refs(
        &self,
        roots: &[PathBuf],
        removed: &[(PathBuf, PathBuf)],
    ) -> Result<u64, ClosureError> {
        self.closure_size_with(
            roots,
            &RefChange {
                removed: removed.to_vec(),
                added: Vec::new(),
            },
        )
    }

    /// Own size and added size of every path in the closure of `roots`,
    /// sorted by added size (largest first), then path.
    ///
    /// Added size is computed on the dominator tree of the closure (with a
    /// virtual root above all roots): a path's added size is the size of its
    /// dominator subtree. Cooper, Harvey & Kennedy's iterative algorithm.
    pub fn added_sizes(&self, roots: &[NodeId]) -> Vec<PathCost> {
        let added = self.dominator_sizes(roots);
        let mut out: Vec<PathCost> = added
            .into_iter()
            .map(|(n, a)| PathCost {
                path: self.nodes[n].path.clone(),
                nar_size: self.nodes[n].nar_size,
                added_size: a,
            })
            .collect();
        out.sort_by(|a, b| {
            b.added_size
                .cmp(&a.added_size)
                .then_with(|| a.path.cmp(&b.path))
        });
        out
    }

    /// Added size of one path (see [`Self::added_sizes`]); 0 if it is not in
    /// the closure of `roots`.
    pub fn added_size(&self, roots: &[NodeId], node: NodeId) -> u64 {
        self.dominator_sizes(roots)
            .into_iter()
            .find(|&(n, _)| n == node)
            .map_or(0, |(_, a)| a)
    }

    /// Each node of the closure of `roots` with the NAR sizes of the nodes
    /// it dominates (itself included) from a virtual root above `roots`.
    fn dominator_sizes(&self, roots: &[NodeId]) -> Vec<(NodeId, u64)> {
        let (reach, succs) = self.local_graph(roots);
        let rpo = reverse_post_order(&succs);
        let idom = immediate_dominators(&succs, &rpo);
        let mut size = vec![0u64; succs.len()];
        for &v in rpo.iter().rev() {
            if v == 0 {
                continue;
            }
            size[v] += self.nodes[reach[v - 1]].nar_size;
            let d = idom[v];
            let s = size[v];
            size[d] += s;
        }
        reach
            .iter()
            .enumerate()
            .map(|(k, &n)| (n, size[k + 1]))
            .collect()
    }

    /// The closure of `roots` as a local graph: its nodes (local index
    /// `k + 1` is `reach[k]`) and each local node's successors, with local
    /// 0 a virtual root whose successors are `roots` (self-references
    /// dropped).
    fn local_graph(&self, roots: &[NodeId]) -> (Vec<NodeId>, Vec<Vec<usize>>) {
        let reach = self.closure(roots);
        let mut local: HashMap<NodeId, usize> = HashMap::with_capacity(reach.len());
        for (k, &n) in reach.iter().enumerate() {
            local.insert(n, k + 1);
        }
        let succ = |v: usize| -> Vec<usize> {
            if v == 0 {
                let mut r: Vec<usize> = roots.iter().map(|r| local[r]).collect();
                r.dedup();
                r
            } else {
                let n = reach[v - 1];
                self.nodes[n]
                    .refs
                    .iter()
                    .filter(|&&m| m != n)
                    .map(|m| local[m])
                    .collect()
            }
        };
        let succs = (0..reach.len() + 1).map(succ).collect();
        (reach, succs)
    }

    /// Shortest reference chain from `from` to `to` (BFS; self-references
    /// ignored), as node ids including both ends.
    pub fn shortest_chain(&self, from: NodeId, to: NodeId) -> Option<Vec<NodeId>> {
        let mut prev = vec![usize::MAX; self.nodes.len()];
        prev[from] = from;
        let mut q = VecDeque::from([from]);
        while let Some(n) = q.pop_front() {
            if n == to {
                let mut chain = vec![to];
                let mut c = to;
                while c != from {
                    c = prev[c];
                    chain.push(c);
                }
                chain.reverse();
                return Some(chain);
            }
            for &m in &self.nodes[n].refs {
                if prev[m] == usize::MAX {
                    prev[m] = n;
                    q.push_back(m);
                }
            }
        }
        None
    }

    /// All simple reference chains from `from` to `to`, at most `limit` of
    /// them (shortest first). The second value is true when the limit cut the
    /// enumeration short.
    pub fn all_chains(&self, from: NodeId, to: NodeId, limit: usize) -> (Vec<Vec<NodeId>>, bool) {
        // Only nodes that can reach `to` are worth visiting.
        let mut rev: Vec<Vec<NodeId>> = vec![Vec::new(); self.nodes.len()];
        for (n, node) in self.nodes.iter().enumerate() {
            for &m in &node.refs {
                if m != n {
                    rev[m].push(n);
                }
            }
        }
        let reaches_to: HashSet<NodeId> =
            self.reach(&[to], |n| rev[n].clone()).into_iter().collect();
        if !reaches_to.contains(&from) {
            return (Vec::new(), false);
        }
        let mut chains = Vec::new();
        let mut truncated = false;
        let mut path = vec![from];
        let mut on_path = vec![false; self.nodes.len()];
        on_path[from] = true;
        self.dfs_chains(
            to,
            &reaches_to,
            &mut path,
            &mut on_path,
            &mut chains,
            limit,
            &mut truncated,
        );
        chains.sort_by(|a: &Vec<NodeId>, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
        (chains, truncated)
    }

    #[allow(clippy::too_many_arguments)]
    fn dfs_chains(
        &self,
        to: NodeId,
        ok: &HashSet<NodeId>,
        path: &mut Vec<NodeId>,
        on_path: &mut [bool],
        out: &mut Vec<Vec<NodeId>>,
        limit: usize,
        truncated: &mut bool,
    ) {
        let n = *path.last().expect("non-empty");
        if n == to {
            if out.len() >= limit {
                *truncated = true;
            } else {
                out.push(path.clone());
            }
            return;
        }
        for &m in &self.nodes[n].refs {
            if *truncated {
                return;
            }
            if on_path[m] || !ok.contains(&m) {
                continue;
            }
            on_path[m] = true;
            path.push(m);
            self.dfs_chains(to, ok, path, on_path, out, limit, truncated);
            path.pop();
            on_path[m] = false;
        }
    }
}

/// The nodes reachable from local node 0 in reverse post-order (an
/// iterative depth-first search: closures can be deep).
fn reverse_post_order(succs: &[Vec<usize>]) -> Vec<usize> {
    let mut post = Vec::with_capacity(succs.len());
    let mut visited = vec![false; succs.len()];
    let mut stack: Vec<(usize, usize)> = vec![(0, 0)];
    visited[0] = true;
    while let Some(&mut (v, ref mut i)) = stack.last_mut() {
        if *i < succs[v].len() {
            let w = succs[v][*i];
            *i += 1;
            if !visited[w] {
                visited[w] = true;
                stack.push((w, 0));
            }
        } else {
            post.push(v);
            stack.pop();
        }
    }
    post.reverse();
    post
}

/// Each node's immediate dominator (node 0 its own), by Cooper, Harvey and
/// Kennedy's iteration over the reverse post-order `rpo`.
fn immediate_dominators(succs: &[Vec<usize>], rpo: &[usize]) -> Vec<usize> {
    const UNDEF: usize = usize::MAX;
    let count = succs.len();
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (v, s) in succs.iter().enumerate() {
        for &w in s {
            preds[w].push(v);
        }
    }
    let mut rpo_num = vec![usize::MAX; count];
    for (k, &v) in rpo.iter().enumerate() {
        rpo_num[v] = k;
    }
    let mut idom = vec![UNDEF; count];
    idom[0] = 0;
    let intersect = |idom: &[usize], mut a: usize, mut b: usize| {
        while a != b {
            while rpo_num[a] > rpo_num[b] {
                a = idom[a];
            }
            while rpo_num[b] > rpo_num[a] {
                b = idom[b];
            }
        }
        a
    };
    let mut changed = true;
    while changed {
        changed = false;
        for &v in rpo.iter().skip(1) {
            let mut new = UNDEF;
            for &p in &preds[v] {
                if idom[p] == UNDEF {
                    continue;
                }
                new = if new == UNDEF {
                    p
                } else {
                    intersect(&idom, p, new)
                };
            }
            if new != UNDEF && idom[v] != new {
                idom[v] = new;
                changed = true;
            }
        }
    }
    idom
}

// ---------------------------------------------------------------------------
// NAR size accounting.

/// Size of a NAR string: 8-byte length, then the bytes padded to 8.
fn nar_str(len: u64) -> u64 {
    8 + len.div_ceil(8) * 8
}

/// Exact size of the NAR serialisation of a walked tree (see
/// [`walk_nar`]), as `nix-store --dump PATH | wc -c` would print.
///
/// The format: `str("nix-archive-1")`, then a node: `( type regular
/// [executable ""] contents <u64 size> <bytes padded> )`, `( type symlink
/// target <str> )`, or `( type directory` then per entry `entry ( name <str>
/// node <node> )`, then `)`. Every token is a length-prefixed padded string.
pub fn nar_size_of(entries: &[Entry]) -> u64 {
    let mut total = nar_str(13); // "nix-archive-1"
    for e in entries {
        // "(", "type", and the closing ")".
        total += nar_str(1) + nar_str(4) + nar_str(1);
        total += match &e.kind {
            EntryKind::Dir => nar_str(9),
            EntryKind::File => {
                nar_str(7)
                    + if e.executable {
                        nar_str(10) + nar_str(0)
                    } else {
                        0
                    }
                    + nar_str(8)
                    + nar_str(e.size)
            }
            EntryKind::Symlink => {
                let target = e.link_target.as_ref().map_or(0, |t| t.len());
                nar_str(7) + nar_str(6) + nar_str(target as u64)
            }
            // `walk_nar` fails on these: a NAR cannot hold them.
            EntryKind::Special => 0,
        };
        if let Some(name) = &e.name {
            // "entry" "(" "name" <name> "node" ... ")"
            total += nar_str(5)
                + nar_str(1)
                + nar_str(4)
                + nar_str(name.len() as u64)
                + nar_str(4)
                + nar_str(1);
        }
    }
    total
}

/// Exact NAR size of the tree at `path`.
pub fn nar_size(path: &Path) -> Result<u64, ScanError> {
    Ok(nar_size_of(&walk_nar(path)?))
}

// ---------------------------------------------------------------------------
// Why: the reference chains from one path to another, each hop explained.

/// One hop of a chain: every occurrence of `to`'s hash part in `from`.
#[derive(Clone, Debug, Serialize)]
pub struct WhyHop {
    /// The referrer.
    pub from: PathBuf,
    /// The reference.
    pub to: PathBuf,
    /// `from` is a symlink farm.
    pub from_is_farm: bool,
    /// `to` is a symlink farm.
    pub to_is_farm: bool,
    /// Each occurrence of `to`'s hash part in `from`, attributed.
    pub hits: Vec<scan::Hit>,
}

/// Why `from` depends on `to` (the JSON of `unfarm why --json`).
#[derive(Clone, Debug, Serialize)]
pub struct WhyReport {
    /// The path asked about.
    pub from: PathBuf,
    /// The dependency asked about.
    pub to: PathBuf,
    /// Each chain from `from` to `to`, both ends included.
    pub chains: Vec<Vec<PathBuf>>,
    /// True when `--max-chains` cut the enumeration short.
    pub truncated: bool,
    /// Every distinct hop of the chains, once.
    pub hops: Vec<WhyHop>,
    /// False when `from` or `to` is not in the graph: no dependency.
    #[serde(skip)]
    pub depends: bool,
    /// The chain nodes that are symlink farms.
    #[serde(skip)]
    pub farms: HashSet<PathBuf>,
}

impl WhyReport {
    /// The hop from `from` to `to`, when it is one of the chains'.
    pub fn hop(&self, from: &Path, to: &Path) -> Option<&WhyHop> {
        self.hops.iter().find(|h| h.from == from && h.to == to)
    }
}

/// The reference chains from `from` to `to` in `graph` (loaded with `from`
/// as a root): the shortest one, or with `max_chains` every simple chain up
/// to that many. Each distinct hop's file is scanned (in parallel) for the
/// next path's hash part.
pub fn why(
    store_dir: &StoreDir,
    graph: &ClosureGraph,
    from: &Path,
    to: &Path,
    max_chains: Option<usize>,
) -> Result<WhyReport, ClosureError> {
    let mut report = WhyReport {
        from: from.to_owned(),
        to: to.to_owned(),
        chains: Vec::new(),
        truncated: false,
        hops: Vec::new(),
        depends: false,
        farms: HashSet::new(),
    };
    let (Some(f), Some(t)) = (graph.id(from), graph.id(to)) else {
        return Ok(report);
    };
    report.depends = true;
    let (chains, truncated) = match max_chains {
        Some(limit) => graph.all_chains(f, t, limit.max(1)),
        None => (graph.shortest_chain(f, t).into_iter().collect(), false),
    };
    let edges: std::collections::BTreeSet<(NodeId, NodeId)> = chains
        .iter()
        .flat_map(|c| c.windows(2).map(|w| (w[0], w[1])))
        .collect();
    let nodes: std::collections::BTreeSet<NodeId> = chains.iter().flatten().copied().collect();
    let farms: HashMap<NodeId, bool> = nodes
        .par_iter()
        .map(|&n| Ok((n, is_farm(store_dir, &graph.node(n).path)?)))
        .collect::<Result<_, ScanError>>()?;
    report.hops = edges
        .par_iter()
        .map(|&(x, y)| {
            let (xp, yp) = (&graph.node(x).path, &graph.node(y).path);
            let hash = store_dir
                .store_path_of(yp)
                .and_then(|sp| scan::hash_of(&sp.hash))
                .ok_or_else(|| ClosureError::NotInStore {
                    path: yp.clone(),
                    store: store_dir.to_string(),
                })?;
            let scanner = Scanner::new(store_dir, Candidates::Hashes([hash].into_iter().collect()));
            Ok(WhyHop {
                from: xp.clone(),
                to: yp.clone(),
                from_is_farm: farms[&x],
                to_is_farm: farms[&y],
                hits: scanner.hits(xp)?,
            })
        })
        .collect::<Result<_, ClosureError>>()?;
    report.chains = chains
        .iter()
        .map(|c| c.iter().map(|&n| graph.node(n).path.clone()).collect())
        .collect();
    report.farms = farms
        .into_iter()
        .filter(|&(_, farm)| farm)
        .map(|(n, _)| graph.node(n).path.clone())
        .collect();
    report.truncated = truncated;
    Ok(report)
}

// ---------------------------------------------------------------------------
// Sources.

/// Nix's database for a store dir, if it is the default store and the DB
/// exists (`/nix/var/nix/db/db.sqlite`, or `$NIX_STATE_DIR/db/db.sqlite`).
fn default_db(store_dir: &StoreDir) -> Option<PathBuf> {
    if store_dir.path() != Path::new(crate::store::DEFAULT_STORE_DIR) {
        return None;
    }
    let state = std::env::var_os("NIX_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/nix/var/nix"));
    let db = state.join("db/db.sqlite");
    db.exists().then_some(db)
}

/// The Nix database that says what is registered in `store_dir`: `--db`
/// if given, else the default one (see [`Source::choose`]), if it exists.
pub fn nix_db(store_dir: &StoreDir, db: Option<&Path>) -> Option<PathBuf> {
    match db {
        Some(p) => Some(p.to_owned()),
        None => default_db(store_dir),
    }
}

/// The roots (by index) whose top-level store path the Nix database `db`
/// lists as valid (registered: `nix-store --verify-path` checks its hash),
/// with that store path. An output being built is not valid yet. No
/// database: nothing is registered.
pub fn registered(
    store_dir: &StoreDir,
    db: Option<&Path>,
    roots: &[PathBuf],
) -> Result<Vec<(usize, PathBuf)>, ClosureError> {
    let Some(db) = nix_db(store_dir, db) else {
        return Ok(Vec::new());
    };
    let paths: Vec<(usize, PathBuf)> = roots
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let abs = std::path::absolute(r).unwrap_or_else(|_| r.clone());
            let sp = store_dir.store_path_of(&normalize_lexically(&abs))?;
            Some((i, sp.path))
        })
        .collect();
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let conn = NixDb::open(&db)?;
    let mut out = Vec::new();
    for (i, p) in paths {
        if conn.is_valid(&p)? {
            out.push((i, p));
        }
    }
    Ok(out)
}

/// A read-only handle on Nix's SQLite database.
pub struct NixDb {
    conn: Connection,
    path: PathBuf,
}

fn uri_escape(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut s = String::new();
    for &b in p.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

impl NixDb {
    /// Open the database read-only.
    ///
    /// Why `mode=ro` and not `immutable=1`: Nix keeps db.sqlite in WAL mode.
    /// In WAL mode readers never block writers and writers never block
    /// readers; a reader only takes a shared read mark in the `-shm` index,
    /// which does not stop Nix from committing (it only stops a checkpoint
    /// from rewinding the WAL past our snapshot, and we hold our snapshot for
    /// one short transaction). `immutable=1` would skip locking but also
    /// ignore the WAL, so paths Nix committed but has not checkpointed yet
    /// would be missing, and a concurrent checkpoint could show us torn pages.
    /// `SQLITE_OPEN_READ_ONLY` guarantees we never write the DB. We never take
    /// Nix's `big-lock` or any other Nix lock file. A busy timeout bounds the
    /// rare waits (WAL recovery by another process) so we never hang.
    ///
    /// Fallback: a read-only connection needs the `-shm` file to exist or the
    /// directory to be writable; when that fails (an unprivileged user on a
    /// multi-user install while no Nix process has the DB open) there is no
    /// WAL content to miss, so `immutable=1` is then safe and is used.
    pub fn open(db: &Path) -> Result<Self, ClosureError> {
        let err = |source| ClosureError::Db {
            path: db.to_owned(),
            source,
        };
        if !db.exists() {
            return Err(err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some("no such file".into()),
            )));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let try_open = |extra: &str| -> rusqlite::Result<Connection> {
            let conn = Connection::open_with_flags(
                format!("file:{}?mode=ro{extra}", uri_escape(db)),
                flags,
            )?;
            conn.busy_timeout(Duration::from_secs(10))?;
            // Force the schema read now so a failure shows up here.
            conn.query_row("select count(*) from sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })?;
            Ok(conn)
        };
        let conn = match try_open("") {
            Ok(c) => c,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly
                ) && !db.with_file_name("db.sqlite-wal").exists() =>
            {
                try_open("&immutable=1").map_err(err)?
            }
            Err(e) => return Err(err(e)),
        };
        Ok(NixDb {
            conn,
            path: db.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `path` is registered valid.
    pub fn is_valid(&self, path: &Path) -> Result<bool, ClosureError> {
        let err = |source| ClosureError::Db {
            path: self.path.clone(),
            source,
        };
        let mut st = self
            .conn
            .prepare_cached("select 1 from ValidPaths where path = ?1")
            .map_err(err)?;
        st.exists([path.to_string_lossy()]).map_err(err)
    }

    /// Every valid path (e.g. as scanner candidates).
    pub fn valid_paths(&self) -> Result<Vec<PathBuf>, ClosureError> {
        let err = |source| ClosureError::Db {
            path: self.path.clone(),
            source,
        };
        let mut st = self
            .conn
            .prepare("select path from ValidPaths")
            .map_err(err)?;
        let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(err)?;
        rows.map(|r| r.map(PathBuf::from).map_err(err)).collect()
    }

    /// The closure of `roots` with sizes and references, read in one short
    /// read transaction.
    pub fn closure(&self, roots: &[PathBuf]) -> Result<ClosureGraph, ClosureError> {
        let err = |source| ClosureError::Db {
            path: self.path.clone(),
            source,
        };
        let tx = self.conn.unchecked_transaction().map_err(err)?;
        let mut g = ClosureGraph::new();
        let mut by_id: HashMap<i64, NodeId> = HashMap::new();
        let mut queue = VecDeque::new();
        {
            let mut root_st = tx
                .prepare("select id, narSize from ValidPaths where path = ?1")
                .map_err(err)?;
            for r in roots {
                let row: Option<(i64, Option<i64>)> = root_st
                    .query_row([r.to_string_lossy()], |row| Ok((row.get(0)?, row.get(1)?)))
                    .map(Some)
                    .or_else(|e| {
                        if e == rusqlite::Error::QueryReturnedNoRows {
                            Ok(None)
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(err)?;
                let Some((id, size)) = row else {
                    return Err(ClosureError::NotValid {
                        path: r.clone(),
                        db: self.path.clone(),
                    });
                };
                if let std::collections::hash_map::Entry::Vacant(v) = by_id.entry(id) {
                    v.insert(g.insert(r.clone(), size.unwrap_or(0).max(0) as u64));
                    queue.push_back(id);
                }
            }
            let mut refs_st = tx
                .prepare("select v.id, v.path, v.narSize from Refs r join ValidPaths v on v.id = r.reference where r.referrer = ?1")
                .map_err(err)?;
            while let Some(id) = queue.pop_front() {
                let from = by_id[&id];
                let rows = refs_st
                    .query_map([id], |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, Option<i64>>(2)?,
                        ))
                    })
                    .map_err(err)?;
                for row in rows {
                    let (rid, path, size) = row.map_err(err)?;
                    let to = match by_id.get(&rid) {
                        Some(&n) => n,
                        None => {
                            let n = g.insert(PathBuf::from(path), size.unwrap_or(0).max(0) as u64);
                            by_id.insert(rid, n);
                            queue.push_back(rid);
                            n
                        }
                    };
                    g.add_ref(from, to);
                }
            }
        }
        tx.finish().map_err(err)?;
        Ok(g)
    }
}

/// The closure of `roots` in a plain directory used as a store: references
/// by scanning each path for the hash parts of every entry of the store dir
/// (as Nix does with the build's inputs), sizes by NAR accounting.
pub fn scan_closure(store_dir: &StoreDir, roots: &[PathBuf]) -> Result<ClosureGraph, ClosureError> {
    let mut index: HashMap<scan::Hash, PathBuf> = HashMap::new();
    for sp in store_dir.list().map_err(ScanError::from)? {
        if let Some(h) = scan::hash_of(&sp.hash) {
            index.insert(h, sp.path);
        }
    }
    let candidates: HashSetFast = index.keys().copied().collect();
    let scanner = Scanner::new(store_dir, Candidates::Hashes(candidates));
    let mut g = ClosureGraph::new();
    let mut frontier = Vec::new();
    for r in roots {
        let Some(sp) = store_dir.store_path_of(r).filter(|sp| &sp.path == r) else {
            return Err(ClosureError::NotInStore {
                path: r.clone(),
                store: store_dir.to_string(),
            });
        };
        if g.id(&sp.path).is_none() {
            g.insert(sp.path.clone(), 0);
            frontier.push(sp.path);
        }
    }
    while !frontier.is_empty() {
        let scanned: Vec<(PathBuf, u64, Vec<PathBuf>)> = frontier
            .par_iter()
            .map(|p| {
                let entries = walk_nar(p)?;
                let size = nar_size_of(&entries);
                let refs = scanner.references_of(&entries)?;
                Ok((
                    p.clone(),
                    size,
                    refs.iter().filter_map(|h| index.get(h).cloned()).collect(),
                ))
            })
            .collect::<Result<_, ScanError>>()?;
        frontier.clear();
        for (p, size, refs) in scanned {
            let from = g.insert(p, size);
            for r in refs {
                let to = match g.id(&r) {
                    Some(n) => n,
                    None => {
                        frontier.push(r.clone());
                        g.insert(r, 0)
                    }
                };
                g.add_ref(from, to);
            }
        }
    }
    Ok(g)
}

/// Where a closure graph comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// Nix's SQLite database at this path.
    NixDb(PathBuf),
    /// Scan the store dir (plain directory, or a store without a DB).
    Scan,
}

impl Source {
    /// `--db` if given, else the Nix DB when the store dir is the default
    /// one and the DB exists, else scanning.
    pub fn choose(store_dir: &StoreDir, db: Option<&Path>) -> Self {
        match db {
            Some(p) => Source::NixDb(p.to_owned()),
            None => default_db(store_dir).map_or(Source::Scan, Source::NixDb),
        }
    }

    /// Load the closure of `roots` (top-level store paths).
    pub fn load(
        &self,
        store_dir: &StoreDir,
        roots: &[PathBuf],
    ) -> Result<ClosureGraph, ClosureError> {
        match self {
            Source::NixDb(db) => NixDb::open(db)?.closure(roots),
            Source::Scan => scan_closure(store_dir, roots),
        }
    }
}

/// Map a user-supplied path (a store path, a file inside one, or a symlink
/// such as `./result` to one) to its top-level store path.
pub fn to_store_path(store_dir: &StoreDir, p: &Path) -> Result<PathBuf, ClosureError> {
    let not = || ClosureError::NotInStore {
        path: p.to_owned(),
        store: store_dir.to_string(),
    };
    if let Some(sp) = store_dir.store_path_of(&normalize_lexically(p)) {
        return Ok(sp.path);
    }
    let canon = std::fs::canonicalize(p).map_err(|source| ScanError::Io {
        path: p.to_owned(),
        err: source,
    })?;
    if let Some(sp) = store_dir.store_path_of(&canon) {
        return Ok(sp.path);
    }
    // The store dir itself may be reached through a symlink.
    let sd = std::fs::canonicalize(store_dir.path()).map_err(|_| not())?;
    let rest = canon.strip_prefix(&sd).map_err(|_| not())?;
    store_dir
        .store_path_of(&store_dir.path().join(rest))
        .map(|sp| sp.path)
        .ok_or_else(not)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a";
    const FARM: &str = "1fffffffffffffffffffffffffffffff-farm";
    const LIB: &str = "2lllllllllllllllllllllllllllllll-lib";

    /// A farm whose links also hop inside it (a linker name to the soname
    /// link, a dir link) is a farm for `why` as it is for `check`; a store
    /// path with a regular file, or only inside links, is not.
    #[test]
    fn a_farm_with_relative_hops_inside_it_is_a_farm() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StoreDir::new(tmp.path());
        let (farm, lib) = (tmp.path().join(FARM), tmp.path().join(LIB));
        std::fs::create_dir_all(lib.join("lib")).unwrap();
        std::fs::write(lib.join("lib/libl.so.1"), b"\x7fELF").unwrap();
        std::fs::create_dir_all(farm.join("lib")).unwrap();
        std::os::unix::fs::symlink(lib.join("lib/libl.so.1"), farm.join("lib/libl.so.1")).unwrap();
        std::os::unix::fs::symlink("libl.so.1", farm.join("lib/libl.so")).unwrap();
        std::os::unix::fs::symlink("lib", farm.join("lib64")).unwrap();
        assert!(is_farm(&store, &farm).unwrap());
        assert!(!is_farm(&store, &lib).unwrap());
        let inner = tmp.path().join(A);
        std::fs::create_dir_all(&inner).unwrap();
        std::os::unix::fs::symlink("x", inner.join("y")).unwrap();
        assert!(!is_farm(&store, &inner).unwrap(), "only inside links");
    }

    /// (Almost) all links into other store paths: a farm with a file or two
    /// written by `postBuild` is one; an output holding a few links into
    /// other outputs beside its own files is not, nor one with a link out
    /// of the store for every few links in.
    #[test]
    fn a_farm_is_almost_all_links_into_other_store_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StoreDir::new(tmp.path());
        let (farm, lib) = (tmp.path().join(FARM), tmp.path().join(LIB));
        std::fs::create_dir_all(lib.join("lib")).unwrap();
        std::fs::create_dir_all(farm.join("lib")).unwrap();
        for i in 0..20 {
            let f = lib.join(format!("lib/libl{i}.so.1"));
            std::fs::write(&f, b"\x7fELF").unwrap();
            std::os::unix::fs::symlink(&f, farm.join(format!("lib/libl{i}.so.1"))).unwrap();
        }
        std::fs::write(farm.join("version.txt"), b"1\n").unwrap();
        std::fs::write(farm.join("lib/env.sh"), b"true\n").unwrap();
        assert!(is_farm(&store, &farm).unwrap(), "20 links, 2 files");
        std::fs::write(farm.join("lib/third"), b"").unwrap();
        assert!(!is_farm(&store, &farm).unwrap(), "20 links, 3 files");
        std::fs::remove_file(farm.join("lib/third")).unwrap();
        std::os::unix::fs::symlink("/run/opengl-driver/lib/x", farm.join("lib/x")).unwrap();
        assert!(
            !is_farm(&store, &farm).unwrap(),
            "a link out of the store counts"
        );
        // An output: its own files, a library link into another output.
        let out = tmp.path().join(A);
        std::fs::create_dir_all(out.join("lib")).unwrap();
        std::fs::write(out.join("lib/libown.so"), b"\x7fELF").unwrap();
        std::os::unix::fs::symlink(lib.join("lib/libl0.so.1"), out.join("lib/libl0.so.1")).unwrap();
        assert!(!is_farm(&store, &out).unwrap());
        // Many own files: ruled out without walking them all.
        for i in 0..100 {
            std::fs::write(out.join(format!("lib/f{i}")), b"").unwrap();
        }
        assert!(!is_farm(&store, &out).unwrap());
    }

    /// a -> farm -> lib: the hops say where each hash is, the farm is marked,
    /// and a path outside the graph is no dependency.
    #[test]
    fn why_explains_each_hop_and_marks_farms() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StoreDir::new(tmp.path());
        let (a, farm, lib) = (
            tmp.path().join(A),
            tmp.path().join(FARM),
            tmp.path().join(LIB),
        );
        std::fs::create_dir_all(a.join("bin")).unwrap();
        std::fs::write(a.join("bin/x"), format!("rpath={}/lib\0", farm.display())).unwrap();
        std::fs::create_dir_all(farm.join("lib")).unwrap();
        std::os::unix::fs::symlink(lib.join("lib/l.so"), farm.join("lib/l.so")).unwrap();
        std::fs::create_dir_all(lib.join("lib")).unwrap();
        std::fs::write(lib.join("lib/l.so"), b"\x7fELF").unwrap();
        let mut g = ClosureGraph::new();
        let (ia, ifarm, ilib) = (g.insert(&a, 1), g.insert(&farm, 1), g.insert(&lib, 1));
        g.add_ref(ia, ifarm);
        g.add_ref(ifarm, ilib);
        g.add_ref(ia, ia);

        let r = why(&store, &g, &a, &lib, None).unwrap();
        assert!(r.depends);
        assert_eq!(r.chains, vec![vec![a.clone(), farm.clone(), lib.clone()]]);
        assert_eq!(r.hops.len(), 2);
        let first = r.hop(&a, &farm).unwrap();
        assert!(first.to_is_farm && !first.from_is_farm);
        assert_eq!(first.hits.len(), 1);
        assert_eq!(first.hits[0].file, a.join("bin/x"));
        assert_eq!(
            first.hits[0].offset,
            "rpath=".len() as u64 + tmp.path().as_os_str().len() as u64 + 1
        );
        assert_eq!(
            r.hop(&farm, &lib).unwrap().hits[0].file,
            farm.join("lib/l.so")
        );
        assert_eq!(r.farms, [farm.clone()].into_iter().collect());

        let none = why(&store, &g, &lib, &a, Some(10)).unwrap();
        assert!(none.depends && none.chains.is_empty() && !none.truncated);
        let outside = why(&store, &g, &a, &tmp.path().join("3zzz"), None).unwrap();
        assert!(!outside.depends);
    }
}

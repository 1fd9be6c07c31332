//! Differential test against the real dynamic loader.
//!
//! For every dynamically linked ELF file under `/usr/bin` and
//! `/usr/lib/x86_64-linux-gnu`, each direct DT_NEEDED is resolved by unfarm
//! (the library API, modelling this machine's system loader) and by glibc's
//! `ld.so --list FILE`; both must name the same real file (or both "not
//! found"). Exceptions are allowed only through [`ALLOW`], each with a reason.

use crate::common;

use std::path::{Path, PathBuf};

use common::{Cc, LD_SO, Listed, exe_calling, ld_so_list, lib_source};
use rayon::prelude::*;
use unfarm::loader::ldd::{LddOptions, ldd};
use unfarm::loader::resolve::{FsProbe, LoaderConfig};
use unfarm::store::StoreDir;

const ROOTS: &[&str] = &["/usr/bin", "/usr/lib/x86_64-linux-gnu"];

/// Narrow exceptions: (file, need, reason). Each must be hit, or the test
/// fails (so stale entries do not linger).
const ALLOW: &[(&str, &str, &str)] = &[];

/// Every regular file below the roots (symlinks are not followed, so each
/// file is seen once).
fn regular_files(root: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            regular_files(&e.path(), out);
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
}

/// Is this a dynamically linked ELF file for this machine?
fn is_dynamic_elf(p: &Path) -> bool {
    matches!(unfarm::elf::sniff_file(p), Ok(unfarm::elf::FileKind::Elf))
        && unfarm::elf::read_facts(p)
            .is_ok_and(|f| f.dynamic && f.ident.machine == 62 && !f.needed.is_empty())
}

/// Build `app` linked against `libgone.so.1` (RUNPATH to its dir), then
/// delete the library.
fn program_with_missing_library(dir: &Path) -> PathBuf {
    let libdir = dir.join("lib");
    std::fs::create_dir_all(&libdir).unwrap();
    let lib = Cc::gcc().shared_lib(&libdir, "gone", "1", &lib_source("gone", 1));
    let exe = Cc::gcc()
        .link_dir(&libdir)
        .lib(":libgone.so.1")
        .search(&libdir)
        .executable(&dir.join("app"), &exe_calling(&["gone"]));
    std::fs::remove_file(&lib).unwrap();
    std::fs::remove_file(libdir.join("libgone.so.1")).ok();
    exe
}

#[derive(Debug)]
struct Disagreement {
    file: PathBuf,
    need: String,
    unfarm: String,
    ld_so: String,
}

#[test]
fn unfarm_agrees_with_ld_so_on_system_files() {
    common::require_tools(&["readelf", "gcc"]);
    assert!(Path::new(LD_SO).exists(), "{LD_SO} is missing");
    let mut cfg = LoaderConfig::debian_system();
    assert!(cfg.ld_so_cache.is_some(), "/etc/ld.so.cache unreadable");
    cfg.hwcaps = common::supported_hwcaps(LD_SO);
    let opts = LddOptions {
        loader: cfg,
        recursive: false,
    };
    let probe = FsProbe::new(StoreDir::new("/nix/store"));

    let mut files = Vec::new();
    for r in ROOTS {
        regular_files(Path::new(r), &mut files);
    }
    files.sort();
    // A program whose library is gone: every machine then has a not-found
    // need to compare (a minimal Debian has none among its own files).
    let scratch = tempfile::tempdir().unwrap();
    files.push(program_with_missing_library(scratch.path()));
    let files: Vec<PathBuf> = files
        .into_par_iter()
        .filter(|p| is_dynamic_elf(p))
        .collect();
    assert!(
        files.len() >= 300,
        "only {} dynamic ELF files found",
        files.len()
    );

    // (needs compared, disagreements, ld.so failures)
    let results: Vec<Outcome> = files
        .par_iter()
        .map(|f| compare_file(f, &probe, &opts))
        .collect();
    let needs: usize = results.iter().map(|r| r.needs).sum();
    let mut by_status: std::collections::BTreeMap<&str, usize> = Default::default();
    for r in &results {
        for s in &r.statuses {
            *by_status.entry(s).or_default() += 1;
        }
    }
    let ld_so_stopped = results.iter().filter(|r| r.ld_so_error.is_some()).count();
    let mut bad: Vec<Disagreement> = results.into_iter().flat_map(|r| r.bad).collect();
    let mut allowed_hits = vec![0usize; ALLOW.len()];
    bad.retain(|d| {
        match ALLOW
            .iter()
            .position(|(f, n, _)| Path::new(f) == d.file && *n == d.need)
        {
            Some(i) => {
                allowed_hits[i] += 1;
                false
            }
            None => true,
        }
    });
    let agree = needs - bad.len();
    println!(
        "loader differential: {} files, {} direct needs compared, {} agree ({:.3}%), {} allow-listed",
        files.len(),
        needs,
        agree,
        100.0 * agree as f64 / needs.max(1) as f64,
        allowed_hits.iter().sum::<usize>()
    );
    println!("unfarm statuses: {by_status:?}; files ld.so refused: {ld_so_stopped}");
    // The comparison must exercise every outcome, or it proves little.
    for s in ["found", "not-found", "already-loaded"] {
        assert!(
            by_status.get(s).copied().unwrap_or(0) > 0,
            "no need was {s}"
        );
    }
    for d in &bad {
        println!(
            "DISAGREE {} need {}: unfarm {} / ld.so {}",
            d.file.display(),
            d.need,
            d.unfarm,
            d.ld_so
        );
    }
    for (i, (f, n, why)) in ALLOW.iter().enumerate() {
        assert!(
            allowed_hits[i] > 0,
            "stale allow-list entry {f} {n} ({why})"
        );
    }
    assert!(bad.is_empty(), "{} disagreements with ld.so", bad.len());
}

/// The comparison for one file.
struct Outcome {
    needs: usize,
    statuses: Vec<&'static str>,
    bad: Vec<Disagreement>,
    ld_so_error: Option<String>,
}

fn compare_file(file: &Path, probe: &FsProbe, opts: &LddOptions) -> Outcome {
    let report = ldd(&[file.to_owned()], probe, opts);
    let mut bad = Vec::new();
    let dis = |need: &str, u: String, l: String| Disagreement {
        file: file.to_owned(),
        need: need.to_owned(),
        unfarm: u,
        ld_so: l,
    };
    let fr = match report.files.as_slice() {
        [fr] => fr,
        _ => {
            bad.push(dis(
                "*",
                format!("no report: {:?}", report.errors),
                "-".into(),
            ));
            return Outcome {
                needs: 1,
                statuses: Vec::new(),
                bad,
                ld_so_error: None,
            };
        }
    };
    let listing = match ld_so_list(file, &[]) {
        Ok(l) => l,
        Err(e) => {
            // ld.so stopped: unfarm must have seen a fatal error too.
            let unfarm_err = fr
                .needs
                .iter()
                .any(|n| n.status == unfarm::loader::ldd::NeedStatus::Error);
            if !unfarm_err {
                bad.push(dis("*", "no error".into(), e.clone()));
            }
            return Outcome {
                needs: fr.needs.len(),
                statuses: fr.needs.iter().map(|n| n.status.as_str()).collect(),
                bad,
                ld_so_error: Some(e),
            };
        }
    };
    for n in &fr.needs {
        let got = listing.by_name.get(&n.name);
        let ok = match (n.status.as_str(), got) {
            ("found", Some(Listed::Path(p))) => {
                std::fs::canonicalize(p).ok().as_deref() == n.real.as_deref()
            }
            ("not-found", Some(Listed::NotFound)) => true,
            // Satisfied by an object mapped under another name (ld.so prints
            // each object once, under the first name it was loaded by).
            ("already-loaded", None) => true,
            _ => false,
        };
        if !ok {
            bad.push(dis(
                &n.name,
                format!("{} {:?}", n.status, n.real),
                format!("{got:?}"),
            ));
        }
    }
    Outcome {
        needs: fr.needs.len(),
        statuses: fr.needs.iter().map(|n| n.status.as_str()).collect(),
        bad,
        ld_so_error: None,
    }
}

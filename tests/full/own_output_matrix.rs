//! Issue 21's linker matrix: programs and libraries from GNU ld, gold, lld
//! and mold, PIE and not, `-z relro`/`-z norelro`, every hash style, DT_RUNPATH
//! and DT_RPATH, all with `$ORIGIN/../lib:$ORIGIN/../lib/deps:$FARM/lib`, in
//! an output whose own `lib/` holds a library link into the farm, a link
//! into another (real) output and a directory link into a farm. After
//! `fix`: `check` finds no error, every `$ORIGIN` entry is still there in
//! its place, and every program runs loading the same files as before (the
//! real loader's listing).
//!
//! The sources are compiled once; each combination is one link of a
//! library and one of a program (about 200 links, a few linkers at once).

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Cc, LinkStyle, Store, lib_source};

const LINKERS: [&str; 4] = ["bfd", "gold", "lld", "mold"];
const HASHES: [&str; 3] = ["gnu", "sysv", "both"];

/// One combination of link flags.
#[derive(Clone, Debug)]
struct Combo {
    ld: &'static str,
    pie: bool,
    relro: bool,
    hash: &'static str,
    runpath: bool,
}

impl Combo {
    fn name(&self) -> String {
        format!(
            "{}_{}_{}_{}_{}",
            self.ld,
            if self.pie { "pie" } else { "nopie" },
            if self.relro { "relro" } else { "norelro" },
            self.hash,
            if self.runpath { "runpath" } else { "rpath" }
        )
    }

    fn flags(&self, search: &str) -> Vec<String> {
        vec![
            format!("-fuse-ld={}", self.ld),
            format!("-Wl,-z,{}", if self.relro { "relro" } else { "norelro" }),
            format!("-Wl,--hash-style={}", self.hash),
            if self.runpath {
                "-Wl,--enable-new-dtags".into()
            } else {
                "-Wl,--disable-new-dtags".into()
            },
            format!("-Wl,-rpath,{search}"),
        ]
    }
}

fn all_combos() -> Vec<Combo> {
    let mut v = Vec::new();
    for ld in LINKERS {
        for pie in [true, false] {
            for relro in [true, false] {
                for hash in HASHES {
                    for runpath in [true, false] {
                        v.push(Combo {
                            ld,
                            pie,
                            relro,
                            hash,
                            runpath,
                        });
                    }
                }
            }
        }
    }
    v
}

fn gcc(args: &[&std::ffi::OsStr]) {
    let out = Command::new("gcc").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "gcc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// The search list of `file` (RUNPATH, else RPATH).
fn search_list(file: &Path) -> String {
    common::readelf_dynamic(file, "RUNPATH")
        .or_else(|| common::readelf_dynamic(file, "RPATH"))
        .unwrap_or_default()
}

#[test]
fn every_linker_layout_keeps_origin_and_loads_the_same_files() {
    common::require_tools(&["gcc", "readelf", "ld.gold", "ld.lld", "ld.mold"]);
    let started = std::time::Instant::now();
    let store = Store::new();
    let cc = Cc::gcc();
    // Real lib outputs: zz, ff (reached through the farm), aa (offered by
    // the farm, needed by nobody), yy (linked to directly), dd (through a
    // directory link into a farm of its own).
    let lib_out = |name: &str, value: i32| {
        let o = store.output(&format!("{name}-1.0-lib"));
        cc.shared_lib(&o.join("lib"), name, "1.0", &lib_source(name, value));
        o
    };
    let (zz, ff, aa, yy, dd) = (
        lib_out("zz", 1),
        lib_out("ff", 2),
        lib_out("aa", 4),
        lib_out("yy", 8),
        lib_out("dd", 16),
    );
    let farm = store.farm("deps-joined", &[&zz, &ff, &aa], LinkStyle::Absolute);
    let dfarm = store.farm("dd-joined", &[&dd], LinkStyle::Relative);
    let out = store.output("app-1.0");
    let lib = out.join("lib");
    cc.shared_lib(&lib, "own", "1", &lib_source("own", 32));
    store.symlink(farm.join("lib/libzz.so.1"), lib.join("libzz.so.1"));
    store.symlink(yy.join("lib/libyy.so.1"), lib.join("libyy.so.1"));
    store.symlink(dfarm.join("lib"), lib.join("deps"));
    let search = format!("$ORIGIN/../lib:$ORIGIN/../lib/deps:{}/lib", farm.display());

    // Compile once: the library's code (PIC) and the program's (PIE, non-PIE).
    let scratch = store.scratch();
    let deps = ["own", "zz", "yy", "dd", "ff"];
    let mut q_src = String::new();
    for d in deps {
        q_src.push_str(&format!("int {d}(void);\n"));
    }
    q_src.push_str("int q(void) { return own() + zz() + yy() + dd() + ff(); }\n");
    std::fs::write(scratch.join("q.c"), q_src).unwrap();
    std::fs::write(
        scratch.join("p.c"),
        "#include <stdio.h>\nint q(void); int own(void);\nint main(void) { printf(\"%d\\n\", q() + own()); return 0; }\n",
    )
    .unwrap();
    let (q_c, p_c) = (scratch.join("q.c"), scratch.join("p.c"));
    let (q_o, pie_o, nopie_o) = (
        scratch.join("q.o"),
        scratch.join("p-pie.o"),
        scratch.join("p-nopie.o"),
    );
    gcc(&[
        os("-c"),
        os("-fPIC"),
        os("-o"),
        q_o.as_os_str(),
        q_c.as_os_str(),
    ]);
    gcc(&[
        os("-c"),
        os("-fPIE"),
        os("-o"),
        pie_o.as_os_str(),
        p_c.as_os_str(),
    ]);
    gcc(&[
        os("-c"),
        os("-fno-PIE"),
        os("-o"),
        nopie_o.as_os_str(),
        p_c.as_os_str(),
    ]);

    // Link every combination, a few at a time.
    let combos = all_combos();
    let link = |c: &Combo| -> (PathBuf, PathBuf) {
        let name = c.name();
        let qlib = lib.join(format!("libq_{name}.so"));
        let prog = out.join(format!("bin/p_{name}"));
        let libs: Vec<String> = [
            "-L".to_string(),
            lib.display().to_string(),
            "-L".into(),
            format!("{}/lib", dfarm.display()),
            "-L".into(),
            format!("{}/lib", farm.display()),
        ]
        .into_iter()
        .chain(deps.iter().map(|d| {
            if *d == "own" {
                "-lown".to_string()
            } else {
                format!("-l:lib{d}.so.1")
            }
        }))
        .collect();
        let mut a: Vec<String> = vec![
            "-shared".into(),
            "-o".into(),
            qlib.display().to_string(),
            q_o.display().to_string(),
            format!("-Wl,-soname,libq_{name}.so"),
        ];
        a.extend(libs.iter().cloned());
        a.extend(c.flags(&search));
        gcc(&a.iter().map(|s| os(s)).collect::<Vec<_>>());
        let mut a: Vec<String> = vec![
            "-o".into(),
            prog.display().to_string(),
            if c.pie {
                pie_o.display().to_string()
            } else {
                nopie_o.display().to_string()
            },
            if c.pie {
                "-pie".into()
            } else {
                "-no-pie".into()
            },
            "-L".into(),
            lib.display().to_string(),
            format!("-lq_{name}"),
            "-lown".into(),
        ];
        a.extend(c.flags(&search));
        gcc(&a.iter().map(|s| os(s)).collect::<Vec<_>>());
        (qlib, prog)
    };
    std::fs::create_dir_all(out.join("bin")).unwrap();
    // `lib/libown.so` for `-lown` at link time only; the objects need the
    // soname libown.so.1. Removed before the survey.
    store.symlink("libown.so.1", lib.join("libown.so"));
    let built: Vec<(Combo, PathBuf, PathBuf)> = std::thread::scope(|s| {
        let chunks: Vec<&[Combo]> = combos.chunks(combos.len().div_ceil(3)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let link = &link;
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|c| {
                            let (q, p) = link(c);
                            (c.clone(), q, p)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    std::fs::remove_file(lib.join("libown.so")).unwrap();
    let built_in = started.elapsed();

    // Before: what the real loader maps for each program, what it prints,
    // and every object's search list.
    let want_stdout = format!("{}\n", 32 + 1 + 8 + 16 + 2 + 32);
    let mut before: BTreeMap<PathBuf, common::Listing> = BTreeMap::new();
    let mut old_lists: BTreeMap<PathBuf, String> = BTreeMap::new();
    for (c, q, p) in &built {
        let r = common::run(p, &[]);
        assert_eq!(r.stdout, want_stdout, "{} before: {r:?}", c.name());
        before.insert(p.clone(), common::ld_so_list(p, &[]).unwrap());
        for f in [q, p] {
            let l = search_list(f);
            assert_eq!(l, search, "{}", f.display());
            old_lists.insert(f.clone(), l);
        }
    }

    let outs = out.to_str().unwrap();
    store.unfarm(["fix", "--system", outs]).success();
    let check = store.unfarm(["check", "--system", "--json", outs]);
    let json = check.json();
    let errors: Vec<&serde_json::Value> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .collect();
    assert!(errors.is_empty(), "check after fix: {errors:#?}");
    assert_eq!(check.code, Some(0), "{check:?}");
    assert_eq!(
        std::fs::read_link(lib.join("libzz.so.1")).unwrap(),
        zz.join("lib/libzz.so.1"),
        "the library link into the farm is retargeted"
    );
    assert_eq!(
        std::fs::read_link(lib.join("libyy.so.1")).unwrap(),
        yy.join("lib/libyy.so.1"),
        "a link into a real output stays"
    );
    assert_eq!(
        std::fs::read_link(lib.join("deps")).unwrap(),
        dd.join("lib"),
        "the directory link into the farm is retargeted"
    );

    let mut changed = 0;
    for (c, q, p) in &built {
        for f in [q, p] {
            let new = search_list(f);
            let old = &old_lists[f];
            changed += usize::from(&new != old);
            // The `$ORIGIN` entries, verbatim, first, in their order.
            let entries: Vec<&str> = new.split(':').collect();
            assert_eq!(
                entries[..2],
                ["$ORIGIN/../lib", "$ORIGIN/../lib/deps"],
                "{}: {old} -> {new}",
                f.display()
            );
            assert!(!new.contains(farm.to_str().unwrap()), "{new}");
            let rest = &entries[2..];
            if c.runpath {
                // No dlopen: its needs' dirs only. The library's: ff, the
                // farm's only library not served from its own lib; the
                // program's: none (it needs the library and libown).
                let want = if f == q {
                    vec![format!("{}/lib", ff.display())]
                } else {
                    vec![]
                };
                assert_eq!(rest, want, "{}", f.display());
            } else {
                // DT_RPATH is inherited: every library the farm offered.
                assert!(
                    rest.contains(&format!("{}/lib", aa.display()).as_str()),
                    "{new}"
                );
            }
        }
        let r = common::run(p, &[]);
        assert_eq!(r.stdout, want_stdout, "{} after: {r:?}", c.name());
        let after = common::ld_so_list(p, &[]).unwrap();
        let b = &before[p];
        let names = |l: &common::Listing| {
            l.by_name
                .keys()
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(names(b), names(&after), "{}", c.name());
        for n in b.by_name.keys() {
            assert_eq!(b.real(n), after.real(n), "{}: {n}", c.name());
        }
    }
    assert_eq!(changed, built.len() * 2, "every object's list changed");
    eprintln!(
        "{} combinations: built in {:.1?}, all checked in {:.1?}",
        built.len(),
        built_in,
        started.elapsed()
    );
}

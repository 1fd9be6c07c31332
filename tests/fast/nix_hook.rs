//! nix/unfarm-hook.sh run the way nixpkgs runs setup hooks: inside
//! tests/nix/stdenv-emu.sh (setup.sh's shell options, structured attrs or
//! plain env, runHook, fixupPhase with stdenv's `patchelf --shrink-rpath`
//! and autoAddDriverRunpath's `patchelf --set-rpath`), on a jaxlib-style
//! package with outputs out/lib/bin/dev/debug whose every ELF reaches its
//! libraries through a symlink farm. A temp store dir, host gcc, Debian's
//! patchelf; no Nix needed.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Cc, LinkStyle, Store, dev_link, lib_source, soname_link};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const UNFARM: &str = env!("CARGO_BIN_EXE_unfarm");
const DRIVER: &str = "/run/opengl-driver/lib";
const OUTPUTS: [&str; 5] = ["out", "lib", "bin", "dev", "debug"];

/// A variable of the derivation: a string, or a list (a bash array under
/// structured attrs, a space-separated string otherwise).
enum Var {
    Str(String),
    List(Vec<String>),
}

fn s(v: &str) -> Var {
    Var::Str(v.into())
}

fn list(v: &[&str]) -> Var {
    Var::List(v.iter().map(|x| x.to_string()).collect())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Attrs {
    Plain,
    Structured,
}

struct World {
    store: Store,
    farm: PathBuf,
    /// Store paths that must leave every output (farm, dev, static, stubs).
    unwanted: Vec<PathBuf>,
    /// The extra dir the packager keeps with `unfarmKeep`.
    extra: PathBuf,
    outs: BTreeMap<&'static str, PathBuf>,
    /// Every program and what it printed before fixup.
    programs: Vec<(PathBuf, String)>,
}

/// Split outputs, a farm joining all of them, and the package: every ELF
/// gets the farm in its RUNPATH (as jaxlib's postInstall did).
fn world() -> World {
    common::require_tools(&["gcc", "patchelf", "objcopy", "bash"]);
    let store = Store::new();
    let cc = Cc::gcc();
    let foo_lib = store.output("foo-1.0-lib");
    let foo_file = cc.shared_lib(&foo_lib.join("lib"), "foo", "1.0", &lib_source("foo", 40));
    let foo_dev = store.output("foo-1.0-dev");
    dev_link(&foo_dev, "foo", &soname_link(&foo_file));
    std::fs::create_dir_all(foo_dev.join("include")).unwrap();
    std::fs::write(foo_dev.join("include/foo.h"), "int foo(void);\n").unwrap();
    let foo_static = store.output("foo-1.0-static");
    cc.static_lib(&foo_static.join("lib"), "foo", &lib_source("foo", 40));
    let cuda_lib = store.output("cuda-12.0-lib");
    cc.shared_lib(
        &cuda_lib.join("lib"),
        "cublas",
        "12.0",
        &lib_source("cublas", 2),
    );
    cc.shared_lib(
        &cuda_lib.join("lib"),
        "nvrtc-builtins",
        "12.0",
        &lib_source("builtins", 7),
    );
    let stubs = store.output("cuda-12.0-stubs");
    cc.shared_lib(
        &stubs.join("lib/stubs"),
        "cuda",
        "1",
        &lib_source("cuInit", 999),
    );
    let bar_lib = store.output("bar-1.0-lib");
    cc.shared_lib(&bar_lib.join("lib"), "bar", "1.0", &lib_source("bar", 5));
    let extra = store.output("extra-1.0-lib").join("lib");
    std::fs::create_dir_all(&extra).unwrap();
    let farm = store.farm(
        "cuda-and-deps-libs-joined",
        &[&foo_lib, &foo_dev, &foo_static, &cuda_lib, &bar_lib, &stubs],
        LinkStyle::Absolute,
    );
    let fl = farm.join("lib");

    let mut outs = BTreeMap::new();
    for o in OUTPUTS {
        let name = if o == "out" {
            "pkg-1.0".to_string()
        } else {
            format!("pkg-1.0-{o}")
        };
        outs.insert(o, store.output(&name));
    }
    // Through the farm like everything else: driver-runpath's `patchelf
    // --set-rpath` grows it first (patchelf's own new segment), then unfarm
    // grows it again to the farm's real dirs.
    let core = cc
        .clone()
        .link_dir(&fl)
        .lib(":libfoo.so.1")
        .search(&fl)
        .shared_lib(
            &outs["lib"].join("lib"),
            "appcore",
            "1.0",
            "int foo(void);\nint core(void) { return foo() + 1; }\n",
        );
    let app = cc
        .clone()
        .link_dir(&fl)
        .link_dir(core.parent().unwrap())
        .lib(":libappcore.so.1")
        .lib(":libcublas.so.12")
        .search(core.parent().unwrap())
        .search(&fl)
        .search(&extra)
        .executable(
            &outs["bin"].join("bin/app"),
            &common::exe_calling(&["core", "cublas"]),
        );
    // dlopen()s by a literal name: only its read-only data says what.
    let dl = cc.clone().arg("-ldl").search(&fl).executable(
        &outs["out"].join("bin/dl"),
        &common::exe_dlopen("libnvrtc-builtins.so.12", "builtins"),
    );
    // dlopen()s a computed name: only `unfarmDlopen` can say what.
    let dlc = cc
        .clone()
        .arg("-ldl")
        .search(&fl)
        .search(&extra)
        .executable(&outs["out"].join("bin/dlc"), DLOPEN_COMPUTED);
    // A RUNPATH that climbs out of the output into the farm.
    let farm_name = farm.file_name().unwrap().to_str().unwrap().to_owned();
    let climb = cc
        .clone()
        .link_dir(&fl)
        .lib(":libfoo.so.1")
        .search(format!("$ORIGIN/../../{farm_name}/lib"))
        .executable(
            &outs["out"].join("bin/climb"),
            &common::exe_calling(&["foo"]),
        );
    // separateDebugInfo: the debug output holds --only-keep-debug copies.
    let dbg = outs["debug"].join("lib/debug/.build-id/ab");
    std::fs::create_dir_all(&dbg).unwrap();
    objcopy(&["--only-keep-debug"], &app, &dbg.join("cdef0123.debug"));
    objcopy(
        &["--only-keep-debug", "--compress-debug-sections"],
        &core,
        &dbg.join("cdef4567.debug"),
    );
    std::fs::create_dir_all(outs["dev"].join("include")).unwrap();
    std::fs::write(outs["dev"].join("include/pkg.h"), "int core(void);\n").unwrap();

    let programs = [app, dl, dlc, climb]
        .into_iter()
        .map(|p| {
            let r = common::run(&p, &[]);
            assert_eq!(r.code, Some(0), "{} before fixup: {r:?}", p.display());
            (p, r.stdout)
        })
        .collect();
    World {
        unwanted: vec![farm.clone(), foo_dev, foo_static, stubs],
        farm,
        extra,
        outs,
        programs,
        store,
    }
}

const DLOPEN_COMPUTED: &str = r#"#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  char n[32] = "lib";
  strcat(n, "bar"); strcat(n, ".so."); strcat(n, "1");
  void *h = dlopen(n, RTLD_NOW);
  if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
  int (*f)(void) = (int (*)(void))dlsym(h, "bar");
  printf("%d\n", f());
  return 0;
}
"#;

fn objcopy(flags: &[&str], from: &Path, to: &Path) {
    let out = Command::new("objcopy")
        .args(flags)
        .arg(from)
        .arg(to)
        .output()
        .expect("run objcopy");
    assert!(out.status.success(), "objcopy: {out:?}");
}

/// Single-quote a value for bash.
fn q(v: &str) -> String {
    format!("'{}'", v.replace('\'', r"'\''"))
}

/// Run fixup (after `postInstall`, if given) on the world's outputs with the
/// hook, as setup.sh would with these derivation variables.
fn fixup(w: &World, attrs: Attrs, vars: &[(&str, Var)]) -> std::process::Output {
    let build = w.store.scratch().join("build");
    std::fs::create_dir_all(&build).unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg(format!("{ROOT}/tests/nix/stdenv-emu.sh"))
        .arg(common::HOOK_SCRIPT)
        .current_dir(&build)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("NIX_STORE", w.store.dir());
    let mut all: Vec<(&str, Var)> = vec![("unfarmBin", s(UNFARM))];
    all.extend(vars.iter().map(|(k, v)| {
        (
            *k,
            match v {
                Var::Str(x) => Var::Str(x.clone()),
                Var::List(x) => Var::List(x.clone()),
            },
        )
    }));
    match attrs {
        Attrs::Plain => {
            let names: Vec<&str> = OUTPUTS
                .into_iter()
                .filter(|o| w.outs.contains_key(o))
                .collect();
            cmd.env("outputs", names.join(" "));
            for (o, p) in &w.outs {
                cmd.env(o, p);
            }
            for (k, v) in &all {
                match v {
                    Var::Str(x) => cmd.env(k, x),
                    Var::List(x) => cmd.env(k, x.join(" ")),
                };
            }
        }
        Attrs::Structured => {
            let mut sh = String::from("declare -A outputs=(");
            for (o, p) in &w.outs {
                sh.push_str(&format!("[{o}]={} ", q(p.to_str().unwrap())));
            }
            sh.push_str(")\n");
            for (k, v) in &all {
                match v {
                    Var::Str(x) => sh.push_str(&format!("declare {k}={}\n", q(x))),
                    Var::List(x) => {
                        let items: Vec<String> = x.iter().map(|i| q(i)).collect();
                        sh.push_str(&format!("declare -a {k}=({})\n", items.join(" ")));
                    }
                }
            }
            let file = build.join(".attrs.sh");
            std::fs::write(&file, sh).unwrap();
            cmd.env("NIX_ATTRS_SH_FILE", &file);
        }
    }
    cmd.output().expect("run bash")
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every file or symlink under `root` whose bytes or target name `hash`.
fn naming(root: &Path, hash: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = p.symlink_metadata().unwrap();
            let bytes = if m.file_type().is_symlink() {
                std::fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if m.is_dir() {
                stack.push(p);
                continue;
            } else {
                std::fs::read(&p).unwrap()
            };
            if memchr::memmem::find(&bytes, hash.as_bytes()).is_some() {
                hits.push(p);
            }
        }
    }
    hits
}

fn hash_of(p: &Path) -> String {
    p.file_name().unwrap().to_str().unwrap()[..32].to_owned()
}

fn runpath(p: &Path) -> String {
    common::readelf_dynamic(p, "RUNPATH").unwrap_or_default()
}

/// What every nixpkgs build with the hook must end with.
fn assert_clean(w: &World, out: &std::process::Output) {
    assert!(out.status.success(), "fixup failed:\n{}", text(out));
    for u in &w.unwanted {
        for o in w.outs.values() {
            let left = naming(o, &hash_of(u));
            assert!(
                left.is_empty(),
                "{} still names {}: {left:?}\n{}",
                o.display(),
                u.display(),
                text(out)
            );
        }
    }
    for (p, before) in &w.programs {
        let r = common::run(p, &[]);
        assert!(
            r.code == Some(0) && &r.stdout == before,
            "{} after fixup: {r:?} (before: {before:?}), RUNPATH {}\n{}",
            p.display(),
            runpath(p),
            text(out)
        );
        assert!(
            runpath(p).starts_with(DRIVER),
            "{}: driver dir not first: {}",
            p.display(),
            runpath(p)
        );
    }
    // The kept entry survived: nobody globbed it away.
    let app = &w.programs[0].0;
    assert!(
        runpath(app).contains(w.extra.to_str().unwrap()),
        "unfarmKeep's entry was dropped: {}",
        runpath(app)
    );
}

#[test]
fn stdenv_defaults_plain_env_string_variables() {
    let w = world();
    let out = fixup(
        &w,
        Attrs::Plain,
        &[
            ("autoAddDriverRunpath", s("1")),
            ("unfarmDlopen", s("libnvrtc-builtins.so.12 libbar.so.1")),
            ("unfarmKeep", s("*-extra-1.0-lib/lib")),
            ("unfarmFlags", s("--system")),
        ],
    );
    assert_clean(&w, &out);
}

#[test]
fn stdenv_defaults_structured_attrs_lists() {
    let w = world();
    let out = fixup(
        &w,
        Attrs::Structured,
        &[
            ("autoAddDriverRunpath", s("1")),
            // libbar is second: a list read as `${x-}` keeps only the first.
            (
                "unfarmDlopen",
                list(&["libnvrtc-builtins.so.12", "libbar.so.1"]),
            ),
            ("unfarmKeep", list(&["*-extra-1.0-lib/lib"])),
            ("unfarmFlags", list(&["--system"])),
        ],
    );
    assert_clean(&w, &out);
}

#[test]
fn structured_attrs_with_shrink_flag_and_dont_patch_elf() {
    let w = world();
    let out = fixup(
        &w,
        Attrs::Structured,
        &[
            ("autoAddDriverRunpath", s("1")),
            ("dontPatchELF", s("1")),
            (
                "unfarmDlopen",
                list(&["libnvrtc-builtins.so.12", "libbar.so.1"]),
            ),
            ("unfarmKeep", list(&["*-extra-1.0-lib/lib"])),
            ("unfarmFlags", list(&["--system", "--shrink"])),
        ],
    );
    assert_clean(&w, &out);
}

#[test]
fn the_bin_output_is_fixed_and_checked() {
    let w = world();
    let out = fixup(
        &w,
        Attrs::Plain,
        &[
            ("dontPatchELF", s("1")),
            // unfarmBin is absolute: it must not be taken for the bin output.
            ("unfarmFlags", s("--system")),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let app = w.outs["bin"].join("bin/app");
    assert!(
        !runpath(&app).contains(&hash_of(&w.farm)),
        "bin/app keeps the farm: {}\n{}",
        runpath(&app),
        text(&out)
    );
    let t = text(&out);
    let line = t
        .lines()
        .find(|l| l.starts_with("unfarm: fixing RUNPATHs in"))
        .unwrap_or_else(|| panic!("no fix line:\n{t}"));
    assert!(
        line.contains(w.outs["bin"].to_str().unwrap()) && !line.contains(UNFARM),
        "the outputs passed are wrong: {line}"
    );
}

#[test]
fn a_dlopen_only_program_keeps_its_dirs_under_stdenv_patchelf() {
    // No unfarmDlopen: the literal in bin/dl's read-only data is all there
    // is. stdenv's patchELF alone would drop the farm, and the dlopen with it.
    let w = world();
    let out = fixup(&w, Attrs::Plain, &[("unfarmFlags", s("--system"))]);
    assert!(out.status.success(), "{}", text(&out));
    let dl = &w.programs[1];
    let r = common::run(&dl.0, &[]);
    assert!(
        r.code == Some(0) && r.stdout == dl.1,
        "bin/dl after fixup: {r:?}, RUNPATH {}\n{}",
        runpath(&dl.0),
        text(&out)
    );
    assert!(!runpath(&dl.0).contains(&hash_of(&w.farm)));
}

#[test]
fn stdenv_defaults_nothing_declared_every_program_runs() {
    // The hook in patchELF's place, nothing declared: bin/dlc dlopen()s a
    // computed name from a dir that serves no DT_NEEDED. patchELF would drop
    // that dir; unfarm keeps unused entries of an object whose dlopen needs
    // it cannot know, and still takes every farm and dev path out.
    let w = world();
    let out = fixup(
        &w,
        Attrs::Structured,
        &[
            ("autoAddDriverRunpath", s("1")),
            ("unfarmFlags", list(&["--system"])),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    for u in &w.unwanted {
        for o in w.outs.values() {
            let left = naming(o, &hash_of(u));
            assert!(
                left.is_empty(),
                "{} still names {}: {left:?}",
                o.display(),
                u.display()
            );
        }
    }
    for (p, before) in &w.programs {
        let r = common::run(p, &[]);
        assert!(
            r.code == Some(0) && &r.stdout == before,
            "{} after fixup: {r:?} (before: {before:?}), RUNPATH {}\n{}",
            p.display(),
            runpath(p),
            text(&out)
        );
    }
}

#[test]
fn debug_info_files_are_left_alone() {
    let w = world();
    let debug = w.outs["debug"].join("lib/debug/.build-id/ab");
    let before: Vec<Vec<u8>> = ["cdef0123.debug", "cdef4567.debug"]
        .iter()
        .map(|f| std::fs::read(debug.join(f)).unwrap())
        .collect();
    let out = fixup(
        &w,
        Attrs::Plain,
        &[("dontPatchELF", s("1")), ("unfarmFlags", s("--system"))],
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(!t.contains("unreadable") && !t.contains("malformed"), "{t}");
    for (f, b) in ["cdef0123.debug", "cdef4567.debug"].iter().zip(before) {
        assert_eq!(std::fs::read(debug.join(f)).unwrap(), b, "{f} was changed");
    }
}

/// A pkg-config file in `output`'s `lib/pkgconfig` whose `Libs:` names the farm.
fn farm_pc(w: &World, output: &str) -> PathBuf {
    let pc = w.outs[output].join("lib/pkgconfig/pkg.pc");
    std::fs::create_dir_all(pc.parent().unwrap()).unwrap();
    std::fs::write(
        &pc,
        format!(
            "prefix={}\nLibs: -L{}/lib -lfoo\n",
            w.outs["out"].display(),
            w.farm.display()
        ),
    )
    .unwrap();
    pc
}

#[test]
fn a_pc_file_naming_the_farm_in_the_dev_output_is_a_warning() {
    // multiple-outputs.sh puts lib/pkgconfig in outputDev: a farm named
    // there is only fetched to build against the package.
    for attrs in [Attrs::Plain, Attrs::Structured] {
        let w = world();
        farm_pc(&w, "dev");
        let out = fixup(
            &w,
            attrs,
            &[
                ("autoAddDriverRunpath", s("1")),
                (
                    "unfarmDlopen",
                    list(&["libnvrtc-builtins.so.12", "libbar.so.1"]),
                ),
                ("unfarmKeep", list(&["*-extra-1.0-lib/lib"])),
                ("unfarmFlags", list(&["--system"])),
            ],
        );
        let t = text(&out);
        assert!(
            out.status.success(),
            "{attrs:?}: the build should pass:\n{t}"
        );
        assert!(
            t.lines().any(
                |l| l.starts_with("warning[farm-reference]") && l.contains("pkg.pc: offset 0x")
            ),
            "{attrs:?}: no farm-reference warning:\n{t}"
        );
        assert!(
            t.contains("(in a build-time output: not in the runtime closure)")
                && t.contains("cost:"),
            "{attrs:?}: the warning gives no role or cost:\n{t}"
        );
        assert!(
            t.contains("unfarm: dev is a build-time output"),
            "{attrs:?}: {t}"
        );
        // The runtime outputs are still rid of the farm.
        for o in ["out", "lib", "bin"] {
            let left = naming(&w.outs[o], &hash_of(&w.farm));
            assert!(
                left.is_empty(),
                "{attrs:?}: {o} still names the farm: {left:?}\n{t}"
            );
        }
    }
}

#[test]
fn a_dev_output_that_is_also_output_bin_stays_build_time() {
    // `outputBin = "dev"` (a package's -config scripts): dev is still the
    // build-time output; `out` stays runtime whatever the variables say.
    let mut w = world();
    farm_pc(&w, "dev");
    w.outs.retain(|o, _| *o == "out" || *o == "dev");
    let out = fixup(
        &w,
        Attrs::Structured,
        &[
            ("outputBin", s("dev")),
            ("dontPatchELF", s("1")),
            ("unfarmFlags", list(&["--system"])),
        ],
    );
    let t = text(&out);
    assert!(out.status.success(), "the build should pass:\n{t}");
    assert!(t.contains("warning[farm-reference]"), "{t}");
    assert!(!t.contains("unfarm: out is a build-time output"), "{t}");
}

#[test]
fn a_pc_file_naming_the_farm_in_a_single_output_package_fails_with_the_remedy() {
    let mut w = world();
    let pc = farm_pc(&w, "out");
    w.outs.retain(|o, _| *o == "out");
    let out = fixup(
        &w,
        Attrs::Plain,
        &[("dontPatchELF", s("1")), ("unfarmFlags", s("--system"))],
    );
    let t = text(&out);
    assert!(!out.status.success(), "the build should fail:\n{t}");
    let line = t
        .lines()
        .find(|l| l.starts_with("error[farm-reference]"))
        .unwrap_or_else(|| panic!("no farm-reference error:\n{t}"));
    assert!(
        t.contains(pc.to_str().unwrap()),
        "the file is not named:\n{t}"
    );
    assert!(
        t.contains("split a `dev` output"),
        "no remedy for {line}:\n{t}"
    );
    // Allowed on purpose, it passes.
    let out = fixup(
        &w,
        Attrs::Structured,
        &[
            ("dontPatchELF", s("1")),
            ("unfarmAllow", list(&[w.farm.to_str().unwrap()])),
            ("unfarmFlags", list(&["--system"])),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_farm_entry_kept_by_unfarm_keep_passes_as_info() {
    // The packager keeps the farm on purpose: bin/app's farm entry stays,
    // and neither it nor its bytes fail the build.
    let w = world();
    let farm_lib = format!("{}/lib", w.farm.display());
    for attrs in [Attrs::Plain, Attrs::Structured] {
        let out = fixup(
            &w,
            attrs,
            &[
                ("unfarmKeep", list(&[&farm_lib, "*-extra-1.0-lib/lib"])),
                ("unfarmFlags", list(&["--system"])),
            ],
        );
        let t = text(&out);
        assert!(
            out.status.success(),
            "{attrs:?}: the build should pass:\n{t}"
        );
        assert!(t.contains("note[farm-reference]"), "{attrs:?}: {t}");
        let app = w.outs["bin"].join("bin/app");
        assert!(
            runpath(&app).contains(&farm_lib),
            "{attrs:?}: the kept entry went: {}",
            runpath(&app)
        );
    }
}

#[test]
fn check_only_changes_nothing_and_fails_on_the_farm() {
    let w = world();
    let app = w.outs["bin"].join("bin/app");
    let before = std::fs::read(&app).unwrap();
    let out = fixup(
        &w,
        Attrs::Plain,
        &[("unfarmCheckOnly", s("1")), ("unfarmFlags", s("--system"))],
    );
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("unfarm: error findings remain"), "{t}");
    assert!(t.contains("indirect-entry"), "{t}");
    // Not even stdenv's patchELF touched it: the hook owns RUNPATHs.
    assert_eq!(std::fs::read(&app).unwrap(), before);
}

#[test]
fn a_directory_link_into_a_farm_of_many_dirs_fails_the_build_by_name() {
    // The farm's lib joins several real dirs: no one dir to point the link
    // at, so the packager must act; the build says which link and why.
    let w = world();
    let link = w.outs["out"].join("lib/deps");
    w.store.symlink(w.farm.join("lib"), &link);
    let out = fixup(
        &w,
        Attrs::Plain,
        &[("dontPatchELF", s("1")), ("unfarmFlags", s("--system"))],
    );
    let t = text(&out);
    assert!(!out.status.success(), "the build should fail:\n{t}");
    assert!(
        t.lines()
            .any(|l| l.contains("symlink-into-farm") && l.contains(link.to_str().unwrap())),
        "no symlink-into-farm finding for {}:\n{t}",
        link.display()
    );
    assert!(t.contains("unfarm: error findings remain"), "{t}");
}

#[test]
fn list_elements_after_the_first_count_and_patterns_are_not_globbed() {
    // Only the `out` output's bin/dlc is looked at: it dlopen()s the
    // computed name of libbar (second in the list), and keeps the extra
    // dir by a pattern that matches nothing in the build dir.
    let w = world();
    let out = fixup(
        &w,
        Attrs::Structured,
        &[
            ("dontPatchELF", s("1")),
            (
                "unfarmDlopen",
                list(&["libnvrtc-builtins.so.12", "libbar.so.1"]),
            ),
            ("unfarmKeep", list(&["*-extra-1.0-lib/lib"])),
            ("unfarmFlags", s("--system --shrink")),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let (dlc, before) = &w.programs[2];
    let r = common::run(dlc, &[]);
    assert!(
        r.code == Some(0) && &r.stdout == before,
        "bin/dlc after fixup: {r:?}, RUNPATH {}",
        runpath(dlc)
    );
    assert!(
        runpath(dlc).contains(w.extra.to_str().unwrap()),
        "unfarmKeep's entry was dropped: {}",
        runpath(dlc)
    );
}

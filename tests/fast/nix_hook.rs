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

/// autoPatchelf mode's package: prebuilt files with no RUNPATH (as from a
/// wheel or a .deb), split over `out` and `lib`, whose libraries come from
/// buildInputs (one propagated by another), one loaded only by a literal
/// dlopen() and one only by a name built at run time (runtimeDependencies);
/// a `-dev` input whose `lib` holds a linker-name link; a library needing a
/// soname no input provides.
struct Prebuilt {
    w: World,
    inputs: Vec<PathBuf>,
    zeta_dev: PathBuf,
    cudart: PathBuf,
    bar: PathBuf,
    plugin: PathBuf,
    ghost: PathBuf,
    bintools: PathBuf,
    interp: String,
}

const LOADER: &str = r#"#include <dlfcn.h>
int loader(void) {
  void *h = dlopen("libcudart.so.12", RTLD_NOW);
  if (!h) return -1000;
  int (*f)(void) = (int (*)(void))dlsym(h, "cudart");
  return f ? f() : -2000;
}
"#;

/// A library that dlopen()s `libplugin.so.1` by a name built at run time
/// (also built by tests/nix/e2e.nix).
const PLUGINS: &str = include_str!("../nix/plugins.c");

fn prebuilt() -> Prebuilt {
    common::require_tools(&["gcc", "patchelf", "readelf", "bash"]);
    let store = Store::new();
    let cc = Cc::gcc();
    let zeta = store.output("zeta-1.0");
    let zeta_file = cc.shared_lib(&zeta.join("lib"), "zeta", "1.0", &lib_source("zeta", 3));
    let zeta_dev = store.output("zeta-1.0-dev");
    dev_link(&zeta_dev, "zeta", &soname_link(&zeta_file));
    let cudart = store.output("cudart-12.0-lib");
    cc.shared_lib(
        &cudart.join("lib"),
        "cudart",
        "12.0",
        &lib_source("cudart", 20),
    );
    let bar = store.output("bar-1.0-lib");
    cc.shared_lib(&bar.join("lib"), "bar", "1.0", &lib_source("bar", 5));
    // Reaches the build only through meta's propagated-build-inputs.
    let meta = store.output("meta-1.0");
    std::fs::create_dir_all(meta.join("nix-support")).unwrap();
    std::fs::write(
        meta.join("nix-support/propagated-build-inputs"),
        format!("{}\n", bar.display()),
    )
    .unwrap();
    let plugin = store.output("plugin-1.0");
    cc.shared_lib(
        &plugin.join("lib"),
        "plugin",
        "1.0",
        &lib_source("plugin", 100),
    );
    // In no input: only addAutoPatchelfSearchPath can name it.
    let ghost_out = store.output("ghost-1.0");
    let ghost = ghost_out.join("lib");
    cc.shared_lib(&ghost, "ghost", "1.0", &lib_source("ghost", 1));

    let mut outs = BTreeMap::new();
    outs.insert("out", store.output("pkg-1.0"));
    outs.insert("lib", store.output("pkg-1.0-lib"));
    let libdir = outs["lib"].join("lib");
    let core = cc
        .clone()
        .link_dir(zeta.join("lib"))
        .lib(":libzeta.so.1")
        .shared_lib(&libdir, "core", "1.0", &common::lib_calling("core", "zeta"));
    let loader = cc
        .clone()
        .arg("-ldl")
        .shared_lib(&libdir, "loader", "1.0", LOADER);
    let plugins = cc
        .clone()
        .arg("-ldl")
        .shared_lib(&libdir, "plugins", "1.0", PLUGINS);
    cc.clone()
        .link_dir(&ghost)
        .lib(":libghost.so.1")
        .shared_lib(
            &libdir,
            "extra",
            "1.0",
            &common::lib_calling("extra", "ghost"),
        );
    let app = cc
        .clone()
        .link_dir(&libdir)
        .link_dir(bar.join("lib"))
        // Where libcore's own need is, for ld's check only (no RUNPATH).
        .arg(format!("-Wl,-rpath-link,{}", zeta.join("lib").display()))
        .lib(":libcore.so.1")
        .lib(":libloader.so.1")
        .lib(":libplugins.so.1")
        .lib(":libbar.so.1")
        .executable(
            &outs["out"].join("bin/app"),
            &common::exe_calling(&["core", "loader", "plugins", "bar"]),
        );
    let _ = (core, loader, plugins);
    // NIX_BINTOOLS stand-in: the host's loader under a longer name outside
    // the store dir (the host model still applies, and PT_INTERP grows).
    let bintools = store.scratch().join("bintools");
    let glibc = store.scratch().join("glibc-for-the-hook-test/lib");
    std::fs::create_dir_all(bintools.join("nix-support")).unwrap();
    std::fs::create_dir_all(&glibc).unwrap();
    let interp = glibc.join("ld-linux-x86-64.so.2");
    std::os::unix::fs::symlink("/lib64/ld-linux-x86-64.so.2", &interp).unwrap();
    let interp = interp.to_str().unwrap().to_owned();
    std::fs::write(
        bintools.join("nix-support/dynamic-linker"),
        format!("{interp}\n"),
    )
    .unwrap();
    let w = World {
        farm: store.scratch().join("no-farm"),
        unwanted: vec![zeta_dev.clone()],
        extra: store.scratch().join("no-extra"),
        outs,
        programs: vec![(app, "129\n".into())],
        store,
    };
    Prebuilt {
        w,
        inputs: vec![zeta_dev.clone(), zeta, cudart.clone(), meta, plugin.clone()],
        zeta_dev,
        cudart,
        bar,
        plugin,
        ghost: ghost_out,
        bintools,
        interp,
    }
}

fn interpreter_of(p: &Path) -> String {
    let out = Command::new("readelf")
        .arg("-lW")
        .arg(p)
        .output()
        .expect("run readelf");
    let t = String::from_utf8_lossy(&out.stdout);
    t.lines()
        .find_map(|l| l.split_once("Requesting program interpreter: "))
        .map(|(_, r)| r.trim_end_matches(']').to_owned())
        .unwrap_or_default()
}

fn auto_vars<'a>(p: &'a Prebuilt, ignore: &'a [&'a str]) -> Vec<(&'a str, Var)> {
    let inputs: Vec<&str> = p.inputs.iter().map(|i| i.to_str().unwrap()).collect();
    vec![
        ("unfarmAutoPatchelf", s("1")),
        ("buildInputs", list(&inputs)),
        ("runtimeDependencies", list(&[p.plugin.to_str().unwrap()])),
        ("autoPatchelfIgnoreMissingDeps", list(ignore)),
        ("NIX_BINTOOLS", s(p.bintools.to_str().unwrap())),
    ]
}

#[test]
fn autopatchelf_mode_gives_prebuilt_files_their_inputs_dirs_and_they_run() {
    for attrs in [Attrs::Plain, Attrs::Structured] {
        let p = prebuilt();
        let app = &p.w.programs[0].0;
        assert_ne!(common::run(app, &[]).code, Some(0), "runs before fixup");
        let out = fixup(&p.w, attrs, &auto_vars(&p, &["libghost.so.*"]));
        assert!(
            out.status.success(),
            "{attrs:?}: fixup failed:\n{}",
            text(&out)
        );
        let r = common::run(app, &[]);
        assert_eq!(r.stdout, "129\n", "{attrs:?}: {r:?}\n{}", text(&out));
        assert_eq!(interpreter_of(app), p.interp, "{attrs:?}");
        let lib = p.w.outs["lib"].join("lib");
        let d = |o: &Path| o.join("lib").to_str().unwrap().to_owned();
        // Each object: the dirs its own needs use, nothing else.
        assert_eq!(
            runpath(&lib.join("libcore.so.1.0")),
            d(&p.inputs[1]),
            "{attrs:?}"
        );
        let rp = runpath(&lib.join("libloader.so.1.0"));
        assert!(
            rp.contains(&d(&p.cudart)),
            "{attrs:?}: literal dlopen: {rp}"
        );
        // runtimeDependencies reach a library that dlopen()s.
        let rp = runpath(&lib.join("libplugins.so.1.0"));
        assert!(
            rp.contains(&d(&p.plugin)),
            "{attrs:?}: runtime dependency: {rp}"
        );
        let rp = runpath(app);
        assert!(
            rp.contains(&d(&p.bar)) && rp.contains(lib.to_str().unwrap()),
            "{attrs:?}: propagated input and own lib output: {rp}"
        );
        assert!(
            !rp.contains(&d(&p.plugin)),
            "{attrs:?}: app cannot dlopen: {rp}"
        );
        for f in [
            app.clone(),
            lib.join("libcore.so.1.0"),
            lib.join("libloader.so.1.0"),
        ] {
            assert!(
                !runpath(&f).contains(&hash_of(&p.zeta_dev)),
                "{attrs:?}: -dev dir in {}",
                f.display()
            );
        }
        // Libraries keep the interpreter they had: none.
        assert_eq!(interpreter_of(&lib.join("libcore.so.1.0")), "");
    }
}

#[test]
fn autopatchelf_mode_fails_on_a_need_no_input_provides_unless_ignored_or_searched() {
    let p = prebuilt();
    let out = fixup(&p.w, Attrs::Plain, &auto_vars(&p, &[]));
    assert!(
        !out.status.success(),
        "missing libghost passed:\n{}",
        text(&out)
    );
    assert!(text(&out).contains("libghost.so.1"), "{}", text(&out));
    // A search path the packager adds in postInstall, and appendRunpaths.
    let p = prebuilt();
    let mut vars = auto_vars(&p, &[]);
    let add = format!("addAutoPatchelfSearchPath {}", p.ghost.display());
    vars.push(("postInstall", s(&add)));
    vars.push(("appendRunpaths", list(&["/opt/appended/lib"])));
    let out = fixup(&p.w, Attrs::Structured, &vars);
    assert!(out.status.success(), "{}", text(&out));
    let extra = runpath(&p.w.outs["lib"].join("lib/libextra.so.1.0"));
    let ghost = p.ghost.join("lib");
    assert_eq!(extra, format!("{}:/opt/appended/lib", ghost.display()));
    for ignore in ["1", "*"] {
        let p = prebuilt();
        let out = fixup(&p.w, Attrs::Structured, &auto_vars(&p, &[ignore]));
        assert!(out.status.success(), "{ignore}: {}", text(&out));
        assert_eq!(common::run(&p.w.programs[0].0, &[]).stdout, "129\n");
    }
}

/// `addAutoPatchelfSearchPath` as nixpkgs' auto-patchelf.sh defines it: the
/// dirs under each root (default: recursively; `--no-recurse`: the root's own
/// files) holding a `*.so`/`*.so.*`, flags before `--`, an unknown flag an
/// error, no root the working dir. A relative root is read against the
/// working dir of the call (postInstall's), not fixup's.
#[test]
fn add_auto_patchelf_search_path_flags_as_nixpkgs() {
    let extra_rp = |p: &Prebuilt| runpath(&p.w.outs["lib"].join("lib/libextra.so.1.0"));
    let with_add = |p: &Prebuilt, add: &str, attrs: Attrs| {
        let mut vars = auto_vars(p, &[]);
        vars.push(("postInstall", s(add)));
        fixup(&p.w, attrs, &vars)
    };
    for attrs in [Attrs::Plain, Attrs::Structured] {
        // --no-recurse on the package root: its libraries sit in lib/, one
        // level down, so libghost.so.1 stays missing and the build fails.
        let p = prebuilt();
        let root = p.ghost.to_str().unwrap();
        let out = with_add(
            &p,
            &format!("addAutoPatchelfSearchPath --no-recurse {root}"),
            attrs,
        );
        assert!(!out.status.success(), "{attrs:?}: {}", text(&out));
        assert!(text(&out).contains("libghost.so.1"), "{}", text(&out));
        // Flags, then `--`, then several roots; the dir, not the root.
        let p = prebuilt();
        let ghost = p.ghost.join("lib");
        let add = format!(
            "addAutoPatchelfSearchPath --no-recurse -- {} {}",
            p.w.store.scratch().join("no-such-root").display(),
            ghost.display()
        );
        let out = with_add(&p, &add, attrs);
        assert!(out.status.success(), "{attrs:?}: {}", text(&out));
        assert_eq!(extra_rp(&p), ghost.to_str().unwrap(), "{attrs:?}");
        // Recursive (the default) from further up: the store dir itself.
        let p = prebuilt();
        let add = format!("addAutoPatchelfSearchPath {}", p.ghost.display());
        let out = with_add(&p, &add, attrs);
        assert!(out.status.success(), "{attrs:?}: {}", text(&out));
        assert_eq!(extra_rp(&p), p.ghost.join("lib").to_str().unwrap());
        // An unknown flag fails the phase that called it.
        let p = prebuilt();
        let out = with_add(
            &p,
            &format!("addAutoPatchelfSearchPath --bogus {root}"),
            attrs,
        );
        assert!(!out.status.success(), "{attrs:?}: {}", text(&out));
        assert!(
            text(&out).contains("addAutoPatchelfSearchPath: ") && text(&out).contains("--bogus"),
            "{}",
            text(&out)
        );
        // No root: the working dir of the call, kept as an absolute dir.
        let p = prebuilt();
        let add = format!(
            "pushd {} >/dev/null; addAutoPatchelfSearchPath --no-recurse; popd >/dev/null",
            ghost.display()
        );
        let out = with_add(&p, &add, attrs);
        assert!(out.status.success(), "{attrs:?}: {}", text(&out));
        assert_eq!(extra_rp(&p), ghost.to_str().unwrap(), "{attrs:?}");
    }
}

//! A self-contained scenario for `unfarm demo`: a small store in a plain
//! directory (split `lib`/`dev`/`static` outputs, a CUDA-like library with a
//! `stubs` output holding a fake `libcuda.so`, a symlink farm joining them
//! all) and an app whose RUNPATHs go through the farm and its stubs dir,
//! built with the system C compiler. No Nix and no network needed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::closure::{ClosureError, scan_closure};
use crate::store::{HASH_LEN, NIX_BASE32, StoreDir};

/// Why the demo scenario could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A file or directory of the scenario could not be written or read.
    #[error("{}: {}", path.display(), crate::walk::io_message(source))]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error from the system.
        source: std::io::Error,
    },
    /// The C compiler could not be started.
    #[error(
        "{cc}: cannot run the C compiler (--cc): {}",
        crate::walk::io_message(source)
    )]
    NoCompiler {
        /// The compiler asked for (`--cc`).
        cc: String,
        /// The file it was to build.
        out: PathBuf,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// The C compiler failed on one of the scenario's sources.
    #[error("{}: {cc} failed:\n{stderr}", out.display())]
    Compile {
        /// The compiler (`--cc`).
        cc: String,
        /// The file it was to build.
        out: PathBuf,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The scenario's closure could not be computed.
    #[error(transparent)]
    Closure(#[from] ClosureError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A real-looking, deterministic 32-char hash part for `name`.
pub(crate) fn fake_hash(name: &str) -> String {
    // FNV-1a, then a xorshift stream: stable, and distinct per name.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    (0..HASH_LEN)
        .map(|_| {
            h ^= h << 13;
            h ^= h >> 7;
            h ^= h << 17;
            NIX_BASE32[(h % 32) as usize] as char
        })
        .collect()
}

/// The store paths of the scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The scenario's store dir (under the root given to [`build`]).
    pub store: StoreDir,
    pub(crate) foo_lib: PathBuf,
    pub(crate) foo_dev: PathBuf,
    pub(crate) foo_static: PathBuf,
    pub(crate) cuda_lib: PathBuf,
    pub(crate) cuda_stubs: PathBuf,
    pub(crate) farm: PathBuf,
    /// The app's output: the package whose RUNPATHs go through the farm.
    pub app: PathBuf,
}

/// One program of the app and what it must print.
pub(crate) const PROGRAMS: [(&str, &str); 3] = [
    ("bin/app", "app 42"),
    ("bin/dl", "dl 7"),
    ("bin/orig", "orig 41"),
];

/// The result of running one program.
#[derive(Clone, Debug)]
pub struct ProgramRun {
    /// The program run.
    pub path: PathBuf,
    /// True when it ran and printed what it must.
    pub ok: bool,
    /// What it printed (or why it could not run).
    pub output: String,
}

fn write(path: &Path, text: &str) -> Result<(), DemoError> {
    std::fs::write(path, text).map_err(io(path))
}

fn mkdir(path: &Path) -> Result<(), DemoError> {
    std::fs::create_dir_all(path).map_err(io(path))
}

fn symlink(target: &Path, link: &Path) -> Result<(), DemoError> {
    std::os::unix::fs::symlink(target, link).map_err(io(link))
}

fn cc(cc: &str, out: &Path, args: &[&str]) -> Result<(), DemoError> {
    let o = Command::new(cc)
        .args(args)
        .arg("-o")
        .arg(out)
        .output()
        .map_err(|source| DemoError::NoCompiler {
            cc: cc.to_string(),
            out: out.to_owned(),
            source,
        })?;
    if !o.status.success() {
        return Err(DemoError::Compile {
            cc: cc.to_string(),
            out: out.to_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        });
    }
    Ok(())
}

/// 200 KB of filler so each output has a visible size.
fn pad(path: &Path) -> Result<(), DemoError> {
    std::fs::write(path, vec![0u8; 200_000]).map_err(io(path))
}

/// Build the scenario under `root` (created; `root/store` is the store dir,
/// `root/src` holds the C sources) with the C compiler `compiler`.
pub fn build(root: &Path, compiler: &str) -> Result<Scenario, DemoError> {
    let store_dir = root.join("store");
    let src = root.join("src");
    mkdir(&store_dir)?;
    mkdir(&src)?;
    let sp = |name: &str| store_dir.join(format!("{}-{name}", fake_hash(name)));
    let s = Scenario {
        store: StoreDir::new(&store_dir),
        foo_lib: sp("foo-1.2.3-lib"),
        foo_dev: sp("foo-1.2.3-dev"),
        foo_static: sp("foo-1.2.3-static"),
        cuda_lib: sp("cudalike-12.0-lib"),
        cuda_stubs: sp("cudalike-12.0-stubs"),
        farm: sp("foo-cuda-farm"),
        app: sp("app-1.0"),
    };
    let b = Builder { compiler, src };
    b.foo(&s)?;
    b.cudalike(&s)?;
    b.farm(&s)?;
    b.app(&s)?;
    Ok(s)
}

/// The compiler and the dir the C sources go to.
struct Builder<'a> {
    compiler: &'a str,
    src: PathBuf,
}

/// `p/rel`, created.
fn subdir(p: &Path, rel: &str) -> Result<PathBuf, DemoError> {
    let q = p.join(rel);
    mkdir(&q)?;
    Ok(q)
}

impl Builder<'_> {
    /// Write the C source `name`; its path, for the compiler.
    fn source(&self, name: &str, text: &str) -> Result<String, DemoError> {
        let p = self.src.join(name);
        write(&p, text)?;
        Ok(p.to_string_lossy().into_owned())
    }

    /// A shared library `out` with `soname` from the source `text`.
    fn library(&self, out: &Path, soname: &str, name: &str, text: &str) -> Result<(), DemoError> {
        let c = self.source(name, text)?;
        let so = format!("-Wl,-soname,{soname}");
        cc(self.compiler, out, &["-shared", "-fPIC", &so, &c])
    }

    /// foo: lib, dev (headers, linker name), static (archive).
    fn foo(&self, s: &Scenario) -> Result<(), DemoError> {
        let lib = subdir(&s.foo_lib, "lib")?;
        self.library(
            &lib.join("libfoo.so.1.2.3"),
            "libfoo.so.1",
            "foo.c",
            "int foo(void){return 40;}\n",
        )?;
        symlink(Path::new("libfoo.so.1.2.3"), &lib.join("libfoo.so.1"))?;
        let inc = subdir(&s.foo_dev, "include")?;
        write(&inc.join("foo.h"), "int foo(void);\n")?;
        pad(&inc.join("foo-big.h"))?;
        symlink(
            &lib.join("libfoo.so.1"),
            &subdir(&s.foo_dev, "lib")?.join("libfoo.so"),
        )?;
        pad(&subdir(&s.foo_static, "lib")?.join("libfoo.a"))
    }

    /// cudalike: a toolkit library, a library only dlopen()ed, a stub driver.
    fn cudalike(&self, s: &Scenario) -> Result<(), DemoError> {
        let clib = subdir(&s.cuda_lib, "lib")?;
        self.library(
            &clib.join("libcublas.so.12"),
            "libcublas.so.12",
            "cublas.c",
            "int cublas(void){return 2;}\n",
        )?;
        self.library(
            &clib.join("libnvrtc-builtins.so.12"),
            "libnvrtc-builtins.so.12",
            "builtins.c",
            "int builtins(void){return 7;}\n",
        )?;
        let stubs = subdir(&s.cuda_stubs, "lib/stubs")?;
        self.library(
            &stubs.join("libcuda.so"),
            "libcuda.so.1",
            "cuda.c",
            "int cuInit(int x){return 999;}\n",
        )?;
        pad(&stubs.join("stub-data"))
    }

    /// The farm: symlinks to every output, as symlinkJoin makes them.
    fn farm(&self, s: &Scenario) -> Result<(), DemoError> {
        let flib = subdir(&s.farm, "lib")?;
        let fstubs = subdir(&s.farm, "lib/stubs")?;
        let finc = subdir(&s.farm, "include")?;
        for dir in [
            &s.foo_lib.join("lib"),
            &s.foo_dev.join("lib"),
            &s.foo_static.join("lib"),
            &s.cuda_lib.join("lib"),
        ] {
            for e in std::fs::read_dir(dir).map_err(io(dir))? {
                let e = e.map_err(io(dir))?;
                symlink(&e.path(), &flib.join(e.file_name()))?;
            }
        }
        let stubs = s.cuda_stubs.join("lib/stubs");
        let inc = s.foo_dev.join("include");
        symlink(&stubs.join("libcuda.so"), &fstubs.join("libcuda.so"))?;
        symlink(&stubs.join("stub-data"), &fstubs.join("stub-data"))?;
        symlink(&inc.join("foo.h"), &finc.join("foo.h"))?;
        symlink(&inc.join("foo-big.h"), &finc.join("foo-big.h"))
    }

    /// The app, linked through the farm (and its stubs dir): a library, a
    /// program using foo and cublas, one dlopen()ing a library by name, one
    /// finding the app's library through `$ORIGIN`.
    fn app(&self, s: &Scenario) -> Result<(), DemoError> {
        let f = s.farm.display().to_string();
        let abin = subdir(&s.app, "bin")?;
        let alib = subdir(&s.app, "lib")?;
        let core_c = self.source(
            "core.c",
            "int foo(void);\nint core(void){return foo() + 1;}\n",
        )?;
        let rp_farm = format!("-Wl,-rpath,{f}/lib");
        let rp_both = format!("-Wl,-rpath,{f}/lib:{f}/lib/stubs");
        let lflag = format!("-L{f}/lib");
        let new_dtags = "-Wl,--enable-new-dtags";
        cc(
            self.compiler,
            &alib.join("libappcore.so"),
            &[
                "-shared",
                "-fPIC",
                "-Wl,-soname,libappcore.so",
                &core_c,
                &lflag,
                "-lfoo",
                new_dtags,
                &rp_farm,
            ],
        )?;
        let app_c = self.source(
            "app.c",
            "#include <stdio.h>\nint foo(void); int cublas(void);\n\
             int main(void){ printf(\"app %d\\n\", foo() + cublas()); return foo() + cublas() == 42 ? 0 : 1; }\n",
        )?;
        cc(
            self.compiler,
            &abin.join("app"),
            &[
                &app_c,
                &lflag,
                "-lfoo",
                "-l:libcublas.so.12",
                new_dtags,
                &rp_both,
            ],
        )?;
        let dl_c = self.source(
            "dl.c",
            "#include <dlfcn.h>\n#include <stdio.h>\n\
             int main(void){ void *h = dlopen(\"libnvrtc-builtins.so.12\", RTLD_NOW);\n\
             if (!h) { printf(\"dlopen failed: %s\\n\", dlerror()); return 1; }\n\
             int (*f)(void) = (int (*)(void))dlsym(h, \"builtins\");\n\
             printf(\"dl %d\\n\", f()); return f() == 7 ? 0 : 1; }\n",
        )?;
        cc(
            self.compiler,
            &abin.join("dl"),
            &[&dl_c, "-ldl", new_dtags, &rp_both],
        )?;
        let orig_c = self.source(
            "orig.c",
            "#include <stdio.h>\nint core(void);\n\
             int main(void){ printf(\"orig %d\\n\", core()); return core() == 41 ? 0 : 1; }\n",
        )?;
        let lapp = format!("-L{}", alib.display());
        let rp_orig = format!("-Wl,-rpath,$ORIGIN/../lib:{f}/lib");
        cc(
            self.compiler,
            &abin.join("orig"),
            &[&orig_c, &lapp, "-lappcore", new_dtags, &rp_orig],
        )
    }
}

impl Scenario {
    /// Every store path with a short label, for the report.
    pub fn labelled(&self) -> Vec<(&'static str, &Path)> {
        vec![
            ("lib output", &self.foo_lib),
            ("dev output (headers, linker name)", &self.foo_dev),
            ("static output (archives)", &self.foo_static),
            ("CUDA-like lib output", &self.cuda_lib),
            ("stubs output (fake libcuda.so)", &self.cuda_stubs),
            ("symlink farm", &self.farm),
            ("app", &self.app),
        ]
    }

    /// Run every program of the app (with a clean LD_LIBRARY_PATH).
    pub fn run_programs(&self) -> Vec<ProgramRun> {
        PROGRAMS
            .iter()
            .map(|(rel, want)| {
                let path = self.app.join(rel);
                match Command::new(&path).env_remove("LD_LIBRARY_PATH").output() {
                    Ok(o) => {
                        let mut output = String::from_utf8_lossy(&o.stdout).trim().to_string();
                        let err = String::from_utf8_lossy(&o.stderr);
                        if !err.trim().is_empty() {
                            let _ = write!(output, " [stderr: {}]", err.trim());
                        }
                        ProgramRun {
                            ok: o.status.success() && output == *want,
                            path,
                            output,
                        }
                    }
                    Err(e) => ProgramRun {
                        ok: false,
                        output: format!("cannot run: {e}"),
                        path,
                    },
                }
            })
            .collect()
    }

    /// The ELF files of the app and their RUNPATH (or RPATH), sorted.
    pub fn runpaths(&self) -> Result<Vec<(PathBuf, String)>, DemoError> {
        let mut out = Vec::new();
        for dir in ["bin", "lib"] {
            let d = self.app.join(dir);
            let mut names: Vec<PathBuf> = std::fs::read_dir(&d)
                .map_err(io(&d))?
                .map(|e| e.map(|e| e.path()).map_err(io(&d)))
                .collect::<Result<_, _>>()?;
            names.sort();
            for f in names {
                let facts = crate::elf::read_facts(&f).map_err(|e| DemoError::Io {
                    path: f.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?;
                let rp = facts.runpath.or(facts.rpath).unwrap_or_default();
                out.push((f, rp));
            }
        }
        Ok(out)
    }

    /// The app's runtime closure (by scanning the plain-dir store, as Nix
    /// scans outputs): each path and its NAR size, and the total.
    pub fn closure(&self) -> Result<(Vec<(PathBuf, u64)>, u64), DemoError> {
        let g = scan_closure(&self.store, std::slice::from_ref(&self.app))?;
        let root: Vec<usize> = g.id(&self.app).into_iter().collect();
        let ids = g.closure(&root);
        let mut paths: Vec<(PathBuf, u64)> = ids
            .iter()
            .map(|&i| (g.node(i).path.clone(), g.node(i).nar_size))
            .collect();
        paths.sort();
        Ok((paths, g.closure_size(&root)))
    }
}

#[cfg(test)]
mod tests {
    use super::{NIX_BASE32, fake_hash};

    #[test]
    fn fake_hashes_look_real_and_differ() {
        let a = fake_hash("foo-1.2.3-lib");
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| NIX_BASE32.contains(&b)), "{a}");
        assert_ne!(a, fake_hash("foo-1.2.3-dev"));
        assert_eq!(a, fake_hash("foo-1.2.3-lib"));
    }
}

//! Fixture kit shared by the integration tests (`mod common;` in each).
//!
//! * [`Store`]: a temporary Nix store dir with real-looking store paths
//!   (`<32 nixbase32 chars>-<name>`, the hash derived from the name), outputs,
//!   symlinks and `symlinkJoin`-like farms (absolute or relative links, farms
//!   of farms, farms whose `lib` is itself a link).
//! * [`Cc`]: compile C with the host `gcc` (or a cross gcc) into shared
//!   libraries laid out like a Nix `lib` output (versioned file + SONAME link),
//!   static archives, and executables linked with RUNPATH or RPATH.
//! * Oracles: [`ld_so_list`] (glibc's `ld.so --list`), [`readelf_dynamic`],
//!   [`run`] for running built programs.
//! * [`Store::unfarm`] / [`unfarm`]: run the built `unfarm` binary, and
//!   [`Run::json`] to parse `--json` output.
//!
//! Missing tools make tests fail with a clear message; nothing is skipped.

#![allow(dead_code)]

pub mod nix;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::symlink;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

pub use unfarm::store::{HASH_LEN, NIX_BASE32};

/// The setup hook every hook test runs, and the script `nix/hook.nix`
/// installs (`tests/full/nix_files.rs` checks the latter).
pub const HOOK_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/nix/unfarm-hook.sh");

/// The host's dynamic loader.
pub const LD_SO: &str = "/lib64/ld-linux-x86-64.so.2";

/// Fail (never skip) unless every tool runs.
pub fn require_tools(tools: &[&str]) {
    for t in tools {
        let ok = Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "required tool `{t}` is not available on PATH; install it \
             (the fast tier: gcc and binutils; the full tier: scripts/test.sh) — \
             these tests fail rather than skip"
        );
    }
}

/// A committed file under `tests/fixtures` (foreign-architecture builds the
/// fast tier reads instead of running a cross compiler; `build.sh` there
/// regenerates them).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A deterministic 32-character Nix base32 hash part for `name`.
pub fn nix_hash(name: &str) -> String {
    // FNV-1a over the name, then a 64-bit LCG stream: stable across runs and
    // platforms, distinct for distinct names in practice.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (0..HASH_LEN)
        .map(|_| {
            h = h
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            NIX_BASE32[(h >> 59) as usize] as char
        })
        .collect()
}

/// How a farm links to its members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkStyle {
    /// `/store/<hash>-foo-lib/lib/libfoo.so.1` (what `symlinkJoin` makes).
    Absolute,
    /// `../../<hash>-foo-lib/lib/libfoo.so.1`.
    Relative,
}

/// A temporary store dir. Dropped with the test.
pub struct Store {
    _tmp: tempfile::TempDir,
    /// The store dir (`<tmp>/store`), canonical.
    dir: PathBuf,
    /// Scratch space outside the store, for C sources and objects.
    scratch: PathBuf,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Store {
        let tmp = tempfile::tempdir().expect("create temp dir");
        let root = tmp.path().canonicalize().expect("canonicalize temp dir");
        let dir = root.join("store");
        let scratch = root.join("scratch");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&scratch).unwrap();
        Store {
            _tmp: tmp,
            dir,
            scratch,
        }
    }

    /// The store dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store dir as the library models it.
    pub fn store_dir(&self) -> unfarm::store::StoreDir {
        unfarm::store::StoreDir::new(&self.dir)
    }

    /// Scratch dir outside the store.
    pub fn scratch(&self) -> &Path {
        &self.scratch
    }

    /// `<store>/<hash(name)>-<name>` (not created).
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}-{name}", nix_hash(name)))
    }

    /// Create an output `<store>/<hash>-<name>` (e.g. `foo-1.0-lib`) and
    /// return its path. Idempotent.
    pub fn output(&self, name: &str) -> PathBuf {
        let p = self.path_of(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// Create a symlink `link -> target` (parents created).
    pub fn symlink(&self, target: impl AsRef<Path>, link: impl AsRef<Path>) {
        let link = link.as_ref();
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        symlink(target.as_ref(), link)
            .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
    }

    /// A `symlinkJoin`-like farm: a store path `name` whose tree mirrors the
    /// union of `members` (real directories, one link per file or symlink,
    /// first member wins on conflicts, like `lndir -silent`). Members may be
    /// farms themselves (farm of farms: links point at the inner farm's links).
    pub fn farm(&self, name: &str, members: &[&Path], style: LinkStyle) -> PathBuf {
        let out = self.output(name);
        for m in members {
            join_into(m, &out, style);
        }
        out
    }

    /// `unfarm fix EXTRA... --interpreter INTERP OUT` in this store.
    pub fn fix_interpreter(&self, extra: &[&str], interp: impl AsRef<OsStr>, out: &Path) -> Run {
        let mut args: Vec<&OsStr> = vec!["fix".as_ref()];
        args.extend(extra.iter().map(OsStr::new));
        args.extend(["--interpreter".as_ref(), interp.as_ref(), out.as_os_str()]);
        self.unfarm(args)
    }

    /// Run the built `unfarm` with `--store-dir` set to this store.
    pub fn unfarm<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all: Vec<OsString> = vec!["--store-dir".into(), self.dir.clone().into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        unfarm(all)
    }
}

/// Mirror `src` into `dst` (lndir): dirs are created, everything else linked.
fn join_into(src: &Path, dst: &Path, style: LinkStyle) {
    std::fs::create_dir_all(dst).unwrap();
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .unwrap_or_else(|e| panic!("read {}: {e}", src.display()))
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let from = e.path();
        let to = dst.join(e.file_name());
        // A real directory is descended into; a symlink (even to a dir) is
        // linked as is, as lndir does with its own links.
        if e.file_type().unwrap().is_dir() {
            if to.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
                continue;
            }
            join_into(&from, &to, style);
        } else if to.symlink_metadata().is_err() {
            let target = match style {
                LinkStyle::Absolute => from.clone(),
                LinkStyle::Relative => relative_to(&from, to.parent().unwrap()),
            };
            symlink(&target, &to).unwrap();
        }
    }
}

/// A relative path from dir `base` to `target` (both absolute, no `..`).
pub fn relative_to(target: &Path, base: &Path) -> PathBuf {
    let t: Vec<Component> = target.components().collect();
    let b: Vec<Component> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut p = PathBuf::new();
    for _ in common..b.len() {
        p.push("..");
    }
    for c in &t[common..] {
        p.push(c);
    }
    p
}

/// DT_RPATH or DT_RUNPATH for linked objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtags {
    /// `-Wl,--enable-new-dtags`: DT_RUNPATH (the default here).
    Runpath,
    /// `-Wl,--disable-new-dtags`: DT_RPATH.
    Rpath,
}

/// A C compile-and-link recipe. Cheap to clone; each build method runs the
/// compiler once.
#[derive(Clone, Debug)]
pub struct Cc {
    compiler: String,
    link_dirs: Vec<PathBuf>,
    libs: Vec<String>,
    search: Vec<String>,
    dtags: Dtags,
    extra: Vec<OsString>,
}

static SRC_COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Cc {
    /// The host `gcc` (x86_64).
    pub fn gcc() -> Cc {
        Cc::with("gcc")
    }

    /// Another compiler, e.g. `aarch64-linux-gnu-gcc`.
    pub fn with(compiler: &str) -> Cc {
        Cc {
            compiler: compiler.to_owned(),
            link_dirs: Vec::new(),
            libs: Vec::new(),
            search: Vec::new(),
            dtags: Dtags::Runpath,
            extra: Vec::new(),
        }
    }

    /// `-L dir`.
    pub fn link_dir(mut self, dir: impl AsRef<Path>) -> Cc {
        self.link_dirs.push(dir.as_ref().to_owned());
        self
    }

    /// `-l name`: links `lib<name>.so` found through [`Cc::link_dir`] (a
    /// `dev` output's linker name), or with `:file` that exact file name
    /// (`lib(":libfoo.so.1")`, for `lib` outputs that have no `libfoo.so`).
    pub fn lib(mut self, name: &str) -> Cc {
        self.libs.push(name.to_owned());
        self
    }

    /// One RUNPATH/RPATH entry (`-Wl,-rpath,entry`), in order; `$ORIGIN`
    /// is passed through literally.
    pub fn search(mut self, entry: impl AsRef<OsStr>) -> Cc {
        self.search
            .push(entry.as_ref().to_string_lossy().into_owned());
        self
    }

    /// Record the search entries as DT_RUNPATH (default) or DT_RPATH.
    pub fn dtags(mut self, d: Dtags) -> Cc {
        self.dtags = d;
        self
    }

    /// Any other compiler argument.
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Cc {
        self.extra.push(a.as_ref().to_owned());
        self
    }

    fn write_source(&self, dir: &Path, source: &str) -> PathBuf {
        let n = SRC_COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = dir.join(format!("src{n}.c"));
        std::fs::write(&p, source).unwrap();
        p
    }

    fn run(&self, args: Vec<OsString>) {
        let out = Command::new(&self.compiler)
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run `{}` (is it installed?): {e}", self.compiler));
        assert!(
            out.status.success(),
            "{} {:?} failed:\n{}",
            self.compiler,
            args,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn link_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        for d in &self.link_dirs {
            a.push("-L".into());
            a.push(d.into());
        }
        for l in &self.libs {
            a.push(format!("-l{l}").into());
        }
        if !self.search.is_empty() {
            a.push(
                match self.dtags {
                    Dtags::Runpath => "-Wl,--enable-new-dtags",
                    Dtags::Rpath => "-Wl,--disable-new-dtags",
                }
                .into(),
            );
            for s in &self.search {
                a.push(format!("-Wl,-rpath,{s}").into());
            }
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    /// Build `<dir>/lib<name>.so.<version>` with SONAME `lib<name>.so.<major>`
    /// (major = first component of `version`) and the SONAME link next to it,
    /// as a Nix `lib` output holds them. Returns the real file.
    pub fn shared_lib(&self, dir: &Path, name: &str, version: &str, source: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let major = version.split('.').next().unwrap();
        let soname = format!("lib{name}.so.{major}");
        let file = dir.join(format!("lib{name}.so.{version}"));
        let src = self.write_source(dir.parent().unwrap_or(dir), source);
        let mut args: Vec<OsString> = vec![
            "-shared".into(),
            "-fPIC".into(),
            "-o".into(),
            file.clone().into(),
            src.clone().into(),
            format!("-Wl,-soname,{soname}").into(),
        ];
        args.extend(self.link_args());
        self.run(args);
        std::fs::remove_file(src).unwrap();
        if soname != file.file_name().unwrap().to_str().unwrap() {
            symlink(file.file_name().unwrap(), dir.join(&soname)).unwrap();
        }
        file
    }

    /// A static archive `<dir>/lib<name>.a` (compiled with `-c`, then `ar`).
    pub fn static_lib(&self, dir: &Path, name: &str, source: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let src = self.write_source(dir, source);
        let obj = src.with_extension("o");
        self.run(vec![
            "-c".into(),
            "-fPIC".into(),
            "-o".into(),
            obj.clone().into(),
            src.clone().into(),
        ]);
        let a = dir.join(format!("lib{name}.a"));
        let out = Command::new("ar")
            .arg("rcs")
            .arg(&a)
            .arg(&obj)
            .output()
            .expect("cannot run `ar` (binutils)");
        assert!(out.status.success(), "ar failed: {out:?}");
        std::fs::remove_file(src).unwrap();
        std::fs::remove_file(obj).unwrap();
        a
    }

    /// An executable at `path` (parents created).
    pub fn executable(&self, path: &Path, source: &str) -> PathBuf {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let src = self.write_source(path.parent().unwrap(), source);
        let mut args: Vec<OsString> = vec!["-o".into(), path.into(), src.clone().into()];
        args.extend(self.link_args());
        self.run(args);
        std::fs::remove_file(src).unwrap();
        path.to_owned()
    }
}

/// The `dev` output's linker name: `<dev>/lib/lib<name>.so -> <soname link>`
/// (absolute, into the lib output). Returns the link.
pub fn dev_link(dev: &Path, name: &str, soname_link: &Path) -> PathBuf {
    let link = dev.join("lib").join(format!("lib{name}.so"));
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    symlink(soname_link, &link).unwrap();
    link
}

/// The SONAME link next to a versioned file from [`Cc::shared_lib`]
/// (`libfoo.so.1.2.3` -> `libfoo.so.1`).
pub fn soname_link(file: &Path) -> PathBuf {
    let n = file.file_name().unwrap().to_str().unwrap();
    let (stem, ver) = n.split_once(".so.").expect("versioned library name");
    let major = ver.split('.').next().unwrap();
    file.with_file_name(format!("{stem}.so.{major}"))
}

/// C source of a library exporting `int <sym>(void)` returning `value`.
pub fn lib_source(sym: &str, value: i32) -> String {
    format!("int {sym}(void) {{ return {value}; }}\n")
}

/// C source of a library whose `int <sym>(void)` calls `int <callee>(void)`
/// (so it needs the library providing `callee`).
pub fn lib_calling(sym: &str, callee: &str) -> String {
    format!("int {callee}(void);\nint {sym}(void) {{ return {callee}() + 1; }}\n")
}

/// C source of a program printing the sum of calls to `syms`.
pub fn exe_calling(syms: &[&str]) -> String {
    let mut s = String::from("#include <stdio.h>\n");
    for f in syms {
        s.push_str(&format!("int {f}(void);\n"));
    }
    s.push_str("int main(void) { int r = 0;\n");
    for f in syms {
        s.push_str(&format!("  r += {f}();\n"));
    }
    s.push_str("  printf(\"%d\\n\", r); return 0; }\n");
    s
}

/// C source of a program that `dlopen()`s `soname`, calls `int <sym>(void)`
/// and prints the result; exits 1 with dlerror() when the open fails.
pub fn exe_dlopen(soname: &str, sym: &str) -> String {
    format!(
        r#"#include <dlfcn.h>
#include <stdio.h>
int main(void) {{
  void *h = dlopen("{soname}", RTLD_NOW);
  if (!h) {{ fprintf(stderr, "%s\n", dlerror()); return 1; }}
  int (*f)(void) = (int (*)(void))dlsym(h, "{sym}");
  if (!f) {{ fprintf(stderr, "%s\n", dlerror()); return 1; }}
  printf("%d\n", f());
  return 0;
}}
"#
    )
}

/// What one run of a program printed.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_output(o: Output) -> Run {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Assert exit 0 and return self.
    pub fn success(self) -> Run {
        assert_eq!(self.code, Some(0), "command failed: {self:#?}");
        self
    }

    /// Parse stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// Run the built `unfarm` binary (no `--store-dir` added).
pub fn unfarm<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let o = Command::new(env!("CARGO_BIN_EXE_unfarm"))
        .args(args)
        .env_remove("NIX_STORE")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("run unfarm");
    Run::from_output(o)
}

/// `cmd.output()`, retrying while the program cannot start with ETXTBSY: a
/// program written a moment ago stays "busy" while another test thread that
/// forked during the write holds a copy of the writer's descriptor (until its
/// own exec). That is the test harness, not the file.
pub fn output_retrying(cmd: &mut Command) -> std::io::Result<Output> {
    let mut tries = 0;
    loop {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

/// Run `program ARGS` in `cwd` under `timeout -s KILL SECS` (stdin closed,
/// `LC_ALL=C`): its exit code and stdout. A file just written may be
/// ETXTBSY for a moment while another thread forks (`timeout` then exits
/// 126 and says so): that is retried, nothing else.
pub fn bounded_run(cwd: &Path, program: &Path, args: &[&str], secs: &str) -> (Option<i32>, String) {
    for _ in 0..100 {
        let out = Command::new("timeout")
            .args(["-s", "KILL", secs])
            .arg(program)
            .args(args)
            .current_dir(cwd)
            .stdin(std::process::Stdio::null())
            .env("LC_ALL", "C")
            .output()
            .expect("timeout (coreutils) is required");
        if out.status.code() == Some(126)
            && String::from_utf8_lossy(&out.stderr).contains("Text file busy")
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        }
        return (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        );
    }
    panic!("{}: still ETXTBSY after 100 tries", program.display());
}

/// Run a program with a clean environment (plus `env`).
pub fn run(program: &Path, env: &[(&str, &str)]) -> Run {
    let o = output_retrying(Command::new(program).env_clear().envs(env.iter().copied()))
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    Run::from_output(o)
}

/// What `ld.so --list` said about one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listed {
    /// `name => path (0x...)`: the path as ld.so opened it.
    Path(PathBuf),
    /// `name => not found`.
    NotFound,
}

/// The parsed output of `ld.so --list FILE`.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// `name => ...` lines, keyed by the name the object was first loaded by
    /// (ld.so prints each object once).
    pub by_name: HashMap<String, Listed>,
    /// Lines without `=>`: `linux-vdso.so.1`, the interpreter's path.
    pub bare: Vec<String>,
}

impl Listing {
    /// The canonical real path ld.so loaded for `name`, if it printed one.
    pub fn real(&self, name: &str) -> Option<PathBuf> {
        match self.by_name.get(name)? {
            Listed::Path(p) => std::fs::canonicalize(p).ok(),
            Listed::NotFound => None,
        }
    }
}

/// Parse `ld.so --list` output.
pub fn parse_listing(out: &str) -> Listing {
    let mut l = Listing::default();
    for line in out.lines().map(str::trim).filter(|s| !s.is_empty()) {
        if let Some((name, rest)) = line.split_once(" => ") {
            let v = if rest.trim() == "not found" {
                Listed::NotFound
            } else {
                let p = rest.rsplit_once(" (0x").map_or(rest, |(p, _)| p);
                Listed::Path(PathBuf::from(p.trim()))
            };
            l.by_name.entry(name.to_owned()).or_insert(v);
        } else {
            let p = line.rsplit_once(" (0x").map_or(line, |(p, _)| p);
            l.bare.push(p.to_owned());
        }
    }
    l
}

/// Run the real loader in trace mode with a clean environment plus `env`:
/// `LD_TRACE_LOADED_OBJECTS=1 ld.so FILE`, the same trace mode as
/// `ld.so --list FILE` and `ldd`. (glibc 2.36's `--list` stops at the first
/// missing library with "cannot open shared object file" instead of printing
/// `name => not found`; the environment variable gives the full listing.)
/// `Err` carries ld.so's message when it stops.
pub fn ld_so_list(file: &Path, env: &[(&str, &str)]) -> Result<Listing, String> {
    let out = Command::new(LD_SO)
        .arg(file)
        .env_clear()
        .env("LD_TRACE_LOADED_OBJECTS", "1")
        .envs(env.iter().copied())
        .output()
        .map_err(|e| format!("cannot run {LD_SO}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{LD_SO} --list {} failed ({}): {}",
            file.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(parse_listing(&String::from_utf8_lossy(&out.stdout)))
}

/// The `glibc-hwcaps` subdirs `ld.so --help` reports as "supported,
/// searched", in priority order.
pub fn supported_hwcaps(ld_so: &str) -> Vec<String> {
    let out = Command::new(ld_so)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("run {ld_so} --help: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut in_section = false;
    let mut v = Vec::new();
    for line in text.lines() {
        if line.starts_with("Subdirectories of glibc-hwcaps") {
            in_section = true;
            continue;
        }
        if in_section {
            if !line.starts_with("  ") {
                break;
            }
            if line.contains("supported, searched") {
                v.push(line.split_whitespace().next().unwrap().to_owned());
            }
        }
    }
    v
}

/// One dynamic tag's string value per `readelf -d` (e.g. `RUNPATH`,
/// `RPATH`, `SONAME`; the first `NEEDED` only — see [`readelf_needed`]).
pub fn readelf_dynamic(file: &Path, tag: &str) -> Option<String> {
    readelf_values(file, tag).into_iter().next()
}

/// Every DT_NEEDED per `readelf -d`, in order.
pub fn readelf_needed(file: &Path) -> Vec<String> {
    readelf_values(file, "NEEDED")
}

fn readelf_values(file: &Path, tag: &str) -> Vec<String> {
    let out = Command::new("readelf")
        .arg("-dW")
        .arg(file)
        .output()
        .expect("cannot run readelf (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("({tag})");
    text.lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
        .filter_map(|l| {
            let (_, rest) = l.split_once(": [")?;
            Some(rest.strip_suffix(']')?.to_owned())
        })
        .collect()
}

/// The keys of a JSON object (for schema tests).
pub fn json_keys(v: &serde_json::Value) -> std::collections::BTreeSet<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// A set of strings (for comparing with [`json_keys`]).
pub fn str_set<'a>(v: &[&'a str]) -> std::collections::BTreeSet<&'a str> {
    v.iter().copied().collect()
}

/// eu-elflint's complaints about `p` (`--gnu-ld`), with the file name taken
/// out, so the sets for an original and its edited copy compare.
pub fn elflint(p: &Path) -> std::collections::BTreeSet<String> {
    let out = Command::new("eu-elflint")
        .arg("--gnu-ld")
        .arg(p)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("eu-elflint (elfutils) is required");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let name = p.display().to_string();
    text.lines()
        .map(|l| l.replace(&name, "FILE"))
        .filter(|l| !l.trim().is_empty() && !l.contains("No errors"))
        .collect()
}

/// The PyPI wheels' files `scripts/pypi-wheels.sh` unpacked (jax-cuda12-plugin,
/// jax-cuda12-pjrt, cuDNN 9): `$UNFARM_PYPI_WHEELS/x`, else
/// `target/pypi-wheels/x`. Missing, the test fails: the script must run first.
pub fn pypi_unpacked() -> PathBuf {
    let dir = std::env::var_os("UNFARM_PYPI_WHEELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pypi-wheels"))
        .join("x");
    assert!(
        dir.join("jax_cuda12_plugin/_versions.so").is_file(),
        "{}: no unpacked wheels; run scripts/pypi-wheels.sh",
        dir.display()
    );
    dir
}

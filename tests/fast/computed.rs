//! Computed-name recognisers (`loader::computed`) on gcc-built fixtures that
//! carry the same evidence as the real binaries: a TSL
//! `DsoLoader::Get<X>DsoHandle` function building `lib<stem>.so.<ver>` at run
//! time, a cuDNN-like library holding unversioned sub-library literals, and
//! cuDNN- and PyTorch-shaped libraries building `libnvrtc.so.12` at run time.
//! The real PyPI binaries are checked in the full tier.

use crate::common;

use std::ffi::OsString;
use std::path::Path;

use common::{Cc, LinkStyle, Store, lib_source};
use serde_json::Value;

const TOOLS: &[&str] = &["gcc", "readelf"];

/// A program with TSL's DsoLoader shape: `tsl::internal::DsoLoader::
/// GetNcclDsoHandle()` calls a name builder with the stem and a version
/// `string_view` (length in `rdx`, pointer in `rcx`), so neither
/// `libnccl.so.2` nor any soname literal is in the file.
pub(crate) const TSL_EXE: &str = r#"#include <dlfcn.h>
#include <stdio.h>
#include <stddef.h>
__attribute__((noipa)) void *get_dso_handle(void *status, const char *name,
                                            size_t vlen, const char *ver) {
  char file[64];
  (void)status;
  snprintf(file, sizeof file, "lib%s.so%s%.*s", name, vlen ? "." : "", (int)vlen, ver);
  return dlopen(file, RTLD_NOW);
}
void *get_nccl(void) __asm__("_ZN3tsl8internal9DsoLoader16GetNcclDsoHandleEv");
__attribute__((noipa)) void *get_nccl(void) { return get_dso_handle(0, "nccl", 1, "2"); }
int main(void) {
  void *h = get_nccl();
  if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
  int (*f)(void) = (int (*)(void))dlsym(h, "nccl");
  printf("%d\n", f());
  return 0;
}
"#;

fn dry_run(store: &Store, extra: &[&str], out: &Path) -> Value {
    let mut a: Vec<OsString> = ["fix", "--dry-run", "--json", "--system"]
        .iter()
        .map(OsString::from)
        .collect();
    a.extend(extra.iter().map(OsString::from));
    a.push(out.as_os_str().to_owned());
    store.unfarm(a).json()
}

fn object<'a>(json: &'a Value, file: &Path) -> &'a Value {
    json["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["path"].as_str() == file.to_str())
        .unwrap_or_else(|| panic!("no object {}: {json:#}", file.display()))
}

fn lib_dir(p: &Path) -> String {
    p.join("lib").to_str().unwrap().to_owned()
}

#[test]
fn tsl_dso_loader_need_is_found_and_kept_by_shrink() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let nccl = store.output("nccl-2.21-lib");
    Cc::gcc().shared_lib(&nccl.join("lib"), "nccl", "2.21.5", &lib_source("nccl", 21));
    let other = store.output("other-1.0-lib");
    Cc::gcc().shared_lib(&other.join("lib"), "other", "1.0", &lib_source("other", 1));
    let farm = store.farm("cuda-farm", &[&nccl, &other], LinkStyle::Absolute);
    let out = store.output("jaxlike-1.0");
    let exe = Cc::gcc()
        .search(farm.join("lib"))
        .arg("-ldl")
        .arg("-O2")
        .executable(&out.join("bin/app"), TSL_EXE);
    let bytes = std::fs::read(&exe).unwrap();
    assert!(!bytes.windows(8).any(|w| w == b"libnccl."), "a literal");
    let json = dry_run(&store, &["--shrink"], &out);
    let o = object(&json, &exe);
    let p = &o["plans"][0];
    // The name the DsoLoader builds, with where it was found.
    let need = p["needs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "libnccl.so.2")
        .unwrap_or_else(|| panic!("no computed need: {p:#}"));
    assert_eq!(
        need["provenance"],
        serde_json::json!([{"computed": {
            "recogniser": "tsl-dso-loader",
            "evidence": "DsoLoader::GetNcclDsoHandle"
        }}]),
        "{need:#}"
    );
    // --shrink keeps exactly the dir that serves it (without the
    // recogniser the farm went and the need with it).
    assert_eq!(p["status"], "change", "{p:#}");
    assert_eq!(p["new"].as_str(), Some(lib_dir(&nccl).as_str()), "{p:#}");
    // Expand keeps it too, first.
    let json = dry_run(&store, &[], &out);
    let p = &object(&json, &exe)["plans"][0];
    assert!(
        p["new"].as_str().unwrap().starts_with(&lib_dir(&nccl)),
        "{p:#}"
    );
    // The dry-run text names it.
    let mut a: Vec<OsString> = ["fix", "--dry-run", "-v", "--system", "--shrink"]
        .iter()
        .map(OsString::from)
        .collect();
    a.push(out.as_os_str().to_owned());
    let text = store.unfarm(a).stdout;
    assert!(
        text.contains("computed: libnccl.so.2 (tsl-dso-loader: DsoLoader::GetNcclDsoHandle)"),
        "{text}"
    );
    // Fixed, the program loads it through the real loader.
    let mut a: Vec<OsString> = ["fix", "--system", "--shrink"]
        .iter()
        .map(OsString::from)
        .collect();
    a.push(out.as_os_str().to_owned());
    let run = store.unfarm(a);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let ran = std::process::Command::new(&exe).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "21\n", "{ran:?}");
}

#[test]
fn cudnn_sublibraries_get_the_soname_major() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let cudnn = store.output("cudnn-9.1-lib");
    let dir = cudnn.join("lib");
    Cc::gcc().shared_lib(&dir, "cudnn_ops", "9.1.0", &lib_source("ops", 3));
    let main = Cc::gcc().arg("-ldl").shared_lib(
        &dir,
        "cudnn",
        "9.1.0",
        r#"#include <dlfcn.h>
#include <stdio.h>
static const char *parts[] = {"libcudnn_ops.so", "libcudnn_graph.so"};
void *load(int i) {
  char name[64];
  snprintf(name, sizeof name, "%s.%d", parts[i], 9);
  return dlopen(name, RTLD_NOW);
}
"#,
    );
    let json = dry_run(&store, &[], &cudnn);
    let o = object(&json, &main);
    let needs: Vec<(String, Value)> = o["needs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| {
            n["provenance"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p.get("computed").is_some())
        })
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_owned(),
                n["provenance"].clone(),
            )
        })
        .collect();
    let names: Vec<&str> = needs.iter().map(|n| n.0.as_str()).collect();
    // In literal order (sorted), after the unversioned hints themselves.
    assert_eq!(names, ["libcudnn_graph.so.9", "libcudnn_ops.so.9"], "{o:#}");
    assert_eq!(
        needs[1].1,
        serde_json::json!([{"computed": {
            "recogniser": "cudnn-sublibrary",
            "evidence": "literal libcudnn_ops.so"
        }}])
    );
}

/// `check` names a computed need nothing provides, with where it was found:
/// a warning (the library loads only when that code runs), in the text and
/// the JSON location.
#[test]
fn check_reports_a_missing_computed_need_with_its_evidence() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let other = store.output("other-1.0-lib");
    Cc::gcc().shared_lib(&other.join("lib"), "other", "1.0", &lib_source("other", 1));
    let out = store.output("jaxlike-1.0");
    let exe = Cc::gcc()
        .search(other.join("lib"))
        .arg("-ldl")
        .arg("-O2")
        .executable(&out.join("bin/app"), TSL_EXE);
    let mut a: Vec<OsString> = ["check", "--json", "--system"]
        .iter()
        .map(OsString::from)
        .collect();
    a.push(out.as_os_str().to_owned());
    let json = store.unfarm(a).json();
    let f: Vec<&Value> = json["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("{json:#}"))
        .iter()
        .filter(|f| f["kind"] == "missing-library")
        .collect();
    assert_eq!(f.len(), 1, "{json:#}");
    assert_eq!(
        f[0]["location"],
        "need libnccl.so.2 (computed, tsl-dso-loader: DsoLoader::GetNcclDsoHandle)",
        "{json:#}"
    );
    assert_eq!(f[0]["severity"], "warning", "{json:#}");
    assert_eq!(f[0]["file"].as_str(), exe.to_str(), "{json:#}");
}

/// cuDNN 9's shape: `snprintf(buf, n, "libnvrtc.so.%d", 12)` then
/// `dlopen(buf)`, the constant passed in `ecx` (gcc -O2 builds the same
/// call as the real libcudnn_graph.so.9).
const CUDNN_NVRTC: &str = r#"#include <dlfcn.h>
#include <stdio.h>
__attribute__((noipa)) int graph(void) {
  char name[32];
  snprintf(name, sizeof name, "libnvrtc.so.%d", 12);
  void *h = dlopen(name, RTLD_NOW);
  if (!h) return -1000;
  int (*f)(void) = (int (*)(void))dlsym(h, "nvrtc");
  return f ? f() : -2000;
}
"#;

/// PyTorch's LazyNVRTC shape: the prefix `libnvrtc.so.` and the CUDA major
/// appended at run time, in a library linking `libcudart.so.12`.
const TORCH_NVRTC: &str = r#"#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
int cudart(void);
__attribute__((noipa)) static void join(char *out, const char *a, int v) {
  sprintf(out, "%s%d", a, v);
}
__attribute__((noipa)) int torch(void) {
  char name[32];
  join(name, "libnvrtc.so.", cudart() - 8);
  void *h = dlopen(name, RTLD_NOW);
  if (!h) return -1000;
  int (*f)(void) = (int (*)(void))dlsym(h, "nvrtc");
  return f ? f() : -2000;
}
"#;

/// The two NVRTC recognisers (`soname-format`, `torch-lazy-nvrtc`) on
/// gcc-built libraries shaped like cuDNN's and PyTorch's: the computed
/// `libnvrtc.so.12` with its evidence, its dir taken from `--libs`, and the
/// program loading it through the real loader after the fix.
#[test]
fn nvrtc_names_built_at_run_time_get_their_dir_from_libs() {
    common::require_tools(TOOLS);
    let store = Store::new();
    let nvrtc = store.output("cuda-nvrtc-12.8-lib");
    Cc::gcc().shared_lib(&nvrtc.join("lib"), "nvrtc", "12", &lib_source("nvrtc", 12));
    let cudart = store.output("cuda-cudart-12.8-lib");
    Cc::gcc().shared_lib(
        &cudart.join("lib"),
        "cudart",
        "12",
        &lib_source("cudart", 20),
    );
    let out = store.output("torchlike-1.0");
    let lib = out.join("lib");
    let graph = Cc::gcc()
        .arg("-O2")
        .arg("-ldl")
        .shared_lib(&lib, "cudnn_graph", "9", CUDNN_NVRTC);
    let torch = Cc::gcc()
        .arg("-O2")
        .arg("-ldl")
        .link_dir(cudart.join("lib"))
        .lib(":libcudart.so.12")
        .shared_lib(&lib, "torch_cuda", "2", TORCH_NVRTC);
    for f in [&graph, &torch] {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            !bytes.windows(14).any(|w| w == b"libnvrtc.so.12"),
            "a literal"
        );
    }
    let exe = Cc::gcc()
        .link_dir(&lib)
        .arg(format!("-Wl,-rpath-link,{}", cudart.join("lib").display()))
        .lib(":libcudnn_graph.so.9")
        .lib(":libtorch_cuda.so.2")
        .executable(
            &out.join("bin/app"),
            &common::exe_calling(&["graph", "torch"]),
        );
    let libs = [lib_dir(&nvrtc), lib_dir(&cudart)];
    let mut flags: Vec<&str> = vec!["--libs"];
    flags.extend(libs.iter().map(String::as_str));
    flags.push("--");
    let json = dry_run(&store, &flags, &out);
    for (file, recogniser, evidence) in [
        (&graph, "soname-format", "format libnvrtc.so.%d with 12"),
        (
            &torch,
            "torch-lazy-nvrtc",
            "literal libnvrtc.so. and NEEDED libcudart.so.12",
        ),
    ] {
        let p = &object(&json, file)["plans"][0];
        let need = p["needs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == "libnvrtc.so.12")
            .unwrap_or_else(|| panic!("{}: no computed need: {p:#}", file.display()));
        assert_eq!(
            need["provenance"],
            serde_json::json!([{"computed": {"recogniser": recogniser, "evidence": evidence}}]),
            "{need:#}"
        );
        assert!(
            p["new"].as_str().unwrap().contains(&lib_dir(&nvrtc)),
            "{}: {p:#}",
            file.display()
        );
    }
    let mut a: Vec<OsString> = ["fix", "--system", "--libs"]
        .iter()
        .map(OsString::from)
        .collect();
    a.extend(libs.iter().map(OsString::from));
    a.push("--".into());
    a.push(out.as_os_str().to_owned());
    let run = store.unfarm(a);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let ran = std::process::Command::new(&exe).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "24\n", "{ran:?}");
}

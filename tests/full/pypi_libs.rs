//! `fix --libs` (issue 23 §1) on the real PyPI binaries of jaxlib,
//! jax-cuda12-plugin and jax-cuda12-pjrt 0.10.2 (`scripts/pypi-wheels.sh`; a missing wheel
//! fails the test), with no `--dlopen` flag: the 12 CUDA `-lib` dirs (small
//! gcc-built libraries with the real sonames, laid out like nixpkgs'
//! cudaPackages `-lib` outputs) as `--libs`, with a farm of them, a `-dev`
//! dir and a stub dir in front. Every file's list keeps its pip-layout
//! `$ORIGIN` entries verbatim, in place, and gains exactly the `-lib` dirs
//! its DT_NEEDED and DsoLoader names use, in the `--libs` order; jaxlib's
//! 31 objects, which load no CUDA library, gain none.

use crate::common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use common::{Cc, LinkStyle, Store, lib_source};

/// The 12 `-lib` outputs: (output name, sonames in its `lib`).
const CUDA: &[(&str, &[&str])] = &[
    ("cuda_cudart-12.8.90-lib", &["libcudart.so.12"]),
    (
        "libcublas-12.8.4.1-lib",
        &["libcublas.so.12", "libcublasLt.so.12"],
    ),
    ("cudnn-9.8.0.87-lib", &["libcudnn.so.9"]),
    ("libcufft-11.3.3.83-lib", &["libcufft.so.11"]),
    ("cuda_cupti-12.8.90-lib", &["libcupti.so.12"]),
    ("libcusolver-11.7.3.90-lib", &["libcusolver.so.11"]),
    ("libcusparse-12.5.8.93-lib", &["libcusparse.so.12"]),
    ("nccl-2.26.2-1-lib", &["libnccl.so.2"]),
    ("cuda_nvrtc-12.8.93-lib", &["libnvrtc.so.12"]),
    ("libnvshmem-3.2.5-lib", &["libnvshmem_host.so.3"]),
    ("libcurand-10.3.9.90-lib", &["libcurand.so.10"]),
    ("libnvjitlink-12.8.93-lib", &["libnvJitLink.so.12"]),
];

/// What each file loads from the CUDA `-lib` outputs: its DsoLoader names
/// (DT_NEEDED are glibc's, libstdc++ and libgcc_s only), less the
/// driver's (`libcuda.so.1`, `libnvidia-ml.so.1`, from the driver dir at
/// run time) and less `libcusparse.so.12`, which the package's own
/// `site-packages/nvidia/cusparse/lib` (an existing `$ORIGIN` entry) serves.
const NEEDS: &[(&str, &[&str])] = &[
    ("_hybrid.so", &["libcudart.so.12"]),
    ("_linalg.so", &["libcudart.so.12"]),
    ("_mosaic_gpu_ext.so", &["libcupti.so.12", "libcudart.so.12"]),
    ("_prng.so", &["libcudart.so.12"]),
    ("_rnn.so", &["libcudnn.so.9", "libcudart.so.12"]),
    (
        "_solver.so",
        &["libcublas.so.12", "libcusolver.so.11", "libcudart.so.12"],
    ),
    ("_sparse.so", &["libcudart.so.12"]),
    ("_triton.so", &["libcudart.so.12"]),
    (
        "_versions.so",
        &[
            "libcudnn.so.9",
            "libcufft.so.11",
            "libcupti.so.12",
            "libcublas.so.12",
            "libcusolver.so.11",
            "libcudart.so.12",
        ],
    ),
    ("cuda_plugin_extension.so", &["libcudart.so.12"]),
    ("libmosaic_gpu_runtime.so", &[]),
    (
        "xla_cuda_plugin.so",
        &[
            "libnccl.so.2",
            "libcudnn.so.9",
            "libcufft.so.11",
            "libcupti.so.12",
            "libnvrtc.so.12",
            "libcublas.so.12",
            "libnvshmem_host.so.3",
            "libcublasLt.so.12",
            "libcudart.so.12",
        ],
    ),
];

/// A fake CUDA library with the real soname (`libfoo.so.N`), built as the
/// `-lib` output holds it: `lib<stem>.so.<N>.0` plus its soname link.
fn fake(dir: &Path, soname: &str) {
    let (stem, major) = soname.split_once(".so.").unwrap();
    let name = stem.strip_prefix("lib").unwrap();
    Cc::gcc().shared_lib(
        dir,
        name,
        &format!("{major}.0"),
        &lib_source(&format!("{}_probe", name.replace('-', "_")), 1),
    );
}

/// The 12 `-lib` outputs in `store`: (its `lib` dir, its sonames).
fn cuda_libs(store: &Store) -> Vec<(PathBuf, &'static [&'static str])> {
    CUDA.iter()
        .map(|(out, sonames)| {
            let dir = store.output(out).join("lib");
            for s in *sonames {
                fake(&dir, s);
            }
            (dir, *sonames)
        })
        .collect()
}

#[test]
fn jax_wheels_get_exactly_their_cuda_lib_dirs() {
    common::require_tools(&["gcc", "readelf"]);
    let wheels = common::pypi_unpacked();
    let store = Store::new();
    let libs = cuda_libs(&store);
    // What must never be used, given first: a farm of all 12, cudart's
    // `-dev` dir (a copy of libcudart), and the stub dir with libcuda.
    let members: Vec<&Path> = libs.iter().map(|(d, _)| d.parent().unwrap()).collect();
    let farm = store.farm("cuda-merged-12.8", &members, LinkStyle::Absolute);
    let dev = store.output("cuda_cudart-12.8.90-dev").join("lib");
    fake(&dev, "libcudart.so.12");
    let stubs = store.output("cuda_cudart-12.8.90-lib").join("lib/stubs");
    fake(&stubs, "libcuda.so.1");

    let out = store.output("python3.12-jax-cuda12-0.10.2");
    let site = out.join("lib/python3.12/site-packages");
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    for (rel, from) in [
        ("jax_cuda12_plugin", wheels.join("jax_cuda12_plugin")),
        (
            "jax_plugins/xla_cuda12",
            wheels.join("jax_plugins/xla_cuda12"),
        ),
    ] {
        let to = site.join(rel);
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(&from).unwrap() {
            let e = e.unwrap();
            let dst = to.join(e.file_name());
            std::fs::copy(e.path(), &dst).unwrap();
            let old = common::readelf_dynamic(&dst, "RPATH").unwrap_or_else(|| {
                // Say what readelf saw: once, in a loaded CI run, it found none.
                let r = std::process::Command::new("readelf")
                    .arg("-dW")
                    .arg(&dst)
                    .output()
                    .unwrap();
                panic!(
                    "{}: no DT_RPATH (the wheels use DT_RPATH); readelf -dW exit {:?}:\n{}{}",
                    dst.display(),
                    r.status.code(),
                    String::from_utf8_lossy(&r.stdout),
                    String::from_utf8_lossy(&r.stderr)
                )
            });
            files.push((dst, old));
        }
    }
    assert_eq!(files.len(), NEEDS.len());
    // One pip-layout dir the package does have.
    fake(&site.join("nvidia/cusparse/lib"), "libcusparse.so.12");

    let mut a: Vec<OsString> = vec!["fix".into(), "--system".into()];
    for m in ["libcuda.so.1", "libnvidia-ml.so.1"] {
        a.extend(["--ignore-missing".into(), m.into()]);
    }
    a.push(out.clone().into());
    a.push("--libs".into());
    a.extend([&farm.join("lib"), &dev, &stubs].map(|d| d.as_os_str().to_owned()));
    a.extend(libs.iter().map(|(d, _)| d.as_os_str().to_owned()));
    let want = |name: &str, old: &str| {
        let needs = NEEDS.iter().find(|(f, _)| *f == name).unwrap().1;
        let mut list = old.to_owned();
        for (d, sonames) in &libs {
            if sonames.iter().any(|s| needs.contains(s)) {
                list.push(':');
                list.push_str(d.to_str().unwrap());
            }
        }
        list
    };
    // The plan is the same in every mode.
    for mode in [None, Some("--drop-unused"), Some("--shrink")] {
        let mut d = a.clone();
        d.splice(1..1, ["--dry-run".into(), "--json".into()]);
        d.extend(mode.map(OsString::from));
        let r = store.unfarm(&d);
        assert_eq!(r.code, Some(0), "{mode:?}: {r:#?}");
        let json = r.json();
        for (f, old) in &files {
            let o = json["objects"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["path"].as_str() == f.to_str())
                .unwrap();
            let name = f.file_name().unwrap().to_str().unwrap();
            assert_eq!(o["plans"][0]["tag"], "RPATH");
            assert_eq!(
                o["plans"][0]["new"].as_str(),
                Some(want(name, old).as_str()),
                "{mode:?} {name}: {:#}",
                o["plans"][0]
            );
        }
    }
    let r = store.unfarm(&a);
    assert_eq!(r.code, Some(0), "{r:#?}");
    for (f, old) in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            common::readelf_dynamic(f, "RPATH"),
            Some(want(name, old)),
            "{name}"
        );
    }
    // _versions.so loads its CUDA libraries from the -lib outputs: every
    // computed name resolves, through the written list, into one of them.
    let v = site.join("jax_cuda12_plugin/_versions.so");
    let ldd = store.unfarm([
        OsString::from("ldd"),
        "--json".into(),
        "--system".into(),
        v.clone().into(),
    ]);
    let json = ldd.json();
    let computed = json["files"][0]["computed"].as_array().unwrap();
    let mut loaded = 0;
    for c in computed {
        let name = c["name"].as_str().unwrap();
        if name == "libcuda.so.1" {
            continue;
        }
        let real = PathBuf::from(c["real"].as_str().unwrap_or_else(|| panic!("{c:#}")));
        let from = if name == "libcusparse.so.12" {
            site.join("nvidia/cusparse/lib")
        } else {
            libs.iter()
                .find(|(_, s)| s.contains(&name))
                .unwrap()
                .0
                .clone()
        };
        assert_eq!(real.parent(), Some(from.as_path()), "{name}: {c:#}");
        loaded += 1;
    }
    assert_eq!(loaded, 7, "{json:#}");
}

/// jaxlib 0.10.2 (CPU: its 30 Python extensions are stubs that load
/// `libjax_common.so` through their own `$ORIGIN` lists): with the CUDA
/// `-lib` dirs as `--libs`, no file gains an input dir, every list stays as
/// it was (the bazel `$ORIGIN/../_solib_*` entries that do not exist
/// included: `$ORIGIN` entries are kept verbatim), and every need resolves.
#[test]
fn jaxlib_gains_no_input_dir() {
    common::require_tools(&["gcc", "readelf"]);
    let wheels = common::pypi_unpacked();
    let jaxlib = wheels.join("jaxlib");
    assert!(
        jaxlib.join("libjax_common.so").is_file(),
        "{}: no unpacked jaxlib; run scripts/pypi-wheels.sh",
        jaxlib.display()
    );
    let store = Store::new();
    let libs = cuda_libs(&store);
    let out = store.output("python3.12-jaxlib-0.10.2");
    let site = out.join("lib/python3.12/site-packages");
    std::fs::create_dir_all(&site).unwrap();
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(&jaxlib)
        .arg(&site)
        .status()
        .unwrap();
    assert!(cp.success(), "cp -a {}", jaxlib.display());
    let mut files: Vec<(PathBuf, Option<String>)> = Vec::new();
    let mut dirs = vec![site.join("jaxlib")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "so") {
                let old = common::readelf_dynamic(&p, "RUNPATH");
                files.push((p, old));
            }
        }
    }
    assert_eq!(files.len(), 31, "{files:#?}");
    let mut a: Vec<OsString> = vec!["fix".into(), "--system".into(), out.clone().into()];
    a.push("--libs".into());
    a.extend(libs.iter().map(|(d, _)| d.as_os_str().to_owned()));
    let r = store.unfarm(&a);
    assert_eq!(r.code, Some(0), "{r:#?}");
    for (f, old) in &files {
        let now = common::readelf_dynamic(f, "RUNPATH");
        assert_eq!(&now, old, "{}", f.display());
        assert!(
            common::readelf_dynamic(f, "RPATH").is_none(),
            "{}",
            f.display()
        );
    }
    let mut ldd: Vec<OsString> = vec!["ldd".into(), "--json".into(), "--system".into()];
    ldd.push(out.into());
    let r = store.unfarm(&ldd);
    assert_eq!(r.code, Some(0), "every need resolves: {r:#?}");
}

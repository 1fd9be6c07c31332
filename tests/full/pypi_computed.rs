//! The computed-name recognisers on the real PyPI binaries that use them
//! (`scripts/pypi-wheels.sh` downloads and unpacks them; a missing wheel
//! fails the test): jax-cuda12-plugin and jax-cuda12-pjrt 0.10.2 (XLA/TSL
//! DsoLoader), nvidia-cudnn-cu12 9.28 (cuDNN 9's sub-libraries, NVRTC by a
//! format), torch 2.9.1 (the lazy NVRTC), nvidia-cuda-nvrtc-cu12 12.8
//! (the builtins, by a literal). Each file's computed names are asserted
//! exactly, through `unfarm ldd --json`.

use crate::common;

use std::path::PathBuf;

/// `(file name, [computed names, in order found])` for every file under
/// `dir`: DsoLoader functions in mangled-name order, then literals sorted.
fn computed_of(dir: &std::path::Path) -> Vec<(String, Vec<String>)> {
    let run = common::unfarm([
        std::ffi::OsStr::new("ldd"),
        "--json".as_ref(),
        dir.as_os_str(),
    ]);
    let json = run.json();
    let mut out: Vec<(String, Vec<String>)> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let name = PathBuf::from(f["path"].as_str().unwrap());
            let computed = f["computed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_owned())
                .collect();
            (
                name.file_name().unwrap().to_string_lossy().into_owned(),
                computed,
            )
        })
        .collect();
    out.sort();
    out
}

fn expect(v: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    let mut v: Vec<(String, Vec<String>)> = v
        .iter()
        .map(|(f, n)| (f.to_string(), n.iter().map(|s| s.to_string()).collect()))
        .collect();
    v.sort();
    v
}

#[test]
fn jax_cuda12_plugin_dso_loader_names() {
    plugin_names(&common::pypi_unpacked().join("jax_cuda12_plugin"));
}

/// The same wheel built for AArch64: the versions decoded from its code
/// (`adrp`/`add` or `adr` into `x2`, the length into `w1`) give the same names.
#[test]
fn jax_cuda12_plugin_dso_loader_names_aarch64() {
    plugin_names(&common::pypi_unpacked().join("aarch64/jax_cuda12_plugin"));
}

fn plugin_names(dir: &std::path::Path) {
    let got = computed_of(dir);
    let rt: &[&str] = &["libcudart.so.12"];
    assert_eq!(
        got,
        expect(&[
            ("_hybrid.so", rt),
            ("_linalg.so", rt),
            (
                "_mosaic_gpu_ext.so",
                &["libcupti.so.12", "libcuda.so.1", "libcudart.so.12"]
            ),
            ("_prng.so", rt),
            ("_rnn.so", &["libcudnn.so.9", "libcudart.so.12"]),
            (
                "_solver.so",
                &[
                    "libcublas.so.12",
                    "libcusolver.so.11",
                    "libcusparse.so.12",
                    "libcudart.so.12"
                ]
            ),
            ("_sparse.so", &["libcusparse.so.12", "libcudart.so.12"]),
            ("_triton.so", &["libcuda.so.1", "libcudart.so.12"]),
            // The seven CUDA libraries and the driver.
            (
                "_versions.so",
                &[
                    "libcudnn.so.9",
                    "libcufft.so.11",
                    "libcupti.so.12",
                    "libcublas.so.12",
                    "libcusolver.so.11",
                    "libcusparse.so.12",
                    "libcuda.so.1",
                    "libcudart.so.12"
                ]
            ),
            (
                "cuda_plugin_extension.so",
                &["libcuda.so.1", "libcudart.so.12"]
            ),
            ("libmosaic_gpu_runtime.so", &["libcuda.so.1"]),
        ])
    );
}

#[test]
fn jax_cuda12_pjrt_dso_loader_names() {
    // Nine CUDA libraries (cuBLAS and cuBLASLt from one package: eight
    // dirs), the driver and NVML.
    let got = computed_of(&common::pypi_unpacked().join("jax_plugins"));
    assert_eq!(
        got,
        expect(&[(
            "xla_cuda_plugin.so",
            &[
                "libnccl.so.2",
                "libnvidia-ml.so.1",
                "libcudnn.so.9",
                "libcufft.so.11",
                "libcupti.so.12",
                "libnvrtc.so.12",
                "libcublas.so.12",
                "libnvshmem_host.so.3",
                "libcublasLt.so.12",
                "libcuda.so.1",
                "libcudart.so.12"
            ]
        )])
    );
}

#[test]
fn cudnn9_sublibrary_names() {
    let got = computed_of(&common::pypi_unpacked().join("nvidia/cudnn/lib"));
    assert_eq!(
        got,
        expect(&[
            (
                "libcudnn.so.9",
                &[
                    "libcudnn_adv.so.9",
                    "libcudnn_cnn.so.9",
                    "libcudnn_ext.so.9",
                    "libcudnn_graph.so.9",
                    "libcudnn_ops.so.9"
                ]
            ),
            (
                "libcudnn_graph.so.9",
                &[
                    "libcudnn_engines_precompiled.so.9",
                    "libcudnn_engines_runtime_compiled.so.9",
                    "libcudnn_engines_tensor_ir.so.9",
                    "libcudnn_heuristic.so.9",
                    // snprintf(buf, 32, "libnvrtc.so.%d", 12) in
                    // nvrtcHelper::load().
                    "libnvrtc.so.12"
                ]
            ),
        ])
    );
}

/// `(name, provenance)` of each need of each object under `dirs` other than
/// glibc's and the C++ runtime's, from `fix --dry-run --json`, with the
/// `added[]` dirs of its plan (text, the needs each serves).
type NeedsOf = Vec<(
    String,
    Vec<(String, serde_json::Value)>,
    Vec<(String, serde_json::Value)>,
)>;

fn needs_of(dirs: &[&std::path::Path], libs: &[&std::path::Path]) -> NeedsOf {
    let mut args: Vec<&std::ffi::OsStr> = ["fix", "--dry-run", "--json", "--system"]
        .iter()
        .map(std::ffi::OsStr::new)
        .collect();
    args.extend(dirs.iter().map(|d| d.as_os_str()));
    if !libs.is_empty() {
        args.push("--libs".as_ref());
        args.extend(libs.iter().map(|d| d.as_os_str()));
    }
    let run = common::unfarm(args);
    let sys = [
        "libc.",
        "libm.",
        "libdl.",
        "libpthread.",
        "librt.",
        "ld-linux",
        "libgcc_s.",
        "libstdc++.",
    ];
    let mut out: NeedsOf = run.json()["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let file = PathBuf::from(o["path"].as_str().unwrap());
            let needs = o["needs"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| {
                    !sys.iter()
                        .any(|p| n["name"].as_str().unwrap().starts_with(p))
                })
                .map(|n| {
                    (
                        n["name"].as_str().unwrap().to_owned(),
                        n["provenance"].clone(),
                    )
                })
                .collect();
            let added = o["plans"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|p| p["added"].as_array().cloned().unwrap_or_default())
                .map(|a| (a["text"].as_str().unwrap().to_owned(), a["needs"].clone()))
                .collect();
            (
                file.file_name().unwrap().to_string_lossy().into_owned(),
                needs,
                added,
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn provenance_of<'a>(n: &'a NeedsOf, file: &str, need: &str) -> &'a serde_json::Value {
    let (_, needs, _) = n
        .iter()
        .find(|(f, _, _)| f == file)
        .unwrap_or_else(|| panic!("no {file}"));
    &needs
        .iter()
        .find(|(name, _)| name == need)
        .unwrap_or_else(|| panic!("{file}: no need {need}: {needs:?}"))
        .1
}

/// PyTorch 2.9.1 (cu12.8): `libtorch_cuda.so` loads NVRTC lazily as
/// `"libnvrtc.so." + "12"` (computed: `torch-lazy-nvrtc`); the rest it
/// loads by names already in the files: the driver and NVML as literals
/// (`libcuda.so.1` in libtorch_cuda, `libnvidia-ml.so.1` in libc10_cuda),
/// `libcaffe2_nvrtc.so` by DT_NEEDED (`libnvrtc.so.12`, `libcuda.so.1`).
#[test]
fn torch_lazy_nvrtc_and_the_driver() {
    let lib = common::pypi_unpacked().join("torch/lib");
    assert_eq!(
        computed_of(&lib),
        expect(&[
            ("libc10.so", &[]),
            ("libc10_cuda.so", &[]),
            ("libcaffe2_nvrtc.so", &[]),
            ("libtorch_cuda.so", &["libnvrtc.so.12"]),
            ("libtorch_global_deps.so", &[]),
        ])
    );
    let n = needs_of(&[&lib], &[]);
    assert_eq!(
        provenance_of(&n, "libtorch_cuda.so", "libnvrtc.so.12"),
        &serde_json::json!([{"computed": {
            "recogniser": "torch-lazy-nvrtc",
            "evidence": "literal libnvrtc.so. and NEEDED libcudart.so.12"
        }}])
    );
    let hint = serde_json::json!(["hint"]);
    assert_eq!(provenance_of(&n, "libtorch_cuda.so", "libcuda.so.1"), &hint);
    assert_eq!(
        provenance_of(&n, "libc10_cuda.so", "libnvidia-ml.so.1"),
        &hint
    );
    let needed = serde_json::json!(["needed"]);
    for name in ["libnvrtc.so.12", "libcuda.so.1"] {
        assert_eq!(provenance_of(&n, "libcaffe2_nvrtc.so", name), &needed);
    }
}

/// nvidia-cuda-nvrtc-cu12 12.8.93: `libnvrtc.so.12` dlopen()s
/// `libnvrtc-builtins.so.12.8` by that literal name (ld.so's debug output
/// shows it searched for, found through `$ORIGIN`); the soname-literal scan
/// has it, and its own `$ORIGIN` serves it.
#[test]
fn nvrtc_loads_its_builtins_by_a_literal() {
    let lib = common::pypi_unpacked().join("nvidia/cuda_nvrtc/lib");
    assert_eq!(
        computed_of(&lib),
        expect(&[("libnvrtc-builtins.so.12.8", &[]), ("libnvrtc.so.12", &[])])
    );
    let n = needs_of(&[&lib], &[]);
    assert_eq!(
        provenance_of(&n, "libnvrtc.so.12", "libnvrtc-builtins.so.12.8"),
        &serde_json::json!(["hint"])
    );
}

/// The computed NVRTC needs count like declared ones with `--libs`: in a
/// Nix layout (the files hard-linked into `lib` dirs of their own, where
/// pip's `$ORIGIN/../../nvidia/*/lib` entries lead nowhere), the NVRTC dir
/// goes into the plans of libcaffe2_nvrtc.so (DT_NEEDED), libtorch_cuda.so
/// and libcudnn_graph.so.9 (computed) for `libnvrtc.so.12`, and nowhere
/// else.
#[test]
fn nvrtc_dir_from_libs_serves_the_computed_needs() {
    let root = common::pypi_unpacked();
    let nvrtc = root.join("nvidia/cuda_nvrtc/lib");
    // Beside the wheels: the same file system, so links, not copies.
    let tmp = tempfile::tempdir_in(root.parent().unwrap()).unwrap();
    let mut outs = Vec::new();
    for (from, to) in [
        ("torch/lib", "torch-2.9.1"),
        ("nvidia/cudnn/lib", "cudnn-9.28"),
    ] {
        let out = tmp.path().join(to).join("lib");
        std::fs::create_dir_all(&out).unwrap();
        for e in std::fs::read_dir(root.join(from)).unwrap() {
            let e = e.unwrap();
            std::fs::hard_link(e.path(), out.join(e.file_name())).unwrap();
        }
        outs.push(out);
    }
    let n = needs_of(&[&outs[0], &outs[1]], &[&nvrtc]);
    let text = nvrtc.to_str().unwrap();
    let mut with_nvrtc = Vec::new();
    for (file, _, added) in &n {
        for (t, needs) in added {
            if t == text {
                assert_eq!(needs, &serde_json::json!(["libnvrtc.so.12"]), "{file}");
                with_nvrtc.push(file.as_str());
            }
        }
    }
    assert_eq!(
        with_nvrtc,
        [
            "libcaffe2_nvrtc.so",
            "libcudnn_graph.so.9",
            "libtorch_cuda.so"
        ]
    );
}

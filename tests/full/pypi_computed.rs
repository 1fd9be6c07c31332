//! The computed-name recognisers on the real PyPI binaries that use them
//! (`scripts/pypi-wheels.sh` downloads and unpacks them; a missing wheel
//! fails the test): jax-cuda12-plugin and jax-cuda12-pjrt 0.10.2 (XLA/TSL
//! DsoLoader), nvidia-cudnn-cu12 9.28 (cuDNN 9's sub-libraries). Each file's
//! computed names are asserted exactly, through `unfarm ldd --json`.

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
                    "libcudnn_heuristic.so.9"
                ]
            ),
        ])
    );
}

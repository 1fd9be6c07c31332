//! Libraries loaded by names computed at run time (README "dlopen by
//! computed names"): the CUDA stacks rarely `dlopen()` a literal, so neither
//! DT_NEEDED nor the soname-literal scan sees what they load. Each
//! recogniser below reads evidence the ELF reader gathered from the file
//! ([`Evidence`]) and says which sonames the object will ask for and why
//! (a [`Computed`] need: recogniser + evidence). Pure: no I/O.

use serde::Serialize;

use crate::elf::{self, ElfFacts};
use crate::elf::{DsoLoaderFn, SonameTemplate};

/// Which recogniser found a computed need (the JSON strings are in
/// docs/check-json.md and docs/ldd-json.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recogniser {
    /// XLA/TSL's `tsl::internal::DsoLoader` ([`tsl_dso_loader`]).
    TslDsoLoader,
    /// cuDNN 9's sub-libraries ([`cudnn_sublibraries`]).
    CudnnSublibrary,
    /// A soname printed from a format with a constant ([`format_sonames`]).
    SonameFormat,
    /// PyTorch's lazily loaded NVRTC ([`torch_lazy_nvrtc`]).
    TorchLazyNvrtc,
}

impl std::fmt::Display for Recogniser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Recogniser::TslDsoLoader => "tsl-dso-loader",
            Recogniser::CudnnSublibrary => "cudnn-sublibrary",
            Recogniser::SonameFormat => "soname-format",
            Recogniser::TorchLazyNvrtc => "torch-lazy-nvrtc",
        })
    }
}

/// What the ELF reader found for the recognisers.
#[derive(Clone, Debug, Default)]
pub struct Evidence<'a> {
    /// DT_SONAME.
    pub soname: Option<&'a str>,
    /// Soname-like literals in read-only data (the dlopen hint scan).
    pub literals: &'a [String],
    /// TSL DsoLoader functions defined in the object.
    pub dso_loader: &'a [DsoLoaderFn],
    /// DT_NEEDED.
    pub needed: &'a [String],
    /// Soname formats and prefixes in read-only data.
    pub templates: &'a [SonameTemplate],
}

/// A need found by a recogniser.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Computed {
    /// The soname `dlopen()` will be called with.
    pub name: String,
    /// Which recogniser.
    pub recogniser: Recogniser,
    /// What in the file says so (a function, a literal).
    pub evidence: String,
}

/// Every recogniser over one object's evidence, in a stable order, each
/// name once (the first finding wins).
pub fn recognise(e: &Evidence) -> Vec<Computed> {
    let mut out: Vec<Computed> = Vec::new();
    let found = tsl_dso_loader(e.dso_loader)
        .into_iter()
        .chain(cudnn_sublibraries(e.soname, e.literals))
        .chain(format_sonames(e.templates))
        .chain(torch_lazy_nvrtc(e.templates, e.needed));
    for c in found {
        if !out.iter().any(|o| o.name == c.name) {
            out.push(c);
        }
    }
    out
}

/// The library stem TSL's `DsoLoader::Get<X>DsoHandle` passes for `X`
/// (`xla/tsl/platform/default/dso_loader.cc`; the CUDA ones checked against
/// the SSO immediates in jax-cuda12-pjrt 0.10.2's machine code).
fn tsl_stem(what: &str) -> Option<&'static str> {
    Some(match what {
        "CudaDriver" => "cuda",
        "CudaRuntime" => "cudart",
        "Cublas" => "cublas",
        "CublasLt" => "cublasLt",
        "Cufft" => "cufft",
        "Cusolver" => "cusolver",
        "Cusparse" => "cusparse",
        "Cupti" => "cupti",
        "Cudnn" => "cudnn",
        "Nccl" => "nccl",
        "Nvshmem" => "nvshmem_host",
        "Nvrtc" => "nvrtc",
        "Nvml" => "nvidia-ml",
        "NvInfer" => "nvinfer",
        "NvInferPlugin" => "nvinfer_plugin",
        "Rocblas" => "rocblas",
        "Miopen" => "MIOpen",
        "Hipfft" => "hipfft",
        "Rocrand" => "rocrand",
        "Roctracer" => "roctracer64",
        "Rocsolver" => "rocsolver",
        "Hipsolver" => "hipsolver",
        "Hipsparse" => "hipsparse",
        "Hipblaslt" => "hipblaslt",
        "Hip" => "amdhip64",
        _ => return None,
    })
}

/// **XLA/TSL `DsoLoader`** (jaxlib, jax-cuda12-plugin, jax-cuda12-pjrt,
/// TensorFlow).
///
/// Evidence: a defined function `tsl::internal::DsoLoader::Get<X>DsoHandle()`
/// (`_ZN3tsl8internal9DsoLoader<n>Get<X>DsoHandleEv`, in `.symtab` or
/// `.dynsym`); the ELF reader decodes the version each of its calls passes
/// from x86-64 or AArch64 code (a pointer and a length into `.rodata`: the build's `TF_*_VERSION`, e.g.
/// `"12"` for cuBLAS, `"11"` for cuFFT, `"9"` for cuDNN, `"1"` for the
/// driver; the name itself is built in registers, so it is not a literal).
///
/// Rule: TSL's `FormatLibraryFileName` makes `lib<stem>.so.<version>`
/// (`lib<stem>.so` for an empty version), the stem fixed per function
/// (`tsl_stem`). The first call with a version is the need; a later
/// unversioned call (cupti's `libcupti.so`) is a fallback, not a need.
/// Functions whose version could not be decoded, or unknown `X`, yield
/// nothing: a guessed version would be a need nothing provides.
pub fn tsl_dso_loader(fns: &[DsoLoaderFn]) -> Vec<Computed> {
    let mut out = Vec::new();
    for f in fns {
        let (Some(stem), Some(versions)) = (tsl_stem(&f.what), &f.versions) else {
            continue;
        };
        let Some(version) = versions
            .iter()
            .find(|v| !v.is_empty())
            .or_else(|| versions.first())
        else {
            continue;
        };
        let name = match version.as_str() {
            "" => format!("lib{stem}.so"),
            v => format!("lib{stem}.so.{v}"),
        };
        out.push(Computed {
            name,
            recogniser: Recogniser::TslDsoLoader,
            evidence: format!("DsoLoader::Get{}DsoHandle", f.what),
        });
    }
    out
}

/// **cuDNN 9 sub-libraries** (`libcudnn.so.9` loads `libcudnn_ops`,
/// `_cnn`, `_adv`, `_graph`, `_ext`; `libcudnn_graph.so.9` loads the
/// `engines_*` and `heuristic` ones), from the object's own dir.
///
/// Evidence: the object's SONAME is `libcudnn<...>.so.<major>` and its
/// read-only data holds unversioned literals `libcudnn_<part>.so` (next to
/// the `%s.%d` format that appends the major version at run time).
///
/// Rule: each such literal, other than the object's own name, becomes
/// `libcudnn_<part>.so.<major>`, the major taken from the SONAME.
pub fn cudnn_sublibraries(soname: Option<&str>, literals: &[String]) -> Vec<Computed> {
    let Some((own_stem, major)) = soname.and_then(|s| s.split_once(".so.")) else {
        return Vec::new();
    };
    if !own_stem.starts_with("libcudnn")
        || major.is_empty()
        || !major.bytes().all(|b| b.is_ascii_digit())
    {
        return Vec::new();
    }
    literals
        .iter()
        .filter_map(|l| {
            let stem = l.strip_suffix(".so")?;
            let part = stem.strip_prefix("libcudnn_")?;
            (!part.is_empty() && stem != own_stem).then(|| Computed {
                name: format!("{stem}.so.{major}"),
                recogniser: Recogniser::CudnnSublibrary,
                evidence: format!("literal {l}"),
            })
        })
        .collect()
}

/// **Sonames printed from a format** (cuDNN 9's `libcudnn_graph.so.9`
/// loading NVRTC: `snprintf(buf, 32, "libnvrtc.so.%d", 12)`, the CUDA
/// major it was built for, before `dlopen(buf)`).
///
/// Evidence: a NUL-terminated format `lib<stem>.so.%d` in read-only data,
/// and x86-64 code that passes it as the third argument of a call (`lea
/// rdx`) with a constant fourth (`mov ecx, imm32`): the `%d`.
///
/// Rule: `lib<stem>.so.<constant>` for each constant decoded. A format
/// whose argument is not a constant (computed at run time, or on another
/// machine than x86-64) yields nothing: a guessed version would be a need
/// nothing provides.
pub fn format_sonames(templates: &[SonameTemplate]) -> Vec<Computed> {
    let mut out = Vec::new();
    for t in templates {
        let Some(prefix) = t.format_prefix() else {
            continue;
        };
        for v in &t.args {
            out.push(Computed {
                name: format!("{prefix}{v}"),
                recogniser: Recogniser::SonameFormat,
                evidence: format!("format {} with {v}", t.text),
            });
        }
    }
    out
}

/// **PyTorch's lazy NVRTC** (`libtorch_cuda.so`: ATen's `LazyNVRTC`
/// `getLibName()` is `"libnvrtc.so." + getLibVersion()`, the version the
/// build's `CUDA_VERSION`: its major from CUDA 12 on, `11.2` for CUDA
/// 11.3 to 11.8).
///
/// Evidence: the NUL-terminated prefix `libnvrtc.so.` in read-only data and
/// the CUDA runtime the object links, `libcudart.so.<major>` in DT_NEEDED
/// (the same `CUDA_VERSION`).
///
/// Rule: `libnvrtc.so.<major>` (major 12 and later), `libnvrtc.so.11.2`
/// (11); an older or unversioned cudart yields nothing (CUDA 11.0-11.2
/// named NVRTC by minor, which DT_NEEDED does not say). The alternative
/// name tried when that fails (`libnvrtc-<hash>.so.<version>`, NVRTC
/// bundled in the wheel) is a fallback, not a need.
pub fn torch_lazy_nvrtc(templates: &[SonameTemplate], needed: &[String]) -> Vec<Computed> {
    if !templates.iter().any(|t| t.text == "libnvrtc.so.") {
        return Vec::new();
    }
    let Some((cudart, major)) = needed.iter().find_map(|n| {
        let m: u32 = n.strip_prefix("libcudart.so.")?.parse().ok()?;
        Some((n, m))
    }) else {
        return Vec::new();
    };
    let version = match major {
        12.. => major.to_string(),
        11 => "11.2".to_owned(),
        _ => return Vec::new(),
    };
    vec![Computed {
        name: format!("libnvrtc.so.{version}"),
        recogniser: Recogniser::TorchLazyNvrtc,
        evidence: format!("literal libnvrtc.so. and NEEDED {cudart}"),
    }]
}

/// The computed needs of one object the ELF reader opened (`survey` and
/// `ldd`): the recognisers run on its evidence when it imports `dlopen`.
pub(crate) fn computed_of(b: &elf::FileBytes, facts: &ElfFacts, hints: &[String]) -> Vec<Computed> {
    if !facts.dynamic || !facts.imports_dlopen {
        return Vec::new();
    }
    let fns = b.dso_loader_fns();
    let cudnn = facts
        .soname
        .as_deref()
        .is_some_and(|s| s.starts_with("libcudnn"));
    // The template scan reads .rodata again: only for the CUDA objects the
    // two template recognisers are about (cuDNN, and what links cudart).
    let templates = match cudnn || facts.needed.iter().any(|n| n.starts_with("libcudart.so.")) {
        true => b.soname_templates(),
        false => Vec::new(),
    };
    let own;
    let literals = match cudnn && hints.is_empty() {
        true => {
            own = b.hints().unwrap_or_default();
            &own[..]
        }
        false => hints,
    };
    recognise(&Evidence {
        soname: facts.soname.as_deref(),
        literals,
        dso_loader: &fns,
        needed: &facts.needed,
        templates: &templates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(what: &str, versions: Option<&[&str]>) -> DsoLoaderFn {
        DsoLoaderFn {
            what: what.into(),
            versions: versions.map(|v| v.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn names(c: &[Computed]) -> Vec<&str> {
        c.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn tsl_names_from_stem_and_decoded_version() {
        let got = tsl_dso_loader(&[
            f("Cublas", Some(&["12"])),
            f("CublasLt", Some(&["12"])),
            f("Cufft", Some(&["11"])),
            f("CudaDriver", Some(&["1"])),
            f("Nvml", Some(&["1"])),
            f("Nvshmem", Some(&["3"])),
            // cupti: the versioned call first, then the unversioned fallback.
            f("Cupti", Some(&["12", ""])),
            f("Miopen", Some(&[""])),
        ]);
        assert_eq!(
            names(&got),
            [
                "libcublas.so.12",
                "libcublasLt.so.12",
                "libcufft.so.11",
                "libcuda.so.1",
                "libnvidia-ml.so.1",
                "libnvshmem_host.so.3",
                "libcupti.so.12",
                "libMIOpen.so",
            ]
        );
        assert_eq!(got[0].recogniser, Recogniser::TslDsoLoader);
        assert_eq!(got[0].evidence, "DsoLoader::GetCublasDsoHandle");
    }

    #[test]
    fn tsl_without_a_decoded_version_or_known_stem_yields_nothing() {
        assert!(tsl_dso_loader(&[f("Cublas", None), f("Frobnicator", Some(&["1"]))]).is_empty());
        assert!(tsl_dso_loader(&[f("Cublas", Some(&[]))]).is_empty());
    }

    #[test]
    fn cudnn_parts_get_the_soname_major() {
        let lits: Vec<String> = [
            "libcudnn_ops.so",
            "libcudnn_graph.so",
            "libcudnn.so",
            "libcudnn_cnn.so.9",
            "libz.so",
            "libcudnn_.so",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let got = cudnn_sublibraries(Some("libcudnn.so.9"), &lits);
        assert_eq!(names(&got), ["libcudnn_ops.so.9", "libcudnn_graph.so.9"]);
        assert_eq!(got[0].evidence, "literal libcudnn_ops.so");
        // Its own name is not a need.
        let got = cudnn_sublibraries(Some("libcudnn_graph.so.9"), &lits);
        assert_eq!(names(&got), ["libcudnn_ops.so.9"]);
        // Not cuDNN, or no major: nothing.
        assert!(cudnn_sublibraries(Some("libfoo.so.9"), &lits).is_empty());
        assert!(cudnn_sublibraries(Some("libcudnn.so"), &lits).is_empty());
        assert!(cudnn_sublibraries(None, &lits).is_empty());
    }

    #[test]
    fn recognise_keeps_each_name_once() {
        let lits = vec!["libcudnn_ops.so".to_string()];
        let fns = [f("Cudnn", Some(&["9"]))];
        let got = recognise(&Evidence {
            soname: Some("libcudnn_x.so.9"),
            literals: &lits,
            dso_loader: &fns,
            ..Default::default()
        });
        assert_eq!(names(&got), ["libcudnn.so.9", "libcudnn_ops.so.9"]);
    }

    fn tpl(text: &str, args: &[u32]) -> SonameTemplate {
        SonameTemplate {
            text: text.into(),
            args: args.to_vec(),
        }
    }

    #[test]
    fn a_format_with_decoded_constants_names_each() {
        let got = format_sonames(&[
            tpl("libnvrtc.so.%d", &[12]),
            tpl("libfoo.so.%d", &[1, 2]),
            // Nothing decoded, or a prefix: no name.
            tpl("libbar.so.%d", &[]),
            tpl("libnvrtc.so.", &[]),
        ]);
        assert_eq!(
            names(&got),
            ["libnvrtc.so.12", "libfoo.so.1", "libfoo.so.2"]
        );
        assert_eq!(got[0].recogniser, Recogniser::SonameFormat);
        assert_eq!(got[0].evidence, "format libnvrtc.so.%d with 12");
    }

    #[test]
    fn torch_nvrtc_takes_the_cuda_major_of_cudart() {
        let p = [tpl("libnvrtc.so.", &[])];
        let need = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let got = torch_lazy_nvrtc(&p, &need(&["libc10.so", "libcudart.so.12"]));
        assert_eq!(names(&got), ["libnvrtc.so.12"]);
        assert_eq!(
            got[0].evidence,
            "literal libnvrtc.so. and NEEDED libcudart.so.12"
        );
        assert_eq!(
            names(&torch_lazy_nvrtc(&p, &need(&["libcudart.so.11.0"]))),
            Vec::<&str>::new()
        );
        assert_eq!(
            names(&torch_lazy_nvrtc(&p, &need(&["libcudart.so.11"]))),
            ["libnvrtc.so.11.2"]
        );
        // No prefix literal, no cudart, an old cudart: nothing.
        assert!(torch_lazy_nvrtc(&[], &need(&["libcudart.so.12"])).is_empty());
        assert!(torch_lazy_nvrtc(&p, &need(&["libc10.so"])).is_empty());
        assert!(torch_lazy_nvrtc(&p, &need(&["libcudart.so.10"])).is_empty());
    }
}

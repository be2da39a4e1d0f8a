//! Where inference runs: `device=` parsing, loading libtorch's CUDA part on demand, threads.

use std::ffi::{CStr, CString};
use std::sync::OnceLock;

use tch::Device;

use super::error::ModelError;

/// libtorch's CUDA library. rustc links with `--as-needed`, so nothing in the plugin refers to
/// it and it is never loaded by itself: without it libtorch reports no CUDA at all.
const LIBTORCH_CUDA: &str = "libtorch_cuda.so";

/// Why a CUDA device cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CudaError {
    #[error(transparent)]
    Load(#[from] CudaLoadError),
    #[error("libtorch's CUDA library loaded but found no usable GPU (no device or driver)")]
    NoGpu,
    #[error("cuda:{index} does not exist; this machine has {count} CUDA device(s)")]
    NoSuchDevice { index: usize, count: i64 },
}

/// Why libtorch's CUDA library could not be loaded: each place tried, in order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot load {LIBTORCH_CUDA} ({})", join(.failures))]
pub struct CudaLoadError {
    pub failures: Vec<DlopenError>,
}

/// Why `dlopen` refused one name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DlopenError {
    #[error("{name}: NUL in path")]
    NulInPath { name: String },
    /// dlerror's text.
    #[error("{0}")]
    Refused(String),
}

fn join(failures: &[DlopenError]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses `cpu`, `cuda` (= `cuda:0`) or `cuda:N`. Asking for CUDA loads libtorch's CUDA
/// library and checks that the device exists; `cpu` never touches CUDA.
pub fn parse_device(spec: &str) -> Result<Device, ModelError> {
    let syntax = || ModelError::DeviceSyntax {
        spec: spec.to_string(),
    };
    let lower = spec.trim().to_ascii_lowercase();
    let index = match lower.as_str() {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => {
            let digits = other.strip_prefix("cuda:").ok_or_else(syntax)?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax());
            }
            digits.parse::<usize>().map_err(|_| syntax())?
        }
    };
    let unavailable = |reason: CudaError| ModelError::CudaUnavailable {
        spec: spec.to_string(),
        reason,
    };
    load_cuda().map_err(|e| unavailable(e.into()))?;
    if !tch::Cuda::is_available() {
        return Err(unavailable(CudaError::NoGpu));
    }
    let count = tch::Cuda::device_count();
    if index as i64 >= count {
        return Err(unavailable(CudaError::NoSuchDevice { index, count }));
    }
    Ok(Device::Cuda(index))
}

/// Loads libtorch_cuda.so once per process (by name through the plugin's rpath, then from
/// the libtorch folder known at build time), so that its CUDA hooks register.
pub fn load_cuda() -> Result<(), CudaLoadError> {
    static LOADED: OnceLock<Result<(), CudaLoadError>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let mut candidates = vec![LIBTORCH_CUDA.to_string()];
            if let Some(dir) = option_env!("VSS_LIBTORCH_DIR") {
                candidates.push(format!("{dir}/{LIBTORCH_CUDA}"));
            }
            let mut failures = Vec::new();
            for name in &candidates {
                match dlopen_global(name) {
                    Ok(()) => return Ok(()),
                    Err(e) => failures.push(e),
                }
            }
            Err(CudaLoadError { failures })
        })
        .clone()
}

fn dlopen_global(name: &str) -> Result<(), DlopenError> {
    let c_name = CString::new(name).map_err(|_| DlopenError::NulInPath {
        name: name.to_owned(),
    })?;
    // SAFETY: a valid NUL-terminated name; the handle is deliberately never closed (the
    // library must stay loaded for the process's life). dlerror is read right after the
    // failure, on this thread.
    unsafe {
        let handle = libc::dlopen(c_name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
        if handle.is_null() {
            let err = libc::dlerror();
            let why = if err.is_null() {
                "unknown dlopen error".to_string()
            } else {
                CStr::from_ptr(err).to_string_lossy().into_owned()
            };
            return Err(DlopenError::Refused(why));
        }
    }
    Ok(())
}

/// Sets libtorch's intra-op thread count; 0 leaves libtorch's default (one per core).
/// The setting is process-wide: every bundle in the process shares the pool. It is made on
/// the libtorch executor thread, which runs all of the crate's torch work: with OpenMP the
/// count is a per-thread setting, so set from another thread it would change nothing there.
pub fn set_threads(n: usize) {
    if n > 0 {
        let n = i32::try_from(n).unwrap_or(i32::MAX);
        super::executor::run(|| tch::set_num_threads(n));
    }
}

/// libtorch's intra-op thread count where the crate's torch work runs (the executor).
pub fn threads() -> usize {
    usize::try_from(super::executor::run(tch::get_num_threads)).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_parses_without_cuda() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert_eq!(parse_device(" CPU ").unwrap(), Device::Cpu);
    }

    #[test]
    fn bad_syntax_is_rejected() {
        for spec in [
            "gpu7", "", "cuda:", "cuda:x", "cuda:-1", "cuda0", "cpu:0", "cuda:1:2",
        ] {
            let e = parse_device(spec).unwrap_err();
            assert!(matches!(e, ModelError::DeviceSyntax { .. }), "{spec}: {e}");
            assert!(e.to_string().contains("cuda:N"), "{e}");
        }
    }

    #[test]
    fn threads_round_trip_on_the_executor() {
        let before = threads();
        set_threads(0);
        assert_eq!(threads(), before);
        set_threads(1);
        // Where the forward passes run, whichever thread asked.
        assert_eq!(super::super::executor::run(tch::get_num_threads), 1);
        assert_eq!(threads(), 1);
        set_threads(before);
    }
}

//! apisense agent: the userspace pipeline, as a library so that the binary, the fuzz targets and
//! the benchmarks drive the same code.
//!
//! capture -> reassembly -> http -> detect -> export; `pipeline` is the only place they are wired.
pub mod capture;
pub mod config;
pub mod detect;
pub mod export;
pub mod http;
pub mod pipeline;
pub mod reassembly;

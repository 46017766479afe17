//! The YAML configuration file: one key per command-line flag (snake case), plus the sections
//! that have no flags (`sensitive`, `kubernetes`, `analytics`, `spec_binding`). Unknown keys are errors, named with their line.
//! Relative paths in the file are relative to the file's own directory, so a file and the specs it
//! names can move together.
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use super::{ConfigError, spec_binding::SpecBindingFile};
use crate::detect::{
    analytics::AnalyticsConfig,
    sensitive::{Detector, SensitiveConfig},
};

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Log filter (`RUST_LOG` syntax).
    pub log: Option<String>,
    /// JSON Lines destination, or `-` for stdout.
    pub output: Option<String>,
    /// Also write the captured event stream here.
    pub record: Option<PathBuf>,
    pub metrics_addr: Option<SocketAddr>,
    #[serde(default)]
    pub ports: Vec<u16>,
    #[serde(default)]
    pub pids: Vec<u32>,
    pub ring_buffer_mib: Option<u32>,
    pub max_connections: Option<u32>,
    pub max_body_bytes: Option<usize>,
    pub max_buffered_mib: Option<u32>,
    #[serde(default)]
    pub openapi: Vec<PathBuf>,
    /// Where each spec applies: config rules, and the unseen-host warning.
    #[serde(default)]
    pub spec_binding: SpecBindingFile,
    pub state_dir: Option<PathBuf>,
    /// Sensitive-data policy.
    #[serde(default)]
    pub sensitive: SensitiveConfig,
    /// OTLP export (its presence enables it unless `enabled: false`); flags override, it
    /// overrides `OTEL_*` variables.
    pub otlp: Option<OtlpFileConfig>,
    #[serde(default)]
    pub kubernetes: KubernetesFileConfig,
    /// Security analytics: client identity headers, zombie window, anomaly thresholds.
    #[serde(default)]
    pub analytics: AnalyticsConfig,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpFileConfig {
    pub enabled: Option<bool>,
    pub endpoint: Option<String>,
    /// `grpc` or `http/protobuf`.
    pub protocol: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `none` or `gzip`.
    pub compression: Option<String>,
    pub service_name: Option<String>,
    /// PEM CA bundle for an https endpoint.
    pub certificate: Option<PathBuf>,
    pub metrics_interval_seconds: Option<u64>,
}

/// Pod identity from the Kubernetes API.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesFileConfig {
    /// `auto` (default: on when running in a pod), `true` (required: fail if the API is not
    /// reachable) or `false`.
    pub enabled: Option<Toggle>,
    /// The node whose pods are watched (default: `NODE_NAME` from the downward API, else the
    /// host name).
    pub node_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Toggle {
    #[default]
    Auto,
    #[serde(alias = "on", alias = "yes")]
    True,
    #[serde(alias = "off", alias = "no")]
    False,
}

impl ConfigFile {
    /// Reads and validates `path`: YAML, known keys, compilable detectors. Relative paths
    /// become relative to the file's directory.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let problem = |problem: String| ConfigError::File { path: path.to_path_buf(), problem };
        let text = std::fs::read_to_string(path).map_err(|e| problem(e.to_string()))?;
        let mut file: ConfigFile = if text.trim().is_empty() {
            ConfigFile::default()
        } else {
            serde_norway::from_str(&text).map_err(|e| problem(e.to_string()))?
        };
        Detector::new(&file.sensitive).map_err(|e| problem(format!("sensitive: {e}")))?;
        file.analytics.validate().map_err(|e| problem(format!("analytics: {e}")))?;
        file.spec_binding.rules().map_err(problem)?;
        if file.output.as_deref() == Some("") {
            return Err(problem("output: empty path (use - for stdout)".to_owned()));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let anchor = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        file.record.as_mut().map(anchor);
        file.state_dir.as_mut().map(anchor);
        file.openapi.iter_mut().for_each(anchor);
        if let Some(otlp) = file.otlp.as_mut() {
            otlp.certificate.as_mut().map(anchor);
        }
        if let Some(out) = file.output.as_mut().filter(|o| *o != "-" && Path::new(o.as_str()).is_relative()) {
            *out = base.join(&*out).to_string_lossy().into_owned();
        }
        Ok(file)
    }
}

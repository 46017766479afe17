//! Where and how spans go: flags, then the standard `OTEL_EXPORTER_OTLP_*` environment variables,
//! then defaults (gRPC to `http://localhost:4317`).
use std::time::Duration;

use thiserror::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// OTLP over gRPC (port 4317 by convention).
    Grpc,
    /// OTLP over HTTP with protobuf bodies (port 4318 by convention).
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    None,
    Gzip,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpConfig {
    /// Base endpoint (`scheme://host:port[/path]`); HTTP adds `/v1/traces` and `/v1/logs`.
    pub endpoint: String,
    pub protocol: Protocol,
    /// Extra request headers (e.g. an API key of a vendor backend).
    pub headers: Vec<(String, String)>,
    pub compression: Compression,
    pub timeout: Duration,
    /// Overrides the `service.name` derived from each process.
    pub service_name: Option<String>,
    /// How often the agent's own metrics are exported.
    pub metrics_interval: Duration,
    /// PEM CA bundle to trust for an https endpoint (else the system roots).
    pub ca_certificate: Option<std::path::PathBuf>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum OtlpConfigError {
    #[error("{key}: {value:?} is not an http:// or https:// URL")]
    Endpoint { key: &'static str, value: String },
    #[error("{key}: {value:?} is not one of grpc, http/protobuf")]
    Protocol { key: &'static str, value: String },
    #[error("{key}: {value:?} is not one of none, gzip")]
    Compression { key: &'static str, value: String },
    #[error("{key}: {entry:?} is not key=value")]
    Header { key: &'static str, entry: String },
    #[error("{key}: {value:?} is not a number of milliseconds")]
    Timeout { key: &'static str, value: String },
    #[error(
        "{key}: https is supported with the grpc protocol only (use grpc, or a local collector over http)"
    )]
    Tls { key: &'static str },
}

/// What the command line said (each `None` falls back to the environment, then the default).
#[derive(Clone, Debug, Default)]
pub struct OtlpFlags {
    pub endpoint: Option<String>,
    pub protocol: Option<Protocol>,
    pub headers: Vec<String>,
    pub compression: Option<Compression>,
    pub service_name: Option<String>,
}

impl OtlpConfig {
    /// Resolves flags over `env` (a lookup, so tests need not touch the process environment).
    pub fn resolve(
        flags: &OtlpFlags,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<OtlpConfig, OtlpConfigError> {
        let protocol = match (
            flags.protocol,
            env_any(env, &["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]),
        ) {
            (Some(p), _) => p,
            (None, Some((key, value))) => match value.as_str() {
                "grpc" => Protocol::Grpc,
                "http/protobuf" => Protocol::HttpProtobuf,
                _ => return Err(OtlpConfigError::Protocol { key, value }),
            },
            (None, None) => Protocol::Grpc,
        };
        let (key, endpoint) = match (
            &flags.endpoint,
            env_any(env, &["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]),
        ) {
            (Some(e), _) => ("--otlp-endpoint", e.clone()),
            (None, Some((key, value))) => (key, value),
            (None, None) => (
                "default",
                match protocol {
                    Protocol::Grpc => "http://localhost:4317".to_owned(),
                    Protocol::HttpProtobuf => "http://localhost:4318".to_owned(),
                },
            ),
        };
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        if endpoint.starts_with("https://") && protocol == Protocol::HttpProtobuf {
            return Err(OtlpConfigError::Tls { key });
        }
        let scheme_len = if endpoint.starts_with("https://") { "https://".len() } else { "http://".len() };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
            || endpoint.len() <= scheme_len
        {
            return Err(OtlpConfigError::Endpoint { key, value: endpoint });
        }
        let mut headers = Vec::new();
        let env_headers = env_any(env, &["OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"]);
        let sources = env_headers
            .iter()
            .flat_map(|(key, value)| value.split(',').map(move |entry| (*key, entry.to_owned())))
            .chain(flags.headers.iter().map(|h| ("--otlp-header", h.clone())));
        for (key, entry) in sources {
            if entry.trim().is_empty() {
                continue;
            }
            let (name, value) =
                entry.split_once('=').ok_or_else(|| OtlpConfigError::Header { key, entry: entry.clone() })?;
            let name = name.trim().to_ascii_lowercase();
            if name.is_empty() {
                return Err(OtlpConfigError::Header { key, entry });
            }
            headers.retain(|(n, _): &(String, String)| *n != name);
            headers.push((name, percent_decode(value.trim())));
        }
        let compression = match (
            flags.compression,
            env_any(env, &["OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"]),
        ) {
            (Some(c), _) => c,
            (None, Some((key, value))) => match value.as_str() {
                "gzip" => Compression::Gzip,
                "none" | "" => Compression::None,
                _ => return Err(OtlpConfigError::Compression { key, value }),
            },
            (None, None) => Compression::None,
        };
        let timeout = match env_any(env, &["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"])
        {
            Some((key, value)) => {
                Duration::from_millis(value.parse().map_err(|_| OtlpConfigError::Timeout { key, value })?)
            }
            None => Duration::from_secs(10),
        };
        let service_name =
            flags.service_name.clone().or_else(|| env("OTEL_SERVICE_NAME").filter(|s| !s.is_empty()));
        Ok(OtlpConfig {
            endpoint,
            protocol,
            headers,
            compression,
            timeout,
            service_name,
            metrics_interval: Duration::from_secs(10),
            ca_certificate: env_any(
                env,
                &["OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE"],
            )
            .map(|(_, path)| std::path::PathBuf::from(path)),
        })
    }
}

fn env_any(env: &dyn Fn(&str) -> Option<String>, keys: &[&'static str]) -> Option<(&'static str, String)> {
    keys.iter().find_map(|k| env(k).filter(|v| !v.trim().is_empty()).map(|v| (*k, v.trim().to_owned())))
}

/// Header values in `OTEL_EXPORTER_OTLP_HEADERS` are percent-encoded (W3C baggage format).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolve(flags: &OtlpFlags, env: &[(&str, &str)]) -> Result<OtlpConfig, OtlpConfigError> {
        let env: HashMap<String, String> =
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        OtlpConfig::resolve(flags, &|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_to_local_grpc() {
        let c = resolve(&OtlpFlags::default(), &[]).unwrap();
        assert_eq!((c.endpoint.as_str(), c.protocol), ("http://localhost:4317", Protocol::Grpc));
        let c = resolve(&OtlpFlags::default(), &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]).unwrap();
        assert_eq!(c.endpoint, "http://localhost:4318");
    }

    #[test]
    fn environment_then_flags() {
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%3Dcret,x-team=sec"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_SERVICE_NAME", "edge"),
        ];
        let c = resolve(&OtlpFlags::default(), &env).unwrap();
        assert_eq!(c.endpoint, "http://collector:4317");
        assert_eq!(
            c.headers,
            [("api-key".to_owned(), "s=cret".to_owned()), ("x-team".to_owned(), "sec".to_owned())]
        );
        assert_eq!(c.compression, Compression::Gzip);
        assert_eq!(c.service_name.as_deref(), Some("edge"));
        let flags = OtlpFlags {
            endpoint: Some("http://other:4318".into()),
            protocol: Some(Protocol::HttpProtobuf),
            headers: vec!["x-team=payments".into()],
            ..OtlpFlags::default()
        };
        let c = resolve(&flags, &env).unwrap();
        assert_eq!((c.endpoint.as_str(), c.protocol), ("http://other:4318", Protocol::HttpProtobuf));
        assert!(c.headers.contains(&("x-team".to_owned(), "payments".to_owned())));
    }

    #[test]
    fn bad_values_name_their_source() {
        let e = resolve(&OtlpFlags::default(), &[("OTEL_EXPORTER_OTLP_PROTOCOL", "smoke")]).unwrap_err();
        assert!(e.to_string().contains("OTEL_EXPORTER_OTLP_PROTOCOL"));
        let e = resolve(&OtlpFlags { endpoint: Some("collector:4317".into()), ..OtlpFlags::default() }, &[])
            .unwrap_err();
        assert!(e.to_string().contains("--otlp-endpoint"));
        let e =
            resolve(&OtlpFlags { headers: vec!["nokey".into()], ..OtlpFlags::default() }, &[]).unwrap_err();
        assert!(e.to_string().contains("--otlp-header"));
        let https_http = OtlpFlags {
            endpoint: Some("https://c:4318".into()),
            protocol: Some(Protocol::HttpProtobuf),
            ..OtlpFlags::default()
        };
        assert!(resolve(&https_http, &[]).unwrap_err().to_string().contains("grpc"));
        let https_grpc = OtlpFlags { endpoint: Some("https://c:4317".into()), ..OtlpFlags::default() };
        let c = resolve(&https_grpc, &[("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem")]).unwrap();
        assert_eq!(c.ca_certificate, Some(std::path::PathBuf::from("/ca.pem")));
        let e = resolve(&OtlpFlags::default(), &[("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")]).unwrap_err();
        assert!(e.to_string().contains("OTEL_EXPORTER_OTLP_TIMEOUT"));
    }
}

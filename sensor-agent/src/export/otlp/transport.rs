//! Sending OTLP requests: gRPC (tonic) or HTTP/protobuf (hyper), with the configured headers and
//! compression.
use std::io::Write;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use opentelemetry_proto::tonic::collector::{
    logs::v1::{ExportLogsServiceRequest, logs_service_client::LogsServiceClient},
    metrics::v1::{ExportMetricsServiceRequest, metrics_service_client::MetricsServiceClient},
    trace::v1::{ExportTraceServiceRequest, trace_service_client::TraceServiceClient},
};
use prost::Message as _;
use thiserror::Error;
use tonic::{
    codec::CompressionEncoding,
    metadata::{MetadataKey, MetadataValue},
    transport::{Certificate, Channel, ClientTlsConfig},
};

use super::config::{Compression, OtlpConfig, Protocol};

#[derive(Debug, Error)]
pub enum TransportError {
    #[error("OTLP endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
}

#[derive(Debug, Error)]
pub enum SendError {
    #[error("gRPC {0}")]
    Grpc(#[from] tonic::Status),
    #[error("HTTP request: {0}")]
    Http(String),
    #[error("HTTP status {0}")]
    Status(u16),
}

impl SendError {
    /// Whether trying again later may succeed (collector down, overloaded, restarting).
    pub fn retryable(&self) -> bool {
        match self {
            SendError::Grpc(s) => matches!(
                s.code(),
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::Aborted
                    | tonic::Code::Cancelled
                    | tonic::Code::Unknown
            ),
            SendError::Http(_) => true,
            SendError::Status(code) => matches!(code, 408 | 429 | 502 | 503 | 504),
        }
    }
}

pub enum Transport {
    Grpc {
        traces: TraceServiceClient<Channel>,
        logs: LogsServiceClient<Channel>,
        metrics: MetricsServiceClient<Channel>,
        headers: Vec<(String, String)>,
    },
    Http {
        client: Client<HttpConnector, Full<Bytes>>,
        endpoint: String,
        headers: Vec<(String, String)>,
        gzip: bool,
    },
}

impl Transport {
    pub fn new(config: &OtlpConfig) -> Result<Transport, TransportError> {
        match config.protocol {
            Protocol::Grpc => {
                let invalid =
                    |reason: String| TransportError::Endpoint { endpoint: config.endpoint.clone(), reason };
                let mut endpoint = Channel::from_shared(config.endpoint.clone())
                    .map_err(|e| invalid(e.to_string()))?
                    .timeout(config.timeout);
                if config.endpoint.starts_with("https://") {
                    let mut tls = ClientTlsConfig::new().with_native_roots();
                    if let Some(path) = &config.ca_certificate {
                        let pem = std::fs::read(path)
                            .map_err(|e| invalid(format!("CA certificate {}: {e}", path.display())))?;
                        tls = tls.ca_certificate(Certificate::from_pem(pem));
                    }
                    endpoint = endpoint.tls_config(tls).map_err(|e| invalid(e.to_string()))?;
                }
                let channel = endpoint.connect_lazy();
                let mut traces = TraceServiceClient::new(channel.clone());
                let mut logs = LogsServiceClient::new(channel.clone());
                let mut metrics = MetricsServiceClient::new(channel);
                if config.compression == Compression::Gzip {
                    traces = traces.send_compressed(CompressionEncoding::Gzip);
                    logs = logs.send_compressed(CompressionEncoding::Gzip);
                    metrics = metrics.send_compressed(CompressionEncoding::Gzip);
                }
                Ok(Transport::Grpc { traces, logs, metrics, headers: config.headers.clone() })
            }
            Protocol::HttpProtobuf => {
                let mut connector = HttpConnector::new();
                connector.set_connect_timeout(Some(config.timeout));
                let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
                Ok(Transport::Http {
                    client,
                    endpoint: config.endpoint.clone(),
                    headers: config.headers.clone(),
                    gzip: config.compression == Compression::Gzip,
                })
            }
        }
    }

    pub async fn traces(&self, request: ExportTraceServiceRequest) -> Result<(), SendError> {
        match self {
            Transport::Grpc { traces, headers, .. } => {
                // Clients are handles over one shared channel: cloning is cheap.
                traces.clone().export(with_metadata(request, headers)).await?;
                Ok(())
            }
            Transport::Http { client, endpoint, headers, gzip } => {
                post(client, &format!("{endpoint}/v1/traces"), headers, *gzip, request.encode_to_vec()).await
            }
        }
    }

    pub async fn metrics(&self, request: ExportMetricsServiceRequest) -> Result<(), SendError> {
        match self {
            Transport::Grpc { metrics, headers, .. } => {
                metrics.clone().export(with_metadata(request, headers)).await?;
                Ok(())
            }
            Transport::Http { client, endpoint, headers, gzip } => {
                post(client, &format!("{endpoint}/v1/metrics"), headers, *gzip, request.encode_to_vec()).await
            }
        }
    }

    pub async fn logs(&self, request: ExportLogsServiceRequest) -> Result<(), SendError> {
        match self {
            Transport::Grpc { logs, headers, .. } => {
                logs.clone().export(with_metadata(request, headers)).await?;
                Ok(())
            }
            Transport::Http { client, endpoint, headers, gzip } => {
                post(client, &format!("{endpoint}/v1/logs"), headers, *gzip, request.encode_to_vec()).await
            }
        }
    }
}

fn with_metadata<T>(message: T, headers: &[(String, String)]) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    for (name, value) in headers {
        if let (Ok(key), Ok(value)) =
            (MetadataKey::from_bytes(name.as_bytes()), MetadataValue::try_from(value.as_str()))
        {
            request.metadata_mut().insert(key, value);
        }
    }
    request
}

async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    headers: &[(String, String)],
    gzip: bool,
    body: Vec<u8>,
) -> Result<(), SendError> {
    let mut builder = hyper::Request::post(url).header("content-type", "application/x-protobuf");
    for (name, value) in headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let body = if gzip {
        builder = builder.header("content-encoding", "gzip");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&body).map_err(|e| SendError::Http(e.to_string()))?;
        e.finish().map_err(|e| SendError::Http(e.to_string()))?
    } else {
        body
    };
    let request = builder.body(Full::new(Bytes::from(body))).map_err(|e| SendError::Http(e.to_string()))?;
    let response = client.request(request).await.map_err(|e| SendError::Http(e.to_string()))?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) { Ok(()) } else { Err(SendError::Status(status)) }
}

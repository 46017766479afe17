//! `rustls-peer server PORT CERT KEY`: an HTTPS server (hyper over tokio-rustls, the stack of
//! axum and most Rust web services) answering every path with `{"path":"<path>"}`.
//!
//! `rustls-peer get-blocking URL..`: once a line arrives on stdin, GETs each URL over a new
//! connection with rustls's blocking `StreamOwned` (as ureq does).
//!
//! `rustls-peer get-hyper URL..`: the same with hyper over tokio-rustls (as reqwest does).
//!
//! URLs are `https://127.0.0.1:PORT/PATH`. Certificates are not verified: the tests use a
//! self-signed one.
use std::{
    io::{BufRead as _, Read as _, Write as _},
    net::TcpStream,
    sync::Arc,
};

use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Response, body::Bytes};
use hyper_util::rt::TokioIo;
use rustls::{
    ClientConfig, ServerConfig,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, ring},
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject as _},
};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("server") if args.len() == 5 => server(&args[2], &args[3], &args[4]),
        Some(mode @ ("get-blocking" | "get-hyper")) => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            for url in &args[2..] {
                let (status, body) =
                    if mode == "get-blocking" { get_blocking(url)? } else { get_hyper(url)? };
                if status != 200 {
                    return Err(format!("{url}: status {status}, body {body:?}").into());
                }
            }
            Ok(())
        }
        _ => Err("usage: rustls-peer server PORT CERT KEY | get-blocking URL.. | get-hyper URL..".into()),
    }
}

/// `(host:port, path)` of an `https://` URL.
fn split(url: &str) -> Result<(&str, &str), Error> {
    let rest = url.strip_prefix("https://").ok_or("URLs start with https://")?;
    Ok(rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..])))
}

fn get_blocking(url: &str) -> Result<(u16, String), Error> {
    let (authority, path) = split(url)?;
    let conn = rustls::ClientConnection::new(client_config(), ServerName::try_from("localhost")?)?;
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(authority)?);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: rustls-peer\r\nConnection: close\r\n\r\n"
    )?;
    tls.flush()?;
    let mut reply = Vec::new();
    match tls.read_to_end(&mut reply) {
        Ok(_) => {}
        // Servers that close without close_notify: the reply is complete all the same.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e.into()),
    }
    let text = String::from_utf8_lossy(&reply);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or("no status line")?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Ok((status, body))
}

fn get_hyper(url: &str) -> Result<(u16, String), Error> {
    let (authority, path) = split(url)?;
    let (authority, path) = (authority.to_owned(), path.to_owned());
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(&authority).await?;
        let connector = tokio_rustls::TlsConnector::from(client_config());
        let tls = connector.connect(ServerName::try_from("localhost")?.to_owned(), tcp).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        let request = Request::get(path)
            .header("host", authority)
            .header("user-agent", "rustls-peer-hyper")
            .body(Full::new(Bytes::new()))?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    })
}

fn server(port: &str, cert: &str, key: &str) -> Result<(), Error> {
    let certs = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
        loop {
            let (tcp, _) = listener.accept().await?;
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service =
                    hyper::service::service_fn(|request: Request<hyper::body::Incoming>| async move {
                        let body = format!("{{\"path\":\"{}\"}}", request.uri().path());
                        Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body)))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    })
}

fn client_config() -> Arc<ClientConfig> {
    let provider = Arc::new(ring::default_provider());
    let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Arc::new(config)
}

/// Accepts any certificate, still checking the handshake signatures with the provider.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

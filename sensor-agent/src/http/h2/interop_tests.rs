//! Bytes from a real HTTP/2 implementation (the `h2` crate, as used by hyper and tonic: Huffman
//! literals, dynamic table indexing, flow control) between a client and a server over an
//! in-memory pipe, tapped on the client side in the order the bytes moved, then parsed.

use std::{
    io,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

use crate::http::{Connection, Exchange, Limits, StreamSide, Version, grpc};
use crate::reassembly::Segment;

type Log = Arc<Mutex<Vec<(StreamSide, Vec<u8>)>>>;

/// The client's end of the pipe, recording what it writes (requests) and reads (responses).
struct Tap {
    inner: DuplexStream,
    log: Log,
}

impl AsyncRead for Tap {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.log.lock().unwrap().push((StreamSide::Response, buf.filled()[before..].to_vec()));
        }
        r
    }
}

impl AsyncWrite for Tap {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.log.lock().unwrap().push((StreamSide::Request, buf[..n].to_vec()));
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Answers every request with `{path}:{request body bytes}` and a `grpc-status: 0` trailer.
async fn serve(io: DuplexStream) {
    let mut conn = h2::server::handshake(io).await.unwrap();
    while let Some(Ok((req, mut respond))) = conn.accept().await {
        tokio::spawn(async move {
            let path = req.uri().path().to_owned();
            let mut body = req.into_body();
            let mut got = 0;
            while let Some(chunk) = body.data().await {
                let chunk = chunk.unwrap();
                got += chunk.len();
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            let head =
                http::Response::builder().status(200).header("content-type", "text/plain").body(()).unwrap();
            let mut send = respond.send_response(head, false).unwrap();
            send.send_data(Bytes::from(format!("{path}:{got}")), false).unwrap();
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            send.send_trailers(trailers).unwrap();
        });
    }
}

/// Three concurrent requests (one POST with a 40 KiB body), then two more on the same
/// connection, so later header blocks reuse dynamic table entries.
async fn converse() -> Vec<(StreamSide, Vec<u8>)> {
    let (client_io, server_io) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(serve(server_io));
    let log = Log::default();
    let tap = Tap { inner: client_io, log: Arc::clone(&log) };
    let (client, conn) = h2::client::handshake(tap).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    for round in [&["/a", "/b", "/c"][..], &["/d", "/e"]] {
        let mut pending = Vec::new();
        for path in round {
            let mut client = client.clone().ready().await.unwrap();
            let post = *path == "/b";
            let req = http::Request::builder()
                .method(if post { "POST" } else { "GET" })
                .uri(format!("http://interop.test{path}"))
                .header("x-api-key", "key-123")
                .header("user-agent", "h2-interop")
                .body(())
                .unwrap();
            let (resp, mut stream) = client.send_request(req, !post).unwrap();
            if post {
                stream.reserve_capacity(40 * 1024);
                stream.send_data(Bytes::from(vec![b'p'; 40 * 1024]), true).unwrap();
            }
            pending.push(resp);
        }
        for resp in pending {
            let mut body = resp.await.unwrap().into_body();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.unwrap();
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            let _ = body.trailers().await;
        }
    }
    drop(client);
    driver.abort();
    server.abort();
    log.lock().unwrap().clone()
}

fn parse(log: &[(StreamSide, Vec<u8>)], piece: usize) -> Vec<Exchange> {
    let mut conn = Connection::new(Limits::default());
    let mut out = Vec::new();
    for (i, (side, bytes)) in log.iter().enumerate() {
        for p in bytes.chunks(piece) {
            conn.push(*side, Segment::Data { ts_ns: i as u64, bytes: Bytes::copy_from_slice(p) }, &mut out);
        }
    }
    conn.close(u64::MAX, &mut out);
    out
}

#[tokio::test]
async fn real_client_and_server_bytes_parse_into_every_exchange() {
    let log = converse().await;
    for piece in [usize::MAX, 1, 7, 1000] {
        let out = parse(&log, piece);
        let mut seen: Vec<(String, String, u64, Vec<u8>)> = out
            .iter()
            .map(|e| {
                let req = e.request.as_ref().unwrap();
                let resp = e.response.as_ref().unwrap();
                assert_eq!((req.version, resp.version, resp.status), (Version::Http2, Version::Http2, 200));
                assert_eq!(req.headers.get("x-api-key"), Some(&b"key-123"[..]), "dynamic table entry");
                assert_eq!(req.headers.get("host"), Some(&b"interop.test"[..]));
                assert_eq!(grpc::status(&resp.headers), Some(0), "trailer");
                assert!(req.anomalies.is_empty() && resp.anomalies.is_empty(), "{e:?}");
                assert!(req.body.complete && resp.body.complete);
                (req.method.clone(), req.target.clone(), req.body.size, resp.body.captured.to_vec())
            })
            .collect();
        seen.sort();
        let expect =
            |m: &str, p: &str, n: u64| (m.to_owned(), p.to_owned(), n, format!("{p}:{n}").into_bytes());
        assert_eq!(
            seen,
            [
                expect("GET", "/a", 0),
                expect("GET", "/c", 0),
                expect("GET", "/d", 0),
                expect("GET", "/e", 0),
                expect("POST", "/b", 40 * 1024),
            ],
            "pieces of {piece}"
        );
    }
}

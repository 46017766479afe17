//! Content-Encoding for inspection: gzip, deflate (zlib or raw) and br bodies are decoded so
//! detectors see the text, never more than a size cap, and never past a compression-ratio cap
//! (a decompression bomb stops early and says so). Bodies kept for inspection are a prefix of
//! the wire body, so a decoder running out of input is normal: what was decoded is used.
use std::io::Read;

use bytes::Bytes;

use super::Headers;

#[derive(Clone, Copy, Debug)]
pub struct DecodeLimits {
    /// Largest decoded output kept.
    pub max_output: usize,
    /// Decoded bytes allowed per encoded byte before decoding stops as a likely bomb.
    pub max_ratio: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits { max_output: 1 << 20, max_ratio: 100 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodeStatus {
    /// No Content-Encoding (or `identity`).
    Identity,
    Decoded,
    /// Decoded up to the size cap.
    OutputCapped,
    /// Stopped at the ratio cap.
    RatioExceeded,
    /// The stream is corrupt (or cut where the decoder cannot continue): what decoded is kept.
    Corrupt,
    /// An encoding the agent does not decode (zstd, compress, stacked unknowns): left as is.
    Unsupported,
}

#[derive(Clone, Debug)]
pub struct Decoded {
    pub bytes: Bytes,
    pub status: DecodeStatus,
}

/// The body as a detector should see it.
#[must_use]
pub fn decode(headers: &Headers, body: &Bytes, limits: DecodeLimits) -> Decoded {
    let Some(encoding) = headers.get("content-encoding") else {
        return Decoded { bytes: body.clone(), status: DecodeStatus::Identity };
    };
    let encoding = String::from_utf8_lossy(encoding).trim().to_ascii_lowercase();
    // Several codings apply in order; decode them last to first.
    let codings: Vec<&str> = encoding.split(',').map(str::trim).filter(|c| !c.is_empty()).collect();
    let mut current = body.clone();
    let mut status = DecodeStatus::Identity;
    for coding in codings.iter().rev() {
        let (out, s) = match *coding {
            "identity" => (current.clone(), DecodeStatus::Identity),
            "gzip" | "x-gzip" => run(flate2::read::MultiGzDecoder::new(&current[..]), current.len(), limits),
            "deflate" => deflate(&current, limits),
            "br" => run(brotli_decompressor::Decompressor::new(&current[..], 4096), current.len(), limits),
            _ => return Decoded { bytes: body.clone(), status: DecodeStatus::Unsupported },
        };
        current = out;
        if s != DecodeStatus::Identity {
            status = s;
        }
        if !matches!(s, DecodeStatus::Decoded | DecodeStatus::Identity) {
            break;
        }
    }
    Decoded { bytes: current, status }
}

/// `deflate` is zlib-wrapped by the RFC, raw in some servers: try zlib, fall back to raw.
fn deflate(input: &Bytes, limits: DecodeLimits) -> (Bytes, DecodeStatus) {
    let zlib = run(flate2::read::ZlibDecoder::new(&input[..]), input.len(), limits);
    if zlib.1 == DecodeStatus::Corrupt && zlib.0.is_empty() {
        return run(flate2::read::DeflateDecoder::new(&input[..]), input.len(), limits);
    }
    zlib
}

fn run(mut decoder: impl Read, input_len: usize, limits: DecodeLimits) -> (Bytes, DecodeStatus) {
    let ratio_cap = input_len.saturating_mul(limits.max_ratio).max(4096);
    let cap = limits.max_output.min(ratio_cap);
    let mut out = Vec::with_capacity(cap.min(64 * 1024));
    let mut buf = [0u8; 8192];
    loop {
        match decoder.read(&mut buf) {
            Ok(0) => return (Bytes::from(out), DecodeStatus::Decoded),
            Ok(n) => {
                let room = cap - out.len();
                out.extend_from_slice(&buf[..n.min(room)]);
                if n >= room {
                    let status = if cap < limits.max_output {
                        DecodeStatus::RatioExceeded
                    } else {
                        DecodeStatus::OutputCapped
                    };
                    return (Bytes::from(out), status);
                }
            }
            // A body kept for inspection may end mid-stream: keep what decoded.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return (Bytes::from(out), DecodeStatus::Decoded);
            }
            Err(_) => return (Bytes::from(out), DecodeStatus::Corrupt),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn headers(encoding: &str) -> Headers {
        let mut h = Headers::default();
        h.push("Content-Encoding", encoding.as_bytes().to_vec());
        h
    }

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        Bytes::from(e.finish().unwrap())
    }

    fn br(data: &[u8]) -> Bytes {
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(data).unwrap();
        }
        Bytes::from(out)
    }

    const TEXT: &[u8] = b"{\"card\":\"4111 1111 1111 1111\",\"note\":\"hello hello hello\"}";

    #[test]
    fn identity_passes_through() {
        let body = Bytes::from_static(TEXT);
        let d = decode(&Headers::default(), &body, DecodeLimits::default());
        assert_eq!((d.status, &d.bytes[..]), (DecodeStatus::Identity, TEXT));
    }

    #[test]
    fn gzip_deflate_and_br_decode() {
        let d = decode(&headers("gzip"), &gzip(TEXT), DecodeLimits::default());
        assert_eq!((d.status, &d.bytes[..]), (DecodeStatus::Decoded, TEXT));
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(TEXT).unwrap();
        let d = decode(&headers("deflate"), &Bytes::from(z.finish().unwrap()), DecodeLimits::default());
        assert_eq!((d.status, &d.bytes[..]), (DecodeStatus::Decoded, TEXT));
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(TEXT).unwrap();
        let d = decode(&headers("Deflate"), &Bytes::from(raw.finish().unwrap()), DecodeLimits::default());
        assert_eq!((d.status, &d.bytes[..]), (DecodeStatus::Decoded, TEXT), "raw deflate");
        let d = decode(&headers("br"), &br(TEXT), DecodeLimits::default());
        assert_eq!((d.status, &d.bytes[..]), (DecodeStatus::Decoded, TEXT));
    }

    #[test]
    fn stacked_codings_decode_in_reverse() {
        let twice = gzip(&br(TEXT));
        let d = decode(&headers("br, gzip"), &twice, DecodeLimits::default());
        assert_eq!((d.status, &d.bytes[..]), (DecodeStatus::Decoded, TEXT));
    }

    #[test]
    fn a_bomb_stops_at_the_ratio_cap() {
        let zeros = vec![0u8; 50 << 20];
        let bomb = gzip(&zeros);
        assert!(bomb.len() < 100_000);
        let d = decode(&headers("gzip"), &bomb, DecodeLimits { max_output: 64 << 20, max_ratio: 100 });
        assert_eq!(d.status, DecodeStatus::RatioExceeded);
        assert!(d.bytes.len() <= bomb.len() * 100);
    }

    #[test]
    fn output_is_capped() {
        let text: Vec<u8> = (0..200_000u32).flat_map(u32::to_le_bytes).collect();
        let d = decode(&headers("gzip"), &gzip(&text), DecodeLimits { max_output: 1000, max_ratio: 1000 });
        assert_eq!(d.status, DecodeStatus::OutputCapped);
        assert_eq!(&d.bytes[..], &text[..1000]);
    }

    #[test]
    fn a_cut_stream_keeps_what_decoded_and_garbage_is_corrupt() {
        let text: Vec<u8> =
            (0..20_000u32).flat_map(|i| format!("{},", i.wrapping_mul(2_654_435_761)).into_bytes()).collect();
        let full = gzip(&text);
        let cut = full.slice(..full.len() / 2);
        let d = decode(&headers("gzip"), &cut, DecodeLimits::default());
        assert!(d.bytes.len() > 1000 && text.starts_with(&d.bytes), "{} bytes", d.bytes.len());
        let d =
            decode(&headers("gzip"), &Bytes::from_static(b"definitely not gzip"), DecodeLimits::default());
        assert_eq!(d.status, DecodeStatus::Corrupt);
        let d = decode(&headers("zstd"), &Bytes::from_static(b"x"), DecodeLimits::default());
        assert_eq!(d.status, DecodeStatus::Unsupported);
    }
}

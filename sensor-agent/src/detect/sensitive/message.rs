//! HTTP structure: request target, headers, cookies, form and query parameters, bodies; field
//! values and their siblings.

use super::context::{Field, Hint, Name};
use super::{Collector, Confidence, Hit, Kind, MessageView, json, mask, scan};

/// Parameters looked at per query string or form body, at most.
const MAX_PARAMS: usize = 1024;
/// Headers looked at per message, at most.
const MAX_HEADERS: usize = 256;

/// What a field value turned out to be, for sibling logic (sort code + account number).
#[derive(Clone, Copy)]
pub(crate) enum Leaf {
    Other,
    SortCode([u8; 6]),
    Account([u8; 17], usize),
}

/// Scan one field value at `col.loc`. `generic`: the field name alone may make it a `password` /
/// `secret` finding. `aws`: an AWS access key id was seen earlier in the same document.
pub(crate) fn scan_leaf(
    col: &mut Collector<'_>,
    value: &[u8],
    name: &Name,
    is_string: bool,
    generic: bool,
    aws: &mut bool,
) -> Leaf {
    let hint = name.hint;
    let field = Field { hint, name: name.as_bytes(), aws_context: *aws };
    let mut hits = std::mem::take(&mut col.hits);
    hits.clear();
    scan::scan_value(col.det, value, &field, &mut hits);
    if hits.iter().any(|h| h.id == Kind::AwsAccessKeyId.id()) {
        *aws = true;
    }
    if generic
        && is_string
        && matches!(hint, Hint::Password | Hint::Secret)
        && !hits.iter().any(|h| Kind::is_credential_id(h.id))
        && meaningful(value)
    {
        let (kind, confidence) = if hint == Hint::Password {
            (Kind::Password, Confidence::High)
        } else if memchr::memmem::find(name.as_bytes(), b"secret").is_some() {
            (Kind::Secret, Confidence::High)
        } else {
            (Kind::Secret, Confidence::Medium)
        };
        hits.push(Hit {
            id: kind.id(),
            confidence,
            sample: mask::redacted_len(value.len()),
            hash: col.det.value_hash(value),
        });
    }
    let loc = std::mem::take(&mut col.loc);
    for h in hits.drain(..) {
        col.add(h, &loc);
    }
    col.loc = loc;
    col.hits = hits;
    match hint {
        Hint::SortCode => sort_code(value).map_or(Leaf::Other, Leaf::SortCode),
        Hint::Account => account(value).map_or(Leaf::Other, |(d, n)| Leaf::Account(d, n)),
        _ => Leaf::Other,
    }
}

/// Not a placeholder: empty, masked ("*****"), "null", "[REDACTED]".
fn meaningful(value: &[u8]) -> bool {
    const PLACEHOLDERS: &[&[u8]] = &[
        b"null",
        b"none",
        b"undefined",
        b"redacted",
        b"[redacted]",
        b"[filtered]",
        b"<redacted>",
        b"<hidden>",
        b"true",
        b"false",
    ];
    let v = value.trim_ascii();
    if v.is_empty() || v.iter().all(|b| matches!(b, b'*' | b'x' | b'X' | b'#' | b'-' | b'.')) {
        return false;
    }
    !PLACEHOLDERS.iter().any(|p| p.eq_ignore_ascii_case(v))
}

fn sort_code(value: &[u8]) -> Option<[u8; 6]> {
    let v = value.trim_ascii();
    let mut d = [0u8; 6];
    let mut n = 0;
    for &b in v {
        if b.is_ascii_digit() {
            *d.get_mut(n)? = b;
            n += 1;
        } else if !matches!(b, b'-' | b' ') {
            return None;
        }
    }
    (n == 6).then_some(d)
}

fn account(value: &[u8]) -> Option<([u8; 17], usize)> {
    let v = value.trim_ascii();
    if !(6..=17).contains(&v.len()) || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut d = [0u8; 17];
    d[..v.len()].copy_from_slice(v);
    Some((d, v.len()))
}

/// Facts about the fields of one object (or one parameter list).
#[derive(Default)]
pub(crate) struct Siblings {
    sort: Option<(String, [u8; 6])>,
    account: Option<(String, [u8; 17], usize)>,
    banking: bool,
}

impl Siblings {
    pub(crate) fn note(&mut self, name: &Name, leaf: Leaf, loc: &str) {
        if matches!(name.hint, Hint::Iban | Hint::Bic | Hint::SortCode) {
            self.banking = true;
        }
        match leaf {
            Leaf::SortCode(d) if self.sort.is_none() => self.sort = Some((loc.to_owned(), d)),
            Leaf::Account(d, n) if self.account.is_none() => self.account = Some((loc.to_owned(), d, n)),
            _ => {}
        }
    }

    pub(crate) fn finish(self, col: &mut Collector<'_>) {
        let Some((acc_loc, acc, n)) = self.account else {
            return;
        };
        let acc = &acc[..n];
        let confidence =
            if self.sort.is_some() || self.banking { Confidence::High } else { Confidence::Medium };
        let sample = mask::keep_ends(acc, 0, 2);
        col.add(
            Hit { id: Kind::AccountNumber.id(), confidence, sample, hash: col.det.value_hash(acc) },
            &acc_loc,
        );
        if let Some((sort_loc, sort)) = self.sort
            && n == 8
        {
            let mut raw = [0u8; 14];
            raw[..6].copy_from_slice(&sort);
            raw[6..].copy_from_slice(acc);
            let sample = format!(
                "**-**-{}{} ******{}{}",
                char::from(sort[4]),
                char::from(sort[5]),
                char::from(acc[6]),
                char::from(acc[7])
            );
            col.add(
                Hit {
                    id: Kind::UkSortCodeAccount.id(),
                    confidence: Confidence::High,
                    sample,
                    hash: col.det.value_hash(&raw),
                },
                &sort_loc,
            );
        }
    }
}

/// A name as it may appear in a location: printable, short, and not itself data.
pub(crate) fn push_name(loc: &mut String, name: &[u8]) {
    let digits = name.iter().filter(|b| b.is_ascii_digit()).count();
    if name.len() > 64 || digits >= 6 || name.contains(&b'@') {
        loc.push('*');
        return;
    }
    loc.extend(name.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { char::from(b) } else { '?' }));
}

pub(crate) fn percent_decode(src: &[u8], plus_is_space: bool, out: &mut Vec<u8>) {
    out.clear();
    let hex = |b: u8| char::from(b).to_digit(16).map(|v| v as u8);
    let mut i = 0;
    while i < src.len() {
        let b = src[i];
        if b == b'%'
            && let (Some(h), Some(l)) =
                (src.get(i + 1).and_then(|&c| hex(c)), src.get(i + 2).and_then(|&c| hex(c)))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(if plus_is_space && b == b'+' { b' ' } else { b });
        i += 1;
    }
}

fn set_loc(col: &mut Collector<'_>, parts: &[&str]) {
    col.loc.clear();
    for p in parts {
        col.loc.push_str(p);
    }
}

/// `name=value&...` (query strings and form bodies), each value with its name as context.
fn scan_params(col: &mut Collector<'_>, raw: &[u8], prefix: &str) {
    let mut sib = Siblings::default();
    let mut name_buf = Vec::new();
    let mut value_buf = Vec::new();
    let mut aws = false;
    for pair in raw.split(|&b| b == b'&').filter(|p| !p.is_empty()).take(MAX_PARAMS) {
        let (name, value) = match memchr::memchr(b'=', pair) {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (&b""[..], pair),
        };
        percent_decode(name, true, &mut name_buf);
        percent_decode(value, true, &mut value_buf);
        col.loc.clear();
        if name_buf.is_empty() {
            col.loc.push_str(prefix.trim_end_matches(':'));
        } else {
            col.loc.push_str(prefix);
            push_name(&mut col.loc, &name_buf);
        }
        let n = Name::new(&name_buf);
        let leaf = scan_leaf(col, &value_buf, &n, true, true, &mut aws);
        let loc = std::mem::take(&mut col.loc);
        sib.note(&n, leaf, &loc);
        col.loc = loc;
    }
    sib.finish(col);
}

/// The request target: path (percent-decoded, as text) and query parameters.
pub(crate) fn scan_target(col: &mut Collector<'_>, path: &str, query: Option<&str>) {
    col.side = super::Side::Request;
    let mut buf = Vec::new();
    percent_decode(path.as_bytes(), false, &mut buf);
    col.scan_plain(&buf, "request.path");
    if let Some(q) = query {
        let q = q.split('#').next().unwrap_or_default();
        scan_params(col, q.as_bytes(), "request.query:");
    }
}

pub(crate) fn scan_message(col: &mut Collector<'_>, msg: &MessageView<'_>) {
    let side = col.side.as_str();
    let mut content_type = msg.content_type.map(str::to_ascii_lowercase);
    let mut aws = false;
    let mut lower_buf = [0u8; 64];
    for (name, value) in msg.headers.iter().take(MAX_HEADERS) {
        let lname = lowercase(name, &mut lower_buf);
        let lname: &str = &lname;
        let credential = matches!(lname, "authorization" | "proxy-authorization" | "cookie" | "set-cookie");
        if !credential {
            if lname == "content-type" && content_type.is_none() {
                content_type = Some(String::from_utf8_lossy(value).to_ascii_lowercase());
            }
            if !aws && col.quiet_header(lname, value) {
                continue;
            }
        }
        set_loc(col, &[side, ".header:"]);
        push_name(&mut col.loc, lname.as_bytes());
        match lname {
            "authorization" | "proxy-authorization" => authorization(col, value),
            "cookie" => cookies(col, value, false),
            "set-cookie" => cookies(col, value, true),
            _ => {
                let (aws_before, made) = (aws, col.hits_made);
                scan_leaf(col, value, &Name::new(lname.as_bytes()), true, true, &mut aws);
                if !aws_before && col.hits_made == made {
                    col.remember_quiet_header(lname, value);
                }
            }
        }
    }
    scan_body(col, msg.body, content_type.as_deref().unwrap_or(""));
}

/// `name` in ASCII lower case, in `buf` when it fits: a header name per header and message was
/// the scan's most frequent allocation.
fn lowercase<'b>(name: &str, buf: &'b mut [u8; 64]) -> std::borrow::Cow<'b, str> {
    if let Some(out) = buf.get_mut(..name.len()) {
        out.copy_from_slice(name.as_bytes());
        out.make_ascii_lowercase();
        // Lower-casing ASCII bytes keeps UTF-8 valid, so this always borrows.
        if let Ok(s) = std::str::from_utf8(out) {
            return std::borrow::Cow::Borrowed(s);
        }
    }
    std::borrow::Cow::Owned(name.to_ascii_lowercase())
}

fn scan_body(col: &mut Collector<'_>, body: &[u8], ct: &str) {
    if body.is_empty() || ["image/", "audio/", "video/", "font/"].iter().any(|p| ct.starts_with(p)) {
        return;
    }
    let side = col.side.as_str();
    if crate::http::grpc::is_grpc_content_type(ct.as_bytes()) && !ct.contains("+json") {
        super::protobuf::scan_grpc_body(col, body);
        return;
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if ct.contains("json") || matches!(first, Some(b'{' | b'[')) {
        json::scan_json(col, body);
    } else if ct.contains("x-www-form-urlencoded") {
        let prefix = format!("{side}.body:form:");
        scan_params(col, body, &prefix);
    } else {
        let loc = format!("{side}.body");
        col.scan_plain(body, &loc);
    }
}

fn authorization(col: &mut Collector<'_>, value: &[u8]) {
    let v = value.trim_ascii();
    if v.is_empty() {
        return;
    }
    let (scheme, cred) = match memchr::memchr(b' ', v) {
        Some(sp) => (&v[..sp], v[sp + 1..].trim_ascii()),
        None => (&b""[..], v),
    };
    let scheme_ok = !scheme.is_empty()
        && scheme.len() <= 32
        && scheme.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-');
    let mut hits = std::mem::take(&mut col.hits);
    hits.clear();
    scan::scan_value(col.det, cred, &Field::NONE, &mut hits);
    if scheme.eq_ignore_ascii_case(b"bearer") && !cred.is_empty() {
        let sample = format!("Bearer {}", mask::redacted_len(cred.len()));
        hits.push(Hit {
            id: Kind::BearerToken.id(),
            confidence: Confidence::High,
            sample,
            hash: col.det.value_hash(cred),
        });
    } else if scheme.eq_ignore_ascii_case(b"basic") && !cred.is_empty() {
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD.decode(cred).ok();
        let confidence =
            if decoded.is_some_and(|d| d.contains(&b':')) { Confidence::High } else { Confidence::Medium };
        let sample = format!("Basic {}", mask::REDACTED);
        hits.push(Hit {
            id: Kind::BasicCredentials.id(),
            confidence,
            sample,
            hash: col.det.value_hash(cred),
        });
    } else if hits.is_empty() && !cred.is_empty() {
        let sample = if scheme_ok {
            format!("{} {}", String::from_utf8_lossy(scheme), mask::redacted_len(cred.len()))
        } else {
            mask::redacted_len(v.len())
        };
        hits.push(Hit {
            id: Kind::Secret.id(),
            confidence: Confidence::Medium,
            sample,
            hash: col.det.value_hash(cred),
        });
    }
    let loc = std::mem::take(&mut col.loc);
    for h in hits.drain(..) {
        col.add(h, &loc);
    }
    col.loc = loc;
    col.hits = hits;
}

/// Cookie values with their names as context; the name alone makes no finding (every request
/// carries a session cookie).
fn cookies(col: &mut Collector<'_>, value: &[u8], set_cookie: bool) {
    let mut aws = false;
    for (i, pair) in value.split(|&b| b == b';').enumerate().take(MAX_PARAMS) {
        if set_cookie && i > 0 {
            break;
        }
        let pair = pair.trim_ascii();
        let (name, v) = match memchr::memchr(b'=', pair) {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (&b""[..], pair),
        };
        let mut decoded = Vec::new();
        percent_decode(v, false, &mut decoded);
        scan_leaf(col, &decoded, &Name::new(name), true, false, &mut aws);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        let mut out = Vec::new();
        percent_decode(b"a%40b.com+x%2", true, &mut out);
        assert_eq!(out, b"a@b.com x%2");
        percent_decode(b"%zz%", false, &mut out);
        assert_eq!(out, b"%zz%");
    }

    #[test]
    fn names_in_locations() {
        let mut s = String::new();
        push_name(&mut s, b"card_number");
        assert_eq!(s, "card_number");
        s.clear();
        push_name(&mut s, b"jane@example.com");
        assert_eq!(s, "*");
        s.clear();
        push_name(&mut s, b"4111111111111111");
        assert_eq!(s, "*");
    }

    #[test]
    fn lowercase_names_in_place_or_owned() {
        let mut buf = [0u8; 64];
        assert_eq!(lowercase("Content-Type", &mut buf), "content-type");
        assert_eq!(lowercase("X-\u{c9}t\u{e9}", &mut buf), "x-\u{c9}t\u{e9}");
        let long = "X".repeat(65);
        assert_eq!(lowercase(&long, &mut buf), "x".repeat(65));
        assert_eq!(lowercase("", &mut buf), "");
    }

    #[test]
    fn placeholders() {
        assert!(!meaningful(b"********"));
        assert!(!meaningful(b"  "));
        assert!(!meaningful(b"[REDACTED]"));
        assert!(meaningful(b"hunter2"));
    }
}

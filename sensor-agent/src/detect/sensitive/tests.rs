//! End-to-end tests: labeled vectors, exchanges, masking, configuration, robustness.

use super::*;

pub(super) fn det() -> Detector {
    Detector::new(&SensitiveConfig::default()).unwrap()
}

fn json_headers() -> Vec<(String, Vec<u8>)> {
    vec![("Content-Type".to_owned(), b"application/json".to_vec())]
}

/// Findings of a POST with this JSON request body.
pub(super) fn post_json(d: &Detector, body: &str) -> Vec<Finding> {
    let headers = json_headers();
    let ex = ExchangeView {
        method: "POST",
        target: "/api/v1/things",
        request: Some(MessageView {
            headers: &headers,
            body: body.as_bytes(),
            content_type: Some("application/json"),
        }),
        response: None,
    };
    d.inspect(&ex)
}

pub(super) fn find<'a>(fs: &'a [Finding], detector: &str) -> Option<&'a Finding> {
    fs.iter().find(|f| f.detector == detector)
}

pub(super) fn at<'a>(fs: &'a [Finding], detector: &str, location: &str) -> Option<&'a Finding> {
    fs.iter().find(|f| f.detector == detector && f.location == location)
}

// ---------------------------------------------------------------- labeled vectors

#[derive(serde::Deserialize)]
pub(super) struct Vector {
    pub kind: String,
    pub value: String,
    pub valid: bool,
}

pub(super) fn vectors() -> Vec<Vector> {
    let mut dir = Some(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        let p = d.join("shared/testdata/pii/vectors.jsonl");
        if p.is_file() {
            let text = std::fs::read_to_string(&p).unwrap();
            return text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        }
        dir = d.parent().map(std::path::Path::to_path_buf);
    }
    panic!("shared/testdata/pii/vectors.jsonl not found above CARGO_MANIFEST_DIR");
}

fn detector_of(kind: &str) -> &str {
    match kind {
        "card" => "payment_card",
        other => other,
    }
}

fn field_of(kind: &str) -> &str {
    match kind {
        "iban" => "payerIban",
        "card" => "cardNumber",
        "aws_access_key_id" => "aws_access_key_id",
        "aws_secret_access_key" => "aws_secret_access_key",
        "jwt" => "id_token",
        _ => "value",
    }
}

/// (found as a neutral JSON field, found under its own field name, found in free text).
fn found_in_all_contexts(d: &Detector, v: &Vector) -> [bool; 3] {
    let name = detector_of(&v.kind);
    let quoted = serde_json::to_string(&v.value).unwrap();
    let neutral = post_json(d, &format!(r#"{{"data": {{"value": {quoted}, "n": 1}}}}"#));
    let named = post_json(d, &format!(r#"{{"data": [{{"{}": {quoted}}}]}}"#, field_of(&v.kind)));
    let text = d.scan_text(
        format!("Details follow: {} (see above).", v.value).as_bytes(),
        Side::Response,
        "response.body",
    );
    for fs in [&neutral, &named, &text] {
        for f in fs {
            assert!(!f.sample.contains(&v.value), "raw value in sample: {f:?}");
            assert!(!format!("{f:?}").contains(&v.value));
        }
    }
    [
        at(&neutral, name, "request.body:$.data.value").is_some(),
        at(&named, name, &format!("request.body:$.data[0].{}", field_of(&v.kind))).is_some(),
        at(&text, name, "response.body").is_some(),
    ]
}

#[test]
fn labeled_vectors_recall_and_precision() {
    let d = det();
    let vs = vectors();
    assert!(vs.len() > 100);
    let mut missed = Vec::new();
    let mut false_pos = Vec::new();
    let (mut tp, mut fp, mut fneg, mut tn) = (0, 0, 0, 0);
    for v in &vs {
        let r = found_in_all_contexts(&d, v);
        for (ctx, hit) in ["neutral", "named", "text"].iter().zip(r) {
            match (v.valid, hit) {
                (true, true) => tp += 1,
                (true, false) => {
                    fneg += 1;
                    missed.push(format!("{} {:?} in {ctx}", v.kind, v.value));
                }
                (false, true) => {
                    fp += 1;
                    false_pos.push(format!("{} {:?} in {ctx}", v.kind, v.value));
                }
                (false, false) => tn += 1,
            }
        }
    }
    eprintln!("vectors: tp={tp} fn={fneg} fp={fp} tn={tn}");
    assert!(missed.is_empty(), "missed: {missed:#?}");
    assert!(false_pos.is_empty(), "false positives: {false_pos:#?}");
}

#[test]
fn vector_confidence_follows_field_names() {
    let d = det();
    let named = post_json(&d, r#"{"cardNumber": "4111111111111111"}"#);
    assert_eq!(find(&named, "payment_card").unwrap().confidence, Confidence::High);
    let neutral = post_json(&d, r#"{"value": "4111111111111111"}"#);
    assert_eq!(find(&neutral, "payment_card").unwrap().confidence, Confidence::Medium);
    let id = post_json(&d, r#"{"orderId": 4111111111111111}"#);
    assert_eq!(find(&id, "payment_card").unwrap().confidence, Confidence::Low);
    let secret = post_json(&d, r#"{"value": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#);
    assert_eq!(find(&secret, "aws_secret_access_key").unwrap().confidence, Confidence::Low);
    let secret = post_json(&d, r#"{"secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#);
    assert_eq!(find(&secret, "aws_secret_access_key").unwrap().confidence, Confidence::High);
    // The specific credential replaces the generic "secret" finding.
    assert!(find(&secret, "secret").is_none());
    let pair = d.scan_text(
        b"aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        Side::Request,
        "request.body",
    );
    assert_eq!(find(&pair, "aws_secret_access_key").unwrap().confidence, Confidence::High);
}

// ---------------------------------------------------------------- detectors, positives and lookalikes

fn text_kinds(d: &Detector, text: &str) -> Vec<String> {
    d.scan_text(text.as_bytes(), Side::Request, "request.body").into_iter().map(|f| f.detector).collect()
}

#[test]
fn cards_in_text() {
    let d = det();
    assert_eq!(text_kinds(&d, "pay with 4111 1111 1111 1111 today"), ["payment_card"]);
    assert_eq!(text_kinds(&d, "pay with 4111-1111-1111-1111."), ["payment_card"]);
    assert_eq!(text_kinds(&d, "amex 3782 822463 10005"), ["payment_card"]);
    // Inconsistent separators, longer digit runs, letters glued on, decimals.
    assert!(text_kinds(&d, "4111-1111 1111-1111").is_empty());
    assert!(text_kinds(&d, "941111111111111111").is_empty());
    assert!(text_kinds(&d, "x4111111111111111").is_empty());
    assert!(text_kinds(&d, "4111111111111111abc").is_empty());
    assert!(text_kinds(&d, "3.4111111111111111").is_empty());
    assert!(text_kinds(&d, "4111-1111-1111-1111-22").is_empty());
    // Luhn-valid but no scheme; scheme but wrong length.
    assert!(text_kinds(&d, "1234567812345670").is_empty());
    assert!(text_kinds(&d, "37828224631000").is_empty());
    let f = d.scan_text(b"4111111111111111 and 4111111111111111", Side::Request, "request.body");
    assert_eq!(f[0].count, 2);
    assert_eq!(f[0].sample, "411111******1111");
}

#[test]
fn ibans_and_banking() {
    let d = det();
    assert_eq!(text_kinds(&d, "IBAN: DE89 3704 0044 0532 0130 00."), ["iban"]);
    assert_eq!(text_kinds(&d, "to GB82WEST12345698765432"), ["iban"]);
    assert!(text_kinds(&d, "to GB82WEST12345698765431").is_empty());
    assert!(text_kinds(&d, "to gb82west12345698765432").is_empty());
    let f = post_json(&d, r#"{"payer": {"iban": "gb82 west 1234 5698 7654 32"}}"#);
    let iban = at(&f, "iban", "request.body:$.payer.iban").unwrap();
    assert_eq!(iban.sample, "GB82**************5432");
    // BIC only with context.
    assert!(text_kinds(&d, "hello DEUTDEFF world").is_empty());
    assert!(text_kinds(&d, "ABCDEFGH and NOTHING").is_empty());
    assert_eq!(text_kinds(&d, "bank: DEUTDEFF500"), ["bic"]);
    let f = post_json(&d, r#"{"bic": "NWBKGB2L", "code": "DEUTDEFF"}"#);
    assert_eq!(at(&f, "bic", "request.body:$.bic").unwrap().confidence, Confidence::High);
    assert!(at(&f, "bic", "request.body:$.code").is_none());
}

#[test]
fn sort_code_and_account() {
    let d = det();
    let f = post_json(&d, r#"{"beneficiary": {"sortCode": "12-34-56", "accountNumber": "31926819"}}"#);
    let sc = at(&f, "uk_sort_code_account", "request.body:$.beneficiary.sortCode").unwrap();
    assert_eq!(sc.confidence, Confidence::High);
    assert!(!sc.sample.contains("31926819") && !sc.sample.contains("123456"));
    assert_eq!(
        at(&f, "account_number", "request.body:$.beneficiary.accountNumber").unwrap().confidence,
        Confidence::High
    );
    let f = post_json(&d, r#"{"accountNumber": 12345678901}"#);
    assert_eq!(find(&f, "account_number").unwrap().confidence, Confidence::Medium);
    assert!(find(&f, "uk_sort_code_account").is_none());
    assert_eq!(text_kinds(&d, "sort code 12-34-56 account 31926819"), ["uk_sort_code_account"]);
    assert!(text_kinds(&d, "on 12-05-21 we met").is_empty());
    assert!(find(&post_json(&d, r#"{"accountNumber": "12ab"}"#), "account_number").is_none());
}

#[test]
fn personal_data() {
    let d = det();
    assert_eq!(text_kinds(&d, "mail jane.doe@example.com now"), ["email"]);
    assert!(text_kinds(&d, "user@localhost or a@b.c").is_empty());
    assert_eq!(text_kinds(&d, "call +44 20 7946 0958"), ["phone"]);
    assert!(text_kinds(&d, "id +1234567890").is_empty());
    assert!(text_kinds(&d, "call 020 7946 0958").is_empty());
    let f = post_json(&d, r#"{"contact": {"mobile": "020 7946 0958", "note": "020 7946 0958"}}"#);
    assert!(at(&f, "phone", "request.body:$.contact.mobile").is_some());
    assert!(at(&f, "phone", "request.body:$.contact.note").is_none());
    assert_eq!(text_kinds(&d, "ssn 536-90-1234"), ["us_ssn"]);
    assert!(text_kinds(&d, "ssn 666-90-1234 000-12-3456 536-00-1234").is_empty());
    assert!(text_kinds(&d, "536901234").is_empty());
    assert!(at(&post_json(&d, r#"{"ssn": "536901234"}"#), "us_ssn", "request.body:$.ssn").is_some());
    assert_eq!(text_kinds(&d, "NI: AB 12 34 56 C"), ["uk_nino"]);
    assert!(text_kinds(&d, "GB123456A QQ123456C AB123456E").is_empty());
    assert!(find(&post_json(&d, r#"{"nino": "ab123456c"}"#), "uk_nino").is_some());
}

const GH: &str = "ghp_Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78";
const SLACK: &str = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx";
const STRIPE: &str = "sk_live_51H8xYzAbCdEfGhIjKlMnOpQr";
const GOOGLE: &str = "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe";
const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";

#[test]
fn credentials() {
    let d = det();
    assert_eq!(text_kinds(&d, &format!("token={GH}")), ["github_token"]);
    assert!(text_kinds(&d, "ghp_short").is_empty());
    assert_eq!(text_kinds(&d, SLACK), ["slack_token"]);
    assert_eq!(text_kinds(&d, STRIPE), ["stripe_key"]);
    let test_key = d.scan_text(b"sk_test_4eC39HqLyjWDarjtT1zdp7dc", Side::Request, "x");
    assert_eq!(test_key[0].confidence, Confidence::Low);
    assert_eq!(text_kinds(&d, GOOGLE), ["google_api_key"]);
    assert!(text_kinds(&d, "AIzaTooShort").is_empty());
    assert_eq!(
        text_kinds(&d, "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"),
        ["private_key"]
    );
    assert!(text_kinds(&d, "-----BEGIN CERTIFICATE-----").is_empty());
    assert_eq!(text_kinds(&d, JWT), ["jwt"]);
    assert!(text_kinds(&d, "eyJzdWIiOiIxIn0.eyJzdWIiOiIxIn0.c2ln").is_empty());
    assert_eq!(text_kinds(&d, "AKIAIOSFODNN7EXAMPLE"), ["aws_access_key_id"]);
    assert!(text_kinds(&d, "AKIAIOSFODNN7EXAMPLEX AKIAios").is_empty());
    // Git object ids are not AWS secrets.
    assert!(text_kinds(&d, "commit da39a3ee5e6b4b0d3255bfef95601890afd80709").is_empty());
}

fn exchange_with(
    d: &Detector,
    target: &str,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
    ct: Option<&str>,
) -> Vec<Finding> {
    d.inspect(&ExchangeView {
        method: "POST",
        target,
        request: Some(MessageView { headers, body, content_type: ct }),
        response: None,
    })
}

#[test]
fn headers_query_form() {
    let d = det();
    let headers = vec![
        ("Authorization".to_owned(), format!("Bearer {JWT}").into_bytes()),
        ("X-Api-Key".to_owned(), b"k-12345-abcdef".to_vec()),
        ("Cookie".to_owned(), format!("sid=abc123; tok={GH}").into_bytes()),
        ("Host".to_owned(), b"example.com".to_vec()),
    ];
    let fs = exchange_with(
        &d,
        "/users/jane%40example.com/pay?card_number=4111%201111%201111%201111&access_token=abcdef123456&x=1",
        &headers,
        b"username=jane&password=hunter2%21&amount=10",
        Some("application/x-www-form-urlencoded"),
    );
    let bearer = at(&fs, "bearer_token", "request.header:authorization").unwrap();
    assert!(bearer.sample.starts_with("Bearer [REDACTED"));
    assert!(at(&fs, "jwt", "request.header:authorization").is_some());
    assert!(at(&fs, "secret", "request.header:x-api-key").is_some());
    assert!(at(&fs, "github_token", "request.header:cookie").is_some());
    assert!(at(&fs, "secret", "request.header:cookie").is_none());
    assert!(at(&fs, "email", "request.path").is_some());
    assert_eq!(at(&fs, "payment_card", "request.query:card_number").unwrap().confidence, Confidence::High);
    assert!(at(&fs, "secret", "request.query:access_token").is_some());
    let pw = at(&fs, "password", "request.body:form:password").unwrap();
    assert_eq!(pw.sample, "[REDACTED:8-16]");
    assert!(fs.iter().all(|f| f.side == Side::Request));
    assert_eq!(fs.iter().filter(|f| f.location.starts_with("request.header:host")).count(), 0);

    let basic = vec![("authorization".to_owned(), b"Basic dXNlcjpwYXNz".to_vec())];
    let fs = exchange_with(&d, "/", &basic, b"", None);
    assert_eq!(
        at(&fs, "basic_credentials", "request.header:authorization").unwrap().sample,
        "Basic [REDACTED]"
    );
}

#[test]
fn response_side_and_json_paths() {
    let d = det();
    let body = br#"{"cards": [{"pan": "4111111111111111"}, {"pan": "5555555555554444"}],
        "a": {"b": [[1, "x@example.org"]], "we.ird key": "jane@example.com"}, "pw": {"password": ""}}"#;
    let ex = ExchangeView {
        method: "GET",
        target: "/me",
        request: None,
        response: Some(MessageView { headers: &[], body, content_type: None }),
    };
    let fs = d.inspect(&ex);
    let card = at(&fs, "payment_card", "response.body:$.cards[0].pan").unwrap();
    assert_eq!((card.side, card.confidence, card.count), (Side::Response, Confidence::High, 1));
    assert!(at(&fs, "payment_card", "response.body:$.cards[1].pan").is_some());
    assert!(at(&fs, "email", "response.body:$.a.b[0][1]").is_some());
    assert!(at(&fs, "email", "response.body:$.a['we.ird key']").is_some());
    // Empty password: nothing to report.
    assert!(find(&fs, "password").is_none());
    let json = serde_json::to_string(&fs[0]).unwrap();
    assert!(json.contains(r#""side":"response""#) && json.contains(r#""confidence":"high""#), "{json}");
}

#[test]
fn truncated_json_is_still_scanned() {
    let d = det();
    let body = r#"{"user": {"email": "jane@example.com", "card": "4111111111111111", "note": "ssn 536-90-1234 and more te"#;
    let fs = post_json(&d, body);
    assert!(at(&fs, "email", "request.body:$.user.email").is_some());
    assert!(at(&fs, "payment_card", "request.body:$.user.card").is_some());
    // Found by the text fallback, and the values seen by the walk are not reported twice.
    assert!(at(&fs, "us_ssn", "request.body").is_some());
    assert!(at(&fs, "email", "request.body").is_none());
    assert!(at(&fs, "payment_card", "request.body").is_none());
    // Not JSON at all although it says so.
    let fs = post_json(&d, "{oops 4111111111111111");
    assert!(at(&fs, "payment_card", "request.body").is_some());
}

// ---------------------------------------------------------------- masking

#[test]
fn samples_never_hold_raw_values() {
    let d = det();
    let raws = [
        "4111111111111111",
        "GB82WEST12345698765432",
        "jane.doe@example.com",
        "+442079460958",
        "536-90-1234",
        "AB123456C",
        JWT,
        GH,
        SLACK,
        STRIPE,
        GOOGLE,
        "AKIAIOSFODNN7EXAMPLE",
        "hunter2hunter2",
        "31926819",
    ];
    let body = format!(
        r#"{{"a": "{}", "b": "{}", "c": "{}", "d": "{}", "e": "{}", "f": "{}", "g": "{}", "h": "{}", "i": "{}",
        "j": "{}", "k": "{}", "l": "{}", "password": "{}", "sortCode": "123456", "accountNumber": "{}",
        "pk": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----"}}"#,
        raws[0],
        raws[1],
        raws[2],
        raws[3],
        raws[4],
        raws[5],
        raws[6],
        raws[7],
        raws[8],
        raws[9],
        raws[10],
        raws[11],
        raws[12],
        raws[13]
    );
    let fs = post_json(&d, &body);
    let kinds: Vec<&str> = fs.iter().map(|f| f.detector.as_str()).collect();
    for k in [
        "payment_card",
        "iban",
        "email",
        "phone",
        "us_ssn",
        "uk_nino",
        "jwt",
        "github_token",
        "slack_token",
        "stripe_key",
        "google_api_key",
        "aws_access_key_id",
        "password",
        "account_number",
        "uk_sort_code_account",
        "private_key",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    let debug = format!("{fs:?}");
    for raw in raws {
        assert!(!debug.contains(raw), "{raw} leaked: {debug}");
        let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
        if digits.len() >= 8 {
            assert!(!debug.contains(&digits), "{raw} digits leaked");
        }
    }
    assert!(!debug.contains("MIIEvQIBADANBg"));
    assert_eq!(find(&fs, "payment_card").unwrap().sample, "411111******1111");
    assert_eq!(find(&fs, "jwt").unwrap().sample, "eyJhbGciOi\u{2026}");
}

#[test]
fn an_iban_field_is_not_also_a_card() {
    let d = Detector::new(&SensitiveConfig::default()).unwrap();
    // The printed Serbian IBAN holds a Mastercard-shaped, Luhn-valid run of 16 digits.
    let fs = post_json(&d, r#"{"iban": "RS35 2600 0560 1001 6113 79"}"#);
    assert!(find(&fs, "iban").is_some(), "{fs:?}");
    assert!(find(&fs, "payment_card").is_none(), "{fs:?}");
}

#[test]
fn slices_of_jwts_are_not_aws_secrets() {
    let d = Detector::new(&SensitiveConfig::default()).unwrap();
    // 40 base64 characters between '-' and '.' (inside a signature or before a payload).
    for text in [
        "token eyJ0eXAiOiJKV1QiLCJraWQiOiJhYmMxMjM0NTY3.payload",
        "sig Xk9-wJalrXUtnFEMI0K7MDENGbPxRfiCYEXAMPLEKEYZ-rest",
    ] {
        let fs = d.scan_text(text.as_bytes(), Side::Response, "response.body");
        assert!(find(&fs, "aws_secret_access_key").is_none(), "{text}: {fs:?}");
    }
    let fs = d.scan_text(
        b"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
        Side::Request,
        "request.body",
    );
    assert!(find(&fs, "aws_secret_access_key").is_some(), "{fs:?}");
}

#[test]
fn credential_detectors_are_told_from_data_detectors() {
    for name in ["jwt", "bearer_token", "aws_secret_access_key", "private_key", "password", "secret"] {
        assert!(super::is_credential_detector(name), "{name}");
    }
    for name in ["payment_card", "iban", "account_number", "email", "uk_nino", "employee_id"] {
        assert!(!super::is_credential_detector(name), "{name}");
    }
}

//! Configuration, allowlist and robustness tests.

use super::tests::{at, det, find, post_json};
use super::*;

// ---------------------------------------------------------------- configuration

#[test]
fn config_errors() {
    let cfg: SensitiveConfig =
        serde_json::from_str(r#"{"custom": [{"name": "employee_id", "pattern": "EMP-(\\d{6}"}]}"#).unwrap();
    let err = Detector::new(&cfg).unwrap_err().to_string();
    assert!(err.contains("employee_id") && err.contains("pattern"), "{err}");
    assert!(serde_json::from_str::<SensitiveConfig>(r#"{"disabeld": ["email"]}"#).is_err());
    assert!(
        serde_json::from_str::<SensitiveConfig>(r#"{"custom": [{"name": "x", "pattern": "a", "bogus": 1}]}"#)
            .is_err()
    );
    assert!(
        serde_json::from_str::<SensitiveConfig>(
            r#"{"allow": [{"path": "/", "detectors": [], "verb": "GET"}]}"#
        )
        .is_err()
    );
    let unknown: SensitiveConfig = serde_json::from_str(r#"{"disabled": ["emial"]}"#).unwrap();
    assert!(Detector::new(&unknown).unwrap_err().to_string().contains("emial"));
    let clash: SensitiveConfig =
        serde_json::from_str(r#"{"custom": [{"name": "email", "pattern": "x"}]}"#).unwrap();
    assert!(Detector::new(&clash).unwrap_err().to_string().contains("built-in"));
    let rule: SensitiveConfig =
        serde_json::from_str(r#"{"allow": [{"path": "api", "detectors": ["email"]}]}"#).unwrap();
    assert!(Detector::new(&rule).unwrap_err().to_string().contains("allow rule #0"));
}

#[test]
fn disabled_and_min_confidence() {
    let cfg: SensitiveConfig =
        serde_json::from_str(r#"{"disabled": ["email"], "min_confidence": "medium"}"#).unwrap();
    let d = Detector::new(&cfg).unwrap();
    let fs =
        post_json(&d, r#"{"e": "jane@example.com", "orderId": "4111111111111111", "c": "4111111111111111"}"#);
    assert!(find(&fs, "email").is_none());
    assert_eq!(fs.len(), 1, "{fs:?}");
    assert_eq!(fs[0].location, "request.body:$.c");
}

#[test]
fn custom_detectors() {
    let cfg: SensitiveConfig = serde_json::from_str(
        r#"{"custom": [
            {"name": "employee_id", "pattern": "EMP-\\d{6}", "confidence": "high"},
            {"name": "loyalty", "pattern": "\\b\\d{10}\\b", "validator": "luhn", "field_names": ["loyalty_no"]},
            {"name": "ref97", "pattern": "\\bRF\\d{4}\\b", "validator": "mod97"}
        ]}"#,
    )
    .unwrap();
    let d = Detector::new(&cfg).unwrap();
    let fs = post_json(
        &d,
        r#"{"who": "EMP-123456", "loyaltyNo": "1234567897", "other": "1234567897", "r": "RF0010"}"#,
    );
    let emp = at(&fs, "employee_id", "request.body:$.who").unwrap();
    assert_eq!((emp.confidence, emp.sample.as_str()), (Confidence::High, "[REDACTED:8-16]"));
    assert!(at(&fs, "loyalty", "request.body:$.loyaltyNo").is_some());
    assert!(at(&fs, "loyalty", "request.body:$.other").is_none());
    assert!(at(&fs, "ref97", "request.body:$.r").is_some());
    assert!(find(&post_json(&d, r#"{"loyalty_no": "1234567890"}"#), "loyalty").is_none());
    assert!(find(&post_json(&d, r#"{"r": "RF0000"}"#), "ref97").is_none());
}

#[test]
fn allowlist_matches_method_path_and_side_only() {
    let cfg: SensitiveConfig = serde_json::from_str(
        r#"{"allow": [
            {"method": "post", "path": "/api/*/things", "detectors": ["payment_card"]},
            {"path": "/profile/**", "detectors": ["*"], "side": "response"}
        ]}"#,
    )
    .unwrap();
    let d = Detector::new(&cfg).unwrap();
    let body = br#"{"card": "4111111111111111", "email": "jane@example.com"}"#;
    let run = |method: &str, target: &str, response: bool| {
        let msg = MessageView { headers: &[], body, content_type: Some("application/json") };
        let ex = ExchangeView {
            method,
            target,
            request: (!response).then_some(msg),
            response: response.then_some(msg),
        };
        d.inspect(&ex).into_iter().map(|f| f.detector).collect::<Vec<_>>()
    };
    assert_eq!(run("POST", "/api/v1/things?x=1", false), ["email"]);
    assert_eq!(run("PUT", "/api/v1/things", false), ["payment_card", "email"]);
    assert_eq!(run("POST", "/api/v1/other", false), ["payment_card", "email"]);
    assert_eq!(run("POST", "/api/v1/v2/things", false), ["payment_card", "email"]);
    assert!(run("GET", "/profile/me/cards", true).is_empty());
    assert_eq!(run("GET", "/profile/me/cards", false), ["payment_card", "email"]);
}

// ---------------------------------------------------------------- robustness

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const PIECES: &[&str] = &[
    "4111 1111 1111 1111",
    "GB82 WEST 1234 5698 7654 32",
    "+44 20 7946 0958",
    "a@b.co",
    "eyJhbGciOiJIUzI1NiJ9.e30.x",
    "AKIA",
    "-----BEGIN ",
    "PRIVATE KEY",
    "12-34-56",
    "536-90-",
    "AB 12 34",
    "xoxb-",
    "ghp_",
    "\\u00e9",
    "\"",
    "{",
    "[",
    ",",
    ":",
    "\u{1F600}",
    "%",
    "%4",
    "+",
    "@",
    ".",
    "-",
    " ",
];

fn random_text(r: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..r.below(40) {
        if r.below(3) == 0 {
            out.push(r.next() as u8);
        } else {
            out.extend_from_slice(PIECES[r.below(PIECES.len())].as_bytes());
        }
    }
    out
}

fn random_json(r: &mut Rng, depth: usize) -> serde_json::Value {
    use serde_json::Value;
    match if depth > 6 { r.below(3) } else { r.below(6) } {
        0 => Value::String(String::from_utf8_lossy(&random_text(r)).into_owned()),
        1 => Value::from(r.next() >> r.below(64)),
        2 => Value::Bool(r.below(2) == 0),
        3 => Value::Array((0..r.below(5)).map(|_| random_json(r, depth + 1)).collect()),
        _ => {
            let keys = [
                "card",
                "iban",
                "password",
                "sortCode",
                "accountNumber",
                "x",
                "a b",
                "ssn",
                "phone",
                "bic",
                "token",
            ];
            Value::Object(
                (0..r.below(5))
                    .map(|_| (keys[r.below(keys.len())].to_owned(), random_json(r, depth + 1)))
                    .collect(),
            )
        }
    }
}

#[test]
fn random_input_never_panics() {
    let d = det();
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..3000 {
        let bytes: Vec<u8> = if i % 2 == 0 {
            (0..r.below(600)).map(|_| r.next() as u8).collect()
        } else {
            random_text(&mut r)
        };
        let _ = d.scan_text(&bytes, Side::Request, "request.body");
        let json = serde_json::to_vec(&random_json(&mut r, 0)).unwrap();
        let cut = r.below(json.len() + 1);
        let headers = vec![
            ("Authorization".to_owned(), bytes.clone()),
            ("Cookie".to_owned(), random_text(&mut r)),
            (String::from_utf8_lossy(&random_text(&mut r)).into_owned(), bytes.clone()),
        ];
        let target = String::from_utf8_lossy(&random_text(&mut r)).into_owned();
        for body in [&json[..], &json[..cut], &bytes[..]] {
            for ct in [Some("application/json"), Some("application/x-www-form-urlencoded"), None] {
                let msg = MessageView { headers: &headers, body, content_type: ct };
                let _ = d.inspect(&ExchangeView {
                    method: "GET",
                    target: &target,
                    request: Some(msg),
                    response: Some(msg),
                });
            }
        }
    }
}

/// The JSON walk stops at a depth of 64 and after 200,000 nodes (`json.rs`): a deeper or larger
/// document costs a bounded walk, never a stack overflow, and is not rescanned as text. What was
/// found before a bound is kept.
#[test]
fn deep_and_huge_documents_are_bounded() {
    let d = det();
    let card_at = |depth: usize| format!("{}\"4111111111111111\"{}", "[".repeat(depth), "]".repeat(depth));
    assert_eq!(post_json(&d, &card_at(60)).len(), 1, "a card within the depth bound is found");
    assert!(post_json(&d, &card_at(5000)).is_empty(), "past the depth bound the walk stops");
    let deep_obj = format!("{}1{}", r#"{"a":"#.repeat(100), "}".repeat(100));
    assert!(post_json(&d, &deep_obj).is_empty());
    let before_limit = format!("[\"4111111111111111\",{}0]", "0,".repeat(300_000));
    assert_eq!(post_json(&d, &before_limit).len(), 1, "found before the node bound, kept");
    let after_limit = format!("[{}\"4111111111111111\"]", "0,".repeat(300_000));
    assert!(post_json(&d, &after_limit).is_empty(), "past the node bound the walk stops");
}

#[test]
fn detector_is_send_sync_clone_and_names_its_detectors() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Detector>();
    let d = det();
    assert!(d.detector_names().len() >= 21);
    assert!(format!("{d:?}").contains("Detector"));
}

//! Sensitive data: detection of payment data, personal data and credentials in HTTP exchanges.
//!
//! `mask` is the only place raw values turn into output: a [`Finding`] carries a masked sample,
//! never the value itself. Detection is one pass of literal anchors (Aho-Corasick) and one pass of a
//! byte tokenizer per scanned value; validators (Luhn, mod-97, IIN ranges, JWT header decoding, ...)
//! only run on candidates.

mod allow;
mod context;
mod custom;
mod iban_national;
mod json;
pub mod keyed;
pub mod mask;
mod message;
mod numeric;
mod payment;
mod pii;
mod prefilter;
mod protobuf;
mod quiet;
mod scan;
mod secrets;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_config;
#[cfg(test)]
mod tests_prefilter;

use std::sync::{Arc, Mutex, MutexGuard};

use aho_corasick::AhoCorasick;
use serde::{Deserialize, Serialize};

use self::allow::CompiledAllow;
use self::custom::CompiledCustom;
use self::keyed::{Keyer, ValueHash};
use self::prefilter::Prefilter;

/// Which message of the exchange a finding comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Request,
    Response,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Side::Request => "request",
            Side::Response => "response",
        }
    }
}

/// One HTTP message as the detector sees it.
#[derive(Clone, Copy, Debug)]
pub struct MessageView<'a> {
    /// Headers as received.
    pub headers: &'a [(String, Vec<u8>)],
    /// Already decompressed, possibly truncated (capped).
    pub body: &'a [u8],
    pub content_type: Option<&'a str>,
}

/// One request/response pair.
#[derive(Clone, Copy, Debug)]
pub struct ExchangeView<'a> {
    pub method: &'a str,
    /// Raw request-target: path + optional `?query`.
    pub target: &'a str,
    pub request: Option<MessageView<'a>>,
    pub response: Option<MessageView<'a>>,
}

/// How sure a detector is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

/// One kind of sensitive data seen at one place of an exchange. Never holds the raw value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub detector: String,
    pub confidence: Confidence,
    pub location: String,
    pub side: Side,
    /// Occurrences merged for the same (detector, location, side) in this exchange.
    pub count: u32,
    /// Masked sample, never the raw value.
    pub sample: String,
    /// Keyed hash of the sample's raw value (see `keyed`): the same value hashes the same on
    /// this installation, so repeats correlate without the value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_hash: Option<ValueHash>,
}

impl serde::Serialize for ValueHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Detection settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensitiveConfig {
    /// Detector names turned off.
    #[serde(default)]
    pub disabled: Vec<String>,
    #[serde(default)]
    pub custom: Vec<CustomDetector>,
    /// Expected data per endpoint: matching findings are dropped.
    #[serde(default)]
    pub allow: Vec<AllowRule>,
    #[serde(default)]
    pub min_confidence: Option<Confidence>,
}

/// A user-defined detector: a regex, optionally validated, optionally limited to named fields.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomDetector {
    pub name: String,
    pub pattern: String,
    #[serde(default)]
    pub validator: Option<ValidatorKind>,
    /// When not empty, the detector only looks at values of these fields (JSON keys, form and query
    /// parameters, headers); names compare case-insensitively, ignoring `-`, `_`, `.` and spaces.
    #[serde(default)]
    pub field_names: Vec<String>,
    #[serde(default)]
    pub confidence: Option<Confidence>,
}

/// Checksums a custom detector's match must pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidatorKind {
    /// Luhn over the digits of the match (card numbers, IMEI, many national ids).
    Luhn,
    /// Full IBAN check: country length and format, then mod-97.
    Iban,
    /// ISO 7064 mod 97-10 over the match's digits and letters (A=10 ... Z=35): remainder 1.
    Mod97,
}

/// Findings of this kind are expected on an endpoint.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowRule {
    #[serde(default)]
    pub method: Option<String>,
    /// Glob over the path: `*` one segment (or part of one), `**` any number of segments.
    pub path: String,
    /// Detector names; `*` means all.
    pub detectors: Vec<String>,
    #[serde(default)]
    pub side: Option<Side>,
}

/// A configuration the detector cannot run with. Messages name the rule and the problem, never
/// traffic data.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("custom detector {name:?}: invalid pattern: {reason}")]
    BadPattern { name: String, reason: String },
    #[error("custom detector {name:?}: {problem}")]
    BadCustom { name: String, problem: &'static str },
    #[error("allow rule #{index} (path {path:?}): {problem}")]
    BadAllowRule { index: usize, path: String, problem: String },
    #[error("unknown detector {name:?} in {context}")]
    UnknownDetector { name: String, context: String },
}

/// Built-in detectors. The discriminant is the detector id; custom detectors follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    PaymentCard = 0,
    Iban,
    UkSortCodeAccount,
    AccountNumber,
    Bic,
    Email,
    Phone,
    UsSsn,
    UkNino,
    Jwt,
    BearerToken,
    BasicCredentials,
    AwsAccessKeyId,
    AwsSecretAccessKey,
    GithubToken,
    SlackToken,
    StripeKey,
    GoogleApiKey,
    PrivateKey,
    Password,
    Secret,
}

pub(crate) const BUILTIN_NAMES: [&str; 21] = [
    "payment_card",
    "iban",
    "uk_sort_code_account",
    "account_number",
    "bic",
    "email",
    "phone",
    "us_ssn",
    "uk_nino",
    "jwt",
    "bearer_token",
    "basic_credentials",
    "aws_access_key_id",
    "aws_secret_access_key",
    "github_token",
    "slack_token",
    "stripe_key",
    "google_api_key",
    "private_key",
    "password",
    "secret",
];

/// Whether `name` is a built-in detector of credentials (tokens, keys, passwords: `jwt` to
/// `secret` in [`BUILTIN_NAMES`]) rather than of data about people or accounts.
#[must_use]
pub fn is_credential_detector(name: &str) -> bool {
    BUILTIN_NAMES[Kind::Jwt.id() as usize..].contains(&name)
}

impl Kind {
    pub(crate) fn id(self) -> u16 {
        self as u16
    }

    /// Credentials with a recognisable shape: when one is found, the generic `password`/`secret`
    /// finding for the same value is redundant.
    pub(crate) fn is_credential_id(id: u16) -> bool {
        (Kind::Jwt.id()..=Kind::PrivateKey.id()).contains(&id) || id >= BUILTIN_NAMES.len() as u16
    }
}

/// One validated occurrence inside a scanned value, before it gets a location.
#[derive(Clone, Debug)]
pub(crate) struct Hit {
    pub id: u16,
    pub confidence: Confidence,
    pub sample: String,
    /// Keyed hash of the raw value: de-duplicates between a JSON walk and a text re-scan, and is
    /// exported as the finding's `value_hash`.
    pub hash: ValueHash,
}

/// Compiled detection settings: immutable, `Send + Sync`, cheap to share.
#[derive(Clone)]
pub struct Detector {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// Per detector id (built-ins, then customs): reported at all.
    enabled: Vec<bool>,
    names: Vec<String>,
    anchors: AhoCorasick,
    prefilter: Prefilter,
    /// Off only in tests that compare the scan with and without the prefilter.
    use_prefilter: bool,
    customs: CompiledCustom,
    allow: Vec<CompiledAllow>,
    min_confidence: Option<Confidence>,
    keyer: Keyer,
    /// Header fields this detector scanned to nothing (see `quiet`); behind a lock so the
    /// detector stays shareable, taken once per exchange and skipped when another thread holds
    /// it.
    quiet: Mutex<quiet::QuietHeaders>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("detectors", &self.inner.names.len())
            .field("allow_rules", &self.inner.allow.len())
            .finish_non_exhaustive()
    }
}

/// Upper bound of distinct findings of one exchange; further ones only raise counts.
const MAX_FINDINGS: usize = 256;

impl Detector {
    /// A detector whose value hashes use a key of this process only.
    pub fn new(config: &SensitiveConfig) -> Result<Detector, ConfigError> {
        Self::with_keyer(config, Keyer::ephemeral())
    }

    /// A detector whose findings carry value hashes under `keyer`.
    pub fn with_keyer(config: &SensitiveConfig, keyer: Keyer) -> Result<Detector, ConfigError> {
        Self::build(config, keyer, true)
    }

    /// The same detector with the prefilter off: the reference its tests compare against.
    #[cfg(test)]
    pub(crate) fn unfiltered(config: &SensitiveConfig, keyer: Keyer) -> Result<Detector, ConfigError> {
        Self::build(config, keyer, false)
    }

    fn build(config: &SensitiveConfig, keyer: Keyer, use_prefilter: bool) -> Result<Detector, ConfigError> {
        let customs = CompiledCustom::new(&config.custom)?;
        let mut names: Vec<String> = BUILTIN_NAMES.iter().map(|n| (*n).to_owned()).collect();
        names.extend(config.custom.iter().map(|c| c.name.clone()));
        let mut enabled = vec![true; names.len()];
        for name in &config.disabled {
            let Some(id) = names.iter().position(|n| n == name) else {
                return Err(ConfigError::UnknownDetector {
                    name: name.clone(),
                    context: "disabled".to_owned(),
                });
            };
            enabled[id] = false;
        }
        let allow = config
            .allow
            .iter()
            .enumerate()
            .map(|(index, rule)| CompiledAllow::new(index, rule, &names))
            .collect::<Result<Vec<_>, _>>()?;
        let anchors = scan::build_anchors().map_err(|_| ConfigError::BadCustom {
            name: String::new(),
            problem: "internal anchor automaton failed to build",
        })?;
        let prefilter = Prefilter::new().map_err(|_| ConfigError::BadCustom {
            name: String::new(),
            problem: "internal prefilter automaton failed to build",
        })?;
        Ok(Detector {
            inner: Arc::new(Inner {
                enabled,
                names,
                anchors,
                prefilter,
                use_prefilter,
                customs,
                allow,
                min_confidence: config.min_confidence,
                keyer,
                quiet: Mutex::default(),
            }),
        })
    }

    /// All findings of one exchange (allowlisted ones removed), merged by (detector, location, side).
    #[must_use]
    pub fn inspect(&self, exchange: &ExchangeView<'_>) -> Vec<Finding> {
        let mut col = Collector::new(&self.inner);
        let (path, query) = match exchange.target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (exchange.target, None),
        };
        message::scan_target(&mut col, path, query);
        if let Some(req) = &exchange.request {
            col.side = Side::Request;
            message::scan_message(&mut col, req);
        }
        if let Some(resp) = &exchange.response {
            col.side = Side::Response;
            message::scan_message(&mut col, resp);
        }
        let mut out = col.finish();
        out.retain(|f| !self.inner.allow.iter().any(|rule| rule.suppresses(exchange.method, path, f)));
        out
    }

    /// Scan free text: findings with the given location.
    #[must_use]
    pub fn scan_text(&self, text: &[u8], side: Side, location: &str) -> Vec<Finding> {
        let mut col = Collector::new(&self.inner);
        col.side = side;
        col.scan_plain(text, location);
        col.finish()
    }

    /// The names of all detectors this instance knows (built-in and custom).
    #[must_use]
    pub fn detector_names(&self) -> &[String] {
        &self.inner.names
    }
}

impl Inner {
    pub(crate) fn on(&self, id: u16) -> bool {
        self.enabled.get(usize::from(id)).copied().unwrap_or(false)
    }

    /// The keyed hash of a raw value (never exported raw).
    pub(crate) fn value_hash(&self, raw: &[u8]) -> ValueHash {
        self.keyer.hash(raw)
    }
}

/// Gathers hits of one exchange into merged findings.
pub(crate) struct Collector<'d> {
    pub det: &'d Inner,
    pub side: Side,
    findings: Vec<Finding>,
    /// Scratch buffer of hits, reused for every scanned value.
    pub hits: Vec<Hit>,
    /// Location scratch buffer.
    pub loc: String,
    /// (detector id, value hash) already reported in the current body, for truncated-JSON fallback.
    pub seen: Vec<(u16, ValueHash)>,
    pub track_seen: bool,
    /// Hits made so far, before merging or filtering: a value whose scan leaves this unchanged
    /// made none.
    pub hits_made: u64,
    /// The detector's quiet header fields, when this exchange could take the lock (never for
    /// the unfiltered reference detector of the tests).
    quiet: Option<MutexGuard<'d, quiet::QuietHeaders>>,
}

impl<'d> Collector<'d> {
    fn new(det: &'d Inner) -> Self {
        Collector {
            det,
            side: Side::Request,
            findings: Vec::new(),
            hits: Vec::new(),
            loc: String::new(),
            seen: Vec::new(),
            track_seen: false,
            hits_made: 0,
            quiet: det.quiet.try_lock().ok().filter(|_| det.use_prefilter),
        }
    }

    /// The header field `name: value` scanned to nothing before.
    pub(crate) fn quiet_header(&self, name: &str, value: &[u8]) -> bool {
        self.quiet.as_ref().is_some_and(|q| q.contains(name, value))
    }

    pub(crate) fn remember_quiet_header(&mut self, name: &str, value: &[u8]) {
        if let Some(q) = self.quiet.as_mut() {
            q.insert(name, value);
        }
    }

    /// Scan a whole text with no field context, reporting at `location`.
    pub(crate) fn scan_plain(&mut self, text: &[u8], location: &str) {
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        scan::scan_value(self.det, text, &context::Field::NONE, &mut hits);
        for hit in hits.drain(..) {
            self.add(hit, location);
        }
        self.hits = hits;
    }

    /// Record one hit at a location (merging).
    pub(crate) fn add(&mut self, hit: Hit, location: &str) {
        self.hits_made += 1;
        if !self.det.on(hit.id) {
            return;
        }
        if self.track_seen {
            if self.seen.len() < 4096 {
                self.seen.push((hit.id, hit.hash));
            }
        } else if self.seen.contains(&(hit.id, hit.hash)) {
            return;
        }
        let name = self.det.names.get(usize::from(hit.id)).map_or("", String::as_str);
        let side = self.side;
        if let Some(f) =
            self.findings.iter_mut().find(|f| f.side == side && f.detector == name && f.location == location)
        {
            f.count = f.count.saturating_add(1);
            if hit.confidence > f.confidence {
                f.confidence = hit.confidence;
                f.sample = hit.sample;
                f.value_hash = Some(hit.hash);
            }
            return;
        }
        if self.findings.len() >= MAX_FINDINGS {
            return;
        }
        self.findings.push(Finding {
            detector: name.to_owned(),
            confidence: hit.confidence,
            location: location.to_owned(),
            side,
            count: 1,
            sample: hit.sample,
            value_hash: Some(hit.hash),
        });
    }

    fn finish(self) -> Vec<Finding> {
        let mut out = self.findings;
        if let Some(min) = self.det.min_confidence {
            out.retain(|f| f.confidence >= min);
        }
        out
    }
}

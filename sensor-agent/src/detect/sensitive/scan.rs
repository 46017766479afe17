//! The scanner: one Aho-Corasick pass over literal anchors, one tokenizer pass over words, the
//! validators only on candidates.

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};

use super::context::{Field, Hint, banking_words_near};
use super::numeric::{NumToken, account_near, char_pair, nino_sample, ssn_sample};
use super::{Confidence, Hit, Inner, Kind, mask, payment, pii, secrets};

#[derive(Clone, Copy)]
enum Anchor {
    AwsKeyId,
    Github,
    GithubPat,
    Slack,
    StripeLive,
    StripePublishable,
    StripeTest,
    Google,
    PrivateKey,
    Jwt,
    At,
}

const ANCHORS: &[(&str, Anchor)] = &[
    ("AKIA", Anchor::AwsKeyId),
    ("ASIA", Anchor::AwsKeyId),
    ("ghp_", Anchor::Github),
    ("gho_", Anchor::Github),
    ("ghu_", Anchor::Github),
    ("ghs_", Anchor::Github),
    ("ghr_", Anchor::Github),
    ("github_pat_", Anchor::GithubPat),
    ("xoxa-", Anchor::Slack),
    ("xoxb-", Anchor::Slack),
    ("xoxp-", Anchor::Slack),
    ("xoxr-", Anchor::Slack),
    ("xoxs-", Anchor::Slack),
    ("sk_live_", Anchor::StripeLive),
    ("rk_live_", Anchor::StripeLive),
    ("pk_live_", Anchor::StripePublishable),
    ("sk_test_", Anchor::StripeTest),
    ("rk_test_", Anchor::StripeTest),
    ("AIza", Anchor::Google),
    ("-----BEGIN ", Anchor::PrivateKey),
    ("eyJ", Anchor::Jwt),
    ("@", Anchor::At),
];

/// The anchor literals, for the prefilter's whole-body search.
pub(crate) fn anchor_literals() -> impl Iterator<Item = &'static str> {
    ANCHORS.iter().map(|a| a.0)
}

pub(crate) fn build_anchors() -> Result<AhoCorasick, aho_corasick::BuildError> {
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostFirst)
        .kind(Some(AhoCorasickKind::DFA))
        .build(ANCHORS.iter().map(|a| a.0))
}

/// Per-value scanning state.
struct Scan<'a, 'd> {
    det: &'d Inner,
    text: &'a [u8],
    field: &'a Field<'a>,
    hits: &'a mut Vec<Hit>,
    /// Detector ids already decided by a whole-value check (bit per built-in).
    suppress: u64,
    aws_context: bool,
}

/// Scan one value (a JSON leaf, a parameter, a header, or a whole text body).
pub(crate) fn scan_value(det: &Inner, text: &[u8], field: &Field<'_>, hits: &mut Vec<Hit>) {
    // Most values hold no candidate byte at all; a name asking for a whole-value check is the
    // one case where the value's parts say too little.
    if det.use_prefilter && !field.hint.whole_value() && det.prefilter.text_quiet(text) {
        det.customs.scan(det, text, field, hits);
        return;
    }
    let mut s = Scan { det, text, field, hits, suppress: 0, aws_context: field.aws_context };
    // A value that is wholly one identifier (an IBAN in an `iban` field) is explained: scanning
    // its parts again would find a card-shaped digit run inside an IBAN.
    let whole = field.hint != Hint::None && {
        s.whole_value();
        s.suppress != 0
    };
    if !whole {
        s.anchors();
        s.words();
    }
    det.customs.scan(det, text, field, s.hits);
}

fn conf_if(cond: bool, yes: Confidence, no: Confidence) -> Confidence {
    if cond { yes } else { no }
}

impl Scan<'_, '_> {
    fn wants(&self, kind: Kind) -> bool {
        self.det.on(kind.id()) && self.suppress & (1u64 << kind.id()) == 0
    }

    fn push(&mut self, kind: Kind, confidence: Confidence, sample: String, raw: &[u8]) {
        self.hits.push(Hit { id: kind.id(), confidence, sample, hash: self.det.value_hash(raw) });
    }

    fn decided(&mut self, kind: Kind) {
        self.suppress |= 1u64 << kind.id();
    }

    /// Checks that need the whole value and its field name (national forms, lowercase input).
    fn whole_value(&mut self) {
        let v = self.text.trim_ascii();
        if v.is_empty() || v.len() > 64 {
            return;
        }
        let mut up = [0u8; 64];
        up[..v.len()].copy_from_slice(v);
        up[..v.len()].make_ascii_uppercase();
        let up = &up[..v.len()];
        match self.field.hint {
            Hint::Iban if self.wants(Kind::Iban) => {
                if let Some(m) = payment::iban_at(up, 0, true).filter(|m| m.end == up.len()) {
                    self.push(Kind::Iban, m.confidence(), mask::iban(m.electronic()), m.electronic());
                    self.decided(Kind::Iban);
                }
            }
            Hint::Bic if self.wants(Kind::Bic) && payment::bic_ok(up) => {
                self.push(Kind::Bic, Confidence::High, mask::keep_ends(up, 6, 0), up);
                self.decided(Kind::Bic);
            }
            Hint::Ssn if self.wants(Kind::UsSsn) => {
                let mut d = [0u8; 9];
                let mut n = 0;
                for &b in v {
                    if b.is_ascii_digit() && n < 9 {
                        d[n] = b;
                        n += 1;
                    } else if !matches!(b, b'-' | b' ') {
                        return;
                    }
                }
                if n == 9 && v.iter().filter(|b| b.is_ascii_digit()).count() == 9 && pii::ssn_ok(&d) {
                    self.push(Kind::UsSsn, Confidence::High, ssn_sample(&d), &d);
                    self.decided(Kind::UsSsn);
                }
            }
            Hint::Nino if self.wants(Kind::UkNino) && pii::nino_at(up, 0, true) == Some(up.len()) => {
                self.push(Kind::UkNino, Confidence::High, nino_sample(up), up);
                self.decided(Kind::UkNino);
            }
            Hint::Phone if self.wants(Kind::Phone) && pii::national_phone(v) => {
                let digits: Vec<u8> = v.iter().copied().filter(u8::is_ascii_digit).collect();
                self.push(Kind::Phone, Confidence::High, mask::phone(&digits, false), &digits);
                self.decided(Kind::Phone);
            }
            _ => {}
        }
    }

    fn anchors(&mut self) {
        let text = self.text;
        let mut pos = 0;
        while pos < text.len() {
            let Some(m) = self.det.anchors.find(Input::new(text).span(pos..text.len())) else {
                break;
            };
            let i = m.start();
            let anchor = ANCHORS.get(m.pattern().as_usize()).map(|a| a.1);
            let end = match anchor {
                Some(a) => self.anchor(a, i),
                None => None,
            };
            pos = end.unwrap_or(m.end()).max(m.end());
        }
    }

    fn anchor(&mut self, anchor: Anchor, i: usize) -> Option<usize> {
        let text = self.text;
        match anchor {
            Anchor::AwsKeyId => {
                let e = secrets::aws_key_id_at(text, i)?;
                self.aws_context = true;
                if self.wants(Kind::AwsAccessKeyId) {
                    self.push(
                        Kind::AwsAccessKeyId,
                        Confidence::High,
                        mask::keep_ends(&text[i..e], 4, 4),
                        &text[i..e],
                    );
                }
                Some(e)
            }
            Anchor::Github | Anchor::GithubPat => {
                let pat = matches!(anchor, Anchor::GithubPat);
                let e = secrets::github_at(text, i, pat)?;
                let plen = if pat { 11 } else { 4 };
                self.token(Kind::GithubToken, Confidence::High, i, plen, e);
                Some(e)
            }
            Anchor::Slack => {
                let e = secrets::slack_at(text, i)?;
                self.token(Kind::SlackToken, Confidence::High, i, 5, e);
                Some(e)
            }
            Anchor::StripeLive | Anchor::StripePublishable | Anchor::StripeTest => {
                let e = secrets::stripe_at(text, i)?;
                let c = match anchor {
                    Anchor::StripeLive => Confidence::High,
                    Anchor::StripePublishable => Confidence::Medium,
                    _ => Confidence::Low,
                };
                self.token(Kind::StripeKey, c, i, 8, e);
                Some(e)
            }
            Anchor::Google => {
                let e = secrets::google_at(text, i)?;
                self.token(Kind::GoogleApiKey, Confidence::High, i, 4, e);
                Some(e)
            }
            Anchor::PrivateKey => {
                let e = secrets::private_key_at(text, i)?;
                if self.wants(Kind::PrivateKey) {
                    // The BEGIN line only names the key type; the key material follows it.
                    let line = String::from_utf8_lossy(&text[i..e]).into_owned();
                    let body_end =
                        memchr::memmem::find(&text[e..], b"-----END").map_or(text.len(), |p| e + p);
                    self.push(
                        Kind::PrivateKey,
                        Confidence::High,
                        format!("{line} {}", mask::REDACTED),
                        &text[i..body_end],
                    );
                }
                Some(e)
            }
            Anchor::Jwt => {
                let (e, header_end) = secrets::jwt_at(text, i)?;
                if self.wants(Kind::Jwt) {
                    self.push(Kind::Jwt, Confidence::High, mask::jwt(&text[i..header_end]), &text[i..e]);
                }
                Some(e)
            }
            Anchor::At => {
                let (s, e) = pii::email_at(text, i)?;
                if self.wants(Kind::Email) {
                    let c = conf_if(self.field.hint == Hint::Email, Confidence::High, Confidence::Medium);
                    self.push(Kind::Email, c, mask::email(&text[s..e]), &text[s..e]);
                }
                Some(e)
            }
        }
    }

    fn token(&mut self, kind: Kind, c: Confidence, i: usize, prefix: usize, e: usize) {
        if self.wants(kind) {
            self.push(kind, c, mask::prefixed(&self.text[i..i + prefix], e - i - prefix), &self.text[i..e]);
        }
    }

    /// The word tokenizer: numbers, uppercase words, phone numbers, 40-char base64 words.
    fn words(&mut self) {
        let text = self.text;
        let n = text.len();
        let mut i = 0;
        while i < n {
            let b = text[i];
            if b == b'+' {
                let starts = i == 0 || !(text[i - 1].is_ascii_alphanumeric() || text[i - 1] == b'+');
                if starts
                    && i + 1 < n
                    && text[i + 1].is_ascii_digit()
                    && self.wants(Kind::Phone)
                    && let Some((end, digits, nd)) = pii::e164_at(text, i)
                {
                    let c = conf_if(self.field.hint == Hint::Phone, Confidence::High, Confidence::Medium);
                    self.push(Kind::Phone, c, mask::phone(&digits[..nd], true), &digits[..nd]);
                    i = end;
                    continue;
                }
                i += 1;
                continue;
            }
            if !b.is_ascii_alphanumeric() {
                i += 1;
                continue;
            }
            let mut word_end = i + 1;
            while word_end < n && text[word_end].is_ascii_alphanumeric() {
                word_end += 1;
            }
            if i > 0 && text[i - 1].is_ascii_alphanumeric() {
                i = word_end;
                continue;
            }
            let (found, skip) = if b.is_ascii_digit() {
                self.numeric(i)
            } else if b.is_ascii_uppercase() {
                (self.upper(i, word_end), word_end)
            } else {
                (None, word_end)
            };
            // A 40-character base64 word: the alphanumeric run is exactly 40 or continues with '+'/'/'.
            let maybe_b64 =
                word_end - i == 40 || (word_end - i < 40 && matches!(text.get(word_end), Some(b'+' | b'/')));
            let next = match found {
                Some(e) => e,
                None if maybe_b64 => self.aws_secret(i).unwrap_or(skip.max(word_end)),
                None => skip.max(word_end),
            };
            i = next.max(i + 1);
        }
    }

    fn aws_secret(&mut self, i: usize) -> Option<usize> {
        if !self.wants(Kind::AwsSecretAccessKey) {
            return None;
        }
        let e = secrets::aws_secret_shape(self.text, i)?;
        let c = if self.field.hint == Hint::Secret || self.aws_context {
            Confidence::High
        } else {
            Confidence::Low
        };
        self.push(Kind::AwsSecretAccessKey, c, mask::redacted_len(40), &self.text[i..e]);
        Some(e)
    }

    /// A digit word at `i`: cards, SSNs, sort code + account. Returns where a validated value ends
    /// (if any) and where the whole digit-group token ends.
    fn numeric(&mut self, i: usize) -> (Option<usize>, usize) {
        let text = self.text;
        let tok = NumToken::parse(text, i);
        let continues =
            i >= 2 && matches!(text[i - 1], b'.' | b',' | b'-' | b'/' | b':') && text[i - 2].is_ascii_digit();
        if (i >= 1 && text[i - 1] == b'+') || continues || (tok.nd < 6 && tok.ng == 1) {
            return (None, tok.end);
        }
        (self.numeric_token(&tok), tok.end)
    }

    fn numeric_token(&mut self, tok: &NumToken) -> Option<usize> {
        let text = self.text;
        if self.wants(Kind::PaymentCard)
            && let Some((end, nd)) = tok.card(text)
        {
            let d = &tok.digits[..nd];
            let c = match self.field.hint {
                Hint::Card => Confidence::High,
                Hint::None | Hint::Password | Hint::Secret => Confidence::Medium,
                _ => Confidence::Low,
            };
            self.push(Kind::PaymentCard, c, mask::pan(d), d);
            return Some(end);
        }
        let full_end_ok = !text.get(tok.end).is_some_and(u8::is_ascii_alphanumeric);
        if tok.sep == b'-' && full_end_ok && tok.lens() == [3, 2, 4] && self.wants(Kind::UsSsn) {
            let d = &tok.digits[..tok.nd];
            if pii::ssn_ok(d) {
                let c = conf_if(self.field.hint == Hint::Ssn, Confidence::High, Confidence::Medium);
                self.push(Kind::UsSsn, c, ssn_sample(d), d);
                return Some(tok.end);
            }
        }
        if tok.sep == b'-'
            && full_end_ok
            && tok.lens() == [2, 2, 2]
            && self.wants(Kind::UkSortCodeAccount)
            && let Some((acc_start, acc_end)) = account_near(text, tok.end)
        {
            let mut raw = [0u8; 14];
            raw[..6].copy_from_slice(&tok.digits[..6]);
            raw[6..].copy_from_slice(&text[acc_start..acc_end]);
            let sample = format!("**-**-{} ******{}", char_pair(&raw[4..6]), char_pair(&raw[12..14]));
            self.push(Kind::UkSortCodeAccount, Confidence::High, sample, &raw);
            return Some(acc_end);
        }
        None
    }

    /// An uppercase word at `i`: IBAN, NINO, BIC (the latter only with banking context).
    fn upper(&mut self, i: usize, word_end: usize) -> Option<usize> {
        let text = self.text;
        if self.wants(Kind::Iban)
            && let Some(m) = payment::iban_at(text, i, false)
        {
            self.push(Kind::Iban, m.confidence(), mask::iban(m.electronic()), m.electronic());
            return Some(m.end);
        }
        if self.wants(Kind::UkNino)
            && let Some(e) = pii::nino_at(text, i, false)
        {
            let c = conf_if(self.field.hint == Hint::Nino, Confidence::High, Confidence::Medium);
            let raw = &text[i..e];
            self.push(Kind::UkNino, c, nino_sample(raw), raw);
            return Some(e);
        }
        let word = &text[i..word_end];
        if self.wants(Kind::Bic) && payment::bic_ok(word) {
            let c = if self.field.hint == Hint::Bic {
                Some(Confidence::High)
            } else if banking_words_near(text, i, word_end) {
                Some(Confidence::Medium)
            } else {
                None
            };
            if let Some(c) = c {
                self.push(Kind::Bic, c, mask::keep_ends(word, 6, 0), word);
                return Some(word_end);
            }
        }
        None
    }
}

//! User-defined detectors: a regex, an optional checksum, optional field names.

use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use super::context::{Field, Name};
use super::{
    BUILTIN_NAMES, Confidence, ConfigError, CustomDetector, Hit, Inner, ValidatorKind, mask, payment,
};

/// Matches of one custom detector in one value, at most.
const MAX_MATCHES: usize = 64;

pub(crate) struct CompiledCustom {
    set: Option<RegexSet>,
    each: Vec<One>,
}

struct One {
    regex: Regex,
    validator: Option<ValidatorKind>,
    fields: Vec<Name>,
    confidence: Confidence,
}

/// The regex error without the pattern text (a pattern may quote what it looks for).
fn reason(err: &regex::Error) -> String {
    match err {
        regex::Error::Syntax(text) => {
            let lines: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with("error:")).collect();
            if lines.is_empty() { "syntax error".to_owned() } else { lines.join("; ").trim().to_owned() }
        }
        regex::Error::CompiledTooBig(limit) => format!("compiled pattern exceeds {limit} bytes"),
        _ => "unusable pattern".to_owned(),
    }
}

impl CompiledCustom {
    pub(crate) fn new(config: &[CustomDetector]) -> Result<CompiledCustom, ConfigError> {
        let mut each = Vec::with_capacity(config.len());
        for (i, c) in config.iter().enumerate() {
            let bad = |problem| ConfigError::BadCustom { name: c.name.clone(), problem };
            if c.name.is_empty() || c.name.len() > 64 {
                return Err(bad("name must be 1 to 64 characters"));
            }
            if !c.name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
                return Err(bad("name may only hold letters, digits, '_', '-' and '.'"));
            }
            if BUILTIN_NAMES.contains(&c.name.as_str()) {
                return Err(bad("name is taken by a built-in detector"));
            }
            if config[..i].iter().any(|o| o.name == c.name) {
                return Err(bad("name is used twice"));
            }
            if c.pattern.is_empty() {
                return Err(bad("pattern is empty"));
            }
            let regex = RegexBuilder::new(&c.pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| ConfigError::BadPattern { name: c.name.clone(), reason: reason(&e) })?;
            if regex.is_match(b"") {
                return Err(bad("pattern matches the empty string"));
            }
            each.push(One {
                regex,
                validator: c.validator,
                fields: c.field_names.iter().map(|f| Name::new(f.as_bytes())).collect(),
                confidence: c.confidence.unwrap_or(Confidence::Medium),
            });
        }
        let set = if config.is_empty() {
            None
        } else {
            let set = RegexSetBuilder::new(config.iter().map(|c| c.pattern.as_str()))
                .size_limit(8 << 20)
                .build()
                .map_err(|e| ConfigError::BadPattern {
                    name: "(all custom detectors)".to_owned(),
                    reason: reason(&e),
                })?;
            Some(set)
        };
        Ok(CompiledCustom { set, each })
    }

    /// No custom detector is configured.
    pub(crate) fn is_empty(&self) -> bool {
        self.set.is_none()
    }

    pub(crate) fn scan(&self, det: &Inner, text: &[u8], field: &Field<'_>, hits: &mut Vec<Hit>) {
        let Some(set) = &self.set else { return };
        if text.is_empty() {
            return;
        }
        let base = BUILTIN_NAMES.len();
        for idx in &set.matches(text) {
            let id = (base + idx) as u16;
            let Some(one) = self.each.get(idx) else { continue };
            if !det.on(id)
                || (!one.fields.is_empty() && !one.fields.iter().any(|f| f.as_bytes() == field.name))
            {
                continue;
            }
            for m in one.regex.find_iter(text).take(MAX_MATCHES) {
                let raw = m.as_bytes();
                if raw.is_empty() || !validate(one.validator, raw) {
                    continue;
                }
                hits.push(Hit {
                    id,
                    confidence: one.confidence,
                    sample: mask::redacted_len(raw.len()),
                    hash: det.value_hash(raw),
                });
            }
        }
    }
}

fn validate(kind: Option<ValidatorKind>, raw: &[u8]) -> bool {
    match kind {
        None => true,
        Some(ValidatorKind::Luhn) => {
            let mut d = [0u8; 64];
            let mut n = 0;
            for &b in raw.iter().filter(|b| b.is_ascii_digit()) {
                if n == d.len() {
                    return false;
                }
                d[n] = b;
                n += 1;
            }
            n >= 2 && payment::luhn(&d[..n])
        }
        Some(ValidatorKind::Iban) => {
            let mut up = [0u8; 64];
            let mut n = 0;
            for &b in raw.iter().filter(|b| b.is_ascii_alphanumeric()) {
                if n == up.len() {
                    return false;
                }
                up[n] = b.to_ascii_uppercase();
                n += 1;
            }
            payment::iban_at(&up[..n], 0, true).is_some_and(|m| m.end == n)
        }
        Some(ValidatorKind::Mod97) => {
            let chars = raw.iter().copied().filter(u8::is_ascii_alphanumeric);
            raw.iter().filter(|b| b.is_ascii_alphanumeric()).count() >= 2 && payment::mod97(chars) == Some(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators() {
        assert!(validate(Some(ValidatorKind::Luhn), b"4111-1111-1111-1111"));
        assert!(!validate(Some(ValidatorKind::Luhn), b"4111-1111-1111-1112"));
        assert!(validate(Some(ValidatorKind::Iban), b"gb82 west 1234 5698 7654 32"));
        assert!(!validate(Some(ValidatorKind::Iban), b"GB82 WEST 1234 5698 7654 33"));
        assert!(!validate(Some(ValidatorKind::Mod97), b"99"));
        // "1" padded: 97 * k + 1.
        assert!(validate(Some(ValidatorKind::Mod97), b"98"));
        assert!(validate(None, b"x"));
    }

    #[test]
    fn syntax_error_reason_hides_pattern() {
        let pattern = format!("({}", "SECRETWORD");
        let err = RegexBuilder::new(&pattern).build().unwrap_err();
        let r = reason(&err);
        assert!(!r.contains("SECRETWORD"), "{r}");
        assert!(r.contains("unclosed"), "{r}");
    }
}

//! Allowlist rules: expected sensitive data per endpoint.

use super::{AllowRule, ConfigError, Finding, Side};

pub(crate) struct CompiledAllow {
    method: Option<String>,
    segments: Vec<String>,
    /// Detector names; empty means all (`*`).
    detectors: Vec<String>,
    side: Option<Side>,
}

impl CompiledAllow {
    pub(crate) fn new(
        index: usize,
        rule: &AllowRule,
        known: &[String],
    ) -> Result<CompiledAllow, ConfigError> {
        let bad = |problem: &str| ConfigError::BadAllowRule {
            index,
            path: rule.path.clone(),
            problem: problem.to_owned(),
        };
        if !rule.path.starts_with('/') {
            return Err(bad("path must start with '/'"));
        }
        if rule.detectors.is_empty() {
            return Err(bad("detectors must name at least one detector (or \"*\")"));
        }
        let mut detectors = Vec::new();
        for d in &rule.detectors {
            if d == "*" {
                detectors.clear();
                break;
            }
            if !known.contains(d) {
                return Err(ConfigError::UnknownDetector {
                    name: d.clone(),
                    context: format!("allow rule #{index}"),
                });
            }
            detectors.push(d.clone());
        }
        if let Some(m) = &rule.method
            && (m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()))
        {
            return Err(bad("method must be an HTTP method name"));
        }
        Ok(CompiledAllow {
            method: rule.method.as_ref().map(|m| m.to_ascii_uppercase()),
            segments: split(&rule.path).map(str::to_owned).collect(),
            detectors,
            side: rule.side,
        })
    }

    pub(crate) fn suppresses(&self, method: &str, path: &str, f: &Finding) -> bool {
        self.method.as_ref().is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.side.is_none_or(|s| s == f.side)
            && (self.detectors.is_empty() || self.detectors.contains(&f.detector))
            && glob_path(&self.segments, &split(path).collect::<Vec<_>>())
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// `**` any number of segments, otherwise segment by segment.
fn glob_path(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => (0..=path.len()).any(|k| glob_path(rest, &path[k..])),
        Some((first, rest)) => path.split_first().is_some_and(|(seg, tail)| {
            glob_segment(first.as_bytes(), seg.as_bytes()) && glob_path(rest, tail)
        }),
    }
}

/// `*` matches any run of characters within one segment.
fn glob_segment(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str, path: &str) -> bool {
        let segs: Vec<String> = split(p).map(str::to_owned).collect();
        glob_path(&segs, &split(path).collect::<Vec<_>>())
    }

    #[test]
    fn globs() {
        assert!(g("/api/users/*", "/api/users/42"));
        assert!(!g("/api/users/*", "/api/users/42/cards"));
        assert!(!g("/api/users/*", "/api/users"));
        assert!(g("/api/**", "/api/users/42/cards"));
        assert!(g("/api/**", "/api"));
        assert!(g("/**/cards", "/v1/u/cards"));
        assert!(g("/v*/pay", "/v2/pay"));
        assert!(!g("/v*/pay", "/x2/pay"));
        assert!(g("/", "/"));
        assert!(!g("/a", "/b"));
    }
}

//! Per-entry bookkeeping: recording one observation and merging two entries, within [`Limits`].

use std::collections::BTreeSet;

use super::{EntryView, Limits, Observation, Schema};

pub fn bounded(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

pub fn insert_bounded(set: &mut BTreeSet<String>, value: &str, max: usize) -> bool {
    let v = bounded(value, 128);
    if set.contains(&v) {
        return true;
    }
    if set.len() < max {
        set.insert(v);
        return true;
    }
    false
}

pub fn record(e: &mut EntryView, obs: &Observation<'_>, limits: &Limits) {
    e.count += 1;
    e.first_seen = e.first_seen.min(obs.ts_unix_ms);
    e.last_seen = e.last_seen.max(obs.ts_unix_ms);
    if let Some(code) = obs.status {
        if e.status_codes.len() < limits.max_status_codes || e.status_codes.contains_key(&code) {
            *e.status_codes.entry(code).or_default() += 1;
        } else {
            e.status_codes_other += 1;
        }
    }
    match obs.auth_scheme.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => {
            insert_bounded(&mut e.auth_schemes, &s.to_ascii_lowercase(), limits.max_auth_schemes);
        }
        None => e.unauthenticated += 1,
    }
    if !obs.sensitive.is_empty() {
        e.sensitive_hits += 1;
        for s in obs.sensitive {
            insert_bounded(&mut e.sensitive_types, s, limits.max_sensitive_types);
        }
    }
    if !obs.client.is_empty() && !insert_bounded(&mut e.clients, obs.client, limits.max_clients) {
        e.clients_other += 1;
    }
    let sample = e.schema_samples < limits.schema_full_samples || e.count.is_multiple_of(64);
    if !sample {
        return;
    }
    let parse = |body: Option<&[u8]>| body.and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok());
    let (request, response) = (parse(obs.request_json), parse(obs.response_json));
    if request.is_some() || response.is_some() {
        e.schema_samples += 1;
    }
    if let Some(v) = &request {
        e.request_schema.get_or_insert_with(Schema::default).observe(v);
    }
    if let Some(v) = &response {
        e.response_schema.get_or_insert_with(Schema::default).observe(v);
    }
}

pub fn merge_entries(t: &mut EntryView, e: &EntryView, limits: &Limits) {
    t.count += e.count;
    t.first_seen = t.first_seen.min(e.first_seen);
    t.last_seen = t.last_seen.max(e.last_seen);
    if e.status.report_rank() < t.status.report_rank() {
        t.status = e.status;
    }
    for (code, n) in &e.status_codes {
        if t.status_codes.len() < limits.max_status_codes || t.status_codes.contains_key(code) {
            *t.status_codes.entry(*code).or_default() += n;
        } else {
            t.status_codes_other += n;
        }
    }
    t.status_codes_other += e.status_codes_other;
    for s in &e.auth_schemes {
        insert_bounded(&mut t.auth_schemes, s, limits.max_auth_schemes);
    }
    for s in &e.sensitive_types {
        insert_bounded(&mut t.sensitive_types, s, limits.max_sensitive_types);
    }
    let mut other = e.clients_other;
    for c in &e.clients {
        if !insert_bounded(&mut t.clients, c, limits.max_clients) {
            other += 1;
        }
    }
    t.clients_other += other;
    t.unauthenticated += e.unauthenticated;
    t.sensitive_hits += e.sensitive_hits;
    t.schema_samples += e.schema_samples;
    for (mine, theirs) in
        [(&mut t.request_schema, &e.request_schema), (&mut t.response_schema, &e.response_schema)]
    {
        if let Some(s) = theirs {
            mine.get_or_insert_with(Schema::default).merge(s);
        }
    }
}

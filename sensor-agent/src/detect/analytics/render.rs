//! The security findings and clients as `apisense inventory` and `apisense report` show them.
use std::collections::BTreeMap;

use super::{ClientSummary, GlobalState, SecurityReport, StoredFinding, state::EndpointState};

/// Findings most severe first, then by time; clients by exchanges.
pub fn report<'a>(
    endpoints: impl Iterator<Item = (&'a String, &'a EndpointState)>,
    global: &GlobalState,
) -> SecurityReport {
    let mut findings: Vec<StoredFinding> = global.findings.values().cloned().collect();
    findings.sort_by(|a, b| {
        b.event
            .severity
            .cmp(&a.event.severity)
            .then(a.event.ts_unix_ms.cmp(&b.event.ts_unix_ms))
            .then(a.event.kind.cmp(&b.event.kind))
            .then(a.event.endpoint.cmp(&b.event.endpoint))
    });
    let mut clients: BTreeMap<String, ClientSummary> = BTreeMap::new();
    for (endpoint, ep) in endpoints {
        for (client, usage) in &ep.clients {
            let c = clients
                .entry(client.clone())
                .or_insert_with(|| ClientSummary { client: client.clone(), ..ClientSummary::default() });
            c.exchanges += usage.count;
            *c.endpoints.entry(endpoint.clone()).or_default() += usage.count;
            c.received.extend(usage.received.iter().cloned());
            c.last_seen = c.last_seen.max(usage.last_seen);
        }
    }
    let mut clients: Vec<ClientSummary> = clients.into_values().collect();
    clients.sort_by(|a, b| b.exchanges.cmp(&a.exchanges).then(a.client.cmp(&b.client)));
    SecurityReport { findings, clients }
}

/// `apisense inventory`'s text section.
#[must_use]
pub fn render_table(report: &SecurityReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "\nSECURITY FINDINGS ({})", report.findings.len());
    for f in &report.findings {
        let e = &f.event;
        let _ = writeln!(
            s,
            "{:<8} {:<34} {}  client={}  x{}\n         {}{}",
            e.severity.as_str(),
            e.kind.as_str(),
            e.endpoint,
            e.client.as_deref().unwrap_or("-"),
            f.occurrences,
            e.reason,
            e.value_hash.as_deref().map(|h| format!("  value_hash={h}")).unwrap_or_default()
        );
    }
    let _ = writeln!(s, "\nCLIENTS ({})", report.clients.len());
    for c in &report.clients {
        let received: Vec<&str> = c.received.iter().map(String::as_str).collect();
        let _ = writeln!(
            s,
            "{}  exchanges={}  endpoints={}  received={}",
            c.client,
            c.exchanges,
            c.endpoints.len(),
            if received.is_empty() { "-".to_owned() } else { received.join(",") }
        );
        for (endpoint, n) in &c.endpoints {
            let _ = writeln!(s, "    {n:>6}  {endpoint}");
        }
    }
    s
}

/// The HTML report's findings and clients sections (rows with class `finding sev-<severity>`).
#[must_use]
pub fn render_html(report: &SecurityReport) -> String {
    use std::fmt::Write as _;

    use crate::detect::inventory::escape_html as esc;
    let mut h = format!(
        "<section id=\"security\"><h2>Security findings <span class=\"muted\">{}</span></h2>\n\
         <table><thead><tr><th>severity</th><th>kind</th><th>endpoint</th><th>client</th><th>reason</th>\
         <th>seen</th></tr></thead><tbody>\n",
        report.findings.len()
    );
    for f in &report.findings {
        let e = &f.event;
        let s = e.severity.as_str();
        let _ = writeln!(
            h,
            "<tr class=\"finding sev-{s}\"><td><span class=\"sev sev-{s}\">{s}</span></td><td>{}</td>\
             <td class=\"route\">{}</td><td>{}</td><td>{}{}</td><td>{}</td></tr>",
            e.kind.as_str(),
            esc(&e.endpoint),
            esc(e.client.as_deref().unwrap_or("-")),
            esc(&e.reason),
            e.value_hash
                .as_deref()
                .map(|v| format!(" <span class=\"muted\">value {}</span>", esc(v)))
                .unwrap_or_default(),
            f.occurrences
        );
    }
    let _ = write!(
        h,
        "</tbody></table>\n<h2>Clients <span class=\"muted\">{}</span></h2>\n<table><thead><tr><th>client</th>\
         <th>exchanges</th><th>endpoints</th><th>data received</th></tr></thead><tbody>\n",
        report.clients.len()
    );
    for c in &report.clients {
        let endpoints: Vec<String> =
            c.endpoints.iter().map(|(e, n)| format!("{} &times;{n}", esc(e))).collect();
        let received: Vec<String> = c.received.iter().map(|t| esc(t)).collect();
        let _ = writeln!(
            h,
            "<tr class=\"client\"><td>{}</td><td>{}</td><td class=\"route\">{}</td><td>{}</td></tr>",
            esc(&c.client),
            c.exchanges,
            endpoints.join("<br>"),
            if received.is_empty() { "-".to_owned() } else { received.join(", ") }
        );
    }
    h.push_str("</tbody></table></section>\n");
    h
}

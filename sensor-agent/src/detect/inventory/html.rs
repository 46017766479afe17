//! Single self-contained HTML report (inline CSS and JS, no network access).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::export::{fmt_ts, sort_entries};
use super::{EndpointStatus, EntryView};

/// Escapes text for HTML element content and double-quoted attributes.
#[must_use]
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = r"
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .4em}h2{font-size:1.1em;margin:1.4em 0 .3em}
#summary{display:flex;flex-wrap:wrap;gap:.5em;margin:.5em 0 1em}
#summary span{padding:.25em .7em;border-radius:1em;font-weight:600}
#controls{display:flex;flex-wrap:wrap;gap:1em;align-items:center;margin-bottom:1em}
#filter{padding:.3em .5em;min-width:20em}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:.5em}
th,td{text-align:left;padding:.25em .5em;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f0f0f0;font-weight:600}
td.route{font-family:ui-monospace,monospace}
.badge{padding:.05em .5em;border-radius:.6em;font-size:.85em;color:#fff;white-space:nowrap}
.s-shadow .badge,.c-shadow{background:#c62828;color:#fff}
.s-undocumented_method .badge,.c-undocumented_method{background:#ef6c00;color:#fff}
.s-undocumented_status .badge,.c-undocumented_status{background:#f9a825;color:#222}
.s-deprecated .badge,.c-deprecated{background:#6a1b9a;color:#fff}
.s-unknown .badge,.c-unknown{background:#607d8b;color:#fff}
.s-documented .badge,.c-documented{background:#2e7d32;color:#fff}
tr.shadow{background:#fff3f3}
.heat{display:inline-block;width:5em;height:.7em;background:#eee;border-radius:.35em;overflow:hidden;vertical-align:middle}
.heat i{display:block;height:100%;background:linear-gradient(90deg,#ffb74d,#d32f2f)}
.muted{color:#888}
.sev{padding:.05em .5em;border-radius:.6em;font-size:.85em;white-space:nowrap}
.sev-critical,.sev-high{background:#c62828;color:#fff}.sev-medium{background:#ef6c00;color:#fff}
.sev-low{background:#f9a825;color:#222}.sev-info{background:#607d8b;color:#fff}
";

const SCRIPT: &str = r"
(function(){
  var filter=document.getElementById('filter');
  var boxes=Array.prototype.slice.call(document.querySelectorAll('input.status-filter'));
  function apply(){
    var q=filter.value.toLowerCase();
    var on={};boxes.forEach(function(b){on[b.value]=b.checked;});
    document.querySelectorAll('section.host').forEach(function(sec){
      var shown=0;
      sec.querySelectorAll('tr.row').forEach(function(r){
        var ok=on[r.getAttribute('data-status')]&&(!q||r.textContent.toLowerCase().indexOf(q)>=0);
        r.style.display=ok?'':'none';if(ok)shown++;
      });
      sec.style.display=shown?'':'none';
    });
  }
  filter.addEventListener('input',apply);
  boxes.forEach(function(b){b.addEventListener('change',apply);});
})();
";

/// Renders the report. Endpoints are grouped by host; each row has class `row <status>` and
/// `data-status`; `#summary` lists `status: count` for every status present.
#[must_use]
pub fn render_html(entries: &[EntryView], title: &str) -> String {
    render_html_with(entries, title, "")
}

/// [`render_html`] with `extra` (trusted, already escaped HTML, such as the security findings)
/// placed before the endpoint tables.
#[must_use]
pub fn render_html_with(entries: &[EntryView], title: &str, extra: &str) -> String {
    let mut sorted: Vec<EntryView> = entries.to_vec();
    sort_entries(&mut sorted);
    let mut counts: BTreeMap<usize, (EndpointStatus, usize)> = BTreeMap::new();
    let mut by_host: BTreeMap<&str, Vec<&EntryView>> = BTreeMap::new();
    for e in &sorted {
        counts.entry(e.status.report_rank()).or_insert((e.status, 0)).1 += 1;
        by_host.entry(e.host.as_str()).or_default().push(e);
    }
    let mut h = String::with_capacity(4096 + sorted.len() * 400);
    let t = esc(title);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n\
         <p class=\"muted\">{} endpoints on {} hosts</p>\n<div id=\"summary\">",
        sorted.len(),
        by_host.len()
    );
    for (status, n) in counts.values() {
        let s = status.as_str();
        let _ = write!(h, "<span class=\"count c-{s}\" data-status=\"{s}\">{s}: {n}</span>");
    }
    h.push_str("</div>\n<div id=\"controls\"><input id=\"filter\" type=\"search\" placeholder=\"filter host, route, method, data type...\">");
    for status in EndpointStatus::ALL {
        let s = status.as_str();
        let _ = write!(
            h,
            "<label><input type=\"checkbox\" class=\"status-filter\" value=\"{s}\" checked> {s}</label>"
        );
    }
    h.push_str("</div>\n");
    h.push_str(extra);
    for (host, list) in &by_host {
        let shown = if host.is_empty() { "(unknown host)" } else { host };
        let shadow = list.iter().filter(|e| e.status == EndpointStatus::Shadow).count();
        let _ = write!(
            h,
            "<section class=\"host\"><h2>{} <span class=\"muted\">{} endpoints, {shadow} shadow</span></h2>\n\
             <table><thead><tr><th>status</th><th>method</th><th>route</th><th>calls</th><th>codes</th>\
             <th>auth</th><th>sensitive data</th><th>clients</th><th>last seen</th></tr></thead><tbody>\n",
            esc(shown),
            list.len()
        );
        for e in list {
            row(&mut h, e);
        }
        h.push_str("</tbody></table></section>\n");
    }
    let _ = write!(h, "<script>{SCRIPT}</script>\n</body></html>\n");
    h
}

fn row(h: &mut String, e: &EntryView) {
    let s = e.status.as_str();
    let codes: Vec<String> = e.status_codes.iter().map(|(c, n)| format!("{c}&times;{n}")).collect();
    let mut auth: Vec<String> = e.auth_schemes.iter().map(|a| esc(a)).collect();
    if e.unauthenticated > 0 {
        auth.push(format!("none&times;{}", e.unauthenticated));
    }
    let pct = e.sensitive_hits.min(e.count).saturating_mul(100).checked_div(e.count).unwrap_or(0);
    let types: Vec<String> = e.sensitive_types.iter().map(|t| esc(t)).collect();
    let spec = match (&e.spec, &e.operation_id) {
        (Some(s), Some(op)) => format!(" title=\"{} / {}\"", esc(s), esc(op)),
        (Some(s), None) => format!(" title=\"{}\"", esc(s)),
        _ => String::new(),
    };
    let clients = if e.clients_other > 0 {
        format!("{} (+{} calls from others)", e.clients.len(), e.clients_other)
    } else {
        e.clients.len().to_string()
    };
    let client_list: Vec<String> = e.clients.iter().take(8).map(|c| esc(c)).collect();
    let _ = writeln!(
        h,
        "<tr class=\"row {s} s-{s}\" data-status=\"{s}\"><td><span class=\"badge\">{s}</span></td>\
         <td>{}</td><td class=\"route\"{spec}>{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td><span class=\"heat\" title=\"{pct}% of calls carried sensitive data\"><i style=\"width:{pct}%\"></i></span> \
         {pct}% {}</td><td title=\"{}\">{clients}</td><td>{}</td></tr>",
        esc(&e.method),
        esc(&e.route),
        e.count,
        if codes.is_empty() { "-".into() } else { codes.join(" ") },
        if auth.is_empty() { "-".into() } else { auth.join(" ") },
        types.join(", "),
        client_list.join(", "),
        fmt_ts(e.last_seen),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_marks_rows() {
        let mk = |route: &str, status| EntryView {
            host: "api.example.com".into(),
            method: "GET".into(),
            route: route.into(),
            status,
            count: 4,
            sensitive_hits: 1,
            sensitive_types: ["email".to_owned()].into(),
            ..EntryView::default()
        };
        let html = render_html(
            &[
                mk("/a/<script>", EndpointStatus::Shadow),
                mk("/b", EndpointStatus::Shadow),
                mk("/c", EndpointStatus::Documented),
            ],
            "T & <x>",
        );
        assert!(html.contains("<title>T &amp; &lt;x&gt;</title>"));
        assert!(!html.contains("/a/<script>") && html.contains("/a/&lt;script&gt;"));
        assert_eq!(html.matches("class=\"row shadow").count(), 2);
        assert_eq!(html.matches("class=\"row documented").count(), 1);
        assert!(html.contains(">shadow: 2<") && html.contains(">documented: 1<"));
        assert!(html.contains("25%"));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}

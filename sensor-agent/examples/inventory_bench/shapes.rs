//! Deployment shapes: the same specs as traffic really reaches them on a node (another host,
//! the server prefix stripped, templated first segments, specs bound by the config).

use std::fmt::Write as _;
use std::sync::Arc;

use sensor_agent::detect::inventory::binding::{HostPattern, KubeSelector, PrefixMode, SpecRule};
use sensor_agent::detect::inventory::{EndpointStatus, Specs};
use serde_json::{Value, json};

use crate::traffic::{self, Truth, Wire};

/// The public host the rewritten specs name.
const PUBLIC_HOST: &str = "https://api.bank.example";
/// A pod behind a gateway, as its Host header names it.
const POD: (&str, u16) = ("10.0.0.5", 8080);

struct Shape {
    name: &'static str,
    documents: Vec<(String, Value)>,
    host: String,
    port: Option<u16>,
    wire: Wire,
    /// Bind every spec to the pod by config, prefix stripped.
    by_config: bool,
}

/// The specs with their relative servers made absolute on the public host.
fn published(documents: &[(String, Value)]) -> Vec<(String, Value)> {
    documents
        .iter()
        .map(|(name, doc)| {
            let mut doc = doc.clone();
            if let Some(url) = doc.pointer_mut("/servers/0/url")
                && let Some(path) = url.as_str().map(str::to_owned)
            {
                *url = Value::String(format!("{PUBLIC_HOST}{path}"));
            }
            (name.clone(), doc)
        })
        .collect()
}

/// A NextGenPSD2-shaped spec (Berlin Group): the first segments of payment paths are parameters,
/// beside literal siblings (`consents`) and, in the shape, the Open Banking accounts spec (whose
/// literal `accounts` paths must win over the templates). No path of it is also an accounts
/// path: two specs documenting one path would make the expected route a matter of load order.
fn templated_first_segments() -> (String, Value) {
    let op = |code: &str| json!({"responses": {code: {"description": "ok"}, "400": {"description": "bad"}}});
    let doc = json!({"openapi": "3.0.1", "info": {"title": "NextGenPSD2-shaped", "version": "1"},
    "servers": [{"url": format!("{PUBLIC_HOST}/psd2/v1")}],
    "paths": {
        "/{payment-service}/{payment-product}": {"post": op("201")},
        "/{payment-service}/{payment-product}/{paymentId}": {"get": op("200"), "delete": op("204")},
        "/{payment-service}/{payment-product}/{paymentId}/status": {"get": op("200")},
        "/{payment-service}/{payment-product}/{paymentId}/authorisations": {"get": op("200"), "post": op("201")},
        "/consents": {"post": op("201")},
        "/consents/{consentId}": {"get": op("200"), "delete": op("204")},
        "/consents/{consentId}/status": {"get": op("200")},
    }});
    ("nextgenpsd2.json".to_owned(), doc)
}

fn shapes(documents: &[(String, Value)]) -> Vec<Shape> {
    let absolute = published(documents);
    let pod = format!("{}:{}", POD.0, POD.1);
    let both = Wire { send_prefixed: true, send_stripped: true, allow_prefixed: true };
    let stripped = Wire { send_prefixed: false, send_stripped: true, allow_prefixed: true };
    let mut templated = vec![templated_first_segments()];
    templated.extend(absolute.iter().filter(|(n, _)| n.starts_with("account-info")).cloned());
    vec![
        Shape {
            name: "relative servers (as published), any host",
            documents: documents.to_vec(),
            host: "bank.example.com".into(),
            port: None,
            wire: both,
            by_config: false,
        },
        Shape {
            name: "absolute servers, their own host",
            documents: absolute.clone(),
            host: "api.bank.example".into(),
            port: Some(443),
            wire: both,
            by_config: false,
        },
        Shape {
            name: "absolute servers, another host (pod)",
            documents: absolute.clone(),
            host: pod.clone(),
            port: Some(POD.1),
            wire: both,
            by_config: false,
        },
        Shape {
            name: "stripped prefix (ingress), another host",
            documents: absolute.clone(),
            host: pod.clone(),
            port: Some(POD.1),
            wire: stripped,
            by_config: false,
        },
        Shape {
            name: "templated first segments, another host",
            documents: templated,
            host: pod.clone(),
            port: Some(POD.1),
            wire: both,
            by_config: false,
        },
        Shape {
            name: "bound by config (host, port, prefix stripped)",
            documents: absolute,
            host: pod,
            port: Some(POD.1),
            wire: Wire { allow_prefixed: false, ..stripped },
            by_config: true,
        },
    ]
}

/// One row per shape: `shadow` precision and recall, `documented` accuracy (label and route),
/// `undocumented_method` recall, per exchange (calls the spec cannot tell from documented
/// ones left out, as in the main table).
pub fn report(documents: &[(String, Value)]) -> anyhow::Result<String> {
    let mut md = String::from(
        "\nDeployment shapes (the same generator; truth from the reference matcher, which reads a \
         server prefix as optional unless a config rule says `stripped`):\n\n\
         | shape | host | exchanges (shadow / documented / left out) | `shadow` precision | `shadow` recall | `documented` accuracy (label + route) | \
         `undocumented_method` recall |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for shape in shapes(documents) {
        let (mut specs, _) = Specs::from_documents(
            &shape.documents.iter().map(|(n, d)| (n.as_str(), d.clone())).collect::<Vec<_>>(),
        )?;
        if shape.by_config {
            let rules = shape
                .documents
                .iter()
                .map(|(name, _)| {
                    let host = HostPattern::parse(POD.0).ok_or_else(|| anyhow::anyhow!("host"))?;
                    SpecRule::new(
                        name.clone(),
                        vec![host],
                        vec![POD.1],
                        KubeSelector::default(),
                        PrefixMode::Stripped,
                    )
                    .map_err(anyhow::Error::from)
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            specs.bind(rules).map_err(|(i, e)| anyhow::anyhow!("rule {i}: {e}"))?;
        }
        let specs = Arc::new(specs);
        let docs = traffic::load_docs(&shape.documents)?;
        let traffic = traffic::generate(&docs, shape.wire);
        let labels = crate::observe_on(&specs, &traffic, &shape.host, shape.port);
        let main: Vec<_> = traffic.iter().zip(&labels).filter(|(x, _)| x.truth != Truth::Ambiguous).collect();
        let (_, _, _, p, r) = crate::pr(
            main.iter().map(|(x, (s, _))| (x.truth == Truth::Shadow, *s == EndpointStatus::Shadow)),
        );
        let (_, _, _, _, um) = crate::pr(main.iter().map(|(x, (s, _))| {
            (x.truth == Truth::UndocumentedMethod, *s == EndpointStatus::UndocumentedMethod)
        }));
        let documented: Vec<_> = main.iter().filter(|(x, _)| x.truth == Truth::Documented).collect();
        let right = documented
            .iter()
            .filter(|(x, (s, route))| {
                *s == EndpointStatus::Documented && x.route.as_deref() == Some(route.as_str())
            })
            .count();
        let _ = writeln!(
            md,
            "| {} | `{}` | {} ({} / {} / {}) | {p:.3} | {r:.3} | {:.3} ({right}/{}) | {um:.3} |",
            shape.name,
            shape.host,
            traffic.len(),
            main.iter().filter(|(x, _)| x.truth == Truth::Shadow).count(),
            documented.len(),
            traffic.len() - main.len(),
            crate::ratio(right, documented.len()),
            documented.len(),
        );
    }
    Ok(md)
}

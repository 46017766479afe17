//! What analytics reports: a [`SecurityEvent`] names its kind (with a fixed severity rule), the
//! endpoint, the client, a one-line reason made of names and counts only, and, for a value seen
//! again, its keyed hash. Never a raw value or credential.
use serde::{Deserialize, Serialize};

use crate::detect::sensitive::keyed::ValueHash;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// Every kind of finding and event, grouped by concern.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    // exposure
    SensitiveInUrl,
    UnauthenticatedSensitiveResponse,
    SensitiveOverPlaintext,
    CredentialsOverPlaintext,
    ExcessSensitiveTypes,
    UnmaskedCardNumber,
    ValueToManyClients,
    // zombies
    DeprecatedOperationCalled,
    OldVersionCalled,
    UnobservedOperation,
    // changes
    NewEndpoint,
    EndpointSilent,
    NewSensitiveType,
    AuthDropped,
    AuthChanged,
    NewClient,
    // anomalies
    RateSpike,
    ErrorBurst,
    ResponseSizeJump,
}

impl Kind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SensitiveInUrl => "sensitive_in_url",
            Kind::UnauthenticatedSensitiveResponse => "unauthenticated_sensitive_response",
            Kind::SensitiveOverPlaintext => "sensitive_over_plaintext",
            Kind::CredentialsOverPlaintext => "credentials_over_plaintext",
            Kind::ExcessSensitiveTypes => "excess_sensitive_types",
            Kind::UnmaskedCardNumber => "unmasked_card_number",
            Kind::ValueToManyClients => "value_to_many_clients",
            Kind::DeprecatedOperationCalled => "deprecated_operation_called",
            Kind::OldVersionCalled => "old_version_called",
            Kind::UnobservedOperation => "unobserved_operation",
            Kind::NewEndpoint => "new_endpoint",
            Kind::EndpointSilent => "endpoint_silent",
            Kind::NewSensitiveType => "new_sensitive_type",
            Kind::AuthDropped => "auth_dropped",
            Kind::AuthChanged => "auth_changed",
            Kind::NewClient => "new_client",
            Kind::RateSpike => "rate_spike",
            Kind::ErrorBurst => "error_burst",
            Kind::ResponseSizeJump => "response_size_jump",
        }
    }

    /// `exposure`, `zombie`, `change` or `anomaly`.
    #[must_use]
    pub fn category(self) -> &'static str {
        match self {
            Kind::SensitiveInUrl
            | Kind::UnauthenticatedSensitiveResponse
            | Kind::SensitiveOverPlaintext
            | Kind::CredentialsOverPlaintext
            | Kind::ExcessSensitiveTypes
            | Kind::UnmaskedCardNumber
            | Kind::ValueToManyClients => "exposure",
            Kind::DeprecatedOperationCalled | Kind::OldVersionCalled | Kind::UnobservedOperation => "zombie",
            Kind::NewEndpoint
            | Kind::EndpointSilent
            | Kind::NewSensitiveType
            | Kind::AuthDropped
            | Kind::AuthChanged
            | Kind::NewClient => "change",
            Kind::RateSpike | Kind::ErrorBurst | Kind::ResponseSizeJump => "anomaly",
        }
    }
}

/// One security finding or event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityEvent {
    /// Always "security" in the JSON line, telling it from an exchange.
    #[serde(default = "security")]
    pub event: String,
    pub kind: Kind,
    pub category: String,
    pub severity: Severity,
    /// `METHOD host route`.
    pub endpoint: String,
    /// The client identity (`jwt:...`, `api_key:...`, `peer:...`), when one is involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_hash: Option<String>,
    /// Traffic time (unix ms) of the exchange that raised it.
    pub ts_unix_ms: u64,
}

fn security() -> String {
    "security".to_owned()
}

impl SecurityEvent {
    #[must_use]
    pub fn new(kind: Kind, severity: Severity, endpoint: &str, client: Option<&str>, reason: String) -> Self {
        SecurityEvent {
            event: security(),
            kind,
            category: kind.category().to_owned(),
            severity,
            endpoint: endpoint.to_owned(),
            client: client.map(str::to_owned),
            reason,
            value_hash: None,
            ts_unix_ms: 0,
        }
    }

    #[must_use]
    pub fn with_hash(mut self, hash: Option<ValueHash>) -> Self {
        self.value_hash = hash.map(|h| h.to_string());
        self
    }

    /// What makes two events the same finding: (kind, endpoint, client), plus the value hash
    /// for `value_to_many_clients` (one finding per value).
    #[must_use]
    pub fn dedup_key(&self) -> String {
        let value = if self.kind == Kind::ValueToManyClients { self.value_hash.as_deref() } else { None };
        format!(
            "{}|{}|{}|{}",
            self.kind.as_str(),
            self.endpoint,
            self.client.as_deref().unwrap_or(""),
            value.unwrap_or("")
        )
    }
}

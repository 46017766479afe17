//! Bounded JSON "shape" inference from request/response bodies: types, property names and
//! string formats only. Values are never stored. Object keys that look like identifiers
//! (numbers, UUIDs, e-mails, ...) are folded into `additionalProperties` so that maps keyed by
//! ids neither grow the schema nor leak the ids.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::template::classify_segment;

/// Deepest nesting recorded; deeper values are marked `truncated`.
pub const MAX_DEPTH: usize = 8;
/// Most properties recorded per object.
pub const MAX_PROPERTIES: usize = 64;
/// Most schema nodes per body schema.
pub const MAX_NODES: usize = 512;

/// An inferred JSON schema node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    #[serde(rename = "type", default, skip_serializing_if = "BTreeSet::is_empty")]
    pub types: BTreeSet<String>,
    /// Set while every string seen here had this format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, Schema>,
    #[serde(rename = "additionalProperties", default, skip_serializing_if = "Option::is_none")]
    pub additional: Option<Box<Schema>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Box<Schema>>,
    /// Something was left out because of the depth/size bounds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn string_format(s: &str) -> Option<&'static str> {
    match classify_segment(s) {
        Some("{uuid}") => Some("uuid"),
        Some("{email}") => Some("email"),
        Some("{date}") if s.len() == 10 => Some("date"),
        Some("{date}") => Some("date-time"),
        _ => None,
    }
}

impl Schema {
    /// Number of nodes in this schema.
    #[must_use]
    pub fn size(&self) -> usize {
        1 + self.properties.values().map(Schema::size).sum::<usize>()
            + self.additional.as_ref().map_or(0, |s| s.size())
            + self.items.as_ref().map_or(0, |s| s.size())
    }

    /// Merges the shape of `v` into this schema.
    pub fn observe(&mut self, v: &Value) {
        let mut budget = MAX_NODES.saturating_sub(self.size());
        self.merge_value(v, 0, &mut budget);
    }

    fn merge_value(&mut self, v: &Value, depth: usize, budget: &mut usize) {
        let ty = type_name(v);
        let first_string = ty == "string" && !self.types.contains("string");
        if !self.types.contains(ty) {
            self.types.insert(ty.to_owned());
        }
        if let Value::String(s) = v {
            let f = string_format(s);
            if first_string {
                self.format = f.map(str::to_owned);
            } else if self.format.as_deref() != f {
                self.format = None;
            }
        }
        if depth >= MAX_DEPTH {
            if matches!(v, Value::Array(_) | Value::Object(_)) {
                self.truncated = true;
            }
            return;
        }
        match v {
            Value::Array(items) => {
                for item in items.iter().take(16) {
                    let child = self.items.get_or_insert_with(|| {
                        *budget = budget.saturating_sub(1);
                        Box::default()
                    });
                    child.merge_value(item, depth + 1, budget);
                }
            }
            Value::Object(map) => self.merge_object(map, depth, budget),
            _ => {}
        }
    }

    fn merge_object(&mut self, map: &Map<String, Value>, depth: usize, budget: &mut usize) {
        for (k, child_v) in map {
            if classify_segment(k).is_some() {
                let child = self.additional.get_or_insert_with(|| {
                    *budget = budget.saturating_sub(1);
                    Box::default()
                });
                child.merge_value(child_v, depth + 1, budget);
                continue;
            }
            if !self.properties.contains_key(k) {
                if self.properties.len() >= MAX_PROPERTIES || *budget == 0 || k.len() > 128 {
                    self.truncated = true;
                    continue;
                }
                *budget -= 1;
                self.properties.insert(k.clone(), Schema::default());
            }
            if let Some(child) = self.properties.get_mut(k) {
                child.merge_value(child_v, depth + 1, budget);
            }
        }
    }

    /// Merges another inferred schema (used when entries are merged).
    pub fn merge(&mut self, other: &Schema) {
        let had_string = self.types.contains("string");
        self.types.extend(other.types.iter().cloned());
        if !had_string {
            self.format.clone_from(&other.format);
        } else if other.types.contains("string") && self.format != other.format {
            self.format = None;
        }
        for (k, v) in &other.properties {
            let room = self.properties.len() < MAX_PROPERTIES;
            match self.properties.get_mut(k) {
                Some(mine) => mine.merge(v),
                None if room => {
                    self.properties.insert(k.clone(), v.clone());
                }
                None => self.truncated = true,
            }
        }
        for (mine, theirs) in [(&mut self.items, &other.items), (&mut self.additional, &other.additional)] {
            if let Some(t) = theirs {
                mine.get_or_insert_with(Box::default).merge(t);
            }
        }
        self.truncated |= other.truncated;
    }

    /// The schema as an `OpenAPI` 3.1 (JSON Schema 2020-12) object.
    #[must_use]
    pub fn to_openapi(&self) -> Value {
        let mut out = Map::new();
        match self.types.len() {
            0 => {}
            1 => {
                out.insert("type".into(), Value::from(self.types.iter().next().cloned().unwrap_or_default()));
            }
            _ => {
                out.insert("type".into(), Value::from(self.types.iter().cloned().collect::<Vec<_>>()));
            }
        }
        if let Some(f) = &self.format {
            out.insert("format".into(), Value::from(f.clone()));
        }
        if !self.properties.is_empty() {
            let props: Map<String, Value> =
                self.properties.iter().map(|(k, v)| (k.clone(), v.to_openapi())).collect();
            out.insert("properties".into(), Value::Object(props));
        }
        if let Some(a) = &self.additional {
            out.insert("additionalProperties".into(), a.to_openapi());
        }
        if let Some(i) = &self.items {
            out.insert("items".into(), i.to_openapi());
        }
        if self.truncated {
            out.insert("x-apisense-truncated".into(), Value::Bool(true));
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_only_and_bounded() {
        let mut s = Schema::default();
        s.observe(&json!({"name": "Alice Secret", "age": 42, "tags": ["x"], "id": "123e4567-e89b-12d3-a456-426614174000",
            "by_id": {"1001": {"ok": true}, "1002": {"ok": false}}}));
        s.observe(&json!({"name": null, "age": 4.5}));
        let out = s.to_openapi().to_string();
        assert!(!out.contains("Alice") && !out.contains("1001") && !out.contains("426614174000"));
        assert!(out.contains("\"uuid\""));
        assert_eq!(
            s.properties["age"].types,
            ["integer", "number"].iter().map(|s| (*s).to_owned()).collect()
        );
        assert!(s.properties["by_id"].additional.is_some());

        let mut big = Schema::default();
        let wide: Map<String, Value> = (0..500).map(|i| (format!("k{i}x"), json!(i))).collect();
        big.observe(&Value::Object(wide));
        assert!(big.properties.len() <= MAX_PROPERTIES && big.truncated);
        let mut deep = json!(1);
        for _ in 0..50 {
            deep = json!({ "d": deep });
        }
        let mut d = Schema::default();
        d.observe(&deep);
        assert!(d.size() <= MAX_DEPTH + 2);
        let mut merged = Schema::default();
        merged.merge(&s);
        merged.merge(&d);
        assert!(merged.properties.contains_key("d") && merged.properties.contains_key("age"));
    }
}

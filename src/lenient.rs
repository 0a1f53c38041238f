//! Tolerant `serde` helpers for payloads we do not control.
//!
//! Routee's callbacks and Voiceflow's traces are documented loosely (see
//! `shared/reference/`): numbers and booleans sometimes arrive as strings, fields
//! go missing, `null` stands for "absent". Inbound structs use these helpers with
//! `#[serde(default, deserialize_with = ...)]` so that an odd-but-meaningful payload
//! is understood instead of refused. Outbound JSON never uses them: we always emit
//! real booleans and numbers.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A string, or a number/boolean rendered as a string; `null` becomes `""`.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    })
}

/// Like [`string`] but `null`, absent or empty becomes `None`.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = string(d)?;
    Ok((!s.is_empty()).then_some(s))
}

/// A boolean given as `true`, `"true"`, `"TRUE"`, `1` or `"1"`; anything else is `false`.
pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(value_as_bool(&Value::deserialize(d)?).unwrap_or(false))
}

/// A number given as a JSON number or a numeric string; anything unparsable is `None`.
pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(value_as_f64(&Value::deserialize(d)?))
}

/// A non-negative integer given as a number (integral or not) or a numeric string.
pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(value_as_f64(&Value::deserialize(d)?)
        .filter(|f| f.is_finite() && *f >= 0.0)
        .map(|f| f.round().min(f64::from(u32::MAX)) as u32))
}

/// Interprets a JSON value as a boolean, the way a lenient reader would.
pub fn value_as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Interprets a JSON value as a number, accepting numeric strings.
pub fn value_as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Probe {
        #[serde(deserialize_with = "string")]
        s: String,
        #[serde(deserialize_with = "bool")]
        b: bool,
        #[serde(deserialize_with = "opt_u32")]
        n: Option<u32>,
        #[serde(deserialize_with = "opt_f64")]
        f: Option<f64>,
    }

    fn probe(json: &str) -> Probe {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn numbers_and_booleans_are_accepted_as_strings() {
        let p = probe(r#"{"s": 12, "b": "true", "n": "30", "f": "1.5"}"#);
        assert_eq!(p.s, "12");
        assert!(p.b);
        assert_eq!(p.n, Some(30));
        assert_eq!(p.f, Some(1.5));
    }

    #[test]
    fn nulls_and_garbage_fall_back_to_defaults() {
        let p = probe(r#"{"s": null, "b": "maybe", "n": "lots", "f": {}}"#);
        assert_eq!(p.s, "");
        assert!(!p.b);
        assert_eq!(p.n, None);
        assert_eq!(p.f, None);
    }

    #[test]
    fn negative_numbers_are_not_counts() {
        assert_eq!(probe(r#"{"n": -3}"#).n, None);
        assert_eq!(probe(r#"{"n": 2.6}"#).n, Some(3));
    }
}

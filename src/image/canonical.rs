//! Canonical JSON: object keys sorted, no insignificant whitespace.
//!
//! Every JSON blob this tool writes goes through here exactly once, and its digest is taken of
//! exactly these bytes. Keys are sorted explicitly because serde_json's map keeps insertion
//! order when any crate in the build enables `preserve_order` (oci-spec does).

use serde::Serialize;
use serde_json::Value;

use super::{Digest, ImageError};

/// Serializes `value` canonically.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_value(value, &mut out);
    out
}

/// Serializes any serde type canonically (through a JSON value).
pub fn serialize<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>, ImageError> {
    let v = serde_json::to_value(value).map_err(|e| ImageError::Json {
        what: what.to_string(),
        reason: e.to_string(),
    })?;
    Ok(to_vec(&v))
}

/// Canonical bytes and their digest.
pub fn with_digest(value: &Value) -> (Vec<u8>, Digest) {
    let bytes = to_vec(value);
    let digest = Digest::of(&bytes);
    (bytes, digest)
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String((*k).clone()), out);
                out.push(b':');
                if let Some(v) = map.get(*k) {
                    write_value(v, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(v, out);
            }
            out.push(b']');
        }
        other => write_scalar(other, out),
    }
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    // Scalars have one serde_json rendering; writing into a Vec cannot fail.
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.extend_from_slice(b"null");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_keys_recursively() {
        let v: Value =
            serde_json::from_str(r#"{"b":1,"a":{"z":[{"y":1,"x":2}],"c":"\u00e9<"}}"#).unwrap();
        assert_eq!(
            String::from_utf8(to_vec(&v)).unwrap(),
            r#"{"a":{"c":"é<","z":[{"x":2,"y":1}]},"b":1}"#
        );
    }
}

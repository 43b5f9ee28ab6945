//! The signaling protocol as a JSON Schema (2020-12), generated from the message types:
//! [`ClientMessage`] and [`ServerMessage`] under `$defs`, and, as the annotation
//! `x-constants`, the numbers a client needs (the close codes by name, the default reconnect
//! grace and idle timeout, the frame limit).
//!
//! It is checked in as `docs/signaling.schema.json` and the page's TypeScript types are
//! generated from it (`web/scripts/generate-types.mjs`); `scripts/signaling-schema.sh` writes
//! both, and with `--check` fails when either is stale, as does the test below for the schema.

use std::time::Duration;

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::SignalingSettings;
use super::messages::ServerMessage;
use super::protocol::{ClientMessage, MAX_FRAME_BYTES, close};

/// Where the schema is checked in, from the workspace root.
pub const CHECKED_IN_PATH: &str = "docs/signaling.schema.json";

/// The schema document, as checked in: keys sorted, two-space indents, a final newline.
pub fn document() -> String {
    // The serialized form: what goes over the wire (an `Option` without `skip_serializing_if`
    // is always there, as null or a value).
    let mut generator = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator();
    let client = generator.subschema_for::<ClientMessage>();
    let server = generator.subschema_for::<ServerMessage>();
    let definitions = generator.take_definitions(true);
    let defaults = SignalingSettings::default();
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let close_codes: Map<String, Value> = close::ALL
        .iter()
        .map(|(name, code)| ((*name).to_owned(), json!(code)))
        .collect();
    let mut document = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "SignalingProtocol",
        "description": "Convene's signaling WebSocket, GET /ws/v1/meetings/{code} on MC \
            (docs/signaling.md): every text frame is one JSON object with a `type`, a \
            ClientMessage from the client or a ServerMessage from the server. Generated from \
            crates/mc-service/src/signaling (scripts/signaling-schema.sh); do not edit.",
        "anyOf": [client, server],
        "$defs": definitions,
        "x-constants": {
            "close_codes": close_codes,
            "reconnect_grace_default_ms": millis(defaults.reconnect_grace),
            "idle_timeout_default_ms": millis(defaults.idle_timeout),
            "auth_timeout_default_ms": millis(defaults.auth_timeout),
            "max_frame_bytes": MAX_FRAME_BYTES,
        },
    });
    sort_keys(&mut document);
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
    text.push('\n');
    text
}

/// Sorts every object's keys, so the text does not depend on serde_json's `preserve_order`
/// (which feature unification turns on in some builds and not in others).
fn sort_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.sort_keys();
            map.values_mut().for_each(sort_keys);
        }
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked_in() -> String {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        std::fs::read_to_string(format!("{root}/{CHECKED_IN_PATH}")).unwrap()
    }

    #[test]
    fn the_checked_in_schema_is_what_the_code_generates() {
        assert!(
            checked_in() == document(),
            "{CHECKED_IN_PATH} is stale: run scripts/signaling-schema.sh"
        );
    }

    #[test]
    fn the_schema_names_every_server_message_type_once() {
        let document: Value = serde_json::from_str(&document()).unwrap();
        let mut types: Vec<String> = Vec::new();
        collect_type_constants(&document["$defs"]["RoomMessage"], &mut types);
        collect_type_constants(&document["$defs"]["SocketMessage"], &mut types);
        let mut sent: Vec<String> = crate::signaling::messages::tests::every_server_message()
            .iter()
            .map(|m| m.type_name().to_owned())
            .collect();
        sent.sort();
        sent.dedup();
        types.sort();
        assert_eq!(types, sent);
    }

    /// The `const` of every `type` property under `schema`.
    fn collect_type_constants(schema: &Value, out: &mut Vec<String>) {
        match schema {
            Value::Object(map) => {
                if let Some(kind) = map
                    .get("properties")
                    .and_then(|p| p.get("type"))
                    .and_then(|t| t.get("const"))
                    .and_then(Value::as_str)
                {
                    out.push(kind.to_owned());
                }
                map.values().for_each(|v| collect_type_constants(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| collect_type_constants(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_constants_are_the_servers() {
        let document: Value = serde_json::from_str(&document()).unwrap();
        let constants = &document["x-constants"];
        assert_eq!(constants["close_codes"]["REPLACED"], 4409);
        assert_eq!(constants["reconnect_grace_default_ms"], 30_000);
        assert_eq!(constants["max_frame_bytes"], 16 * 1024);
    }
}

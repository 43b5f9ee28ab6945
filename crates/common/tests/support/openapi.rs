//! Checks of a service's OpenAPI document (`docs/openapi/<service>.json`) against the service
//! itself: the checked-in copy is what the service serves, every route its router declares is
//! documented and the reverse, every example matches its schema, and real answers match the
//! schemas of their operation and status. Included by AC's and GC's tests with `#[path]`.
//!
//! The schema checks are a small JSON Schema validator for the keywords the documents use
//! (`$ref`, `type`, `enum`, `oneOf`/`anyOf`/`allOf`, `properties`, `required`,
//! `additionalProperties: false`, `items`, `uniqueItems`, lengths, bounds, `pattern` and the
//! formats `uuid`, `date-time`, `uri`), stricter than JSON Schema in one way: an object may not
//! carry a property its schema does not declare, so an answer that grew a field fails until the
//! document says so.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

/// `(METHOD, path template)`.
pub type Route = (String, String);

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn repo_root(manifest_dir: &str) -> PathBuf {
    PathBuf::from(manifest_dir).join("../..")
}

/// The checked-in document of `service` (`docs/openapi/<service>.json`).
pub fn checked_in(manifest_dir: &str, service: &str) -> Value {
    let path = repo_root(manifest_dir).join(format!("docs/openapi/{service}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Panics, naming the first difference, unless the two documents are the same JSON.
pub fn assert_same_document(served: &Value, checked_in: &Value, service: &str) {
    if served != checked_in {
        let at = first_difference(served, checked_in, String::new());
        panic!(
            "docs/openapi/{service}.json differs from the document the code generates (first at \
             `{at}`): run scripts/openapi.sh and commit the result"
        );
    }
}

fn first_difference(a: &Value, b: &Value, at: String) -> String {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) if x == y => {}
                    (Some(x), Some(y)) => return first_difference(x, y, format!("{at}/{key}")),
                    _ => return format!("{at}/{key}"),
                }
            }
            at
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find(|(_, (x, y))| x != y)
            .map_or(at.clone(), |(i, (x, y))| {
                first_difference(x, y, format!("{at}/{i}"))
            }),
        _ => at,
    }
}

/// Every operation of the document.
pub fn documented_routes(doc: &Value) -> BTreeSet<Route> {
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

/// The routes the service's router declares in `src/routes/*.rs`: every
/// `.route("<path>", <method>(...)...)`, with its method router written inline or bound to a
/// `let` of the same file. Routes whose handler lives in `excluded_module::` are left out, and
/// so are OPTIONS handlers (CORS preflights are not part of the API).
pub fn routes_in_source(manifest_dir: &str, excluded_module: &str) -> BTreeSet<Route> {
    let method_call =
        regex::Regex::new(r"(?:^|[^A-Za-z0-9_])(get|post|put|patch|delete)\(").expect("regex");
    let dir = PathBuf::from(manifest_dir).join("src/routes");
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("src/routes") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("source");
        let mut rest = source.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let Some((template, handler)) = route_arguments(rest) else {
                continue;
            };
            let handler = match handler.trim() {
                // A method router bound to a variable: `let create = post(...)...;`
                ident if ident.split('.').next().is_some_and(is_identifier) => {
                    let name = ident.split('.').next().unwrap_or_default();
                    let binding = format!("let {name} =");
                    source.find(&binding).map_or(ident.to_owned(), |start| {
                        let tail = &source[start + binding.len()..];
                        tail[..tail.find(';').unwrap_or(tail.len())].to_owned()
                    })
                }
                other => other.to_owned(),
            };
            if handler.contains(&format!("{excluded_module}::")) {
                continue;
            }
            let methods: Vec<String> = method_call
                .captures_iter(&handler)
                .map(|c| c[1].to_uppercase())
                .collect();
            assert!(
                !methods.is_empty(),
                "{}: no method in the route of {template}: {handler}",
                path.display()
            );
            for method in methods {
                routes.insert((method, template.clone()));
            }
        }
    }
    routes
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `"<template>", <handler>)` → the template and the handler expression (up to the closing
/// parenthesis of `.route(`).
fn route_arguments(text: &str) -> Option<(String, String)> {
    let text = text.trim_start();
    let text = text.strip_prefix('"')?;
    let end = text.find('"')?;
    let template = text[..end].to_owned();
    let after = text[end + 1..].trim_start().strip_prefix(',')?;
    let mut depth = 0usize;
    for (i, c) in after.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Some((template, after[..i].to_owned())),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The path of an operation with sample values for its parameters.
pub fn sample_path(template: &str) -> String {
    template
        .replace("{code}", "wRmjjLrHq4qH")
        .replace("{user_id}", "67b7069f-22ef-4512-8324-02ad22af87f8")
        .replace("{org_id}", "9f2773c6-a4b1-4f91-a244-c60b6347fee0")
        .replace("{kid}", "k20261101-aBcDeFgHiJkL")
}

/// The methods the document does not give `template`, among GET, POST, PUT, PATCH and DELETE.
pub fn undocumented_methods(doc: &Value, template: &str) -> Vec<String> {
    METHODS
        .iter()
        .filter(|m| doc["paths"][template].get(**m).is_none())
        .map(|m| m.to_uppercase())
        .collect()
}

/// Every example in the document (of parameters, bodies, answers and schemas) against its
/// schema; the problems found.
pub fn example_problems(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let at = format!("{} {path}", method.to_uppercase());
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if let Some(example) = parameter.get("example") {
                    check(
                        doc,
                        &parameter["schema"],
                        example,
                        &format!("{at} parameter {}", parameter["name"]),
                        &mut problems,
                    );
                }
            }
            check_content(
                doc,
                &operation["requestBody"],
                &format!("{at} request"),
                &mut problems,
            );
            for (status, response) in operation["responses"].as_object().expect("responses") {
                check_content(doc, response, &format!("{at} {status}"), &mut problems);
            }
        }
    }
    for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
        check_schema_examples(doc, schema, &format!("schema {name}"), &mut problems);
    }
    problems
}

fn check_content(doc: &Value, holder: &Value, at: &str, problems: &mut Vec<String>) {
    for (media_type, content) in holder["content"].as_object().into_iter().flatten() {
        let schema = &content["schema"];
        if let Some(example) = content.get("example") {
            check(
                doc,
                schema,
                example,
                &format!("{at} {media_type}"),
                problems,
            );
        }
        for (name, example) in content["examples"].as_object().into_iter().flatten() {
            check(
                doc,
                schema,
                &example["value"],
                &format!("{at} {media_type} {name}"),
                problems,
            );
        }
    }
}

/// `example` and `examples` of a schema and of the schemas inside it.
fn check_schema_examples(doc: &Value, schema: &Value, at: &str, problems: &mut Vec<String>) {
    let Some(object) = schema.as_object() else {
        return;
    };
    let bare: Value = Value::Object(
        object
            .iter()
            .filter(|(k, _)| *k != "example" && *k != "examples")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    );
    if let Some(example) = object.get("example") {
        check(doc, &bare, example, &format!("{at} example"), problems);
    }
    for example in object
        .get("examples")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        check(doc, &bare, example, &format!("{at} examples"), problems);
    }
    for (name, property) in object
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        check_schema_examples(doc, property, &format!("{at}.{name}"), problems);
    }
    if let Some(items) = object.get("items") {
        check_schema_examples(doc, items, &format!("{at}[]"), problems);
    }
}

fn check(doc: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    if let Err(problem) = validate(doc, schema, value) {
        problems.push(format!("{at}: {problem}"));
    }
}

/// Panics unless `body`, the answer of `method template` with `status`, matches the document's
/// schema for it.
pub fn assert_answer_matches(doc: &Value, method: &str, template: &str, status: u16, body: &Value) {
    let operation = &doc["paths"][template][method.to_lowercase()];
    assert!(
        operation.is_object(),
        "{method} {template} is not documented"
    );
    let response = &operation["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {template} answered {status}, which the document does not list"
    );
    let schema = &response["content"]["application/json"]["schema"];
    if let Err(problem) = validate(doc, schema, body) {
        panic!("{method} {template} {status}: {problem}\nbody: {body}");
    }
}

/// Checks `value` against `schema` (see the module documentation for the keywords).
pub fn validate(doc: &Value, schema: &Value, value: &Value) -> Result<(), String> {
    validate_at(doc, schema, value, "$")
}

fn validate_at(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let Some(keywords) = schema.as_object() else {
        return Ok(());
    };
    if let Some(reference) = keywords.get("$ref").and_then(Value::as_str) {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .ok_or_else(|| format!("{at}: unsupported $ref {reference}"))?;
        let target = &doc["components"]["schemas"][name];
        if target.is_null() {
            return Err(format!("{at}: $ref to a missing schema {name}"));
        }
        return validate_at(doc, target, value, at);
    }
    if let Some(options) = keywords.get("oneOf").and_then(Value::as_array) {
        let matching = options
            .iter()
            .filter(|option| validate_at(doc, option, value, at).is_ok())
            .count();
        if matching != 1 {
            return Err(format!(
                "{at}: matches {matching} of the oneOf schemas, not one"
            ));
        }
    }
    if let Some(options) = keywords.get("anyOf").and_then(Value::as_array)
        && !options
            .iter()
            .any(|option| validate_at(doc, option, value, at).is_ok())
    {
        return Err(format!("{at}: matches none of the anyOf schemas"));
    }
    for option in keywords
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        validate_at(doc, option, value, at)?;
    }
    if let Some(types) = keywords.get("type") {
        let types: Vec<&str> = match types {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.iter().any(|t| has_type(value, t)) {
            return Err(format!("{at}: {value} is not of type {types:?}"));
        }
    }
    if let Some(allowed) = keywords.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    match value {
        Value::String(text) => validate_string(keywords, text, at)?,
        Value::Number(number) => {
            let n = number.as_f64().unwrap_or_default();
            if let Some(min) = keywords.get("minimum").and_then(Value::as_f64)
                && n < min
            {
                return Err(format!("{at}: {n} is below the minimum {min}"));
            }
            if let Some(max) = keywords.get("maximum").and_then(Value::as_f64)
                && n > max
            {
                return Err(format!("{at}: {n} is above the maximum {max}"));
            }
        }
        Value::Array(items) => {
            if let Some(schema) = keywords.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_at(doc, schema, item, &format!("{at}[{i}]"))?;
                }
            }
            if keywords.get("uniqueItems") == Some(&Value::Bool(true)) {
                let distinct: BTreeSet<String> = items.iter().map(Value::to_string).collect();
                if distinct.len() != items.len() {
                    return Err(format!("{at}: items are not unique"));
                }
            }
        }
        Value::Object(fields) => {
            for required in keywords
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = required.as_str().unwrap_or_default();
                if !fields.contains_key(name) {
                    return Err(format!("{at}: the required property {name} is missing"));
                }
            }
            // Strict: a property the schema does not name fails, unless the schema says other
            // properties are allowed (a constraint on some properties only, as in an `anyOf`).
            let open = keywords.get("additionalProperties") == Some(&Value::Bool(true));
            if let Some(properties) = keywords.get("properties").and_then(Value::as_object) {
                for (name, field) in fields {
                    let Some(schema) = properties.get(name) else {
                        if open {
                            continue;
                        }
                        return Err(format!("{at}: the property {name} is not in the schema"));
                    };
                    validate_at(doc, schema, field, &format!("{at}.{name}"))?;
                }
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
    Ok(())
}

fn has_type(value: &Value, json_type: &str) -> bool {
    match json_type {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "null" => value.is_null(),
        _ => false,
    }
}

fn validate_string(
    keywords: &serde_json::Map<String, Value>,
    text: &str,
    at: &str,
) -> Result<(), String> {
    let length = text.chars().count() as u64;
    if let Some(min) = keywords.get("minLength").and_then(Value::as_u64)
        && length < min
    {
        return Err(format!("{at}: {text:?} is shorter than {min}"));
    }
    if let Some(max) = keywords.get("maxLength").and_then(Value::as_u64)
        && length > max
    {
        return Err(format!("{at}: {text:?} is longer than {max}"));
    }
    if let Some(pattern) = keywords.get("pattern").and_then(Value::as_str) {
        let regex = regex::Regex::new(pattern).map_err(|e| format!("{at}: bad pattern: {e}"))?;
        if !regex.is_match(text) {
            return Err(format!("{at}: {text:?} does not match {pattern}"));
        }
    }
    let valid_format = match keywords.get("format").and_then(Value::as_str) {
        Some("uuid") => uuid::Uuid::parse_str(text).is_ok(),
        Some("date-time") => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
        Some("uri") => text.split_once("://").is_some_and(|(s, rest)| {
            !s.is_empty() && !rest.is_empty() && s.chars().all(|c| c.is_ascii_alphabetic())
        }),
        _ => true,
    };
    if !valid_format {
        return Err(format!("{at}: {text:?} is not a {}", keywords["format"]));
    }
    Ok(())
}

/// Asks the service at `base` for every `(method, template)` of `served` (a sample path each):
/// none may answer 404 or 405. Then every method the document does not give a documented path
/// must answer 405: nothing is served that the document does not say.
pub async fn assert_served_as_documented(
    client: &reqwest::Client,
    base: &str,
    doc: &Value,
    served: &BTreeSet<Route>,
) {
    use reqwest::{Method, StatusCode};

    for (method, template) in served {
        let path = sample_path(template);
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let response = client
            .request(method.clone(), format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert!(
            ![StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&response.status()),
            "{method} {path}: {}",
            response.status()
        );
    }
    for (_, template) in documented_routes(doc) {
        let path = sample_path(&template);
        for other in undocumented_methods(doc, &template) {
            let other = Method::from_bytes(other.as_bytes()).unwrap();
            let response = client
                .request(other.clone(), format!("{base}{path}"))
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{other} {path} is served but not documented"
            );
        }
    }
}

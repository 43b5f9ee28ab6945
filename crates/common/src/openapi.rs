//! What the OpenAPI 3.1 documents of AC and GC share (feature `openapi`).
//!
//! Each service documents its own handlers with `#[utoipa::path]` and derives `ToSchema` on
//! the real request and response types. What every route has because the common middleware
//! stack ([`crate::http::layers`]) or a shared extractor does it is documented here, once, by
//! [`add_shared_responses`]: the answers to a second `Authorization` or `Content-Type` header,
//! an overlong request head, a panic and a timeout on every operation; the 401 (and on GC the
//! 503 of a verifier without keys) on every operation that takes a bearer token; the answers
//! of [`crate::http::StrictJson`] on every operation with a JSON body. Every error example is
//! made by the function that makes the real error, so the examples cannot drift from the code.
//!
//! The document is served at `GET /api/v1/openapi.json` by each service and printed by its
//! `openapi` subcommand, both through [`render`], so the two are the same bytes.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::example::Example;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Ref, Schema, Type};
use utoipa::openapi::{Content, OpenApi, RefOr, ResponseBuilder};
use utoipa::{PartialSchema, ToSchema};

use crate::display_name::{DisplayName, MAX_DISPLAY_NAME_CHARS};
use crate::error::{ApiError, ErrorEnvelope};
use crate::http::{self, layers};
use crate::meeting_code::{CODE_LEN, MeetingCode};

/// `Cache-Control` of the served document: it changes only with a deployment.
pub const DOCUMENT_CACHE_CONTROL: &str = "public, max-age=300";

/// The document as JSON, the same bytes whether served or printed: pretty, keys in a stable
/// order (paths and properties as declared in the code, every map sorted), newline-terminated.
pub fn render(doc: &OpenApi) -> Result<String, serde_json::Error> {
    let mut json = doc.to_pretty_json()?;
    json.push('\n');
    Ok(json)
}

/// A service's document rendered once at start-up: the router's sub-state that
/// `GET /api/v1/openapi.json` answers with (`State<Document>`).
#[derive(Clone, Debug)]
pub struct Document(Bytes);

impl Document {
    pub fn new(rendered: impl Into<Bytes>) -> Document {
        Document(rendered.into())
    }

    /// The response of `GET /api/v1/openapi.json`: the document as `application/json`,
    /// cacheable.
    pub fn response(&self) -> Response {
        (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, DOCUMENT_CACHE_CONTROL),
            ],
            self.0.clone(),
        )
            .into_response()
    }
}

/// An example value: the body `error` is answered with.
pub fn example_body(error: &ApiError) -> serde_json::Value {
    serde_json::to_value(error.envelope()).unwrap_or_default()
}

/// A string schema whose value is one of `values` (for fields typed `&'static str` that hold
/// one of a closed set).
pub fn string_enum<'a>(values: impl IntoIterator<Item = &'a str>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
}

impl PartialSchema for MeetingCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A meeting code: 12 characters of 0-9A-Za-z, drawn uniformly from a CSPRNG, \
                 unique across the platform.",
            ))
            .min_length(Some(CODE_LEN))
            .max_length(Some(CODE_LEN))
            .pattern(Some(format!("^[0-9A-Za-z]{{{CODE_LEN}}}$")))
            .examples(["wRmjjLrHq4qH"])
            .into()
    }
}

impl ToSchema for MeetingCode {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("MeetingCode")
    }
}

impl PartialSchema for DisplayName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(format!(
                "A name people see on one line (common::display_name): trimmed of surrounding \
                 whitespace, then 1-{MAX_DISPLAY_NAME_CHARS} characters (Unicode scalar values) \
                 with at least one visible character, and no control, format (except a \
                 zero-width joiner between two characters), line-separator, paragraph-separator \
                 or private-use characters. The limit counts after trimming, so the schema has \
                 no maxLength: surrounding whitespace may take a request past it."
            )))
            .min_length(Some(1))
            .examples(["Weekly sync"])
            .into()
    }
}

impl ToSchema for DisplayName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("DisplayName")
    }
}

/// What differs between the services in [`add_shared_responses`].
#[derive(Clone, Copy, Debug)]
pub struct SharedResponses {
    /// The security schemes whose callers send `Authorization: Bearer` (checked by
    /// [`crate::auth::authenticate`]): operations that require one of them get the 401.
    pub bearer_schemes: &'static [&'static str],
    /// Whether the verifier fetches its keys from AC (GC): then a bearer token is answered 503
    /// until the first fetch has succeeded.
    pub remote_keys: bool,
}

/// Adds to every operation of `doc` the responses the common stack gives it (see the module
/// documentation), as named examples next to those the handler documents itself. A status the
/// handler answers with another body (the OAuth2 token endpoint) gets `oneOf` both schemas.
pub fn add_shared_responses(doc: &mut OpenApi, shared: SharedResponses) {
    let components = doc.components.get_or_insert_with(Default::default);
    let mut schemas = vec![(ErrorEnvelope::name().into_owned(), ErrorEnvelope::schema())];
    ErrorEnvelope::schemas(&mut schemas);
    for (name, schema) in schemas {
        components.schemas.entry(name).or_insert(schema);
    }
    for item in doc.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            add_to_operation(operation, shared);
        }
    }
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

fn add_to_operation(operation: &mut Operation, shared: SharedResponses) {
    let retry_after = || {
        (
            "Retry-After",
            header_of(
                Type::Integer,
                "Seconds to wait before retrying: on every 503, and on a 429 (a full hashing \
                 capacity, a rate limit).",
            ),
        )
    };
    add_error(
        operation,
        "duplicate_header",
        "Two Authorization or two Content-Type headers",
        &layers::duplicate_header(&header::AUTHORIZATION),
        &[],
    );
    add_error(
        operation,
        "uri_too_long",
        "The request target is over 8 KiB",
        &layers::uri_too_long(),
        &[],
    );
    add_error(
        operation,
        "headers_too_large",
        "More than 100 headers, or over 32 KiB of them",
        &layers::headers_too_large(),
        &[],
    );
    add_error(
        operation,
        "internal",
        "A failure on the service's side; the cause is only logged",
        &ApiError::internal(),
        &[],
    );
    add_error(
        operation,
        "timeout",
        "The request took longer than 30 s",
        &layers::timed_out(),
        &[retry_after()],
    );

    if requires_bearer(operation, shared.bearer_schemes) {
        add_error(
            operation,
            "unauthorized",
            "No bearer token, or one that is invalid, expired or of the wrong kind",
            &ApiError::unauthorized(),
            &[(
                "WWW-Authenticate",
                header_of(Type::String, "Always `Bearer realm=\"convene\"`."),
            )],
        );
        if shared.remote_keys {
            add_error(
                operation,
                "no_signing_keys",
                "The service has never obtained AC's signing keys, so no token can be checked",
                &ApiError::unavailable(),
                &[],
            );
        }
    }

    // Every 503, whoever documents it, says when to retry (`ApiError`'s response adds it).
    if let Some(RefOr::T(response)) = operation
        .responses
        .responses
        .get_mut(StatusCode::SERVICE_UNAVAILABLE.as_str())
    {
        let (name, header) = retry_after();
        response.headers.entry(name.to_owned()).or_insert(header);
    }

    if has_json_body(operation) {
        // The token endpoint answers its body errors with its own objects; only envelope
        // answers get these examples.
        if answers_with_envelope(operation, StatusCode::BAD_REQUEST) {
            add_error(
                operation,
                "unsupported_media_type",
                "Content-Type missing or not application/json (a 400, not a 415)",
                &http::unsupported_media_type(),
                &[],
            );
            let malformed = http::parse_json::<serde_json::Value>(b"{")
                .err()
                .unwrap_or_else(|| ApiError::bad_request("malformed JSON"));
            add_error(
                operation,
                "malformed_json",
                "A body that is not JSON, not an object, has an unknown field or a wrong type",
                &malformed,
                &[],
            );
        }
        if answers_with_envelope(operation, StatusCode::PAYLOAD_TOO_LARGE) {
            add_error(
                operation,
                "payload_too_large",
                "A body over 64 KiB",
                &http::payload_too_large(),
                &[],
            );
        }
    }
}

/// Whether the operation's security requirements all name one of `schemes`: a caller without
/// a bearer token cannot use it.
fn requires_bearer(operation: &Operation, schemes: &[&str]) -> bool {
    let Some(requirements) = &operation.security else {
        return false;
    };
    let names = |requirement| -> Vec<String> {
        match serde_json::to_value(requirement) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    };
    !requirements.is_empty()
        && requirements.iter().all(|requirement| {
            let names = names(requirement);
            !names.is_empty() && names.iter().all(|name| schemes.contains(&name.as_str()))
        })
}

fn has_json_body(operation: &Operation) -> bool {
    operation
        .request_body
        .as_ref()
        .is_some_and(|body| body.content.contains_key("application/json"))
}

fn envelope_ref() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(ErrorEnvelope::name()))
}

fn is_envelope(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::Ref(r) if r.ref_location == Ref::from_schema_name(ErrorEnvelope::name()).ref_location)
}

/// Whether `status` of the operation is absent (it will be the envelope) or the envelope.
fn answers_with_envelope(operation: &Operation, status: StatusCode) -> bool {
    operation
        .responses
        .responses
        .get(status.as_str())
        .is_none_or(|response| match response {
            RefOr::T(response) => response
                .content
                .get("application/json")
                .and_then(|content| content.schema.as_ref())
                .is_none_or(is_envelope),
            RefOr::Ref(_) => false,
        })
}

fn header_of(schema_type: Type, description: &str) -> Header {
    let mut header = Header::new(ObjectBuilder::new().schema_type(schema_type));
    header.description = Some(description.to_owned());
    header
}

/// The description of a response the handler does not document itself.
fn default_description(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "The request is malformed",
        StatusCode::UNAUTHORIZED => "No valid bearer token",
        StatusCode::PAYLOAD_TOO_LARGE => "The body is over 64 KiB",
        StatusCode::URI_TOO_LONG => "The request target is over 8 KiB",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "The request headers are too large",
        StatusCode::INTERNAL_SERVER_ERROR => "A failure on the service's side",
        StatusCode::SERVICE_UNAVAILABLE => "Temporarily unavailable; safe to retry",
        _ => "An error",
    }
}

/// Adds `error` as the example `name` of its status's `application/json` content, creating the
/// response (with the envelope schema) when the operation has none for that status.
fn add_error(
    operation: &mut Operation,
    name: &str,
    summary: &str,
    error: &ApiError,
    headers: &[(&str, Header)],
) {
    let status = error.code.http_status();
    let response = operation
        .responses
        .responses
        .entry(status.as_str().to_owned())
        .or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(default_description(status))
                    .build(),
            )
        });
    let RefOr::T(response) = response else {
        return;
    };
    let own_summary = response.description.clone();
    for (header_name, header) in headers {
        response
            .headers
            .entry((*header_name).to_owned())
            .or_insert_with(|| header.clone());
    }
    let content = response
        .content
        .entry("application/json".to_owned())
        .or_insert_with(|| Content::new(Some(envelope_ref())));
    match &content.schema {
        None => content.schema = Some(envelope_ref()),
        Some(schema) if is_envelope(schema) => {}
        Some(RefOr::T(Schema::OneOf(one_of))) if one_of.items.iter().any(is_envelope) => {}
        Some(other) => {
            content.schema = Some(
                OneOfBuilder::new()
                    .item(other.clone())
                    .item(envelope_ref())
                    .into(),
            );
        }
    }
    // `example` and `examples` exclude each other: a handler's single example joins the named
    // ones under the name of its code.
    if let Some(single) = content.example.take() {
        let single_name = example_name(&single);
        content
            .examples
            .entry(single_name)
            .or_insert_with(|| RefOr::T(example(Some(&own_summary), single)));
    }
    content
        .examples
        .entry(name.to_owned())
        .or_insert_with(|| RefOr::T(example(Some(summary), example_body(error))));
}

fn example(summary: Option<&str>, value: serde_json::Value) -> Example {
    let mut example = Example::new();
    if let Some(summary) = summary {
        example.summary = summary.to_owned();
    }
    example.value = Some(value);
    example
}

/// `not_found` for an envelope with code `NOT_FOUND`, `invalid_client` for an OAuth2 error.
fn example_name(value: &serde_json::Value) -> String {
    value["error"]["code"]
        .as_str()
        .or_else(|| value["error"].as_str())
        .map_or_else(|| "example".to_owned(), str::to_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_schema_lists_every_code_a_client_can_see() {
        let schema = serde_json::to_value(crate::error::error_code_schema().build()).unwrap();
        let codes = schema["enum"].as_array().unwrap();
        assert_eq!(codes.len(), crate::error::ErrorCode::ALL.len() - 1);
        assert!(codes.contains(&serde_json::json!("MEETING_FULL")));
        assert!(!codes.contains(&serde_json::json!("ROOM_NOT_ASSIGNED")));
    }

    #[test]
    fn a_meeting_code_schema_matches_the_codes_parse_accepts() {
        let schema = serde_json::to_value(MeetingCode::schema()).unwrap();
        assert_eq!(schema["pattern"], "^[0-9A-Za-z]{12}$");
        let example = schema["examples"][0].as_str().unwrap();
        assert!(MeetingCode::parse(example).is_some());
    }

    #[test]
    fn shared_responses_join_the_handler_s_own_examples() {
        use utoipa::openapi::path::{HttpMethod, OperationBuilder};
        use utoipa::openapi::security::SecurityRequirement;
        use utoipa::openapi::{PathsBuilder, ResponseBuilder};

        // The handler documents a 503 of its own (a peer failed); the shared layer adds its own
        // 503s (the timeout, no signing keys) beside it, not over it.
        let own = ResponseBuilder::new()
            .description("A meeting controller failed")
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(envelope_ref()))
                    .example(Some(example_body(&ApiError::unavailable())))
                    .build(),
            )
            .build();
        let operation = OperationBuilder::new()
            .security(SecurityRequirement::new("userToken", Vec::<String>::new()))
            .response("503", own)
            .build();
        let mut doc = OpenApi::new(
            utoipa::openapi::Info::new("t", "1"),
            PathsBuilder::new().path("/x", PathItem::new(HttpMethod::Get, operation)),
        );
        add_shared_responses(
            &mut doc,
            SharedResponses {
                bearer_schemes: &["userToken"],
                remote_keys: true,
            },
        );
        let json = serde_json::to_value(&doc).unwrap();
        let responses = &json["paths"]["/x"]["get"]["responses"];
        let unavailable = &responses["503"]["content"]["application/json"];
        assert!(unavailable.get("example").is_none(), "{unavailable}");
        let examples = &unavailable["examples"];
        assert_eq!(
            examples["service_unavailable"]["value"]["error"]["code"], "SERVICE_UNAVAILABLE",
            "{unavailable}"
        );
        assert_eq!(
            examples["service_unavailable"]["summary"],
            "A meeting controller failed"
        );
        assert!(examples["timeout"].is_object() && examples["no_signing_keys"].is_object());
        assert!(responses["401"]["headers"]["WWW-Authenticate"].is_object());
        assert!(responses["414"].is_object() && responses["431"].is_object());
        assert!(responses.get("413").is_none(), "no body, no 413");
        assert!(json["components"]["schemas"]["ErrorBody"].is_object());
    }
}

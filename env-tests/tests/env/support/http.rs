//! HTTP for every fixture: bounded in time, and a failure that says which service, URL and
//! answer it was about.

use std::error::Error as _;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::Value;

use super::config::{Service, install_crypto, stack};

/// Connecting must succeed within this, so a service that is down fails a test in seconds.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A whole request, answer included. GC's own request timeout is 30 s; nothing the tests ask
/// should come near it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A client of its own for each fixture: its connections belong to the test's runtime.
pub fn client() -> Client {
    install_crypto();
    Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("an HTTP client with rustls' ring provider")
}

/// One answer, kept whole for assertions and for the message of a failure.
#[derive(Debug)]
pub struct Reply {
    pub request: String,
    pub service: Service,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    /// The body as JSON, `Null` when it is empty or not JSON.
    pub body: Value,
}

impl Reply {
    /// The JSON body, when the status is `expected`; else an error that shows the answer.
    pub fn expect(self, expected: u16) -> anyhow::Result<Value> {
        if self.status.as_u16() == expected {
            return Ok(self.body);
        }
        Err(self.unexpected(&format!("expected {expected}")))
    }

    /// An error naming the request and its answer, with a hint when the answer says a service
    /// behind the one asked is down.
    pub fn unexpected(&self, wanted: &str) -> anyhow::Error {
        let mut message = format!(
            "{} answered {} ({wanted}): {}",
            self.request,
            self.status,
            shorten(&self.text)
        );
        if self.status == StatusCode::SERVICE_UNAVAILABLE && self.service.name == "GC" {
            let stack = stack();
            message.push_str(&format!(
                "\n  GC answers 503 when it cannot reach a meeting controller or AC: is every \
                 controller up ({}) and {}?",
                stack
                    .mcs
                    .iter()
                    .map(|mc| mc.url.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                stack.ac.describe()
            ));
        }
        anyhow!(message)
    }

    /// `error.code` of the Convene envelope, if the body is one.
    pub fn error_code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }

    /// Asserts a Convene error: the status, the code, and the envelope's shape.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status.as_u16(), self.error_code()),
            (status, Some(code)),
            "{}: {}",
            self.request,
            self.text
        );
        let error = self.body["error"]
            .as_object()
            .unwrap_or_else(|| panic!("{}: no error envelope in {}", self.request, self.text));
        assert!(
            error.len() == 2 && error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}: the envelope is {{code, message}}: {}",
            self.request,
            self.text
        );
    }
}

fn shorten(text: &str) -> String {
    const MAX: usize = 600;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// Sends `request` to `service`. A connection that fails or an answer that does not come in
/// time is an error naming the service and its variable. A 503 with `Retry-After` (AC's hashing
/// capacity, a listener at its connection limit: nothing was done) is retried twice.
pub async fn send(service: &Service, request: RequestBuilder) -> anyhow::Result<Reply> {
    let (client, request) = request.build_split();
    let request = request.context("building a request")?;
    let described = format!("{} {}", request.method(), request.url());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let this = request
            .try_clone()
            .context("the fixtures send only bodies that can be sent again")?;
        let response = match client.execute(this).await {
            Ok(response) => response,
            Err(error) => bail!(unreachable(service, &described, &error)),
        };
        let status = response.status();
        let headers = response.headers().clone();
        if status == StatusCode::SERVICE_UNAVAILABLE
            && attempt < 3
            && let Some(wait) = retry_after(&headers)
        {
            tokio::time::sleep(wait).await;
            continue;
        }
        let text = response
            .text()
            .await
            .map_err(|error| anyhow!(unreachable(service, &described, &error)))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        return Ok(Reply {
            request: described,
            service: service.clone(),
            status,
            headers,
            text,
            body,
        });
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.clamp(1, 3)))
}

/// `GC at http://… (CONVENE_GC_URL) could not be reached: POST …: tcp connect error: Connection
/// refused (os error 111)`.
pub fn unreachable(service: &Service, request: &str, error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        format!(
            "no answer within {} s (connecting: {} s)",
            REQUEST_TIMEOUT.as_secs(),
            CONNECT_TIMEOUT.as_secs()
        )
    } else {
        let mut causes = Vec::new();
        let mut source = error.source();
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        if causes.is_empty() {
            error.to_string()
        } else {
            causes.join(": ")
        }
    };
    format!(
        "{} could not be reached: {request}: {what}",
        service.describe()
    )
}

/// A request to `service` at `path` with an optional bearer token.
pub fn request(
    client: &Client,
    method: Method,
    service: &Service,
    path: &str,
    token: Option<&str>,
) -> RequestBuilder {
    let builder = client.request(method, service.at(path));
    match token {
        Some(token) => builder.bearer_auth(token),
        None => builder,
    }
}

//! The client half: every call leaves with a service token, a trace context and a deadline.
//!
//! [`ServiceTokenLayer`] wraps a [`tonic::transport::Channel`] (any tower service over
//! `http::Request<tonic::body::Body>`, in fact); a generated client is built over the result as
//! over the channel itself: `MeetingControllerServiceClient::new(layer.layer(channel))`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderValue;
use http::header::{AUTHORIZATION, HeaderName};
use http_body_util::{BodyExt, Full};
use secrecy::{ExposeSecret, SecretString};
use tower::{Layer, Service, ServiceExt};
use tracing::Instrument;

use crate::error::ApiError;
use crate::service_token::ServiceTokenClient;

/// The deadline of a call that sets none (`tonic::Request::set_timeout` sets one).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// Attaches a service token, the W3C trace context and a deadline to every call.
///
/// - `authorization: Bearer <token>` from the [`ServiceTokenClient`], which caches and
///   refreshes it. When no token can be had, the call fails with `UNAVAILABLE`
///   (`SERVICE_UNAVAILABLE`) and never leaves.
/// - `traceparent` of a `grpc.client` span, child of the caller's current span.
/// - `grpc-timeout` of [`DEFAULT_TIMEOUT`] unless the call has one. Either deadline is also
///   kept here: with no response headers by then, the call ends with `DEADLINE_EXCEEDED`.
///   (It bounds the wait for the response headers, which for a unary call is the whole
///   call; a streaming body is bounded by the server, which reads `grpc-timeout`.)
/// - A peer answering `UNAUTHENTICATED` as a trailers-only response (how a server's
///   `ServiceAuthLayer` refuses a token, before any method runs) gets the call once more with
///   a new token, within the same deadline ([`ServiceTokenClient::call`]): after AC withdrew
///   the key that signed the cached token, the call in hand still succeeds. The retry's
///   answer is final.
///
/// To send a call twice, the layer reads the request body whole before the first attempt and
/// keeps it. A unary call's body is its one encoded message, so this costs a copy of bytes
/// already in memory. A client-streaming call would not leave before its stream ended; the
/// internal protos have none (`proto/`), and one that is added needs a layer that does not
/// buffer.
///
/// Build one layer per token client and layer every channel with it (GC: one channel per MC).
#[derive(Clone)]
pub struct ServiceTokenLayer {
    tokens: Arc<ServiceTokenClient>,
    default_timeout: Duration,
}

impl ServiceTokenLayer {
    pub fn new(tokens: Arc<ServiceTokenClient>) -> Self {
        Self {
            tokens,
            default_timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The deadline of calls that set none.
    pub fn with_default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = timeout;
        self
    }
}

impl<S> Layer<S> for ServiceTokenLayer {
    type Service = WithServiceToken<S>;

    fn layer(&self, inner: S) -> WithServiceToken<S> {
        WithServiceToken {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`ServiceTokenLayer`] makes.
#[derive(Clone)]
pub struct WithServiceToken<S> {
    inner: S,
    layer: ServiceTokenLayer,
}

type ServiceFuture<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, ResBody> Service<http::Request<tonic::body::Body>> for WithServiceToken<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = ServiceFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        let started = Instant::now();
        // The service that was polled ready sends the first attempt; a clone sends a retry.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();

        let (name, service, method) = super::rpc_names(request.uri().path());
        let span = tracing::info_span!(
            "grpc.client",
            otel.name = name,
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
        );
        span.in_scope(|| crate::telemetry::inject_trace_context(request.headers_mut()));
        let requested = request
            .headers()
            .get(GRPC_TIMEOUT)
            .and_then(parse_grpc_timeout);
        let deadline = requested.unwrap_or(layer.default_timeout);

        let call = async move {
            let (parts, body) = request.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                // The message could not be encoded; the caller gets the encoder's status.
                Err(status) => return Ok(status_response(status)),
            };
            let mut attempt = Attempt {
                parts,
                body,
                spare: ready.clone(),
                ready: Some(ready),
                started,
                deadline: requested.is_none().then_some(deadline),
            };
            let sent = layer
                .tokens
                .call(
                    |token| attempt.send(token),
                    |sent: &Result<http::Response<ResBody>, S::Error>| {
                        sent.as_ref().is_ok_and(super::is_unauthenticated)
                    },
                )
                .await;
            match sent {
                Ok(sent) => sent,
                Err(error) => {
                    tracing::warn!(%error, "no service token; the call is not sent");
                    Ok(status_response(ApiError::unavailable().into()))
                }
            }
        };

        Box::pin(
            async move {
                match tokio::time::timeout(deadline, call).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::warn!(?deadline, "gRPC call exceeded its deadline");
                        Ok(status_response(tonic::Status::deadline_exceeded(
                            "deadline exceeded",
                        )))
                    }
                }
            }
            .instrument(span),
        )
    }
}

/// One call, as many times as the token client sends it (twice at most).
struct Attempt<S> {
    parts: http::request::Parts,
    body: Bytes,
    /// The inner service polled ready by the caller, for the first attempt.
    ready: Option<S>,
    /// A clone of it for a retry.
    spare: S,
    started: Instant,
    /// The layer's deadline, when the call set none: the rest of it goes in `grpc-timeout`.
    deadline: Option<Duration>,
}

impl<S, ResBody> Attempt<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    /// The request with `token`, sent on the ready service the first time and on a clone
    /// driven ready after that.
    fn send(
        &mut self,
        token: SecretString,
    ) -> impl Future<Output = Result<http::Response<ResBody>, S::Error>> + Send + use<S, ResBody>
    {
        let mut request = http::Request::from_parts(
            self.parts.clone(),
            tonic::body::Body::new(Full::new(self.body.clone())),
        );
        let authorization = HeaderValue::try_from(format!("Bearer {}", token.expose_secret()));
        if let Some(deadline) = self.deadline {
            // What is left of the deadline once the token is in hand.
            let left = deadline.saturating_sub(self.started.elapsed());
            request
                .headers_mut()
                .insert(GRPC_TIMEOUT, encode_grpc_timeout(left));
        }
        let (service, polled_ready) = match self.ready.take() {
            Some(ready) => (ready, true),
            None => (self.spare.clone(), false),
        };
        async move {
            let Ok(mut authorization) = authorization else {
                tracing::warn!("AC issued a token that cannot be a header; the call is not sent");
                return Ok(status_response(ApiError::unavailable().into()));
            };
            authorization.set_sensitive(true);
            request.headers_mut().insert(AUTHORIZATION, authorization);
            let mut service = service;
            if !polled_ready {
                service.ready().await?;
            }
            service.call(request).await
        }
    }
}

fn status_response<B: Default>(status: tonic::Status) -> http::Response<B> {
    status.into_http()
}

/// Reads a `grpc-timeout` value: at most 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
fn parse_grpc_timeout(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?;
    let unit = text.chars().last()?;
    let digits = &text[..text.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        'H' => Duration::from_secs(amount * 3600),
        'M' => Duration::from_secs(amount * 60),
        'S' => Duration::from_secs(amount),
        'm' => Duration::from_millis(amount),
        'u' => Duration::from_micros(amount),
        'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Writes `timeout` as a `grpc-timeout` value, rounded up to the millisecond (to the second
/// beyond 8 digits of milliseconds).
fn encode_grpc_timeout(timeout: Duration) -> HeaderValue {
    const MAX_AMOUNT: u128 = 99_999_999;
    let millis = timeout.as_micros().div_ceil(1000).max(1);
    let text = if millis <= MAX_AMOUNT {
        format!("{millis}m")
    } else {
        format!("{}S", timeout.as_secs().min(MAX_AMOUNT as u64))
    };
    HeaderValue::try_from(text).unwrap_or(HeaderValue::from_static("99999999S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Option<Duration> {
        parse_grpc_timeout(&HeaderValue::from_str(text).unwrap())
    }

    #[test]
    fn grpc_timeout_values_parse_in_every_unit() {
        assert_eq!(parse("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse("99999999n"), Some(Duration::from_nanos(99_999_999)));
    }

    #[test]
    fn malformed_grpc_timeout_values_are_ignored() {
        for text in [
            "",
            "m",
            "5",
            "5s",
            "+5S",
            "-5S",
            "123456789S",
            "5 S",
            "5SS",
            "1.5S",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn encoded_timeouts_read_back_rounded_up_to_the_millisecond() {
        let cases = [
            (Duration::from_secs(5), Duration::from_secs(5)),
            (Duration::from_micros(1500), Duration::from_millis(2)),
            (Duration::ZERO, Duration::from_millis(1)),
            (Duration::from_secs(200_000), Duration::from_secs(200_000)),
            (Duration::MAX, Duration::from_secs(99_999_999)),
        ];
        for (timeout, expected) in cases {
            assert_eq!(
                parse_grpc_timeout(&encode_grpc_timeout(timeout)),
                Some(expected),
                "{timeout:?}"
            );
        }
    }
}

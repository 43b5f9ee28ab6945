//! The client half: every call leaves with a service token, a trace context and a deadline.
//!
//! [`ServiceTokenLayer`] wraps a [`tonic::transport::Channel`] (any tower service over
//! `http::Request`, in fact); a generated client is built over the result as over the
//! channel itself: `MeetingControllerServiceClient::new(layer.layer(channel))`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::HeaderValue;
use http::header::{AUTHORIZATION, HeaderName};
use secrecy::ExposeSecret;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::error::ApiError;
use crate::service_token::ServiceTokenClient;

/// The deadline of a call that sets none (`tonic::Request::set_timeout` sets one).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// After the peer refused a token, the cached one is dropped at most this often. A peer that
/// refuses every token (a misconfigured issuer) would otherwise cost AC a client-secret check
/// per call.
pub const DEFAULT_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

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
/// - A peer answering `UNAUTHENTICATED` (as a trailers-only response, which is how servers
///   refuse before running a method) makes the next call fetch a new token, at most once per
///   `min_refetch_interval` ([`DEFAULT_MIN_REFETCH_INTERVAL`]).
///
/// Build one layer per token client and layer every channel with it (GC: one channel per MC):
/// clones share the refetch bound.
#[derive(Clone)]
pub struct ServiceTokenLayer {
    tokens: Arc<ServiceTokenClient>,
    default_timeout: Duration,
    min_refetch_interval: Duration,
    last_refetch: Arc<Mutex<Option<Instant>>>,
}

impl ServiceTokenLayer {
    pub fn new(tokens: Arc<ServiceTokenClient>) -> Self {
        Self {
            tokens,
            default_timeout: DEFAULT_TIMEOUT,
            min_refetch_interval: DEFAULT_MIN_REFETCH_INTERVAL,
            last_refetch: Arc::new(Mutex::new(None)),
        }
    }

    /// The deadline of calls that set none.
    pub fn with_default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = timeout;
        self
    }

    /// How often a refused token may be dropped for a new one.
    pub fn with_min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    /// Drops the cached token after a refusal, unless one was dropped less than
    /// `min_refetch_interval` ago: the token fetched then is as good as any other.
    async fn forget_refused_token(&self) {
        {
            let mut last = self
                .last_refetch
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            if last.is_some_and(|at| now.duration_since(at) < self.min_refetch_interval) {
                tracing::warn!("peer refused a fresh service token");
                return;
            }
            *last = Some(now);
        }
        tracing::warn!("peer refused the service token; the next call fetches a new one");
        self.tokens.invalidate().await;
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

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for WithServiceToken<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let started = Instant::now();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
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
            let token = match layer.tokens.token().await {
                Ok(token) => token,
                Err(error) => {
                    tracing::warn!(%error, "no service token; the call is not sent");
                    return Ok(status_response(ApiError::unavailable().into()));
                }
            };
            let Ok(mut value) = HeaderValue::try_from(format!("Bearer {}", token.expose_secret()))
            else {
                tracing::warn!("AC issued a token that cannot be a header; the call is not sent");
                return Ok(status_response(ApiError::unavailable().into()));
            };
            value.set_sensitive(true);
            request.headers_mut().insert(AUTHORIZATION, value);
            if requested.is_none() {
                // What is left of the deadline once the token is in hand.
                let left = deadline.saturating_sub(started.elapsed());
                request
                    .headers_mut()
                    .insert(GRPC_TIMEOUT, encode_grpc_timeout(left));
            }

            let response = inner.call(request).await?;
            if is_unauthenticated(&response) {
                layer.forget_refused_token().await;
            }
            Ok(response)
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

fn status_response<B: Default>(status: tonic::Status) -> http::Response<B> {
    status.into_http()
}

/// Whether the response is a trailers-only `UNAUTHENTICATED`.
fn is_unauthenticated<B>(response: &http::Response<B>) -> bool {
    response.headers().get("grpc-status").is_some_and(|code| {
        tonic::Code::from_bytes(code.as_bytes()) == tonic::Code::Unauthenticated
    })
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

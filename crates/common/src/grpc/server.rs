//! The server half: only a peer holding the right service token reaches a method.
//!
//! Verifying a token may fetch AC's keys, so this is a tower [`Layer`] over `http::Request`
//! rather than tonic's synchronous `Interceptor`. It composes with a generated `*Server` (the
//! result is still a [`NamedService`], so it can go into [`tonic::service::Routes`]), with a
//! whole `Routes`, and with `tonic::transport::Server::builder().layer(..)`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use tonic::server::NamedService;
use tower::{Layer, Service};

use super::layers::RefusedBeforeAnyMethod;
use crate::error::ApiError;
use crate::jwks::{JwksVerifier, VerifyError};
use crate::jwt::ServiceClaims;

/// The authenticated peer of a call, as its service token says. [`ServiceAuth`] puts it in
/// the request's extensions; a method reads it with [`ServiceCaller::from_request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceCaller {
    /// The `sub` of the token: the client id of the peer's service credential.
    pub client_id: String,
    pub service_type: String,
    pub scopes: Vec<String>,
}

impl ServiceCaller {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// The caller of `request`. Fails closed (`INTERNAL`) when there is none, which means the
    /// service was served without [`ServiceAuthLayer`].
    pub fn from_request<T>(request: &tonic::Request<T>) -> Result<&ServiceCaller, tonic::Status> {
        request.extensions().get::<ServiceCaller>().ok_or_else(|| {
            tracing::error!("gRPC method reached without ServiceAuthLayer; call refused");
            ApiError::internal().into()
        })
    }

    fn from_claims(claims: ServiceClaims) -> Self {
        let scopes = claims.scopes().map(str::to_owned).collect();
        ServiceCaller {
            client_id: claims.sub,
            service_type: claims.service_type,
            scopes,
        }
    }
}

/// Admits calls carrying `authorization: Bearer <service token>` whose token verifies as
/// [`ServiceClaims`] (signature, algorithm, expiry, issuer, audience `convene-internal`,
/// `token_type: service`) and names the required `service_type` and scope.
#[derive(Clone)]
pub struct ServiceAuthLayer {
    policy: Arc<Policy>,
}

struct Policy {
    verifier: JwksVerifier,
    service_type: String,
    scope: String,
}

impl ServiceAuthLayer {
    /// `service_type` is the caller's (constants in [`crate::jwt::service_type`]); `scope` the
    /// one its token must hold (constants in [`crate::jwt::scope`]).
    pub fn new(
        verifier: JwksVerifier,
        service_type: impl Into<String>,
        scope: impl Into<String>,
    ) -> Self {
        Self {
            policy: Arc::new(Policy {
                verifier,
                service_type: service_type.into(),
                scope: scope.into(),
            }),
        }
    }
}

impl<S> Layer<S> for ServiceAuthLayer {
    type Service = ServiceAuth<S>;

    fn layer(&self, inner: S) -> ServiceAuth<S> {
        ServiceAuth {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service [`ServiceAuthLayer`] makes: refuses a call with an error status (and the
/// error-code metadata) or hands it, with its [`ServiceCaller`], to `S`.
#[derive(Clone)]
pub struct ServiceAuth<S> {
    inner: S,
    policy: Arc<Policy>,
}

impl<S: NamedService> NamedService for ServiceAuth<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for ServiceAuth<S>
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
        // The clone that was made ready goes into the future; a fresh clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let policy = self.policy.clone();
        Box::pin(async move {
            match policy.authenticate(request.headers()).await {
                Ok(caller) => {
                    // The call's span, when the router wears `grpc::layers`.
                    tracing::Span::current().record("client_id", caller.client_id.as_str());
                    request.extensions_mut().insert(caller);
                    let response = inner.call(request).await?;
                    Ok(never_unauthenticated(response))
                }
                Err(error) => {
                    let mut refusal = tonic::Status::from(error).into_http();
                    refusal.extensions_mut().insert(RefusedBeforeAnyMethod);
                    Ok(refusal)
                }
            }
        })
    }
}

/// A method's answer, with `UNAUTHENTICATED` turned into `INTERNAL`. Clients take
/// `UNAUTHENTICATED` for the refusal of their service token, which this layer makes before any
/// method runs, and send the call once more with a new token (`client::ServiceTokenLayer`); a
/// method answering it would run twice.
fn never_unauthenticated<B: Default>(response: http::Response<B>) -> http::Response<B> {
    if super::is_unauthenticated(&response) {
        tracing::error!("a gRPC method answered UNAUTHENTICATED, which only the token check may");
        return tonic::Status::from(ApiError::internal()).into_http();
    }
    response
}

impl Policy {
    async fn authenticate(&self, headers: &http::HeaderMap) -> Result<ServiceCaller, ApiError> {
        // Two values could be read differently by two readers (a proxy checks the first, a
        // service the last): refuse rather than pick one.
        if headers.get_all(AUTHORIZATION).iter().nth(1).is_some() {
            tracing::warn!(reason = "duplicate", "service token refused");
            return Err(ApiError::unauthorized());
        }
        let Some(token) = crate::http::bearer_token(headers) else {
            tracing::warn!(reason = "missing", "service token refused");
            return Err(ApiError::unauthorized());
        };
        let claims = self
            .verifier
            .verify::<ServiceClaims>(token)
            .await
            .map_err(|error| {
                tracing::warn!(reason = error.kind(), "service token refused");
                match error {
                    VerifyError::KeysUnavailable => ApiError::unavailable(),
                    _ => ApiError::unauthorized(),
                }
            })?;
        if claims.service_type != self.service_type {
            tracing::warn!(
                client_id = %claims.sub,
                service_type = %claims.service_type,
                required = %self.service_type,
                "service token of another service type refused"
            );
            return Err(ApiError::forbidden(format!(
                "only {} may call this service",
                self.service_type
            )));
        }
        if !claims.has_scope(&self.scope) {
            tracing::warn!(
                client_id = %claims.sub,
                required = %self.scope,
                "service token without the required scope refused"
            );
            return Err(ApiError::forbidden(format!(
                "the service token lacks the scope {}",
                self.scope
            )));
        }
        Ok(ServiceCaller::from_claims(claims))
    }
}

//! What GC's handlers can reach: one [`AppState`], built by `startup`, and the parts of it a
//! handler takes by type (axum's `FromRef`: `State<Rooms>`, `State<PublicBaseUrl>`, …). A
//! handler names only what it uses, and nothing under `routes` imports `startup`.
//!
//! A new dependency of the handlers: a field here, of a type no other field has (a newtype
//! when it is a plain `Arc<str>` or `bool`), and handlers take it as `State<ThatType>`.

use std::sync::Arc;

use axum::extract::FromRef;
use common::auth::AuthState;
use common::jwks::JwksVerifier;
use common::shell::Readiness;
use metrics_exporter_prometheus::PrometheusHandle;
use ring::rand::SystemRandom;
use sqlx::PgPool;

use crate::client::ForwardedFor;
use crate::clients::ac::MeetingTokens;
use crate::db::creates::Creates;
use crate::use_cases::room::Rooms;
use crate::web::WebClient;

/// Everything a handler of GC's routers can take.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub pool: PgPool,
    /// The webhook management API (`use_cases::webhooks`).
    pub webhooks: crate::use_cases::webhooks::Webhooks,
    /// The queue creates share their statements through.
    pub creates: Creates,
    pub verifier: JwksVerifier,
    /// The OS CSPRNG, for meeting codes and join-token secrets.
    pub rng: SystemRandom,
    pub public_base_url: PublicBaseUrl,
    pub forwarded_for: ForwardedFor,
    pub metrics: PrometheusHandle,
    pub readiness: Readiness,
    /// Meeting controllers and the room assignments (the lifecycle's use cases).
    pub rooms: Rooms,
    /// AC's meeting-token endpoint.
    pub meeting_tokens: MeetingTokens,
    /// The OpenAPI document (`routes::openapi`), rendered once.
    pub openapi_document: common::openapi::Document,
    /// The web client, when `GC_WEB_DIR` is set.
    pub web: Option<Arc<WebClient>>,
}

/// `GC_PUBLIC_BASE_URL` without a trailing slash: the base of every `join_url`.
#[derive(Clone, Debug)]
pub struct PublicBaseUrl(pub Arc<str>);

impl PublicBaseUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AuthState for AppState {
    type Verifier = JwksVerifier;

    fn token_verifier(&self) -> &JwksVerifier {
        &self.verifier
    }
}

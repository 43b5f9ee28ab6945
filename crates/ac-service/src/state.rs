//! What AC's handlers can reach: one [`AppState`], built by `startup`, and the parts of it a
//! handler takes by type (axum's `FromRef`: `State<KeyStore>`, `State<PgPool>`, …). Nothing
//! under `routes` imports `startup`.
//!
//! A new dependency of the handlers: a field here, of a type no other field has, and handlers
//! take it as `State<ThatType>`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use common::shell::Readiness;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use tokio_util::task::TaskTracker;

use crate::domain::password::{DummyHash, Hasher};
use crate::keys::KeyStore;
use crate::tokens::TokenIssuer;

/// The failure budgets of sign-ins and client authentications (see `credential_check`).
#[derive(Clone, Debug)]
pub struct CredentialLimits {
    pub per_account: u32,
    pub per_client: u32,
    /// Shared by sign-ins and client authentications from one address.
    pub per_ip: u32,
    pub window: Duration,
    pub trust_forwarded_for: bool,
}

/// Everything a handler of AC's routers can take.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub pool: PgPool,
    pub keys: KeyStore,
    pub tokens: TokenIssuer,
    pub dummy_hash: DummyHash,
    /// Every Argon2id computation a request causes goes through this.
    pub hasher: Hasher,
    pub credential_limits: CredentialLimits,
    /// `AC_CORS_ALLOWED_ORIGINS`: pages that may sign in from a browser.
    pub browser_origins: Arc<[String]>,
    pub metrics: PrometheusHandle,
    pub readiness: Readiness,
    /// The shell's tracker: work a request starts that must run to its end even if the client
    /// hangs up (a credential check) runs there, so a stop waits for it.
    pub tasks: TaskTracker,
    /// The OpenAPI document (`routes::openapi`), rendered once.
    pub openapi_document: common::openapi::Document,
}

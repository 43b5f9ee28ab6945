//! AC's meeting-token endpoint: the token a participant presents to a meeting controller's
//! WebSocket, minted for GC (scope `internal:meeting-token`).

use std::sync::Arc;
use std::time::Duration;

use common::jwt::MeetingRole;
use common::service_token::ServiceTokenClient;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Error;

/// What a meeting token says.
#[derive(Debug, Serialize)]
pub struct MeetingGrant<'a> {
    pub user_id: Uuid,
    pub meeting_id: Uuid,
    pub meeting_code: &'a str,
    pub org_id: Uuid,
    pub role: MeetingRole,
    pub name: &'a str,
}

#[derive(Debug, Deserialize)]
pub struct IssuedMeetingToken {
    pub token: String,
    pub expires_in: u64,
}

#[derive(Clone)]
pub struct MeetingTokens {
    http: reqwest::Client,
    url: String,
    tokens: Arc<ServiceTokenClient>,
}

impl MeetingTokens {
    pub fn new(
        ac_base_url: &str,
        tokens: Arc<ServiceTokenClient>,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: common::http_client(timeout)?,
            url: format!(
                "{}/api/v1/auth/internal/meeting-token",
                ac_base_url.trim_end_matches('/')
            ),
            tokens,
        })
    }

    /// A meeting token for `grant`. AC unreachable, or refusing GC's credential, is a 503 to
    /// the caller (the cause is logged).
    #[tracing::instrument(name = "gc.ac.meeting_token", skip_all)]
    pub async fn issue(&self, grant: &MeetingGrant<'_>) -> Result<IssuedMeetingToken, Error> {
        let token = self
            .tokens
            .token()
            .await
            .map_err(|e| Error::unavailable("no service token from AC", e))?;
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(token.expose_secret())
            .json(grant)
            .send()
            .await
            .map_err(|e| Error::unavailable("AC's meeting-token endpoint is unreachable", e))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            // The cached token may have been signed by a key AC no longer publishes.
            self.tokens.invalidate().await;
        }
        if !status.is_success() {
            return Err(Error::unavailable(
                "AC refused a meeting token",
                std::io::Error::other(format!("status {status}")),
            ));
        }
        response
            .json()
            .await
            .map_err(|e| Error::unavailable("AC answered a malformed meeting token", e))
    }
}

//! Checking a password or client secret the way both token endpoints do it: counted against the
//! failure budgets of its subject (an account or a client id) and of the client address, then
//! verified within the replica's hashing capacity.
//!
//! The order matters. The attempt is counted first, so a caller over a budget is refused (429)
//! before it costs a hash, and concurrent guesses cannot slip past the limit (see
//! `db::login_failures`). Only then is a hashing slot reserved; a caller that gets none in time
//! is answered 503 and its attempt is taken back, since nothing was checked.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use secrecy::SecretString;

use crate::db::login_failures::{self, Budget};
use crate::domain::password::HashError;
use crate::error::AcError;
use crate::startup::AppState;

/// One counted credential check, from the attempt to its outcome.
pub struct CredentialCheck<'a> {
    state: &'a AppState,
    subject_key: String,
    ip_key: String,
}

impl<'a> CredentialCheck<'a> {
    /// Counts the attempt against `subject_key` (which may fail `subject_limit` times per
    /// window) and against the client address. Fails with [`AcError::RateLimited`] when either
    /// budget is now exceeded.
    pub async fn start(
        state: &'a AppState,
        subject_key: String,
        subject_limit: u32,
        ip: IpAddr,
    ) -> Result<CredentialCheck<'a>, AcError> {
        let limits = &state.credential_limits;
        let ip_key = login_failures::ip_key(ip);
        let budgets = [
            Budget {
                key: subject_key.clone(),
                limit: subject_limit,
            },
            Budget {
                key: ip_key.clone(),
                limit: limits.per_ip,
            },
        ];
        let exceeded = login_failures::record_attempt(&state.pool, &budgets, limits.window).await?;
        if let Some(retry_after_secs) = exceeded {
            return Err(AcError::RateLimited { retry_after_secs });
        }
        Ok(CredentialCheck {
            state,
            subject_key,
            ip_key,
        })
    }

    /// Whether `secret` matches the PHC string `phc`. 503 when no hashing slot frees up in
    /// time; the attempt is then taken back.
    pub async fn verify(&self, secret: SecretString, phc: String) -> Result<bool, AcError> {
        match self.state.hasher.verify(secret, phc).await {
            Ok(matches) => Ok(matches),
            Err(HashError::Busy) => {
                let keys = [self.subject_key.clone(), self.ip_key.clone()];
                login_failures::take_back(&self.state.pool, &keys).await?;
                Err(HashError::Busy.into())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Records a success: the subject's counter starts over and the address gets its attempt
    /// back. A failure needs no call; it stays counted.
    pub async fn succeeded(self) -> Result<(), AcError> {
        login_failures::record_success(&self.state.pool, &self.subject_key, &self.ip_key).await?;
        Ok(())
    }
}

/// The address attempts are counted against: the TCP peer, or, when `AC_TRUST_FORWARDED_FOR`
/// is set, the last `X-Forwarded-For` entry (the one the trusted proxy appended; earlier
/// entries are whatever the client chose to send).
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = AcError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AcError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        common::http::client_ip(
            &parts.headers,
            peer,
            state.credential_limits.trust_forwarded_for,
        )
        .map(ClientIp)
        .ok_or_else(|| AcError::Internal(anyhow::anyhow!("no peer address on the request")))
    }
}

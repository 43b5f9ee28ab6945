//! Checking a password or client secret the way both token endpoints do it: within the failure
//! budgets of its subject (an account or a client id) and of the client address, and within the
//! replica's hashing capacity.
//!
//! Only a verified failure, a password or secret that was checked and was wrong, counts against
//! a budget. To keep a limit exact when many attempts arrive at once, an attempt first reserves
//! a place in both budgets (see `db::login_failures`), then is checked, then settles the
//! reservation as a failure, a success or a withdrawal:
//!
//! - A budget whose verified failures reached its limit is locked: the attempt gets 429 without
//!   being checked, and reserves nothing, so the refusal counts against neither budget and does
//!   not extend the lock.
//! - A budget that is not locked but is full of attempts still being checked makes the attempt
//!   wait for them to settle, for at most the hashing wait, then 503. (Those attempts may be
//!   correct ones: twelve sign-ins of one account at once all succeed.)
//! - An attempt turned away by a full hasher, or failed by the database, is withdrawn: it was
//!   never checked.
//!
//! The reservation, the check and the settlement run in a task of their own, so a client that
//! hangs up mid-check cannot leave a reservation behind, or take back a wrong guess that was
//! already checked. The task runs on the shell's tracker: a stop waits for it to settle.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use common::backoff::Backoff;
use tokio::time::Instant;
use tracing::Instrument;

use crate::db::login_failures::{self, Budget, Reservation, Reserved, Settlement};
use crate::domain::password::HashError;
use crate::error::AcError;
use crate::state::AppState;

/// The outcome of a checked credential: accepted with its value, or refused for a reason. A
/// refusal is a verified failure and counts against the budgets.
#[derive(Debug)]
pub enum Verdict<T, R> {
    Valid(T),
    Invalid(R),
}

/// The longest pause between two tries to reserve an attempt while a budget is full. A budget
/// stays full only while attempts are being checked, tens of milliseconds unless the hasher is
/// saturated; the growing pause keeps a flood of waiting requests at about a dozen tries each
/// over the whole wait, rather than letting them hammer the database.
const MAX_RESERVE_PAUSE: Duration = Duration::from_millis(200);

/// One credential check, counted against the budgets of its subject and of the client address.
pub struct CredentialCheck {
    budgets: [Budget; 2],
}

impl CredentialCheck {
    /// A check for `subject_key` (which may fail `subject_limit` times per window) from `ip`.
    pub fn new(
        state: &AppState,
        subject_key: String,
        subject_limit: u32,
        ip: IpAddr,
    ) -> CredentialCheck {
        CredentialCheck {
            budgets: [
                Budget {
                    key: subject_key,
                    limit: subject_limit,
                },
                Budget {
                    key: login_failures::ip_key(ip),
                    limit: state.credential_limits.per_ip,
                },
            ],
        }
    }

    /// Reserves the attempt, runs `check` (which looks the subject up and verifies the secret
    /// through the hasher) and settles the attempt by its verdict. Fails with
    /// [`AcError::RateLimited`] when a budget is locked, and with [`AcError::Busy`] when a
    /// budget stays full of attempts in flight, or the hasher has no slot, for the whole wait.
    pub async fn run<T, R, F, Fut>(
        self,
        state: &AppState,
        check: F,
    ) -> Result<Verdict<T, R>, AcError>
    where
        F: FnOnce(AppState) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Verdict<T, R>, AcError>> + Send,
        T: Send + 'static,
        R: Send + 'static,
    {
        let state = state.clone();
        let task = state.tasks.clone().spawn(
            async move {
                let reservation = reserve(&state, &self.budgets).await?;
                let verdict = check(state.clone()).await;
                let settlement = match &verdict {
                    Ok(Verdict::Valid(_)) => Settlement::Succeeded,
                    Ok(Verdict::Invalid(_)) => Settlement::Failed,
                    Err(_) => Settlement::Withdrawn,
                };
                login_failures::settle(&state.pool, reservation, settlement).await?;
                verdict
            }
            .in_current_span(),
        );
        task.await
            .map_err(|error| AcError::Internal(anyhow::anyhow!("credential check task: {error}")))?
    }
}

/// Reserves an attempt in every budget, waiting while one is full of attempts in flight.
async fn reserve(state: &AppState, budgets: &[Budget]) -> Result<Reservation, AcError> {
    let deadline = Instant::now() + state.hasher.wait();
    let mut pause = Backoff::new(Duration::from_millis(5), MAX_RESERVE_PAUSE);
    loop {
        match login_failures::reserve(&state.pool, budgets, state.credential_limits.window).await? {
            Reserved::Yes(reservation) => return Ok(reservation),
            Reserved::Locked { retry_after_secs } => {
                return Err(AcError::RateLimited { retry_after_secs });
            }
            Reserved::Full => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(HashError::Busy.into());
                }
                tokio::time::sleep(pause.next_wait().min(deadline - now)).await;
            }
        }
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

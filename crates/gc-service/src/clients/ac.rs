//! AC's meeting-token endpoints: the token a participant presents to a meeting controller's
//! WebSocket, minted for GC (scope `internal:meeting-token`).
//!
//! Joins do not call AC one by one. [`MeetingTokens::issue`] queues the grant; one task sends
//! the queue to AC as batches (`POST /api/v1/auth/internal/meeting-tokens`, at most
//! [`MAX_BATCH`] grants), one batch at a time, and hands each caller its own token. A batch
//! leaves [`LINGER`] after its first grant (or full): the grants that arrive meanwhile, and
//! those queued while the previous batch was on its way, go with it. A join asks for its token
//! while MC seats it and PostgreSQL records it, which takes longer than that, so the wait
//! costs a join nothing, and a busy GC makes one request to AC (one service-token check
//! there) for many joins. A caller that gave up (its join failed, its client left) before its
//! grant was sent is left out of the batch. The queue is bounded ([`QUEUE`]); a full queue
//! makes callers wait, never grow it. One batch at a time means a slow AC slows every join's
//! token, as it did with one request per join. Each batch has the client's timeout, and so has
//! each grant, queue included: a join queued behind a batch that waits out its timeout (a hung
//! AC) is refused when its own timeout passes, not after that batch and then its own.
//!
//! An AC without the batch route (an older AC during a rolling deploy answers 404) is asked
//! grant by grant on the single route instead.
//!
//! A request AC answers 401 goes once more with a new service token
//! (`ServiceTokenClient::call`): AC refuses the token it issued when it has since withdrawn
//! the key that signed it, and the joins waiting for this batch should not fail for that.

use common::shell::Background;
use std::sync::Arc;
use std::time::Duration;

use common::jwt::MeetingRole;
use common::service_token::ServiceTokenClient;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::batch::{Batcher, Item, Shape};
use crate::error::Error;

/// The most grants in one batch (AC accepts up to 100).
pub const MAX_BATCH: usize = 64;
/// How long a batch waits after its first grant for others.
pub const LINGER: Duration = Duration::from_millis(1);
/// Grants waiting for a batch, at most.
pub const QUEUE: usize = 4096;

/// What a meeting token says.
#[derive(Clone, Debug, Serialize)]
pub struct MeetingGrant {
    pub user_id: Uuid,
    pub meeting_id: Uuid,
    pub meeting_code: String,
    pub org_id: Uuid,
    pub role: MeetingRole,
    pub name: String,
    /// A person without an account (DESIGN §12): the token says `guest: true`. Left out when
    /// false, so an AC older than the field signs members' tokens as before.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub guest: bool,
    /// With `guest`: AC also signs the guest token of `user_id` (a new guest's id, which GC
    /// drew), so a guest's first join costs one grant in a batch, not a request of its own.
    /// Left out when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub guest_token: bool,
}

#[derive(Debug, Deserialize)]
pub struct IssuedMeetingToken {
    pub token: String,
    pub expires_in: u64,
    /// The guest token, for a grant with `guest_token`.
    #[serde(default)]
    pub guest_token: Option<String>,
}

#[derive(Serialize)]
struct BatchRequest<'a> {
    grants: Vec<&'a MeetingGrant>,
}

#[derive(Deserialize)]
struct BatchResponse {
    tokens: Vec<IssuedMeetingToken>,
}

/// Why a batch (or a single request) brought no tokens: every caller in it gets a 503 saying so.
#[derive(Clone, Debug)]
struct Refused {
    what: &'static str,
    cause: String,
    /// AC did not answer at all (`gc_ac_meeting_token_batches_total{outcome="unreachable"}`).
    unreachable: bool,
}

impl Refused {
    fn new(what: &'static str, cause: impl std::fmt::Display) -> Self {
        Self {
            what,
            cause: cause.to_string(),
            unreachable: false,
        }
    }

    fn unreachable(what: &'static str, cause: impl std::fmt::Display) -> Self {
        Self {
            unreachable: true,
            ..Self::new(what, cause)
        }
    }

    fn outcome(&self) -> &'static str {
        if self.unreachable {
            "unreachable"
        } else {
            "refused"
        }
    }

    fn into_error(self) -> Error {
        Error::unavailable(self.what, std::io::Error::other(self.cause))
    }
}

type Pending = Item<MeetingGrant, Result<IssuedMeetingToken, Refused>>;

#[derive(Clone)]
pub struct MeetingTokens {
    batcher: Batcher<MeetingGrant, Result<IssuedMeetingToken, Refused>>,
    /// New guests' grants (with `guest_token`), batched without lingering: a guest's lobby
    /// place is recorded only once its tokens are signed, so their wait is on the guest-join's
    /// path, where a member's token is signed alongside their seat's record.
    new_guests: Batcher<MeetingGrant, Result<IssuedMeetingToken, Refused>>,
    /// The longest a grant waits for its token, from the moment it is queued: the client's
    /// timeout on one request to AC.
    deadline: Duration,
}

impl MeetingTokens {
    /// Starts the batching task (on the current Tokio runtime); it ends when the last clone of
    /// the returned handle is dropped.
    pub fn new(
        ac_base_url: &str,
        tokens: Arc<ServiceTokenClient>,
        timeout: Duration,
        background: &Background,
    ) -> Result<Self, reqwest::Error> {
        let base = ac_base_url.trim_end_matches('/');
        let sender = Sender {
            http: common::http_client(timeout)?,
            batch_url: format!("{base}/api/v1/auth/internal/meeting-tokens"),
            single_url: format!("{base}/api/v1/auth/internal/meeting-token"),
            tokens,
        };
        let shape = Shape {
            name: "meeting tokens",
            capacity: QUEUE,
            max_weight: MAX_BATCH,
            linger: Some(LINGER),
        };
        let sender = Arc::new(sender);
        let start = |shape: Shape| {
            let sender = Arc::clone(&sender);
            Batcher::start(
                shape,
                |_| 1,
                move |mut batch: Vec<Pending>| {
                    let sender = Arc::clone(&sender);
                    async move {
                        // Grants whose join has failed meanwhile are left out.
                        batch.retain(|pending| !pending.is_abandoned());
                        if !batch.is_empty() {
                            sender.send(batch).await;
                        }
                    }
                },
                background,
            )
        };
        Ok(Self {
            batcher: start(shape),
            new_guests: start(Shape {
                name: "new guests' tokens",
                linger: None,
                ..shape
            }),
            deadline: timeout,
        })
    }

    /// A meeting token for `grant`. AC unreachable, or refusing GC's credential, is a 503 to
    /// the caller (the cause is logged).
    #[tracing::instrument(name = "gc.ac.meeting_token", skip_all)]
    ///
    /// A grant waits at most the client's timeout in all, queue included: queued behind a batch
    /// that waits out its own timeout (a hung AC), it would otherwise wait for that batch and
    /// then for its own, two timeouts. A grant given up before it was sent is left out of its
    /// batch; one given up on the way is signed and dropped (a token never shown to anyone).
    pub async fn issue(&self, grant: MeetingGrant) -> Result<IssuedMeetingToken, Error> {
        let batcher = if grant.guest_token {
            &self.new_guests
        } else {
            &self.batcher
        };
        match tokio::time::timeout(self.deadline, batcher.submit(grant)).await {
            Ok(Ok(Ok(issued))) => Ok(issued),
            Ok(Ok(Err(refused))) => Err(refused.into_error()),
            Ok(Err(stopped)) => Err(Error::unavailable("meeting tokens", stopped)),
            // The batch ahead of it counts as `unreachable` in gc_ac_meeting_token_batches_total.
            Err(elapsed) => Err(Error::unavailable("meeting tokens", elapsed)),
        }
    }
}

struct Sender {
    http: reqwest::Client,
    batch_url: String,
    single_url: String,
    tokens: Arc<ServiceTokenClient>,
}

impl Sender {
    async fn send(&self, batch: Vec<Pending>) {
        tracing::debug!(grants = batch.len(), "meeting-token batch");
        let grants: Vec<&MeetingGrant> = batch.iter().map(|pending| &pending.request).collect();
        let sent = self.issue_batch(grants).await;
        crate::metrics::ac_meeting_token_batch(match &sent {
            Ok(_) => "issued",
            Err(refused) => refused.outcome(),
        });
        match sent {
            Ok(Some(issued)) => {
                for (pending, issued) in batch.into_iter().zip(issued) {
                    pending.answer(Ok(issued));
                }
            }
            Ok(None) => {
                for pending in batch {
                    let issued = self.issue_one(&pending.request).await;
                    pending.answer(issued);
                }
            }
            Err(refused) => {
                tracing::warn!(
                    grants = batch.len(),
                    cause = %refused.cause,
                    "{}", refused.what
                );
                for pending in batch {
                    pending.answer(Err(refused.clone()));
                }
            }
        }
    }

    /// One token per grant, in order; `None` when this AC has no batch route.
    async fn issue_batch(
        &self,
        grants: Vec<&MeetingGrant>,
    ) -> Result<Option<Vec<IssuedMeetingToken>>, Refused> {
        let count = grants.len();
        let response = self.post(&self.batch_url, &BatchRequest { grants }).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = successful(response, "AC refused a meeting token")?;
        let answer: BatchResponse = response
            .json()
            .await
            .map_err(|e| Refused::new("AC answered malformed meeting tokens", e))?;
        if answer.tokens.len() != count {
            return Err(Refused::new(
                "AC answered malformed meeting tokens",
                format!("{} tokens for {count} grants", answer.tokens.len()),
            ));
        }
        Ok(Some(answer.tokens))
    }

    async fn issue_one(&self, grant: &MeetingGrant) -> Result<IssuedMeetingToken, Refused> {
        let response = self.post(&self.single_url, grant).await?;
        successful(response, "AC refused a meeting token")?
            .json()
            .await
            .map_err(|e| Refused::new("AC answered a malformed meeting token", e))
    }

    /// POSTs `body` with GC's service token; a 401 (AC withdrew the key that signed the cached
    /// token) sends it once more with a new token.
    async fn post(&self, url: &str, body: &impl Serialize) -> Result<reqwest::Response, Refused> {
        let sent = self
            .tokens
            .call(
                |token| {
                    self.http
                        .post(url)
                        .bearer_auth(token.expose_secret())
                        .json(body)
                        .send()
                },
                |sent: &reqwest::Result<reqwest::Response>| {
                    sent.as_ref()
                        .is_ok_and(|response| response.status() == StatusCode::UNAUTHORIZED)
                },
            )
            .await
            .map_err(|e| Refused::new("no service token from AC", e))?;
        sent.map_err(|e| Refused::unreachable("AC's meeting-token endpoint is unreachable", e))
    }
}

fn successful(
    response: reqwest::Response,
    what: &'static str,
) -> Result<reqwest::Response, Refused> {
    let status = response.status();
    if !status.is_success() {
        return Err(Refused::new(what, format!("status {status}")));
    }
    Ok(response)
}

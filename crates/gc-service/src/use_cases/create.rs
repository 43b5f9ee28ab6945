//! Creating a meeting: the create statement, fresh codes on collision, and the
//! `Idempotency-Key` replay. Everything beyond the one happy-path statement runs only when that
//! statement inserted nothing.

use common::jwt::UserClaims;
use common::meeting_code::MeetingCode;
use ring::rand::SystemRandom;
use uuid::Uuid;

pub use crate::db::creates::Creates;
use crate::db::meetings::{InsertOutcome, NotInsertedCause, Refusal};
use crate::db::{idempotency, meetings};
use crate::domain::events::Origin;
use crate::domain::idempotency::{IdempotencyKey, IdempotencyRecord, Replay};
use crate::domain::meeting::{CreateMeeting, Meeting, NewMeeting, ValidationError};
use crate::domain::secret::JoinTokenSecret;
use crate::error::{Error, forbidden};

/// How many codes a create tries before giving up with `code_collision` (DESIGN §6). With 71
/// bits, three collisions in a row mean something is broken, not unlucky.
pub const MAX_CODE_ATTEMPTS: u32 = 3;

/// How a create ended.
#[derive(Debug)]
pub enum Created {
    /// A new meeting.
    New(Meeting),
    /// The meeting an earlier request with the same key and body created.
    Replayed(Meeting),
}

/// Creates the meeting `creator` asked for, hosted by them, in their org. The caller has
/// checked the creator's role. With a key, a retry of the same request returns the first
/// meeting instead of creating another.
pub async fn create_meeting(
    creates: &Creates,
    rng: &SystemRandom,
    creator: &UserClaims,
    create: CreateMeeting,
    key: Option<IdempotencyKey>,
    from: Origin<'_>,
) -> Result<Created, Error> {
    let idempotency = key.map(|key| IdempotencyRecord {
        request_hash: create.request_hash(),
        key,
    });
    let new = NewMeeting {
        id: Uuid::now_v7(),
        org_id: creator.org_id,
        host_id: creator.sub,
        create,
        code: MeetingCode::generate(rng)?,
        join_token_secret: JoinTokenSecret::generate(rng)?,
        idempotency,
    };
    insert_with_fresh_codes(creates, new, from, || {
        MeetingCode::generate(rng).map_err(Error::from)
    })
    .await
}

/// Inserts `new`, taking replacement codes from `next_code` after collisions (a parameter so
/// tests can force collisions). The first statement shares its transaction with the creates
/// queued meanwhile ([`Creates`]); the statements after a refusal run alone.
pub async fn insert_with_fresh_codes(
    creates: &Creates,
    mut new: NewMeeting,
    from: Origin<'_>,
    mut next_code: impl FnMut() -> Result<MeetingCode, Error>,
) -> Result<Created, Error> {
    let mut code_attempts = 1;
    // One more statement is allowed after clearing an expired key, and one after a refusal that
    // a concurrent change explained away; the loop is bounded either way.
    let mut retries_left = 2;
    let pool = creates.pool();
    let mut first = true;
    loop {
        let outcome = if std::mem::take(&mut first) {
            creates.insert(&new, from).await?
        } else {
            meetings::insert_meeting(pool, &new, from).await?
        };
        let refusal = match outcome {
            InsertOutcome::Created(meeting) => return Ok(Created::New(meeting)),
            InsertOutcome::Refused(refusal) => refusal,
        };
        if refusal == Refusal::CodeTaken {
            if code_attempts >= MAX_CODE_ATTEMPTS {
                return Err(Error::CodeCollision(code_attempts));
            }
            code_attempts += 1;
            tracing::warn!(
                attempt = code_attempts,
                "meeting code collision, retrying with a fresh code"
            );
            new.code = next_code()?;
            continue;
        }

        // A stored key explains any refusal first: a replay must get its meeting even if the
        // org has reached its limit since.
        if let Some(record) = &new.idempotency
            && let Some(stored) = idempotency::find_key(pool, new.host_id, &record.key).await?
        {
            if !stored.expired {
                return match Replay::decide(
                    stored.request_hash,
                    stored.meeting_id,
                    record.request_hash,
                ) {
                    Replay::SameRequest { meeting_id } => meetings::find_meeting(pool, meeting_id)
                        .await?
                        .map(Created::Replayed)
                        .ok_or(Error::Internal("an idempotency key points to no meeting")),
                    Replay::DifferentRequest => Err(Error::IdempotencyKeyReused),
                };
            }
            if retries_left > 0 {
                retries_left -= 1;
                idempotency::delete_expired_key(pool, new.host_id, &record.key).await?;
                continue;
            }
        }

        match refusal {
            Refusal::OrgLimitReached => return Err(Error::OrgMeetingLimitReached),
            Refusal::OrgNotActive => {
                return Err(Error::Forbidden(forbidden::ORG_NOT_ACTIVE.into()));
            }
            Refusal::NotInserted => match meetings::explain_not_inserted(pool, &new).await? {
                NotInsertedCause::OrgNotActive => {
                    return Err(Error::Forbidden(forbidden::ORG_NOT_ACTIVE.into()));
                }
                NotInsertedCause::UserNotActive => {
                    return Err(Error::Forbidden(forbidden::USER_NOT_ACTIVE.into()));
                }
                NotInsertedCause::MaxParticipantsAboveOrgLimit { max } => {
                    return Err(ValidationError::MaxParticipantsAboveOrgLimit { max }.into());
                }
                NotInsertedCause::Unexplained => {}
            },
            // The winner of a same-key race is gone again (expired and purged): run once more.
            Refusal::IdempotencyKeyTaken | Refusal::CodeTaken => {}
        }
        if retries_left == 0 {
            return Err(Error::Internal(
                "the create statement kept inserting nothing",
            ));
        }
        retries_left -= 1;
    }
}

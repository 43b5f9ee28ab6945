//! The first message: `auth` with a meeting token for this meeting, within the time allowed.

use axum::extract::ws::Message;
use common::jwt::MeetingClaims;
use common::meeting_code::MeetingCode;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::Stream;
use super::end::received;
use crate::signaling::Signaling;
use crate::signaling::protocol::{ClientMessage, close};

/// Why authentication failed: the close to send, or `None` when the client is gone already.
pub(super) type Refusal = Option<(u16, &'static str)>;

/// Waits for `auth` within the configured time and checks its token.
pub(super) async fn authenticate(
    stream: &mut Stream,
    sig: &Signaling,
    code: &MeetingCode,
    stopping: &CancellationToken,
) -> Result<MeetingClaims, Refusal> {
    let deadline = tokio::time::Instant::now() + sig.settings.auth_timeout;
    let token = loop {
        let frame = tokio::select! {
            () = stopping.cancelled() => return Err(Some((close::GOING_AWAY, "server stopping"))),
            frame = tokio::time::timeout_at(deadline, stream.next()) => frame,
        };
        let text = match frame {
            Err(_) => return Err(Some((close::AUTH_FAILED, "authentication timed out"))),
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return Err(None),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Binary(_)))) => {
                return Err(Some((close::AUTH_FAILED, "authenticate first")));
            }
            Ok(Some(Ok(Message::Text(text)))) => text,
        };
        received("auth");
        break first_token(&text)?;
    };
    let claims = match sig.verifier.verify::<MeetingClaims>(&token).await {
        Ok(claims) => claims,
        Err(error) => {
            tracing::info!(meeting_code = %code, reason = error.kind(), "signaling token refused");
            return Err(Some((close::AUTH_FAILED, "invalid meeting token")));
        }
    };
    if claims.meeting_code != code.as_str() {
        return Err(Some((
            close::NOT_A_MEMBER,
            "the token is for another meeting",
        )));
    }
    Ok(claims)
}

/// The token of the first text frame, which must be `auth`.
fn first_token(text: &str) -> Result<String, Refusal> {
    match ClientMessage::parse(text) {
        Ok(ClientMessage::Auth { token }) => Ok(token),
        _ => Err(Some((close::AUTH_FAILED, "authenticate first"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_auth_opens_a_connection() {
        assert_eq!(
            first_token(r#"{"type":"auth","token":"a.b.c"}"#),
            Ok("a.b.c".to_owned())
        );
        for first in [
            r#"{"type":"ping"}"#,
            r#"{"type":"auth"}"#,
            r#"{"type":"auth","token":""}"#,
            "not json",
        ] {
            assert_eq!(
                first_token(first),
                Err(Some((close::AUTH_FAILED, "authenticate first"))),
                "{first}"
            );
        }
    }
}

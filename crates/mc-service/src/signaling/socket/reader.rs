//! The reader task: what the client sends, until it closes, misbehaves, or the socket is
//! closed. Each frame passes the reader's bounds first ([`Gate`]: text only, under the size
//! limit, within the rate), then is parsed and handled (`dispatch.rs`).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::Message;
use common::error::ErrorCode;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::Stream;
use super::dispatch::handle;
use super::end::{End, received};
use crate::room::OwnedRoom;
use crate::signaling::Signaling;
use crate::signaling::hub::{LocalRoom, SocketShared};
use crate::signaling::messages::ServerMessage;
use crate::signaling::protocol::{ClientMessage, close};

/// A token bucket: `rate` messages a second on average, `burst` at once.
#[derive(Debug)]
pub(super) struct RateLimit {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl RateLimit {
    pub(super) fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst),
            rate: f64::from(rate),
            burst: f64::from(burst),
            last: now,
        }
    }

    /// Takes a token for a message received at `now`, if one is left.
    pub(super) fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What one frame (or the stream's end) means for the connection.
#[derive(Debug, PartialEq)]
pub(super) enum Read {
    /// A well-formed message to handle.
    Message(ClientMessage),
    /// Answered with this message; the connection stays open.
    Reply(ServerMessage),
    /// Nothing to do (pings and pongs are answered by the WebSocket layer).
    Skip,
    /// The connection ends.
    End(End),
}

/// The reader's bounds, frame by frame.
pub(super) struct Gate {
    limit: RateLimit,
}

impl Gate {
    pub(super) fn new(limit: RateLimit) -> Self {
        Self { limit }
    }

    /// Passes one frame received at `now` through the bounds, and parses it.
    pub(super) fn read(
        &mut self,
        frame: Option<Result<Message, axum::Error>>,
        now: Instant,
    ) -> Read {
        let text = match frame {
            None | Some(Ok(Message::Close(_))) => return Read::End(End::dropped()),
            Some(Err(error)) => {
                return Read::End(if is_too_big(error) {
                    End::troubled(close::TOO_BIG, "frame too large")
                } else {
                    End::dropped()
                });
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => return Read::Skip,
            Some(Ok(Message::Binary(_))) => {
                received("binary");
                return Read::End(End::troubled(close::UNSUPPORTED_DATA, "text frames only"));
            }
            Some(Ok(Message::Text(text))) => text,
        };
        if !self.limit.allow(now) {
            metrics::counter!("mc_ws_rate_limited_total").increment(1);
            return Read::End(End::troubled(close::RATE_LIMITED, "too many messages"));
        }
        match ClientMessage::parse(&text) {
            Ok(message) => {
                received(message.kind());
                Read::Message(message)
            }
            Err(error) => {
                received("invalid");
                Read::Reply(ServerMessage::error(ErrorCode::BadRequest, error.message()))
            }
        }
    }
}

/// Whether reading failed on a frame or message over the size limit.
fn is_too_big(error: axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error;
    matches!(
        error.into_inner().downcast::<Error>().map(|e| *e),
        Ok(Error::Capacity(_))
    )
}

/// Reads the client's frames until the connection ends; returns how, when the reader decided
/// it (`None`: the socket was closed from elsewhere).
pub(super) async fn read(
    mut stream: Stream,
    sig: Arc<Signaling>,
    room: Arc<LocalRoom>,
    owned: OwnedRoom,
    shared: Arc<SocketShared>,
    done: CancellationToken,
) -> (Option<End>, Stream) {
    let _done = done.drop_guard();
    let end = read_until_end(&mut stream, sig, room, owned, shared).await;
    // Handed back: after MC's close frame the socket reads on until the client's answers it.
    (end, stream)
}

async fn read_until_end(
    stream: &mut Stream,
    sig: Arc<Signaling>,
    room: Arc<LocalRoom>,
    owned: OwnedRoom,
    shared: Arc<SocketShared>,
) -> Option<End> {
    let settings = &sig.settings;
    let mut gate = Gate::new(RateLimit::new(
        settings.messages_per_second,
        settings.message_burst,
        Instant::now(),
    ));
    // Made once, not per frame: at 20 samples a second per socket, a new cancellation future
    // and a timer armed and disarmed per frame were a visible share of MC's CPU. The idle timer
    // is moved on lazily, when it fires, to the last frame's time plus the idle time.
    let closed = shared.closed().cancelled();
    tokio::pin!(closed);
    let idle = tokio::time::sleep(settings.idle_timeout);
    tokio::pin!(idle);
    let mut last_frame = tokio::time::Instant::now();
    loop {
        let frame = tokio::select! {
            () = &mut closed => return None,
            () = &mut idle => {
                let due = last_frame + settings.idle_timeout;
                if due > tokio::time::Instant::now() {
                    idle.as_mut().reset(due);
                    continue;
                }
                return Some(End::troubled(close::GOING_AWAY, "idle"));
            }
            frame = stream.next() => frame,
        };
        last_frame = tokio::time::Instant::now();
        let received = last_frame.into_std();
        match gate.read(frame, received) {
            Read::Skip => {}
            Read::End(end) => return Some(end),
            Read::Reply(reply) => shared.send(&reply),
            Read::Message(message) => {
                if let Some(end) = handle(message, received, &sig, &room, &owned, &shared).await {
                    return Some(end);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::extract::ws::Utf8Bytes;
    use tokio_tungstenite::tungstenite;

    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut limit = RateLimit::new(10, 3, start);
        assert!((0..3).all(|_| limit.allow(start)), "the burst");
        assert!(!limit.allow(start), "then nothing at once");
        // A tenth of a second buys one message at 10 a second.
        let later = start + Duration::from_millis(100);
        assert!(limit.allow(later));
        assert!(!limit.allow(later));
        // A long pause refills the bucket up to the burst, no further.
        let much_later = later + Duration::from_secs(60);
        assert!((0..3).all(|_| limit.allow(much_later)));
        assert!(!limit.allow(much_later));
    }

    #[test]
    fn a_clock_that_goes_back_refills_nothing() {
        let start = Instant::now() + Duration::from_secs(1);
        let mut limit = RateLimit::new(1000, 1, start);
        assert!(limit.allow(start));
        assert!(!limit.allow(start - Duration::from_millis(500)));
    }

    fn gate(rate: u32, burst: u32) -> Gate {
        Gate::new(RateLimit::new(rate, burst, Instant::now()))
    }

    fn text(text: &'static str) -> Option<Result<Message, axum::Error>> {
        Some(Ok(Message::Text(Utf8Bytes::from_static(text))))
    }

    #[test]
    fn well_formed_text_is_a_message_and_malformed_text_an_error_reply() {
        let mut gate = gate(100, 10);
        let now = Instant::now();
        assert_eq!(
            gate.read(text(r#"{"type":"ping"}"#), now),
            Read::Message(ClientMessage::Ping)
        );
        assert_eq!(
            gate.read(text(r#"{"type":"shout"}"#), now),
            Read::Reply(ServerMessage::error(
                ErrorCode::BadRequest,
                "unknown message type"
            ))
        );
        assert_eq!(
            gate.read(Some(Ok(Message::Ping(Default::default()))), now),
            Read::Skip
        );
    }

    #[test]
    fn binary_frames_oversized_frames_and_floods_end_the_connection() {
        let now = Instant::now();
        assert_eq!(
            gate(100, 10).read(Some(Ok(Message::Binary(Default::default()))), now),
            Read::End(End::troubled(close::UNSUPPORTED_DATA, "text frames only"))
        );
        let too_big = axum::Error::new(tungstenite::Error::Capacity(
            tungstenite::error::CapacityError::MessageTooLong {
                size: 20_000,
                max_size: 16_384,
            },
        ));
        assert_eq!(
            gate(100, 10).read(Some(Err(too_big)), now),
            Read::End(End::troubled(close::TOO_BIG, "frame too large"))
        );
        let other = axum::Error::new(tungstenite::Error::ConnectionClosed);
        assert_eq!(
            gate(100, 10).read(Some(Err(other)), now),
            Read::End(End::dropped())
        );
        let mut flooded = gate(1, 2);
        assert!(matches!(
            flooded.read(text(r#"{"type":"ping"}"#), now),
            Read::Message(_)
        ));
        // Malformed text counts against the rate too.
        assert!(matches!(flooded.read(text("{"), now), Read::Reply(_)));
        assert_eq!(
            flooded.read(text(r#"{"type":"ping"}"#), now),
            Read::End(End::troubled(close::RATE_LIMITED, "too many messages"))
        );
    }

    #[test]
    fn the_clients_close_or_the_streams_end_drops_the_connection() {
        let now = Instant::now();
        assert_eq!(gate(1, 1).read(None, now), Read::End(End::dropped()));
        assert_eq!(
            gate(1, 1).read(Some(Ok(Message::Close(None))), now),
            Read::End(End::dropped())
        );
    }
}

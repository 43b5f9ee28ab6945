//! One signaling connection, from its first frame to its close: authentication (`auth.rs`),
//! the greeting, then a task pair (mini-redis / axum chat style): the reader (`reader.rs`,
//! with `dispatch.rs`) handles what the client sends, the writer (`writer.rs`) owns the
//! socket's sink and drains its bounded queue, so a slow client only ever fills its own queue
//! (and is dropped, 1008) and never slows its room. How it ends (`end.rs`) decides whether the
//! seat waits for a reconnect.

mod auth;
mod dispatch;
mod end;
mod reader;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use common::meeting_code::MeetingCode;
use futures::StreamExt;
use futures::stream::{SplitSink, SplitStream};
use tokio_util::sync::CancellationToken;

pub(crate) use self::end::End;
use self::end::OpenGauge;
use self::writer::{Writer, write_close};
use super::Signaling;
use super::protocol::close;

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

/// How long a socket reads on after MC's close frame, for the client's close ([`drain`]).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves one upgraded socket of `code` until it closes.
pub async fn serve(socket: WebSocket, code: MeetingCode, sig: Arc<Signaling>) {
    let _open = OpenGauge::new();
    let (mut sink, mut stream) = socket.split();
    let stopping = sig.shell.stopping().clone();

    let claims = match auth::authenticate(&mut stream, &sig, &code, &stopping).await {
        Ok(claims) => claims,
        Err(Some((code, reason))) => return close_and_drain(&mut sink, stream, code, reason).await,
        Err(None) => return,
    };
    // The token's role says what GC saw when it signed; the room says who hosts now (DESIGN
    // §12: a hand-over or a succession changes it while tokens live on).
    let user_id = claims.sub.to_string();

    let owned = match sig.owned_room(&code).await {
        Ok(owned) => owned,
        Err((code, reason)) => return close_and_drain(&mut sink, stream, code, reason).await,
    };
    let registration = match sig.hub.register(&code, &user_id).await {
        Ok(registration) => registration,
        Err(error) => {
            tracing::warn!(meeting_code = %code, %error, "cannot follow the room's events");
            let (code, reason) = (close::TRY_AGAIN_LATER, "try again later");
            return close_and_drain(&mut sink, stream, code, reason).await;
        }
    };
    let shared = Arc::clone(&registration.shared);
    let room = Arc::clone(&registration.room);

    let mut writer = Writer::new(Arc::clone(&sig), owned.clone(), Arc::clone(&shared), sink);
    let reader_done = CancellationToken::new();
    let (end, stream) = match writer.start().await {
        Err(end) => (end, Some(stream)),
        Ok(()) => {
            // On the shell's tracker like the socket's own task, which awaits it below: were
            // that task aborted, a stop would still wait for the reader.
            let reader = sig.shell.tracker().spawn(reader::read(
                stream,
                Arc::clone(&sig),
                Arc::clone(&room),
                owned.clone(),
                Arc::clone(&shared),
                reader_done.clone(),
            ));
            let writer_end = writer
                .run(registration.queue, &reader_done, &stopping)
                .await;
            // The writer stopped (or saw the reader stop): the reader stops too.
            shared.closed().cancel();
            let (reader_end, stream) = match reader.await {
                Ok((end, stream)) => (end, Some(stream)),
                Err(_) => (None, None),
            };
            // What the writer settled on (the room's event it wrote: the meeting ended, the
            // user was removed...; or MC stopping) is what the client was told, so its close
            // wins over a reader's that raced it (a level read as the room went: 4404).
            let end = if writer_end.grace {
                reader_end.unwrap_or(writer_end)
            } else {
                writer_end
            };
            (end, stream)
        }
    };
    writer.close(end).await;
    if let (Some(_), Some(mut stream)) = (end.code, stream) {
        drain(&mut stream).await;
    }
    sig.hub.unregister(&room, &shared).await;
    if end.grace && writer.seated && !stopping.is_cancelled() {
        sig.start_grace(owned, user_id, shared.connection.clone())
            .await;
    }
}

/// Sends the close frame, then reads on until the client's close ([`drain`]).
async fn close_and_drain(sink: &mut Sink, mut stream: Stream, code: u16, reason: &'static str) {
    write_close(sink, code, reason).await;
    drain(&mut stream).await;
}

/// After MC's close frame: reads (and drops) what the client still sends until its close
/// answers MC's, it goes, or [`DRAIN_TIMEOUT`] passes, so that the connection is let go with
/// nothing unread. A socket closed with unread data is reset by the kernel, and a reset can
/// throw away MC's last frames (`meeting.ended`, the close) before the client reads them.
async fn drain(stream: &mut Stream) {
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

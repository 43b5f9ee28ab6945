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

/// Serves one upgraded socket of `code` until it closes.
pub async fn serve(socket: WebSocket, code: MeetingCode, sig: Arc<Signaling>) {
    let _open = OpenGauge::new();
    let (mut sink, mut stream) = socket.split();
    let stopping = sig.shell.stopping().clone();

    let claims = match auth::authenticate(&mut stream, &sig, &code, &stopping).await {
        Ok(claims) => claims,
        Err(Some((code, reason))) => return write_close(&mut sink, code, reason).await,
        Err(None) => return,
    };
    // The token's role says what GC saw when it signed; the room says who hosts now (DESIGN
    // §12: a hand-over or a succession changes it while tokens live on).
    let user_id = claims.sub.to_string();

    let owned = match sig.owned_room(&code).await {
        Ok(owned) => owned,
        Err((code, reason)) => return write_close(&mut sink, code, reason).await,
    };
    let registration = match sig.hub.register(&code, &user_id).await {
        Ok(registration) => registration,
        Err(error) => {
            tracing::warn!(meeting_code = %code, %error, "cannot follow the room's events");
            return write_close(&mut sink, close::TRY_AGAIN_LATER, "try again later").await;
        }
    };
    let shared = Arc::clone(&registration.shared);
    let room = Arc::clone(&registration.room);

    let mut writer = Writer::new(Arc::clone(&sig), owned.clone(), Arc::clone(&shared), sink);
    let reader_done = CancellationToken::new();
    let end = match writer.start().await {
        Err(end) => end,
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
            let reader_end = reader.await.ok().flatten();
            reader_end.unwrap_or(writer_end)
        }
    };
    writer.close(end).await;
    sig.hub.unregister(&room, &shared).await;
    if end.grace && writer.seated && !stopping.is_cancelled() {
        sig.start_grace(owned, user_id, shared.connection.clone())
            .await;
    }
}

//! MC's one Redis pub/sub connection: it subscribes to the event channel of every room that
//! has a socket here, and hands each message to the hub.
//!
//! Why pub/sub and not streams: events are only useful to sockets open now (a socket that
//! connects later starts from a snapshot, `state.lua`, and the `seq` numbers tell it which
//! events the snapshot holds), so nothing needs to be stored, acknowledged or trimmed, and the
//! room scripts publish in the same atomic step as the change. The channel carries the room's
//! `{code}` tag; on a Redis Cluster, `PUBLISH` reaches subscribers on every node, so the
//! subscriber connects to any one node (sharded pub/sub, `SPUBLISH`, is the step to take when
//! the event rate times the node count gets large; no audio level ever goes through Redis).
//!
//! One task owns the connection. Subscribing waits for Redis' confirmation, so a socket reads
//! its snapshot only once the room's events reach it. Unsubscribing happens only while no
//! socket of the room is here, checked when the command is carried out, so a room that comes
//! back at once keeps its subscription. When the connection drops, messages may have been
//! lost: the task reconnects, subscribes again, and closes every socket (1013) so clients
//! reconnect and start again from a fresh `welcome`.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use common::meeting_code::MeetingCode;
use deadpool_redis::redis;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::events::RoomEvent;
use super::hub::{CloseOrder, Hub};
use super::protocol::close;
use crate::room::{KeyPrefix, RoomError, RoomKeys};

/// Commands waiting for the subscriber task at most; a socket that cannot queue its
/// subscription is refused (1013).
const COMMAND_QUEUE: usize = 1024;
/// How long a subscription may take before the socket is refused.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

enum Command {
    Subscribe {
        code: MeetingCode,
        done: oneshot::Sender<Result<(), String>>,
    },
    Unsubscribe {
        code: MeetingCode,
    },
}

/// The hub's handle on the subscriber task.
#[derive(Clone)]
pub struct Subscriber {
    commands: mpsc::Sender<Command>,
}

/// The other end of [`Subscriber`], run by [`run`].
pub struct SubscriberTask {
    commands: mpsc::Receiver<Command>,
    urls: Vec<String>,
    prefix: KeyPrefix,
}

/// A subscriber handle and the task that serves it, connecting to the first of `urls` that
/// answers (one server, or any node of a cluster).
pub fn subscriber(urls: Vec<String>, prefix: KeyPrefix) -> (Subscriber, SubscriberTask) {
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    (
        Subscriber { commands: tx },
        SubscriberTask {
            commands: rx,
            urls,
            prefix,
        },
    )
}

impl Subscriber {
    /// Returns once `code`'s events reach this MC.
    pub async fn subscribe(&self, code: &MeetingCode) -> Result<(), RoomError> {
        let (done, confirmed) = oneshot::channel();
        let command = Command::Subscribe {
            code: code.clone(),
            done,
        };
        let unavailable = |what: &str| RoomError::Pool(what.to_owned().into());
        self.commands
            .try_send(command)
            .map_err(|_| unavailable("the subscriber is overloaded or stopped"))?;
        match tokio::time::timeout(SUBSCRIBE_TIMEOUT, confirmed).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(error))) => Err(unavailable(&error)),
            Ok(Err(_)) | Err(_) => Err(unavailable("no subscription confirmed in time")),
        }
    }

    /// Drops `code`'s subscription unless a socket of the room is here again by then.
    pub async fn unsubscribe(&self, code: &MeetingCode) {
        let command = Command::Unsubscribe { code: code.clone() };
        // A full queue keeps the subscription: harmless (events of a room without sockets are
        // dropped) and undone by the next reconnect.
        let _ = self.commands.try_send(command);
    }
}

/// Serves subscriptions and delivers messages until `stop`.
pub async fn run(task: SubscriberTask, hub: Weak<Hub>, stop: CancellationToken) {
    let SubscriberTask {
        mut commands,
        urls,
        prefix,
    } = task;
    let mut subscribed: HashSet<MeetingCode> = HashSet::new();
    let mut backoff = FIRST_BACKOFF;
    let mut first = true;
    loop {
        let connection = tokio::select! {
            () = stop.cancelled() => return,
            connection = connect(&urls) => connection,
        };
        let (mut sink, mut messages) = match connection {
            Ok(pubsub) => pubsub.split(),
            Err(error) => {
                tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "cannot reach Redis for room events");
                fail_pending(&mut commands, "Redis is unreachable");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = FIRST_BACKOFF;
        // Subscriptions of the connection that dropped; their sockets are told to reconnect.
        let mut resubscribed = true;
        for code in &subscribed {
            if sink.subscribe(channel(&prefix, code)).await.is_err() {
                resubscribed = false;
                break;
            }
        }
        if !resubscribed {
            continue;
        }
        if !first {
            tracing::warn!("the room event connection was re-established; sockets reconnect");
            if let Some(hub) = hub.upgrade() {
                hub.close_all(CloseOrder {
                    code: close::TRY_AGAIN_LATER,
                    reason: "events were interrupted; reconnect",
                    grace: true,
                });
            }
        }
        first = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                command = commands.recv() => {
                    let Some(command) = command else { return };
                    let Some(hub) = hub.upgrade() else { return };
                    if !carry_out(command, &mut sink, &mut subscribed, &hub, &prefix).await {
                        break;
                    }
                }
                message = messages.next() => {
                    let Some(message) = message else { break };
                    let Some(hub) = hub.upgrade() else { return };
                    deliver(&hub, &message);
                }
            }
        }
        tracing::warn!("the room event connection dropped");
    }
}

async fn connect(urls: &[String]) -> Result<redis::aio::PubSub, redis::RedisError> {
    let mut last = None;
    for url in urls {
        let attempt = async {
            let client = redis::Client::open(url.as_str())?;
            tokio::time::timeout(Duration::from_secs(5), client.get_async_pubsub())
                .await
                .map_err(|_| {
                    redis::RedisError::from((redis::ErrorKind::Io, "connection timed out"))
                })?
        };
        match attempt.await {
            Ok(pubsub) => return Ok(pubsub),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| redis::RedisError::from((redis::ErrorKind::Client, "no Redis URL"))))
}

/// Answers every queued subscription with an error (nobody waits forever while Redis is away).
fn fail_pending(commands: &mut mpsc::Receiver<Command>, why: &str) {
    while let Ok(command) = commands.try_recv() {
        if let Command::Subscribe { done, .. } = command {
            let _ = done.send(Err(why.to_owned()));
        }
    }
}

/// Carries out one command; `false` when the connection failed.
async fn carry_out(
    command: Command,
    sink: &mut redis::aio::PubSubSink,
    subscribed: &mut HashSet<MeetingCode>,
    hub: &Arc<Hub>,
    prefix: &KeyPrefix,
) -> bool {
    match command {
        Command::Subscribe { code, done } => {
            if subscribed.contains(&code) {
                let _ = done.send(Ok(()));
                return true;
            }
            match sink.subscribe(channel(prefix, &code)).await {
                Ok(()) => {
                    subscribed.insert(code);
                    let _ = done.send(Ok(()));
                    true
                }
                Err(error) => {
                    let _ = done.send(Err(error.to_string()));
                    false
                }
            }
        }
        Command::Unsubscribe { code } => {
            if hub.has_room(&code) || !subscribed.contains(&code) {
                return true;
            }
            subscribed.remove(&code);
            sink.unsubscribe(channel(prefix, &code)).await.is_ok()
        }
    }
}

fn channel(prefix: &KeyPrefix, code: &MeetingCode) -> String {
    RoomKeys::new(prefix, code).events
}

fn deliver(hub: &Hub, message: &redis::Msg) {
    let Some(code) = code_of(message.get_channel_name()) else {
        return;
    };
    match RoomEvent::parse(Bytes::copy_from_slice(message.get_payload_bytes())) {
        Ok(event) => hub.dispatch(&code, event),
        Err(error) => {
            metrics::counter!("mc_room_events_received_total", "type" => "malformed").increment(1);
            tracing::warn!(meeting_code = %code, %error, "room event dropped");
        }
    }
}

/// The meeting code between the braces of a channel name.
fn code_of(channel: &str) -> Option<MeetingCode> {
    let open = channel.find('{')?;
    let close = channel[open..].find('}')? + open;
    MeetingCode::parse(&channel[open + 1..close])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_read_from_the_channel_tag() {
        assert_eq!(
            code_of("t1:room:{Ab3dE5fG7hJ9}:events").map(|c| c.to_string()),
            Some("Ab3dE5fG7hJ9".to_owned())
        );
        assert_eq!(code_of("room:{short}:events"), None);
        assert_eq!(code_of("room:Ab3dE5fG7hJ9:events"), None);
        assert_eq!(code_of("room:{Ab3dE5fG7hJ9:events"), None);
    }
}

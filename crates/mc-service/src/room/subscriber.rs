//! MC's one Redis pub/sub connection: it subscribes to the event channel of every room that
//! has a socket here, and hands each event, read into a [`RoomEvent`], to whoever runs it
//! (signaling's hub) as a [`Feed`].
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
//! its snapshot only once the room's events reach it. A subscription lasts while a
//! [`Subscription`] of the room lives; the channel is left only when the last one is dropped,
//! checked when the command is carried out, so a room that comes back at once keeps its
//! subscription. When the connection drops, or stops answering the PING it is sent every
//! [`PING_EVERY`], messages may have been lost: the task reconnects, subscribes again, and
//! feeds [`Feed::Interrupted`] (signaling closes every socket, 1013, so clients reconnect and
//! start again from a fresh `welcome`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use common::backoff::Backoff;
use common::meeting_code::MeetingCode;
use deadpool_redis::redis;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::events::RoomEvent;
use super::{KeyPrefix, RoomError, RoomKeys};

/// Commands waiting for the subscriber task at most; a socket that cannot queue its
/// subscription is refused (1013).
const COMMAND_QUEUE: usize = 1024;
/// How long a subscription may take before the socket is refused.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the event connection is asked for a PING, and how long its answer may take.
/// A connection that stopped answering (Redis hung, a partition: nothing is reset, events just
/// stop) looks like a quiet one; without this, when it answered again, the sockets of its rooms
/// would be served the events of rooms another controller took meanwhile, and never learn they
/// had missed some.
pub const PING_EVERY: Duration = Duration::from_secs(3);
pub const PING_DEADLINE: Duration = Duration::from_secs(2);

/// What the subscriber hands on, in the order Redis delivered it.
#[derive(Debug)]
pub enum Feed {
    /// One event of the room `code`.
    Event { code: MeetingCode, event: RoomEvent },
    /// The connection dropped, or stopped answering its PING, and is back: events of every
    /// room may have been lost.
    Interrupted,
}

enum Command {
    Subscribe {
        code: MeetingCode,
        done: oneshot::Sender<Result<(), String>>,
    },
    /// A subscription was dropped; the channel is left if it was the room's last.
    Unsubscribe { code: MeetingCode },
}

/// The live [`Subscription`]s of each room, shared by the handles and the task.
type Interest = Arc<Mutex<HashMap<MeetingCode, usize>>>;

/// The handle on the subscriber task.
#[derive(Clone)]
pub struct Subscriber {
    commands: mpsc::Sender<Command>,
    interest: Interest,
}

/// The other end of [`Subscriber`], run by [`run`].
pub struct SubscriberTask {
    commands: mpsc::Receiver<Command>,
    interest: Interest,
    urls: Vec<String>,
    prefix: KeyPrefix,
}

/// A subscriber handle and the task that serves it, connecting to the first of `urls` that
/// answers (one server, or any node of a cluster).
pub fn subscriber(urls: Vec<String>, prefix: KeyPrefix) -> (Subscriber, SubscriberTask) {
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let interest = Interest::default();
    (
        Subscriber {
            commands: tx,
            interest: Arc::clone(&interest),
        },
        SubscriberTask {
            commands: rx,
            interest,
            urls,
            prefix,
        },
    )
}

/// Keeps a room's events coming while it lives.
#[derive(Debug)]
pub struct Subscription {
    code: MeetingCode,
    commands: mpsc::Sender<Command>,
    interest: Interest,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let last = {
            let mut interest = self.interest.lock().unwrap_or_else(PoisonError::into_inner);
            match interest.get_mut(&self.code) {
                Some(count) if *count > 1 => {
                    *count -= 1;
                    false
                }
                _ => {
                    interest.remove(&self.code);
                    true
                }
            }
        };
        if last {
            // A full queue keeps the channel: harmless (events of a room without sockets are
            // dropped) and undone by the next reconnect, which subscribes only to rooms with a
            // subscription.
            let _ = self.commands.try_send(Command::Unsubscribe {
                code: self.code.clone(),
            });
        }
    }
}

impl Subscriber {
    /// Returns once `code`'s events reach this MC; they keep coming while the subscription
    /// lives.
    pub async fn subscribe(&self, code: &MeetingCode) -> Result<Subscription, RoomError> {
        // Counted before the command goes, so that an unsubscription queued meanwhile by the
        // room's previous subscription keeps the channel.
        *self
            .interest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(code.clone())
            .or_default() += 1;
        let subscription = Subscription {
            code: code.clone(),
            commands: self.commands.clone(),
            interest: Arc::clone(&self.interest),
        };
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
            Ok(Ok(Ok(()))) => Ok(subscription),
            Ok(Ok(Err(error))) => Err(unavailable(&error)),
            Ok(Err(_)) | Err(_) => Err(unavailable("no subscription confirmed in time")),
        }
    }
}

/// Serves subscriptions and hands each room event, and each interruption, to `feed`, until
/// `stop`.
pub async fn run(task: SubscriberTask, stop: CancellationToken, mut feed: impl FnMut(Feed)) {
    let SubscriberTask {
        mut commands,
        interest,
        urls,
        prefix,
    } = task;
    let mut subscribed: HashSet<MeetingCode> = HashSet::new();
    let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
    let mut first = true;
    loop {
        let connection = tokio::select! {
            () = stop.cancelled() => return,
            connection = connect(&urls) => connection,
        };
        let (mut sink, mut messages) = match connection {
            Ok(pubsub) => pubsub.split(),
            Err(error) => {
                let wait = backoff.next_wait();
                tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "cannot reach Redis for room events");
                fail_pending(&mut commands, "Redis is unreachable");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                continue;
            }
        };
        backoff.reset();
        // Subscriptions of the connection that dropped, but only of rooms still followed;
        // their sockets are told to reconnect.
        subscribed.retain(|code| wanted(&interest, code));
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
            feed(Feed::Interrupted);
        }
        first = false;
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.reset();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ping.tick() => {
                    // Any reply will do: subscribed, Redis answers an array, not `PONG`.
                    let answered = tokio::time::timeout(PING_DEADLINE, sink.ping::<redis::Value>()).await;
                    if !matches!(answered, Ok(Ok(_))) {
                        tracing::warn!("the room event connection stopped answering");
                        break;
                    }
                }
                command = commands.recv() => {
                    let Some(command) = command else { return };
                    if !carry_out(command, &mut sink, &mut subscribed, &interest, &prefix).await {
                        break;
                    }
                }
                message = messages.next() => {
                    let Some(message) = message else { break };
                    if let Some(item) = read(&message) {
                        feed(item);
                    }
                }
            }
        }
        tracing::warn!("the room event connection dropped");
    }
}

/// Whether a subscription of `code` lives.
fn wanted(interest: &Interest, code: &MeetingCode) -> bool {
    interest
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains_key(code)
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
    interest: &Interest,
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
            if wanted(interest, &code) || !subscribed.contains(&code) {
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

/// One message of a room's channel, read; `None` (counted and logged) when it is malformed.
fn read(message: &redis::Msg) -> Option<Feed> {
    let code = code_of(message.get_channel_name())?;
    match RoomEvent::parse(Bytes::copy_from_slice(message.get_payload_bytes())) {
        Ok(event) => Some(Feed::Event { code, event }),
        Err(error) => {
            metrics::counter!("mc_room_events_received_total", "type" => "malformed").increment(1);
            tracing::warn!(meeting_code = %code, %error, "room event dropped");
            None
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

    fn code() -> MeetingCode {
        MeetingCode::parse("Ab3dE5fG7hJ9").unwrap()
    }

    /// Subscribes while playing the task's part: the next command must be a subscription,
    /// answered with `answer`.
    async fn subscribe(
        subscriber: &Subscriber,
        task: &mut SubscriberTask,
        answer: Result<(), String>,
    ) -> Result<Subscription, RoomError> {
        let code = code();
        let asking = subscriber.subscribe(&code);
        let answering = async {
            match task.commands.recv().await {
                Some(Command::Subscribe { code: asked, done }) => {
                    assert_eq!(asked, code);
                    let _ = done.send(answer);
                }
                _ => panic!("expected a subscription"),
            }
        };
        let (subscription, ()) = tokio::join!(asking, answering);
        subscription
    }

    fn unsubscribed(task: &mut SubscriberTask) -> bool {
        matches!(task.commands.try_recv(), Ok(Command::Unsubscribe { code: c }) if c == code())
    }

    #[tokio::test]
    async fn a_room_stays_followed_until_its_last_subscription_drops() {
        let (subscriber, mut task) = subscriber(Vec::new(), KeyPrefix::parse("").unwrap());
        let first = subscribe(&subscriber, &mut task, Ok(())).await.unwrap();
        let second = subscribe(&subscriber, &mut task, Ok(())).await.unwrap();
        assert!(wanted(&task.interest, &code()));

        drop(first);
        assert!(wanted(&task.interest, &code()));
        assert!(task.commands.try_recv().is_err(), "nothing to leave yet");

        drop(second);
        assert!(!wanted(&task.interest, &code()));
        assert!(unsubscribed(&mut task));
    }

    #[tokio::test]
    async fn a_refused_subscription_leaves_no_interest_behind() {
        let (subscriber, mut task) = subscriber(Vec::new(), KeyPrefix::parse("").unwrap());
        let refused = subscribe(&subscriber, &mut task, Err("no redis".into())).await;
        assert!(matches!(refused, Err(RoomError::Pool(_))));
        assert!(!wanted(&task.interest, &code()));
        assert!(unsubscribed(&mut task));
    }
}

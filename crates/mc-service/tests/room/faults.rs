//! The room store when its Redis stops answering or drops its connections (issue 24): every
//! command fails within its deadline (`room::COMMAND_DEADLINE`, 2 s, under GC's 3 s deadline on
//! its calls to MC; the Redis client's own response timeout is shorter still) rather than
//! waiting, and works again when Redis does, without a restart. The
//! store reaches Redis through a fault proxy; the checks read Redis directly.
//!
//! The time bound asserted is far from a speed target: a command refused by its deadline
//! rather than held for as long as Redis is away.

use std::time::{Duration, Instant};

use fault_proxy::{Fault, FaultProxy};
use mc_service::room::{COMMAND_DEADLINE, Role, RoomError};

use crate::support::{Harness, now, user};

/// Whether `result` is a failure GC is told as `SERVICE_UNAVAILABLE`: the command deadline,
/// the Redis client's own response timeout on a connection that does not answer, or the pool
/// giving up on one (its PING on reuse times out).
fn unavailable<T>(result: &Result<T, RoomError>) -> bool {
    matches!(
        result,
        Err(RoomError::Timeout(_) | RoomError::Pool(_) | RoomError::Redis(_))
    )
}

/// A store through a proxy to REDIS_URL's server, and the proxy.
async fn through_a_proxy() -> (Harness, FaultProxy) {
    let (proxy, proxied) = proxy_to_redis().await;
    (Harness::single_at(&proxied).await, proxy)
}

/// A proxy to REDIS_URL's server, and the URL that goes through it.
async fn proxy_to_redis() -> (FaultProxy, String) {
    let url = Harness::url();
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let address = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:6379")
    };
    let upstream = tokio::net::lookup_host(address)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let proxied = format!("{scheme}://127.0.0.1:{}/{path}", proxy.port());
    (proxy, proxied)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_fails_room_commands_at_their_deadline_and_they_work_again_when_it_answers() {
    let (h, proxy) = through_a_proxy().await;
    let room = h.room(10, false).await;
    room.join_as(&user(0), Role::Host).await;

    // The calls of one batched call share one connection, taken before the fault: no pool
    // check stands between them and the stalled connection, only the client's response
    // timeout and the command deadline.
    let shared = h.store.on_one_connection().await.unwrap();
    proxy.set(Fault::Stall);
    let started = Instant::now();
    let joined = shared
        .join(
            &room.owned,
            &user(1),
            "Grace",
            Role::Guest,
            None,
            true,
            now(),
        )
        .await;
    assert!(unavailable(&joined), "{joined:?}");
    let read = h.store.state(room.code()).await;
    assert!(unavailable(&read), "{read:?}");
    // Two commands, each refused at its deadline, not held until Redis answers.
    assert!(started.elapsed() < COMMAND_DEADLINE * 2 + Duration::from_secs(3));

    // Back: what the stalled connection held is delivered late, so the refused join may have
    // happened after all; joining again is the repair (a join is idempotent), and the room is
    // as it would be after one join.
    proxy.set(Fault::Pass);
    let again = room.join(&user(1), "Grace", Role::Guest).await.unwrap();
    assert_eq!(again.participant_count, 2);
    let state = room.state().await;
    assert_eq!(state.participant_count(), 2);
    room.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_drops_its_connections_fails_commands_at_once_and_the_pool_reconnects() {
    let (h, proxy) = through_a_proxy().await;
    let room = h.room(10, false).await;
    room.join_as(&user(0), Role::Host).await;

    proxy.set(Fault::Reset);
    let started = Instant::now();
    let read = h.store.state(room.code()).await;
    assert!(read.is_err(), "{read:?}");
    assert!(started.elapsed() < COMMAND_DEADLINE + Duration::from_secs(3));

    proxy.set(Fault::Pass);
    // The pool replaces the connection the reset broke: at most one more command meets it.
    let mut failures = 0;
    let state = loop {
        match h.store.state(room.code()).await {
            Ok(state) => break state,
            Err(error) => {
                failures += 1;
                assert!(failures <= 1, "still failing after the reset: {error}");
            }
        }
    };
    assert_eq!(state.participant_count(), 1);
}

/// The room-event connection of a controller whose Redis stops answering (hung, or cut off by a
/// partition: nothing is reset, events just stop) is noticed by its PING and made again, and
/// the sockets are told (`Feed::Interrupted`: 1013, they join again through GC) rather than
/// served, once Redis answers, the events of rooms another controller took meanwhile, with a
/// gap they never learn of. Without the PING the connection that stalled simply resumes: no
/// interruption at all. The fault suite's `mc-partitioned` scenario found it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_connection_that_stops_answering_is_made_again_and_its_sockets_are_told() {
    use mc_service::room::KeyPrefix;
    use mc_service::room::subscriber::{Feed, PING_DEADLINE, PING_EVERY, run, subscriber};

    let (proxy, proxied) = proxy_to_redis().await;
    let prefix = format!("t{}:", uuid::Uuid::new_v4().simple());
    let (subscriber, task) = subscriber(vec![proxied], KeyPrefix::parse(&prefix).unwrap());
    let (fed, mut feeds) = tokio::sync::mpsc::unbounded_channel();
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(run(task, stop.clone(), move |feed| {
        let _ = fed.send(matches!(feed, Feed::Interrupted));
    }));
    let code = common::meeting_code::MeetingCode::parse("Ab3dE5fG7hJ9").unwrap();
    let subscription = subscriber.subscribe(&code).await.unwrap();

    // A connection that answers is left alone, however long it stays quiet.
    let quiet = tokio::time::timeout(2 * (PING_EVERY + PING_DEADLINE), feeds.recv()).await;
    assert!(quiet.is_err(), "a healthy event connection was interrupted");

    // Long enough for a PING to go unanswered; then the network is back.
    proxy.set(Fault::Stall);
    tokio::time::sleep(PING_EVERY + PING_DEADLINE + Duration::from_secs(1)).await;
    proxy.set(Fault::Pass);
    let interrupted = tokio::time::timeout(Duration::from_secs(15), feeds.recv())
        .await
        .expect("the stalled event connection resumed as if nothing had been lost");
    assert_eq!(interrupted, Some(true));
    drop(subscription);
    stop.cancel();
    running.await.unwrap();
}

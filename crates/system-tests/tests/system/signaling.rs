//! The signaling WebSocket against the real services: AC, GC, meeting controllers, Redis and
//! PostgreSQL, with real sockets (tokio-tungstenite). REST calls on GC reach the sockets through
//! MC; what the sockets do reaches GC's records.

use std::time::Duration;

use mc_service::config::SignalingArgs;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::helpers::{McRedis, StackOptions, TestStack, meeting_body, spawn_stack};
use crate::meetings::{People, call, create, join};
use crate::ws::Ws;

/// A stack with one controller whose signaling settings the test chooses, the prefix of its
/// room keys, and a way to make users.
pub(crate) async fn stack(pool: PgPool, signaling: SignalingArgs) -> (TestStack, String, People) {
    let mut stack = spawn_stack(pool, StackOptions::default()).await;
    let people = People::new(&stack).await;
    let prefix = format!("t{}:", Uuid::new_v4().simple());
    stack
        .start_mc_with(0, &prefix, McRedis::Single, signaling)
        .await;
    (stack, prefix, people)
}

pub(crate) fn quick() -> SignalingArgs {
    SignalingArgs {
        reconnect_grace: Duration::from_secs(5),
        ws_auth_timeout_ms: 1_000,
        ..SignalingArgs::default()
    }
}

/// A user who joined over REST: id, user token, and the join's answer.
pub(crate) struct Member {
    pub(crate) id: Uuid,
    pub(crate) token: String,
    pub(crate) joined: Value,
}

impl Member {
    fn url(&self) -> &str {
        self.joined["signaling_url"].as_str().unwrap()
    }

    fn meeting_token(&self) -> &str {
        self.joined["meeting_token"].as_str().unwrap()
    }

    pub(crate) async fn socket(&self) -> Ws {
        Ws::join(self.url(), self.meeting_token()).await
    }
}

pub(crate) async fn member(stack: &TestStack, people: &People, code: &str, name: &str) -> Member {
    let (id, token) = people.user(stack, stack.org_id, name).await;
    let (status, joined) = join(stack, code, &token).await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    Member { id, token, joined }
}

/// A meeting with the waiting room on, and its host joined and connected.
pub(crate) async fn meeting(stack: &TestStack, people: &People) -> (String, Member, Ws) {
    let (host_id, host_token) = people.user(stack, stack.org_id, "Host").await;
    let code = create(stack, &host_token, &meeting_body("Signaling")).await;
    let (status, joined) = join(stack, &code, &host_token).await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    let host = Member {
        id: host_id,
        token: host_token,
        joined,
    };
    let mut socket = host.socket().await;
    let welcome = socket.expect_next("welcome").await;
    assert_eq!(welcome["you"]["role"], "host");
    assert_eq!(welcome["lobby"], json!([]));
    (code, host, socket)
}

/// The host admits `who` over REST.
async fn admit(stack: &TestStack, code: &str, host: &Member, who: &Member) {
    let (status, body) = rest(
        stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/admit/{}", who.id),
        &host.token,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A member the host seated, with a socket past its `welcome`.
pub(crate) async fn seated(
    stack: &TestStack,
    people: &People,
    code: &str,
    host: &Member,
    name: &str,
) -> (Member, Ws) {
    let who = member(stack, people, code, name).await;
    admit(stack, code, host, &who).await;
    let mut ws = who.socket().await;
    ws.expect("welcome").await;
    (who, ws)
}

pub(crate) async fn rest(
    stack: &TestStack,
    method: Method,
    path: &str,
    token: &str,
) -> (StatusCode, Value) {
    call(stack, method, path, token, None).await
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_guest_waits_the_host_admits_and_the_room_hears_it_once(pool: PgPool) {
    let (stack, _prefix, people) = stack(pool, quick()).await;
    let (code, host, mut host_ws) = meeting(&stack, &people).await;

    let guest = member(&stack, &people, &code, "Grace Hopper").await;
    assert_eq!(guest.joined["status"], "waiting");
    let mut guest_ws = guest.socket().await;
    guest_ws.expect_next("lobby.waiting").await;
    let entered = host_ws.expect("lobby.joined").await;
    assert_eq!(entered["user_id"], guest.id.to_string());
    assert_eq!(entered["display_name"], "Grace Hopper");

    // Devices tested in the lobby are on the seat once admitted.
    guest_ws
        .send(json!({"type": "hardware", "audio_ready": true, "video_ready": false}))
        .await;
    guest_ws.sync().await;

    admit(&stack, &code, &host, &guest).await;
    guest_ws.expect_next("admitted").await;
    let welcome = guest_ws.expect_next("welcome").await;
    assert_eq!(welcome["you"]["user_id"], guest.id.to_string());
    assert_eq!(welcome["you"]["role"], "guest");
    assert_eq!(welcome["meeting"]["meeting_code"], code);
    assert!(
        welcome.get("lobby").is_none(),
        "only the host sees the lobby"
    );
    let seats = welcome["participants"].as_array().unwrap();
    assert_eq!(seats.len(), 2);
    let me = seats
        .iter()
        .find(|p| p["user_id"] == guest.id.to_string())
        .unwrap();
    assert_eq!(
        me["hardware_ready"],
        json!({"audio_ready": true, "video_ready": false})
    );
    assert_eq!(me["status"], "connected");

    let left = host_ws.expect("lobby.left").await;
    assert_eq!(
        (left["user_id"].clone(), left["reason"].clone()),
        (json!(guest.id.to_string()), json!("admitted"))
    );
    let joined = host_ws.expect("participant.joined").await;
    assert_eq!(joined["user_id"], guest.id.to_string());
    assert_eq!(joined["role"], "guest");

    // A later change of the guest is a barrier: everything published before it has reached
    // the host, and there was one participant.joined, not two.
    guest_ws
        .send(json!({"type": "set_language", "language": "en-GB"}))
        .await;
    let updated = host_ws
        .expect_where("participant.updated", |e| e.get("language").is_some())
        .await;
    assert_eq!(updated["language"], "en-GB");
    assert_eq!(updated["user_id"], guest.id.to_string());
    let all_joined = host_ws.seen_of("participant.joined").len() + 1;
    assert_eq!(all_joined, 1, "{:?}", host_ws.seen);
    assert!(guest_ws.seen_of("participant.joined").is_empty());
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_guest_admitted_before_connecting_is_told_so_first(pool: PgPool) {
    let (stack, _prefix, people) = stack(pool, quick()).await;
    let (code, host, _host_ws) = meeting(&stack, &people).await;
    let guest = member(&stack, &people, &code, "Early").await;
    admit(&stack, &code, &host, &guest).await;

    let mut ws = guest.socket().await;
    ws.expect_next("admitted").await;
    ws.expect_next("welcome").await;
    drop(ws);
    // The second connection is no news: just the welcome.
    let mut again = guest.socket().await;
    again.expect_next("welcome").await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_rejected_guest_is_told_whether_connected_before_or_after(pool: PgPool) {
    let (stack, _prefix, people) = stack(pool, quick()).await;
    let (code, host, mut host_ws) = meeting(&stack, &people).await;

    let waiting = member(&stack, &people, &code, "Waiting").await;
    let mut waiting_ws = waiting.socket().await;
    waiting_ws.expect_next("lobby.waiting").await;
    let later = member(&stack, &people, &code, "Later").await;
    for who in [&waiting, &later] {
        let (status, _) = rest(
            &stack,
            Method::POST,
            &format!("/api/v1/meetings/{code}/reject/{}", who.id),
            &host.token,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }

    let rejected = waiting_ws.expect_next("rejected").await;
    assert!(rejected["reason"].is_string());
    assert_eq!(waiting_ws.expect_close().await.0, 4403);
    let mut later_ws = later.socket().await;
    later_ws.expect_next("rejected").await;
    assert_eq!(later_ws.expect_close().await.0, 4403);
    let left = host_ws.expect("lobby.left").await;
    assert_eq!(left["reason"], "rejected");
}

#[sqlx::test(migrations = "../../migrations")]
async fn ending_the_meeting_closes_every_socket_with_meeting_ended(pool: PgPool) {
    let mut signaling = quick();
    signaling.reconnect_grace = Duration::from_secs(30);
    let (stack, prefix, people) = stack(pool, signaling).await;
    let (code, host, mut host_ws) = meeting(&stack, &people).await;
    let (sitting, mut seated_ws) = seated(&stack, &people, &code, &host, "Seated").await;
    let waiting = member(&stack, &people, &code, "Waiting").await;
    let mut waiting_ws = waiting.socket().await;
    waiting_ws.expect_next("lobby.waiting").await;

    let (status, _) = rest(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/end"),
        &host.token,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    for ws in [&mut host_ws, &mut seated_ws, &mut waiting_ws] {
        let ended = ws.expect("meeting.ended").await;
        assert!(ended["reason"].is_string());
        assert_eq!(ws.expect_close().await.0, 1000);
    }
    // Nothing of the room is left, and a late socket hears the meeting is gone.
    assert!(crate::meetings::redis_keys(&prefix).await.is_empty());
    let mut late = sitting.socket().await;
    assert_eq!(late.expect_close().await.0, 4404);
}

/// Clients still sending audio levels, unread, when their meeting ends are told
/// `meeting.ended` and closed with 1000, not reset: MC reads what a client still sends until its
/// close answers MC's (at most a second) before it lets the connection go, so unread frames do
/// not make the kernel reset it and throw away MC's last frames. 5 meetings of 7 sockets (the
/// day-in-the-life load saw such resets when many meetings ended at once; here the clients
/// send without pause, so there is always something unread).
#[sqlx::test(migrations = "../../migrations")]
async fn clients_sending_when_the_meeting_ends_still_get_the_end_and_the_close(pool: PgPool) {
    use futures::SinkExt;
    let mut signaling = quick();
    signaling.ws_max_messages_per_sec = 100_000;
    signaling.ws_message_burst = 100_000;
    let (stack, _prefix, people) = stack(pool, signaling).await;
    for round in 0..5 {
        let (code, host, host_ws) = meeting(&stack, &people).await;
        let mut sockets = vec![host_ws];
        for i in 0..6 {
            let name = format!("Talker {round}.{i}");
            sockets.push(seated(&stack, &people, &code, &host, &name).await.1);
        }
        // Each sends levels as fast as it can for 600 ms (MC's rate limit is raised out of the
        // way) and reads nothing meanwhile; the meeting ends 100 ms in.
        let sending: Vec<_> = sockets
            .into_iter()
            .map(|mut ws| {
                tokio::spawn(async move {
                    let level = json!({"type": "audio_level", "level_dbfs": -20}).to_string();
                    let until = tokio::time::Instant::now() + Duration::from_millis(600);
                    while tokio::time::Instant::now() < until {
                        if ws.stream.send(Message::text(level.clone())).await.is_err() {
                            break;
                        }
                        tokio::task::yield_now().await;
                    }
                    ws
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let path = format!("/api/v1/meetings/{code}/end");
        let (status, body) = rest(&stack, Method::POST, &path, &host.token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for (i, task) in sending.into_iter().enumerate() {
            let mut ws = task.await.unwrap();
            ws.expect("meeting.ended").await;
            assert_eq!(ws.expect_close().await.0, 1000, "round {round}, socket {i}");
        }
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn authentication_is_required_first_and_checked(pool: PgPool) {
    let (stack, _prefix, people) = stack(pool, quick()).await;
    let (code, host, _host_ws) = meeting(&stack, &people).await;
    let url = host.url().to_owned();

    // Silence, a half-sent frame, or something else first: 4401.
    let mut silent = Ws::connect(&url).await;
    assert_eq!(silent.expect_close().await.0, 4401);
    let mut half = Ws::connect(&url).await;
    {
        use tokio::io::AsyncWriteExt;
        let tcp = match half.stream.get_mut() {
            tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp,
            _ => unreachable!(),
        };
        // A masked text frame header announcing 100 bytes, and 3 of them.
        tcp.write_all(&[0x81, 0x80 | 100, 1, 2, 3, 4, b'a', b'b', b'c'])
            .await
            .unwrap();
    }
    assert_eq!(half.expect_close().await.0, 4401);
    let mut pinger = Ws::connect(&url).await;
    pinger.send(json!({"type": "ping"})).await;
    assert_eq!(pinger.expect_close().await.0, 4401);
    let mut garbage = Ws::connect(&url).await;
    garbage.send_text("\u{0}{not json").await;
    assert_eq!(garbage.expect_close().await.0, 4401);

    // A user token is not a meeting token; a forged or tampered one is not either.
    let mut user_token = Ws::join(&url, &host.token).await;
    assert_eq!(user_token.expect_close().await.0, 4401);
    let tampered = crate::helpers::tampered(host.meeting_token(), |claims| {
        claims["role"] = json!("host");
        claims["sub"] = json!(Uuid::new_v4().to_string());
    });
    let mut forged = Ws::join(&url, &tampered).await;
    assert_eq!(forged.expect_close().await.0, 4401);

    // A meeting token of another meeting: 4403.
    let other_code = create(&stack, &host.token, &meeting_body("Other")).await;
    let (_, other) = join(&stack, &other_code, &host.token).await;
    let mut elsewhere = Ws::join(&url, other["meeting_token"].as_str().unwrap()).await;
    assert_eq!(elsewhere.expect_close().await.0, 4403);

    // A malformed code is no WebSocket at all.
    let bad = url.replace(&code, "not-a-code!");
    let refused = tokio_tungstenite::connect_async(bad.as_str()).await;
    assert!(refused.is_err());
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_member_who_left_is_refused_and_a_newer_socket_replaces_an_older(pool: PgPool) {
    let (stack, _prefix, people) = stack(pool, quick()).await;
    let (code, host, mut host_ws) = meeting(&stack, &people).await;

    let mut second = host.socket().await;
    second.expect_next("welcome").await;
    assert_eq!(host_ws.expect_close().await.0, 4409);
    second.sync().await;

    let guest = member(&stack, &people, &code, "Leaver").await;
    let (status, _) = rest(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/leave"),
        &guest.token,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut gone = guest.socket().await;
    assert_eq!(gone.expect_close().await.0, 4403);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_dropped_socket_keeps_its_seat_for_the_grace_then_loses_it(pool: PgPool) {
    // Long enough for a reconnect on a loaded CI machine, short enough to wait out.
    let signaling = SignalingArgs {
        reconnect_grace: Duration::from_millis(2_000),
        ..quick()
    };
    let (stack, _prefix, people) = stack(pool, signaling).await;
    let (code, host, mut host_ws) = meeting(&stack, &people).await;
    let (guest, ws) = seated(&stack, &people, &code, &host, "Flaky").await;

    // Dropped without a close frame, back within the grace: the seat stays.
    drop(ws);
    let guest_id = guest.id.to_string();
    host_ws
        .expect_where("participant.updated", |e| {
            e["user_id"] == guest_id.as_str() && e["status"] == "reconnecting"
        })
        .await;
    let mut back = guest.socket().await;
    back.expect_next("welcome").await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    back.sync().await;
    host_ws.sync().await;
    assert!(
        host_ws.seen_of("participant.left").is_empty(),
        "{:?}",
        host_ws.seen
    );

    // Dropped for longer than the grace: connection_lost, recorded by GC.
    drop(back);
    let left = host_ws.expect("participant.left").await;
    assert_eq!(
        (left["user_id"].clone(), left["reason"].clone()),
        (json!(guest.id.to_string()), json!("connection_lost"))
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reason: Option<String> = sqlx::query_scalar(
            "select leave_reason from participants where user_id = $1 and left_at is not null",
        )
        .bind(guest.id)
        .fetch_optional(&stack.pool)
        .await
        .unwrap();
        if let Some(reason) = reason {
            assert_eq!(reason, "connection_lost");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "GC never recorded the leave"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, seen) = rest(
        &stack,
        Method::GET,
        &format!("/api/v1/meetings/{code}"),
        &host.token,
    )
    .await;
    assert_eq!(seen["participant_count"], 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_last_one_leaving_over_the_socket_starts_the_empty_clock(pool: PgPool) {
    let (stack, _prefix, people) = stack(pool, quick()).await;
    let (code, _host, mut host_ws) = meeting(&stack, &people).await;
    host_ws.send(json!({"type": "leave"})).await;
    assert_eq!(host_ws.expect_close().await.0, 1000);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (left, empty): (bool, bool) = sqlx::query_as(
            "select exists (select 1 from participants p join meetings m on m.id = p.meeting_id
                            where m.meeting_code = $1 and p.left_at is not null
                              and p.leave_reason = 'left'),
                    (select empty_since is not null from meetings where meeting_code = $1)",
        )
        .bind(&code)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
        if left && empty {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "GC never heard: left {left}, empty {empty}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_active_speaker_reaches_everyone_and_is_cleared_when_they_leave(pool: PgPool) {
    let (stack, _prefix, people) = stack(pool, quick()).await;
    let (code, host, mut host_ws) = meeting(&stack, &people).await;
    let mut sockets = Vec::new();
    let mut guests = Vec::new();
    for name in ["Ann", "Bob"] {
        let (guest, ws) = seated(&stack, &people, &code, &host, name).await;
        sockets.push(ws);
        guests.push(guest);
    }
    // Ann speaks for 600 ms, Bob murmurs below the threshold.
    for _ in 0..30 {
        sockets[0]
            .send(json!({"type": "audio_level", "level_dbfs": -20.0}))
            .await;
        sockets[1]
            .send(json!({"type": "audio_level", "level_dbfs": -41.0}))
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ann = guests[0].id.to_string();
    let [ann_ws, bob_ws] = &mut sockets[..] else {
        unreachable!()
    };
    for ws in [&mut host_ws, ann_ws, bob_ws] {
        let change = ws.expect("active_speaker").await;
        assert_eq!(
            (
                change["user_id"].clone(),
                change["previous_user_id"].clone()
            ),
            (json!(ann), Value::Null)
        );
    }
    // A newcomer's welcome names the speaker.
    let late = member(&stack, &people, &code, "Late").await;
    admit(&stack, &code, &host, &late).await;
    let mut late_ws = late.socket().await;
    assert_eq!(
        late_ws.expect("welcome").await["active_speaker"],
        json!(ann)
    );

    sockets[0].send(json!({"type": "leave"})).await;
    let cleared = host_ws.expect("active_speaker").await;
    assert_eq!(
        (
            cleared["user_id"].clone(),
            cleared["previous_user_id"].clone()
        ),
        (Value::Null, json!(ann))
    );
    let left = host_ws.seen_of("participant.left");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["reason"], "left");
}

#[sqlx::test(migrations = "../../migrations")]
async fn hostile_frames_get_errors_or_closes_and_the_room_goes_on(pool: PgPool) {
    let mut signaling = quick();
    signaling.ws_max_messages_per_sec = 50;
    signaling.ws_message_burst = 60;
    let (stack, _prefix, people) = stack(pool, signaling).await;
    let (code, host, mut host_ws) = meeting(&stack, &people).await;
    let (guest, mut ws) = seated(&stack, &people, &code, &host, "Mallory").await;

    // Bad messages get an error each, and the socket stays.
    for bad in [
        "not json",
        "{}",
        r#"{"type":"shout"}"#,
        r#"{"type":"audio_level","level_dbfs":3}"#,
        r#"{"type":"audio_level","level_dbfs":"loud"}"#,
        r#"{"type":"set_language","language":"en\u0000"}"#,
        r#"{"type":"set_language","language":"ℯ𝓃"}"#,
        r#"{"type":"hardware","audio_ready":1,"video_ready":true}"#,
        r#"{"type":"ping","type":"leave"}"#,
        r#"{"type":"auth","token":"again"}"#,
    ] {
        ws.send_text(bad).await;
        let error = ws.expect_next("error").await;
        assert_eq!(error["code"], "BAD_REQUEST", "{bad}");
    }
    ws.sync().await;

    // A frame over 16 KiB: 1009, and the seat waits for a reconnect.
    let mut big = guest.socket().await;
    big.expect("welcome").await;
    let _ = big.send_raw(Message::text("x".repeat(17 * 1024))).await;
    assert_eq!(big.expect_close().await.0, 1009);
    // Binary frames: 1003.
    let mut binary = guest.socket().await;
    binary.expect("welcome").await;
    let _ = binary.send_raw(Message::binary(vec![0u8; 10])).await;
    assert_eq!(binary.expect_close().await.0, 1003);
    // A flood: 4429.
    let mut flood = guest.socket().await;
    flood.expect("welcome").await;
    for _ in 0..200 {
        if !flood.send_raw(Message::text(r#"{"type":"ping"}"#)).await {
            break;
        }
    }
    assert_eq!(flood.expect_close().await.0, 4429);

    // The room goes on: the host still hears the guest.
    let mut calm = guest.socket().await;
    calm.expect("welcome").await;
    calm.send(json!({"type": "set_language", "language": "fr"}))
        .await;
    loop {
        let update = host_ws.expect("participant.updated").await;
        if update["language"] == "fr" {
            break;
        }
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn random_frames_never_break_a_socket_uncleanly(pool: PgPool) {
    let mut signaling = quick();
    signaling.ws_max_messages_per_sec = 10_000;
    signaling.ws_message_burst = 10_000;
    let (stack, _prefix, people) = stack(pool, signaling).await;
    let (_code, host, _host_ws) = meeting(&stack, &people).await;
    // A small deterministic generator: the same frames on every run.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let pieces = [
        "{",
        "}",
        "\"type\"",
        ":",
        "\"audio_level\"",
        "\"level_dbfs\"",
        "-40",
        "1e999",
        ",",
        "\"hardware\"",
        "\"language\"",
        "\"\\u0000\"",
        "[",
        "]",
        "null",
        "\"set_language\"",
        "\"ping\"",
        "\u{feff}",
        "\u{202e}",
        "\"",
        "\\",
        "true",
        "\"audio_ready\"",
        "0",
    ];
    for round in 0..5 {
        let mut ws = host.socket().await;
        ws.expect("welcome").await;
        for _ in 0..150 {
            let frame = match next() % 8 {
                0..=4 => Message::text(
                    (0..next() % 12)
                        .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                        .collect::<String>(),
                ),
                5 => Message::Ping(
                    (0..next() % 16)
                        .map(|_| next() as u8)
                        .collect::<Vec<_>>()
                        .into(),
                ),
                6 => Message::Pong(
                    (0..next() % 16)
                        .map(|_| next() as u8)
                        .collect::<Vec<_>>()
                        .into(),
                ),
                _ => Message::text(
                    String::from_utf8_lossy(
                        &(0..next() % 64).map(|_| next() as u8).collect::<Vec<_>>(),
                    )
                    .into_owned(),
                ),
            };
            assert!(
                ws.send_raw(frame).await,
                "round {round}: the server closed on a frame"
            );
        }
        // Every frame was answered or absorbed: a ping still gets its pong.
        ws.sync().await;
        for event in &ws.seen {
            let kind = event["type"].as_str().unwrap_or_default();
            assert!(
                ["error", "participant.updated", "pong"].contains(&kind),
                "round {round}: {event}"
            );
        }
    }
    // Binary garbage closes cleanly (1003), and the meeting answers as before.
    let mut ws = host.socket().await;
    ws.expect("welcome").await;
    let _ = ws
        .send_raw(Message::binary(
            (0..40).map(|_| next() as u8).collect::<Vec<_>>(),
        ))
        .await;
    assert_eq!(ws.expect_close().await.0, 1003);
    let mut ws = host.socket().await;
    ws.expect("welcome").await;
    ws.sync().await;
}

/// A room whose `welcome` is larger than the 64 KiB a socket's write was once capped at (81
/// seats with long names: about 80 KB): the last one in is greeted with the whole room. Before,
/// the write failed and the socket closed without a code (issue 27's town hall found it).
#[sqlx::test(migrations = "../../migrations")]
async fn a_welcome_larger_than_64_kib_arrives_whole(pool: PgPool) {
    let (stack, _prefix, people) = stack(pool, quick()).await;
    let (code, host, _host_ws) = meeting(&stack, &people).await;
    let long = "\u{1F600}".repeat(200);
    let mut last = None;
    for i in 0..80 {
        let m = member(&stack, &people, &code, &format!("{long} {i}")).await;
        admit(&stack, &code, &host, &m).await;
        last = Some(m);
    }
    let mut ws = last.unwrap().socket().await;
    let welcome = ws.expect("welcome").await;
    assert_eq!(welcome["participants"].as_array().unwrap().len(), 81);
    let size = welcome.to_string().len();
    assert!(size > 64 * 1024, "the welcome is only {size} bytes");
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_client_that_stops_reading_is_dropped_and_the_others_keep_up(pool: PgPool) {
    use futures::{SinkExt, StreamExt};
    let mut signaling = quick();
    signaling.ws_max_messages_per_sec = 100_000;
    signaling.ws_message_burst = 100_000;
    signaling.ws_outbound_queue = 16;
    // The reader only reads: no idle close however slow the machine.
    signaling.ws_idle_timeout_secs = 600;
    let (stack, _prefix, people) = stack(pool, signaling).await;
    let (code, host, host_ws) = meeting(&stack, &people).await;
    let mut members = Vec::new();
    for name in ["Reader", "Sleeper", "Talker 1", "Talker 2"] {
        let m = member(&stack, &people, &code, name).await;
        admit(&stack, &code, &host, &m).await;
        members.push(m);
    }
    let mut reader = members[0].socket().await;
    reader.expect("welcome").await;
    // The sleeper's socket has a tiny receive buffer and is never read.
    let sleeper = {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let url = reqwest::Url::parse(members[1].url()).unwrap();
        let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
        let tcp = socket.connect(addr.parse().unwrap()).await.unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(members[1].url(), tcp)
            .await
            .unwrap();
        let auth = json!({"type": "auth", "token": members[1].meeting_token()}).to_string();
        ws.send(Message::text(auth)).await.unwrap();
        ws
    };

    // Three talkers change their language over and over, with the longest tags allowed; every
    // change is an event for everyone: about a megabyte, far more than MC's send buffer
    // (WS_SEND_BUFFER_BYTES, 64 KiB) and the sleeper's receive buffer hold. Each talker's own
    // socket is drained, so only the sleeper falls behind.
    let per_talker = 2_000;
    let long = |end: char| format!("aaaaaaaa{}-{end}", "-bbbbbbbb".repeat(6));
    let mut talkers = vec![(host.id, host_ws)];
    for m in &members[2..] {
        let mut ws = m.socket().await;
        ws.expect("welcome").await;
        talkers.push((m.id, ws));
    }
    let mut tasks = Vec::new();
    let mut last = std::collections::HashMap::new();
    for (n, (id, ws)) in talkers.into_iter().enumerate() {
        let (mut sink, mut stream) = ws.stream.split();
        tasks.push(tokio::spawn(async move {
            while stream.next().await.is_some() {}
        }));
        let marker = ["fr", "nl", "it"][n].to_owned();
        last.insert(id.to_string(), marker.clone());
        let (a, b) = (long('c'), long('d'));
        tasks.push(tokio::spawn(async move {
            for i in 0..=per_talker {
                let language = if i == per_talker {
                    marker.as_str()
                } else if i % 2 == 0 {
                    a.as_str()
                } else {
                    b.as_str()
                };
                let text = json!({"type": "set_language", "language": language}).to_string();
                sink.send(Message::text(text)).await.unwrap();
            }
            // Keep the socket open until the test ends.
            std::future::pending::<()>().await;
        }));
    }
    let sleeper_id = members[1].id.to_string();
    let sleeper_dropped =
        |e: &Value| e["user_id"] == sleeper_id.as_str() && e["status"] == "reconnecting";
    let mut received: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut finished = 0;
    let mut dropped = false;
    while finished < last.len() {
        let update = reader.expect("participant.updated").await;
        dropped |= sleeper_dropped(&update);
        let who = update["user_id"].as_str().unwrap_or_default().to_owned();
        if let Some(marker) = last.get(&who)
            && update.get("language").is_some()
        {
            *received.entry(who.clone()).or_default() += 1;
            if update["language"] == marker.as_str() {
                finished += 1;
            }
        }
    }
    for (who, count) in &received {
        assert_eq!(*count, per_talker + 1, "the reader missed changes of {who}");
    }
    // The sleeper was dropped as too slow (1008): its seat is reconnecting.
    if !dropped {
        reader
            .expect_where("participant.updated", sleeper_dropped)
            .await;
    }
    for task in tasks {
        task.abort();
    }
    drop(sleeper);
}

#[sqlx::test(migrations = "../../migrations")]
async fn stopping_the_controller_closes_sockets_with_going_away(pool: PgPool) {
    let (mut stack, _prefix, people) = stack(pool, quick()).await;
    let (_code, _host, mut host_ws) = meeting(&stack, &people).await;
    let started = std::time::Instant::now();
    let mc = stack.mcs[0].take().unwrap();
    let (stopped, (code, reason)) = tokio::join!(mc.stop(), host_ws.expect_close());
    assert_eq!((code, reason.as_str()), (1001, "server stopping"));
    assert!(stopped, "the controller did not stop in time");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_socket_limit_and_the_idle_timeout_hold(pool: PgPool) {
    let signaling = SignalingArgs {
        ws_max_connections: 2,
        ws_idle_timeout_secs: 1,
        ws_auth_timeout_ms: 5_000,
        ..quick()
    };
    let (stack, _prefix, people) = stack(pool, signaling).await;
    let (_code, host, host_ws) = meeting(&stack, &people).await;
    let second = Ws::connect(host.url()).await;
    let third = tokio_tungstenite::connect_async(host.url()).await;
    match third {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
        }
        other => panic!("a third socket was not refused: {other:?}"),
    }
    drop((second, host_ws));
    // An authenticated socket that sends nothing is closed after the idle time (once the
    // server has seen the others go).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut idle = loop {
        match tokio_tungstenite::connect_async(host.url()).await {
            Ok((stream, _)) => {
                break Ws {
                    stream,
                    seen: Vec::new(),
                };
            }
            Err(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the slots were never freed"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    idle.send(json!({"type": "auth", "token": host.meeting_token()}))
        .await;
    idle.expect("welcome").await;

    let started = std::time::Instant::now();
    let (code, reason) = idle.expect_close().await;
    assert_eq!((code, reason.as_str()), (1001, "idle"));
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Joins again over REST until GC hands out another controller's signaling URL.
async fn rejoin_elsewhere(stack: &TestStack, code: &str, who: &Member) -> Member {
    let before = who.url().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, joined) = join(stack, code, &who.token).await;
        if status == StatusCode::OK && joined["signaling_url"].as_str() != Some(before.as_str()) {
            return Member {
                id: who.id,
                token: who.token.clone(),
                joined,
            };
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "GC never moved the meeting: {status} {joined}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn after_a_controller_dies_clients_reconnect_to_the_new_owner_and_go_on(pool: PgPool) {
    let mut stack = spawn_stack(pool, StackOptions::default()).await;
    let people = People::new(&stack).await;
    let prefix = format!("t{}:", Uuid::new_v4().simple());
    stack.start_mc_process(0, &prefix).await;
    let (code, host, mut host_ws) = meeting(&stack, &people).await;
    let (guest, mut guest_ws) = seated(&stack, &people, &code, &host, "Survivor").await;
    stack.start_mc(1, &prefix, McRedis::Single).await;

    stack.mcs[0].take().unwrap().kill();
    for ws in [&mut host_ws, &mut guest_ws] {
        let (code, _) = ws.expect_close().await;
        assert_eq!(code, 1006, "a killed controller says nothing");
    }

    // Each client asks GC again, which moves the meeting to the live controller.
    let host = rejoin_elsewhere(&stack, &code, &host).await;
    let guest = rejoin_elsewhere(&stack, &code, &guest).await;
    assert_eq!(host.url(), guest.url());
    let mut host_ws = host.socket().await;
    let welcome = host_ws.expect_next("welcome").await;
    let seats: Vec<_> = welcome["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["user_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(seats.contains(&guest.id.to_string()) && seats.contains(&host.id.to_string()));
    let mut guest_ws = guest.socket().await;
    guest_ws.expect_next("welcome").await;

    // The room goes on: a change of one reaches the other, through the new owner.
    guest_ws
        .send(json!({"type": "set_language", "language": "nl"}))
        .await;
    loop {
        let update = host_ws.expect("participant.updated").await;
        if update["language"] == "nl" {
            break;
        }
    }
    for _ in 0..20 {
        guest_ws
            .send(json!({"type": "audio_level", "level_dbfs": -10}))
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        host_ws.expect("active_speaker").await["user_id"],
        json!(guest.id.to_string())
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn turning_the_waiting_room_off_over_rest_reaches_the_room_and_the_lobby(pool: PgPool) {
    let (stack, _prefix, people) = stack(pool, quick()).await;
    let (code, host, mut host_ws) = meeting(&stack, &people).await;
    let guest = member(&stack, &people, &code, "Patient").await;
    let mut guest_ws = guest.socket().await;
    guest_ws.expect_next("lobby.waiting").await;

    let (status, body) = call(
        &stack,
        Method::PATCH,
        &format!("/api/v1/meetings/{code}/config"),
        &host.token,
        Some(&json!({"waiting_room_enabled": false, "max_participants": 7})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for ws in [&mut host_ws, &mut guest_ws] {
        let updated = ws.expect("settings.updated").await;
        assert_eq!(updated["settings"]["waiting_room_enabled"], false);
        assert_eq!(updated["max_participants"], 7);
    }
    guest_ws.expect_next("admitted").await;
    let welcome = guest_ws.expect_next("welcome").await;
    assert_eq!(welcome["meeting"]["max_participants"], 7);
    assert_eq!(
        welcome["meeting"]["settings"]["waiting_room_enabled"],
        false
    );
    let joined = host_ws.expect("participant.joined").await;
    assert_eq!(joined["user_id"], guest.id.to_string());
}

//! Rooms under pressure, through GC's REST API with real meeting controllers: capacity under
//! concurrent joins and admits (on one Redis and on a Redis Cluster), and a controller that
//! dies with its rooms.

#[path = "../../../mc-service/tests/room/support/cluster.rs"]
mod cluster;

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use common::error::ErrorCode;
use common::grpc::client::ServiceTokenLayer;
use common::jwks::{JwksVerifier, VerifierConfig};
use common::jwt::{MeetingClaims, MeetingRole};
use common::proto::internal::v1::meeting_controller_service_client::MeetingControllerServiceClient;
use common::proto::internal::v1::{EndMeetingRequest, JoinParticipantRequest, ParticipantRole};
use common::shell::Background;

use crate::helpers::{
    GC_CLIENT, HOST, ISSUER, MC_CLIENTS, McRedis, StackOptions, TestStack, spawn_stack,
    test_lifecycle,
};
use crate::meetings::{People, call, create, end, get, join};

/// A stack with one controller on `redis`, and people the test can make.
async fn stack(pool: PgPool, redis: McRedis) -> (TestStack, People) {
    let mut stack = spawn_stack(pool, StackOptions::default()).await;
    let people = People::new(&stack).await;
    stack.set_org_limits(10, 100).await;
    let prefix = format!("t{}:", Uuid::new_v4().simple());
    stack.start_mc(0, &prefix, redis).await;
    (stack, people)
}

/// GC's service tokens, from AC, as GC gets them.
fn gc_tokens(stack: &TestStack) -> std::sync::Arc<common::service_token::ServiceTokenClient> {
    tokens_of(stack, GC_CLIENT)
}

/// The service tokens AC gives the credential `(client_id, secret)`.
fn tokens_of(
    stack: &TestStack,
    (client_id, secret): (&str, &str),
) -> std::sync::Arc<common::service_token::ServiceTokenClient> {
    std::sync::Arc::new(
        common::service_token::ServiceTokenClient::new(
            &stack.ac.base,
            client_id,
            secret.into(),
            None,
        )
        .unwrap(),
    )
}

/// A client of the controller at `grpc` calling with `tokens` (GC's, as GC does).
fn mc_client(
    tokens: std::sync::Arc<common::service_token::ServiceTokenClient>,
    grpc: &str,
) -> gc_service::clients::mc::McClient {
    let channel = tonic::transport::Endpoint::from_shared(grpc.to_owned())
        .unwrap()
        .connect_lazy();
    MeetingControllerServiceClient::new(tower::Layer::layer(
        &ServiceTokenLayer::new(tokens),
        channel,
    ))
}

async fn open_visits(stack: &TestStack, code: &str) -> i64 {
    sqlx::query_scalar(
        "select count(*) from participants p join meetings m on m.id = p.meeting_id
         where m.meeting_code = $1 and p.left_at is null",
    )
    .bind(code)
    .fetch_one(&stack.pool)
    .await
    .unwrap()
}

/// A meeting of the host with `seats` seats and the waiting room off; the host's token and the
/// code.
async fn open_room(stack: &TestStack, name: &str, seats: u32) -> (String, String) {
    let host = stack.user_token(HOST).await;
    let code = create(
        stack,
        &host,
        &json!({"display_name": name, "max_participants": seats,
        "settings": {"waiting_room_enabled": false}}),
    )
    .await;
    (host, code)
}

async fn forty_joins_into_ten_seats(stack: &TestStack, people: &People) {
    let (host, code) = open_room(stack, "Rush", 10).await;
    let mut rushers = Vec::new();
    for i in 0..40 {
        let name = format!("Rusher {i}");
        let (id, token) = people.user(stack, stack.org_id, &name).await;
        rushers.push((id, name, token));
    }

    let answers = futures::future::join_all(
        rushers
            .iter()
            .map(|(_, _, token)| join(stack, &code, token)),
    )
    .await;

    // The meeting tokens of simultaneous joins are signed together (one batch to AC): each
    // must still name its own caller.
    let verifier = JwksVerifier::new(VerifierConfig::new(&stack.ac.base, ISSUER)).unwrap();
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for ((status, body), (id, name, _)) in answers.iter().zip(&rushers) {
        *by_status.entry(status.as_u16()).or_default() += 1;
        match status.as_u16() {
            200 => {
                assert_eq!(body["status"], "admitted");
                let claims: MeetingClaims = verifier
                    .verify(body["meeting_token"].as_str().unwrap())
                    .await
                    .unwrap();
                assert_eq!((claims.sub, &claims.name), (*id, name));
                assert_eq!(claims.meeting_code, code);
                assert_eq!(claims.role, MeetingRole::Guest);
            }
            409 => assert_eq!(body["error"]["code"], "MEETING_FULL"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(
        (by_status.get(&200), by_status.get(&409)),
        (Some(&10), Some(&30))
    );
    assert_eq!(
        open_visits(stack, &code).await,
        10,
        "PostgreSQL agrees with the room"
    );
    let (_, meeting) = get(stack, &code, &host).await;
    assert_eq!(meeting["participant_count"], 10, "the room holds ten");
    // The forty arrived before anyone was in the room: one of them assigned it and delivered
    // the assignment, the others waited for that and used it.
    assert_eq!(
        stack
            .metric("gc_meeting_assignments_total", &[("delivery", "assigned")])
            .await,
        1.0
    );
    assert_eq!(
        stack
            .metric(
                "gc_meeting_assignments_total",
                &[("delivery", "redelivered")]
            )
            .await,
        0.0
    );
}

async fn twenty_admits_into_five_seats(stack: &TestStack, people: &People) {
    let host = stack.user_token(HOST).await;
    let code = create(
        stack,
        &host,
        &json!({"display_name": "Door", "max_participants": 6}),
    )
    .await;
    join(stack, &code, &host).await;
    let mut waiting = Vec::new();
    for i in 0..20 {
        let (id, token) = people
            .user(stack, stack.org_id, &format!("Waiter {i}"))
            .await;
        let (_, joined) = join(stack, &code, &token).await;
        assert_eq!(joined["status"], "waiting");
        waiting.push(id);
    }

    let paths: Vec<String> = waiting
        .iter()
        .map(|id| format!("/api/v1/meetings/{code}/admit/{id}"))
        .collect();
    let answers = futures::future::join_all(
        paths
            .iter()
            .map(|p| call(stack, Method::POST, p, &host, None)),
    )
    .await;

    let admitted = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let full = answers
        .iter()
        .filter(|(s, b)| *s == StatusCode::CONFLICT && b["error"]["code"] == "MEETING_FULL")
        .count();
    assert_eq!((admitted, full), (5, 15), "{answers:?}");
    assert_eq!(open_visits(stack, &code).await, 6);
    let (_, meeting) = get(stack, &code, &host).await;
    assert_eq!(
        (
            meeting["participant_count"].as_u64(),
            meeting["lobby_count"].as_u64()
        ),
        (Some(6), Some(15))
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn forty_simultaneous_joins_into_ten_seats_seat_exactly_ten(pool: PgPool) {
    let (stack, people) = stack(pool, McRedis::Single).await;
    forty_joins_into_ten_seats(&stack, &people).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn twenty_simultaneous_admits_into_five_free_seats_seat_exactly_five(pool: PgPool) {
    let (stack, people) = stack(pool, McRedis::Single).await;
    twenty_admits_into_five_seats(&stack, &people).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn on_a_redis_cluster_joins_and_admits_keep_the_capacity_too(pool: PgPool) {
    let redis = tokio::task::spawn_blocking(cluster::RedisCluster::start)
        .await
        .unwrap();
    let (stack, people) = stack(pool, McRedis::Cluster(redis.urls())).await;
    forty_joins_into_ten_seats(&stack, &people).await;
    twenty_admits_into_five_seats(&stack, &people).await;
    joins_sent_together(&stack, &people).await;
    drop(stack);
    tokio::task::spawn_blocking(move || drop(redis))
        .await
        .unwrap();
}

/// A request whose client hangs up while the room is changing is carried out in both stores
/// anyway, so Redis and PostgreSQL agree: a join (the seat, and its visit), a host's admit
/// (likewise), a leave (out of the seat, and the visit closed). Cancelled with its client, a
/// join used to leave a seat with no visit, and an admit could do the same or nothing at all,
/// depending on when the client left. The room's Redis (a cluster of the test's own) is paused
/// each time, so that the client surely gives up while the room's script is pending.
#[sqlx::test(migrations = "../../migrations")]
async fn a_client_that_hangs_up_at_the_room_leaves_both_stores_agreeing(pool: PgPool) {
    let cluster = tokio::task::spawn_blocking(cluster::RedisCluster::start)
        .await
        .unwrap();
    let urls = cluster.urls();
    let (stack, people) = stack(pool, McRedis::Cluster(urls.clone())).await;
    let host = stack.user_token(HOST).await;
    let (_, guest) = people.user(&stack, stack.org_id, "Gone").await;
    let (waiting_id, waiting) = people.user(&stack, stack.org_id, "Waiting").await;

    // A join.
    let (_, open) = open_room(&stack, "Open", 10).await;
    assert_eq!(join(&stack, &open, &host).await.0, StatusCode::OK);
    hang_up(&stack, &urls, "POST", &format!("/{open}/join"), &guest).await;
    stores_agree(&stack, &open, &host, 2).await;

    // A host's admit.
    let lobby = create(&stack, &host, &json!({"display_name": "Lobby"})).await;
    assert_eq!(join(&stack, &lobby, &host).await.0, StatusCode::OK);
    let (_, joined) = join(&stack, &lobby, &waiting).await;
    assert_eq!(joined["status"], "waiting");
    hang_up(
        &stack,
        &urls,
        "POST",
        &format!("/{lobby}/admit/{waiting_id}"),
        &host,
    )
    .await;
    stores_agree(&stack, &lobby, &host, 2).await;

    // A leave.
    hang_up(&stack, &urls, "POST", &format!("/{lobby}/leave"), &waiting).await;
    stores_agree(&stack, &lobby, &host, 1).await;

    drop(stack);
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .unwrap();
}

/// Pauses writes on every node of the cluster at `urls` for 1.5 s, then sends `method
/// /api/v1/meetings{path}` with `token` and gives up after 300 ms.
async fn hang_up(stack: &TestStack, urls: &[String], method: &str, path: &str, token: &str) {
    use deadpool_redis::redis;

    for url in urls {
        let mut node = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let _: () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(1500)
            .arg("WRITE")
            .query_async(&mut node)
            .await
            .unwrap();
    }
    let hung_up = stack
        .client
        .request(
            method.parse().unwrap(),
            stack.gc_url(&format!("/api/v1/meetings{path}")),
        )
        .bearer_auth(token)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(hung_up.is_err_and(|e| e.is_timeout()), "{path} gave up");
}

/// Waits (10 s at most) until the room seats `seated` and PostgreSQL has as many open visits.
async fn stores_agree(stack: &TestStack, code: &str, host: &str, seated: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, meeting) = get(stack, code, host).await;
        let in_room = meeting["participant_count"].as_u64();
        let visits = open_visits(stack, code).await;
        if in_room == Some(seated) && visits == i64::try_from(seated).unwrap() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Redis seats {in_room:?}, PostgreSQL has {visits} open visits, {seated} expected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Joins that reach a controller together go in one JoinParticipants call (run by MC on one
/// Redis connection), and each is answered as its own call would have been: a seat,
/// MEETING_FULL, BAD_REQUEST, ROOM_NOT_ASSIGNED. MC refuses more than 256 joins in one call.
/// On a Redis Cluster too, in the test above.
#[sqlx::test(migrations = "../../migrations")]
async fn joins_sent_together_are_answered_each_on_its_own(pool: PgPool) {
    let (stack, people) = stack(pool, McRedis::Single).await;
    joins_sent_together(&stack, &people).await;
}

async fn joins_sent_together(stack: &TestStack, people: &People) {
    use common::error::ApiError;
    use common::proto::internal::v1::{AdmissionStatus, JoinParticipantsRequest};
    use gc_service::clients::mc::MeetingControllers;

    let (host, code) = open_room(stack, "Batch", 2).await;
    // The host's join assigns the room (fencing token 1) and takes one of its two seats.
    let (status, _) = join(stack, &code, &host).await;
    assert_eq!(status, StatusCode::OK);
    let (a, _) = people.user(stack, stack.org_id, "A").await;
    let (b, _) = people.user(stack, stack.org_id, "B").await;
    let request = |user: String, room: &str, token: u64| JoinParticipantRequest {
        meeting_code: room.to_owned(),
        user_id: user,
        display_name: "Someone".into(),
        role: ParticipantRole::Guest as i32,
        fencing_token: token,
        ..Default::default()
    };

    let tokens = gc_tokens(stack);
    let grpc = stack.mcs[0].as_ref().unwrap().grpc.clone();
    let controllers = MeetingControllers::new(
        std::sync::Arc::clone(&tokens),
        Duration::from_secs(5),
        &Background::default(),
    );
    let joins = controllers.controller(&grpc).unwrap().joins();
    let batches_before = stack.metric("gc_mc_join_batch_items_count", &[]).await;
    let joins_before = stack.metric("gc_mc_join_batch_items_sum", &[]).await;
    // All five are queued before the queue's task runs (the test's runtime has one thread).
    let answers = futures::future::join_all([
        joins.join(request(a.to_string(), &code, 1)),
        joins.join(request(b.to_string(), &code, 1)),
        joins.join(request("not-a-uuid".into(), &code, 1)),
        joins.join(request(Uuid::new_v4().to_string(), &code, 7)),
        joins.join(request(Uuid::new_v4().to_string(), "NoSuchRoom00", 1)),
    ])
    .await;
    assert_eq!(
        stack.metric("gc_mc_join_batch_items_count", &[]).await - batches_before,
        1.0,
        "one call"
    );
    assert_eq!(
        stack.metric("gc_mc_join_batch_items_sum", &[]).await - joins_before,
        5.0,
        "of five joins"
    );
    let code_of = |answer: &Result<_, tonic::Status>| match answer {
        Ok(_) => None,
        Err(status) => Some(ApiError::from_status(status).code),
    };
    // A and B race for the one free seat: exactly one gets it.
    let seated: Vec<_> = answers[..2]
        .iter()
        .filter(|answer| answer.is_ok())
        .collect();
    assert_eq!(seated.len(), 1, "{answers:?}");
    let joined = seated[0].as_ref().unwrap();
    assert_eq!(joined.status, AdmissionStatus::Admitted as i32);
    assert_eq!(joined.lobby_count, Some(0), "nobody waits");
    assert_eq!(joined.participant_count, 2);
    assert_eq!(
        answers[..2].iter().filter_map(code_of).collect::<Vec<_>>(),
        [ErrorCode::MeetingFull]
    );
    assert_eq!(code_of(&answers[2]), Some(ErrorCode::BadRequest));
    assert_eq!(code_of(&answers[3]), Some(ErrorCode::RoomNotAssigned));
    assert_eq!(code_of(&answers[4]), Some(ErrorCode::RoomNotAssigned));

    // More than a call may carry is refused whole.
    let mut mc = mc_client(tokens, &grpc);
    let too_many = JoinParticipantsRequest {
        joins: (0..257)
            .map(|_| request(Uuid::new_v4().to_string(), &code, 1))
            .collect(),
    };
    let refused = mc.join_participants(too_many).await.unwrap_err();
    assert_eq!(ApiError::from(refused).code, ErrorCode::BadRequest);
    // Only GC may send joins: a controller's token, or none, is refused before any join runs.
    let one = JoinParticipantsRequest {
        joins: vec![request(Uuid::new_v4().to_string(), &code, 1)],
    };
    let mut as_a_controller = mc_client(tokens_of(stack, MC_CLIENTS[0]), &grpc);
    let refused = as_a_controller
        .join_participants(one.clone())
        .await
        .unwrap_err();
    assert_eq!(ApiError::from(refused).code, ErrorCode::Forbidden);
    let mut anonymous = MeetingControllerServiceClient::new(
        tonic::transport::Endpoint::from_shared(grpc.clone())
            .unwrap()
            .connect_lazy(),
    );
    let refused = anonymous.join_participants(one).await.unwrap_err();
    assert_eq!(ApiError::from(refused).code, ErrorCode::Unauthorized);
    let (_, meeting) = get(stack, &code, &host).await;
    assert_eq!(meeting["participant_count"].as_u64(), Some(2));
}

/// MC's answer to a join counts the lobby as the join left it, whoever joins and whatever
/// became of them: GC shows it to the host without asking GetRoomState.
#[sqlx::test(migrations = "../../migrations")]
async fn a_controllers_join_answer_counts_the_lobby(pool: PgPool) {
    use common::proto::internal::v1::AdmissionStatus;

    let (stack, _people) = stack(pool, McRedis::Single).await;
    let host = stack.user_token(HOST).await;
    let code = create(
        &stack,
        &host,
        &json!({"display_name": "Lobby", "settings": {"waiting_room_enabled": true}}),
    )
    .await;
    // The host's join assigns the room (fencing token 1) and seats the host.
    let (status, _) = join(&stack, &code, &host).await;
    assert_eq!(status, StatusCode::OK);
    let host_id = stack.user_id(HOST).await;
    let mut mc = mc_client(gc_tokens(&stack), &stack.mcs[0].as_ref().unwrap().grpc);
    let request = |user: Uuid, role: ParticipantRole| JoinParticipantRequest {
        meeting_code: code.clone(),
        user_id: user.to_string(),
        display_name: "Someone".into(),
        role: role as i32,
        fencing_token: 1,
        ..Default::default()
    };
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());

    let mut answers = Vec::new();
    for (user, role) in [
        (first, ParticipantRole::Guest),
        (second, ParticipantRole::Guest),
        (first, ParticipantRole::Guest),
        (host_id, ParticipantRole::Host),
    ] {
        let answer = mc.join_participant(request(user, role)).await.unwrap();
        let answer = answer.into_inner();
        answers.push((
            AdmissionStatus::try_from(answer.status).unwrap(),
            answer.participant_count,
            answer.lobby_count,
        ));
    }

    let waiting = AdmissionStatus::Waiting;
    assert_eq!(
        answers,
        [
            (waiting, 1, Some(1)),
            (waiting, 1, Some(2)),
            (waiting, 1, Some(2)),
            (AdmissionStatus::Admitted, 1, Some(2)),
        ]
    );
}

/// The visits of a user in a meeting: `(seat, left_at is null, leave_reason)`, by seat.
async fn visits_of(stack: &TestStack, code: &str, user: Uuid) -> Vec<(i64, bool, Option<String>)> {
    sqlx::query_as(
        "select p.seat, p.left_at is null, p.leave_reason from participants p
         join meetings m on m.id = p.meeting_id
         where m.meeting_code = $1 and p.user_id = $2 order by p.seat",
    )
    .bind(code)
    .bind(user)
    .fetch_all(&stack.pool)
    .await
    .unwrap()
}

/// The host admits `user`: 200.
async fn admitted_by_host(stack: &TestStack, code: &str, user: Uuid, host: &str) {
    let path = format!("/api/v1/meetings/{code}/admit/{user}");
    let (status, body) = call(stack, Method::POST, &path, host, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Redis loses a live room (a restart without persistence). Whoever the host had admitted gets
/// their seat back when their page joins again, rather than waiting in the lobby while
/// PostgreSQL still holds their visit open; someone who only waited waits again. When the room
/// has filled meanwhile, the lost seat's visit is closed (`seat_lost`) and its person waits:
/// every seat has its open visit and every open visit its seat, whatever the order of returns.
#[sqlx::test(migrations = "../../migrations")]
async fn a_seat_redis_lost_is_given_back_at_the_next_join_or_its_visit_closed(pool: PgPool) {
    let mut stack = spawn_stack(pool, StackOptions::default()).await;
    let people = People::new(&stack).await;
    let prefix = format!("t{}:", Uuid::new_v4().simple());
    stack.start_mc(0, &prefix, McRedis::Single).await;
    let host = stack.user_token(HOST).await;
    let code = create(
        &stack,
        &host,
        &json!({"display_name": "Amnesia", "max_participants": 3}),
    )
    .await;
    join(&stack, &code, &host).await;
    let mut admitted = Vec::new();
    for name in ["Ada", "Bea"] {
        let (id, token) = people.user(&stack, stack.org_id, name).await;
        let (_, joined) = join(&stack, &code, &token).await;
        assert_eq!(joined["status"], "waiting");
        admitted_by_host(&stack, &code, id, &host).await;
        admitted.push((id, token));
    }
    let (waiter_id, waiter) = people.user(&stack, stack.org_id, "Cy").await;
    join(&stack, &code, &waiter).await;
    stores_agree(&stack, &code, &host, 3).await;
    let (ada, bea) = (&admitted[0], &admitted[1]);
    let ada_seat = visits_of(&stack, &code, ada.0).await[0].0;

    crate::meetings::lose_rooms(&prefix).await;

    // Ada comes back first: seated again at once, in a new seat, the old visit superseded.
    let (status, joined) = join(&stack, &code, &ada.1).await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(joined["status"], "admitted", "{joined}");
    let ada_visits = visits_of(&stack, &code, ada.0).await;
    assert_eq!(ada_visits.len(), 2, "{ada_visits:?}");
    assert_eq!(
        (ada_visits[0].0, ada_visits[0].1, ada_visits[0].2.as_deref()),
        (ada_seat, false, Some("superseded"))
    );
    assert!(
        ada_visits[1].0 > ada_seat && ada_visits[1].1,
        "{ada_visits:?}"
    );
    // The waiter waits again, and gets no seat for having waited.
    let (_, joined) = join(&stack, &code, &waiter).await;
    assert_eq!(joined["status"], "waiting", "{joined}");
    assert!(visits_of(&stack, &code, waiter_id).await.is_empty());
    // The host comes back, and admits the waiter into the last seat: the room is full.
    let (_, joined) = join(&stack, &code, &host).await;
    assert_eq!(joined["status"], "admitted", "{joined}");
    admitted_by_host(&stack, &code, waiter_id, &host).await;
    // Bea comes back to a full room: she waits, and her lost seat's visit is closed.
    let (status, joined) = join(&stack, &code, &bea.1).await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(joined["status"], "waiting", "{joined}");
    let bea_visits = visits_of(&stack, &code, bea.0).await;
    assert_eq!(bea_visits.len(), 1, "{bea_visits:?}");
    assert_eq!(
        (bea_visits[0].1, bea_visits[0].2.as_deref()),
        (false, Some("seat_lost"))
    );
    stores_agree(&stack, &code, &host, 3).await;
    let (_, meeting) = get(&stack, &code, &host).await;
    assert_eq!(meeting["lobby_count"], 1, "{meeting}");
    let restored = stack
        .metric("gc_lost_seats_total", &[("outcome", "restored")])
        .await;
    let closed = stack
        .metric("gc_lost_seats_total", &[("outcome", "closed")])
        .await;
    assert_eq!((restored, closed), (1.0, 1.0));
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_meeting_moves_with_its_people_when_its_controller_dies(pool: PgPool) {
    let mut stack = spawn_stack(pool, StackOptions::default()).await;
    let people = People::new(&stack).await;
    let prefix = format!("t{}:", Uuid::new_v4().simple());
    stack.start_mc_process(0, &prefix).await;
    let host = stack.user_token(HOST).await;
    let code = create(&stack, &host, &json!({"display_name": "Failover"})).await;
    let (_, joined) = join(&stack, &code, &host).await;
    let first_url = joined["signaling_url"].as_str().unwrap().to_owned();
    let (waiting_id, waiting) = people.user(&stack, stack.org_id, "Waiting").await;
    join(&stack, &code, &waiting).await;
    // The second controller registers only now, so the meeting was surely placed on the first.
    stack.start_mc(1, &prefix, McRedis::Single).await;

    // The first controller's process is SIGKILLed; once its heartbeat is late, the next join
    // moves the meeting.
    stack.mcs[0].take().unwrap().kill();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let moved = loop {
        let (_, newcomer) = people.user(&stack, stack.org_id, "Newcomer").await;
        let (status, body) = join(&stack, &code, &newcomer).await;
        if status == StatusCode::OK {
            break body;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the meeting never moved"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    assert_eq!(moved["status"], "waiting");
    assert_ne!(
        moved["signaling_url"].as_str().unwrap(),
        first_url,
        "clients follow the new owner"
    );
    let (owner, token): (String, i64) = sqlx::query_as(
        "select controller_id, fencing_token from meeting_assignments a
         join meetings m on m.id = a.meeting_id where m.meeting_code = $1",
    )
    .bind(&code)
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!((owner.as_str(), token), ("test-mc-2", 2));
    // The room came along: the host is still seated and the first waiter still waits.
    let (_, meeting) = get(&stack, &code, &host).await;
    assert_eq!(
        (
            meeting["participant_count"].as_u64(),
            meeting["lobby_count"].as_u64()
        ),
        (Some(1), Some(2))
    );
    let (status, _) = call(
        &stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/admit/{waiting_id}"),
        &host,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // The first controller's process starts again; with its old token it can change nothing.
    stack.start_mc_process(0, &prefix).await;
    let tokens = gc_tokens(&stack);
    let mut old_owner = mc_client(tokens, &stack.mcs[0].as_ref().unwrap().grpc);
    let refused = old_owner
        .end_meeting(EndMeetingRequest {
            meeting_code: code.clone(),
            reason: "stale".into(),
            fencing_token: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(
        common::error::ApiError::from(refused).code,
        ErrorCode::RoomNotAssigned
    );
    let (_, newcomer) = people.user(&stack, stack.org_id, "Late").await;
    let ghost = JoinParticipantRequest {
        meeting_code: code.clone(),
        user_id: Uuid::new_v4().to_string(),
        display_name: "Ghost".into(),
        role: ParticipantRole::Guest as i32,
        fencing_token: 1,
        ..Default::default()
    };
    let refused = old_owner.join_participant(ghost.clone()).await.unwrap_err();
    assert_eq!(
        common::error::ApiError::from(refused).code,
        ErrorCode::RoomNotAssigned
    );
    let batch = old_owner
        .join_participants(common::proto::internal::v1::JoinParticipantsRequest {
            joins: vec![ghost],
        })
        .await
        .unwrap()
        .into_inner();
    match &batch.outcomes[..] {
        [
            common::proto::internal::v1::JoinOutcome {
                outcome: Some(common::proto::internal::v1::join_outcome::Outcome::Refused(refusal)),
            },
        ] => assert_eq!(refusal.error_code, "ROOM_NOT_ASSIGNED"),
        other => panic!("the old owner seated someone: {other:?}"),
    }
    let (_, meeting) = get(&stack, &code, &host).await;
    assert_eq!(
        meeting["status"], "active",
        "the room was not ended by the old owner"
    );
    assert_eq!(
        (
            meeting["participant_count"].as_u64(),
            meeting["lobby_count"].as_u64()
        ),
        (Some(2), Some(1))
    );
    let (status, _) = join(&stack, &code, &newcomer).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the new owner still serves the room"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn new_meetings_go_to_the_least_loaded_healthy_controller(pool: PgPool) {
    let mut stack = spawn_stack(pool, StackOptions::default()).await;
    let prefix = format!("t{}:", Uuid::new_v4().simple());
    stack.start_mc(0, &prefix, McRedis::Single).await;
    stack.start_mc(1, &prefix, McRedis::Single).await;
    let host = stack.user_token(HOST).await;

    for i in 0..4 {
        let code = create(
            &stack,
            &host,
            &json!({"display_name": format!("Spread {i}")}),
        )
        .await;
        let (status, body) = join(&stack, &code, &host).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    let load: Vec<(String, i64)> = sqlx::query_as(
        "select controller_id, count(*) from meeting_assignments group by 1 order by 1",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    assert_eq!(
        load,
        [("test-mc-1".to_owned(), 2), ("test-mc-2".to_owned(), 2)]
    );
}

/// Two first joins at once for two controllers with one place each: whichever controller
/// both draws pick, the join that loses its last place draws again (placement's
/// `SETTLE_ATTEMPTS`) and gets the other one; neither is refused while a place is free. Each
/// trial ends both meetings, which gives the places back.
#[sqlx::test(migrations = "../../migrations")]
async fn first_joins_racing_for_the_last_places_each_get_one(pool: PgPool) {
    let mut stack = spawn_stack(pool, StackOptions::default()).await;
    let prefix = format!("t{}:", Uuid::new_v4().simple());
    stack.start_mc(0, &prefix, McRedis::Single).await;
    stack.start_mc(1, &prefix, McRedis::Single).await;
    // Registration set the capacity; heartbeats leave it.
    sqlx::query("update meeting_controllers set capacity = 1")
        .execute(&stack.pool)
        .await
        .unwrap();
    let host = stack.user_token(HOST).await;

    for trial in 0..30 {
        let first = create(&stack, &host, &json!({"display_name": "Race A"})).await;
        let second = create(&stack, &host, &json!({"display_name": "Race B"})).await;
        let (a, b) = tokio::join!(join(&stack, &first, &host), join(&stack, &second, &host));
        assert_eq!(a.0, StatusCode::OK, "trial {trial}: {}", a.1);
        assert_eq!(b.0, StatusCode::OK, "trial {trial}: {}", b.1);
        let owners: Vec<String> =
            sqlx::query_scalar("select controller_id from meeting_assignments order by 1")
                .fetch_all(&stack.pool)
                .await
                .unwrap();
        assert_eq!(owners, ["test-mc-1", "test-mc-2"], "trial {trial}");
        for code in [&first, &second] {
            let (status, body) = end(&stack, code, &host).await;
            assert_eq!(status, StatusCode::OK, "trial {trial}: {body}");
        }
    }
}

/// A controller that died while GC still counts it healthy (its heartbeat not late yet): the
/// first joins each find it unreachable; from the third in a row, its breaker is open and joins
/// are refused at once with 503 and `Retry-After`, without calling it.
#[sqlx::test(migrations = "../../migrations")]
async fn joins_to_a_dead_controller_fail_at_once_once_its_breaker_opens(pool: PgPool) {
    let lifecycle = gc_service::config::LifecycleSettings {
        // The dead controller stays the owner for the whole test.
        heartbeat_timeout_secs: 60,
        ..test_lifecycle()
    };
    let mut stack = spawn_stack(pool, StackOptions::default().with_lifecycle(lifecycle)).await;
    let people = People::new(&stack).await;
    let prefix = format!("t{}:", Uuid::new_v4().simple());
    stack.start_mc(0, &prefix, McRedis::Single).await;
    let host = stack.user_token(HOST).await;
    let code = create(&stack, &host, &json!({"display_name": "Breaker"})).await;
    assert_eq!(join(&stack, &code, &host).await.0, StatusCode::OK);
    stack.mcs[0].take().unwrap().kill();
    let opened_before = stack.metric("gc_mc_breaker_opened_total", &[]).await;

    let mut answers = Vec::new();
    for i in 0..5 {
        let (_, token) = people
            .user(&stack, stack.org_id, &format!("Late {i}"))
            .await;
        let response = stack
            .client
            .post(stack.gc_url(&format!("/api/v1/meetings/{code}/join")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        let body: serde_json::Value = response.json().await.unwrap();
        answers.push((status, retry_after, body["error"]["message"].clone()));
    }
    for (i, (status, retry_after, message)) in answers.iter().enumerate() {
        assert_eq!(
            *status,
            StatusCode::SERVICE_UNAVAILABLE,
            "join {i}: {message}"
        );
        let refused_at_once = message == "the meeting's controller is not answering, retry later";
        assert_eq!(refused_at_once, i >= 3, "join {i}: {answers:?}");
        if refused_at_once {
            assert!(
                matches!(retry_after, Some(1..=5)),
                "join {i}: {retry_after:?}"
            );
        }
    }
    assert_eq!(
        stack.metric("gc_mc_breaker_opened_total", &[]).await - opened_before,
        1.0
    );
}

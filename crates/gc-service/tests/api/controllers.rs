//! GC's gRPC API as meeting controllers use it (and as an impostor would): registration and
//! heartbeats only as oneself, reports only on one's own rooms, and the visit GC never saw
//! recorded from a report.

use std::sync::Arc;

use common::error::{ApiError, ErrorCode};
use common::grpc::client::{ServiceTokenLayer, WithServiceToken};
use common::proto::internal::v1::global_controller_service_client::GlobalControllerServiceClient;
use common::proto::internal::v1::{
    HeartbeatRequest, MeetingEmptyRequest, ParticipantLeftRequest, ParticipantRole,
    RegisterMeetingControllerRequest,
};
use common::service_token::ServiceTokenClient;
use reqwest::{Method, StatusCode};
use sqlx::PgPool;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

use crate::helpers::{GC_CLIENT, HOST, MC_CLIENTS, MEMBER, TestStack, meeting_body};
use crate::meetings::{call, create, join, stack_with_mc};

pub(crate) type GcClient = GlobalControllerServiceClient<WithServiceToken<Channel>>;

/// A client of GC's gRPC API holding the credential `(id, secret)`.
pub(crate) fn client(stack: &TestStack, credential: (&str, &str)) -> GcClient {
    let tokens = Arc::new(
        ServiceTokenClient::new(&stack.ac.base, credential.0, credential.1.into(), None).unwrap(),
    );
    let channel = Endpoint::from_shared(stack.gc_grpc.clone())
        .unwrap()
        .connect_lazy();
    GlobalControllerServiceClient::new(tower::Layer::layer(
        &ServiceTokenLayer::new(tokens),
        channel,
    ))
}

fn code_of(status: tonic::Status) -> ErrorCode {
    ApiError::from(status).code
}

fn registration(id: &str) -> RegisterMeetingControllerRequest {
    RegisterMeetingControllerRequest {
        controller_id: id.into(),
        websocket_url: "ws://127.0.0.1:9".into(),
        grpc_address: "http://127.0.0.1:9".into(),
        capacity: 10,
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_controller_may_register_and_heartbeat_only_as_itself(pool: PgPool) {
    let (stack, _prefix, _people) = stack_with_mc(pool).await;
    let mut second = client(&stack, MC_CLIENTS[1]);

    let impostor = second
        .register_meeting_controller(registration(MC_CLIENTS[0].0))
        .await
        .unwrap_err();
    assert_eq!(code_of(impostor), ErrorCode::Forbidden);
    let impostor = second
        .heartbeat(HeartbeatRequest {
            controller_id: MC_CLIENTS[0].0.into(),
            active_meetings: 0,
            connected_participants: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(impostor), ErrorCode::Forbidden);

    // Heartbeating before registering: GC does not know it, so it must register.
    let unknown = second
        .heartbeat(HeartbeatRequest {
            controller_id: MC_CLIENTS[1].0.into(),
            active_meetings: 0,
            connected_participants: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(unknown), ErrorCode::NotFound);
    let response = second
        .register_meeting_controller(registration(MC_CLIENTS[1].0))
        .await
        .unwrap();
    assert_eq!(response.into_inner().heartbeat_interval_seconds, 1);

    // GC's own credential is no meeting controller.
    let gc = client(&stack, GC_CLIENT)
        .register_meeting_controller(registration(GC_CLIENT.0))
        .await
        .unwrap_err();
    assert_eq!(code_of(gc), ErrorCode::Forbidden);
}

#[sqlx::test(migrations = "../../migrations")]
async fn registrations_with_odd_addresses_are_refused(pool: PgPool) {
    let (stack, _prefix, _people) = stack_with_mc(pool).await;
    let mut second = client(&stack, MC_CLIENTS[1]);
    let long = format!("ws://{}.example", "a".repeat(600));
    for (ws, grpc) in [
        ("http://not-a-websocket", "http://127.0.0.1:9"),
        ("ws://127.0.0.1:9", "ftp://127.0.0.1:9"),
        ("ws://127.0.0.1:9?x=1", "http://127.0.0.1:9"),
        ("not a url", "http://127.0.0.1:9"),
        (long.as_str(), "http://127.0.0.1:9"),
        ("ws://127.0.0.1:9", "http://127.0.0.1:9\u{0}"),
    ] {
        let mut request = registration(MC_CLIENTS[1].0);
        request.websocket_url = ws.into();
        request.grpc_address = grpc.into();
        let refused = second
            .register_meeting_controller(request)
            .await
            .unwrap_err();
        assert_eq!(code_of(refused), ErrorCode::BadRequest, "{ws} {grpc:?}");
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn reports_close_visits_start_the_empty_clock_and_come_only_from_the_owner(pool: PgPool) {
    let (stack, _prefix, _people) = stack_with_mc(pool).await;
    let host = stack.user_token(HOST).await;
    let code = create(&stack, &host, &meeting_body("Reported")).await;
    join(&stack, &code, &host).await;
    let host_id = stack.user_id(HOST).await;
    let member_id = stack.user_id(MEMBER).await;
    let mut owner = client(&stack, MC_CLIENTS[0]);
    let host_seat: i64 = sqlx::query_scalar("select seat from participants where user_id = $1")
        .bind(host_id)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    let host_seat = u64::try_from(host_seat).unwrap();
    // A seat the room gave the member after the host's, which GC never heard of.
    let member_seat = host_seat + 1;
    let left = |user: Uuid, controller: &str| ParticipantLeftRequest {
        controller_id: controller.into(),
        meeting_code: code.clone(),
        user_id: user.to_string(),
        reason: "connection_lost".into(),
        left_at: None,
        joined_at: None,
        role: ParticipantRole::Guest as i32,
        seat: if user == host_id {
            host_seat
        } else {
            member_seat
        },
        last_seat: member_seat,
        host_change: None,
    };

    // Another controller cannot report on this room, nor on a room that does not exist.
    let mut other = client(&stack, MC_CLIENTS[1]);
    let refused = other
        .participant_left(left(host_id, MC_CLIENTS[1].0))
        .await
        .unwrap_err();
    assert_eq!(code_of(refused), ErrorCode::RoomNotAssigned);
    let mut unknown = left(host_id, MC_CLIENTS[0].0);
    unknown.meeting_code = "AAAAAAAAAAAA".into();
    assert_eq!(
        code_of(owner.participant_left(unknown).await.unwrap_err()),
        ErrorCode::RoomNotAssigned
    );

    // The owner reports the host gone: the visit closes with the reason.
    owner
        .participant_left(left(host_id, MC_CLIENTS[0].0))
        .await
        .unwrap();
    let reason: Option<String> =
        sqlx::query_scalar("select leave_reason from participants where user_id = $1")
            .bind(host_id)
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(reason.as_deref(), Some("connection_lost"));

    // A visit GC never saw (the member was seated, then GC crashed) is recorded whole.
    owner
        .participant_left(left(member_id, MC_CLIENTS[0].0))
        .await
        .unwrap();
    let (role, closed): (String, bool) =
        sqlx::query_as("select role, left_at is not null from participants where user_id = $1")
            .bind(member_id)
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!((role.as_str(), closed), ("guest", true));

    // A reason that is not a plain word is stored as `other`.
    let mut odd = left(host_id, MC_CLIENTS[0].0);
    odd.reason = "<script>\u{0}".into();
    owner.participant_left(odd).await.unwrap();

    owner
        .meeting_empty(MeetingEmptyRequest {
            controller_id: MC_CLIENTS[0].0.into(),
            meeting_code: code.clone(),
            empty_since: None,
            last_seat: member_seat,
        })
        .await
        .unwrap();
    let empty: bool =
        sqlx::query_scalar("select empty_since is not null from meetings where meeting_code = $1")
            .bind(&code)
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert!(empty);
    let reasons: Vec<Option<String>> =
        sqlx::query_scalar("select leave_reason from participants order by joined_at")
            .fetch_all(&stack.pool)
            .await
            .unwrap();
    assert!(
        reasons
            .iter()
            .all(|r| matches!(r.as_deref(), Some("connection_lost" | "other"))),
        "{reasons:?}"
    );
    let (status, _) = call(
        &stack,
        Method::GET,
        &format!("/api/v1/meetings/{code}"),
        &host,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

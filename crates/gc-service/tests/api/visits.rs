//! The room's decisions recorded in any order: a model of one room, and every order in which
//! GC's writes of its decisions may reach PostgreSQL.
//!
//! GC records what the room decided after the room decided it, and two requests that race
//! reach the room in one order and PostgreSQL possibly in another (issue 22: a join racing a
//! leave left a visit open with nobody seated, and the meeting never ended). Here a scenario is
//! played on a model of the room, which gives each decision as GC records it (an admission with
//! its seat, a leave with its seat and the room's last seat, an "empty" report); then every
//! permutation of those records is applied to a fresh meeting, and PostgreSQL must end up as
//! the room did: a visit open for exactly the seats held, one row per seat given, and the
//! empty-meeting clock running exactly when nobody is seated.

use std::collections::{BTreeMap, BTreeSet};

use common::jwt::MeetingRole;
use gc_service::db::participants::{self, EndedSeat, Leave, Seated};
use gc_service::domain::events::Actor;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{HOST, MEMBER, StackOptions, TestStack, spawn_stack};
use crate::storage::insert_meeting;

/// What happens in the room, in its order.
#[derive(Clone, Copy, Debug)]
enum Event {
    /// The user (0: host, 1: member) is seated.
    Seat(usize),
    /// The user leaves (seated or not).
    Leave(usize),
    /// The controller reports the room empty (it does after a leave that emptied it).
    EmptyReport,
}

/// One write GC makes of a decision of the room.
#[derive(Clone, Copy, Debug)]
enum Record {
    Admit {
        user: usize,
        seat: i64,
    },
    Leave {
        user: usize,
        seat: Option<i64>,
        last_seat: i64,
        room_empty: bool,
    },
    Empty {
        last_seat: i64,
    },
}

/// The room at the end: the seat each seated user holds, and the records of the decisions.
struct Played {
    records: Vec<Record>,
    seated: BTreeMap<usize, i64>,
    seats_given: i64,
}

fn play(events: &[Event]) -> Played {
    let mut seated = BTreeMap::new();
    let mut last_seat = 0;
    let mut records = Vec::new();
    for event in events {
        match *event {
            Event::Seat(user) => {
                assert!(!seated.contains_key(&user), "a scenario seats no one twice");
                last_seat += 1;
                seated.insert(user, last_seat);
                records.push(Record::Admit {
                    user,
                    seat: last_seat,
                });
            }
            Event::Leave(user) => {
                let seat = seated.remove(&user);
                records.push(Record::Leave {
                    user,
                    seat,
                    last_seat,
                    room_empty: seated.is_empty(),
                });
            }
            Event::EmptyReport => {
                assert!(seated.is_empty(), "only an empty room is reported empty");
                records.push(Record::Empty { last_seat });
            }
        }
    }
    Played {
        records,
        seated,
        seats_given: last_seat,
    }
}

/// Every order of `items`.
fn permutations<T: Copy>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut all = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first);
            all.push(tail);
        }
    }
    all
}

async fn apply(stack: &TestStack, meeting_id: Uuid, users: &[Uuid; 2], record: Record) {
    let role = |user: usize| {
        if user == 0 {
            MeetingRole::Host
        } else {
            MeetingRole::Guest
        }
    };
    match record {
        Record::Admit { user, seat } => {
            let seated = Seated {
                user_id: users[user],
                role: role(user),
                seat,
            };
            participants::admit(
                &stack.pool,
                meeting_id,
                stack.org_id,
                &[seated],
                Actor::System,
            )
            .await
            .unwrap();
        }
        Record::Leave {
            user,
            seat,
            last_seat,
            room_empty,
        } => {
            let leave = Leave {
                meeting_id,
                org_id: stack.org_id,
                user_id: users[user],
                reason: "left",
                left_at: None,
                seat: seat.map(|seat| EndedSeat {
                    seat,
                    role: role(user),
                    joined_at: None,
                }),
                last_seat,
                room_empty,
            };
            participants::record_leave(&stack.pool, &leave, Actor::System)
                .await
                .unwrap();
        }
        Record::Empty { last_seat } => {
            let mut tx = stack.pool.begin().await.unwrap();
            gc_service::db::meetings::mark_empty(&mut tx, meeting_id, last_seat, None)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    }
}

/// The meeting as PostgreSQL holds it: the open visits (user, seat), the rows per seat, and
/// whether the empty clock runs.
async fn stored(pool: &PgPool, meeting_id: Uuid) -> (BTreeSet<(Uuid, i64)>, i64, i64, bool) {
    let open: Vec<(Uuid, i64)> = sqlx::query_as(
        "select user_id, seat from participants where meeting_id = $1 and left_at is null",
    )
    .bind(meeting_id)
    .fetch_all(pool)
    .await
    .unwrap();
    let (rows, seats): (i64, i64) = sqlx::query_as(
        "select count(*), count(distinct seat) from participants where meeting_id = $1",
    )
    .bind(meeting_id)
    .fetch_one(pool)
    .await
    .unwrap();
    let clock: bool =
        sqlx::query_scalar("select empty_since is not null from meetings where id = $1")
            .bind(meeting_id)
            .fetch_one(pool)
            .await
            .unwrap();
    (open.into_iter().collect(), rows, seats, clock)
}

#[sqlx::test(migrations = "../../migrations")]
async fn every_order_of_a_rooms_records_leaves_postgres_as_the_room_ends(pool: PgPool) {
    use Event::{EmptyReport, Leave as Out, Seat};
    let stack = spawn_stack(pool, StackOptions::default()).await;
    stack.set_org_limits(1000, 100).await;
    let users = [stack.user_id(HOST).await, stack.user_id(MEMBER).await];
    let scenarios: [&[Event]; 7] = [
        // A join racing a leave of the same user (the ghost of issue 22).
        &[Seat(0), Out(0), Seat(0)],
        &[Seat(0), Out(0), Seat(0), Out(0)],
        // A leave of someone no longer there, while others come and go.
        &[Seat(0), Out(0), Out(0), Seat(0)],
        &[Seat(0), Seat(1), Out(0), Out(1), Seat(0)],
        &[Seat(0), Seat(1), Out(1), Seat(1), Out(0)],
        // A controller's leave and its "empty" report, then someone else.
        &[Seat(0), Out(0), EmptyReport, Seat(1)],
        &[Seat(0), Seat(1), Out(0), Out(1), EmptyReport],
    ];
    let mut meetings = 0;
    for (s, events) in scenarios.iter().enumerate() {
        let played = play(events);
        let want_open: BTreeSet<(Uuid, i64)> = played
            .seated
            .iter()
            .map(|(user, seat)| (users[*user], *seat))
            .collect();
        let want_clock = played.seated.is_empty();
        for order in permutations(&played.records) {
            meetings += 1;
            let meeting_id =
                insert_meeting(&stack, users[0], &format!("VISITS{meetings:06}")).await;
            for record in &order {
                apply(&stack, meeting_id, &users, *record).await;
            }
            let (open, rows, seats, clock) = stored(&stack.pool, meeting_id).await;
            let case = format!("scenario {s} {events:?}, records in the order {order:?}");
            assert_eq!(open, want_open, "open visits: {case}");
            assert_eq!(
                (rows, seats),
                (played.seats_given, played.seats_given),
                "one row per seat given: {case}"
            );
            assert_eq!(clock, want_clock, "the empty clock: {case}");
        }
    }
    assert_eq!(meetings, 6 + 24 + 24 + 120 + 120 + 24 + 120);
}

//! How GC chooses a meeting's controller (`db::controllers::SETTLE_SQL`), straight against
//! PostgreSQL: the power of two choices over `controller_rooms`, the counters the triggers keep,
//! and the capacity check under the counter's lock. Statements raced here run on their own
//! connections, as two GC replicas' would; after each race every counter is compared with the
//! assignments it counts.

use std::collections::BTreeMap;

use futures::future::join_all;
use gc_service::db::controllers::{Settled, settle};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

/// GC's MC_HEARTBEAT_TIMEOUT_SECS default.
const TIMEOUT_SECS: u32 = 15;

/// A pool with a connection for every statement a race runs at once.
async fn racing_pool(pool: &PgPool) -> PgPool {
    PgPoolOptions::new()
        .max_connections(32)
        .connect_with(pool.connect_options().as_ref().clone())
        .await
        .unwrap()
}

/// An org and its user to own meetings; the meetings' own triggers (the org's live-meeting
/// slots, the default creator) are off in this test's database, since these rows stand only
/// for what assignment reads.
async fn seed(pool: &PgPool) -> (Uuid, Uuid) {
    let org: Uuid = sqlx::query_scalar(
        "insert into organizations (slug, name, max_concurrent_meetings)
         values ('assignment', 'Assignment', 1000000) returning id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let user: Uuid = sqlx::query_scalar(
        "insert into users (org_id, email, password_hash, display_name)
         values ($1, 'host@assignment.test', 'unused', 'Host') returning id",
    )
    .bind(org)
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::raw_sql("alter table meetings disable trigger user")
        .execute(pool)
        .await
        .unwrap();
    (org, user)
}

/// Registers `ids` with a fresh heartbeat, or a stale one (a silent controller).
async fn controllers(pool: &PgPool, ids: &[String], capacity: i32, healthy: bool) {
    sqlx::query(
        "insert into meeting_controllers (id, ws_url, grpc_addr, capacity, last_heartbeat_at)
         select id, 'ws://' || id || ':8081', 'http://' || id || ':50052', $2,
                case when $3 then now() + interval '1 hour' else now() - interval '1 hour' end
         from unnest($1::text[]) id",
    )
    .bind(ids)
    .bind(capacity)
    .bind(healthy)
    .execute(pool)
    .await
    .unwrap();
}

fn names(prefix: &str, count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("{prefix}-{i:03}")).collect()
}

/// `count` meetings nobody has joined yet.
async fn meetings(pool: &PgPool, (org, user): (Uuid, Uuid), count: usize) -> Vec<Uuid> {
    sqlx::query_scalar(
        "insert into meetings (org_id, host_id, creator_id, meeting_code, display_name,
                               max_participants, join_token_secret)
         select $1, $2, $2, substr(md5(random()::text), 1, 12), 'Assignment', 10,
                decode(md5(random()::text) || md5(random()::text), 'hex')
         from generate_series(1, $3)
         returning id",
    )
    .bind(org)
    .bind(user)
    .bind(count as i32)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Rooms per controller as `meeting_assignments` holds them (every registered controller,
/// none with 0).
async fn rooms(pool: &PgPool) -> BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "select c.id, count(a.meeting_id) from meeting_controllers c
         left join meeting_assignments a on a.controller_id = c.id group by c.id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// Every registered controller has a counter, and each counter holds what it counts.
async fn assert_counters_exact(pool: &PgPool, context: &str) {
    let counted = rooms(pool).await;
    let kept: BTreeMap<String, i64> =
        sqlx::query_as::<_, (String, i32)>("select controller_id, rooms from controller_rooms")
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(id, n)| (id, i64::from(n)))
            .collect();
    assert_eq!(kept, counted, "{context}: the counters drifted");
}

/// Two replicas settling the same meetings, moves off a silent controller, ends and deleted
/// meetings, all at once, 200 times, with controllers registering and deleted between: the
/// counters never drift, and every meeting settled has one healthy owner both settles agree on.
#[sqlx::test(migrations = "../../migrations")]
async fn room_counters_stay_exact_through_racing_assigns_moves_ends_and_deletions(pool: PgPool) {
    let owner = seed(&pool).await;
    let racing = racing_pool(&pool).await;
    controllers(&pool, &names("mc", 6), 100_000, true).await;
    controllers(&pool, &["silent".to_owned()], 100_000, false).await;
    assert_counters_exact(&pool, "after registration").await;

    let mut previous: Vec<Uuid> = Vec::new();
    for trial in 0..200 {
        let fresh = meetings(&pool, owner, 4).await;
        // Rooms the silent controller holds: their next settle moves them.
        let stranded = meetings(&pool, owner, 2).await;
        sqlx::query(
            "insert into meeting_assignments (meeting_id, controller_id)
             select unnest($1::uuid[]), 'silent'",
        )
        .bind(&stranded)
        .execute(&pool)
        .await
        .unwrap();

        // Each end and each deletion is a statement of its own, as GC's are (one meeting's
        // end; retention deletes ended meetings, which hold no assignment).
        let mut settles = Vec::new();
        for &meeting in fresh.iter().chain(&stranded) {
            for _replica in 0..2 {
                settles.push(settle(&racing, meeting, TIMEOUT_SECS));
            }
        }
        let (ends, deletions) = previous.split_at(previous.len().min(3));
        let ends = join_all(ends.iter().map(|&meeting| {
            sqlx::query("delete from meeting_assignments where meeting_id = $1")
                .bind(meeting)
                .execute(&racing)
        }));
        let deletions = join_all(deletions.iter().map(|&meeting| {
            sqlx::query("delete from meetings where id = $1")
                .bind(meeting)
                .execute(&racing)
        }));
        let (settled, ends, deletions) = tokio::join!(join_all(settles), ends, deletions);
        for done in ends.into_iter().chain(deletions) {
            done.unwrap();
        }

        for (pair, &meeting) in settled.chunks(2).zip(fresh.iter().chain(&stranded)) {
            let stored: Option<(String, i64)> = sqlx::query_as(
                "select controller_id, fencing_token from meeting_assignments
                 where meeting_id = $1",
            )
            .bind(meeting)
            .fetch_optional(&pool)
            .await
            .unwrap();
            let expected_token = if stranded.contains(&meeting) { 2 } else { 1 };
            let stored = stored.unwrap_or_else(|| panic!("trial {trial}: nobody owns it"));
            assert_eq!(stored.1, expected_token, "trial {trial}: {stored:?}");
            assert_ne!(stored.0, "silent", "trial {trial}");
            // The settle that wrote the owner answers it; the other answers the same owner, or
            // no row when it lost the race (GC then reads the assignment: the stored one).
            let mut answered = 0;
            for outcome in pair {
                match outcome.as_ref().unwrap() {
                    Settled::Kept(a) | Settled::Assigned(a) => {
                        answered += 1;
                        assert_eq!(
                            (&a.controller_id, a.fencing_token),
                            (&stored.0, stored.1),
                            "trial {trial}: a replica answered another owner"
                        );
                    }
                    Settled::Lost => {}
                }
            }
            assert!(
                answered >= 1,
                "trial {trial}: neither settle wrote the owner"
            );
        }
        assert_counters_exact(&pool, &format!("trial {trial}")).await;

        // Every 20 trials a controller registers and an earlier one is deleted with its
        // assignments (the cascade counts them off too).
        if trial % 20 == 0 {
            controllers(&pool, &[format!("late-{trial:03}")], 100_000, true).await;
        }
        if trial % 20 == 10 {
            sqlx::query("delete from meeting_controllers where id = $1")
                .bind(format!("late-{:03}", trial - 10))
                .execute(&pool)
                .await
                .unwrap();
            assert_counters_exact(&pool, &format!("trial {trial}, deregistered")).await;
        }
        previous = fresh;
        previous.extend(stranded);
    }
}

/// Settles racing for the last places: 4 controllers with 3 places each, 30 first joins at
/// once, 50 times. No controller ever holds more than its capacity; drawing again for the
/// statements that lost gives exactly the 12 places, and the rest find none (GC answers 503).
#[sqlx::test(migrations = "../../migrations")]
async fn racing_settles_never_overfill_a_controller(pool: PgPool) {
    let owner = seed(&pool).await;
    let racing = racing_pool(&pool).await;
    controllers(&pool, &names("mc", 4), 3, true).await;

    for trial in 0..50 {
        sqlx::query("delete from meeting_assignments")
            .execute(&pool)
            .await
            .unwrap();
        let fresh = meetings(&pool, owner, 30).await;
        let outcomes = join_all(
            fresh
                .iter()
                .map(|&meeting| settle(&racing, meeting, TIMEOUT_SECS)),
        )
        .await;
        let per_controller = rooms(&pool).await;
        assert!(
            per_controller.values().all(|&n| n <= 3),
            "trial {trial}: a controller was overfilled: {per_controller:?}"
        );
        assert_counters_exact(&pool, &format!("trial {trial}")).await;
        // A statement that lost its controller's last place answered no row while others may
        // still have had places: GC draws again (placement's SETTLE_ATTEMPTS). Here one at a
        // time, until a draw finds none: then every place is taken, and none twice.
        let mut assigned = outcomes
            .iter()
            .filter(|o| matches!(o.as_ref().unwrap(), Settled::Assigned(_)))
            .count();
        for (&meeting, outcome) in fresh.iter().zip(&outcomes) {
            if matches!(outcome.as_ref().unwrap(), Settled::Lost)
                && matches!(
                    settle(&pool, meeting, TIMEOUT_SECS).await.unwrap(),
                    Settled::Assigned(_)
                )
            {
                assigned += 1;
            }
        }
        let per_controller = rooms(&pool).await;
        assert_eq!(assigned, 12, "trial {trial}: {per_controller:?}");
        assert!(
            per_controller.values().all(|&n| n == 3),
            "trial {trial}: {per_controller:?}"
        );
        assert_counters_exact(&pool, &format!("trial {trial}")).await;
    }
}

/// One replica's first joins, one at a time, over 20 controllers: the rooms spread evenly
/// (a uniform random choice would leave the busiest near 1.3 × the mean), and a controller
/// that registers later is not given every new room until it catches up (the herd the
/// former choice, fewest rooms counted, sent to a newcomer: docs/capacity.md).
#[sqlx::test(migrations = "../../migrations")]
async fn rooms_spread_over_the_controllers_and_a_newcomer_is_not_herded(pool: PgPool) {
    let owner = seed(&pool).await;
    controllers(&pool, &names("mc", 20), 1000, true).await;
    for meeting in meetings(&pool, owner, 1000).await {
        assert!(matches!(
            settle(&pool, meeting, TIMEOUT_SECS).await.unwrap(),
            Settled::Assigned(_)
        ));
    }
    let spread = rooms(&pool).await;
    let busiest = *spread.values().max().unwrap();
    assert!(
        busiest <= 56,
        "the busiest controller holds {busiest} of 1000 rooms over 20: {spread:?}"
    );

    controllers(&pool, &["newcomer".to_owned()], 1000, true).await;
    for meeting in meetings(&pool, owner, 60).await {
        settle(&pool, meeting, TIMEOUT_SECS).await.unwrap();
    }
    let newcomer = rooms(&pool).await["newcomer"];
    // Sampled in 2 of 21 draws: about 6 of 60 expected; the former choice gave it 50.
    assert!(
        newcomer < 25,
        "the newcomer was given {newcomer} of 60 new rooms"
    );
    assert_counters_exact(&pool, "after the newcomer").await;
}

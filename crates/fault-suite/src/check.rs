//! The checker that runs after every scenario, on what the stores hold (PostgreSQL and Redis
//! read directly, not through the proxies) and what the load saw:
//!
//! 1. every create answered 201 has its meeting and its `meeting_created` audit row, and no
//!    meeting of the org lacks that row;
//! 2. every seat in Redis has its open visit in PostgreSQL and every open visit its seat, in
//!    every live meeting (given time for the repairs the docs promise); an ended meeting has
//!    neither; nobody has two open visits of one meeting;
//! 3. no meeting ever had more open visits at once than its `max_participants` (from the
//!    visits' history);
//! 4. the org never had more than its limit of meetings at once (from the meetings' history);
//! 5. nobody is both in a room's lobby and seated;
//! 6. the load met no 5xx other than `503 SERVICE_UNAVAILABLE` with `Retry-After`;
//! 7. every service is ready again, without a restart.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use deadpool_redis::redis::{self, AsyncCommands as _};
use sqlx::PgPool;
use uuid::Uuid;

use crate::api::{Api, lock};
use crate::stack::{RoomStore, Stack};

/// What the checker counted; `failures` empty when every promise held.
#[derive(Debug, Default)]
pub struct Report {
    pub answered_creates: usize,
    pub meetings: i64,
    pub live: usize,
    pub seats: usize,
    pub waiting: usize,
    pub most_seated: i64,
    pub most_meetings: i64,
    pub unavailable: u64,
    pub ready_after: Duration,
    pub repaired_after: Duration,
    pub failures: Vec<String>,
}

impl Report {
    pub fn line(&self) -> String {
        format!(
            "{} creates answered, {} meetings, {} live with {} seats and {} waiting; at most {} \
             seated in a room and {} meetings of the org at once; {} answers 503; ready after \
             {:.1} s, stores agreeing after {:.1} s",
            self.answered_creates,
            self.meetings,
            self.live,
            self.seats,
            self.waiting,
            self.most_seated,
            self.most_meetings,
            self.unavailable,
            self.ready_after.as_secs_f64(),
            self.repaired_after.as_secs_f64(),
        )
    }
}

/// How long the stores are given to agree after the load stops (a leave reported after its
/// retries, a repair on the next pass of housekeeping).
const REPAIR_LIMIT: Duration = Duration::from_secs(45);

/// What the checker reads: the stores of a stack, whichever started it (the fault suite's own
/// [`Stack`], or a running one given by URLs, as the day-in-the-life generator does).
pub struct Stores<'a> {
    /// Straight to PostgreSQL (not through a proxy).
    pub db: &'a PgPool,
    pub room_store: &'a RoomStore,
    /// The load's org: the seats and visits of its meetings are compared.
    pub org_id: Uuid,
    /// The orgs whose limit of concurrent meetings is checked, with a name for the failures.
    pub orgs: Vec<(Uuid, String)>,
    /// Whose meetings are held to their `meeting_created` row, their capacity and one open
    /// visit a person: one org's, or (`None`) every meeting of the database.
    pub only_org: Option<Uuid>,
}

/// Checks the fault suite's stack after a scenario: readiness (7), then [`check_stores`].
pub async fn check(stack: &mut Stack, api: &Api) -> Result<Report> {
    let mut report = Report::default();
    match stack.wait_all_ready(Duration::from_secs(60)).await {
        Ok(after) => report.ready_after = after,
        Err(error) => report.failures.push(format!("not ready again: {error:#}")),
    }
    let stores = Stores {
        db: &stack.db,
        room_store: &stack.room_store,
        org_id: stack.org_id,
        orgs: vec![
            (stack.org_id, "faults".to_owned()),
            (stack.limit_org_id, "limits".to_owned()),
        ],
        only_org: None,
    };
    check_stores(&stores, api, report).await
}

/// Promises 1 to 6 on `stores` and what `api` saw, added to `report`.
pub async fn check_stores(stores: &Stores<'_>, api: &Api, mut report: Report) -> Result<Report> {
    // 1. Creates and their audit rows.
    let created = lock(&api.stats.created).clone();
    report.answered_creates = created.len();
    let found: i64 =
        sqlx::query_scalar("select count(*) from meetings where meeting_code = any($1)")
            .bind(&created)
            .fetch_one(stores.db)
            .await?;
    if found != created.len() as i64 {
        report.failures.push(format!(
            "{} creates were answered 201 but only {found} of their meetings exist",
            created.len()
        ));
    }
    report.meetings = sqlx::query_scalar("select count(*) from meetings where org_id = $1")
        .bind(stores.org_id)
        .fetch_one(stores.db)
        .await?;
    let unaudited: Vec<String> = sqlx::query_scalar(
        "select m.meeting_code from meetings m
          where ($1::uuid is null or m.org_id = $1)
            and not exists (select 1 from audit_logs a
                             where a.resource_id = m.id::text and a.action = 'meeting_created')",
    )
    .bind(stores.only_org)
    .fetch_all(stores.db)
    .await?;
    if !unaudited.is_empty() {
        report.failures.push(format!(
            "meetings without their meeting_created row: {unaudited:?}"
        ));
    }

    // 2 and 5. Seats and visits, lobby and seats, until they agree or the limit passes.
    let start = Instant::now();
    let mut redis = Rooms::connect(stores.room_store).await?;
    loop {
        let (disagreements, live, seats, waiting) = compare_stores(stores, &mut redis).await?;
        report.live = live;
        report.seats = seats;
        report.waiting = waiting;
        if disagreements.is_empty() {
            report.repaired_after = start.elapsed();
            break;
        }
        if start.elapsed() > REPAIR_LIMIT {
            report.failures.extend(disagreements);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // 3. Capacity, over the visits' whole history.
    let over: Vec<(String, i32, i64)> = sqlx::query_as(
        "select m.meeting_code, m.max_participants, max(s.seated)
           from (select meeting_id,
                        sum(d) over (partition by meeting_id order by t, d
                                     rows between unbounded preceding and current row) as seated
                   from (select meeting_id, joined_at as t, 1 as d from participants
                         union all
                         select meeting_id, left_at, -1 from participants where left_at is not null) e
                ) s
           join meetings m on m.id = s.meeting_id
          where ($1::uuid is null or m.org_id = $1)
          group by m.meeting_code, m.max_participants",
    )
    .bind(stores.only_org)
    .fetch_all(stores.db)
    .await?;
    for (code, max, seated) in &over {
        report.most_seated = report.most_seated.max(*seated);
        if *seated > i64::from(*max) {
            report.failures.push(format!(
                "{code} held {seated} people at once, over its {max}"
            ));
        }
    }
    let doubled: Vec<(String, Uuid)> = sqlx::query_as(
        "select m.meeting_code, p.user_id from participants p join meetings m on m.id = p.meeting_id
          where p.left_at is null and ($1::uuid is null or m.org_id = $1)
          group by 1, 2 having count(*) > 1",
    )
    .bind(stores.only_org)
    .fetch_all(stores.db)
    .await?;
    if !doubled.is_empty() {
        report
            .failures
            .push(format!("two open visits of one person: {doubled:?}"));
    }

    // 4. The org limit, over the meetings' whole history.
    for (org, name) in &stores.orgs {
        let (most, limit): (Option<i64>, i32) = sqlx::query_as(
            "select (select max(n) from
                      (select sum(d) over (order by t, d
                                           rows between unbounded preceding and current row) as n
                         from (select created_at as t, 1 as d from meetings where org_id = $1
                               union all
                               select ended_at, -1 from meetings
                                where org_id = $1 and ended_at is not null) e) s),
                    o.max_concurrent_meetings
               from organizations o where o.id = $1",
        )
        .bind(org)
        .fetch_one(stores.db)
        .await?;
        let most = most.unwrap_or(0);
        if *org == stores.org_id {
            report.most_meetings = most;
        }
        if most > i64::from(limit) {
            report.failures.push(format!(
                "org {name} had {most} meetings at once, over its limit {limit}"
            ));
        }
    }

    // 6. Answers.
    let (violations, count) = api.stats.violations();
    report.unavailable = lock(&api.stats.answers)
        .iter()
        .filter(|(k, _)| k.ends_with(" 503"))
        .map(|(_, v)| v)
        .sum();
    if count > 0 {
        report.failures.push(format!(
            "{count} answers or operations outside the promise, first ones: {violations:#?}"
        ));
    }
    Ok(report)
}

/// The checker's connection to the controllers' Redis: one server, or a cluster (each key read
/// from the node serving its slot).
enum Rooms {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Rooms {
    async fn connect(store: &RoomStore) -> Result<Self> {
        Ok(match store {
            RoomStore::Single(url) => Rooms::Single(
                redis::Client::open(url.as_str())?
                    .get_multiplexed_async_connection()
                    .await
                    .context("redis")?,
            ),
            RoomStore::Cluster(urls) => Rooms::Cluster(
                redis::cluster::ClusterClient::new(urls.clone())?
                    .get_async_connection()
                    .await
                    .context("redis cluster")?,
            ),
        })
    }

    /// The users seated in the room `code`, and those waiting in its lobby.
    async fn people(&mut self, code: &str) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
        let seats = format!("room:{{{code}}}:participants");
        let lobby = format!("room:{{{code}}}:lobby");
        let (seated, waiting): (Vec<String>, Vec<String>) = match self {
            Rooms::Single(conn) => (conn.hkeys(&seats).await?, conn.smembers(&lobby).await?),
            Rooms::Cluster(conn) => (conn.hkeys(&seats).await?, conn.smembers(&lobby).await?),
        };
        Ok((seated.into_iter().collect(), waiting.into_iter().collect()))
    }
}

/// Disagreements between Redis and PostgreSQL now, and the live meetings, seats and waiting
/// people counted.
async fn compare_stores(
    stores: &Stores<'_>,
    redis: &mut Rooms,
) -> Result<(Vec<String>, usize, usize, usize)> {
    let rows: Vec<(String, String, Option<Uuid>)> = sqlx::query_as(
        "select m.meeting_code, m.status, p.user_id
           from meetings m left join participants p on p.meeting_id = m.id and p.left_at is null
          where m.org_id = $1 and (m.status <> 'ended' or p.user_id is not null)",
    )
    .bind(stores.org_id)
    .fetch_all(stores.db)
    .await?;
    let mut visits: HashMap<String, (String, BTreeSet<String>)> = HashMap::new();
    for (code, status, user) in rows {
        let entry = visits
            .entry(code)
            .or_insert_with(|| (status, BTreeSet::new()));
        if let Some(user) = user {
            entry.1.insert(user.to_string());
        }
    }
    let mut disagreements = Vec::new();
    let (mut live, mut seats, mut waiting) = (0, 0, 0);
    for (code, (status, open)) in &visits {
        let (seated, lobby) = redis.people(code).await?;
        if status == "ended" {
            disagreements.push(format!("ended meeting {code} has open visits {open:?}"));
            continue;
        }
        live += 1;
        seats += seated.len();
        waiting += lobby.len();
        if seated != *open {
            disagreements.push(format!(
                "{code} ({status}): seated in Redis {seated:?}, open visits {open:?}"
            ));
        }
        let both: Vec<_> = seated.intersection(&lobby).collect();
        if !both.is_empty() {
            disagreements.push(format!("{code}: {both:?} both waiting and seated"));
        }
    }
    Ok((disagreements, live, seats, waiting))
}

//! The real `SETTLE_SQL` against PostgreSQL at 1,000 controllers and a growing number of
//! assignments, against the floor of any assignment: a plain one-row insert into a copy of
//! `meeting_assignments` (its columns, indexes and foreign keys, not the triggers that keep the
//! room counters), timed in the same run, interleaved with the settles.
//!
//! Everything happens in a scratch database (`assign_sim_<pid>`), created with the workspace's
//! migrations and dropped at the end, whatever happened.

use std::time::Instant;

use anyhow::Context;
use gc_service::db::controllers::SETTLE_SQL;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::dist;

#[derive(clap::Args, Debug)]
pub struct SqlArgs {
    /// A database of the server to use (the scratch database is created next to it).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    url: String,
    /// Registered controllers, all with a fresh heartbeat.
    #[arg(long, default_value_t = 1000)]
    controllers: u32,
    /// Capacity of each controller (MC_CAPACITY).
    #[arg(long, default_value_t = 1000)]
    capacity: i32,
    /// Assignments in place before each measurement.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    assignments: Vec<i64>,
    /// Settles timed at each size (and as many plain inserts).
    #[arg(long, default_value_t = 1000)]
    settles: usize,
    /// The size after whose timing one settle is run under EXPLAIN (ANALYZE, BUFFERS).
    #[arg(long, default_value_t = 100_000)]
    explain_at: i64,
}

/// Statements run before timing starts (sqlx prepares each statement once per connection).
const UNTIMED: usize = 20;
/// GC's MC_HEARTBEAT_TIMEOUT_SECS.
const HEARTBEAT_TIMEOUT_SECS: f64 = 15.0;

pub async fn run(args: &SqlArgs) -> anyhow::Result<()> {
    let database = format!("assign_sim_{}", std::process::id());
    let mut admin = PgConnection::connect(&args.url)
        .await
        .with_context(|| format!("connecting to {}", args.url))?;
    sqlx::query(AssertSqlSafe(format!("create database {database}")))
        .execute(&mut admin)
        .await?;
    let mut url = url::Url::parse(&args.url)?;
    url.set_path(&database);
    let measured = measure(url.as_str(), args).await;
    let dropped = sqlx::query(AssertSqlSafe(format!(
        "drop database {database} with (force)"
    )))
    .execute(&mut admin)
    .await;
    measured?;
    dropped?;
    println!("dropped the scratch database {database}");
    Ok(())
}

struct Row {
    assignments: i64,
    settle: Vec<u64>,
    insert: Vec<u64>,
}

async fn measure(url: &str, args: &SqlArgs) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new().max_connections(2).connect(url).await?;
    gc_service::db::migrator().run(&pool).await?;
    let version: String = sqlx::query_scalar("select version()")
        .fetch_one(&pool)
        .await?;
    println!("{version}");
    let (org, user) = seed(&pool, args).await?;

    let mut rows = Vec::new();
    let mut next_code = 0i64;
    let mut sizes = args.assignments.clone();
    sizes.sort_unstable();
    let mut explain = Vec::new();
    for &target in &sizes {
        let have: i64 = sqlx::query_scalar("select count(*) from meeting_assignments")
            .fetch_one(&pool)
            .await?;
        if target > have {
            // Meetings assigned round robin: every controller holds the same number of rooms.
            sqlx::query(
                "with m as (
                     insert into meetings (org_id, host_id, creator_id, meeting_code,
                                           display_name, max_participants, join_token_secret,
                                           status, started_at)
                     select $1, $2, $2, lpad(i::text, 12, '0'), 'Assign sim', 10,
                            decode(md5(i::text) || md5(i::text), 'hex'), 'active', now()
                     from generate_series($3::bigint, $4::bigint) i
                     returning id, meeting_code
                 )
                 insert into meeting_assignments (meeting_id, controller_id)
                 select id, 'mc-' || lpad((1 + meeting_code::bigint % $5)::text, 4, '0') from m",
            )
            .bind(org)
            .bind(user)
            .bind(next_code)
            .bind(next_code + target - have - 1)
            .bind(i64::from(args.controllers))
            .execute(&pool)
            .await?;
            next_code += target - have;
        }
        // What autovacuum does in production after a load: the statistics and the visibility
        // map (index-only scans) are current.
        sqlx::raw_sql("vacuum analyze meeting_assignments, meeting_controllers, meetings")
            .execute(&pool)
            .await?;

        let fresh = fresh_meetings(&pool, org, user, &mut next_code, 2 * args.settles).await?;
        let (for_settle, for_insert) = fresh.split_at(args.settles);
        let mut conn = pool.acquire().await?;
        let mut settle = Vec::with_capacity(args.settles);
        let mut insert = Vec::with_capacity(args.settles);
        for (i, (a, b)) in for_settle.iter().zip(for_insert).enumerate() {
            let started = Instant::now();
            let row: Option<(String, String, String, i64, bool)> = sqlx::query_as(SETTLE_SQL)
                .bind(a)
                .bind(HEARTBEAT_TIMEOUT_SECS)
                .fetch_optional(&mut *conn)
                .await?;
            let settled = started.elapsed().as_micros() as u64;
            anyhow::ensure!(
                row.is_some_and(|r| r.4),
                "the settle of a fresh meeting did not assign it"
            );
            let controller = format!("mc-{:04}", 1 + i % args.controllers as usize);
            let started = Instant::now();
            sqlx::query(
                "insert into plain_assignments (meeting_id, controller_id, fencing_token)
                 values ($1, $2, 1)",
            )
            .bind(b)
            .bind(&controller)
            .execute(&mut *conn)
            .await?;
            let inserted = started.elapsed().as_micros() as u64;
            if i >= UNTIMED {
                settle.push(settled);
                insert.push(inserted);
            }
        }
        if target == args.explain_at {
            explain = explain_settle(&mut conn, org, user, &mut next_code).await?;
        }
        drop(conn);
        // Back to the round figure for the next size.
        sqlx::query("delete from meeting_assignments where meeting_id = any($1)")
            .bind(&fresh)
            .execute(&pool)
            .await?;
        sqlx::query("delete from plain_assignments")
            .execute(&pool)
            .await?;
        settle.sort_unstable();
        insert.sort_unstable();
        rows.push(Row {
            assignments: target,
            settle,
            insert,
        });
    }
    pool.close().await;

    println!();
    println!(
        "| assignments (before → after) | settles timed | settle p50 / p99 (µs) | plain insert p50 / p99 (µs) | settle ÷ insert (p50) |"
    );
    println!("|---|---|---|---|---|");
    for row in &rows {
        let p = |v: &[u64], q: f64| dist::percentile(v, q).unwrap_or(0);
        println!(
            "| {} → {} | {} | {} / {} | {} / {} | {:.1} |",
            row.assignments,
            row.assignments + 2 * args.settles as i64,
            row.settle.len(),
            p(&row.settle, 0.5),
            p(&row.settle, 0.99),
            p(&row.insert, 0.5),
            p(&row.insert, 0.99),
            p(&row.settle, 0.5) as f64 / p(&row.insert, 0.5).max(1) as f64,
        );
    }
    if !explain.is_empty() {
        println!();
        println!(
            "EXPLAIN (ANALYZE, BUFFERS) of one settle at {} assignments:",
            args.explain_at + 2 * args.settles as i64
        );
        println!("```");
        for line in explain {
            println!("{line}");
        }
        println!("```");
    }
    Ok(())
}

/// An org without a meeting limit, its user, and the controllers; the meetings' own triggers
/// (the org's live-meeting slots, the default creator) are switched off in this scratch
/// database, since the rows here stand only for what assignment reads.
async fn seed(pool: &PgPool, args: &SqlArgs) -> anyhow::Result<(Uuid, Uuid)> {
    let org: Uuid = sqlx::query_scalar(
        "insert into organizations (slug, name, max_concurrent_meetings)
         values ('assign-sim', 'Assign sim', 10000000) returning id",
    )
    .fetch_one(pool)
    .await?;
    let user: Uuid = sqlx::query_scalar(
        "insert into users (org_id, email, password_hash, display_name)
         values ($1, 'sim@assign-sim.test', 'unused', 'Assign sim') returning id",
    )
    .bind(org)
    .fetch_one(pool)
    .await?;
    sqlx::raw_sql("alter table meetings disable trigger user")
        .execute(pool)
        .await?;
    // The floor's table: meeting_assignments' columns, indexes and foreign keys, without the
    // triggers that keep the controllers' room counters.
    sqlx::raw_sql(
        "create table plain_assignments (like meeting_assignments including all);
         alter table plain_assignments
             add foreign key (meeting_id) references meetings (id) on delete cascade,
             add foreign key (controller_id) references meeting_controllers (id)
                 on delete cascade;",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "insert into meeting_controllers (id, ws_url, grpc_addr, capacity, last_heartbeat_at)
         select 'mc-' || lpad(i::text, 4, '0'), 'ws://mc-' || i || ':8081',
                'http://mc-' || i || ':50052', $2, now() + interval '1 hour'
         from generate_series(1, $1) i",
    )
    .bind(i64::from(args.controllers))
    .bind(args.capacity)
    .execute(pool)
    .await?;
    Ok((org, user))
}

/// `count` new meetings nobody has joined yet.
async fn fresh_meetings(
    pool: &PgPool,
    org: Uuid,
    user: Uuid,
    next_code: &mut i64,
    count: usize,
) -> anyhow::Result<Vec<Uuid>> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "insert into meetings (org_id, host_id, creator_id, meeting_code, display_name,
                               max_participants, join_token_secret)
         select $1, $2, $2, lpad(i::text, 12, '0'), 'Assign sim fresh', 10,
                decode(md5(i::text) || md5(i::text), 'hex')
         from generate_series($3::bigint, $4::bigint) i
         returning id",
    )
    .bind(org)
    .bind(user)
    .bind(*next_code)
    .bind(*next_code + count as i64 - 1)
    .fetch_all(pool)
    .await?;
    *next_code += count as i64;
    Ok(ids)
}

/// The plan of one settle of a fresh meeting, with the values written in (EXPLAIN takes no
/// parameters).
async fn explain_settle(
    conn: &mut PgConnection,
    org: Uuid,
    user: Uuid,
    next_code: &mut i64,
) -> anyhow::Result<Vec<String>> {
    let id: Uuid = sqlx::query_scalar(
        "insert into meetings (org_id, host_id, creator_id, meeting_code, display_name,
                               max_participants, join_token_secret)
         values ($1, $2, $2, lpad($3::text, 12, '0'), 'Assign sim explain', 10,
                 decode(md5($3::text) || md5($3::text), 'hex'))
         returning id",
    )
    .bind(org)
    .bind(user)
    .bind(*next_code)
    .fetch_one(&mut *conn)
    .await?;
    *next_code += 1;
    let statement = SETTLE_SQL
        .replace("$1", &format!("'{id}'::uuid"))
        .replace("$2", &HEARTBEAT_TIMEOUT_SECS.to_string());
    let lines: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "explain (analyze, buffers) {statement}"
    )))
    .fetch_all(&mut *conn)
    .await?;
    Ok(lines)
}

use sqlx::PgPool;

/// Everything a migration could change, as text to compare: the record of applied
/// migrations (with when each was installed, so one applied again shows), every table's
/// columns and row count, and every index, constraint, trigger and function of the schema.
async fn schema_and_history(pool: &PgPool) -> Vec<String> {
    const QUERIES: &[&str] = &[
        "select format('%s %s %s %s', version, encode(checksum, 'hex'), installed_on, success)
         from _sqlx_migrations order by version",
        "select format('%s.%s %s %s %s', table_name, column_name, data_type, is_nullable,
                       column_default)
         from information_schema.columns where table_schema = 'public'
         order by table_name, ordinal_position",
        "select format('%s rows=%s', table_name,
                       (xpath('/row/n/text()',
                              query_to_xml(format('select count(*) as n from %I', table_name),
                                           false, true, '')))[1]::text)
         from information_schema.tables
         where table_schema = 'public' and table_type = 'BASE TABLE' order by table_name",
        "select indexdef from pg_indexes where schemaname = 'public' order by indexdef",
        "select format('%s %s', conrelid::regclass, pg_get_constraintdef(oid))
         from pg_constraint where connamespace = 'public'::regnamespace order by 1",
        "select pg_get_triggerdef(oid) from pg_trigger where not tgisinternal order by 1",
        "select pg_get_functiondef(p.oid) from pg_proc p
         where p.pronamespace = 'public'::regnamespace and p.prokind in ('f', 'p') order by 1",
    ];
    let mut lines = Vec::new();
    for query in QUERIES {
        let rows: Vec<Option<String>> = sqlx::query_scalar(*query).fetch_all(pool).await.unwrap();
        lines.extend(rows.into_iter().map(Option::unwrap_or_default));
    }
    lines
}

#[sqlx::test(migrations = "../../migrations")]
async fn migrating_an_up_to_date_database_changes_nothing(pool: PgPool) {
    let before = schema_and_history(&pool).await;
    assert!(
        before.iter().any(|line| line.starts_with("meetings.")),
        "the snapshot sees the schema: {before:?}"
    );

    ac_service::migrate(&pool).await.unwrap();
    let after_one = schema_and_history(&pool).await;
    ac_service::migrate(&pool).await.unwrap();
    let after_two = schema_and_history(&pool).await;

    assert_eq!(after_one, before);
    assert_eq!(after_two, before);
}

/// The snapshot above sees a change of each kind it compares, so the test above can fail.
#[sqlx::test(migrations = "../../migrations")]
async fn the_schema_snapshot_sees_a_reapplied_migration_and_a_changed_schema(pool: PgPool) {
    let before = schema_and_history(&pool).await;
    let newest = ac_service::MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap();
    sqlx::query(
        "update _sqlx_migrations set installed_on = now() + interval '1 day' where version = $1",
    )
    .bind(newest)
    .execute(&pool)
    .await
    .unwrap();
    assert_ne!(
        schema_and_history(&pool).await,
        before,
        "a migration applied again"
    );

    let before = schema_and_history(&pool).await;
    sqlx::query("create index snapshot_probe on meetings (created_at)")
        .execute(&pool)
        .await
        .unwrap();
    assert_ne!(schema_and_history(&pool).await, before, "an index added");

    let before = schema_and_history(&pool).await;
    sqlx::query("insert into organizations (name, slug) values ('Probe', 'snapshot-probe')")
        .execute(&pool)
        .await
        .unwrap();
    assert_ne!(schema_and_history(&pool).await, before, "a row added");
}

/// A replica of the previous release starting (or rolling back) after a newer release migrated
/// the database: both ways of starting, migrating (`MIGRATE_ON_START=true`) and waiting for the
/// migration job, go on to serve, and the newer release's record is left as it is.
#[sqlx::test(migrations = "../../migrations")]
async fn a_migration_applied_by_a_newer_release_does_not_stop_start_up(pool: PgPool) {
    use common::migrations::{pending, wait_until_applied};
    use std::time::Duration;

    const NEWER: i64 = 99991231000001;
    sqlx::query(
        "insert into _sqlx_migrations (version, description, success, checksum, execution_time)
         values ($1, 'from a newer release', true, '\\x00', 0)",
    )
    .bind(NEWER)
    .execute(&pool)
    .await
    .unwrap();
    let before = schema_and_history(&pool).await;

    let migrated = ac_service::migrate(&pool).await;
    let waited = wait_until_applied(&pool, &ac_service::MIGRATOR, Duration::from_millis(10)).await;

    assert!(migrated.is_ok(), "migrating at start-up: {migrated:?}");
    assert!(
        waited.is_ok(),
        "waiting for the job at start-up: {waited:?}"
    );
    assert!(
        pending(&pool, &ac_service::MIGRATOR)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        schema_and_history(&pool).await,
        before,
        "nothing applied, nothing removed"
    );
    let kept: bool =
        sqlx::query_scalar("select exists (select 1 from _sqlx_migrations where version = $1)")
            .bind(NEWER)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(kept, "the newer release's migration is still recorded");
}

/// A replica started with MIGRATE_ON_START=false before the migration job: it sees every
/// migration pending, gives up after its bound with a message that says what to do, and serves
/// once the job has run.
#[sqlx::test(migrations = false)]
async fn without_migrating_at_start_up_a_replica_waits_for_the_migration_job(pool: PgPool) {
    use common::migrations::{WaitError, pending, wait_until_applied};
    use std::time::Duration;

    let all = ac_service::MIGRATOR.iter().count();
    assert_eq!(
        pending(&pool, &ac_service::MIGRATOR).await.unwrap().len(),
        all
    );
    let error = wait_until_applied(&pool, &ac_service::MIGRATOR, Duration::from_millis(10))
        .await
        .unwrap_err();
    assert!(matches!(error, WaitError::NotApplied(ref missing) if missing.len() == all));
    assert!(error.to_string().contains("migration job"), "{error}");

    ac_service::migrate(&pool).await.unwrap();
    assert!(
        pending(&pool, &ac_service::MIGRATOR)
            .await
            .unwrap()
            .is_empty()
    );
    wait_until_applied(&pool, &ac_service::MIGRATOR, Duration::from_millis(10))
        .await
        .unwrap();
}

/// Half of the migrations applied is still "wait"; a migration recorded as failed stops the
/// replica at once instead of waiting for a job that will not repair it.
#[sqlx::test(migrations = false)]
async fn a_partly_applied_or_failed_schema_is_not_served(pool: PgPool) {
    use common::migrations::{WaitError, pending, wait_until_applied};
    use std::time::Duration;

    ac_service::migrate(&pool).await.unwrap();
    let newest = ac_service::MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap();
    sqlx::query("delete from _sqlx_migrations where version = $1")
        .bind(newest)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        pending(&pool, &ac_service::MIGRATOR).await.unwrap(),
        vec![newest]
    );

    sqlx::query(
        "insert into _sqlx_migrations (version, description, success, checksum, execution_time)
         values ($1, 'failed half-way', false, '\\x00', 0)",
    )
    .bind(newest)
    .execute(&pool)
    .await
    .unwrap();
    let error = wait_until_applied(&pool, &ac_service::MIGRATOR, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        matches!(error, WaitError::Failed(v) if v == newest),
        "{error}"
    );
}

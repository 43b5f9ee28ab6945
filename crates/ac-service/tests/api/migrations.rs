use sqlx::PgPool;

#[sqlx::test(migrations = "../../migrations")]
async fn migrating_an_up_to_date_database_changes_nothing(pool: PgPool) {
    ac_service::migrate(&pool).await.unwrap();
    ac_service::migrate(&pool).await.unwrap();
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_migration_applied_by_a_newer_release_does_not_stop_start_up(pool: PgPool) {
    sqlx::query(
        "insert into _sqlx_migrations (version, description, success, checksum, execution_time)
         values (99991231000001, 'from a newer release', true, '\\x00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();

    ac_service::migrate(&pool).await.unwrap();
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

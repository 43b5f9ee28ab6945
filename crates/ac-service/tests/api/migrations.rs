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

#[sqlx::test(migrations = "../../migrations")]
async fn live_meeting_count_bumps_leave_an_orgs_updated_at_alone(pool: PgPool) {
    let id: uuid::Uuid = sqlx::query_scalar(
        "insert into organizations (slug, name, updated_at)
         values ('acme', 'Acme', '2000-01-01T00:00:00Z') returning id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let updated_at = || async {
        sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>(
            "select updated_at from organizations where id = $1",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let long_ago: chrono::DateTime<chrono::Utc> = "2000-01-01T00:00:00Z".parse().unwrap();

    sqlx::query(
        "update organizations set live_meeting_count = live_meeting_count + 1 where id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(updated_at().await, long_ago);

    sqlx::query("update organizations set max_concurrent_meetings = 20 where id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    assert!(updated_at().await > long_ago);
}

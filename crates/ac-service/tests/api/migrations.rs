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

//! The rules of the failure budgets (`credential_check`), attacked the way a hostile client
//! would: floods from one address, races between right and wrong passwords, and clients that
//! hang up mid-check. Only a verified failure may count; a refused attempt counts nowhere.

use std::time::Duration;

use ac_service::config::Safeguards;
use reqwest::header::RETRY_AFTER;
use reqwest::{Response, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{
    GC, GUEST_EMAIL, HOST_EMAIL, MC, PASSWORD, TestApp, seed_basics, spawn_app, spawn_app_with,
    spawn_app_with_safeguards, test_config, test_safeguards,
};

const USER_TOKEN: &str = "/api/v1/auth/user/token";
const SERVICE_TOKEN: &str = "/api/v1/auth/service/token";
const ATTACKER: &str = "203.0.113.66";
const OWNER: &str = "198.51.100.10";

/// An AC that takes the client address from `X-Forwarded-For`, with `per_ip` failures per
/// address.
async fn spawn_behind_proxy(pool: PgPool, per_ip: u32) -> TestApp {
    let mut config = test_config();
    config.login_max_failures_per_ip = per_ip;
    config.trust_forwarded_for = true;
    spawn_app_with(pool, config).await
}

async fn login_from(app: &TestApp, ip: &str, email: &str, password: &str) -> Response {
    app.client
        .post(app.url(USER_TOKEN))
        .header("x-forwarded-for", ip)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn client_auth_from(app: &TestApp, ip: &str, client: (&str, &str)) -> Response {
    app.client
        .post(app.url(SERVICE_TOKEN))
        .header("x-forwarded-for", ip)
        .basic_auth(client.0, Some(client.1))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
}

/// `(failures, in_flight)` of a counter, `None` when it has no row.
async fn counter(pool: &PgPool, key: &str) -> Option<(i32, i32)> {
    sqlx::query_as("select failures, in_flight from login_failures where key = lower($1)")
        .bind(key)
        .fetch_optional(pool)
        .await
        .unwrap()
}

/// Whether a counter holds nothing: no failure, no attempt in flight (or no row at all; a
/// refused attempt may leave an empty one behind).
async fn is_untouched(pool: &PgPool, key: &str) -> bool {
    counter(pool, key).await.unwrap_or((0, 0)) == (0, 0)
}

async fn attempts_in_flight(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select coalesce(sum(in_flight), 0)::bigint from login_failures")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits (at most 10 s) until `done` holds of the counters; polling, since the server's task
/// finishes on its own time.
async fn eventually<F: AsyncFn() -> bool>(done: F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the counters did not settle"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn count(statuses: &[StatusCode], status: StatusCode) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[sqlx::test(migrations = "../../migrations")]
async fn twelve_concurrent_correct_sign_ins_of_one_account_all_succeed(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool.clone()).await;

    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let request = app
            .client
            .post(app.url(USER_TOKEN))
            .json(&json!({"email": HOST_EMAIL, "password": PASSWORD}));
        attempts.spawn(async move { request.send().await.unwrap().status() });
    }
    let statuses = attempts.join_all().await;

    assert_eq!(count(&statuses, StatusCode::OK), 12, "{statuses:?}");
    assert_eq!(
        counter(&pool, &format!("acct:{HOST_EMAIL}")).await,
        Some((0, 0))
    );
    assert_eq!(attempts_in_flight(&pool).await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn twelve_concurrent_correct_client_authentications_all_succeed(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_app(pool.clone()).await;

    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let request = app
            .client
            .post(app.url(SERVICE_TOKEN))
            .basic_auth(GC.0, Some(GC.1))
            .form(&[("grant_type", "client_credentials")]);
        attempts.spawn(async move { request.send().await.unwrap().status() });
    }
    let statuses = attempts.join_all().await;

    assert_eq!(count(&statuses, StatusCode::OK), 12, "{statuses:?}");
    assert_eq!(attempts_in_flight(&pool).await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_address_over_its_budget_cannot_lock_someone_elses_account(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_behind_proxy(pool.clone(), 3).await;
    for n in 0..3 {
        let email = format!("nobody{n}@acme.test");
        let response = login_from(&app, ATTACKER, &email, "wrong-password").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    // Refused without being checked, right password or wrong: a budget limits the guesses an
    // address may have checked, so guessing right does not get past it.
    for password in [PASSWORD, "wrong-password"].repeat(5) {
        let response = login_from(&app, ATTACKER, HOST_EMAIL, password).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(response.headers().contains_key(RETRY_AFTER));
    }

    assert!(is_untouched(&pool, &format!("acct:{HOST_EMAIL}")).await);
    assert_eq!(
        counter(&pool, &format!("ip:{ATTACKER}")).await,
        Some((3, 0))
    );
    for _ in 0..2 {
        let response = login_from(&app, OWNER, HOST_EMAIL, "wrong-password").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let owner = login_from(&app, OWNER, HOST_EMAIL, PASSWORD).await;
    assert_eq!(owner.status(), StatusCode::OK);
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_address_over_its_budget_cannot_lock_a_client_out(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_behind_proxy(pool.clone(), 2).await;
    for client in ["ghost-a", "ghost-b"] {
        let response = client_auth_from(&app, ATTACKER, (client, "wrong-secret-0000")).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    for _ in 0..10 {
        let response = client_auth_from(&app, ATTACKER, (GC.0, "wrong-secret-0000")).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }

    assert!(is_untouched(&pool, &format!("client:{}", GC.0)).await);
    assert_eq!(
        client_auth_from(&app, OWNER, GC).await.status(),
        StatusCode::OK
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn refusals_of_a_locked_account_count_against_neither_the_address_nor_the_lock(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_behind_proxy(pool.clone(), 5).await;
    for _ in 0..5 {
        let response = login_from(&app, OWNER, HOST_EMAIL, "wrong-password").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let locked_at: (chrono::DateTime<chrono::Utc>,) =
        sqlx::query_as("select window_start from login_failures where key = $1")
            .bind(format!("acct:{HOST_EMAIL}"))
            .fetch_one(&pool)
            .await
            .unwrap();

    for password in [PASSWORD, "wrong-password"].repeat(5) {
        let response = login_from(&app, ATTACKER, HOST_EMAIL, password).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }

    let still: (chrono::DateTime<chrono::Utc>, i32, i32) = sqlx::query_as(
        "select window_start, failures, in_flight from login_failures where key = $1",
    )
    .bind(format!("acct:{HOST_EMAIL}"))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(still, (locked_at.0, 5, 0));
    assert!(is_untouched(&pool, &format!("ip:{ATTACKER}")).await);
    // The attacker's address still has its whole budget of five failures.
    for n in 0..5 {
        let email = format!("nobody{n}@acme.test");
        let response = login_from(&app, ATTACKER, &email, "wrong-password").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let sixth = login_from(&app, ATTACKER, GUEST_EMAIL, PASSWORD).await;
    assert_eq!(sixth.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[sqlx::test(migrations = "../../migrations")]
async fn concurrent_wrong_guesses_from_one_address_never_exceed_its_budget(pool: PgPool) {
    seed_basics(&pool).await;
    let app = spawn_behind_proxy(pool.clone(), 3).await;

    let mut attempts = tokio::task::JoinSet::new();
    for n in 0..12 {
        let request = app
            .client
            .post(app.url(USER_TOKEN))
            .header("x-forwarded-for", ATTACKER)
            .json(&json!({"email": format!("user{n}@acme.test"), "password": "wrong-password"}));
        attempts.spawn(async move { request.send().await.unwrap().status() });
    }
    let statuses = attempts.join_all().await;

    assert_eq!(
        count(&statuses, StatusCode::UNAUTHORIZED),
        3,
        "{statuses:?}"
    );
    assert_eq!(count(&statuses, StatusCode::TOO_MANY_REQUESTS), 9);
    assert_eq!(
        counter(&pool, &format!("ip:{ATTACKER}")).await,
        Some((3, 0))
    );
    assert_eq!(attempts_in_flight(&pool).await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_race_of_the_right_password_against_wrong_ones_never_checks_more_than_the_limit(
    pool: PgPool,
) {
    seed_basics(&pool).await;
    let app = spawn_app(pool.clone()).await;
    for _ in 0..4 {
        app.login(HOST_EMAIL, "wrong-password").await;
    }

    let mut attempts = tokio::task::JoinSet::new();
    for n in 0..11 {
        let password = if n == 5 { PASSWORD } else { "wrong-password" };
        let request = app
            .client
            .post(app.url(USER_TOKEN))
            .json(&json!({"email": HOST_EMAIL, "password": password}));
        attempts.spawn(async move { (password, request.send().await.unwrap().status()) });
    }
    let results = attempts.join_all().await;

    let right = results.iter().find(|(p, _)| *p == PASSWORD).unwrap().1;
    let wrong: Vec<StatusCode> = results
        .iter()
        .filter(|(p, _)| *p != PASSWORD)
        .map(|r| r.1)
        .collect();
    let checked_wrong = count(&wrong, StatusCode::UNAUTHORIZED);
    if right == StatusCode::OK {
        // At most one wrong guess before the success, and five after it started over.
        assert!(checked_wrong <= 6, "{results:?}");
    } else {
        // A wrong guess took the last place: the account is locked, as it should be.
        assert_eq!(right, StatusCode::TOO_MANY_REQUESTS, "{results:?}");
        assert_eq!(checked_wrong, 1, "{results:?}");
    }
    assert_eq!(count(&wrong, StatusCode::OK), 0);
    let (failures, in_flight) = counter(&pool, &format!("acct:{HOST_EMAIL}")).await.unwrap();
    assert!(failures <= 5, "{failures}");
    assert_eq!(in_flight, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_attempt_waits_for_checks_in_flight_and_gets_503_when_they_do_not_settle(pool: PgPool) {
    seed_basics(&pool).await;
    let mut config = test_config();
    config.login_max_failures_per_account = 1;
    let safeguards = Safeguards {
        max_concurrent_hashes: 1,
        hash_wait_ms: 500,
        ..test_safeguards()
    };
    let app = spawn_app_with_safeguards(pool.clone(), config, safeguards).await;
    let slot = app.hasher.reserve().await.unwrap();
    let key = format!("acct:{HOST_EMAIL}");

    // The first attempt takes the account's only place and then waits for a hashing slot.
    let first = tokio::spawn({
        let request = app
            .client
            .post(app.url(USER_TOKEN))
            .json(&json!({"email": HOST_EMAIL, "password": "wrong-password"}));
        async move { request.send().await.unwrap() }
    });
    eventually(async || counter(&pool, &key).await == Some((0, 1))).await;
    let second = app.login(HOST_EMAIL, PASSWORD).await;
    let first = first.await.unwrap();

    for response in [first, second] {
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "1");
    }
    assert_eq!(counter(&pool, &key).await, Some((0, 0)));
    drop(slot);
    assert_eq!(
        app.login(HOST_EMAIL, PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_client_that_hangs_up_mid_check_leaves_its_checked_guess_counted(pool: PgPool) {
    seed_basics(&pool).await;
    let safeguards = Safeguards {
        max_concurrent_hashes: 1,
        ..test_safeguards()
    };
    let app = spawn_app_with_safeguards(pool.clone(), test_config(), safeguards).await;
    let slot = app.hasher.reserve().await.unwrap();
    let key = format!("acct:{HOST_EMAIL}");

    let hung_up = app
        .client
        .post(app.url(USER_TOKEN))
        .timeout(Duration::from_millis(300))
        .json(&json!({"email": HOST_EMAIL, "password": "wrong-password"}))
        .send()
        .await;
    assert!(hung_up.unwrap_err().is_timeout());
    assert_eq!(counter(&pool, &key).await, Some((0, 1)));
    drop(slot);

    eventually(async || counter(&pool, &key).await == Some((1, 0))).await;
    assert_eq!(attempts_in_flight(&pool).await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn attempts_turned_away_by_a_full_hasher_consume_no_budget(pool: PgPool) {
    seed_basics(&pool).await;
    let safeguards = Safeguards {
        max_concurrent_hashes: 1,
        hash_wait_ms: 50,
        ..test_safeguards()
    };
    let app = spawn_app_with_safeguards(pool.clone(), test_config(), safeguards).await;
    let slot = app.hasher.reserve().await.unwrap();

    for _ in 0..10 {
        let login = app.login(HOST_EMAIL, "wrong-password").await;
        let client = app.request_service_token((MC.0, "wrong-secret-0000")).await;
        assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(client.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    let failures: i64 =
        sqlx::query_scalar("select coalesce(sum(failures), 0)::bigint from login_failures")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(failures, 0);
    assert_eq!(attempts_in_flight(&pool).await, 0);
    drop(slot);
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_attempt_reserved_before_its_window_restarted_does_not_count_in_the_new_one(
    pool: PgPool,
) {
    use ac_service::db::login_failures::{self, Budget, Reserved, Settlement};
    let budgets = [Budget {
        key: "acct:Late@Acme.test".into(),
        limit: 2,
    }];
    let window = Duration::from_secs(900);
    let Reserved::Yes(old) = login_failures::reserve(&pool, &budgets, window)
        .await
        .unwrap()
    else {
        panic!("the first attempt must get a place");
    };
    sqlx::query("update login_failures set window_start = now() - interval '16 minutes'")
        .execute(&pool)
        .await
        .unwrap();
    let Reserved::Yes(new) = login_failures::reserve(&pool, &budgets, window)
        .await
        .unwrap()
    else {
        panic!("the new window must have room");
    };

    login_failures::settle(&pool, old, Settlement::Failed)
        .await
        .unwrap();
    assert_eq!(counter(&pool, "acct:late@acme.test").await, Some((0, 1)));
    login_failures::settle(&pool, new, Settlement::Failed)
        .await
        .unwrap();
    assert_eq!(counter(&pool, "acct:late@acme.test").await, Some((1, 0)));
}

/// A check goes on in a task of its own when its client hangs up; the task is the shell's, so a
/// stop waits for it to settle the attempt rather than end with the reservation in flight.
#[sqlx::test(migrations = "../../migrations")]
async fn a_stop_waits_for_a_check_whose_client_hung_up_to_settle(pool: PgPool) {
    seed_basics(&pool).await;
    let safeguards = Safeguards {
        max_concurrent_hashes: 1,
        hash_wait_ms: 30_000,
        shell: common::shell::ShellSettings {
            readiness_grace_secs: 0,
            ..common::shell::ShellSettings::default()
        },
        ..test_safeguards()
    };
    let app = spawn_app_with_safeguards(pool.clone(), test_config(), safeguards).await;
    let slot = app.hasher.reserve().await.unwrap();
    let key = format!("acct:{HOST_EMAIL}");
    let hung_up = app
        .client
        .post(app.url(USER_TOKEN))
        .timeout(Duration::from_millis(300))
        .json(&json!({"email": HOST_EMAIL, "password": "wrong-password"}))
        .send()
        .await;
    assert!(hung_up.unwrap_err().is_timeout());
    assert_eq!(
        counter(&pool, &key).await,
        Some((0, 1)),
        "reserved, waiting to hash"
    );

    let mut stopping = tokio::spawn(app.stop());
    // What is checked is that the stop does not end while the check waits for the hasher (with
    // nothing else open it would end at once): a bound on a wait, not a synchronisation.
    let early = tokio::time::timeout(Duration::from_millis(500), &mut stopping).await;
    assert!(early.is_err(), "the stop ended with a check in flight");
    drop(slot);

    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the stop did not end once the check settled")
        .unwrap();
    assert_eq!(
        counter(&pool, &key).await,
        Some((1, 0)),
        "the checked guess is counted and nothing is left in flight"
    );
}

//! Meetings through GC's REST API with a real meeting controller: a stack with one, users
//! made without signing in, the calls a test makes, and readers of the rooms' Redis keys. GC's
//! tests and the system tests (`crates/system-tests`, which include this file) share it.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{
    McRedis, StackOptions, TestSigner, TestStack, redis_url, spawn_stack, user_claims,
};

/// A stack with one meeting controller, its room keys under a prefix of this test, and a
/// signer for tokens of users the test makes. The signer's key is published before anything
/// verifies a token, so GC and MC know it from their first fetch of AC's keys.
pub async fn stack_with_mc(pool: PgPool) -> (TestStack, String, People) {
    let mut stack = spawn_stack(pool, StackOptions::default()).await;
    let people = People::new(&stack).await;
    let prefix = format!("t{}:", Uuid::new_v4().simple());
    stack.start_mc(0, &prefix, McRedis::Single).await;
    (stack, prefix, people)
}

/// Users of the test's org (or of a new org) who can be given tokens without signing in.
pub struct People {
    pub signer: TestSigner,
}

impl People {
    pub async fn new(stack: &TestStack) -> Self {
        Self {
            signer: stack.published_test_signer().await,
        }
    }

    /// A new user of `org_id` with role `user`, and a user token for them.
    pub async fn user(&self, stack: &TestStack, org_id: Uuid, name: &str) -> (Uuid, String) {
        let id = Uuid::new_v4();
        sqlx::query(
            "insert into users (id, org_id, email, password_hash, display_name, roles)
             values ($1, $2, $3, 'unused', $4, '{user}')",
        )
        .bind(id)
        .bind(org_id)
        .bind(format!("{id}@people.test"))
        .bind(name)
        .execute(&stack.pool)
        .await
        .unwrap();
        let mut claims = user_claims(id, org_id, &["user"]);
        claims["name"] = json!(name);
        (id, self.signer.sign(&claims))
    }

    /// A new org with the default limits.
    pub async fn org(&self, stack: &TestStack) -> Uuid {
        sqlx::query_scalar(
            "insert into organizations (slug, name) values ($1, 'Other') returning id",
        )
        .bind(format!("o{}", Uuid::new_v4().simple()))
        .fetch_one(&stack.pool)
        .await
        .unwrap()
    }
}

/// Sends `method path` with the token (and a JSON body when given); the status and the JSON.
pub async fn call(
    stack: &TestStack,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut request = stack
        .client
        .request(method, stack.gc_url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub async fn create(stack: &TestStack, token: &str, body: &Value) -> String {
    let response = stack.create(token, body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["meeting_code"].as_str().unwrap().to_owned()
}

pub async fn join(stack: &TestStack, code: &str, token: &str) -> (StatusCode, Value) {
    call(
        stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/join"),
        token,
        None,
    )
    .await
}

/// `GET /api/v1/meetings/{code}` with `token`.
/// `POST /{code}/end` with the token: the status and the JSON.
pub async fn end(stack: &TestStack, code: &str, token: &str) -> (StatusCode, Value) {
    call(
        stack,
        Method::POST,
        &format!("/api/v1/meetings/{code}/end"),
        token,
        None,
    )
    .await
}

pub async fn get(stack: &TestStack, code: &str, token: &str) -> (StatusCode, Value) {
    call(
        stack,
        Method::GET,
        &format!("/api/v1/meetings/{code}"),
        token,
        None,
    )
    .await
}

/// Keys of the test's rooms left in Redis.
pub async fn redis_keys(prefix: &str) -> Vec<String> {
    let client = redis_client();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis_cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// Deletes every key of the test's rooms, as a Redis restarted without persistence would.
pub async fn lose_rooms(prefix: &str) {
    let client = redis_client();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for key in redis_keys(prefix).await {
        let () = redis_cmd("DEL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

fn redis_client() -> deadpool_redis::redis::Client {
    deadpool_redis::redis::Client::open(redis_url()).unwrap()
}

fn redis_cmd(name: &str) -> deadpool_redis::redis::Cmd {
    deadpool_redis::redis::cmd(name)
}

/// Every key of the test's rooms has a TTL.
pub async fn assert_every_key_expires(prefix: &str) {
    let client = redis_client();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for key in redis_keys(prefix).await {
        let ttl: i64 = redis_cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0, "{key} has no TTL ({ttl})");
    }
}

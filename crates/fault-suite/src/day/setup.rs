//! The run's people: an org of its own at AC (a unique slug per run, limits that fit the
//! shape), made through AC's admin API with the admin service client, and its users, each
//! signed in once (a user token lasts an hour; a run is minutes). AC hashes every new password
//! and every sign-in with Argon2id and answers 503 when its hashing slots stay busy, so this
//! goes a few at a time and waits out 503 and 429.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt as _;
use uuid::Uuid;

use crate::stack::{User, sign_in_at, user_of};

/// The password of every user of a run (a load's users, never real people).
const PASSWORD: &str = "day-in-the-life-password";
/// Users made and signed in at once (AC runs twice its CPU count of hashes at once).
const AT_ONCE: usize = 4;

pub struct Org {
    pub id: Uuid,
    pub slug: String,
    pub users: Vec<User>,
}

/// What the org is given.
pub struct Limits {
    pub meetings: usize,
    pub seats: usize,
}

pub async fn make_org(
    http: &reqwest::Client,
    ac_url: &str,
    (client_id, secret): (&str, &str),
    count: usize,
    limits: &Limits,
) -> Result<Org> {
    let admin = admin_token(http, ac_url, client_id, secret).await?;
    let slug = format!("day-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S"));
    let body = serde_json::json!({
        "slug": slug, "name": format!("Day in the life {slug}"),
        "max_concurrent_meetings": limits.meetings,
        "max_participants_per_meeting": limits.seats,
    });
    let answer = post_patiently(http, &format!("{ac_url}/api/v1/admin/orgs"), &admin, &body)
        .await
        .context("create the org")?;
    let id: Uuid = answer["org_id"].as_str().context("no org_id")?.parse()?;
    let begun = std::time::Instant::now();
    let users: Vec<Result<User>> = futures::stream::iter(0..count)
        .map(|i| {
            let admin = admin.clone();
            let slug = slug.clone();
            async move {
                let email = format!("u{i}@{slug}.day.test");
                let body = serde_json::json!({"email": email, "password": PASSWORD,
                    "display_name": format!("Day {i}"), "roles": ["user"]});
                post_patiently(
                    http,
                    &format!("{ac_url}/api/v1/admin/orgs/{id}/users"),
                    &admin,
                    &body,
                )
                .await
                .with_context(|| format!("create {email}"))?;
                sign_in_patiently(http, ac_url, &email).await
            }
        })
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    let users = users.into_iter().collect::<Result<Vec<_>>>()?;
    println!(
        "day: org {slug} with {} users made and signed in in {:.1} s",
        users.len(),
        begun.elapsed().as_secs_f64()
    );
    Ok(Org { id, slug, users })
}

async fn admin_token(
    http: &reqwest::Client,
    ac_url: &str,
    client_id: &str,
    secret: &str,
) -> Result<String> {
    let response = http
        .post(format!("{ac_url}/api/v1/auth/service/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "admin")])
        .send()
        .await?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if status != 200 {
        bail!("admin token for {client_id}: {status} {body}");
    }
    Ok(body["access_token"]
        .as_str()
        .context("no access_token")?
        .to_owned())
}

/// A POST answered 201, through AC's 503s and 429s (a minute at most).
async fn post_patiently(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value> {
    let begun = std::time::Instant::now();
    loop {
        let response = http.post(url).bearer_auth(token).json(body).send().await?;
        let status = response.status().as_u16();
        let wait = retry_after(&response);
        let answer: serde_json::Value = response.json().await.unwrap_or_default();
        match status {
            201 => return Ok(answer),
            503 | 429 if begun.elapsed() < Duration::from_secs(60) => {
                tokio::time::sleep(wait).await;
            }
            _ => bail!("POST {url}: {status} {answer}"),
        }
    }
}

async fn sign_in_patiently(http: &reqwest::Client, ac_url: &str, email: &str) -> Result<User> {
    let begun = std::time::Instant::now();
    loop {
        let response = sign_in_at(http, ac_url, email, PASSWORD).await?;
        match response.status().as_u16() {
            200 => return user_of(response).await,
            503 | 429 if begun.elapsed() < Duration::from_secs(60) => {
                tokio::time::sleep(retry_after(&response)).await;
            }
            status => bail!("sign-in of {email}: {status}"),
        }
    }
}

fn retry_after(response: &reqwest::Response) -> Duration {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_millis(500), Duration::from_secs)
        .min(Duration::from_secs(5))
}

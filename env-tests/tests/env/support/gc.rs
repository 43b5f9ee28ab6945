//! `GcClient`: GC's public meetings API (docs/meetings-api.md), one method per endpoint. Every
//! method but `create_meeting` hands back the whole `Reply`, so a test can check refusals as
//! closely as successes.

use anyhow::Context;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, Method};
use serde_json::{Value, json};

use super::config::{Service, stack};
use super::http::{Reply, client, request, send};

#[derive(Clone)]
pub struct GcClient {
    http: Client,
    service: Service,
}

const BASE: &str = "/api/v1/meetings";

impl GcClient {
    pub fn new() -> GcClient {
        GcClient::with_client(client())
    }

    /// With a given HTTP client: the metrics test keeps one connection, hence one GC replica.
    pub fn with_client(http: Client) -> GcClient {
        GcClient {
            http,
            service: stack().gc.clone(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Reply> {
        let mut builder = request(&self.http, method, &self.service, path, Some(token));
        if let Some(body) = body {
            builder = builder.json(body);
        }
        send(&self.service, builder).await
    }

    /// A call of the webhook API (`/api/v1/webhooks{path}`, DESIGN §13) with `token`.
    pub async fn webhooks(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Reply> {
        self.call(method, &format!("/api/v1/webhooks{path}"), token, body)
            .await
    }

    /// Creates a meeting and returns it; anything but 201 is an error.
    pub async fn create_meeting(&self, token: &str, body: &Value) -> anyhow::Result<Value> {
        self.try_create_meeting(token, body)
            .await?
            .expect(201)
            .context("creating a meeting")
    }

    /// A create with a valid request, whatever the answer.
    pub async fn try_create_meeting(&self, token: &str, body: &Value) -> anyhow::Result<Reply> {
        self.call(Method::POST, BASE, token, Some(body)).await
    }

    /// A create exactly as given: any token (or none), content type (or none) and bytes.
    pub async fn raw_create_meeting(
        &self,
        token: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Vec<u8>>,
    ) -> anyhow::Result<Reply> {
        let mut builder = request(&self.http, Method::POST, &self.service, BASE, token);
        if let Some(content_type) = content_type {
            builder = builder.header(CONTENT_TYPE, content_type);
        }
        send(&self.service, builder.body(body.into())).await
    }

    /// `POST /{code}/guest-join` without a token: a person without an account asks to join.
    pub async fn guest_join(&self, code: &str, display_name: &str) -> anyhow::Result<Reply> {
        let builder = request(
            &self.http,
            Method::POST,
            &self.service,
            &format!("{BASE}/{code}/guest-join"),
            None,
        )
        .json(&json!({ "display_name": display_name }));
        send(&self.service, builder).await
    }

    pub async fn get(&self, token: &str, code: &str) -> anyhow::Result<Reply> {
        self.call(Method::GET, &format!("{BASE}/{code}"), token, None)
            .await
    }

    pub async fn join(&self, token: &str, code: &str) -> anyhow::Result<Reply> {
        self.call(Method::POST, &format!("{BASE}/{code}/join"), token, None)
            .await
    }

    /// Joins and expects 200: the meeting token and signaling URL, among others.
    pub async fn joined(&self, token: &str, code: &str) -> anyhow::Result<Joined> {
        let body = self
            .join(token, code)
            .await?
            .expect(200)
            .with_context(|| format!("joining meeting {code}"))?;
        Joined::parse(body)
    }

    pub async fn admit(&self, token: &str, code: &str, user_id: &str) -> anyhow::Result<Reply> {
        self.call(
            Method::POST,
            &format!("{BASE}/{code}/admit/{user_id}"),
            token,
            None,
        )
        .await
    }

    pub async fn reject(&self, token: &str, code: &str, user_id: &str) -> anyhow::Result<Reply> {
        self.call(
            Method::POST,
            &format!("{BASE}/{code}/reject/{user_id}"),
            token,
            None,
        )
        .await
    }

    /// `POST /{code}/remove/{user_id}`: the host takes someone out.
    pub async fn remove(&self, token: &str, code: &str, user_id: &str) -> anyhow::Result<Reply> {
        self.call(
            Method::POST,
            &format!("{BASE}/{code}/remove/{user_id}"),
            token,
            None,
        )
        .await
    }

    /// The host makes a seated member of the org the host (DESIGN §12).
    pub async fn hand_over(&self, token: &str, code: &str, user_id: &str) -> anyhow::Result<Reply> {
        self.call(
            Method::POST,
            &format!("{BASE}/{code}/host/{user_id}"),
            token,
            None,
        )
        .await
    }

    pub async fn admit_all(&self, token: &str, code: &str) -> anyhow::Result<Reply> {
        self.call(
            Method::POST,
            &format!("{BASE}/{code}/admit-all"),
            token,
            None,
        )
        .await
    }

    pub async fn leave(&self, token: &str, code: &str) -> anyhow::Result<Reply> {
        self.call(Method::POST, &format!("{BASE}/{code}/leave"), token, None)
            .await
    }

    pub async fn end(&self, token: &str, code: &str) -> anyhow::Result<Reply> {
        self.call(Method::POST, &format!("{BASE}/{code}/end"), token, None)
            .await
    }

    pub async fn config(&self, token: &str, code: &str, body: &Value) -> anyhow::Result<Reply> {
        self.call(
            Method::PATCH,
            &format!("{BASE}/{code}/config"),
            token,
            Some(body),
        )
        .await
    }

    /// `GET /history?<query>`; `query` may be empty.
    pub async fn history(&self, token: &str, query: &str) -> anyhow::Result<Reply> {
        let path = if query.is_empty() {
            format!("{BASE}/history")
        } else {
            format!("{BASE}/history?{query}")
        };
        self.call(Method::GET, &path, token, None).await
    }
}

/// A meeting body with a display name and nothing else.
pub fn named(name: &str) -> Value {
    json!({"display_name": name})
}

/// The answer of a join.
#[derive(Clone, Debug)]
pub struct Joined {
    pub status: String,
    pub role: String,
    pub meeting_token: String,
    pub signaling_url: String,
    pub meeting: Value,
}

impl Joined {
    pub fn parse(body: Value) -> anyhow::Result<Joined> {
        let field = |name: &str| {
            body[name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("no {name} in the join answer {body}"))
        };
        Ok(Joined {
            status: field("status")?,
            role: field("role")?,
            meeting_token: field("meeting_token")?,
            signaling_url: field("signaling_url")?,
            meeting: body["meeting"].clone(),
        })
    }
}

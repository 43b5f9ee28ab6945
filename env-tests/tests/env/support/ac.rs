//! The auth controller as a client sees it: service tokens (client credentials), sign-in, the
//! admin API (orgs, users, service clients, key rotation) and the JWKS. Every org, user and
//! client a test makes has a name of its own, so tests never meet and can run again and again
//! against one stack.

use anyhow::{Context, bail};
use reqwest::{Client, Method};
use serde_json::{Value, json};
use uuid::Uuid;

use super::config::{Service, stack};
use super::http::{Reply, client, request, send};

/// A fresh lowercase identifier, for slugs, e-mail addresses and client ids.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::new_v4().simple())
}

#[derive(Clone)]
pub struct Ac {
    http: Client,
    service: Service,
}

impl Ac {
    pub fn new() -> Ac {
        Ac {
            http: client(),
            service: stack().ac.clone(),
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<Reply> {
        let mut builder = request(&self.http, method, &self.service, path, token);
        if let Some(body) = body {
            builder = builder.json(body);
        }
        send(&self.service, builder).await
    }

    /// A service token by client credentials (form body, HTTP Basic), as GC and MC get theirs.
    pub async fn service_token(&self, client_id: &str, secret: &str) -> anyhow::Result<String> {
        let builder = request(
            &self.http,
            Method::POST,
            &self.service,
            "/api/v1/auth/service/token",
            None,
        )
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")]);
        let body = send(&self.service, builder)
            .await?
            .expect(200)
            .with_context(|| format!("a service token for client {client_id}"))?;
        token_field(&body, "access_token")
    }

    /// The admin API, with a token of the admin client the environment names.
    pub async fn admin(&self) -> anyhow::Result<Admin> {
        let stack = stack();
        let token = self
            .service_token(&stack.admin_client_id, &stack.admin_client_secret)
            .await
            .context(
                "the admin client of CONVENE_ADMIN_CLIENT_ID / CONVENE_ADMIN_CLIENT_SECRET \
                 (a service client with the scope `admin`)",
            )?;
        Ok(Admin {
            ac: self.clone(),
            token,
        })
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> anyhow::Result<Reply> {
        self.call(
            Method::POST,
            "/api/v1/auth/user/token",
            None,
            Some(&json!({"email": email, "password": password})),
        )
        .await
    }

    pub async fn jwks(&self) -> anyhow::Result<Value> {
        self.call(Method::GET, "/.well-known/jwks.json", None, None)
            .await?
            .expect(200)
    }
}

fn token_field(body: &Value, field: &str) -> anyhow::Result<String> {
    match body[field].as_str() {
        Some(token) if !token.is_empty() => Ok(token.to_owned()),
        _ => bail!("no {field} in {body}"),
    }
}

/// An org's limits, as `POST /api/v1/admin/orgs` takes them.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_concurrent_meetings: i64,
    pub max_participants_per_meeting: i64,
}

impl Default for Limits {
    /// The defaults of DESIGN §6.
    fn default() -> Self {
        Limits {
            max_concurrent_meetings: 10,
            max_participants_per_meeting: 100,
        }
    }
}

#[derive(Clone)]
pub struct Admin {
    ac: Ac,
    pub token: String,
}

impl Admin {
    async fn post(&self, path: &str, body: Option<&Value>) -> anyhow::Result<Reply> {
        self.ac
            .call(Method::POST, path, Some(&self.token), body)
            .await
    }

    /// A new org with a slug of its own.
    pub async fn org(&self, limits: Limits) -> anyhow::Result<Org> {
        let slug = unique("envtest");
        let body = self
            .post(
                "/api/v1/admin/orgs",
                Some(&json!({
                    "slug": slug,
                    "name": format!("Env test {slug}"),
                    "max_concurrent_meetings": limits.max_concurrent_meetings,
                    "max_participants_per_meeting": limits.max_participants_per_meeting,
                })),
            )
            .await?
            .expect(201)
            .context("creating an org")?;
        Ok(Org {
            admin: self.clone(),
            id: body["org_id"]
                .as_str()
                .with_context(|| format!("no org_id in {body}"))?
                .to_owned(),
            slug,
        })
    }

    /// A new service client (`service_type` and scopes as given) and its secret, shown once.
    pub async fn service_client(
        &self,
        service_type: &str,
        scopes: &[&str],
    ) -> anyhow::Result<ServiceClient> {
        let client_id = unique("envtest");
        let body = self
            .post(
                "/api/v1/admin/service-clients",
                Some(&json!({
                    "client_id": client_id,
                    "service_type": service_type,
                    "scopes": scopes,
                })),
            )
            .await?
            .expect(201)
            .context("creating a service client")?;
        Ok(ServiceClient {
            client_id,
            secret: token_field(&body, "client_secret")?,
        })
    }

    /// `POST /api/v1/admin/keys/rotate`: `{kid, activates_at}` of the next signing key.
    pub async fn rotate_keys(&self) -> anyhow::Result<Value> {
        self.post("/api/v1/admin/keys/rotate", None)
            .await?
            .expect(200)
            .context("rotating the signing key")
    }
}

pub struct ServiceClient {
    pub client_id: String,
    pub secret: String,
}

/// An org of the test's own, and the way to its users.
pub struct Org {
    admin: Admin,
    pub id: String,
    pub slug: String,
}

impl Org {
    /// A new user with the role `user` (may create meetings), signed in.
    pub async fn user(&self, name: &str) -> anyhow::Result<User> {
        self.user_with_roles(name, &["user"]).await
    }

    /// A new user with exactly `roles` (possibly none), signed in.
    pub async fn user_with_roles(&self, name: &str, roles: &[&str]) -> anyhow::Result<User> {
        let email = format!("{}@env-tests.convene.test", unique("user"));
        let password = unique("password");
        let body = self
            .admin
            .post(
                &format!("/api/v1/admin/orgs/{}/users", self.id),
                Some(&json!({
                    "email": email,
                    "password": password,
                    "display_name": name,
                    "roles": roles,
                })),
            )
            .await?
            .expect(201)
            .with_context(|| format!("creating user {name} in org {}", self.slug))?;
        let id = body["user_id"]
            .as_str()
            .with_context(|| format!("no user_id in {body}"))?
            .to_owned();
        let signed_in = self
            .admin
            .ac
            .sign_in(&email, &password)
            .await?
            .expect(200)
            .with_context(|| format!("signing in user {name}"))?;
        Ok(User {
            id,
            email,
            password,
            token: token_field(&signed_in, "access_token")?,
        })
    }
}

pub struct User {
    pub id: String,
    pub email: String,
    pub password: String,
    /// A user token, fresh from sign-in.
    pub token: String,
}

/// A test's own world: the admin, one org with `limits`.
pub async fn org(limits: Limits) -> anyhow::Result<(Ac, Org)> {
    let ac = Ac::new();
    let org = ac.admin().await?.org(limits).await?;
    Ok((ac, org))
}

//! Development and test data: service clients, orgs and users loaded from a JSON file
//! (`ac-service seed --file scripts/dev-seed.json`), and by other services' tests through
//! [`apply`].
//!
//! Applying is idempotent: a record that already holds the file's values (including a secret or
//! password that still verifies against the stored hash) is not written again, and anything
//! that differs is brought to the file's values. Everything the file names ends up active: a
//! deactivated client, org or user is reactivated. Credentials exist only in the file;
//! production code never falls back to them.

use std::path::Path;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::{PgConnection, PgPool};

use crate::db::{orgs, service_credentials, users};
use crate::domain::password;
use crate::domain::validation::{
    ClientId, Email, MaxConcurrentMeetings, MaxParticipants, NewPassword, OrgName, Roles, Scopes,
    Slug, parse_display_name, parse_service_type,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    #[serde(default)]
    pub service_clients: Vec<SeedServiceClient>,
    #[serde(default)]
    pub orgs: Vec<SeedOrg>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedServiceClient {
    pub client_id: String,
    pub client_secret: SecretString,
    pub service_type: String,
    #[serde(default)]
    pub scopes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedOrg {
    pub slug: String,
    pub name: String,
    #[serde(default = "default_max_meetings")]
    pub max_concurrent_meetings: i64,
    #[serde(default = "default_max_participants")]
    pub max_participants_per_meeting: i64,
    #[serde(default)]
    pub users: Vec<SeedUser>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedUser {
    pub email: String,
    pub password: SecretString,
    pub display_name: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

fn default_max_meetings() -> i64 {
    10
}

fn default_max_participants() -> i64 {
    100
}

impl SeedFile {
    pub fn from_path(path: &Path) -> anyhow::Result<SeedFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read seed file {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("seed file {} is not valid", path.display()))
    }
}

/// Creates or updates everything in `seed`, in one transaction.
pub async fn apply(pool: &PgPool, seed: &SeedFile) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    for client in &seed.service_clients {
        apply_client(&mut tx, client)
            .await
            .with_context(|| format!("service client {}", client.client_id))?;
    }
    for org in &seed.orgs {
        apply_org(&mut tx, org)
            .await
            .with_context(|| format!("org {}", org.slug))?;
    }
    tx.commit().await?;
    Ok(())
}

async fn apply_client(conn: &mut PgConnection, client: &SeedServiceClient) -> anyhow::Result<()> {
    let client_id = ClientId::parse(&client.client_id)?;
    let service_type = parse_service_type(&client.service_type)?;
    let scopes = Scopes::parse(&client.scopes)?.into_vec();
    anyhow::ensure!(
        client.client_secret.expose_secret().len() >= 16,
        "client_secret must be at least 16 characters"
    );

    if let Some(existing) = service_credentials::find_for_seed(conn, client_id.as_str()).await? {
        let unchanged = existing.is_active
            && existing.service_type == service_type
            && sorted(existing.scopes.clone()) == scopes
            && password::verify(client.client_secret.clone(), existing.secret_hash.clone()).await?;
        if unchanged {
            return Ok(());
        }
    }
    let secret_hash = password::hash(client.client_secret.clone()).await?;
    service_credentials::upsert(
        conn,
        &service_credentials::NewCredential {
            client_id: client_id.as_str(),
            secret_hash: &secret_hash,
            service_type: &service_type,
            scopes: &scopes,
        },
    )
    .await?;
    Ok(())
}

async fn apply_org(conn: &mut PgConnection, org: &SeedOrg) -> anyhow::Result<()> {
    let slug = Slug::parse(&org.slug)?;
    let name = OrgName::parse(&org.name)?;
    let max_meetings = MaxConcurrentMeetings::parse(org.max_concurrent_meetings)?;
    let max_participants = MaxParticipants::parse(org.max_participants_per_meeting)?;
    let row = orgs::upsert(
        conn,
        &orgs::NewOrg {
            slug: slug.as_str(),
            name: name.as_str(),
            max_concurrent_meetings: max_meetings.get(),
            max_participants_per_meeting: max_participants.get(),
        },
    )
    .await?;
    for user in &org.users {
        apply_user(conn, row.id, user).await?;
    }
    Ok(())
}

async fn apply_user(
    conn: &mut PgConnection,
    org_id: uuid::Uuid,
    user: &SeedUser,
) -> anyhow::Result<()> {
    let email = Email::parse(&user.email)?;
    let display_name = parse_display_name(&user.display_name)?;
    let roles = Roles::parse(&user.roles)?.as_strings();
    let secret = NewPassword::parse(user.password.expose_secret())?.into_secret();

    let existing = users::find_for_seed(conn, email.as_str()).await?;
    if let Some(existing) = &existing {
        let unchanged = existing.org_id == org_id
            && existing.email == email.as_str()
            && existing.display_name == display_name.as_str()
            && sorted(existing.roles.clone()) == roles
            && existing.is_active
            && password::verify(secret.clone(), existing.password_hash.clone()).await?;
        if unchanged {
            return Ok(());
        }
    }
    let password_hash = password::hash(secret).await?;
    let new = users::NewUser {
        org_id,
        email: email.as_str(),
        password_hash: &password_hash,
        display_name: display_name.as_str(),
        roles: &roles,
    };
    match existing {
        Some(existing) => users::update_for_seed(conn, existing.id, &new).await?,
        None => users::insert_for_seed(conn, &new).await?,
    }
    Ok(())
}

fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values
}

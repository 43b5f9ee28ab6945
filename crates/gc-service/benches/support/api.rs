//! What the load generators ask GC before a run: rooms created as a host, and the files of
//! tokens and codes they pass between commands.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::json;

/// The non-empty lines of a file, at most `limit` of them (and at least `need`).
pub fn read_lines(path: &Path, need: usize, limit: usize) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(limit)
        .map(str::to_owned)
        .collect();
    if lines.len() < need.max(1) {
        bail!(
            "{} has {} lines, {} needed",
            path.display(),
            lines.len(),
            need.max(1)
        );
    }
    Ok(lines)
}

/// Creates a meeting as the host; returns its id and code.
pub async fn create_room(
    client: &reqwest::Client,
    url: &str,
    host_token: &str,
    display_name: &str,
    max_participants: usize,
    waiting_room: bool,
) -> anyhow::Result<(String, String)> {
    let settings = json!({ "waiting_room_enabled": waiting_room });
    create_room_with(
        client,
        url,
        host_token,
        display_name,
        max_participants,
        settings,
    )
    .await
}

/// [`create_room`] with the given settings object.
pub async fn create_room_with(
    client: &reqwest::Client,
    url: &str,
    host_token: &str,
    display_name: &str,
    max_participants: usize,
    settings: serde_json::Value,
) -> anyhow::Result<(String, String)> {
    let response = client
        .post(format!("{}/api/v1/meetings", url.trim_end_matches('/')))
        .bearer_auth(host_token)
        .json(&json!({
            "display_name": display_name,
            "max_participants": max_participants,
            "settings": settings,
        }))
        .send()
        .await?;
    let status = response.status();
    if status != reqwest::StatusCode::CREATED {
        bail!(
            "creating a room answered {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    let body: serde_json::Value = response.json().await?;
    let field = |name: &str| {
        body[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no {name} in the created meeting"))
    };
    Ok((field("meeting_id")?, field("meeting_code")?))
}

//! Rotating AC's signing key in the middle of a meeting: open sockets, tokens already issued
//! and new joins all keep working, before and after the new key starts to sign.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{Ac, GcClient, Limits, Socket, org, require_meeting_controllers};

/// The `kid` in a token's header.
fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .ok()
        .and_then(|header| header.kid)
        .unwrap_or_default()
}

fn published(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|key| key["kid"].as_str().map(str::to_owned))
        .collect()
}

/// A new key signs `AC_KEY_ACTIVATION_DELAY_SECS` after the rotation (60 s by default, 21 s on
/// the env-test stack) and AC switches to it within `AC_KEY_REFRESH_INTERVAL_SECS` (30 s, 1 s).
const NEW_KEY_SIGNS_WITHIN: Duration = Duration::from_secs(150);

#[tokio::test]
async fn rotating_the_signing_key_mid_meeting_breaks_nothing() -> anyhow::Result<()> {
    require_meeting_controllers().await?;
    let (ac, org) = org(Limits::default()).await?;
    let admin = ac.admin().await?;
    let host = org.user("Env Host").await?;
    let guest = org.user("Env Guest").await?;
    let gc = GcClient::new();
    let meeting = gc
        .create_meeting(
            &host.token,
            &json!({"display_name": "Through a rotation", "settings": {"waiting_room_enabled": false}}),
        )
        .await?;
    let code = meeting["meeting_code"].as_str().unwrap();
    let host_joined = gc.joined(&host.token, code).await?;
    let mut host_ws = Socket::open(&host_joined).await?;
    host_ws.wait_for("welcome").await?;
    let guest_joined = gc.joined(&guest.token, code).await?;
    let mut guest_ws = Socket::open(&guest_joined).await?;
    guest_ws.wait_for("welcome").await?;
    let old_kid = kid(&host.token);

    let rotated = admin.rotate_keys().await?;
    let new_kid = rotated["kid"].as_str().unwrap_or_default().to_owned();
    assert!(!new_kid.is_empty() && new_kid != old_kid, "{rotated}");
    let kids = published(&ac.jwks().await?);
    assert!(
        kids.contains(&new_kid) && kids.contains(&old_kid),
        "the JWKS publishes the next key before it signs, and keeps the current one: {kids:?}"
    );

    // Straight after the rotation: the sockets are served, and the tokens of before work.
    host_ws.ping().await?;
    guest_ws.ping().await?;
    gc.get(&host.token, code).await?.expect(200)?;

    // Wait for the new key to sign, keeping the sockets from going idle meanwhile.
    let newcomer = org.user("Newcomer").await?;
    let deadline = Instant::now() + NEW_KEY_SIGNS_WITHIN;
    let fresh_token = loop {
        let token = sign_in(&ac, &newcomer.email, &newcomer.password).await?;
        if kid(&token) == new_kid {
            break token;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "AC still signs with {} {} s after rotating to {new_kid} ({rotated})",
            kid(&token),
            NEW_KEY_SIGNS_WITHIN.as_secs()
        );
        host_ws.ping().await?;
        guest_ws.ping().await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
    };

    // A token of the new key is accepted by GC, and a join gets a meeting token of the new key
    // that MC accepts; the sockets of before hear the newcomer.
    let joined = gc.joined(&fresh_token, code).await?;
    assert_eq!(kid(&joined.meeting_token), new_kid);
    let mut newcomer_ws = Socket::open(&joined).await?;
    newcomer_ws.wait_for("welcome").await?;
    for ws in [&mut host_ws, &mut guest_ws] {
        let entered = ws
            .wait_for_where(
                "participant.joined",
                |e| e["user_id"] == newcomer.id.as_str(),
                Duration::from_secs(10),
            )
            .await?;
        assert_eq!(entered["role"], "guest");
    }
    // Tokens of the old key still work everywhere: a user token at GC, and a meeting token at
    // MC (the guest's second socket replaces the first).
    gc.get(&host.token, code).await?.expect(200)?;
    let mut guest_again = Socket::open(&guest_joined).await?;
    guest_again.wait_for("welcome").await?;
    assert_eq!(guest_ws.closed().await?.0, 4409);
    Ok(())
}

async fn sign_in(ac: &Ac, email: &str, password: &str) -> anyhow::Result<String> {
    let body = ac.sign_in(email, password).await?.expect(200)?;
    Ok(body["access_token"].as_str().unwrap_or_default().to_owned())
}

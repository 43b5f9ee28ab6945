//! Minting of the four token kinds. AC is the only signer in Convene; everything here signs
//! with the current signing key and names it in the `kid` header so verifiers pick the right
//! public key.

use std::time::Duration;

use common::jwt::{
    ALGORITHM, AUDIENCE_MEETING, AUDIENCE_SERVICE, AUDIENCE_USER, GuestClaims,
    MAX_GUEST_TOKEN_TTL_SECS, MeetingClaims, MeetingRole, Role, ServiceClaims, TokenType,
    UserClaims,
};
use jsonwebtoken::{Header, encode};
use serde::Serialize;
use uuid::Uuid;

use crate::config::Config;
use crate::keys::KeyStore;

/// A signed token and its lifetime in seconds.
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
}

/// What a meeting token says about its holder; GC decides it, AC only signs it.
pub struct MeetingGrant {
    pub user_id: Uuid,
    pub meeting_id: Uuid,
    pub meeting_code: String,
    pub org_id: Uuid,
    pub role: MeetingRole,
    pub name: String,
    /// `user_id` is a guest id (a guest without an account, DESIGN §12).
    pub guest: bool,
}

/// What a guest token says: one meeting, its org, and the name the guest gave. AC makes the
/// guest id.
pub struct GuestGrant {
    pub meeting_code: String,
    pub org_id: Uuid,
    pub name: String,
}

/// A signed guest token, with the guest id it made.
pub struct IssuedGuestToken {
    pub guest_id: Uuid,
    pub token: IssuedToken,
}

#[derive(Clone)]
pub struct TokenIssuer {
    keys: KeyStore,
    issuer: String,
    user_ttl: Duration,
    service_ttl: Duration,
    meeting_ttl: Duration,
    max_meeting_ttl: Duration,
}

impl TokenIssuer {
    pub fn new(keys: KeyStore, config: &Config) -> TokenIssuer {
        TokenIssuer {
            keys,
            issuer: config.jwt_issuer.clone(),
            user_ttl: Duration::from_secs(config.user_token_ttl_secs),
            service_ttl: Duration::from_secs(config.service_token_ttl_secs),
            meeting_ttl: Duration::from_secs(config.meeting_token_ttl_secs),
            max_meeting_ttl: Duration::from_secs(crate::config::MAX_MEETING_TOKEN_TTL_SECS),
        }
    }

    pub async fn issue_user(
        &self,
        user_id: Uuid,
        org_id: Uuid,
        roles: Vec<Role>,
        name: String,
    ) -> anyhow::Result<IssuedToken> {
        let (iat, exp) = window(self.user_ttl);
        let claims = UserClaims {
            iss: self.issuer.clone(),
            aud: AUDIENCE_USER.to_owned(),
            token_type: TokenType::User,
            sub: user_id,
            org_id,
            roles,
            name,
            jti: Uuid::new_v4(),
            iat,
            exp,
        };
        self.sign(&claims, TokenType::User, self.user_ttl).await
    }

    pub async fn issue_service(
        &self,
        client_id: &str,
        scope: &str,
        service_type: &str,
    ) -> anyhow::Result<IssuedToken> {
        let (iat, exp) = window(self.service_ttl);
        let claims = ServiceClaims {
            iss: self.issuer.clone(),
            aud: AUDIENCE_SERVICE.to_owned(),
            token_type: TokenType::Service,
            sub: client_id.to_owned(),
            scope: scope.to_owned(),
            service_type: service_type.to_owned(),
            jti: Uuid::new_v4(),
            iat,
            exp,
        };
        self.sign(&claims, TokenType::Service, self.service_ttl)
            .await
    }

    /// Signs a meeting token living `ttl_secs` (default: the configured lifetime), never more
    /// than 15 minutes.
    pub async fn issue_meeting(
        &self,
        grant: MeetingGrant,
        ttl_secs: Option<u64>,
    ) -> anyhow::Result<IssuedToken> {
        let ttl = ttl_secs
            .map(Duration::from_secs)
            .unwrap_or(self.meeting_ttl)
            .min(self.max_meeting_ttl);
        let (iat, exp) = window(ttl);
        let claims = MeetingClaims {
            iss: self.issuer.clone(),
            aud: AUDIENCE_MEETING.to_owned(),
            token_type: TokenType::Meeting,
            sub: grant.user_id,
            meeting_id: grant.meeting_id,
            meeting_code: grant.meeting_code,
            org_id: grant.org_id,
            role: grant.role,
            name: grant.name,
            guest: grant.guest,
            jti: Uuid::new_v4(),
            iat,
            exp,
        };
        self.sign(&claims, TokenType::Meeting, ttl).await
    }

    /// Signs a guest token for a new guest id, living `ttl_secs` (default and most: 2 hours).
    pub async fn issue_guest(
        &self,
        grant: GuestGrant,
        ttl_secs: Option<u64>,
    ) -> anyhow::Result<IssuedGuestToken> {
        self.issue_guest_as(Uuid::new_v4(), grant, ttl_secs).await
    }

    /// [`TokenIssuer::issue_guest`] for a guest id the caller chose (GC, which signs the
    /// guest's meeting token in the same request: see `routes::meeting_token`).
    pub async fn issue_guest_as(
        &self,
        guest_id: Uuid,
        grant: GuestGrant,
        ttl_secs: Option<u64>,
    ) -> anyhow::Result<IssuedGuestToken> {
        let most = Duration::from_secs(MAX_GUEST_TOKEN_TTL_SECS.unsigned_abs());
        let ttl = ttl_secs.map(Duration::from_secs).unwrap_or(most).min(most);
        let (iat, exp) = window(ttl);
        let claims = GuestClaims {
            iss: self.issuer.clone(),
            aud: AUDIENCE_USER.to_owned(),
            token_type: TokenType::Guest,
            sub: guest_id,
            meeting_code: grant.meeting_code,
            org_id: grant.org_id,
            name: grant.name,
            jti: Uuid::new_v4(),
            iat,
            exp,
        };
        let token = self.sign(&claims, TokenType::Guest, ttl).await?;
        Ok(IssuedGuestToken { guest_id, token })
    }

    async fn sign<C: Serialize>(
        &self,
        claims: &C,
        token_type: TokenType,
        ttl: Duration,
    ) -> anyhow::Result<IssuedToken> {
        let key = self.keys.signing_key().await;
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(key.kid.clone());
        let token = encode(&header, claims, key.encoding_key())?;
        crate::metrics::token_issued(token_type);
        Ok(IssuedToken {
            token,
            expires_in: ttl.as_secs(),
        })
    }
}

/// `iat` now and `exp` after `ttl`, in seconds since the epoch.
fn window(ttl: Duration) -> (i64, i64) {
    let iat = chrono::Utc::now().timestamp();
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    (iat, iat.saturating_add(ttl))
}

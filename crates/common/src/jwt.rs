//! Claim types of Convene's four tokens, shared by the signer (AC) and the verifiers (GC, MC).
//!
//! Every token is an Ed25519 JWT (`alg: EdDSA`) with a `kid` header. A token of one type is
//! never accepted where another is expected: each claim type names its `token_type` and its
//! audience, and the verifier checks both.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The only signature algorithm Convene issues or accepts.
pub const ALGORITHM: jsonwebtoken::Algorithm = jsonwebtoken::Algorithm::EdDSA;

/// Audience of user tokens (the public REST API).
pub const AUDIENCE_USER: &str = "convene-api";
/// Audience of service tokens (internal calls).
pub const AUDIENCE_SERVICE: &str = "convene-internal";
/// Audience of meeting tokens (the MC signaling WebSocket).
pub const AUDIENCE_MEETING: &str = "convene-mc";

/// Longest token a verifier will look at. Real tokens are well under 2 KiB; anything larger is
/// refused before it is base64-decoded or parsed.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Longest lifetime AC gives a meeting token.
pub const MAX_MEETING_TOKEN_TTL_SECS: i64 = 15 * 60;

/// Longest lifetime AC gives a guest token (DESIGN §12).
pub const MAX_GUEST_TOKEN_TTL_SECS: i64 = 2 * 60 * 60;

/// The `token_type` claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    User,
    Service,
    Meeting,
    Guest,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::User => "user",
            TokenType::Service => "service",
            TokenType::Meeting => "meeting",
            TokenType::Guest => "guest",
        }
    }
}

/// What a claim type must tell the verifier about itself.
pub trait TokenClaims: DeserializeOwned + Serialize + Clone + Send + Sync + 'static {
    /// The `token_type` a token of this kind carries.
    const TOKEN_TYPE: TokenType;
    /// The `aud` a token of this kind carries.
    const AUDIENCE: &'static str;

    /// The `token_type` this particular token claims to be.
    fn token_type(&self) -> TokenType;
    /// Issued-at, seconds since the Unix epoch.
    fn issued_at(&self) -> i64;
    /// Expiry, seconds since the Unix epoch.
    fn expires_at(&self) -> i64;
}

/// Implements [`TokenClaims`] for a claim type with the standard `token_type`, `iat` and
/// `exp` fields.
macro_rules! token_claims {
    ($claims:ty, $token_type:ident, $audience:expr) => {
        impl TokenClaims for $claims {
            const TOKEN_TYPE: TokenType = TokenType::$token_type;
            const AUDIENCE: &'static str = $audience;
            fn token_type(&self) -> TokenType {
                self.token_type
            }
            fn issued_at(&self) -> i64 {
                self.iat
            }
            fn expires_at(&self) -> i64 {
                self.exp
            }
        }
    };
}

/// A role a user may hold within their organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    OrgAdmin,
    Admin,
    /// A role this build does not know (issued by a newer AC). It grants nothing.
    #[serde(other)]
    Unknown,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::OrgAdmin => "org_admin",
            Role::Admin => "admin",
            Role::Unknown => "unknown",
        }
    }

    /// Parses a role name from an API request; unknown names are refused rather than kept.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "user" => Some(Role::User),
            "org_admin" => Some(Role::OrgAdmin),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Claims of a user token (`token_type: user`, `aud: convene-api`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct UserClaims {
    pub iss: String,
    pub aud: String,
    pub token_type: TokenType,
    /// The user id.
    pub sub: Uuid,
    pub org_id: Uuid,
    pub roles: Vec<Role>,
    /// Display name, for UIs; never logged.
    pub name: String,
    pub jti: Uuid,
    pub iat: i64,
    pub exp: i64,
}

impl UserClaims {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn has_any_role(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.has_role(*r))
    }
}

token_claims!(UserClaims, User, AUDIENCE_USER);

impl fmt::Debug for UserClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserClaims")
            .field("iss", &self.iss)
            .field("aud", &self.aud)
            .field("token_type", &self.token_type)
            .field("sub", &"[redacted]")
            .field("org_id", &self.org_id)
            .field("roles", &self.roles)
            .field("name", &"[redacted]")
            .field("jti", &"[redacted]")
            .field("iat", &self.iat)
            .field("exp", &self.exp)
            .finish()
    }
}

/// The `service_type` of a service credential.
pub mod service_type {
    pub const GLOBAL_CONTROLLER: &str = "global-controller";
    pub const MEETING_CONTROLLER: &str = "meeting-controller";
    pub const ADMIN: &str = "admin";
}

/// Scopes a service token may carry.
pub mod scope {
    /// Lets the holder ask AC for meeting tokens (granted to GC).
    pub const INTERNAL_MEETING_TOKEN: &str = "internal:meeting-token";
    /// Lets the holder use AC's administration API.
    pub const ADMIN: &str = "admin";
    /// Lets the holder call MC's internal gRPC API (`MeetingControllerService`). Granted to
    /// GC's credential; MC's server requires it together with `service_type`
    /// `global-controller`.
    pub const INTERNAL_MC: &str = "internal:mc";
    /// Lets the holder call GC's internal gRPC API (`GlobalControllerService`). Granted to
    /// MC's credential; GC's server requires it together with `service_type`
    /// `meeting-controller`.
    pub const INTERNAL_GC: &str = "internal:gc";
}

/// Claims of a service token (`token_type: service`, `aud: convene-internal`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceClaims {
    pub iss: String,
    pub aud: String,
    pub token_type: TokenType,
    /// The client id of the service credential.
    pub sub: String,
    /// Space-separated scopes.
    pub scope: String,
    pub service_type: String,
    pub jti: Uuid,
    pub iat: i64,
    pub exp: i64,
}

impl ServiceClaims {
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_ascii_whitespace()
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }
}

token_claims!(ServiceClaims, Service, AUDIENCE_SERVICE);

impl fmt::Debug for ServiceClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceClaims")
            .field("iss", &self.iss)
            .field("aud", &self.aud)
            .field("token_type", &self.token_type)
            .field("sub", &self.sub)
            .field("scope", &self.scope)
            .field("service_type", &self.service_type)
            .field("jti", &"[redacted]")
            .field("iat", &self.iat)
            .field("exp", &self.exp)
            .finish()
    }
}

/// A participant's role in one meeting: its host, or anyone else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MeetingRole {
    Host,
    Guest,
}

impl MeetingRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MeetingRole::Host => "host",
            MeetingRole::Guest => "guest",
        }
    }
}

/// Claims of a meeting token (`token_type: meeting`, `aud: convene-mc`), at most 15 minutes.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct MeetingClaims {
    pub iss: String,
    pub aud: String,
    pub token_type: TokenType,
    /// The user id.
    pub sub: Uuid,
    pub meeting_id: Uuid,
    pub meeting_code: String,
    pub org_id: Uuid,
    pub role: MeetingRole,
    pub name: String,
    /// The holder is a guest without an account (DESIGN §12): `sub` is their guest id, `role`
    /// is `guest`. Absent (false) for members, as in tokens signed before guests existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guest: bool,
    pub jti: Uuid,
    pub iat: i64,
    pub exp: i64,
}

token_claims!(MeetingClaims, Meeting, AUDIENCE_MEETING);

impl fmt::Debug for MeetingClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeetingClaims")
            .field("iss", &self.iss)
            .field("aud", &self.aud)
            .field("token_type", &self.token_type)
            .field("sub", &"[redacted]")
            .field("meeting_id", &self.meeting_id)
            .field("meeting_code", &self.meeting_code)
            .field("org_id", &self.org_id)
            .field("role", &self.role)
            .field("name", &"[redacted]")
            .field("guest", &self.guest)
            .field("jti", &"[redacted]")
            .field("iat", &self.iat)
            .field("exp", &self.exp)
            .finish()
    }
}

/// Claims of a guest token (`token_type: guest`, `aud: convene-api`), at most 2 hours: a person
/// without an account who asked to join one meeting by its link (DESIGN §12). GC accepts it
/// only on that meeting's get, join and leave; everywhere else it is refused, as a token of
/// another type is.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestClaims {
    pub iss: String,
    pub aud: String,
    pub token_type: TokenType,
    /// The guest id, made by AC when it signs the first token of that guest.
    pub sub: Uuid,
    /// The one meeting the token is good for.
    pub meeting_code: String,
    /// The meeting's organization.
    pub org_id: Uuid,
    /// The name the guest gave, as the room shows it; never logged.
    pub name: String,
    pub jti: Uuid,
    pub iat: i64,
    pub exp: i64,
}

token_claims!(GuestClaims, Guest, AUDIENCE_USER);

impl fmt::Debug for GuestClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuestClaims")
            .field("iss", &self.iss)
            .field("aud", &self.aud)
            .field("token_type", &self.token_type)
            .field("sub", &"[redacted]")
            .field("meeting_code", &self.meeting_code)
            .field("org_id", &self.org_id)
            .field("name", &"[redacted]")
            .field("jti", &"[redacted]")
            .field("iat", &self.iat)
            .field("exp", &self.exp)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_claims() -> UserClaims {
        UserClaims {
            iss: "convene-ac".into(),
            aud: AUDIENCE_USER.into(),
            token_type: TokenType::User,
            sub: Uuid::new_v4(),
            org_id: Uuid::new_v4(),
            roles: vec![Role::User],
            name: "Ada Lovelace".into(),
            jti: Uuid::new_v4(),
            iat: 1,
            exp: 2,
        }
    }

    #[test]
    fn user_claims_debug_redacts_subject_name_and_token_id() {
        let claims = user_claims();
        let shown = format!("{claims:?}");
        assert!(!shown.contains(&claims.sub.to_string()));
        assert!(!shown.contains(&claims.jti.to_string()));
        assert!(!shown.contains("Ada"));
        assert!(shown.contains(&claims.org_id.to_string()));
    }

    #[test]
    fn an_unknown_role_deserializes_but_grants_nothing() {
        let mut value = serde_json::to_value(user_claims()).unwrap();
        value["roles"] = serde_json::json!(["superuser"]);
        let claims: UserClaims = serde_json::from_value(value).unwrap();
        assert_eq!(claims.roles, vec![Role::Unknown]);
        assert!(!claims.has_any_role(&[Role::User, Role::OrgAdmin, Role::Admin]));
    }

    #[test]
    fn role_parse_refuses_names_it_does_not_know() {
        assert_eq!(Role::parse("org_admin"), Some(Role::OrgAdmin));
        assert_eq!(Role::parse("unknown"), None);
        assert_eq!(Role::parse("Admin"), None);
    }

    #[test]
    fn service_scopes_split_on_spaces() {
        let claims = ServiceClaims {
            iss: "i".into(),
            aud: AUDIENCE_SERVICE.into(),
            token_type: TokenType::Service,
            sub: "convene-gc".into(),
            scope: "internal:meeting-token  admin".into(),
            service_type: service_type::GLOBAL_CONTROLLER.into(),
            jti: Uuid::new_v4(),
            iat: 1,
            exp: 2,
        };
        assert!(claims.has_scope(scope::ADMIN));
        assert!(claims.has_scope(scope::INTERNAL_MEETING_TOKEN));
        assert!(!claims.has_scope("internal"));
    }
}

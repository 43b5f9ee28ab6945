//! Parsed input types. Each `parse` either returns a value that is valid by construction or a
//! [`ValidationError`] whose message is safe to show the caller (it never echoes the input,
//! which may be a password or an e-mail address).

use std::borrow::Cow;

use common::display_name::DisplayName;
use common::jwt::{Role, scope, service_type};
use common::meeting_code::MeetingCode;
use secrecy::SecretString;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(pub Cow<'static, str>);

fn invalid(message: &'static str) -> ValidationError {
    ValidationError(Cow::Borrowed(message))
}

/// Whether `text` holds a control character (C0, DEL or C1). None belongs in an identifier,
/// and PostgreSQL refuses NUL in text outright, so such input is refused before any query.
pub fn has_control_characters(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// An organization's URL-safe handle: `^[a-z0-9][a-z0-9-]{1,62}$`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slug(String);

impl Slug {
    pub fn parse(raw: &str) -> Result<Slug, ValidationError> {
        let bytes = raw.as_bytes();
        let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
        let valid =
            (2..=63).contains(&bytes.len()) && bytes[0] != b'-' && bytes.iter().all(allowed);
        if !valid {
            return Err(invalid(
                "slug must be 2-63 characters of a-z, 0-9 and '-', not starting with '-'",
            ));
        }
        Ok(Slug(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An organization's name, under the rules of every name people see in Convene
/// (`common::display_name`: trimmed, 1–255 characters, one visible line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgName(DisplayName);

impl OrgName {
    pub fn parse(raw: &str) -> Result<OrgName, ValidationError> {
        DisplayName::parse(raw)
            .map(OrgName)
            .map_err(|e| ValidationError(format!("name {e}").into()))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// A user's display name (`common::display_name`), or a 400 naming the field.
pub fn parse_display_name(raw: &str) -> Result<DisplayName, ValidationError> {
    DisplayName::parse(raw).map_err(|e| ValidationError(format!("display_name {e}").into()))
}

/// An org's limit of meetings in `scheduled` or `active` state at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxConcurrentMeetings(i32);

impl MaxConcurrentMeetings {
    pub const MAX: i32 = 100_000;

    pub fn parse(value: i64) -> Result<Self, ValidationError> {
        match i32::try_from(value) {
            Ok(v) if (1..=Self::MAX).contains(&v) => Ok(Self(v)),
            _ => Err(invalid(
                "max_concurrent_meetings must be between 1 and 100000",
            )),
        }
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// An org's limit of participants in one meeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxParticipants(i32);

impl MaxParticipants {
    pub const MAX: i32 = 10_000;

    pub fn parse(value: i64) -> Result<Self, ValidationError> {
        match i32::try_from(value) {
            Ok(v) if (2..=Self::MAX).contains(&v) => Ok(Self(v)),
            _ => Err(invalid(
                "max_participants_per_meeting must be between 2 and 10000",
            )),
        }
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// A syntactically plausible e-mail address (trimmed, at most 254 characters). Deliverability is
/// not AC's business; this only keeps garbage and oversized input out. It keeps the case as
/// typed; comparisons are case-insensitive in the database, never here.
#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, ValidationError> {
        const MESSAGE: &str = "email must be a valid address of at most 254 characters";
        let email = raw.trim();
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err(invalid(MESSAGE));
        };
        let plausible = email.len() <= 254
            && !local.is_empty()
            && local.len() <= 64
            && !local.contains('@')
            && domain.len() >= 3
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if !plausible {
            return Err(invalid(MESSAGE));
        }
        Ok(Email(email.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Email([redacted])")
    }
}

/// A new password: 8-1024 characters, kept secret.
pub struct NewPassword(SecretString);

impl NewPassword {
    pub fn parse(raw: &str) -> Result<NewPassword, ValidationError> {
        let count = raw.chars().count();
        if !(8..=1024).contains(&count) {
            return Err(invalid("password must be 8-1024 characters"));
        }
        Ok(NewPassword(SecretString::from(raw)))
    }

    pub fn into_secret(self) -> SecretString {
        self.0
    }
}

/// A set of user roles from the known set, without duplicates, in a stable order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roles(Vec<Role>);

impl Roles {
    pub fn parse(raw: &[String]) -> Result<Roles, ValidationError> {
        let mut roles = Vec::with_capacity(raw.len());
        for name in raw {
            let role = Role::parse(name)
                .ok_or_else(|| invalid("roles may only contain user, org_admin and admin"))?;
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        roles.sort_by_key(|r| r.as_str());
        Ok(Roles(roles))
    }

    pub fn contains(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    pub fn as_strings(&self) -> Vec<String> {
        self.0.iter().map(|r| r.as_str().to_owned()).collect()
    }
}

/// An OAuth client id: 3-64 characters of `a-z 0-9 . _ -`, starting with a letter or digit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(raw: &str) -> Result<ClientId, ValidationError> {
        let bytes = raw.as_bytes();
        let allowed = |b: &u8| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        };
        let valid = (3..=64).contains(&bytes.len())
            && bytes[0].is_ascii_alphanumeric()
            && bytes.iter().all(allowed);
        if !valid {
            return Err(invalid(
                "client_id must be 3-64 characters of a-z, 0-9, '.', '_' and '-'",
            ));
        }
        Ok(ClientId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The kinds of service a credential may be issued to.
pub const KNOWN_SERVICE_TYPES: &[&str] = &[
    service_type::GLOBAL_CONTROLLER,
    service_type::MEETING_CONTROLLER,
    service_type::ADMIN,
];

pub fn parse_service_type(raw: &str) -> Result<String, ValidationError> {
    if KNOWN_SERVICE_TYPES.contains(&raw) {
        Ok(raw.to_owned())
    } else {
        Err(invalid(
            "service_type must be one of global-controller, meeting-controller, admin",
        ))
    }
}

/// The scopes a service credential may hold.
pub const KNOWN_SCOPES: &[&str] = &[
    scope::ADMIN,
    scope::INTERNAL_MEETING_TOKEN,
    scope::INTERNAL_MC,
    scope::INTERNAL_GC,
];

/// A set of known scopes, without duplicates, in a stable order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Scopes(Vec<String>);

impl Scopes {
    pub fn parse(raw: &[String]) -> Result<Scopes, ValidationError> {
        let mut scopes: Vec<String> = Vec::with_capacity(raw.len());
        for name in raw {
            if !KNOWN_SCOPES.contains(&name.as_str()) {
                return Err(invalid(
                    "scopes may only contain admin, internal:meeting-token, internal:mc and internal:gc",
                ));
            }
            if !scopes.contains(name) {
                scopes.push(name.clone());
            }
        }
        scopes.sort();
        Ok(Scopes(scopes))
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// The public code of a meeting: 12 characters of `0-9A-Za-z` (DESIGN §6).
/// A token's requested lifetime in seconds: positive when given (the signer caps it).
pub fn parse_ttl_secs(raw: Option<i64>) -> Result<Option<u64>, ValidationError> {
    match raw {
        None => Ok(None),
        Some(ttl) => match u64::try_from(ttl) {
            Ok(ttl) if ttl > 0 => Ok(Some(ttl)),
            _ => Err(invalid("ttl_secs must be positive")),
        },
    }
}

pub fn parse_meeting_code(raw: &str) -> Result<String, ValidationError> {
    MeetingCode::parse(raw)
        .map(|code| code.as_str().to_owned())
        .ok_or_else(|| invalid("meeting_code must be 12 characters of 0-9, A-Z and a-z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_follows_the_documented_pattern() {
        for ok in ["ab", "demo", "acme-corp", "0x", &"a".repeat(63)] {
            assert!(Slug::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "a",
            "-ab",
            "Demo",
            "acme_corp",
            "acme corp",
            "",
            &"a".repeat(64),
            "é1",
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(OrgName::parse("  Demo  ").unwrap().as_str(), "Demo");
        assert!(OrgName::parse("   ").is_err());
        assert!(OrgName::parse(&"é".repeat(255)).is_ok());
        assert!(OrgName::parse(&"é".repeat(256)).is_err());
        assert!(DisplayName::parse("a\u{0}b").is_err());
    }

    #[test]
    fn names_that_break_or_disguise_a_line_are_refused_with_the_field_named() {
        for raw in [
            "evil\u{202E}gpj.exe",
            "two\u{2028}lines",
            "\u{3164}",
            "\u{200B}",
            "\u{FEFF}",
        ] {
            assert!(
                OrgName::parse(raw).unwrap_err().0.starts_with("name "),
                "{raw:?}"
            );
            assert!(
                parse_display_name(raw)
                    .unwrap_err()
                    .0
                    .starts_with("display_name "),
                "{raw:?}"
            );
        }
        assert_eq!(parse_display_name(" Zoë ").unwrap().as_str(), "Zoë");
    }

    #[test]
    fn limits_are_positive_and_bounded() {
        assert!(MaxConcurrentMeetings::parse(0).is_err());
        assert!(MaxConcurrentMeetings::parse(1).is_ok());
        assert!(MaxConcurrentMeetings::parse(100_001).is_err());
        assert!(MaxConcurrentMeetings::parse(i64::MAX).is_err());
        assert!(MaxParticipants::parse(1).is_err());
        assert!(MaxParticipants::parse(2).is_ok());
        assert!(MaxParticipants::parse(10_001).is_err());
    }

    #[test]
    fn email_must_be_plausible_and_short() {
        for ok in ["host@demo.test", "A.B+tag@Example.COM", " x@y.io "] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(190));
        for bad in [
            "",
            "nodomain",
            "@demo.test",
            "a@b",
            "a@.b.c",
            "a b@c.d",
            "a@b..c",
            &long,
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        // Kept as typed: case-insensitive comparison is PostgreSQL's `lower()` (see `db::users`).
        assert_eq!(
            Email::parse(" İnci@Example.com ").unwrap().as_str(),
            "İnci@Example.com"
        );
    }

    #[test]
    fn passwords_must_be_between_8_and_1024_characters() {
        assert!(NewPassword::parse("short").is_err());
        assert!(NewPassword::parse("12345678").is_ok());
        assert!(NewPassword::parse(&"p".repeat(1024)).is_ok());
        assert!(NewPassword::parse(&"p".repeat(1025)).is_err());
    }

    #[test]
    fn roles_and_scopes_come_from_the_known_sets() {
        let roles = Roles::parse(&["user".into(), "org_admin".into(), "user".into()]).unwrap();
        assert_eq!(roles.as_strings(), vec!["org_admin", "user"]);
        assert!(Roles::parse(&["root".into()]).is_err());
        assert!(Roles::parse(&[]).is_ok());
        let scopes = Scopes::parse(&["admin".into(), "admin".into()]).unwrap();
        assert_eq!(scopes.as_slice(), ["admin"]);
        assert!(Scopes::parse(&["internal:everything".into()]).is_err());
    }

    #[test]
    fn client_ids_service_types_and_meeting_codes_are_checked() {
        assert!(ClientId::parse("convene-gc").is_ok());
        assert!(ClientId::parse("Convene").is_err());
        assert!(ClientId::parse("ab").is_err());
        assert!(parse_service_type("global-controller").is_ok());
        assert!(parse_service_type("media").is_err());
        assert!(parse_meeting_code("Ab3dE5fG7hJ9").is_ok());
        assert!(parse_meeting_code("Ab3dE5fG7hJ").is_err());
        assert!(parse_meeting_code("Ab3dE5fG7hJ-").is_err());
    }
}

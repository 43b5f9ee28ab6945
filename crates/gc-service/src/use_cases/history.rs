//! `GET /history`: ended meetings the caller hosted (or, with `role`, attended), newest
//! `ended_at` first, a page at a time.

use common::jwt::UserClaims;
use sqlx::PgPool;

pub use crate::db::meetings::HistoryRole;
use crate::domain::meeting::{Meeting, ValidationError};
use crate::error::Error;

/// Largest page.
pub const MAX_PAGE_SIZE: u32 = 100;
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Pages beyond this are refused: offsets that deep cost a scan for nobody's benefit.
pub const MAX_PAGE: u32 = 10_000;

/// Which page of whose meetings, checked: `page` 1–[`MAX_PAGE`], `page_size`
/// 1–[`MAX_PAGE_SIZE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryRequest {
    role: HistoryRole,
    page: u32,
    page_size: u32,
}

impl HistoryRequest {
    /// The request from its query's values, each optional (`page` 1, [`DEFAULT_PAGE_SIZE`]
    /// and the meetings the caller hosted by default); the first rule broken otherwise.
    pub fn parse(
        page: Option<u32>,
        page_size: Option<u32>,
        role: Option<&str>,
    ) -> Result<HistoryRequest, ValidationError> {
        let page = page.unwrap_or(1);
        let page_size = page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE).contains(&page) {
            return Err(ValidationError::InvalidPage);
        }
        if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(ValidationError::InvalidPageSize);
        }
        let role = match role {
            None | Some("host") => HistoryRole::Host,
            Some("guest") => HistoryRole::Guest,
            Some("any") => HistoryRole::Any,
            Some(_) => return Err(ValidationError::InvalidHistoryRole),
        };
        Ok(HistoryRequest {
            role,
            page,
            page_size,
        })
    }
}

#[derive(Debug)]
pub struct HistoryPage {
    pub items: Vec<Meeting>,
    pub page: u32,
    pub page_size: u32,
    pub total: i64,
}

pub async fn history(
    pool: &PgPool,
    caller: &UserClaims,
    request: HistoryRequest,
) -> Result<HistoryPage, Error> {
    let HistoryRequest {
        role,
        page,
        page_size,
    } = request;
    let limit = i64::from(page_size);
    let offset = i64::from(page.saturating_sub(1)) * limit;
    let (items, total) =
        crate::db::meetings::history(pool, caller.sub, role, limit, offset).await?;
    Ok(HistoryPage {
        items,
        page,
        page_size,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_sizes_and_roles_are_checked_with_their_defaults() {
        let parsed = HistoryRequest::parse(None, None, None).unwrap();
        assert_eq!(
            parsed,
            HistoryRequest {
                role: HistoryRole::Host,
                page: 1,
                page_size: DEFAULT_PAGE_SIZE
            }
        );
        for (role, expected) in [
            ("host", HistoryRole::Host),
            ("guest", HistoryRole::Guest),
            ("any", HistoryRole::Any),
        ] {
            assert_eq!(
                HistoryRequest::parse(Some(MAX_PAGE), Some(MAX_PAGE_SIZE), Some(role)).unwrap(),
                HistoryRequest {
                    role: expected,
                    page: MAX_PAGE,
                    page_size: MAX_PAGE_SIZE
                }
            );
        }
        let refused = |page, size, role| HistoryRequest::parse(page, size, role).unwrap_err();
        assert_eq!(refused(Some(0), None, None), ValidationError::InvalidPage);
        assert_eq!(
            refused(Some(MAX_PAGE + 1), None, None),
            ValidationError::InvalidPage
        );
        assert_eq!(
            refused(None, Some(0), None),
            ValidationError::InvalidPageSize
        );
        assert_eq!(
            refused(None, Some(MAX_PAGE_SIZE + 1), None),
            ValidationError::InvalidPageSize
        );
        for role in ["", "Host", "host ", "h\0st", "ｈｏｓｔ"] {
            assert_eq!(
                refused(None, None, Some(role)),
                ValidationError::InvalidHistoryRole,
                "{role:?}"
            );
        }
        // The page is checked before the size, the size before the role.
        assert_eq!(
            refused(Some(0), Some(0), Some("x")),
            ValidationError::InvalidPage
        );
        assert_eq!(
            refused(None, Some(0), Some("x")),
            ValidationError::InvalidPageSize
        );
    }
}

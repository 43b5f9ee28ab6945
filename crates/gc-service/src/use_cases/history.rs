//! `GET /history`: ended meetings the caller hosted (or, with `role`, attended), newest
//! `ended_at` first, a page at a time.

use common::jwt::UserClaims;
use sqlx::PgPool;

pub use crate::db::meetings::HistoryRole;
use crate::domain::meeting::Meeting;
use crate::error::Error;

/// Largest page.
pub const MAX_PAGE_SIZE: u32 = 100;
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Pages beyond this are refused: offsets that deep cost a scan for nobody's benefit.
pub const MAX_PAGE: u32 = 10_000;

#[derive(Debug)]
pub struct HistoryPage {
    pub items: Vec<Meeting>,
    pub page: u32,
    pub page_size: u32,
    pub total: i64,
}

/// `page` from 1 and `page_size` 1–100 are checked by the caller (they are request rules).
pub async fn history(
    pool: &PgPool,
    caller: &UserClaims,
    role: HistoryRole,
    page: u32,
    page_size: u32,
) -> Result<HistoryPage, Error> {
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

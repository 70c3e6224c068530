//! Helpers every table module shares: field validation, the clock, minting ids and
//! tokens, and mapping database errors. Nothing here knows a particular table.

use rand::thread_rng;
use time::OffsetDateTime;
use warren_model::fields;
use warren_model::ids::{self, IdPrefix};
use warren_model::token::{self, TokenHash};

use crate::{Store, StoreError};

/// Checks `description` and `metadata` against the model's byte limits.
pub(crate) fn check_description_and_metadata(
    description: &str,
    metadata: &str,
) -> Result<(), StoreError> {
    fields::check_description(description)
        .and_then(|()| fields::check_metadata(metadata))
        .map_err(|e| StoreError::Invalid {
            field: e.field,
            reason: e.to_string(),
        })
}

/// Checks that an operator-provided token has an acceptable shape.
pub(crate) fn check_token(token: &str) -> Result<(), StoreError> {
    token::check_token_shape(token).map_err(|e| StoreError::Invalid {
        field: "token",
        reason: e.to_string(),
    })
}

/// The current time truncated to whole seconds, with its Unix timestamp.
pub(crate) fn now() -> (OffsetDateTime, i64) {
    let secs = OffsetDateTime::now_utc().unix_timestamp();
    (
        unix_to_time(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        secs,
    )
}

/// Converts a stored Unix timestamp back to a time.
pub(crate) fn unix_to_time(secs: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(secs).ok()
}

/// A fresh id for `prefix` created at `now_secs`, with a generated token sharing its body.
pub(crate) fn new_id_and_token(prefix: IdPrefix, now_secs: i64) -> (String, String) {
    let mut rng = thread_rng();
    let body = ids::new_id_body(u64::try_from(now_secs).unwrap_or(0), &mut rng);
    let token = token::generate_token(&body, &mut rng);
    (format!("{prefix}_{body}"), token)
}

/// A fresh id for `prefix` created at `now_secs` (for rows whose token comes from outside).
pub(crate) fn new_id(prefix: IdPrefix, now_secs: i64) -> String {
    ids::new_id(
        prefix,
        u64::try_from(now_secs).unwrap_or(0),
        &mut thread_rng(),
    )
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`]; other errors pass.
pub(crate) fn conflict_on_unique(err: sqlx::Error, what: &'static str) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict { what },
        _ => StoreError::Database(err),
    }
}

/// Confirms, in constant time, that the hash stored in a row found by `token_hash = $1`
/// equals `wanted`. The index lookup already matched; this comparison is the one that
/// decides, so a lookup quirk (collation, case) can never admit a wrong token.
pub(crate) fn stored_hash_matches(
    table: &'static str,
    id: &str,
    stored_hex: &str,
    wanted: &TokenHash,
) -> Result<bool, StoreError> {
    let stored = TokenHash::from_hex(stored_hex).map_err(|e| StoreError::Corrupt {
        table,
        id: id.to_string(),
        reason: format!("token_hash: {e}"),
    })?;
    Ok(stored.ct_eq(wanted))
}

/// A row found by its token: its id and the stored token hash.
pub(crate) trait TokenRow {
    /// The table the row comes from (for corruption reports).
    const TABLE: &'static str;
    fn id(&self) -> &str;
    fn token_hash(&self) -> &str;
}

/// Finds the row of `select` (a `SELECT … FROM table` without `WHERE`) whose token is `token`.
/// A token of the wrong shape is not looked up; a found row must also pass
/// [`stored_hash_matches`].
pub(crate) async fn row_by_token<R>(
    store: &Store,
    select: &str,
    token: &str,
) -> Result<Option<R>, StoreError>
where
    R: TokenRow
        + Send
        + Unpin
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    if !token::looks_like_token(token) {
        return Ok(None);
    }
    let hash = token::hash_token(token);
    let sql = format!("{select} WHERE token_hash = $1");
    let row: Option<R> = with_pool!(store, |pool| {
        sqlx::query_as(&sql)
            .bind(hash.hex())
            .fetch_optional(pool)
            .await?
    });
    match row {
        Some(row) if stored_hash_matches(R::TABLE, row.id(), row.token_hash(), &hash)? => {
            Ok(Some(row))
        }
        _ => Ok(None),
    }
}

/// Up to `limit` rows of `select` (a `SELECT … FROM table` without `WHERE`) whose id sorts
/// before `before_id` (every row when `None`), newest first. Ids are time-ordered, so id
/// order is creation order.
pub(crate) async fn list_rows<R>(
    store: &Store,
    select: &str,
    before_id: Option<&str>,
    limit: usize,
) -> Result<Vec<R>, StoreError>
where
    R: Send
        + Unpin
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows: Vec<R> = match before_id {
        Some(before) => {
            let sql = format!("{select} WHERE id < $1 ORDER BY id DESC LIMIT $2");
            with_pool!(store, |pool| {
                sqlx::query_as(&sql)
                    .bind(before)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            })
        }
        None => {
            let sql = format!("{select} ORDER BY id DESC LIMIT $1");
            with_pool!(store, |pool| {
                sqlx::query_as(&sql).bind(limit).fetch_all(pool).await?
            })
        }
    };
    Ok(rows)
}

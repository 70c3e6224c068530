//! The `service_users` table: machine accounts (ngrok's service users, formerly bot users)
//! that own credentials and API keys.
//!
//! Columns: `id` (`service_…`), `name` (1..=255 bytes, unique), `active`, `created_at` (Unix
//! seconds). The legacy `bot_…` spelling of an id is the API's business: the store only
//! knows `service_…`. Deleting a service user does not touch what it owns; callers that
//! cascade use [`Store::delete_service_user_cascade`].

use time::OffsetDateTime;
use warren_model::ids::IdPrefix;

use crate::common::{self, conflict_on_unique};
use crate::{Store, StoreError};

/// Longest service user name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// A stored service user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUser {
    /// `service_…`.
    pub id: String,
    /// Human-readable name, unique.
    pub name: String,
    /// Whether its credentials may connect agents and its API keys may call the API.
    pub active: bool,
    /// When it was created (whole seconds, UTC).
    pub created_at: OffsetDateTime,
}

/// What a service user update changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceUserUpdate {
    /// A new name.
    pub name: Option<String>,
    /// A new active flag.
    pub active: Option<bool>,
}

/// What [`Store::delete_service_user_cascade`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CascadeDeleted {
    /// Ids of the credentials the service user owned.
    pub credentials: Vec<String>,
    /// Ids of the API keys the service user owned.
    pub api_keys: Vec<String>,
}

const SELECT_COLUMNS: &str = "SELECT id, name, active, created_at FROM service_users";

/// A `service_users` row as read back.
#[derive(sqlx::FromRow)]
struct ServiceUserRow {
    id: String,
    name: String,
    active: bool,
    created_at: i64,
}

impl ServiceUserRow {
    fn into_service_user(self) -> Result<ServiceUser, StoreError> {
        let created_at =
            common::unix_to_time(self.created_at).ok_or_else(|| StoreError::Corrupt {
                table: "service_users",
                id: self.id.clone(),
                reason: "created_at out of range".to_string(),
            })?;
        Ok(ServiceUser {
            id: self.id,
            name: self.name,
            active: self.active,
            created_at,
        })
    }
}

/// Checks a service user name: non-empty, at most [`MAX_NAME_BYTES`].
fn check_name(name: &str) -> Result<(), StoreError> {
    let reason = if name.trim().is_empty() {
        "name is required".to_string()
    } else if name.len() > MAX_NAME_BYTES {
        format!("name is longer than {MAX_NAME_BYTES} bytes")
    } else {
        return Ok(());
    };
    Err(StoreError::Invalid {
        field: "name",
        reason,
    })
}

impl Store {
    /// Creates a service user. A name already in use is a [`StoreError::Conflict`].
    pub async fn create_service_user(
        &self,
        name: &str,
        active: bool,
    ) -> Result<ServiceUser, StoreError> {
        check_name(name)?;
        let (created_at, now) = common::now();
        let id = common::new_id(IdPrefix::ServiceUser, now);
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO service_users (id, name, active, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&id)
            .bind(name)
            .bind(active)
            .bind(now)
            .execute(pool)
            .await
            .map_err(|e| conflict_on_unique(e, "a service user with this name"))?;
        });
        tracing::debug!(%id, "service user created");
        Ok(ServiceUser {
            id,
            name: name.to_string(),
            active,
            created_at,
        })
    }

    /// Finds a service user by id (`service_…`).
    pub async fn service_user(&self, id: &str) -> Result<Option<ServiceUser>, StoreError> {
        let sql = format!("{SELECT_COLUMNS} WHERE id = $1");
        let row: Option<ServiceUserRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        row.map(ServiceUserRow::into_service_user).transpose()
    }

    /// Up to `limit` service users created before `before_id` (all when `None`), newest first.
    pub async fn list_service_users(
        &self,
        before_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ServiceUser>, StoreError> {
        let rows: Vec<ServiceUserRow> =
            common::list_rows(self, SELECT_COLUMNS, before_id, limit).await?;
        rows.into_iter()
            .map(ServiceUserRow::into_service_user)
            .collect()
    }

    /// Applies `update` to service user `id`. Returns the updated row, or `None` when it does
    /// not exist. A name already in use is a [`StoreError::Conflict`].
    pub async fn update_service_user(
        &self,
        id: &str,
        update: ServiceUserUpdate,
    ) -> Result<Option<ServiceUser>, StoreError> {
        if let Some(name) = &update.name {
            check_name(name)?;
        }
        let updated = with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE service_users SET name = COALESCE($2, name), \
                 active = COALESCE($3, active) WHERE id = $1",
            )
            .bind(id)
            .bind(&update.name)
            .bind(update.active)
            .execute(pool)
            .await
            .map_err(|e| conflict_on_unique(e, "a service user with this name"))?
            .rows_affected()
        });
        if updated == 0 {
            return Ok(None);
        }
        self.service_user(id).await
    }

    /// Deletes service user `id` only. Returns whether it existed.
    pub async fn delete_service_user(&self, id: &str) -> Result<bool, StoreError> {
        let deleted = with_pool!(self, |pool| {
            sqlx::query("DELETE FROM service_users WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(deleted > 0)
    }

    /// Deletes service user `id` together with every credential and API key it owns, in one
    /// transaction. Returns `None` when it does not exist, else the ids removed with it (the
    /// caller revokes the live sessions of those credentials).
    pub async fn delete_service_user_cascade(
        &self,
        id: &str,
    ) -> Result<Option<CascadeDeleted>, StoreError> {
        let deleted = with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let credentials: Vec<String> =
                sqlx::query_scalar("DELETE FROM credentials WHERE owner_id = $1 RETURNING id")
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?;
            let api_keys: Vec<String> =
                sqlx::query_scalar("DELETE FROM api_keys WHERE owner_id = $1 RETURNING id")
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?;
            let users = sqlx::query("DELETE FROM service_users WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if users == 0 {
                tx.rollback().await?;
                None
            } else {
                tx.commit().await?;
                Some(CascadeDeleted {
                    credentials,
                    api_keys,
                })
            }
        });
        if deleted.is_some() {
            tracing::debug!(%id, "service user deleted with what it owned");
        }
        Ok(deleted)
    }
}

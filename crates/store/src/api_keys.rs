//! The `api_keys` table: bearer tokens for the REST API.
//!
//! Columns: `id` (`ak_…`), `token_hash` (hex SHA-256, unique), `description` (≤255 bytes),
//! `metadata` (≤4096 bytes), `owner_id` (nullable), `created_at` (Unix seconds). A
//! generated token shares the id's body (`ak_<body>` ↔ `<body>_<secret>`).

use time::OffsetDateTime;
use warren_model::hash_token;
use warren_model::ids::IdPrefix;

use crate::common::{self, conflict_on_unique};
use crate::{Store, StoreError};

/// What the caller supplies to create an API key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewApiKey {
    /// Human-readable description, at most 255 bytes.
    pub description: String,
    /// Arbitrary machine-readable text, at most 4096 bytes.
    pub metadata: String,
    /// The owning user or service user, if any.
    pub owner_id: Option<String>,
}

/// What an API key update changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiKeyUpdate {
    /// A new description, at most 255 bytes.
    pub description: Option<String>,
    /// New metadata, at most 4096 bytes.
    pub metadata: Option<String>,
}

/// A stored API key. Its token is not here: it exists only in the create response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// `ak_…`.
    pub id: String,
    /// Human-readable description.
    pub description: String,
    /// Machine-readable metadata.
    pub metadata: String,
    /// The owning user or service user, if any.
    pub owner_id: Option<String>,
    /// When it was created (whole seconds, UTC).
    pub created_at: OffsetDateTime,
}

const SELECT_COLUMNS: &str =
    "SELECT id, token_hash, description, metadata, owner_id, created_at FROM api_keys";

/// An `api_keys` row as read back.
#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: String,
    token_hash: String,
    description: String,
    metadata: String,
    owner_id: Option<String>,
    created_at: i64,
}

impl common::TokenRow for ApiKeyRow {
    const TABLE: &'static str = "api_keys";
    fn id(&self) -> &str {
        &self.id
    }
    fn token_hash(&self) -> &str {
        &self.token_hash
    }
}

impl ApiKeyRow {
    fn into_api_key(self) -> Result<ApiKey, StoreError> {
        let created_at =
            common::unix_to_time(self.created_at).ok_or_else(|| StoreError::Corrupt {
                table: "api_keys",
                id: self.id.clone(),
                reason: "created_at out of range".to_string(),
            })?;
        Ok(ApiKey {
            id: self.id,
            description: self.description,
            metadata: self.metadata,
            owner_id: self.owner_id,
            created_at,
        })
    }
}

impl Store {
    /// Creates an API key with a freshly generated token. Returns the key and the token —
    /// the only time the token is available.
    pub async fn create_api_key(&self, description: &str) -> Result<(ApiKey, String), StoreError> {
        self.create_api_key_from(NewApiKey {
            description: description.to_string(),
            ..NewApiKey::default()
        })
        .await
    }

    /// Creates an API key with metadata and an owner and a freshly generated token. Returns
    /// the key and the token — the only time the token is available.
    pub async fn create_api_key_from(
        &self,
        new: NewApiKey,
    ) -> Result<(ApiKey, String), StoreError> {
        let (created_at, now) = common::now();
        let (id, token) = common::new_id_and_token(IdPrefix::ApiKey, now);
        let key = self.insert_api_key(id, new, &token, created_at).await?;
        Ok((key, token))
    }

    /// Creates an API key whose token the operator chose. The token must be 8..=256 bytes
    /// of printable ASCII without whitespace; a token already used by another API key is a
    /// [`StoreError::Conflict`].
    pub async fn create_api_key_with_token(
        &self,
        description: &str,
        token: &str,
    ) -> Result<ApiKey, StoreError> {
        common::check_token(token)?;
        let (created_at, now) = common::now();
        let id = common::new_id(IdPrefix::ApiKey, now);
        let new = NewApiKey {
            description: description.to_string(),
            ..NewApiKey::default()
        };
        self.insert_api_key(id, new, token, created_at).await
    }

    /// Finds the API key whose token is `token`; `None` for a wrong or malformed token.
    pub async fn api_key_by_token(&self, token: &str) -> Result<Option<ApiKey>, StoreError> {
        common::row_by_token::<ApiKeyRow>(self, SELECT_COLUMNS, token)
            .await?
            .map(ApiKeyRow::into_api_key)
            .transpose()
    }

    /// Finds an API key by id.
    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let sql = format!("{SELECT_COLUMNS} WHERE id = $1");
        let row: Option<ApiKeyRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        row.map(ApiKeyRow::into_api_key).transpose()
    }

    /// Up to `limit` API keys created before `before_id` (all when `None`), newest first.
    pub async fn list_api_keys(
        &self,
        before_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ApiKey>, StoreError> {
        let rows: Vec<ApiKeyRow> =
            common::list_rows(self, SELECT_COLUMNS, before_id, limit).await?;
        rows.into_iter().map(ApiKeyRow::into_api_key).collect()
    }

    /// Applies `update` to API key `id`. Returns the updated key, or `None` when it does not
    /// exist.
    pub async fn update_api_key(
        &self,
        id: &str,
        update: ApiKeyUpdate,
    ) -> Result<Option<ApiKey>, StoreError> {
        common::check_description_and_metadata(
            update.description.as_deref().unwrap_or(""),
            update.metadata.as_deref().unwrap_or(""),
        )?;
        let updated = with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE api_keys SET description = COALESCE($2, description), \
                 metadata = COALESCE($3, metadata) WHERE id = $1",
            )
            .bind(id)
            .bind(&update.description)
            .bind(&update.metadata)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if updated == 0 {
            return Ok(None);
        }
        tracing::debug!(%id, "api key updated");
        self.api_key(id).await
    }

    /// Deletes (revokes) an API key. Returns whether it existed.
    pub async fn delete_api_key(&self, id: &str) -> Result<bool, StoreError> {
        let deleted = with_pool!(self, |pool| {
            sqlx::query("DELETE FROM api_keys WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if deleted > 0 {
            tracing::debug!(%id, "api key deleted");
        }
        Ok(deleted > 0)
    }

    async fn insert_api_key(
        &self,
        id: String,
        new: NewApiKey,
        token: &str,
        created_at: OffsetDateTime,
    ) -> Result<ApiKey, StoreError> {
        common::check_description_and_metadata(&new.description, &new.metadata)?;
        let token_hash = hash_token(token).hex();
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO api_keys (id, token_hash, description, metadata, owner_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(&token_hash)
            .bind(&new.description)
            .bind(&new.metadata)
            .bind(&new.owner_id)
            .bind(created_at.unix_timestamp())
            .execute(pool)
            .await
            .map_err(|e| conflict_on_unique(e, "an API key with this token"))?;
        });
        tracing::debug!(%id, "api key created");
        Ok(ApiKey {
            id,
            description: new.description,
            metadata: new.metadata,
            owner_id: new.owner_id,
            created_at,
        })
    }
}

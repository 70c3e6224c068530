//! The `credentials` table: tunnel authtokens, each with an ACL and an optional owner.
//!
//! Columns: `id` (`cr_…`), `token_hash` (hex SHA-256, unique), `description` (≤255 bytes),
//! `metadata` (≤4096 bytes), `acl` (JSON array of rule strings, validated by
//! [`warren_model::Acl`], stored as given), `owner_id` (nullable), `created_at` (Unix
//! seconds). A generated token shares the id's body (`cr_<body>` ↔ `<body>_<secret>`).

use time::OffsetDateTime;
use warren_model::ids::IdPrefix;
use warren_model::{Acl, hash_token};

use crate::common::{self, conflict_on_unique};
use crate::{Store, StoreError};

/// What the caller supplies to create a credential.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewCredential {
    /// Human-readable description, at most 255 bytes.
    pub description: String,
    /// Arbitrary machine-readable text, at most 4096 bytes.
    pub metadata: String,
    /// ACL rules (`*`, `bind:…`); empty means unrestricted.
    pub acl: Vec<String>,
    /// The owning user or service user, if any.
    pub owner_id: Option<String>,
}

/// What a credential update changes; `None` leaves a field as it is. A new `acl` replaces
/// the whole list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialUpdate {
    /// A new description, at most 255 bytes.
    pub description: Option<String>,
    /// New metadata, at most 4096 bytes.
    pub metadata: Option<String>,
    /// New ACL rules (validated by [`warren_model::Acl::parse`]).
    pub acl: Option<Vec<String>>,
}

/// A stored credential. Its token is not here: it exists only in the create response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// `cr_…`.
    pub id: String,
    /// Human-readable description.
    pub description: String,
    /// Machine-readable metadata.
    pub metadata: String,
    /// ACL rules as given at creation (each valid per [`warren_model::acl`]).
    pub acl: Vec<String>,
    /// The owning user or service user, if any.
    pub owner_id: Option<String>,
    /// When it was created (whole seconds, UTC).
    pub created_at: OffsetDateTime,
}

const SELECT_COLUMNS: &str =
    "SELECT id, token_hash, description, metadata, acl, owner_id, created_at FROM credentials";

/// A `credentials` row as read back.
#[derive(sqlx::FromRow)]
struct CredentialRow {
    id: String,
    token_hash: String,
    description: String,
    metadata: String,
    acl: String,
    owner_id: Option<String>,
    created_at: i64,
}

impl common::TokenRow for CredentialRow {
    const TABLE: &'static str = "credentials";
    fn id(&self) -> &str {
        &self.id
    }
    fn token_hash(&self) -> &str {
        &self.token_hash
    }
}

impl CredentialRow {
    fn into_credential(self) -> Result<Credential, StoreError> {
        let corrupt = |id: &str, reason: String| StoreError::Corrupt {
            table: "credentials",
            id: id.to_string(),
            reason,
        };
        let acl: Vec<String> =
            serde_json::from_str(&self.acl).map_err(|e| corrupt(&self.id, format!("acl: {e}")))?;
        let created_at = common::unix_to_time(self.created_at)
            .ok_or_else(|| corrupt(&self.id, "created_at out of range".to_string()))?;
        Ok(Credential {
            id: self.id,
            description: self.description,
            metadata: self.metadata,
            acl,
            owner_id: self.owner_id,
            created_at,
        })
    }
}

impl Store {
    /// Creates a credential with a freshly generated token. Returns the credential and
    /// the token — the only time the token is available.
    pub async fn create_credential(
        &self,
        new: NewCredential,
    ) -> Result<(Credential, String), StoreError> {
        let (created_at, now) = common::now();
        let (id, token) = common::new_id_and_token(IdPrefix::Credential, now);
        let credential = self.insert_credential(id, new, &token, created_at).await?;
        Ok((credential, token))
    }

    /// Creates a credential whose token the operator chose (for example
    /// `WARREN_AUTHTOKEN`). The token must be 8..=256 bytes of printable ASCII without
    /// whitespace; a token already used by another credential is a
    /// [`StoreError::Conflict`].
    pub async fn create_credential_with_token(
        &self,
        new: NewCredential,
        token: &str,
    ) -> Result<Credential, StoreError> {
        common::check_token(token)?;
        let (created_at, now) = common::now();
        let id = common::new_id(IdPrefix::Credential, now);
        self.insert_credential(id, new, token, created_at).await
    }

    /// Finds the credential whose token is `token`. A token of the wrong shape, or one
    /// that matches nothing, yields `None`; use [`warren_model::token::check_token_shape`]
    /// first to tell "malformed" from "invalid".
    pub async fn credential_by_token(&self, token: &str) -> Result<Option<Credential>, StoreError> {
        common::row_by_token::<CredentialRow>(self, SELECT_COLUMNS, token)
            .await?
            .map(CredentialRow::into_credential)
            .transpose()
    }

    /// Finds a credential by id.
    pub async fn credential(&self, id: &str) -> Result<Option<Credential>, StoreError> {
        let sql = format!("{SELECT_COLUMNS} WHERE id = $1");
        let row: Option<CredentialRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        row.map(CredentialRow::into_credential).transpose()
    }

    /// Up to `limit` credentials created before `before_id` (all when `None`), newest first.
    pub async fn list_credentials(
        &self,
        before_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Credential>, StoreError> {
        let rows: Vec<CredentialRow> =
            common::list_rows(self, SELECT_COLUMNS, before_id, limit).await?;
        rows.into_iter()
            .map(CredentialRow::into_credential)
            .collect()
    }

    /// Applies `update` to credential `id`. Returns the updated credential, or `None` when
    /// it does not exist.
    pub async fn update_credential(
        &self,
        id: &str,
        update: CredentialUpdate,
    ) -> Result<Option<Credential>, StoreError> {
        common::check_description_and_metadata(
            update.description.as_deref().unwrap_or(""),
            update.metadata.as_deref().unwrap_or(""),
        )?;
        let acl_json = update
            .acl
            .as_ref()
            .map(|acl| acl_to_json(acl))
            .transpose()?;
        let updated = with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE credentials SET description = COALESCE($2, description), \
                 metadata = COALESCE($3, metadata), acl = COALESCE($4, acl) WHERE id = $1",
            )
            .bind(id)
            .bind(&update.description)
            .bind(&update.metadata)
            .bind(&acl_json)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if updated == 0 {
            return Ok(None);
        }
        tracing::debug!(%id, "credential updated");
        self.credential(id).await
    }

    /// Deletes (revokes) a credential. Returns whether it existed.
    pub async fn delete_credential(&self, id: &str) -> Result<bool, StoreError> {
        let deleted = with_pool!(self, |pool| {
            sqlx::query("DELETE FROM credentials WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if deleted > 0 {
            tracing::debug!(%id, "credential deleted");
        }
        Ok(deleted > 0)
    }

    async fn insert_credential(
        &self,
        id: String,
        new: NewCredential,
        token: &str,
        created_at: OffsetDateTime,
    ) -> Result<Credential, StoreError> {
        common::check_description_and_metadata(&new.description, &new.metadata)?;
        let acl_json = acl_to_json(&new.acl)?;
        let token_hash = hash_token(token).hex();
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO credentials \
                 (id, token_hash, description, metadata, acl, owner_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&id)
            .bind(&token_hash)
            .bind(&new.description)
            .bind(&new.metadata)
            .bind(&acl_json)
            .bind(&new.owner_id)
            .bind(created_at.unix_timestamp())
            .execute(pool)
            .await
            .map_err(|e| conflict_on_unique(e, "a credential with this token"))?;
        });
        tracing::debug!(%id, "credential created");
        Ok(Credential {
            id,
            description: new.description,
            metadata: new.metadata,
            acl: new.acl,
            owner_id: new.owner_id,
            created_at,
        })
    }
}

/// Validates ACL rules and renders them as the stored JSON array.
fn acl_to_json(acl: &[String]) -> Result<String, StoreError> {
    let invalid = |reason: String| StoreError::Invalid {
        field: "acl",
        reason,
    };
    Acl::parse(acl).map_err(|e| invalid(e.to_string()))?;
    serde_json::to_string(acl).map_err(|e| invalid(e.to_string()))
}

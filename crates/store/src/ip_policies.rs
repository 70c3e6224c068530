//! The `ip_policies`, `ip_policy_rules`, `ip_restrictions` and `ip_restriction_policies`
//! tables: allow/deny CIDR rules grouped into policies, and restrictions that apply policies to
//! the agent listener, the API, the public endpoints or the dashboard.
//!
//! Rules belong to one policy and go with it. A policy a restriction names cannot be deleted
//! ([`PolicyDelete::InUse`]; the foreign key decides, so a concurrent restriction update cannot
//! slip past the check). References to policies that do not exist are
//! [`StoreError::Invalid`] with field `ip_policy_id` / `ip_policy_ids`.
//!
//! This module validates what it stores (CIDR syntax, action, type, text limits) but decides
//! nothing about traffic: [`Store::ip_restriction_rules`] hands the edge everything it needs
//! for its in-memory snapshot.

use time::OffsetDateTime;
use warren_model::cidr::{Cidr, RuleAction, RuleSet};
use warren_model::ids::IdPrefix;

use crate::common;
use crate::reservations::{delete_by_id, list_page};
use crate::{Store, StoreError};

/// The restriction types ngrok defines.
pub const RESTRICTION_TYPES: [&str; 4] = ["agent", "api", "endpoints", "dashboard"];

/// A stored IP policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpPolicy {
    /// `ipp_…`.
    pub id: String,
    /// Human-readable description.
    pub description: String,
    /// Machine-readable metadata.
    pub metadata: String,
    /// When it was created (whole seconds, UTC).
    pub created_at: OffsetDateTime,
}

/// A stored IP policy rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpPolicyRule {
    /// `ipr_…`.
    pub id: String,
    /// The policy it belongs to (`ipp_…`).
    pub ip_policy_id: String,
    /// Normalized CIDR block.
    pub cidr: String,
    /// `allow` or `deny`.
    pub action: String,
    /// Human-readable description.
    pub description: String,
    /// Machine-readable metadata.
    pub metadata: String,
    /// When it was created (whole seconds, UTC).
    pub created_at: OffsetDateTime,
}

/// What the caller supplies to create a rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewIpPolicyRule {
    /// The policy (`ipp_…`); must exist.
    pub ip_policy_id: String,
    /// An IPv4 or IPv6 CIDR block.
    pub cidr: String,
    /// `allow` or `deny`.
    pub action: String,
    /// Description, at most 255 bytes.
    pub description: String,
    /// Metadata, at most 4096 bytes.
    pub metadata: String,
}

/// Changes to a rule; `None` leaves a field as it is (action and policy are immutable).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpPolicyRuleUpdate {
    /// New description.
    pub description: Option<String>,
    /// New metadata.
    pub metadata: Option<String>,
    /// New CIDR block.
    pub cidr: Option<String>,
}

/// A stored IP restriction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRestriction {
    /// `ipx_…`.
    pub id: String,
    /// `agent`, `api`, `endpoints` or `dashboard`.
    pub kind: String,
    /// Whether violations are refused (false: only logged).
    pub enforced: bool,
    /// The policies it applies, in the order given.
    pub ip_policy_ids: Vec<String>,
    /// Human-readable description.
    pub description: String,
    /// Machine-readable metadata.
    pub metadata: String,
    /// When it was created (whole seconds, UTC).
    pub created_at: OffsetDateTime,
}

/// What the caller supplies to create a restriction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewIpRestriction {
    /// One of [`RESTRICTION_TYPES`].
    pub kind: String,
    /// Whether violations are refused.
    pub enforced: bool,
    /// Policies (`ipp_…`); each must exist.
    pub ip_policy_ids: Vec<String>,
    /// Description, at most 255 bytes.
    pub description: String,
    /// Metadata, at most 4096 bytes.
    pub metadata: String,
}

/// Changes to a restriction; `None` leaves a field as it is (the type is immutable).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRestrictionUpdate {
    /// New description.
    pub description: Option<String>,
    /// New metadata.
    pub metadata: Option<String>,
    /// New enforcement.
    pub enforced: Option<bool>,
    /// New policy list (replaces the old one).
    pub ip_policy_ids: Option<Vec<String>>,
}

/// How a policy delete went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyDelete {
    /// Deleted, with its rules.
    Deleted,
    /// There was no such policy.
    NotFound,
    /// A restriction still names it; nothing changed.
    InUse,
}

/// One restriction as the edge enforces it: type, enforcement and its policies' rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveRestriction {
    /// `ipx_…`.
    pub id: String,
    /// The restriction type.
    pub kind: String,
    /// Whether violations are refused.
    pub enforced: bool,
    /// Every rule of every policy it names.
    pub rules: RuleSet,
}

const POLICY_COLUMNS: &str = "SELECT id, description, metadata, created_at FROM ip_policies";
const RULE_COLUMNS: &str = "SELECT id, ip_policy_id, cidr, action, description, metadata, \
     created_at FROM ip_policy_rules";
const RESTRICTION_COLUMNS: &str =
    "SELECT id, type, enforced, description, metadata, created_at FROM ip_restrictions";

#[derive(sqlx::FromRow)]
struct PolicyRow {
    id: String,
    description: String,
    metadata: String,
    created_at: i64,
}

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: String,
    ip_policy_id: String,
    cidr: String,
    action: String,
    description: String,
    metadata: String,
    created_at: i64,
}

#[derive(sqlx::FromRow)]
struct RestrictionRow {
    id: String,
    #[sqlx(rename = "type")]
    kind: String,
    enforced: bool,
    description: String,
    metadata: String,
    created_at: i64,
}

fn time_of(table: &'static str, id: &str, secs: i64) -> Result<OffsetDateTime, StoreError> {
    common::unix_to_time(secs).ok_or_else(|| StoreError::Corrupt {
        table,
        id: id.to_owned(),
        reason: "created_at out of range".into(),
    })
}

impl PolicyRow {
    fn into_policy(self) -> Result<IpPolicy, StoreError> {
        Ok(IpPolicy {
            created_at: time_of("ip_policies", &self.id, self.created_at)?,
            id: self.id,
            description: self.description,
            metadata: self.metadata,
        })
    }
}

impl RuleRow {
    fn into_rule(self) -> Result<IpPolicyRule, StoreError> {
        Ok(IpPolicyRule {
            created_at: time_of("ip_policy_rules", &self.id, self.created_at)?,
            id: self.id,
            ip_policy_id: self.ip_policy_id,
            cidr: self.cidr,
            action: self.action,
            description: self.description,
            metadata: self.metadata,
        })
    }
}

/// Validates and normalizes a CIDR block.
fn check_cidr(cidr: &str) -> Result<String, StoreError> {
    Cidr::parse(cidr)
        .map(|c| c.to_string())
        .map_err(|e| StoreError::Invalid {
            field: "cidr",
            reason: format!("cidr `{cidr}` is invalid: {e}"),
        })
}

fn check_text(description: Option<&str>, metadata: Option<&str>) -> Result<(), StoreError> {
    common::check_description_and_metadata(description.unwrap_or(""), metadata.unwrap_or(""))
}

/// Maps a foreign-key violation to an invalid reference in `field`; other errors pass.
fn bad_reference(err: sqlx::Error, field: &'static str) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::Invalid {
            field,
            reason: "an IP policy this refers to does not exist".into(),
        },
        _ => StoreError::Database(err),
    }
}

impl Store {
    /// Creates an IP policy.
    pub async fn create_ip_policy(
        &self,
        description: String,
        metadata: String,
    ) -> Result<IpPolicy, StoreError> {
        common::check_description_and_metadata(&description, &metadata)?;
        let (created_at, now) = common::now();
        let id = common::new_id(IdPrefix::IpPolicy, now);
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO ip_policies (id, description, metadata, created_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&id)
            .bind(&description)
            .bind(&metadata)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(IpPolicy {
            id,
            description,
            metadata,
            created_at,
        })
    }

    /// Finds an IP policy by id.
    pub async fn ip_policy(&self, id: &str) -> Result<Option<IpPolicy>, StoreError> {
        let sql = format!("{POLICY_COLUMNS} WHERE id = $1");
        let row: Option<PolicyRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        row.map(PolicyRow::into_policy).transpose()
    }

    /// IP policies newest first: at most `limit`, created before `before_id` when given.
    pub async fn list_ip_policies(
        &self,
        before_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<IpPolicy>, StoreError> {
        list_page::<PolicyRow>(self, "ip_policies", POLICY_COLUMNS, before_id, limit)
            .await?
            .into_iter()
            .map(PolicyRow::into_policy)
            .collect()
    }

    /// Changes a policy's description and metadata; `None` when there is no such policy.
    pub async fn update_ip_policy(
        &self,
        id: &str,
        description: Option<String>,
        metadata: Option<String>,
    ) -> Result<Option<IpPolicy>, StoreError> {
        check_text(description.as_deref(), metadata.as_deref())?;
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE ip_policies SET description = COALESCE($2, description), \
                 metadata = COALESCE($3, metadata) WHERE id = $1",
            )
            .bind(id)
            .bind(description.as_deref())
            .bind(metadata.as_deref())
            .execute(pool)
            .await?;
        });
        self.ip_policy(id).await
    }

    /// Deletes a policy and its rules, unless a restriction names it.
    pub async fn delete_ip_policy(&self, id: &str) -> Result<PolicyDelete, StoreError> {
        match delete_by_id(self, "ip_policies", id).await {
            Ok(true) => Ok(PolicyDelete::Deleted),
            Ok(false) => Ok(PolicyDelete::NotFound),
            Err(StoreError::Database(sqlx::Error::Database(db)))
                if db.is_foreign_key_violation() =>
            {
                Ok(PolicyDelete::InUse)
            }
            Err(other) => Err(other),
        }
    }

    /// Creates a rule in an existing policy; the CIDR is validated and normalized.
    pub async fn create_ip_policy_rule(
        &self,
        new: NewIpPolicyRule,
    ) -> Result<IpPolicyRule, StoreError> {
        common::check_description_and_metadata(&new.description, &new.metadata)?;
        let cidr = check_cidr(&new.cidr)?;
        if RuleAction::parse(&new.action).is_none() {
            return Err(StoreError::Invalid {
                field: "action",
                reason: format!("action `{}` is neither `allow` nor `deny`", new.action),
            });
        }
        let (created_at, now) = common::now();
        let id = common::new_id(IdPrefix::IpPolicyRule, now);
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO ip_policy_rules \
                 (id, ip_policy_id, cidr, action, description, metadata, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&id)
            .bind(&new.ip_policy_id)
            .bind(&cidr)
            .bind(&new.action)
            .bind(&new.description)
            .bind(&new.metadata)
            .bind(now)
            .execute(pool)
            .await
            .map_err(|e| bad_reference(e, "ip_policy_id"))?;
        });
        Ok(IpPolicyRule {
            id,
            ip_policy_id: new.ip_policy_id,
            cidr,
            action: new.action,
            description: new.description,
            metadata: new.metadata,
            created_at,
        })
    }

    /// Finds a rule by id.
    pub async fn ip_policy_rule(&self, id: &str) -> Result<Option<IpPolicyRule>, StoreError> {
        let sql = format!("{RULE_COLUMNS} WHERE id = $1");
        let row: Option<RuleRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        row.map(RuleRow::into_rule).transpose()
    }

    /// Rules newest first: at most `limit`, created before `before_id` when given.
    pub async fn list_ip_policy_rules(
        &self,
        before_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<IpPolicyRule>, StoreError> {
        list_page::<RuleRow>(self, "ip_policy_rules", RULE_COLUMNS, before_id, limit)
            .await?
            .into_iter()
            .map(RuleRow::into_rule)
            .collect()
    }

    /// Applies `update` to rule `id`; `None` when there is no such rule.
    pub async fn update_ip_policy_rule(
        &self,
        id: &str,
        update: IpPolicyRuleUpdate,
    ) -> Result<Option<IpPolicyRule>, StoreError> {
        check_text(update.description.as_deref(), update.metadata.as_deref())?;
        let cidr = update.cidr.as_deref().map(check_cidr).transpose()?;
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE ip_policy_rules SET description = COALESCE($2, description), \
                 metadata = COALESCE($3, metadata), cidr = COALESCE($4, cidr) WHERE id = $1",
            )
            .bind(id)
            .bind(update.description.as_deref())
            .bind(update.metadata.as_deref())
            .bind(cidr.as_deref())
            .execute(pool)
            .await?;
        });
        self.ip_policy_rule(id).await
    }

    /// Deletes a rule. Returns whether it existed.
    pub async fn delete_ip_policy_rule(&self, id: &str) -> Result<bool, StoreError> {
        delete_by_id(self, "ip_policy_rules", id).await
    }

    /// Creates a restriction naming existing policies.
    pub async fn create_ip_restriction(
        &self,
        new: NewIpRestriction,
    ) -> Result<IpRestriction, StoreError> {
        common::check_description_and_metadata(&new.description, &new.metadata)?;
        if !RESTRICTION_TYPES.contains(&new.kind.as_str()) {
            return Err(StoreError::Invalid {
                field: "type",
                reason: format!(
                    "type `{}` is not one of {}",
                    new.kind,
                    RESTRICTION_TYPES.join(", ")
                ),
            });
        }
        let ids = dedup(new.ip_policy_ids);
        let (created_at, now) = common::now();
        let id = common::new_id(IdPrefix::IpRestriction, now);
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO ip_restrictions \
                 (id, type, enforced, description, metadata, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(&new.kind)
            .bind(new.enforced)
            .bind(&new.description)
            .bind(&new.metadata)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for (position, policy) in ids.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO ip_restriction_policies \
                     (ip_restriction_id, ip_policy_id, position) VALUES ($1, $2, $3)",
                )
                .bind(&id)
                .bind(policy)
                .bind(i64::try_from(position).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await
                .map_err(|e| bad_reference(e, "ip_policy_ids"))?;
            }
            tx.commit().await?;
        });
        Ok(IpRestriction {
            id,
            kind: new.kind,
            enforced: new.enforced,
            ip_policy_ids: ids,
            description: new.description,
            metadata: new.metadata,
            created_at,
        })
    }

    async fn restriction_policies(&self, id: &str) -> Result<Vec<String>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT ip_policy_id FROM ip_restriction_policies \
                 WHERE ip_restriction_id = $1 ORDER BY position",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        }))
    }

    async fn restriction_of(&self, row: RestrictionRow) -> Result<IpRestriction, StoreError> {
        Ok(IpRestriction {
            created_at: time_of("ip_restrictions", &row.id, row.created_at)?,
            ip_policy_ids: self.restriction_policies(&row.id).await?,
            id: row.id,
            kind: row.kind,
            enforced: row.enforced,
            description: row.description,
            metadata: row.metadata,
        })
    }

    /// Finds a restriction by id.
    pub async fn ip_restriction(&self, id: &str) -> Result<Option<IpRestriction>, StoreError> {
        let sql = format!("{RESTRICTION_COLUMNS} WHERE id = $1");
        let row: Option<RestrictionRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        match row {
            Some(row) => self.restriction_of(row).await.map(Some),
            None => Ok(None),
        }
    }

    /// Restrictions newest first: at most `limit`, created before `before_id` when given.
    pub async fn list_ip_restrictions(
        &self,
        before_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<IpRestriction>, StoreError> {
        let rows = list_page::<RestrictionRow>(
            self,
            "ip_restrictions",
            RESTRICTION_COLUMNS,
            before_id,
            limit,
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.restriction_of(row).await?);
        }
        Ok(out)
    }

    /// Applies `update` to restriction `id`; `None` when there is no such restriction. A new
    /// policy list replaces the old one in one transaction.
    pub async fn update_ip_restriction(
        &self,
        id: &str,
        update: IpRestrictionUpdate,
    ) -> Result<Option<IpRestriction>, StoreError> {
        check_text(update.description.as_deref(), update.metadata.as_deref())?;
        let ids = update.ip_policy_ids.map(dedup);
        let found = with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(
                "UPDATE ip_restrictions SET description = COALESCE($2, description), \
                 metadata = COALESCE($3, metadata), enforced = COALESCE($4, enforced) \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(update.description.as_deref())
            .bind(update.metadata.as_deref())
            .bind(update.enforced)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed > 0
                && let Some(ids) = &ids
            {
                sqlx::query("DELETE FROM ip_restriction_policies WHERE ip_restriction_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                for (position, policy) in ids.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO ip_restriction_policies \
                         (ip_restriction_id, ip_policy_id, position) VALUES ($1, $2, $3)",
                    )
                    .bind(id)
                    .bind(policy)
                    .bind(i64::try_from(position).unwrap_or(i64::MAX))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| bad_reference(e, "ip_policy_ids"))?;
                }
            }
            tx.commit().await?;
            changed > 0
        });
        if !found {
            return Ok(None);
        }
        self.ip_restriction(id).await
    }

    /// Deletes a restriction. Returns whether it existed.
    pub async fn delete_ip_restriction(&self, id: &str) -> Result<bool, StoreError> {
        delete_by_id(self, "ip_restrictions", id).await
    }

    /// Every restriction with the rules of its policies, for the edge's snapshot. Rules whose
    /// stored CIDR or action no longer parses are skipped with a warning.
    pub async fn ip_restriction_rules(&self) -> Result<Vec<EffectiveRestriction>, StoreError> {
        let rows: Vec<RestrictionRow> = with_pool!(self, |pool| {
            sqlx::query_as(&format!("{RESTRICTION_COLUMNS} ORDER BY seq"))
                .fetch_all(pool)
                .await?
        });
        let links: Vec<(String, String, String)> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT p.ip_restriction_id, r.cidr, r.action FROM ip_restriction_policies p \
                 JOIN ip_policy_rules r ON r.ip_policy_id = p.ip_policy_id",
            )
            .fetch_all(pool)
            .await?
        });
        let mut out: Vec<EffectiveRestriction> = rows
            .into_iter()
            .map(|r| EffectiveRestriction {
                id: r.id,
                kind: r.kind,
                enforced: r.enforced,
                rules: RuleSet::default(),
            })
            .collect();
        for (restriction, cidr, action) in links {
            let (Ok(block), Some(action)) = (Cidr::parse(&cidr), RuleAction::parse(&action)) else {
                tracing::warn!(%cidr, %action, "unreadable IP policy rule skipped");
                continue;
            };
            if let Some(r) = out.iter_mut().find(|r| r.id == restriction) {
                r.rules.rules.push((block, action));
            }
        }
        Ok(out)
    }
}

/// `ids` without repeats, first occurrence kept.
fn dedup(ids: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

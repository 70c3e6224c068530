//! The `reserved_domains` and `reserved_addrs` tables: host names (or `*.` wildcards) and TCP
//! ports set aside for this deployment, which the edge requires before it binds a custom
//! domain or a chosen TCP address.
//!
//! `reserved_domains` columns: `seq` (insertion order), `id` (`rd_…`), `domain` (normalized
//! [`DomainPattern`] text, unique across the deployment), `region`, `description`, `metadata`,
//! `cert_authority` + `cert_private_key_type` (the certificate management policy, both NULL
//! when there is none), `created_at` (Unix seconds).
//!
//! `reserved_addrs` columns: `seq`, `id` (`ra_…`), `addr` (`host:port` as assigned), `port`
//! (unique), `region`, `description`, `metadata`, `created_at`.
//!
//! Lists are newest first by `seq`, so rows created within one second still come back in
//! creation order. Uniqueness is the database's job: a concurrent duplicate fails with
//! [`StoreError::Conflict`], never two rows.
//!
//! This module validates what it stores (pattern syntax, text limits, port range) but does not
//! choose ports or decide policy: the API picks ports, the edge decides what needs a reservation.

use time::OffsetDateTime;
use warren_model::host::{DomainPattern, HostName, wildcard_lookup_keys};
use warren_model::ids::IdPrefix;

use crate::common::{self, conflict_on_unique};
use crate::{Store, StoreError};

/// A certificate management policy (`{authority, private_key_type}`), stored as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPolicy {
    /// Certificate authority (`letsencrypt`).
    pub authority: String,
    /// Private key type (`ecdsa` or `rsa`).
    pub private_key_type: String,
}

/// What the caller supplies to reserve a domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewReservedDomain {
    /// A host name or a leading wildcard `*.x.y`; normalized before it is stored.
    pub domain: String,
    /// Region as given (deprecated by ngrok; kept for echoing back).
    pub region: String,
    /// Human-readable description, at most 255 bytes.
    pub description: String,
    /// Machine-readable metadata, at most 4096 bytes.
    pub metadata: String,
    /// Certificate management policy, if any.
    pub cert_policy: Option<CertPolicy>,
}

/// A stored reserved domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedDomain {
    /// `rd_…`.
    pub id: String,
    /// The normalized name or wildcard pattern.
    pub domain: String,
    /// Region as given at creation.
    pub region: String,
    /// Human-readable description.
    pub description: String,
    /// Machine-readable metadata.
    pub metadata: String,
    /// Certificate management policy, if any.
    pub cert_policy: Option<CertPolicy>,
    /// When it was created (whole seconds, UTC).
    pub created_at: OffsetDateTime,
}

/// Changes to a reserved domain; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReservedDomainUpdate {
    /// New description.
    pub description: Option<String>,
    /// New metadata.
    pub metadata: Option<String>,
    /// `Some(None)` removes the policy, `Some(Some(p))` sets it.
    pub cert_policy: Option<Option<CertPolicy>>,
}

/// What the caller supplies to reserve a TCP address. The port is chosen by the caller (the
/// API) from the edge's range; the store only guarantees it is unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewReservedAddr {
    /// The host part of the address (the edge's base domain).
    pub host: String,
    /// The reserved port, 1..=65535.
    pub port: u16,
    /// Region as given.
    pub region: String,
    /// Human-readable description, at most 255 bytes.
    pub description: String,
    /// Machine-readable metadata, at most 4096 bytes.
    pub metadata: String,
}

/// A stored reserved TCP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedAddr {
    /// `ra_…`.
    pub id: String,
    /// `host:port`.
    pub addr: String,
    /// The reserved port.
    pub port: u16,
    /// Region as given at creation.
    pub region: String,
    /// Human-readable description.
    pub description: String,
    /// Machine-readable metadata.
    pub metadata: String,
    /// When it was created (whole seconds, UTC).
    pub created_at: OffsetDateTime,
}

/// Changes to a reserved address; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReservedAddrUpdate {
    /// New description.
    pub description: Option<String>,
    /// New metadata.
    pub metadata: Option<String>,
}

const DOMAIN_COLUMNS: &str = "SELECT id, domain, region, description, metadata, cert_authority, \
     cert_private_key_type, created_at FROM reserved_domains";

const ADDR_COLUMNS: &str =
    "SELECT id, addr, port, region, description, metadata, created_at FROM reserved_addrs";

#[derive(sqlx::FromRow)]
struct DomainRow {
    id: String,
    domain: String,
    region: String,
    description: String,
    metadata: String,
    cert_authority: Option<String>,
    cert_private_key_type: Option<String>,
    created_at: i64,
}

impl DomainRow {
    fn into_domain(self) -> Result<ReservedDomain, StoreError> {
        let created_at =
            common::unix_to_time(self.created_at).ok_or_else(|| StoreError::Corrupt {
                table: "reserved_domains",
                id: self.id.clone(),
                reason: "created_at out of range".into(),
            })?;
        let cert_policy = match (self.cert_authority, self.cert_private_key_type) {
            (Some(authority), Some(private_key_type)) => Some(CertPolicy {
                authority,
                private_key_type,
            }),
            _ => None,
        };
        Ok(ReservedDomain {
            id: self.id,
            domain: self.domain,
            region: self.region,
            description: self.description,
            metadata: self.metadata,
            cert_policy,
            created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AddrRow {
    id: String,
    addr: String,
    port: i64,
    region: String,
    description: String,
    metadata: String,
    created_at: i64,
}

impl AddrRow {
    fn into_addr(self) -> Result<ReservedAddr, StoreError> {
        let corrupt = |id: &str, reason: &str| StoreError::Corrupt {
            table: "reserved_addrs",
            id: id.to_string(),
            reason: reason.to_string(),
        };
        let created_at = common::unix_to_time(self.created_at)
            .ok_or_else(|| corrupt(&self.id, "created_at out of range"))?;
        let port = u16::try_from(self.port).map_err(|_| corrupt(&self.id, "port out of range"))?;
        Ok(ReservedAddr {
            id: self.id,
            addr: self.addr,
            port,
            region: self.region,
            description: self.description,
            metadata: self.metadata,
            created_at,
        })
    }
}

/// The `cert_authority` and `cert_private_key_type` column values of a policy.
fn policy_columns(policy: Option<&CertPolicy>) -> (Option<&str>, Option<&str>) {
    match policy {
        Some(p) => (Some(&p.authority), Some(&p.private_key_type)),
        None => (None, None),
    }
}

/// Text limits for the optional fields of an update.
fn check_update_text(description: Option<&str>, metadata: Option<&str>) -> Result<(), StoreError> {
    common::check_description_and_metadata(description.unwrap_or(""), metadata.unwrap_or(""))
}

/// Rows of `table` (selected by `select`), newest first, after `before_id` when given, at most
/// `limit`. An unknown `before_id` pages by id order (ids sort by creation second).
pub(crate) async fn list_page<R>(
    store: &Store,
    table: &str,
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
    let Some(before) = before_id else {
        let sql = format!("{select} ORDER BY seq DESC LIMIT $1");
        return Ok(with_pool!(store, |pool| {
            sqlx::query_as(&sql).bind(limit).fetch_all(pool).await?
        }));
    };
    let seq_sql = format!("SELECT seq FROM {table} WHERE id = $1");
    let seq: Option<i64> = with_pool!(store, |pool| {
        sqlx::query_scalar(&seq_sql)
            .bind(before)
            .fetch_optional(pool)
            .await?
    });
    Ok(match seq {
        Some(seq) => {
            let sql = format!("{select} WHERE seq < $1 ORDER BY seq DESC LIMIT $2");
            with_pool!(store, |pool| {
                sqlx::query_as(&sql)
                    .bind(seq)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            })
        }
        None => {
            let sql = format!("{select} WHERE id < $1 ORDER BY seq DESC LIMIT $2");
            with_pool!(store, |pool| {
                sqlx::query_as(&sql)
                    .bind(before)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            })
        }
    })
}

pub(crate) async fn delete_by_id(store: &Store, table: &str, id: &str) -> Result<bool, StoreError> {
    let sql = format!("DELETE FROM {table} WHERE id = $1");
    let deleted = with_pool!(store, |pool| {
        sqlx::query(&sql)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(deleted > 0)
}

impl Store {
    /// Reserves a domain. The name is validated and normalized ([`DomainPattern::parse`]); a name
    /// already reserved is a [`StoreError::Conflict`] (also under concurrent creates).
    pub async fn create_reserved_domain(
        &self,
        new: NewReservedDomain,
    ) -> Result<ReservedDomain, StoreError> {
        let pattern = DomainPattern::parse(new.domain.trim()).map_err(|e| StoreError::Invalid {
            field: "domain",
            reason: e.to_string(),
        })?;
        common::check_description_and_metadata(&new.description, &new.metadata)?;
        let (created_at, now) = common::now();
        let id = common::new_id(IdPrefix::ReservedDomain, now);
        let domain = pattern.to_string();
        let (authority, key_type) = policy_columns(new.cert_policy.as_ref());
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO reserved_domains \
                 (id, domain, region, description, metadata, cert_authority, \
                  cert_private_key_type, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&id)
            .bind(&domain)
            .bind(&new.region)
            .bind(&new.description)
            .bind(&new.metadata)
            .bind(authority)
            .bind(key_type)
            .bind(now)
            .execute(pool)
            .await
            .map_err(|e| conflict_on_unique(e, "a reserved domain with this name"))?;
        });
        tracing::debug!(%id, %domain, "domain reserved");
        Ok(ReservedDomain {
            id,
            domain,
            region: new.region,
            description: new.description,
            metadata: new.metadata,
            cert_policy: new.cert_policy,
            created_at,
        })
    }

    /// Finds a reserved domain by id.
    pub async fn reserved_domain(&self, id: &str) -> Result<Option<ReservedDomain>, StoreError> {
        let sql = format!("{DOMAIN_COLUMNS} WHERE id = $1");
        let row: Option<DomainRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        row.map(DomainRow::into_domain).transpose()
    }

    /// Reserved domains newest first: at most `limit`, created before `before_id` when given.
    pub async fn list_reserved_domains(
        &self,
        before_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ReservedDomain>, StoreError> {
        list_page::<DomainRow>(self, "reserved_domains", DOMAIN_COLUMNS, before_id, limit)
            .await?
            .into_iter()
            .map(DomainRow::into_domain)
            .collect()
    }

    /// Applies `update` to the reserved domain `id`; `None` when there is no such domain.
    pub async fn update_reserved_domain(
        &self,
        id: &str,
        update: ReservedDomainUpdate,
    ) -> Result<Option<ReservedDomain>, StoreError> {
        check_update_text(update.description.as_deref(), update.metadata.as_deref())?;
        let set_policy = update.cert_policy.is_some();
        let policy = update.cert_policy.flatten();
        let (authority, key_type) = policy_columns(policy.as_ref());
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE reserved_domains SET \
                 description = COALESCE($2, description), \
                 metadata = COALESCE($3, metadata), \
                 cert_authority = CASE WHEN $4 THEN $5 ELSE cert_authority END, \
                 cert_private_key_type = CASE WHEN $4 THEN $6 ELSE cert_private_key_type END \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(update.description.as_deref())
            .bind(update.metadata.as_deref())
            .bind(set_policy)
            .bind(authority)
            .bind(key_type)
            .execute(pool)
            .await?;
        });
        self.reserved_domain(id).await
    }

    /// Deletes a reserved domain. Returns whether it existed.
    pub async fn delete_reserved_domain(&self, id: &str) -> Result<bool, StoreError> {
        delete_by_id(self, "reserved_domains", id).await
    }

    /// Whether `host` (a name or a `*.` wildcard) may be bound under the reservations: a name is
    /// covered by its exact reservation or by any reserved wildcard matching it (at any depth);
    /// a wildcard only by the identical wildcard reservation. Malformed input is never covered.
    pub async fn domain_is_reserved(&self, host: &str) -> Result<bool, StoreError> {
        let Ok(pattern) = DomainPattern::parse(host) else {
            return Ok(false);
        };
        let mut candidates = vec![pattern.to_string()];
        if let DomainPattern::Exact(name) = &pattern {
            candidates.extend(wildcard_lookup_keys(name));
        }
        let binds: Vec<String> = (1..=candidates.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id FROM reserved_domains WHERE domain IN ({}) LIMIT 1",
            binds.join(", ")
        );
        let found: Option<String> = with_pool!(self, |pool| {
            let mut query = sqlx::query_scalar(&sql);
            for c in &candidates {
                query = query.bind(c);
            }
            query.fetch_optional(pool).await?
        });
        Ok(found.is_some())
    }

    /// Reserves the TCP address `host:port`. A port already reserved is a
    /// [`StoreError::Conflict`] (the caller picks another and retries).
    pub async fn create_reserved_addr(
        &self,
        new: NewReservedAddr,
    ) -> Result<ReservedAddr, StoreError> {
        common::check_description_and_metadata(&new.description, &new.metadata)?;
        if new.port == 0 {
            return Err(StoreError::Invalid {
                field: "port",
                reason: "port must be 1..=65535".into(),
            });
        }
        let host = HostName::parse(&new.host).map_err(|e| StoreError::Invalid {
            field: "addr",
            reason: e.to_string(),
        })?;
        let (created_at, now) = common::now();
        let id = common::new_id(IdPrefix::ReservedAddr, now);
        let addr = format!("{host}:{}", new.port);
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO reserved_addrs \
                 (id, addr, port, region, description, metadata, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&id)
            .bind(&addr)
            .bind(i64::from(new.port))
            .bind(&new.region)
            .bind(&new.description)
            .bind(&new.metadata)
            .bind(now)
            .execute(pool)
            .await
            .map_err(|e| conflict_on_unique(e, "a reserved address with this port"))?;
        });
        tracing::debug!(%id, %addr, "TCP address reserved");
        Ok(ReservedAddr {
            id,
            addr,
            port: new.port,
            region: new.region,
            description: new.description,
            metadata: new.metadata,
            created_at,
        })
    }

    /// Finds a reserved address by id.
    pub async fn reserved_addr(&self, id: &str) -> Result<Option<ReservedAddr>, StoreError> {
        let sql = format!("{ADDR_COLUMNS} WHERE id = $1");
        let row: Option<AddrRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        row.map(AddrRow::into_addr).transpose()
    }

    /// The reserved address on `port`, if any.
    pub async fn reserved_addr_by_port(
        &self,
        port: u16,
    ) -> Result<Option<ReservedAddr>, StoreError> {
        let sql = format!("{ADDR_COLUMNS} WHERE port = $1");
        let row: Option<AddrRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(i64::from(port))
                .fetch_optional(pool)
                .await?
        });
        row.map(AddrRow::into_addr).transpose()
    }

    /// Every reserved port, ascending.
    pub async fn reserved_ports(&self) -> Result<Vec<u16>, StoreError> {
        let ports: Vec<i64> = with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT port FROM reserved_addrs ORDER BY port")
                .fetch_all(pool)
                .await?
        });
        Ok(ports
            .into_iter()
            .filter_map(|p| u16::try_from(p).ok())
            .collect())
    }

    /// Reserved addresses newest first: at most `limit`, created before `before_id` when given.
    pub async fn list_reserved_addrs(
        &self,
        before_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ReservedAddr>, StoreError> {
        list_page::<AddrRow>(self, "reserved_addrs", ADDR_COLUMNS, before_id, limit)
            .await?
            .into_iter()
            .map(AddrRow::into_addr)
            .collect()
    }

    /// Applies `update` to the reserved address `id`; `None` when there is no such address.
    pub async fn update_reserved_addr(
        &self,
        id: &str,
        update: ReservedAddrUpdate,
    ) -> Result<Option<ReservedAddr>, StoreError> {
        check_update_text(update.description.as_deref(), update.metadata.as_deref())?;
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE reserved_addrs SET \
                 description = COALESCE($2, description), \
                 metadata = COALESCE($3, metadata) \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(update.description.as_deref())
            .bind(update.metadata.as_deref())
            .execute(pool)
            .await?;
        });
        self.reserved_addr(id).await
    }

    /// Deletes a reserved address. Returns whether it existed.
    pub async fn delete_reserved_addr(&self, id: &str) -> Result<bool, StoreError> {
        delete_by_id(self, "reserved_addrs", id).await
    }
}

//! The store's error type. Messages never contain a token or a database password.

/// Everything a [`Store`](crate::Store) operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Input the caller can fix (too long, malformed ACL, token of the wrong shape).
    /// `reason` is safe to show to an API client; for `acl` it carries ERR_NGROK_600.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field as spelled in the API: `description`, `metadata`, `acl`, `token`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A uniqueness constraint rejected the write (for example an operator-provided token
    /// that is already in use).
    #[error("{what} already exists")]
    Conflict {
        /// What collided, in words.
        what: &'static str,
    },
    /// The database URL names neither SQLite nor PostgreSQL.
    #[error("unsupported database URL scheme {scheme:?}; use sqlite:// or postgres://")]
    UnsupportedUrl {
        /// The scheme found (the rest of the URL is not echoed: it may hold a password).
        scheme: String,
    },
    /// A stored row could not be turned back into a value (hand-edited database?).
    #[error("stored {table} row {id:?} is unreadable: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's id.
        id: String,
        /// What failed to decode.
        reason: String,
    },
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed or the applied migrations disagree with the embedded ones.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

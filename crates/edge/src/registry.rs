//! The live agent sessions, indexed by id and by credential, so admitting an agent can find the
//! stale sessions it replaces and enforce the per-credential limit without scanning every session.
//!
//! It also remembers recent revocations (a deleted credential, a deactivated owner) for
//! [`REVOCATION_MEMORY`], so an agent whose Auth looked the credential up just before the
//! revocation cannot register just after the revoking sweep. Single process only: other nodes
//! learn of revocations from the store.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::agent::AgentSession;

/// How long a revocation is remembered: longer than any Auth takes (its store lookup is
/// bounded by the handshake deadline), so no admission that started before it can land after.
pub(crate) const REVOCATION_MEMORY: Duration = Duration::from_secs(120);

/// Live sessions. Lives behind one mutex in the edge; every method is a short critical section.
#[derive(Default)]
pub(crate) struct Registry {
    by_id: HashMap<String, Arc<AgentSession>>,
    by_credential: HashMap<String, HashSet<String>>,
    /// Recently revoked credential ids and deactivated owner ids, with when.
    revoked: HashMap<String, Instant>,
}

/// Why a session was not admitted.
pub(crate) enum Refused {
    /// Its credential already has `limit` live sessions.
    Full { limit: usize },
    /// Its credential was revoked, or its owner deactivated, while it authenticated.
    Revoked,
}

impl Registry {
    pub(crate) fn get(&self, id: &str) -> Option<Arc<AgentSession>> {
        self.by_id.get(id).cloned()
    }

    /// Number of live sessions.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(crate) fn all(&self) -> Vec<Arc<AgentSession>> {
        self.by_id.values().cloned().collect()
    }

    /// Sessions of `credential_id` whose agent presented `client_id`: a reconnecting agent's
    /// previous connections.
    pub(crate) fn same_agent(
        &self,
        credential_id: &str,
        client_id: &str,
    ) -> Vec<Arc<AgentSession>> {
        self.by_credential
            .get(credential_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id))
            .filter(|s| s.client_id == client_id)
            .cloned()
            .collect()
    }

    /// Live sessions authenticated with `credential_id`.
    pub(crate) fn of_credential(&self, credential_id: &str) -> Vec<Arc<AgentSession>> {
        self.by_credential
            .get(credential_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id))
            .cloned()
            .collect()
    }

    /// Live sessions whose credential is owned by `owner_id`.
    pub(crate) fn of_owner(&self, owner_id: &str) -> Vec<Arc<AgentSession>> {
        self.by_id
            .values()
            .filter(|s| s.owner_id.as_deref() == Some(owner_id))
            .cloned()
            .collect()
    }

    /// Remembers that `id` (a credential or an owner) no longer admits sessions, and forgets
    /// revocations older than [`REVOCATION_MEMORY`].
    pub(crate) fn revoke(&mut self, id: &str) {
        let now = Instant::now();
        self.revoked
            .retain(|_, at| now.duration_since(*at) < REVOCATION_MEMORY);
        self.revoked.insert(id.to_owned(), now);
    }

    /// Forgets a revocation of `id` (an owner reactivated).
    pub(crate) fn unrevoke(&mut self, id: &str) {
        self.revoked.remove(id);
    }

    fn is_revoked(&self, id: &str) -> bool {
        self.revoked
            .get(id)
            .is_some_and(|at| at.elapsed() < REVOCATION_MEMORY)
    }

    /// Adds `session` unless its credential (or owner) was just revoked or the credential
    /// already has `limit` live sessions.
    pub(crate) fn insert(
        &mut self,
        session: Arc<AgentSession>,
        limit: usize,
    ) -> Result<(), Refused> {
        if self.is_revoked(&session.credential_id)
            || session
                .owner_id
                .as_deref()
                .is_some_and(|owner| self.is_revoked(owner))
        {
            return Err(Refused::Revoked);
        }
        let ids = self
            .by_credential
            .entry(session.credential_id.clone())
            .or_default();
        if ids.len() >= limit {
            return Err(Refused::Full { limit });
        }
        ids.insert(session.id.clone());
        self.by_id.insert(session.id.clone(), session);
        Ok(())
    }

    /// Removes a session; removing one that is already gone is harmless.
    pub(crate) fn remove(&mut self, session: &AgentSession) {
        self.by_id.remove(&session.id);
        if let Some(ids) = self.by_credential.get_mut(&session.credential_id) {
            ids.remove(&session.id);
            if ids.is_empty() {
                self.by_credential.remove(&session.credential_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use time::OffsetDateTime;
    use warren_model::Acl;

    use super::*;
    use crate::agent::{AgentInfo, SessionAcl};

    fn session(id: &str, credential: &str, owner: Option<&str>) -> Arc<AgentSession> {
        let (io, _) = tokio::io::duplex(64);
        Arc::new(AgentSession {
            id: id.into(),
            client_id: id.into(),
            credential_id: credential.into(),
            owner_id: owner.map(str::to_owned),
            acl: SessionAcl::new(Acl::unrestricted()),
            remote_addr: "127.0.0.1:1".parse().unwrap(),
            ingress_addr: "127.0.0.1:2".parse().unwrap(),
            ingress_hostname: String::new(),
            started_at: OffsetDateTime::UNIX_EPOCH,
            info: AgentInfo::default(),
            mux: warren_mux::Session::new(io, warren_mux::Config::server()),
            tunnels: Mutex::new(HashMap::new()),
            heartbeat: Default::default(),
            stop_reason: Default::default(),
        })
    }

    #[tokio::test]
    async fn revoked_credentials_and_owners_admit_nothing_until_forgotten() {
        let mut registry = Registry::default();
        registry
            .insert(session("ts_1", "cr_a", Some("service_u")), 10)
            .ok()
            .unwrap();
        registry
            .insert(session("ts_2", "cr_b", Some("service_u")), 10)
            .ok()
            .unwrap();
        registry
            .insert(session("ts_3", "cr_c", None), 10)
            .ok()
            .unwrap();
        assert_eq!(registry.of_credential("cr_a").len(), 1);
        assert_eq!(registry.of_owner("service_u").len(), 2);

        // An Auth that looked cr_a up before its revocation lands after it: refused.
        registry.revoke("cr_a");
        assert!(matches!(
            registry.insert(session("ts_4", "cr_a", None), 10),
            Err(Refused::Revoked)
        ));
        registry.revoke("service_u");
        assert!(matches!(
            registry.insert(session("ts_5", "cr_b", Some("service_u")), 10),
            Err(Refused::Revoked)
        ));
        registry
            .insert(session("ts_6", "cr_c", None), 10)
            .ok()
            .unwrap();
        registry.unrevoke("service_u");
        registry
            .insert(session("ts_7", "cr_b", Some("service_u")), 10)
            .ok()
            .unwrap();
        assert!(matches!(
            registry.insert(session("ts_8", "cr_c", None), 2),
            Err(Refused::Full { limit: 2 })
        ));
    }
}

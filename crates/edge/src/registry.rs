//! The live agent sessions, indexed by id and by credential, so admitting an agent can find the
//! stale sessions it replaces and enforce the per-credential limit without scanning every session.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::agent::AgentSession;

/// Live sessions. Lives behind one mutex in the edge; every method is a short critical section.
#[derive(Default)]
pub(crate) struct Registry {
    by_id: HashMap<String, Arc<AgentSession>>,
    by_credential: HashMap<String, HashSet<String>>,
}

/// Why a session was not admitted.
pub(crate) struct Full {
    pub(crate) limit: usize,
}

impl Registry {
    pub(crate) fn get(&self, id: &str) -> Option<Arc<AgentSession>> {
        self.by_id.get(id).cloned()
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

    /// Adds `session` unless its credential already has `limit` live sessions.
    pub(crate) fn insert(&mut self, session: Arc<AgentSession>, limit: usize) -> Result<(), Full> {
        let ids = self
            .by_credential
            .entry(session.credential_id.clone())
            .or_default();
        if ids.len() >= limit {
            return Err(Full { limit });
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

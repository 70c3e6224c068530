//! The route table: which tunnel serves a public host name or TCP port.
//!
//! Readers (every public connection) load an immutable snapshot without locking; writers (bind,
//! unbind, session end) build a new snapshot under one mutex and swap it in atomically. Host names
//! live in one namespace shared by `http`, `https` and `tls` endpoints, so a name means one thing on
//! every public port. Lookup: an exact name beats any wildcard, and the most specific wildcard wins.
//! This module must not do IO.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use warren_model::host::{HostName, wildcard_lookup_keys};

use crate::tunnel::Tunnel;

/// An immutable routing snapshot.
#[derive(Default, Clone)]
pub struct Snapshot {
    hosts: HashMap<String, Arc<Tunnel>>,
    ports: HashMap<u16, Arc<Tunnel>>,
}

impl Snapshot {
    /// The tunnel serving `host` (already lowercased, without port): exact first, then wildcards
    /// from the most specific to the least.
    pub fn host(&self, host: &str) -> Option<&Arc<Tunnel>> {
        if let Some(tunnel) = self.hosts.get(host) {
            return Some(tunnel);
        }
        let host = HostName::parse(host).ok()?;
        wildcard_lookup_keys(&host).find_map(|key| self.hosts.get(key.as_str()))
    }

    /// The tunnel bound to public TCP `port`.
    pub fn port(&self, port: u16) -> Option<&Arc<Tunnel>> {
        self.ports.get(&port)
    }

    /// Every bound tunnel (host names and TCP ports).
    pub fn tunnels(&self) -> impl Iterator<Item = &Arc<Tunnel>> {
        self.hosts.values().chain(self.ports.values())
    }

    /// Number of bound host names and TCP ports.
    pub fn len(&self) -> usize {
        self.hosts.len() + self.ports.len()
    }

    /// Whether nothing is bound.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What holds a route key, as seen by a bind that wants it.
pub enum Claim {
    /// Nobody: the key is free.
    Free,
    /// Another tunnel holds it.
    Held(Arc<Tunnel>),
}

/// The shared, swappable route table.
#[derive(Default)]
pub struct RouteTable {
    current: ArcSwap<Snapshot>,
    write: Mutex<()>,
}

/// A route key: a host name pattern or a TCP port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RouteKey {
    Host(String),
    Port(u16),
}

impl RouteTable {
    /// The current snapshot.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Inserts `tunnel` under `key` unless another tunnel holds it and `may_replace` says no.
    /// Returns the tunnel that was displaced, if any.
    pub fn insert(
        &self,
        key: &RouteKey,
        tunnel: Arc<Tunnel>,
        may_replace: impl FnOnce(&Arc<Tunnel>) -> bool,
    ) -> Result<Option<Arc<Tunnel>>, Arc<Tunnel>> {
        let _guard = self.write.lock().expect("route table lock");
        let mut next = Snapshot::clone(&self.current.load());
        let slot = match key {
            RouteKey::Host(host) => next.hosts.get(host),
            RouteKey::Port(port) => next.ports.get(port),
        };
        if let Some(existing) = slot
            && !may_replace(existing)
        {
            return Err(existing.clone());
        }
        let displaced = match key {
            RouteKey::Host(host) => next.hosts.insert(host.clone(), tunnel),
            RouteKey::Port(port) => next.ports.insert(*port, tunnel),
        };
        self.current.store(Arc::new(next));
        Ok(displaced)
    }

    /// Removes `key` if it still points at `tunnel` (a newer holder is left alone).
    pub fn remove(&self, key: &RouteKey, tunnel: &Arc<Tunnel>) -> bool {
        let _guard = self.write.lock().expect("route table lock");
        let current = self.current.load();
        let holds = match key {
            RouteKey::Host(host) => current.hosts.get(host),
            RouteKey::Port(port) => current.ports.get(port),
        }
        .is_some_and(|t| Arc::ptr_eq(t, tunnel));
        if !holds {
            return false;
        }
        let mut next = Snapshot::clone(&current);
        match key {
            RouteKey::Host(host) => next.hosts.remove(host),
            RouteKey::Port(port) => next.ports.remove(port),
        };
        self.current.store(Arc::new(next));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::Proto;
    use tokio_util::sync::CancellationToken;

    fn tunnel(id: &str, key: RouteKey) -> Arc<Tunnel> {
        let (io, _peer) = tokio::io::duplex(64);
        Arc::new(Tunnel {
            id: id.into(),
            session_id: "ts_test".into(),
            credential_id: "cr_test".into(),
            proto: Proto::Https,
            url: String::new(),
            key,
            proxy_proto: 0,
            forwards_to: String::new(),
            metadata: String::new(),
            mux: warren_mux::Session::new(io, warren_mux::Config::server()),
            gone: CancellationToken::new(),
            connections: Default::default(),
            meter: Arc::new(crate::metrics::Metrics::new(1)).meter("", Proto::Https, None),
        })
    }

    fn host(table: &RouteTable, name: &str) -> Option<String> {
        table.load().host(name).map(|t| t.id.clone())
    }

    #[tokio::test]
    async fn exact_beats_wildcard_and_the_most_specific_wildcard_wins() {
        let table = RouteTable::default();
        for (id, key) in [
            ("wide", "*.example.com"),
            ("site", "*.site1.example.com"),
            ("cam", "cam1.site1.example.com"),
        ] {
            let key = RouteKey::Host(key.into());
            table
                .insert(&key, tunnel(id, key.clone()), |_| false)
                .ok()
                .unwrap();
        }
        assert_eq!(
            host(&table, "cam1.site1.example.com").as_deref(),
            Some("cam")
        );
        assert_eq!(
            host(&table, "cam2.site1.example.com").as_deref(),
            Some("site")
        );
        assert_eq!(
            host(&table, "a.b.site1.example.com").as_deref(),
            Some("site")
        );
        assert_eq!(host(&table, "site1.example.com").as_deref(), Some("wide"));
        assert_eq!(host(&table, "example.com"), None);
        assert_eq!(host(&table, "not a host"), None);
    }

    #[tokio::test]
    async fn holders_are_kept_unless_replacement_is_allowed_and_removal_is_by_identity() {
        let table = RouteTable::default();
        let key = RouteKey::Port(20001);
        let first = tunnel("first", key.clone());
        let second = tunnel("second", key.clone());
        assert!(
            table
                .insert(&key, first.clone(), |_| false)
                .unwrap()
                .is_none()
        );
        let held = table.insert(&key, second.clone(), |_| false).unwrap_err();
        assert!(Arc::ptr_eq(&held, &first));
        let displaced = table
            .insert(&key, second.clone(), |_| true)
            .unwrap()
            .unwrap();
        assert!(Arc::ptr_eq(&displaced, &first));
        // The displaced tunnel cannot remove its successor's route.
        assert!(!table.remove(&key, &first));
        assert!(table.load().port(20001).is_some());
        assert!(table.remove(&key, &second));
        assert!(table.load().is_empty());
    }
}

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

//! IP restrictions as the data plane enforces them: an immutable snapshot of every restriction
//! and its policies' rules, loaded from the store once and again whenever the control plane
//! changes them ([`crate::Edge::reload_ip_restrictions`]). Connections only read the snapshot,
//! so no visitor, agent or API request waits on the database.
//!
//! A restriction of a type applies when `enforced`: the address must pass the rules of its
//! policies ([`RuleSet::admits`]: deny wins; with no `allow` rules, everything not denied
//! passes). Every enforced restriction of the type must pass. A restriction that is not
//! enforced only logs what it would have refused (at `info`; refusals log at `debug`, as they
//! happen per connection).
//!
//! Until a load succeeds (at first, and after a reload failed), checks fail closed:
//! [`IpRestrictions::check`] retries the load and reports the store error to the caller.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use warren_store::ip_policies::EffectiveRestriction;
use warren_store::{Store, StoreError};

/// Where an IP restriction applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestrictionKind {
    /// Agents connecting to the agent listener (refused with ERR_NGROK_116).
    Agent,
    /// Callers of the REST API (refused with ERR_NGROK_220).
    Api,
    /// Visitors of public endpoints (HTTP 403, other protocols closed).
    Endpoints,
}

impl RestrictionKind {
    /// The restriction `type` in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RestrictionKind::Agent => "agent",
            RestrictionKind::Api => "api",
            RestrictionKind::Endpoints => "endpoints",
        }
    }
}

/// The code on the error page of a visitor an `endpoints` restriction refuses.
pub const VISITOR_IP_RESTRICTED: &str = "ERR_NGROK_3205";

/// The shared, swappable restriction snapshot.
#[derive(Default)]
pub struct IpRestrictions {
    current: ArcSwap<Vec<EffectiveRestriction>>,
    loaded: AtomicBool,
    /// Serializes reloads, so the last snapshot stored is from the last read.
    reload: tokio::sync::Mutex<()>,
}

impl IpRestrictions {
    /// Reads every restriction from `store` and swaps the snapshot in.
    pub async fn reload(&self, store: &Store) -> Result<(), StoreError> {
        let _serial = self.reload.lock().await;
        let restrictions = match store.ip_restriction_rules().await {
            Ok(restrictions) => restrictions,
            Err(error) => {
                // The snapshot may be stale now: fail closed until a load succeeds.
                self.loaded.store(false, Ordering::Release);
                return Err(error);
            }
        };
        self.current.store(Arc::new(restrictions));
        self.loaded.store(true, Ordering::Release);
        Ok(())
    }

    /// The current snapshot.
    pub(crate) fn snapshot(&self) -> Arc<Vec<EffectiveRestriction>> {
        self.current.load_full()
    }

    /// Whether `ip` may pass the restrictions of `kind`.
    pub async fn check(
        &self,
        store: &Store,
        kind: RestrictionKind,
        ip: IpAddr,
    ) -> Result<bool, StoreError> {
        if !self.loaded.load(Ordering::Acquire) {
            self.reload(store).await?;
        }
        Ok(admits(&self.current.load(), kind, ip))
    }
}

/// Whether the visitor at `addrs` passes the `endpoints` restrictions; fails closed (and logs)
/// when they cannot be loaded.
pub(crate) async fn visitor_admitted(edge: &crate::Edge, addrs: crate::VisitorAddrs) -> bool {
    match edge
        .ip_admitted(RestrictionKind::Endpoints, addrs.remote.ip())
        .await
    {
        Ok(admitted) => admitted,
        Err(error) => {
            tracing::error!(%error, "IP restriction lookup failed; visitor refused");
            false
        }
    }
}

/// The pure decision over a snapshot.
pub fn admits(restrictions: &[EffectiveRestriction], kind: RestrictionKind, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    let mut admitted = true;
    for r in restrictions.iter().filter(|r| r.kind == kind.as_str()) {
        if r.rules.admits(ip) {
            continue;
        }
        if r.enforced {
            tracing::debug!(restriction = %r.id, %ip, kind = kind.as_str(), "refused by IP restriction");
            admitted = false;
        } else {
            tracing::info!(restriction = %r.id, %ip, kind = kind.as_str(), "IP restriction (not enforced) would refuse");
        }
    }
    admitted
}

#[cfg(test)]
mod tests {
    use warren_model::cidr::{Cidr, RuleAction, RuleSet};

    use super::*;

    fn restriction(
        kind: &str,
        enforced: bool,
        rules: &[(&str, RuleAction)],
    ) -> EffectiveRestriction {
        EffectiveRestriction {
            id: "ipx_test".into(),
            kind: kind.into(),
            enforced,
            rules: RuleSet {
                rules: rules
                    .iter()
                    .map(|(c, a)| (Cidr::parse(c).unwrap(), *a))
                    .collect(),
            },
        }
    }

    #[test]
    fn only_enforced_restrictions_of_the_kind_refuse() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let deny = [("127.0.0.0/8", RuleAction::Deny)];
        let set = vec![
            restriction("api", true, &deny),
            restriction("agent", false, &deny),
        ];
        assert!(!admits(&set, RestrictionKind::Api, local));
        assert!(admits(&set, RestrictionKind::Agent, local), "warn only");
        assert!(admits(&set, RestrictionKind::Endpoints, local));
        assert!(admits(&[], RestrictionKind::Api, local));
        let both = vec![
            restriction("endpoints", true, &[("10.0.0.0/8", RuleAction::Allow)]),
            restriction("endpoints", true, &[("127.0.0.0/8", RuleAction::Allow)]),
        ];
        assert!(
            !admits(&both, RestrictionKind::Endpoints, local),
            "every enforced restriction must pass"
        );
    }
}

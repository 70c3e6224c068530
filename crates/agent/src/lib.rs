//! The Warren agent runtime: what the `warren` binary runs on a device.
//!
//! # Layout
//! - [`config`]: the YAML config file (ngrok version-3 layout), its validation and the typed diff
//!   a reload applies.
//! - [`control`]: the interface between the endpoint supervisor and its controllers (the local
//!   API, the CLI's status view): status snapshots, start/stop by name.
//! - [`supervisor`]: owns the session to the edge and the running endpoints; starts, stops and
//!   re-configures them; counts connections and requests.
//! - [`inspect`]: the HTTP forwarder that captures requests into a bounded ring, and replay.
//! - [`api`]: the local agent API (`127.0.0.1:4040`, ngrok-compatible shapes).
//! - [`service`]: `warren service install|uninstall|start|stop|restart` (systemd).
//!
//! This crate must not depend on server crates (store, edge, API server).

pub mod api;
pub mod config;
pub mod control;
pub mod inspect;
pub mod service;
pub mod supervisor;

//! Resident memory of `warrend` per idle agent session.
//!
//! A fresh `warrend` process is started; one warm-up session connects, binds an HTTP endpoint
//! and leaves, so one-time allocations (database pool, TLS and certificate caches, runtime
//! buffers) are in the baseline. Then `sessions` official-SDK sessions connect from this process
//! (they are authenticated when `connect` returns) and stay idle apart from heartbeats; after a
//! settling pause VmRSS is read again. Last, every session binds one HTTP endpoint and VmRSS is
//! read a third time. Per-session figures are (RSS - baseline) / sessions.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use ngrok::prelude::*;
use tokio::time::Instant;

use crate::agent;
use crate::procs::rss_kib;
use crate::report::MemoryReport;
use crate::tunnels::start_warrend;

/// Sessions connecting or binding at once.
const PARALLEL: usize = 32;

/// Bound on connecting or binding every session.
const STEP_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs the memory step against `warrend` (the binary) with `sessions` sessions.
pub async fn measure(
    warrend: &std::path::Path,
    logs: &std::path::Path,
    sessions: usize,
    settle: Duration,
) -> anyhow::Result<MemoryReport> {
    // The edge's default limit per authtoken is about the default session count; the idle
    // sessions and the warm-up one must all fit.
    let server = start_warrend(warrend, logs, Some(sessions + 1)).await?;
    let pid = server.proc.pid()?;
    let edge = Arc::new(server.edge.clone());
    tokio::time::sleep(settle).await;
    let mut report = MemoryReport {
        sessions,
        rss_started_kib: rss_kib(pid)?,
        ..MemoryReport::default()
    };

    {
        let mut warm = agent::connect(&edge).await.context("warm-up session")?;
        let endpoint = warm
            .http_endpoint()
            .domain("warmup.idle.localhost")
            .listen()
            .await?;
        drop(endpoint);
        warm.close().await?;
    }
    tokio::time::sleep(settle).await;
    report.rss_baseline_kib = rss_kib(pid)?;

    let start = Instant::now();
    let connected: Vec<ngrok::Session> = tokio::time::timeout(
        STEP_TIMEOUT,
        futures::stream::iter(0..sessions)
            .map(|i| {
                let edge = edge.clone();
                async move {
                    agent::connect(&edge)
                        .await
                        .with_context(|| format!("idle session {i}"))
                }
            })
            .buffer_unordered(PARALLEL)
            .try_collect(),
    )
    .await
    .context("connecting the idle sessions timed out")??;
    report.connect_seconds = start.elapsed().as_secs_f64();
    tokio::time::sleep(settle).await;
    report.rss_idle_kib = rss_kib(pid)?;

    let start = Instant::now();
    let bound = tokio::time::timeout(
        STEP_TIMEOUT,
        futures::stream::iter(connected.iter().enumerate())
            .map(|(i, session)| async move {
                session
                    .http_endpoint()
                    .domain(format!("s{i}.idle.localhost"))
                    .listen()
                    .await
                    .with_context(|| format!("binding an endpoint on idle session {i}"))
            })
            .buffer_unordered(PARALLEL)
            .try_collect::<Vec<_>>(),
    )
    .await;
    match bound {
        Ok(Ok(endpoints)) => {
            report.bind_seconds = Some(start.elapsed().as_secs_f64());
            tokio::time::sleep(settle).await;
            report.rss_bound_kib = Some(rss_kib(pid)?);
            drop(endpoints);
        }
        Ok(Err(error)) => report.error = Some(format!("{error:#}")),
        Err(_) => report.error = Some("binding the endpoints timed out".into()),
    }

    // Close the sessions before warrend goes, so the SDK does not try to reconnect them.
    futures::stream::iter(connected)
        .for_each_concurrent(PARALLEL, |mut session| async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), session.close()).await;
        })
        .await;
    server.proc.stop().await;
    Ok(report)
}

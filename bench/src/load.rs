//! HTTP load: a fixed number of keep-alive connections sending `GET /` back to back for a fixed
//! time (closed loop), giving requests per second and latency percentiles.
//!
//! Two generators give the same figures: `wrk` (when installed; C and epoll, so it takes the
//! least CPU from the box) and a built-in hyper client used when `wrk` is missing. The built-in
//! one records every request's latency and reads percentiles from the sorted samples.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Which load generator to use.
#[derive(Clone, Debug)]
pub enum LoadGen {
    /// `wrk` at this path.
    Wrk(PathBuf),
    /// The hyper client in this file.
    Builtin,
}

impl LoadGen {
    /// A short name for the report.
    pub fn name(&self) -> &'static str {
        match self {
            LoadGen::Wrk(_) => "wrk",
            LoadGen::Builtin => "built-in hyper client",
        }
    }
}

/// A load run: what to hit and how hard.
#[derive(Clone, Debug)]
pub struct Load {
    pub addr: SocketAddr,
    /// The `Host` header (routing on Warren's HTTP port); `None` sends `127.0.0.1:port`.
    pub host: Option<String>,
    pub connections: usize,
    pub duration: Duration,
}

/// What a load run measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadResult {
    pub requests: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    /// Socket errors, timeouts and non-2xx answers.
    pub errors: u64,
}

impl LoadResult {
    /// Requests per second.
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

/// Runs `load` with `generator`.
pub async fn run(generator: &LoadGen, load: &Load) -> anyhow::Result<LoadResult> {
    match generator {
        LoadGen::Wrk(path) => wrk(path, load).await,
        LoadGen::Builtin => builtin(load).await,
    }
}

async fn wrk(path: &PathBuf, load: &Load) -> anyhow::Result<LoadResult> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut cmd = tokio::process::Command::new(path);
    cmd.arg(format!("-t{threads}"))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.duration.as_secs().max(1)))
        .arg("--latency")
        .arg("--timeout")
        .arg("5s");
    if let Some(host) = &load.host {
        cmd.arg("-H").arg(format!("Host: {host}"));
    }
    cmd.arg(format!("http://{}/", load.addr)).kill_on_drop(true);
    let out = tokio::time::timeout(load.duration + Duration::from_secs(30), cmd.output())
        .await
        .context("wrk did not finish")?
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_wrk(&text).with_context(|| format!("unexpected wrk output:\n{text}"))
}

/// Reads wrk's `--latency` report.
fn parse_wrk(text: &str) -> anyhow::Result<LoadResult> {
    let mut result = LoadResult::default();
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", value] => result.p50_ms = wrk_ms(value)?,
            ["90%", value] => result.p90_ms = wrk_ms(value)?,
            ["99%", value] => result.p99_ms = wrk_ms(value)?,
            [count, "requests", "in", secs, ..] => {
                result.requests = count.parse()?;
                result.seconds = wrk_ms(secs.trim_end_matches(','))? / 1e3;
            }
            ["Socket", "errors:", rest @ ..] => {
                result.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => result.errors += n.parse::<u64>()?,
            _ => {}
        }
    }
    if result.requests == 0 || result.seconds == 0.0 {
        bail!("no request count in wrk's report");
    }
    Ok(result)
}

/// A wrk duration (`812.00us`, `1.23ms`, `2.00s`, `1.00m`) in milliseconds.
fn wrk_ms(value: &str) -> anyhow::Result<f64> {
    let split = value
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("no unit in {value:?}"))?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse()?;
    Ok(match unit {
        "us" => number / 1e3,
        "ms" => number,
        "s" => number * 1e3,
        "m" => number * 60e3,
        "h" => number * 3600e3,
        _ => bail!("unknown unit in {value:?}"),
    })
}

/// The built-in generator: `load.connections` tasks, each with one keep-alive connection.
async fn builtin(load: &Load) -> anyhow::Result<LoadResult> {
    let host = load.host.clone().unwrap_or_else(|| load.addr.to_string());
    let start = Instant::now();
    let deadline = start + load.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..load.connections {
        tasks.spawn(connection(load.addr, host.clone(), deadline));
    }
    let mut samples: Vec<u32> = Vec::new();
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        let (mut latencies, failed) = joined?;
        samples.append(&mut latencies);
        errors += failed;
    }
    let seconds = start.elapsed().as_secs_f64();
    samples.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if samples.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
        f64::from(samples[rank.clamp(1, samples.len()) - 1]) / 1e3
    };
    Ok(LoadResult {
        requests: samples.len() as u64,
        seconds,
        p50_ms: percentile(50.0),
        p90_ms: percentile(90.0),
        p99_ms: percentile(99.0),
        errors,
    })
}

/// One keep-alive connection sending requests until `deadline`; reconnects after an error.
/// Returns each successful request's latency in microseconds and the number of failures.
async fn connection(addr: SocketAddr, host: String, deadline: Instant) -> (Vec<u32>, u64) {
    let mut latencies = Vec::with_capacity(64 * 1024);
    let mut errors = 0;
    while Instant::now() < deadline {
        let sending = keep_sending(addr, &host, &mut latencies, &mut errors);
        match tokio::time::timeout_at(deadline, sending).await {
            Err(_) => break,
            Ok(Err(_)) => {
                errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    (latencies, errors)
}

/// Connects and sends `GET /` back to back until an error.
async fn keep_sending(
    addr: SocketAddr,
    host: &str,
    latencies: &mut Vec<u32>,
    errors: &mut u64,
) -> anyhow::Result<std::convert::Infallible> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    loop {
        let request = http::Request::get("/")
            .header(http::header::HOST, host)
            .body(Empty::new())?;
        let sent = Instant::now();
        let response = sender.send_request(request).await?;
        let ok = response.status().is_success();
        response.into_body().collect().await?;
        if ok {
            let micros = sent.elapsed().as_micros();
            latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
        } else {
            *errors += 1;
        }
    }
}

/// Checks that `GET /` with `host` answers 200 at `addr` (readiness of a tunnel).
pub async fn probe(addr: SocketAddr, host: Option<&str>) -> anyhow::Result<()> {
    let tcp = TcpStream::connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let host = host.map_or_else(|| addr.to_string(), str::to_owned);
    let response = sender
        .send_request(
            http::Request::get("/")
                .header(http::header::HOST, host)
                .body(Empty::new())?,
        )
        .await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() || body.as_ref() != crate::origin::HTTP_BODY {
        bail!(
            "probe answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_report_is_read() {
        let report = "Running 10s test @ http://127.0.0.1:8080/\n\
              2 threads and 64 connections\n\
              Thread Stats   Avg      Stdev     Max   +/- Stdev\n\
                Latency     1.23ms  400.00us  20.00ms   90.00%\n\
              Latency Distribution\n\
                 50%  812.00us\n\
                 75%    1.10ms\n\
                 90%    1.50ms\n\
                 99%    2.00s\n\
              123456 requests in 10.00s, 12.34MB read\n\
              Socket errors: connect 0, read 2, write 0, timeout 3\n\
              Non-2xx or 3xx responses: 5\n\
            Requests/sec:  12345.60\n";
        let r = parse_wrk(report).unwrap();
        assert_eq!(r.requests, 123_456);
        assert!((r.seconds - 10.0).abs() < 1e-9);
        assert!((r.p50_ms - 0.812).abs() < 1e-9);
        assert!((r.p90_ms - 1.5).abs() < 1e-9);
        assert!((r.p99_ms - 2000.0).abs() < 1e-9);
        assert_eq!(r.errors, 10);
    }
}

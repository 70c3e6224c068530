//! The figures one run collects and the text report made from them: one table per step, every
//! figure with its unit, and ratios against the direct baseline measured in the same run (and
//! against rathole and bore with `--compare`).

use std::fmt::Write as _;

use crate::load::LoadResult;
use crate::throughput::Transfer;

/// One median transfer plus the CPU seconds the tunnel's server and client processes used for it.
#[derive(Clone, Copy, Debug)]
pub struct TransferRun {
    pub transfer: Transfer,
    /// CPU seconds of (server, client) processes; `None` for the direct path.
    pub cpu: Option<(f64, f64)>,
}

/// Step 1 for one path.
#[derive(Debug)]
pub struct ThroughputRow {
    pub path: String,
    pub upload: Result<TransferRun, String>,
    pub download: Result<TransferRun, String>,
}

/// Step 2 for one path.
#[derive(Debug)]
pub struct HttpRow {
    pub path: String,
    pub result: Result<(LoadResult, Option<(f64, f64)>), String>,
}

/// Step 3.
#[derive(Debug, Default)]
pub struct MemoryReport {
    pub sessions: usize,
    pub rss_started_kib: u64,
    pub rss_baseline_kib: u64,
    pub rss_idle_kib: u64,
    pub rss_bound_kib: Option<u64>,
    pub connect_seconds: f64,
    pub bind_seconds: Option<f64>,
    /// A failure after some figures were taken.
    pub error: Option<String>,
}

/// Step 4 for one Warren agent process: its binary on disk and its resident memory.
#[derive(Debug)]
pub struct AgentFootprint {
    /// The tunnel's name in the other tables.
    pub path: String,
    /// The agent's binary file name.
    pub binary: String,
    /// The binary's size in bytes.
    pub binary_bytes: Result<u64, String>,
    /// VmRSS once the endpoints were online, probed, and idle for a moment.
    pub rss_idle_kib: Result<u64, String>,
    /// VmRSS after the throughput and HTTP load runs.
    pub rss_after_load_kib: Result<u64, String>,
}

/// Everything one run measured, in order.
#[derive(Debug, Default)]
pub struct Report {
    /// Lines describing the machine, the command and the settings.
    pub preamble: Vec<String>,
    pub throughput_title: String,
    pub throughput: Vec<ThroughputRow>,
    pub http_title: String,
    pub http: Vec<HttpRow>,
    pub memory: Option<Result<MemoryReport, String>>,
    /// Step 4: one row per Warren agent process measured.
    pub footprint: Vec<AgentFootprint>,
    /// How long each agent sat idle before its first RSS reading, seconds.
    pub footprint_idle_seconds: u64,
    /// Size of the `warrend` binary in bytes.
    pub warrend_bytes: Option<Result<u64, String>>,
    /// Peers or steps that could not run, with the reason.
    pub notes: Vec<String>,
    /// Whether any step failed (the run exits non-zero).
    pub failed: bool,
}

impl Report {
    /// The report as text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.preamble {
            let _ = writeln!(out, "{line}");
        }
        self.render_throughput(&mut out);
        self.render_http(&mut out);
        self.render_memory(&mut out);
        self.render_footprint(&mut out);
        self.render_comparison(&mut out);
        if !self.notes.is_empty() {
            let _ = writeln!(out, "\nNotes");
            for note in &self.notes {
                let _ = writeln!(out, "  - {note}");
            }
        }
        out
    }

    fn render_throughput(&self, out: &mut String) {
        let _ = writeln!(out, "\n1. {}", self.throughput_title);
        let base = self.throughput.first();
        let base_up = base
            .and_then(|r| r.upload.as_ref().ok())
            .map(|r| r.transfer.mb_per_s());
        let base_down = base
            .and_then(|r| r.download.as_ref().ok())
            .map(|r| r.transfer.mb_per_s());
        let mut table = Table::new(&[
            "path",
            "upload MB/s",
            "vs direct",
            "download MB/s",
            "vs direct",
            "server CPU s/GB",
            "client CPU s/GB",
        ]);
        for row in &self.throughput {
            let mut cells = vec![row.path.clone()];
            let mut cpu = (Vec::new(), Vec::new());
            for (run, base) in [(&row.upload, base_up), (&row.download, base_down)] {
                match run {
                    Ok(run) => {
                        let mb = run.transfer.mb_per_s();
                        cells.push(format!("{mb:.0}"));
                        cells.push(ratio(Some(mb), base));
                        if let Some((server, client)) = run.cpu {
                            let gb = run.transfer.bytes as f64 / 1e9;
                            cpu.0.push(format!("{:.2}", server / gb));
                            cpu.1.push(format!("{:.2}", client / gb));
                        }
                    }
                    Err(_) => {
                        cells.push("error".into());
                        cells.push(String::new());
                    }
                }
            }
            let join = |v: &Vec<String>| {
                if v.is_empty() {
                    "-".into()
                } else {
                    v.join(" / ")
                }
            };
            cells.push(join(&cpu.0));
            cells.push(join(&cpu.1));
            table.row(cells);
        }
        out.push_str(&table.render());
        for row in &self.throughput {
            for (what, run) in [("upload", &row.upload), ("download", &row.download)] {
                if let Err(error) = run {
                    let _ = writeln!(out, "  {} {what} failed: {error}", row.path);
                }
            }
        }
        let _ = writeln!(
            out,
            "  (MB = 10^6 bytes; CPU columns: upload / download, CPU seconds per 10^9 bytes moved)"
        );
    }

    fn render_http(&self, out: &mut String) {
        let _ = writeln!(out, "\n2. {}", self.http_title);
        let base = self
            .http
            .first()
            .and_then(|r| r.result.as_ref().ok())
            .map(|(r, _)| *r);
        let mut table = Table::new(&[
            "path",
            "req/s",
            "vs direct",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99 vs direct",
            "errors",
            "server CPU us/req",
            "client CPU us/req",
        ]);
        for row in &self.http {
            match &row.result {
                Ok((r, cpu)) => {
                    let per_req = |s: f64| format!("{:.0}", s * 1e6 / r.requests.max(1) as f64);
                    table.row(vec![
                        row.path.clone(),
                        format!("{:.0}", r.rps()),
                        ratio(Some(r.rps()), base.map(|b| b.rps())),
                        format!("{:.2}", r.p50_ms),
                        format!("{:.2}", r.p90_ms),
                        format!("{:.2}", r.p99_ms),
                        ratio(Some(r.p99_ms), base.map(|b| b.p99_ms)),
                        r.errors.to_string(),
                        cpu.map_or("-".into(), |(s, _)| per_req(s)),
                        cpu.map_or("-".into(), |(_, c)| per_req(c)),
                    ]);
                }
                Err(_) => table.row(vec![row.path.clone(), "error".into()]),
            }
        }
        out.push_str(&table.render());
        for row in &self.http {
            if let Err(error) = &row.result {
                let _ = writeln!(out, "  {} failed: {error}", row.path);
            }
        }
    }

    fn render_memory(&self, out: &mut String) {
        let Some(memory) = &self.memory else { return };
        let _ = writeln!(out, "\n3. warrend resident memory per idle agent session");
        let m = match memory {
            Ok(m) => m,
            Err(error) => {
                let _ = writeln!(out, "  failed: {error}");
                return;
            }
        };
        let n = m.sessions as f64;
        let per = |after: u64| (after as f64 - m.rss_baseline_kib as f64) / n;
        let _ = writeln!(
            out,
            "  RSS after start:                     {:>8} KiB",
            m.rss_started_kib
        );
        let _ = writeln!(
            out,
            "  RSS after warm-up (1 session, gone): {:>8} KiB   <- baseline",
            m.rss_baseline_kib
        );
        let _ = writeln!(
            out,
            "  RSS with {} idle sessions:        {:>8} KiB   -> {:.1} KiB per session (target <= 64 KiB); connected in {:.2} s ({:.0} sessions/s)",
            m.sessions,
            m.rss_idle_kib,
            per(m.rss_idle_kib),
            m.connect_seconds,
            n / m.connect_seconds
        );
        if let (Some(bound), Some(secs)) = (m.rss_bound_kib, m.bind_seconds) {
            let _ = writeln!(
                out,
                "  RSS with 1 HTTP endpoint each:       {bound:>8} KiB   -> {:.1} KiB per session with its endpoint; bound in {secs:.2} s",
                per(bound)
            );
        }
        if let Some(error) = &m.error {
            let _ = writeln!(out, "  failed part way: {error}");
        }
    }

    fn render_footprint(&self, out: &mut String) {
        if self.footprint.is_empty() && self.warrend_bytes.is_none() {
            return;
        }
        let _ = writeln!(
            out,
            "\n4. Agent footprint (release binaries as built, not stripped; agent VmRSS with its three endpoints online)"
        );
        let mut table = Table::new(&[
            "path",
            "agent binary",
            "bytes",
            "MiB",
            "idle RSS MiB",
            "RSS after load MiB",
        ]);
        let mib = |r: &Result<u64, String>, per_mib: f64| match r {
            Ok(n) => format!("{:.1}", *n as f64 / per_mib),
            Err(_) => "error".into(),
        };
        for row in &self.footprint {
            table.row(vec![
                row.path.clone(),
                row.binary.clone(),
                row.binary_bytes
                    .as_ref()
                    .map_or("error".into(), |b| group_digits(*b)),
                mib(&row.binary_bytes, 1024.0 * 1024.0),
                mib(&row.rss_idle_kib, 1024.0),
                mib(&row.rss_after_load_kib, 1024.0),
            ]);
        }
        if !self.footprint.is_empty() {
            out.push_str(&table.render());
        }
        for row in &self.footprint {
            for (what, r) in [
                ("binary size", &row.binary_bytes),
                ("idle RSS", &row.rss_idle_kib),
                ("RSS after load", &row.rss_after_load_kib),
            ] {
                if let Err(error) = r {
                    let _ = writeln!(out, "  {} {what} failed: {error}", row.path);
                }
            }
        }
        match &self.warrend_bytes {
            Some(Ok(bytes)) => {
                let _ = writeln!(
                    out,
                    "  warrend binary: {} bytes ({:.1} MiB)",
                    group_digits(*bytes),
                    *bytes as f64 / (1024.0 * 1024.0)
                );
            }
            Some(Err(error)) => {
                let _ = writeln!(out, "  warrend binary size failed: {error}");
            }
            None => {}
        }
        let _ = writeln!(
            out,
            "  (idle: {} s after the readiness probes; after load: after the throughput and HTTP runs of that path.\n   \
             warren-bench is the ngrok-crate agent's binary but also holds the origin, load generator and orchestrator.)",
            self.footprint_idle_seconds
        );
    }

    /// Warren against each other tunnel measured, on the figures they share.
    fn render_comparison(&self, out: &mut String) {
        let find_tp = |prefix: &str| self.throughput.iter().find(|r| r.path.starts_with(prefix));
        let find_http = |prefix: &str| self.http.iter().find(|r| r.path.starts_with(prefix));
        let (Some(warren_tp), Some(warren_http)) = (find_tp("warren"), find_http("warren tcp"))
        else {
            return;
        };
        let peers: Vec<&str> = ["rathole", "bore"]
            .into_iter()
            .filter(|p| find_tp(p).is_some() || find_http(p).is_some())
            .collect();
        if peers.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\nWarren vs the other tunnels (Warren / other; >1 means Warren is higher)"
        );
        let mut table = Table::new(&[
            "other",
            "upload MB/s",
            "download MB/s",
            "TCP req/s",
            "TCP p99 latency",
        ]);
        let mbs = |r: &Result<TransferRun, String>| r.as_ref().ok().map(|r| r.transfer.mb_per_s());
        let load = |r: Option<&HttpRow>| r.and_then(|r| r.result.as_ref().ok()).map(|(l, _)| *l);
        for peer in peers {
            let tp = find_tp(peer);
            let http = load(find_http(peer));
            let warren = load(Some(warren_http));
            table.row(vec![
                tp.map_or(peer.to_owned(), |r| r.path.clone()),
                ratio(mbs(&warren_tp.upload), tp.and_then(|r| mbs(&r.upload))),
                ratio(mbs(&warren_tp.download), tp.and_then(|r| mbs(&r.download))),
                ratio(warren.map(|w| w.rps()), http.map(|h| h.rps())),
                ratio(warren.map(|w| w.p99_ms), http.map(|h| h.p99_ms)),
            ]);
        }
        out.push_str(&table.render());
    }
}

/// `a / b` as `0.42x`, or `-` when either is missing.
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

/// `1234567` as `1,234,567`.
fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A plain-text table: the first column left-aligned, the others right-aligned.
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::from(" ");
            for (c, cell) in row.iter().enumerate() {
                if c == 0 {
                    let _ = write!(line, " {cell:<w$}", w = widths[c]);
                } else {
                    let _ = write!(line, "  {cell:>w$}", w = widths[c]);
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_grouped_in_thousands() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1_000), "1,000");
        assert_eq!(group_digits(12_345_678), "12,345,678");
    }
}

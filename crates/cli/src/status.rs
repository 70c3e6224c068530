//! What the user sees of a running agent, as pure functions of the supervisor's snapshots:
//! the live status view ([`render`], framed for a terminal by [`frame`]) and the changes worth
//! a log line when there is no terminal ([`changes`]).
//!
//! Text that comes from the network (edge messages, request paths) is shown with control
//! characters escaped, so a visitor cannot drive the operator's terminal. This module must not
//! poll, sleep or write: the runner does.

use std::fmt::Write as _;
use std::time::Duration;

use warren_agent::control::{AgentStatus, Control, EndpointState, EndpointStatus, SessionState};
use warren_agent::inspect::Capture;

#[cfg(test)]
mod tests;

/// Requests shown in the status view.
pub const RECENT_REQUESTS: usize = 10;

/// Width of the label column of the status view.
const LABEL_WIDTH: usize = 30;

/// Narrowest width the view lays out for (narrower terminals get cut lines).
const MIN_WIDTH: usize = 40;

/// One line of the status view's request list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The request target (path and query).
    pub path: String,
    /// The response status; `None` when the exchange ended without a response.
    pub status: Option<u16>,
    /// From arrival to the end of the response.
    pub duration: Duration,
}

impl RecentRequest {
    /// The line for a captured exchange.
    pub fn from_capture(c: &Capture) -> RecentRequest {
        RecentRequest {
            method: c.request.method.to_string(),
            path: c.request.uri.clone(),
            status: c.response.as_ref().map(|r| r.status_code),
            duration: c.duration,
        }
    }
}

/// The status view, `width` columns wide (no line is longer), one `\n` after each line:
/// session status, id, agent version, connect URL, latency, local API URL; each endpoint with
/// its state, `public URL -> upstream` and counters; then the recent requests, newest first.
pub fn render(
    status: &AgentStatus,
    endpoints: &[EndpointStatus],
    recent: &[RecentRequest],
    web_url: Option<&str>,
    width: usize,
) -> String {
    let width = width.max(MIN_WIDTH);
    let mut lines: Vec<String> = Vec::new();
    let title = "Warren agent";
    let hint = "(Ctrl+C to quit)";
    lines.push(format!("{title}{hint:>w$}", w = width - title.len()));
    lines.push(String::new());
    let mut row = |label: &str, value: String| {
        lines.push(format!("{label:<LABEL_WIDTH$}{value}"));
    };
    let session = match &status.state {
        SessionState::Reconnecting { last_error } => {
            format!("reconnecting ({})", clean(last_error))
        }
        SessionState::Closed { reason } => format!("closed ({})", clean(reason)),
        state => state.as_str().to_owned(),
    };
    row("Session Status", session);
    if !status.client_id.is_empty() {
        row("Session ID", clean(&status.client_id));
    }
    row("Agent Version", clean(&status.agent_version));
    row("Connect URL", clean(&status.connect_url));
    row(
        "Latency",
        status
            .latency
            .map_or_else(|| "-".to_owned(), format_duration),
    );
    row(
        "Web Interface",
        web_url.map_or_else(|| "off".to_owned(), clean),
    );
    lines.push(String::new());
    lines.push("Endpoints".to_owned());
    if endpoints.is_empty() {
        lines.push("  (none running)".to_owned());
    }
    let name_width = endpoints
        .iter()
        .map(|e| e.config.name.chars().count())
        .max()
        .unwrap_or(0)
        .min(24);
    for ep in endpoints {
        let name = clean(&ep.config.name);
        let upstream = ep
            .config
            .upstream()
            .map_or_else(|_| clean(&ep.config.upstream.url), |u| u.to_string());
        let (state, target) = match &ep.state {
            EndpointState::Starting => {
                ("starting", format!("(waiting for the edge) -> {upstream}"))
            }
            EndpointState::Online => {
                let url = ep
                    .public_url
                    .as_deref()
                    .map_or_else(|| "?".to_owned(), clean);
                ("online", format!("{url} -> {upstream}"))
            }
            EndpointState::Failed { message, code } => {
                let code = code.as_deref().map(|c| format!("{}: ", clean(c)));
                (
                    "failed",
                    format!("{}{}", code.unwrap_or_default(), clean(message)),
                )
            }
        };
        lines.push(format!("  {name:<name_width$}  {state:<8}  {target}"));
        let c = &ep.counters;
        let mut counts = format!("conns {} total, {} open", c.conns_total, c.conns_open);
        if matches!(ep.proto.as_str(), "http" | "https") {
            let _ = write!(counts, ", {} HTTP requests", c.http_requests);
        }
        lines.push(format!("  {:<name_width$}  {counts}", ""));
    }
    lines.push(String::new());
    lines.push("HTTP Requests".to_owned());
    if recent.is_empty() {
        lines.push("  (none yet)".to_owned());
    }
    // `  METHOD  path…  status  duration`
    let path_width = width.saturating_sub(2 + 8 + 2 + 3 + 2 + 8).max(8);
    for r in recent.iter().take(RECENT_REQUESTS) {
        let status = r.status.map_or_else(|| "-".to_owned(), |s| s.to_string());
        lines.push(format!(
            "  {:<8}{:<path_width$}  {status:>3}  {:>8}",
            cut(&clean(&r.method), 7),
            cut(&clean(&r.path), path_width),
            format_duration(r.duration),
        ));
    }
    let mut out = String::new();
    for line in lines {
        out.push_str(&cut(&line, width));
        out.push('\n');
    }
    out
}

/// A message line under the status view (a reload's result), cut to `width`.
pub fn render_notice(notice: &str, width: usize) -> String {
    let mut line = cut(&clean(notice), width.max(MIN_WIDTH));
    line.push('\n');
    line
}

/// The escape sequences that redraw the screen with `body` (cursor home, each line followed by
/// erase-to-end-of-line, then erase below), keeping at most `rows` lines so the screen never
/// scrolls.
pub fn frame(body: &str, rows: usize) -> String {
    let mut out = String::from("\x1b[H");
    for (i, line) in body.lines().take(rows.max(1)).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(line);
        out.push_str("\x1b[K");
    }
    out.push_str("\x1b[J");
    out
}

/// Enters the alternate screen and hides the cursor.
pub const SCREEN_ENTER: &str = "\x1b[?1049h\x1b[?25l";
/// Shows the cursor and leaves the alternate screen.
pub const SCREEN_LEAVE: &str = "\x1b[?25h\x1b[?1049l";

/// `12ms`, `1.50s`, `2m05s`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// `s` with control characters escaped (`\u{1b}`), for the terminal.
fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `s` cut to at most `width` characters, ending in `…` when cut.
fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    if width > 0 {
        out.push('…');
    }
    out
}

/// What the log watcher compares between two polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The session's state.
    pub session: SessionState,
    /// The session id (`""` before the first connect).
    pub client_id: String,
    /// Each endpoint, in start order.
    pub endpoints: Vec<EndpointSnapshot>,
}

/// One endpoint in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSnapshot {
    /// Its name.
    pub name: String,
    /// Its public URL once bound.
    pub public_url: Option<String>,
    /// Its state.
    pub state: EndpointState,
    /// Its upstream, as shown.
    pub upstream: String,
}

impl Snapshot {
    /// Before the first poll: connecting, no endpoints.
    pub fn initial() -> Snapshot {
        Snapshot {
            session: SessionState::Connecting,
            client_id: String::new(),
            endpoints: Vec::new(),
        }
    }

    /// The current state of `control`.
    pub fn capture(control: &dyn Control) -> Snapshot {
        let status = control.status();
        Snapshot {
            session: status.state,
            client_id: status.client_id,
            endpoints: control
                .endpoints()
                .into_iter()
                .map(|e| EndpointSnapshot {
                    upstream: e
                        .config
                        .upstream()
                        .map_or_else(|_| e.config.upstream.url.clone(), |u| u.to_string()),
                    name: e.config.name,
                    public_url: e.public_url,
                    state: e.state,
                })
                .collect(),
        }
    }
}

/// Something worth a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The session authenticated.
    SessionOnline {
        /// The session id.
        client_id: String,
    },
    /// The session dropped or an attempt failed; the agent retries.
    SessionReconnecting {
        /// Why.
        error: String,
    },
    /// The session closed for good.
    SessionClosed {
        /// Why.
        reason: String,
    },
    /// An endpoint is bound and answers at `url`.
    EndpointOnline {
        /// Its name.
        name: String,
        /// Its public URL.
        url: String,
        /// Where its connections go.
        upstream: String,
    },
    /// The edge refused or stopped an endpoint.
    EndpointFailed {
        /// Its name.
        name: String,
        /// The edge's message.
        message: String,
        /// `ERR_NGROK_…` when given.
        code: Option<String>,
    },
    /// An endpoint stopped running.
    EndpointStopped {
        /// Its name.
        name: String,
    },
}

/// The changes from `prev` to `next`: session state transitions (a new error while
/// reconnecting counts), endpoints coming online or getting a new URL, failing, and going away.
pub fn changes(prev: &Snapshot, next: &Snapshot) -> Vec<Change> {
    let mut out = Vec::new();
    if prev.session != next.session {
        match &next.session {
            SessionState::Online => out.push(Change::SessionOnline {
                client_id: next.client_id.clone(),
            }),
            SessionState::Reconnecting { last_error } => out.push(Change::SessionReconnecting {
                error: last_error.clone(),
            }),
            SessionState::Closed { reason } => out.push(Change::SessionClosed {
                reason: reason.clone(),
            }),
            SessionState::Connecting => {}
        }
    }
    for ep in &next.endpoints {
        let before = prev.endpoints.iter().find(|p| p.name == ep.name);
        match &ep.state {
            EndpointState::Online => {
                let Some(url) = &ep.public_url else { continue };
                let seen = before.is_some_and(|b| {
                    b.state == EndpointState::Online && b.public_url.as_ref() == Some(url)
                });
                if !seen {
                    out.push(Change::EndpointOnline {
                        name: ep.name.clone(),
                        url: url.clone(),
                        upstream: ep.upstream.clone(),
                    });
                }
            }
            EndpointState::Failed { message, code } => {
                if before.is_none_or(|b| b.state != ep.state) {
                    out.push(Change::EndpointFailed {
                        name: ep.name.clone(),
                        message: message.clone(),
                        code: code.clone(),
                    });
                }
            }
            EndpointState::Starting => {}
        }
    }
    for p in &prev.endpoints {
        if !next.endpoints.iter().any(|n| n.name == p.name) {
            out.push(Change::EndpointStopped {
                name: p.name.clone(),
            });
        }
    }
    out
}

impl Change {
    /// Writes the change as a log line.
    pub fn log(&self) {
        match self {
            Change::SessionOnline { client_id } => {
                tracing::info!(client_id = %client_id, "session online");
            }
            Change::SessionReconnecting { error } => {
                tracing::warn!(err = %error, "session reconnecting");
            }
            Change::SessionClosed { reason } => {
                tracing::warn!(reason = %reason, "session closed");
            }
            Change::EndpointOnline {
                name,
                url,
                upstream,
            } => {
                tracing::info!(name = %name, url = %url, upstream = %upstream, "endpoint online");
            }
            Change::EndpointFailed {
                name,
                message,
                code,
            } => {
                tracing::error!(
                    name = %name,
                    err = %message,
                    code = code.as_deref().unwrap_or(""),
                    "endpoint failed"
                );
            }
            Change::EndpointStopped { name } => {
                tracing::info!(name = %name, "endpoint stopped");
            }
        }
    }
}

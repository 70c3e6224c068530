//! Where the agent's output goes: the live status view or log lines, and in which format.
//!
//! [`output_settings`] decides, purely, from the merged settings and whether stdout and stderr
//! are terminals; [`init`] installs the tracing subscriber it describes. Log lines are `logfmt`
//! (`t=… lvl=info msg="…" key=value`, written by [`Logfmt`]), JSON objects, or tracing's
//! human format (`term`). It must not decide what is logged: the runner does.

use std::fmt;
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use warren_agent::config::AgentSection;

use crate::args::{AgentFlags, LogFormat};
use crate::settings::Env;

#[cfg(test)]
mod tests;

/// Where log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// Nowhere.
    Off,
    /// Appended to a file.
    File(PathBuf),
}

/// Which standard streams are terminals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Terminals {
    /// Whether stdout is a terminal.
    pub stdout: bool,
    /// Whether stderr is a terminal.
    pub stderr: bool,
}

impl Terminals {
    /// This process's streams.
    pub fn detect() -> Terminals {
        use std::io::IsTerminal;
        Terminals {
            stdout: std::io::stdout().is_terminal(),
            stderr: std::io::stderr().is_terminal(),
        }
    }
}

/// How the agent's output looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Show the live status view on stdout.
    pub console_ui: bool,
    /// Where log lines go.
    pub target: LogTarget,
    /// Their format.
    pub format: LogFormat,
    /// The tracing filter (`info`, or `WARREN_LOG`'s directives).
    pub filter: String,
    /// Whether log lines may carry colours.
    pub ansi: bool,
}

/// Decides the output:
/// - the status view shows when stdout is a terminal, `console_ui` is not `false` and logs do
///   not go to stdout;
/// - logs go where `log` says; by default to stdout, or nowhere while the status view shows;
/// - the format is `log_format`, by default `term` when the logs go to a terminal and `logfmt`
///   otherwise;
/// - the filter is `--log-level`, else `WARREN_LOG` (tracing directives), else `log_level`, else
///   `info` (`crit` logs errors only).
///
/// `agent` is the merged section ([`crate::settings::merge_agent`]); `flags` tells whether the
/// level came from the command line.
pub fn output_settings(
    flags: &AgentFlags,
    env: &Env,
    agent: &AgentSection,
    tty: Terminals,
) -> Output {
    let log = agent
        .log
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty());
    let console_ui = tty.stdout
        && agent.console_ui.as_deref() != Some("false")
        && log.is_none_or(|l| !l.eq_ignore_ascii_case("stdout"));
    let target = match log {
        Some(l) if l.eq_ignore_ascii_case("stdout") => LogTarget::Stdout,
        Some(l) if l.eq_ignore_ascii_case("stderr") => LogTarget::Stderr,
        Some(l) if l.eq_ignore_ascii_case("false") => LogTarget::Off,
        Some(path) => LogTarget::File(PathBuf::from(path)),
        None if console_ui => LogTarget::Off,
        None => LogTarget::Stdout,
    };
    let to_terminal = match target {
        LogTarget::Stdout => tty.stdout,
        LogTarget::Stderr => tty.stderr,
        LogTarget::Off | LogTarget::File(_) => false,
    };
    let format = agent
        .log_format
        .as_deref()
        .and_then(LogFormat::parse)
        .unwrap_or(if to_terminal {
            LogFormat::Term
        } else {
            LogFormat::Logfmt
        });
    let level = |name: &str| {
        let level = if name == "crit" { "error" } else { name };
        if level == "debug" {
            // Library internals at debug drown the agent's own lines.
            "debug,h2=info,hyper=info,hyper_util=info,rustls=info,tokio_rustls=info".to_owned()
        } else {
            level.to_owned()
        }
    };
    let filter = match (flags.log_level, env.get("WARREN_LOG")) {
        (Some(l), _) => level(l.as_str()),
        (None, Some(directives)) if !directives.trim().is_empty() => directives.clone(),
        _ => level(agent.log_level.as_deref().unwrap_or("info")),
    };
    Output {
        console_ui,
        target,
        format,
        filter,
        ansi: to_terminal,
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The log file could not be opened.
    #[error("log file {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The filter does not parse.
    #[error("log filter `{filter}`: {message}")]
    Filter {
        /// The filter.
        filter: String,
        /// The parser's complaint.
        message: String,
    },
}

/// Installs the global tracing subscriber for `output` (nothing for [`LogTarget::Off`]). A
/// second call leaves the first subscriber in place.
pub fn init(output: &Output) -> Result<(), LoggingError> {
    let filter = tracing_subscriber::EnvFilter::try_new(&output.filter).map_err(|e| {
        LoggingError::Filter {
            filter: output.filter.clone(),
            message: e.to_string(),
        }
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(output.ansi);
    macro_rules! install {
        ($writer:expr) => {{
            let builder = builder.with_writer($writer);
            // `try_init` fails only when a subscriber is already set: keep that one.
            let _ = match output.format {
                LogFormat::Json => builder.json().flatten_event(true).try_init(),
                LogFormat::Logfmt => builder.event_format(Logfmt).try_init(),
                LogFormat::Term => builder.try_init(),
            };
        }};
    }
    match &output.target {
        LogTarget::Off => {}
        LogTarget::Stdout => install!(std::io::stdout),
        LogTarget::Stderr => install!(std::io::stderr),
        LogTarget::File(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| LoggingError::File {
                    path: path.clone(),
                    source,
                })?;
            install!(Mutex::new(file))
        }
    }
    Ok(())
}

/// The `logfmt` line format: `t=<RFC 3339 UTC> lvl=<level> msg="<message>" <field>=<value>…`,
/// values quoted when they hold spaces, `=` or quotes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut fields = LogfmtFields::default();
        event.record(&mut fields);
        writeln!(
            writer,
            "{}",
            logfmt_line(
                &now,
                *event.metadata().level(),
                &fields.message,
                &fields.pairs
            )
        )
    }
}

/// One logfmt line (without the newline).
pub fn logfmt_line(time: &str, level: Level, message: &str, fields: &[(String, String)]) -> String {
    let lvl = match level {
        Level::ERROR => "eror",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "dbug",
        Level::TRACE => "trce",
    };
    let mut line = format!("t={time} lvl={lvl} msg={}", logfmt_value(message));
    for (key, value) in fields {
        line.push(' ');
        line.push_str(key);
        line.push('=');
        line.push_str(&logfmt_value(value));
    }
    line
}

/// A logfmt value: as is when plain, else double-quoted with `\`, `"` and control characters
/// escaped.
pub fn logfmt_value(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, '=' | '"' | '\\'));
    if plain {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Collects an event's message and fields as text.
#[derive(Default)]
struct LogfmtFields {
    message: String,
    pairs: Vec<(String, String)>,
}

impl Visit for LogfmtFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record(field, format!("{value:?}"));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record(field, value.to_string());
    }
}

impl LogfmtFields {
    fn record(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = value;
        } else {
            self.pairs.push((field.name().to_owned(), value));
        }
    }
}

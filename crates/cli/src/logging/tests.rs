//! Tests of the output decision and the logfmt writer.

use super::*;
use crate::args::LogLevel;

const TTY: Terminals = Terminals {
    stdout: true,
    stderr: true,
};
const PIPE: Terminals = Terminals {
    stdout: false,
    stderr: false,
};

fn agent(log: Option<&str>, format: Option<&str>, console_ui: Option<&str>) -> AgentSection {
    AgentSection {
        log: log.map(str::to_owned),
        log_format: format.map(str::to_owned),
        console_ui: console_ui.map(str::to_owned),
        ..AgentSection::default()
    }
}

fn out(a: &AgentSection, tty: Terminals) -> Output {
    output_settings(&AgentFlags::default(), &Env::new(), a, tty)
}

#[test]
fn terminal_gets_the_status_view_and_no_logs() {
    let o = out(&agent(None, None, None), TTY);
    assert!(o.console_ui);
    assert_eq!(o.target, LogTarget::Off);
    // Logs to stderr beside the view, coloured on the terminal.
    let o = out(&agent(Some("stderr"), None, None), TTY);
    assert!(o.console_ui);
    assert_eq!(
        (o.target, o.format, o.ansi),
        (LogTarget::Stderr, LogFormat::Term, true)
    );
}

#[test]
fn no_terminal_gets_logfmt_on_stdout() {
    let o = out(&agent(None, None, None), PIPE);
    assert!(!o.console_ui);
    assert_eq!(
        (o.target, o.format, o.ansi),
        (LogTarget::Stdout, LogFormat::Logfmt, false)
    );
    let o = out(&agent(None, Some("json"), None), PIPE);
    assert_eq!(o.format, LogFormat::Json);
}

#[test]
fn log_stdout_or_console_ui_false_turn_the_view_off() {
    let o = out(&agent(Some("stdout"), None, None), TTY);
    assert!(!o.console_ui);
    assert_eq!((o.target, o.format), (LogTarget::Stdout, LogFormat::Term));
    let o = out(&agent(None, None, Some("false")), TTY);
    assert!(!o.console_ui);
    assert_eq!(o.target, LogTarget::Stdout);
    // `true` cannot draw on a pipe.
    assert!(!out(&agent(None, None, Some("true")), PIPE).console_ui);
    assert!(out(&agent(None, None, Some("iftty")), TTY).console_ui);
}

#[test]
fn log_targets() {
    let o = out(&agent(Some("false"), None, None), PIPE);
    assert_eq!(o.target, LogTarget::Off);
    let o = out(&agent(Some("/var/log/warren.log"), None, None), TTY);
    assert_eq!(o.target, LogTarget::File("/var/log/warren.log".into()));
    assert_eq!(
        (o.format, o.ansi),
        (LogFormat::Logfmt, false),
        "files get logfmt"
    );
}

#[test]
fn level_flag_then_warren_log_then_file_then_info() {
    let mut a = agent(None, None, None);
    assert_eq!(out(&a, PIPE).filter, "info");
    a.log_level = Some("crit".into());
    assert_eq!(out(&a, PIPE).filter, "error");
    let env: Env = [("WARREN_LOG".to_owned(), "warren_agent=trace".to_owned())].into();
    let o = output_settings(&AgentFlags::default(), &env, &a, PIPE);
    assert_eq!(o.filter, "warren_agent=trace");
    let flags = AgentFlags {
        log_level: Some(LogLevel::Warn),
        ..AgentFlags::default()
    };
    assert_eq!(output_settings(&flags, &env, &a, PIPE).filter, "warn");
    a.log_level = Some("debug".into());
    assert!(out(&a, PIPE).filter.starts_with("debug,"));
}

#[test]
fn logfmt_lines() {
    assert_eq!(logfmt_value("plain"), "plain");
    assert_eq!(logfmt_value(""), "\"\"");
    assert_eq!(logfmt_value("two words"), "\"two words\"");
    assert_eq!(logfmt_value("a=b"), "\"a=b\"");
    assert_eq!(logfmt_value("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
    assert_eq!(logfmt_value("esc\x1b"), "\"esc\\u{1b}\"");
    let fields = [
        ("name".to_owned(), "command_line".to_owned()),
        ("url".to_owned(), "https://a.localhost:8443".to_owned()),
        ("err".to_owned(), "connection refused".to_owned()),
    ];
    assert_eq!(
        logfmt_line(
            "2024-01-02T03:04:05Z",
            Level::INFO,
            "endpoint online",
            &fields
        ),
        "t=2024-01-02T03:04:05Z lvl=info msg=\"endpoint online\" name=command_line \
         url=https://a.localhost:8443 err=\"connection refused\""
    );
    assert!(logfmt_line("t", Level::ERROR, "x", &[]).contains("lvl=eror"));
}

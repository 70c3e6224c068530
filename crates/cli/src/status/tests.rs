//! Tests of the status view and of change detection.

use std::time::{Duration, SystemTime};

use warren_agent::config::{EndpointConfig, UpstreamConfig};
use warren_agent::control::EndpointCounters;

use super::*;

fn agent_status(state: SessionState) -> AgentStatus {
    AgentStatus {
        state,
        latency: Some(Duration::from_millis(12)),
        agent_version: "0.1.0".into(),
        connect_url: "localhost:4443".into(),
        client_id: "ts_2abc".into(),
    }
}

fn endpoint(name: &str, url: Option<&str>, upstream: &str, proto: &str) -> EndpointStatus {
    EndpointStatus {
        config: EndpointConfig {
            name: name.into(),
            url: Some(format!("{proto}://")),
            upstream: UpstreamConfig {
                url: upstream.into(),
                ..UpstreamConfig::default()
            },
            ..EndpointConfig::default()
        },
        proto: proto.into(),
        public_url: url.map(str::to_owned),
        id: url.map(|_| "ep_1".to_owned()),
        state: if url.is_some() {
            EndpointState::Online
        } else {
            EndpointState::Starting
        },
        counters: EndpointCounters {
            conns_total: 3,
            conns_open: 1,
            http_requests: 12,
            ..EndpointCounters::default()
        },
        started_at: SystemTime::UNIX_EPOCH,
    }
}

fn request(method: &str, path: &str, status: Option<u16>, ms: u64) -> RecentRequest {
    RecentRequest {
        method: method.into(),
        path: path.into(),
        status,
        duration: Duration::from_millis(ms),
    }
}

#[test]
fn renders_session_endpoints_and_requests() {
    let endpoints = [
        endpoint(
            "command_line",
            Some("https://abc.localhost:8443"),
            "8080",
            "https",
        ),
        endpoint("ssh", None, "22", "tcp"),
    ];
    let recent = [
        request("GET", "/api/cams?id=1", Some(200), 12),
        request("POST", "/upload", None, 1500),
    ];
    let text = render(
        &agent_status(SessionState::Online),
        &endpoints,
        &recent,
        Some("http://127.0.0.1:4040"),
        80,
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("Warren agent") && lines[0].ends_with("(Ctrl+C to quit)"));
    assert_eq!(lines[0].chars().count(), 80);
    for (label, value) in [
        ("Session Status", "online"),
        ("Session ID", "ts_2abc"),
        ("Agent Version", "0.1.0"),
        ("Connect URL", "localhost:4443"),
        ("Latency", "12ms"),
        ("Web Interface", "http://127.0.0.1:4040"),
    ] {
        let want = format!("{label:<30}{value}");
        assert!(
            lines.contains(&want.as_str()),
            "missing `{want}` in:\n{text}"
        );
    }
    assert!(
        text.contains(
            "command_line  online    https://abc.localhost:8443 -> http://localhost:8080"
        ),
        "{text}"
    );
    assert!(
        text.contains("conns 3 total, 1 open, 12 HTTP requests"),
        "{text}"
    );
    assert!(
        text.contains("ssh           starting  (waiting for the edge) -> tcp://localhost:22"),
        "{text}"
    );
    // No HTTP request count for a TCP endpoint.
    let ssh_counts = lines
        .iter()
        .skip_while(|l| !l.contains("ssh "))
        .nth(1)
        .unwrap();
    assert_eq!(ssh_counts.trim(), "conns 3 total, 1 open");
    let get = lines.iter().find(|l| l.contains("/api/cams?id=1")).unwrap();
    assert!(get.trim_start().starts_with("GET"), "{get}");
    assert!(get.trim_end().ends_with("200      12ms"), "{get}");
    let post = lines.iter().find(|l| l.contains("/upload")).unwrap();
    assert!(post.trim_end().ends_with("-     1.50s"), "{post}");
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
}

#[test]
fn lines_are_cut_to_the_width() {
    let long = format!("/{}", "a".repeat(300));
    let text = render(
        &agent_status(SessionState::Reconnecting {
            last_error: "x".repeat(200),
        }),
        &[endpoint(
            "web",
            Some(&format!("https://{}.example.com", "b".repeat(100))),
            "80",
            "https",
        )],
        &[request("GET", &long, Some(404), 3)],
        None,
        60,
    );
    for line in text.lines() {
        assert!(
            line.chars().count() <= 60,
            "{} chars: {line}",
            line.chars().count()
        );
    }
    assert!(text.contains("reconnecting (xxx"), "{text}");
    assert!(text.contains('…'), "{text}");
    assert!(text.contains("Web Interface                 off"), "{text}");
    let req = text.lines().find(|l| l.contains("/aaa")).unwrap();
    assert!(
        req.contains("404"),
        "status stays visible when the path is cut: {req}"
    );
    // A silly width still lays out.
    assert!(
        render(&agent_status(SessionState::Connecting), &[], &[], None, 0)
            .contains("(none running)")
    );
}

#[test]
fn network_text_cannot_drive_the_terminal() {
    let mut failed = endpoint("web", None, "80", "https");
    failed.state = EndpointState::Failed {
        message: "bad\x1b[2Jthing".into(),
        code: Some("ERR_NGROK_123".into()),
    };
    let text = render(
        &agent_status(SessionState::Closed {
            reason: "bye\x1b]0;title\x07".into(),
        }),
        &[failed],
        &[request("GET", "/\x1b[31mred", Some(200), 1)],
        None,
        120,
    );
    assert!(!text.contains('\x1b'), "{text:?}");
    assert!(!text.contains('\x07'), "{text:?}");
    assert!(
        text.contains("failed    ERR_NGROK_123: bad\\u{1b}[2Jthing"),
        "{text}"
    );
    assert!(!render_notice("reload \x1b[H", 80).contains('\x1b'));
}

#[test]
fn frame_redraws_in_place_without_scrolling() {
    let body = "one\ntwo\nthree\n";
    assert_eq!(
        frame(body, 10),
        "\x1b[Hone\x1b[K\ntwo\x1b[K\nthree\x1b[K\x1b[J"
    );
    assert_eq!(frame(body, 2), "\x1b[Hone\x1b[K\ntwo\x1b[K\x1b[J");
}

#[test]
fn durations() {
    assert_eq!(format_duration(Duration::from_micros(1500)), "1ms");
    assert_eq!(format_duration(Duration::from_millis(999)), "999ms");
    assert_eq!(format_duration(Duration::from_millis(1500)), "1.50s");
    assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
}

fn snap(session: SessionState, endpoints: &[(&str, Option<&str>, EndpointState)]) -> Snapshot {
    Snapshot {
        session,
        client_id: "ts_1".into(),
        endpoints: endpoints
            .iter()
            .map(|(name, url, state)| EndpointSnapshot {
                name: (*name).into(),
                public_url: url.map(str::to_owned),
                state: state.clone(),
                upstream: "http://localhost:80".into(),
            })
            .collect(),
    }
}

#[test]
fn changes_report_session_and_endpoint_transitions() {
    use EndpointState::*;
    let start = Snapshot::initial();
    let connecting = snap(SessionState::Connecting, &[("web", None, Starting)]);
    assert!(changes(&start, &connecting).is_empty());

    let online = snap(
        SessionState::Online,
        &[("web", Some("https://w.localhost"), Online)],
    );
    assert_eq!(
        changes(&connecting, &online),
        [
            Change::SessionOnline {
                client_id: "ts_1".into()
            },
            Change::EndpointOnline {
                name: "web".into(),
                url: "https://w.localhost".into(),
                upstream: "http://localhost:80".into(),
            },
        ]
    );
    assert!(changes(&online, &online).is_empty(), "no change, no line");

    let down = |e: &str| {
        snap(
            SessionState::Reconnecting {
                last_error: e.into(),
            },
            &[("web", Some("https://w.localhost"), Online)],
        )
    };
    assert_eq!(
        changes(&online, &down("refused")),
        [Change::SessionReconnecting {
            error: "refused".into()
        }]
    );
    assert!(changes(&down("refused"), &down("refused")).is_empty());
    assert_eq!(changes(&down("refused"), &down("timeout")).len(), 1);

    // A new URL after a reconnect is logged again.
    let moved = snap(
        SessionState::Online,
        &[("web", Some("https://w2.localhost"), Online)],
    );
    assert!(changes(&online, &moved).contains(&Change::EndpointOnline {
        name: "web".into(),
        url: "https://w2.localhost".into(),
        upstream: "http://localhost:80".into(),
    }));

    let failed_state = Failed {
        message: "taken".into(),
        code: Some("ERR_NGROK_334".into()),
    };
    let failed = snap(SessionState::Online, &[("web", None, failed_state.clone())]);
    assert_eq!(
        changes(&online, &failed),
        [Change::EndpointFailed {
            name: "web".into(),
            message: "taken".into(),
            code: Some("ERR_NGROK_334".into()),
        }]
    );
    assert!(changes(&failed, &failed).is_empty());

    let gone = snap(SessionState::Online, &[]);
    assert_eq!(
        changes(&online, &gone),
        [Change::EndpointStopped { name: "web".into() }]
    );
    let closed = snap(
        SessionState::Closed {
            reason: "stop".into(),
        },
        &[],
    );
    assert_eq!(
        changes(&gone, &closed),
        [Change::SessionClosed {
            reason: "stop".into()
        }]
    );
}

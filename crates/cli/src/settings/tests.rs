//! Tests of settings resolution: the command line parses as documented, and each setting
//! follows flag > environment > config file > default, with the environment passed as a map.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use warren_agent::config::{AgentSection, Config, EndpointConfig, UpstreamConfig};

use super::*;
use crate::args::Cli;

fn cli(args: &[&str]) -> Command {
    let argv = std::iter::once("warren").chain(args.iter().copied());
    match Cli::try_parse_from(argv) {
        Ok(cli) => cli.command,
        Err(e) => panic!("{args:?}: {e}"),
    }
}

fn parse_err(args: &[&str]) -> String {
    let argv = std::iter::once("warren").chain(args.iter().copied());
    match Cli::try_parse_from(argv) {
        Ok(cli) => panic!("{args:?} parsed: {cli:?}"),
        Err(e) => e.to_string(),
    }
}

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn resolve_ok(args: &[&str], env: &Env, file: Config) -> AgentOptions {
    resolve(&cli(args), env, file).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn resolve_err(args: &[&str], env: &Env, file: Config) -> SettingsError {
    match resolve(&cli(args), env, file) {
        Ok(o) => panic!("{args:?} resolved: {o:?}"),
        Err(e) => e,
    }
}

fn endpoint(name: &str, url: &str, upstream: &str) -> EndpointConfig {
    EndpointConfig {
        name: name.to_owned(),
        url: Some(url.to_owned()),
        upstream: UpstreamConfig {
            url: upstream.to_owned(),
            ..UpstreamConfig::default()
        },
        ..EndpointConfig::default()
    }
}

fn file_with(agent: AgentSection, endpoints: Vec<EndpointConfig>) -> Config {
    Config {
        paths: vec![PathBuf::from("/etc/warren/agent.yml")],
        agent,
        endpoints,
    }
}

#[test]
fn http_with_a_port_runs_one_command_line_endpoint() {
    let opts = resolve_ok(&["http", "8080"], &Env::new(), Config::default());
    assert_eq!(opts.start, [COMMAND_LINE_ENDPOINT]);
    assert!(!opts.start_all);
    let [ep] = &opts.config.endpoints[..] else {
        panic!("{:?}", opts.config.endpoints)
    };
    assert_eq!(ep.name, "command_line");
    assert_eq!(ep.url, None, "a generated https name");
    assert_eq!(ep.proto().unwrap(), "https");
    assert_eq!(ep.upstream.url, "8080");
    assert_eq!(ep.upstream().unwrap().to_string(), "http://localhost:8080");
    assert_eq!(ep.inspect, None);
    assert!(!ep.pooling_enabled);
    // Defaults.
    let agent = &opts.config.agent;
    assert_eq!(agent.connect_url.as_deref(), Some("localhost:4443"));
    assert_eq!(
        agent.web_addr,
        Some(Some("127.0.0.1:4040".parse::<SocketAddr>().unwrap()))
    );
    assert_eq!(agent.authtoken, None);
}

#[test]
fn http_with_url_and_every_flag() {
    let opts = resolve_ok(
        &[
            "http",
            "https://localhost:8443",
            "--url",
            "https://cam1.site1.example.com",
            "--proxy-proto",
            "2",
            "--upstream-protocol",
            "http2",
            "--pooling-enabled",
            "--inspect=false",
            "--name",
            "cam1",
        ],
        &Env::new(),
        Config::default(),
    );
    let ep = &opts.config.endpoints[0];
    assert_eq!(ep.name, "cam1");
    assert_eq!(opts.start, ["cam1"]);
    assert_eq!(ep.url.as_deref(), Some("https://cam1.site1.example.com"));
    assert_eq!(ep.host().as_deref(), Some("cam1.site1.example.com"));
    assert_eq!(ep.upstream.url, "https://localhost:8443");
    assert_eq!(ep.upstream.protocol.as_deref(), Some("http2"));
    assert_eq!(ep.upstream.proxy_protocol, Some(2));
    assert!(ep.pooling_enabled);
    assert_eq!(ep.inspect, Some(false));
}

#[test]
fn http_url_and_domain_forms() {
    let url = |args: &[&str]| {
        resolve_ok(args, &Env::new(), Config::default())
            .config
            .endpoints[0]
            .url
            .clone()
    };
    assert_eq!(
        url(&["http", "80", "--url", "cam.example.com"]).as_deref(),
        Some("https://cam.example.com")
    );
    assert_eq!(
        url(&["http", "80", "--url", "http://cam.example.com"]).as_deref(),
        Some("http://cam.example.com")
    );
    assert_eq!(
        url(&["http", "80", "--domain", "cam.example.com"]).as_deref(),
        Some("https://cam.example.com")
    );
    assert_eq!(
        url(&["http", "80", "--inspect"]),
        None,
        "--inspect alone is --inspect=true"
    );
    let ep = &resolve_ok(&["http", "80", "--inspect"], &Env::new(), Config::default())
        .config
        .endpoints[0];
    assert_eq!(ep.inspect, Some(true));
}

#[test]
fn http_refuses_bad_flags_naming_them() {
    let e = resolve_err(
        &["http", "80", "--url", "tcp://x:1"],
        &Env::new(),
        Config::default(),
    );
    assert!(
        matches!(&e, SettingsError::Flag { flag, .. } if flag == "--url"),
        "{e}"
    );
    assert!(e.to_string().contains("warren tcp"), "{e}");
    let e = resolve_err(&["http", "ftp://x"], &Env::new(), Config::default());
    assert!(e.to_string().starts_with("UPSTREAM: "), "{e}");
    let e = resolve_err(
        &["http", "80", "--name", "a b"],
        &Env::new(),
        Config::default(),
    );
    assert!(e.to_string().starts_with("--name: "), "{e}");
    let e = resolve_err(
        &["http", "80", "--domain", "https://x.example.com"],
        &Env::new(),
        Config::default(),
    );
    assert!(e.to_string().starts_with("--domain: "), "{e}");
    let e = resolve_err(
        &["http", "80", "--url", "https://a/b"],
        &Env::new(),
        Config::default(),
    );
    assert!(e.to_string().starts_with("--url: "), "{e}");
    // clap refuses these before resolution.
    assert!(parse_err(&["http", "80", "--proxy-proto", "3"]).contains("--proxy-proto"));
    assert!(parse_err(&["http", "80", "--upstream-protocol", "h3"]).contains("h3"));
    assert!(parse_err(&["http", "80", "--url", "a", "--domain", "b"]).contains("cannot be used"));
    assert!(parse_err(&["http"]).contains("UPSTREAM"));
    assert!(parse_err(&["http", "80", "--web-addr", "nowhere"]).contains("--web-addr"));
}

#[test]
fn tcp_and_tls_endpoints() {
    let ep = |args: &[&str]| {
        resolve_ok(args, &Env::new(), Config::default())
            .config
            .endpoints[0]
            .clone()
    };
    let tcp = ep(&["tcp", "22"]);
    assert_eq!(tcp.url.as_deref(), Some("tcp://"));
    assert_eq!(tcp.upstream().unwrap().to_string(), "tcp://localhost:22");
    let tcp = ep(&["tcp", "22", "--remote-addr", "1.tcp.example.com:20001"]);
    assert_eq!(tcp.url.as_deref(), Some("tcp://1.tcp.example.com:20001"));
    assert_eq!(
        tcp.remote_addr().as_deref(),
        Some("1.tcp.example.com:20001")
    );
    let tcp = ep(&[
        "tcp",
        "10.0.0.5:22",
        "--url",
        "tcp://h.example.com:20002",
        "--proxy-proto",
        "1",
    ]);
    assert_eq!(tcp.remote_addr().as_deref(), Some("h.example.com:20002"));
    assert_eq!(tcp.upstream.proxy_protocol, Some(1));
    let tcp = ep(&["tcp", "22", "--url", "h.example.com:20003"]);
    assert_eq!(tcp.url.as_deref(), Some("tcp://h.example.com:20003"));

    let tls = ep(&["tls", "443"]);
    assert_eq!(tls.url.as_deref(), Some("tls://"));
    assert_eq!(tls.upstream().unwrap().to_string(), "tcp://localhost:443");
    let tls = ep(&["tls", "443", "--domain", "dev.example.com"]);
    assert_eq!(tls.url.as_deref(), Some("tls://dev.example.com"));
    let tls = ep(&["tls", "443", "--url", "tls://dev2.example.com"]);
    assert_eq!(tls.host().as_deref(), Some("dev2.example.com"));

    let e = resolve_err(
        &["tcp", "22", "--url", "https://x.example.com"],
        &Env::new(),
        Config::default(),
    );
    assert!(e.to_string().contains("warren http"), "{e}");
    let e = resolve_err(
        &["tls", "443", "--url", "tcp://x:1"],
        &Env::new(),
        Config::default(),
    );
    assert!(e.to_string().starts_with("--url: "), "{e}");
    let e = resolve_err(
        &["tcp", "22", "--remote-addr", "tcp://x:1"],
        &Env::new(),
        Config::default(),
    );
    assert!(e.to_string().starts_with("--remote-addr: "), "{e}");
}

#[test]
fn command_line_endpoint_ignores_config_endpoints() {
    let file = file_with(
        AgentSection::default(),
        vec![endpoint("web", "https://web.example.com", "80")],
    );
    let opts = resolve_ok(&["http", "8080"], &Env::new(), file);
    let names: Vec<_> = opts.config.endpoints.iter().map(|e| &e.name).collect();
    assert_eq!(names, ["command_line"]);
    assert_eq!(opts.config.paths, [Path::new("/etc/warren/agent.yml")]);
}

#[test]
fn start_picks_endpoints_by_name() {
    let file = || {
        file_with(
            AgentSection::default(),
            vec![
                endpoint("web", "https://web.example.com", "80"),
                endpoint("ssh", "tcp://", "22"),
            ],
        )
    };
    let opts = resolve_ok(&["start", "ssh"], &Env::new(), file());
    assert_eq!(opts.start, ["ssh"]);
    assert!(!opts.start_all);
    assert_eq!(opts.config.endpoints.len(), 2, "all stay defined");

    let opts = resolve_ok(&["start", "ssh", "web", "ssh"], &Env::new(), file());
    assert_eq!(opts.start, ["ssh", "web"]);

    let opts = resolve_ok(&["start", "--all"], &Env::new(), file());
    assert_eq!(opts.start, ["web", "ssh"]);
    assert!(opts.start_all);

    let opts = resolve_ok(&["start", "--none"], &Env::new(), file());
    assert!(opts.start.is_empty() && !opts.start_all);

    let e = resolve_err(&["start", "web", "db", "cache"], &Env::new(), file());
    assert_eq!(
        e,
        SettingsError::UnknownEndpoints {
            unknown: vec!["db".into(), "cache".into()],
            known: vec!["web".into(), "ssh".into()],
        }
    );
    assert_eq!(
        e.to_string(),
        "no endpoint named `db`, `cache` in the config (it defines: web, ssh)"
    );
    let e = resolve_err(&["start"], &Env::new(), file());
    assert!(e.to_string().contains("--all or --none"), "{e}");
    assert!(e.to_string().contains("web, ssh"), "{e}");
    let e = resolve_err(&["start", "x"], &Env::new(), Config::default());
    assert!(e.to_string().contains("defines no endpoints"), "{e}");

    assert!(parse_err(&["start", "web", "--all"]).contains("cannot be used"));
    assert!(parse_err(&["start", "--all", "--none"]).contains("cannot be used"));
}

#[test]
fn precedence_flag_then_env_then_file_then_default() {
    let file = || {
        file_with(
            AgentSection {
                authtoken: Some("file-token".into()),
                connect_url: Some("file.example.com:443".into()),
                connect_cas: Some("/etc/file-ca.pem".into()),
                metadata: Some("file-meta".into()),
                web_addr: Some(Some("127.0.0.1:5000".parse().unwrap())),
                log_format: Some("term".into()),
                log: Some("stderr".into()),
                log_level: Some("warn".into()),
                remote_management: Some(false),
                ..AgentSection::default()
            },
            Vec::new(),
        )
    };
    let full_env = env(&[
        ("WARREN_AUTHTOKEN", "env-token"),
        ("NGROK_AUTHTOKEN", "ngrok-token"),
        ("WARREN_CONNECT_URL", "env.example.com:443"),
        ("WARREN_CONNECT_CAS", "host"),
        ("WARREN_METADATA", "env-meta"),
        ("WARREN_WEB_ADDR", "false"),
        ("WARREN_LOG_FORMAT", "json"),
    ]);
    let flags = [
        "tcp",
        "22",
        "--authtoken",
        "flag-token",
        "--connect-url",
        "flag.example.com:443",
        "--connect-cas",
        "/flag-ca.pem",
        "--metadata",
        "flag-meta",
        "--web-addr",
        "localhost:4041",
        "--log-format",
        "logfmt",
        "--log",
        "/var/log/warren.log",
        "--log-level",
        "debug",
    ];

    // Flags win over everything.
    let a = resolve_ok(&flags, &full_env, file()).config.agent;
    assert_eq!(a.authtoken.as_deref(), Some("flag-token"));
    assert_eq!(a.connect_url.as_deref(), Some("flag.example.com:443"));
    assert_eq!(a.connect_cas.as_deref(), Some("/flag-ca.pem"));
    assert_eq!(a.metadata.as_deref(), Some("flag-meta"));
    assert_eq!(a.web_addr, Some(Some("127.0.0.1:4041".parse().unwrap())));
    assert_eq!(a.log_format.as_deref(), Some("logfmt"));
    assert_eq!(a.log.as_deref(), Some("/var/log/warren.log"));
    assert_eq!(a.log_level.as_deref(), Some("debug"));
    assert_eq!(
        a.remote_management,
        Some(false),
        "file-only settings are kept"
    );

    // Then the environment.
    let a = resolve_ok(&["tcp", "22"], &full_env, file()).config.agent;
    assert_eq!(a.authtoken.as_deref(), Some("env-token"));
    assert_eq!(a.connect_url.as_deref(), Some("env.example.com:443"));
    assert_eq!(a.connect_cas.as_deref(), Some("host"));
    assert_eq!(a.metadata.as_deref(), Some("env-meta"));
    assert_eq!(
        a.web_addr,
        Some(None),
        "WARREN_WEB_ADDR=false turns the API off"
    );
    assert_eq!(a.log_format.as_deref(), Some("json"));
    assert_eq!(a.log.as_deref(), Some("stderr"), "no env var for --log");

    // NGROK_AUTHTOKEN when WARREN_AUTHTOKEN is unset or empty.
    let ngrok_only = env(&[("WARREN_AUTHTOKEN", ""), ("NGROK_AUTHTOKEN", "ngrok-token")]);
    let a = resolve_ok(&["tcp", "22"], &ngrok_only, file()).config.agent;
    assert_eq!(a.authtoken.as_deref(), Some("ngrok-token"));

    // Then the file.
    let a = resolve_ok(&["tcp", "22"], &Env::new(), file()).config.agent;
    assert_eq!(a.authtoken.as_deref(), Some("file-token"));
    assert_eq!(a.connect_url.as_deref(), Some("file.example.com:443"));
    assert_eq!(a.web_addr, Some(Some("127.0.0.1:5000".parse().unwrap())));
    assert_eq!(a.log_format.as_deref(), Some("term"));
    assert_eq!(a.metadata.as_deref(), Some("file-meta"));

    // Then the defaults.
    let a = resolve_ok(&["tcp", "22"], &Env::new(), Config::default())
        .config
        .agent;
    assert_eq!(a.connect_url.as_deref(), Some(DEFAULT_CONNECT_URL));
    assert_eq!(a.web_addr, Some(Some(DEFAULT_WEB_ADDR)));
    assert_eq!(a.connect_cas, None);
    assert_eq!(
        a.log_format, None,
        "decided by the output, from the terminal"
    );
}

#[test]
fn web_addr_false_flag_and_bad_env_values() {
    let a = resolve_ok(
        &["tls", "443", "--web-addr", "false"],
        &Env::new(),
        Config::default(),
    )
    .config
    .agent;
    assert_eq!(a.web_addr, Some(None));

    let e = resolve_err(
        &["tls", "443"],
        &env(&[("WARREN_WEB_ADDR", "somewhere")]),
        Config::default(),
    );
    assert!(e.to_string().contains("WARREN_WEB_ADDR"), "{e}");
    let e = resolve_err(
        &["tls", "443"],
        &env(&[("WARREN_LOG_FORMAT", "xml")]),
        Config::default(),
    );
    assert!(e.to_string().contains("WARREN_LOG_FORMAT"), "{e}");
    let big = "m".repeat(MAX_METADATA_BYTES + 1);
    let e = resolve_err(
        &["tls", "443"],
        &env(&[("WARREN_METADATA", &big)]),
        Config::default(),
    );
    assert!(e.to_string().contains("WARREN_METADATA"), "{e}");
    let e = resolve_err(
        &["tls", "443", "--metadata", &big],
        &Env::new(),
        Config::default(),
    );
    assert!(e.to_string().starts_with("--metadata: "), "{e}");
}

#[test]
fn config_paths_flag_then_env_then_default() {
    let flag = |paths: &[&str]| ConfigFlag {
        paths: paths.iter().map(PathBuf::from).collect(),
    };
    let default = Some(PathBuf::from("/home/u/.config/warren/warren.yml"));
    let e = env(&[("WARREN_CONFIG", "/etc/a.yml, /etc/b.yml")]);
    assert_eq!(
        config_paths(&flag(&["x.yml", "y.yml"]), &e, default.clone()),
        [PathBuf::from("x.yml"), PathBuf::from("y.yml")]
    );
    assert_eq!(
        config_paths(&flag(&[]), &e, default.clone()),
        [PathBuf::from("/etc/a.yml"), PathBuf::from("/etc/b.yml")]
    );
    assert_eq!(
        config_paths(&flag(&[]), &Env::new(), default.clone()),
        [default.clone().unwrap()]
    );
    assert!(config_paths(&flag(&[]), &Env::new(), None).is_empty());
    // Repeated on the command line.
    let Command::Start(a) = cli(&["start", "--all", "--config", "a.yml", "--config", "b.yml"])
    else {
        panic!()
    };
    assert_eq!(
        a.agent.config.paths,
        [PathBuf::from("a.yml"), PathBuf::from("b.yml")]
    );
}

#[test]
fn non_agent_commands_do_not_resolve() {
    for args in [
        &["version"][..],
        &["config", "check"],
        &["service", "start"],
    ] {
        assert_eq!(
            resolve(&cli(args), &Env::new(), Config::default()).unwrap_err(),
            SettingsError::NotAnAgentCommand
        );
    }
}

#[test]
fn service_flags_parse_with_defaults() {
    let Command::Service(crate::args::ServiceCommand::Install(a)) =
        cli(&["service", "install", "--config", "/etc/warren/agent.yml"])
    else {
        panic!()
    };
    assert_eq!(a.name, "warren");
    assert_eq!(a.unit_dir, Path::new("/etc/systemd/system"));
    assert!(!a.no_start && !a.force && a.user.is_none());
    assert!(parse_err(&["service", "install"]).contains("--config"));
}

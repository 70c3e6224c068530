//! The `warren` binary without an edge: `config check`, `service install|uninstall` into a
//! temporary directory, refusals with their exit codes, and `--help` naming every flag.

use std::path::Path;
use std::process::{Command, Output};

/// `warren` with the environment it reads cleared and `HOME` in `home`, so no config file or
/// token of the machine running the tests leaks in.
fn warren(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warren"));
    for var in warren_cli::settings::ENV_VARS {
        cmd.env_remove(var);
    }
    cmd.env_remove("XDG_CONFIG_HOME")
        .env("HOME", home)
        .current_dir(home)
        .stdin(std::process::Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("warren runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

const GOOD: &str = "version: 3
agent:
  authtoken: token-from-file
endpoints:
  - name: web
    url: https://web.example.com
    upstream:
      url: 8080
  - name: ssh
    url: tcp://
    upstream:
      url: 22
";

const BAD_PROTOCOL: &str = "version: 3
agent:
  authtoken: x
endpoints:
  - name: web
    url: https://web.example.com
    upstream:
      url: 8080
      protocol: h3
";

#[test]
fn config_check_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yml");
    std::fs::write(&path, GOOD).unwrap();
    let (code, out, err) = run(warren(dir.path())
        .args(["config", "check", "--config"])
        .arg(&path));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        format!("Valid configuration file at {}", path.display())
    );
}

#[test]
fn config_check_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yml");
    std::fs::write(&path, BAD_PROTOCOL).unwrap();
    let (code, out, err) = run(warren(dir.path())
        .args(["config", "check", "--config"])
        .arg(&path));
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    let want = format!("{}:9:", path.display());
    assert!(err.contains(&want), "no `{want}` in: {err}");
    assert!(err.contains("endpoints[0].upstream.protocol"), "{err}");
    assert!(err.contains("h3"), "{err}");

    std::fs::write(&path, "version: 3\nagent:\n  authtoken: x\n  bogus: 1\n").unwrap();
    let (code, _, err) = run(warren(dir.path())
        .args(["config", "check", "--config"])
        .arg(&path));
    assert_eq!(code, 1);
    assert!(err.contains(&format!("{}:4:", path.display())), "{err}");
    assert!(err.contains("agent.bogus"), "{err}");
}

#[test]
fn config_check_reads_warren_config_and_the_default_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("from-env.yml");
    std::fs::write(&path, GOOD).unwrap();
    let (code, out, err) = run(warren(dir.path())
        .args(["config", "check"])
        .env("WARREN_CONFIG", &path));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("from-env.yml"), "{out}");

    // No file anywhere: the default path is named.
    let (code, _, err) = run(warren(dir.path()).args(["config", "check"]));
    assert_eq!(code, 1);
    assert!(err.contains(".config/warren/warren.yml"), "{err}");

    // The default path, once it exists.
    let default = dir.path().join(".config/warren/warren.yml");
    std::fs::create_dir_all(default.parent().unwrap()).unwrap();
    std::fs::write(&default, GOOD).unwrap();
    let (code, out, err) = run(warren(dir.path()).args(["config", "check"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&default.display().to_string()), "{out}");
}

#[test]
fn start_refuses_unknown_names_listing_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yml");
    std::fs::write(&path, GOOD).unwrap();
    let (code, _, err) = run(warren(dir.path())
        .args(["start", "db", "--config"])
        .arg(&path));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("`db`") && err.contains("web, ssh"), "{err}");
    let (code, _, err) = run(warren(dir.path()).args(["start", "--config"]).arg(&path));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--all"), "{err}");
    // A bad file stops `start` with the same message as `config check`.
    std::fs::write(&path, BAD_PROTOCOL).unwrap();
    let (code, _, err) = run(warren(dir.path())
        .args(["start", "--all", "--config"])
        .arg(&path));
    assert_eq!(code, 1);
    assert!(err.contains("endpoints[0].upstream.protocol"), "{err}");
}

#[test]
fn agent_refusals_exit_1_and_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    // No authtoken anywhere.
    let (code, _, err) = run(warren(dir.path()).args(["http", "8080", "--web-addr", "false"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("authtoken"), "{err}");
    // A flag the command cannot serve.
    let (code, _, err) = run(warren(dir.path()).args(["http", "8080", "--url", "tcp://x:1"]));
    assert_eq!(code, 1);
    assert!(err.contains("--url") && err.contains("warren tcp"), "{err}");
    // A bad environment variable is named.
    let (code, _, err) = run(warren(dir.path())
        .args(["tcp", "22"])
        .env("WARREN_WEB_ADDR", "nowhere"));
    assert_eq!(code, 1);
    assert!(err.contains("WARREN_WEB_ADDR"), "{err}");
    // Usage errors.
    let (code, _, _) = run(warren(dir.path()).args(["http"]));
    assert_eq!(code, 2);
    let (code, _, _) = run(warren(dir.path()).args(["tcp", "22", "--proxy-proto", "7"]));
    assert_eq!(code, 2);
    let (code, _, _) = run(warren(dir.path()).args(["frobnicate"]));
    assert_eq!(code, 2);
}

#[test]
fn service_install_and_uninstall_into_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let units = dir.path().join("units");
    std::fs::create_dir(&units).unwrap();
    let config = dir.path().join("agent.yml");
    std::fs::write(&config, GOOD).unwrap();
    let install = |extra: &[&str]| {
        run(warren(dir.path())
            .args(["service", "install", "--no-start", "--config", "agent.yml"])
            .arg("--unit-dir")
            .arg(&units)
            .args(extra))
    };
    let (code, out, err) = install(&["--name", "edge-agent", "--user", "warren"]);
    assert_eq!(code, 0, "{err}");
    let unit_path = units.join("edge-agent.service");
    assert!(out.contains(&unit_path.display().to_string()), "{out}");
    assert!(out.contains("systemctl"), "how to start it: {out}");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_warren")).unwrap();
    let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
    assert!(
        exec.contains(&format!(" --config {} ", config.display())),
        "absolute config path: {exec}"
    );
    assert!(exec.contains("start --all"), "{exec}");
    let exe_in_unit = exec
        .strip_prefix("ExecStart=")
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert_eq!(std::fs::canonicalize(exe_in_unit).unwrap(), exe);
    assert!(unit.contains("User=warren\n"), "{unit}");

    // Installed already: refused, then overwritten with --force.
    let (code, _, err) = install(&["--name", "edge-agent"]);
    assert_eq!(code, 1);
    assert!(err.contains("--force"), "{err}");
    let (code, _, err) = install(&["--name", "edge-agent", "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !std::fs::read_to_string(&unit_path)
            .unwrap()
            .contains("User=")
    );

    let (code, out, err) = run(warren(dir.path())
        .args(["service", "uninstall", "--no-stop", "--name", "edge-agent"])
        .arg("--unit-dir")
        .arg(&units));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Removed"), "{out}");
    assert!(!unit_path.exists());
    let (code, _, err) = run(warren(dir.path())
        .args(["service", "uninstall", "--no-stop", "--name", "edge-agent"])
        .arg("--unit-dir")
        .arg(&units));
    assert_eq!(code, 1);
    assert!(err.contains("not installed"), "{err}");
}

#[test]
fn service_install_refuses_a_missing_or_invalid_config() {
    let dir = tempfile::tempdir().unwrap();
    let units = dir.path();
    let (code, _, err) = run(warren(dir.path())
        .args([
            "service",
            "install",
            "--no-start",
            "--config",
            "missing.yml",
        ])
        .arg("--unit-dir")
        .arg(units));
    assert_eq!(code, 1);
    assert!(
        err.contains("missing.yml") && err.contains("does not exist"),
        "{err}"
    );
    std::fs::write(dir.path().join("bad.yml"), BAD_PROTOCOL).unwrap();
    let (code, _, err) = run(warren(dir.path())
        .args(["service", "install", "--no-start", "--config", "bad.yml"])
        .arg("--unit-dir")
        .arg(units));
    assert_eq!(code, 1);
    assert!(err.contains("bad.yml:9:"), "{err}");
    assert!(!units.join("warren.service").exists());
    let (code, _, err) = run(warren(dir.path())
        .args([
            "service",
            "install",
            "--no-start",
            "--config",
            "bad.yml",
            "--name",
            "../x",
        ])
        .arg("--unit-dir")
        .arg(units));
    assert_eq!(code, 1, "{err}");
}

#[test]
fn help_lists_every_flag() {
    let dir = tempfile::tempdir().unwrap();
    let help = |args: &[&str]| {
        let (code, out, err) = run(warren(dir.path()).args(args).arg("--help"));
        assert_eq!(code, 0, "{err}");
        out
    };
    let agent_flags = [
        "--authtoken",
        "WARREN_AUTHTOKEN",
        "NGROK_AUTHTOKEN",
        "--connect-url",
        "WARREN_CONNECT_URL",
        "--connect-cas",
        "WARREN_CONNECT_CAS",
        "--metadata",
        "WARREN_METADATA",
        "--config",
        "WARREN_CONFIG",
        "--web-addr",
        "WARREN_WEB_ADDR",
        "--log ",
        "--log-level",
        "--log-format",
        "WARREN_LOG_FORMAT",
    ];
    let cases: [(&[&str], &[&str]); 4] = [
        (
            &["http"],
            &[
                "<UPSTREAM>",
                "--url",
                "--domain",
                "--proxy-proto",
                "--upstream-protocol",
                "--pooling-enabled",
                "--inspect",
                "--name",
            ],
        ),
        (
            &["tcp"],
            &[
                "<UPSTREAM>",
                "--url",
                "--remote-addr",
                "--proxy-proto",
                "--name",
            ],
        ),
        (&["tls"], &["<UPSTREAM>", "--url", "--domain", "--name"]),
        (&["start"], &["[NAME]...", "--all", "--none"]),
    ];
    for (command, own) in cases {
        let text = help(command);
        for flag in own.iter().chain(agent_flags.iter()) {
            assert!(
                text.contains(flag),
                "`warren {command:?} --help` lacks {flag}:\n{text}"
            );
        }
    }
    let text = help(&["service", "install"]);
    for flag in [
        "--config",
        "--name",
        "--unit-dir",
        "--user",
        "--no-start",
        "--force",
    ] {
        assert!(text.contains(flag), "{flag}:\n{text}");
    }
    let text = help(&["service", "uninstall"]);
    for flag in ["--name", "--unit-dir", "--no-stop"] {
        assert!(text.contains(flag), "{flag}:\n{text}");
    }
    assert!(help(&["config", "check"]).contains("--config"));
    let top = help(&[]);
    for word in [
        "http",
        "tcp",
        "tls",
        "start",
        "config",
        "service",
        "version",
        "Exit codes",
    ] {
        assert!(top.contains(word), "{word}:\n{top}");
    }
}

#[test]
fn version_prints_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run(warren(dir.path()).arg("version"));
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!("warren version {}", env!("CARGO_PKG_VERSION"))
    );
}

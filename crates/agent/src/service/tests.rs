//! Tests of the systemd service: the unit's text, quoting, and install/uninstall into a
//! temporary directory with `systemctl` replaced by a script that records its arguments.

use std::path::{Path, PathBuf};

use super::*;

fn spec(dir: &Path) -> ServiceSpec {
    let config = dir.join("agent.yml");
    std::fs::write(&config, "version: 3\nagent: {}\n").unwrap();
    ServiceSpec {
        unit_dir: dir.to_path_buf(),
        ..ServiceSpec::new(PathBuf::from("/usr/local/bin/warren"), config)
    }
}

/// A `systemctl` that appends its arguments, one command per line, to `log`, and fails when an
/// argument is `fail.service`.
fn recorder(log: &Path) -> Systemctl {
    let script = format!(
        r#"echo "$@" >> '{}'; for a in "$@"; do [ "$a" = fail.service ] && {{ echo 'Unit fail.service not found.' >&2; exit 5; }}; done; exit 0"#,
        log.display()
    );
    Systemctl {
        program: PathBuf::from("/bin/sh"),
        leading_args: vec!["-c".into(), script.into(), "systemctl".into()],
    }
}

fn lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn unit_has_the_sections_and_the_command() {
    let spec = ServiceSpec::new(
        PathBuf::from("/usr/local/bin/warren"),
        PathBuf::from("/etc/warren/agent.yml"),
    );
    let unit = unit_text(&spec);
    for line in [
        "[Unit]",
        "Description=Warren agent",
        "After=network-online.target",
        "Wants=network-online.target",
        "[Service]",
        "ExecStart=/usr/local/bin/warren start --all --config /etc/warren/agent.yml --log stdout --log-format json",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=always",
        "RestartSec=5s",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        "[Install]",
        "WantedBy=multi-user.target",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "missing `{line}` in:\n{unit}"
        );
    }
    assert!(!unit.contains("User="), "{unit}");
    // Sections in order.
    let at = |s: &str| unit.find(s).unwrap();
    assert!(at("[Unit]") < at("[Service]") && at("[Service]") < at("[Install]"));
}

#[test]
fn unit_runs_as_the_given_user() {
    let mut spec = ServiceSpec::new(PathBuf::from("/bin/warren"), PathBuf::from("/etc/w.yml"));
    spec.user = Some("warren".into());
    assert!(unit_text(&spec).lines().any(|l| l == "User=warren"));
}

#[test]
fn paths_are_quoted_for_systemd() {
    let spec = ServiceSpec::new(
        PathBuf::from("/opt/my tools/warren"),
        PathBuf::from("/etc/warren/50%\"$HOME\\.yml"),
    );
    let unit = unit_text(&spec);
    let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
    assert_eq!(
        exec,
        r#"ExecStart="/opt/my tools/warren" start --all --config "/etc/warren/50%%\"$$HOME\\.yml" --log stdout --log-format json"#
    );
    assert_eq!(systemd_quote(""), "\"\"");
    assert_eq!(systemd_quote("a\tb"), "\"a\\x09b\"");
}

#[test]
fn validate_refuses_what_a_unit_cannot_hold() {
    let good = ServiceSpec::new(PathBuf::from("/bin/warren"), PathBuf::from("/etc/w.yml"));
    assert!(good.validate().is_ok());
    let with = |f: &dyn Fn(&mut ServiceSpec)| {
        let mut s = good.clone();
        f(&mut s);
        s.validate().unwrap_err().to_string()
    };
    assert!(with(&|s| s.name = String::new()).contains("invalid service name"));
    assert!(with(&|s| s.name = "../evil".into()).contains("invalid service name"));
    assert!(with(&|s| s.name = "a b".into()).contains("invalid service name"));
    assert!(with(&|s| s.name = "x".repeat(MAX_SERVICE_NAME_LEN + 1)).contains("invalid"));
    assert!(with(&|s| s.config = "agent.yml".into()).contains("must be absolute"));
    assert!(with(&|s| s.exe = "/bin/war\nren".into()).contains("control character"));
    assert!(with(&|s| s.user = Some("root\nUser=x".into())).contains("invalid user name"));
    assert!(with(&|s| s.user = Some(String::new())).contains("invalid user name"));
    let mut named = good.clone();
    named.name = "warren-edge@1.service".into();
    assert!(named.validate().is_ok());
    assert_eq!(
        named.unit_path(),
        Path::new("/etc/systemd/system/warren-edge@1.service")
    );
}

#[test]
fn install_writes_the_unit_and_uninstall_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let path = install(&spec, &InstallOptions::default()).unwrap();
    assert_eq!(path, dir.path().join("warren.service"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), unit_text(&spec));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "{mode:o}");
    }
    // No temporary file left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    let removed = uninstall("warren", dir.path(), None).unwrap();
    assert_eq!(removed, path);
    assert!(!path.exists());
    let err = uninstall("warren", dir.path(), None).unwrap_err();
    assert!(matches!(err, ServiceError::NotInstalled(_)), "{err}");
}

#[test]
fn install_refuses_an_existing_unit_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    std::fs::write(spec.unit_path(), "old").unwrap();
    let err = install(&spec, &InstallOptions::default()).unwrap_err();
    assert!(matches!(err, ServiceError::AlreadyInstalled(_)), "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(spec.unit_path()).unwrap(), "old");

    let opts = InstallOptions {
        force: true,
        ..InstallOptions::default()
    };
    install(&spec, &opts).unwrap();
    assert_eq!(
        std::fs::read_to_string(spec.unit_path()).unwrap(),
        unit_text(&spec)
    );
}

#[test]
fn install_refuses_a_missing_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path());
    spec.config = dir.path().join("nope.yml");
    let err = install(&spec, &InstallOptions::default()).unwrap_err();
    assert!(matches!(err, ServiceError::ConfigMissing(_)), "{err}");
    assert!(err.to_string().contains("nope.yml"), "{err}");
    assert!(!spec.unit_path().exists());
}

#[test]
fn install_reports_a_missing_unit_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path());
    spec.unit_dir = dir.path().join("missing");
    let err = install(&spec, &InstallOptions::default()).unwrap_err();
    assert!(matches!(err, ServiceError::Io { .. }), "{err}");
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn install_and_uninstall_drive_systemctl() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("systemctl.log");
    let systemctl = recorder(&log);
    let mut spec = spec(dir.path());
    spec.name = "edge-agent".into();
    let opts = InstallOptions {
        force: false,
        systemctl: Some(systemctl.clone()),
    };
    install(&spec, &opts).unwrap();
    assert_eq!(
        lines(&log),
        ["daemon-reload", "enable --now edge-agent.service"]
    );
    start("edge-agent", &systemctl).unwrap();
    stop("edge-agent", &systemctl).unwrap();
    restart("edge-agent", &systemctl).unwrap();
    uninstall("edge-agent", dir.path(), Some(&systemctl)).unwrap();
    assert_eq!(
        lines(&log)[2..],
        [
            "start edge-agent.service",
            "stop edge-agent.service",
            "restart edge-agent.service",
            "disable --now edge-agent.service",
            "daemon-reload",
        ]
    );
}

#[test]
fn systemctl_failures_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let systemctl = recorder(&dir.path().join("log"));
    let err = start("fail", &systemctl).unwrap_err();
    let shown = err.to_string();
    assert!(
        matches!(err, ServiceError::SystemctlFailed { .. }),
        "{shown}"
    );
    assert!(shown.contains("start fail.service"), "{shown}");
    assert!(shown.contains("Unit fail.service not found."), "{shown}");

    let missing = Systemctl {
        program: dir.path().join("no-systemctl-here"),
        leading_args: Vec::new(),
    };
    let err = restart("warren", &missing).unwrap_err();
    assert!(matches!(err, ServiceError::SystemctlMissing(_)), "{err}");
    assert!(err.to_string().contains("needs systemd"), "{err}");

    let err = stop("bad name", &systemctl).unwrap_err();
    assert!(matches!(err, ServiceError::InvalidName(_)), "{err}");
}

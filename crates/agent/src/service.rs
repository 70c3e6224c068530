//! Running the agent as a systemd service: `warren service install|uninstall|start|stop|restart`.
//!
//! This module owns the unit file ([`unit_text`]), writing and removing it ([`install`],
//! [`uninstall`]) and driving `systemctl` ([`Systemctl`]). The unit runs
//! `warren start --all --config <file>` with logs as JSON lines on stdout (the journal keeps
//! them), restarts the agent whenever it exits, reloads the config on `systemctl reload`
//! (SIGHUP), and sandboxes it (no new privileges, a read-only system and home, a private `/tmp`).
//!
//! It must not read the agent's config file (only checks that it exists) nor start the agent
//! itself: systemd does, through the unit.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

#[cfg(test)]
mod tests;

/// The service name when none is given (`warren.service`).
pub const DEFAULT_SERVICE_NAME: &str = "warren";

/// Where unit files go when no directory is given.
pub const DEFAULT_UNIT_DIR: &str = "/etc/systemd/system";

/// Longest service name (systemd's unit names are at most 255 bytes, `.service` included).
pub const MAX_SERVICE_NAME_LEN: usize = 200;

/// What a service unit runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// The unit's name without `.service` (default [`DEFAULT_SERVICE_NAME`]).
    pub name: String,
    /// The `warren` binary the unit runs (an absolute path).
    pub exe: PathBuf,
    /// The agent config file the unit passes to `warren start` (an absolute path).
    pub config: PathBuf,
    /// The directory the unit file is written to (default [`DEFAULT_UNIT_DIR`]).
    pub unit_dir: PathBuf,
    /// The system user the agent runs as; `None` = root.
    pub user: Option<String>,
}

impl ServiceSpec {
    /// A spec with the default name and unit directory, running as root.
    pub fn new(exe: PathBuf, config: PathBuf) -> ServiceSpec {
        ServiceSpec {
            name: DEFAULT_SERVICE_NAME.to_owned(),
            exe,
            config,
            unit_dir: PathBuf::from(DEFAULT_UNIT_DIR),
            user: None,
        }
    }

    /// The unit file's path: `<unit_dir>/<name>.service`.
    pub fn unit_path(&self) -> PathBuf {
        unit_path(&self.unit_dir, &self.name)
    }

    /// Checks what [`unit_text`] cannot express or systemd would misread: the name, the user,
    /// and paths that are absolute, UTF-8 and free of control characters.
    pub fn validate(&self) -> Result<(), ServiceError> {
        check_name(&self.name)?;
        for (what, path) in [("binary", &self.exe), ("config file", &self.config)] {
            let Some(text) = path.to_str() else {
                return Err(ServiceError::InvalidPath {
                    path: path.clone(),
                    reason: format!("the {what} path is not UTF-8"),
                });
            };
            if !path.is_absolute() {
                return Err(ServiceError::InvalidPath {
                    path: path.clone(),
                    reason: format!("the {what} path must be absolute"),
                });
            }
            if text.chars().any(char::is_control) {
                return Err(ServiceError::InvalidPath {
                    path: path.clone(),
                    reason: format!("the {what} path contains a control character"),
                });
            }
        }
        if let Some(user) = &self.user {
            let ok = !user.is_empty()
                && user.len() <= 32
                && !user.starts_with('-')
                && user
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !ok {
                return Err(ServiceError::InvalidUser(user.clone()));
            }
        }
        Ok(())
    }
}

/// The unit file path for service `name` in `unit_dir` (a trailing `.service` on the name is
/// accepted).
pub fn unit_path(unit_dir: &Path, name: &str) -> PathBuf {
    let name = name.strip_suffix(".service").unwrap_or(name);
    unit_dir.join(format!("{name}.service"))
}

/// Why a service operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The service name cannot be a unit name.
    #[error(
        "invalid service name `{}`: use 1-{MAX_SERVICE_NAME_LEN} letters, digits, `_`, `-`, `.` and `@`",
        .0.escape_debug()
    )]
    InvalidName(String),
    /// The user name is not one systemd accepts.
    #[error("invalid user name `{}`: use letters, digits, `_`, `-` and `.`", .0.escape_debug())]
    InvalidUser(String),
    /// A path cannot go into a unit file.
    #[error("{}: {reason}", path.display())]
    InvalidPath {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The config file the service would run does not exist.
    #[error("config file {} does not exist; write it first (`warren config check --config {}` checks it)", .0.display(), .0.display())]
    ConfigMissing(PathBuf),
    /// A unit file is there already and `force` was not given.
    #[error("{} exists already; pass --force to overwrite it", .0.display())]
    AlreadyInstalled(PathBuf),
    /// No unit file to remove.
    #[error("{} does not exist: the service is not installed there", .0.display())]
    NotInstalled(PathBuf),
    /// Reading or writing a file failed.
    #[error("{}: {source}{}", path.display(), root_hint(source))]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The `systemctl` program is not there.
    #[error(
        "`{}` not found: managing the service needs systemd (install the unit with --no-start \
         and start it with your init system instead)",
        .0.display()
    )]
    SystemctlMissing(PathBuf),
    /// `systemctl` could not be run.
    #[error("running `{command}`: {source}")]
    SystemctlSpawn {
        /// The command line.
        command: String,
        /// The error.
        source: std::io::Error,
    },
    /// `systemctl` ran and failed.
    #[error("`{command}` failed ({status}){}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    SystemctlFailed {
        /// The command line.
        command: String,
        /// How it exited.
        status: std::process::ExitStatus,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },
}

/// ` (run as root?)` after a permission error, nothing otherwise.
fn root_hint(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        " (installing a system service needs root: try sudo)"
    } else {
        ""
    }
}

fn check_name(name: &str) -> Result<(), ServiceError> {
    let name = name.strip_suffix(".service").unwrap_or(name);
    let ok = !name.is_empty()
        && name.len() <= MAX_SERVICE_NAME_LEN
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::InvalidName(name.to_owned()))
    }
}

/// The systemd unit for `spec`. Paths are quoted for systemd's command-line syntax (`"`, `\`,
/// `%` and `$` escaped); call [`ServiceSpec::validate`] first for paths that could not be.
pub fn unit_text(spec: &ServiceSpec) -> String {
    let exe = systemd_quote(&spec.exe.to_string_lossy());
    let config = systemd_quote(&spec.config.to_string_lossy());
    let mut unit = String::new();
    let _ = write!(
        unit,
        "# Written by `warren service install`; `warren service uninstall` removes it.\n\
         [Unit]\n\
         Description=Warren agent\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={exe} start --all --config {config} --log stdout --log-format json\n\
         ExecReload=/bin/kill -HUP $MAINPID\n\
         Restart=always\n\
         RestartSec=5s\n"
    );
    if let Some(user) = &spec.user {
        let _ = writeln!(unit, "User={user}");
    }
    unit.push_str(
        "NoNewPrivileges=yes\n\
         ProtectSystem=strict\n\
         ProtectHome=read-only\n\
         PrivateTmp=yes\n\
         PrivateDevices=yes\n\
         ProtectKernelTunables=yes\n\
         ProtectKernelModules=yes\n\
         ProtectControlGroups=yes\n\
         RestrictSUIDSGID=yes\n\
         LockPersonality=yes\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
    );
    unit
}

/// One word of a systemd command line: as is when it is plain, else double-quoted with `\` and
/// `"` escaped and control characters as `\xNN`; `%` and `$` are doubled either way (systemd
/// would expand specifiers and variables).
fn systemd_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:,@=".contains(c));
    if plain {
        return word.to_owned();
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('"');
    for c in word.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// How [`install`] behaves.
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// Overwrite an existing unit file.
    pub force: bool,
    /// After writing the unit, `daemon-reload` and `enable --now` with this; `None` only writes
    /// the file (`--no-start`).
    pub systemctl: Option<Systemctl>,
}

/// Writes the unit file for `spec` (atomically: a temporary file renamed into place), then,
/// unless `opts.systemctl` is `None`, reloads systemd and enables and starts the service.
/// Refuses when the config file does not exist or the unit exists and `opts.force` is off.
/// Returns the unit file's path.
pub fn install(spec: &ServiceSpec, opts: &InstallOptions) -> Result<PathBuf, ServiceError> {
    spec.validate()?;
    match spec.config.try_exists() {
        Ok(true) => {}
        Ok(false) => return Err(ServiceError::ConfigMissing(spec.config.clone())),
        Err(source) => {
            return Err(ServiceError::Io {
                path: spec.config.clone(),
                source,
            });
        }
    }
    let unit = spec.unit_path();
    if !opts.force && unit.symlink_metadata().is_ok() {
        return Err(ServiceError::AlreadyInstalled(unit));
    }
    write_atomically(&unit, unit_text(spec).as_bytes())?;
    if let Some(systemctl) = &opts.systemctl {
        systemctl.run(&["daemon-reload"])?;
        systemctl.run(&["enable", "--now", &unit_name(&spec.name)])?;
    }
    Ok(unit)
}

/// Removes the unit file of service `name` from `unit_dir`. With `systemctl`, first disables
/// and stops the service, and afterwards reloads systemd. Returns the removed file's path.
pub fn uninstall(
    name: &str,
    unit_dir: &Path,
    systemctl: Option<&Systemctl>,
) -> Result<PathBuf, ServiceError> {
    check_name(name)?;
    let unit = unit_path(unit_dir, name);
    if unit.symlink_metadata().is_err() {
        return Err(ServiceError::NotInstalled(unit));
    }
    if let Some(systemctl) = systemctl {
        systemctl.run(&["disable", "--now", &unit_name(name)])?;
    }
    std::fs::remove_file(&unit).map_err(|source| ServiceError::Io {
        path: unit.clone(),
        source,
    })?;
    if let Some(systemctl) = systemctl {
        systemctl.run(&["daemon-reload"])?;
    }
    Ok(unit)
}

/// Starts service `name`.
pub fn start(name: &str, systemctl: &Systemctl) -> Result<(), ServiceError> {
    check_name(name)?;
    systemctl.run(&["start", &unit_name(name)])
}

/// Stops service `name`.
pub fn stop(name: &str, systemctl: &Systemctl) -> Result<(), ServiceError> {
    check_name(name)?;
    systemctl.run(&["stop", &unit_name(name)])
}

/// Restarts service `name`.
pub fn restart(name: &str, systemctl: &Systemctl) -> Result<(), ServiceError> {
    check_name(name)?;
    systemctl.run(&["restart", &unit_name(name)])
}

/// `name.service`.
fn unit_name(name: &str) -> String {
    format!("{}.service", name.strip_suffix(".service").unwrap_or(name))
}

/// Writes `bytes` to a temporary file beside `path`, flushes it to disk, makes it world-readable
/// (0644, as unit files are) and renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ServiceError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ServiceError::Io { path, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        // 0644 whatever the umask: systemd and operators read unit files.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::Permissions::from_mode(0o644);
            file.set_permissions(mode).map_err(io_err(&tmp))?;
        }
        file.write_all(bytes).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io_err(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// How `systemctl` is run: a program and the arguments that go before each command's own
/// (`sudo` + `systemctl` runs it through sudo; tests run a script that records its arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Systemctl {
    /// The program (default `systemctl`, looked up in `PATH`).
    pub program: PathBuf,
    /// Arguments before each command's own.
    pub leading_args: Vec<OsString>,
}

impl Default for Systemctl {
    fn default() -> Systemctl {
        Systemctl {
            program: PathBuf::from("systemctl"),
            leading_args: Vec::new(),
        }
    }
}

impl Systemctl {
    /// Runs `systemctl <args>`, waiting for it; its stdout and stderr are captured, and stderr
    /// is reported when it fails.
    pub fn run(&self, args: &[&str]) -> Result<(), ServiceError> {
        let command = std::iter::once(self.program.to_string_lossy().into_owned())
            .chain(args.iter().map(|a| (*a).to_owned()))
            .collect::<Vec<_>>()
            .join(" ");
        let output = Command::new(&self.program)
            .args(&self.leading_args)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    ServiceError::SystemctlMissing(self.program.clone())
                } else {
                    ServiceError::SystemctlSpawn {
                        command: command.clone(),
                        source,
                    }
                }
            })?;
        if output.status.success() {
            return Ok(());
        }
        Err(ServiceError::SystemctlFailed {
            command,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

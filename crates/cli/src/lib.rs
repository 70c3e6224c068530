//! The `warren` command: the device agent (`http`, `tcp`, `tls`, `start`), config checking and
//! the systemd service. `main` parses the command line and calls [`run`]; everything else is
//! here, so tests reach it.
//!
//! # Layout
//! - [`args`]: the clap types; each flag's help names its environment variable.
//! - [`settings`]: flags, then environment, then config file, then defaults, merged into the
//!   agent's options (pure; the environment is a map).
//! - [`logging`]: status view or log lines, where, and in which format; the logfmt writer.
//! - [`status`]: the status view and the state changes worth a log line (pure).
//! - `runner`: runs the agent: signals, reload on SIGHUP, re-exec on a restart command.
//!
//! This crate must not contain protocol logic: the agent runtime (`warren-agent`) does the work.

pub mod api_cmd;
pub mod args;
pub mod logging;
pub mod settings;
pub mod status;

mod runner;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use warren_agent::config;
use warren_agent::service::{self, InstallOptions, ServiceSpec, Systemctl};

use crate::args::{Cli, Command, ConfigCommand, ConfigFlag, ServiceCommand, ServiceInstallArgs};
use crate::logging::Terminals;
use crate::settings::Env;

pub use crate::runner::{POLL_INTERVAL, REDRAW_INTERVAL};

/// Exit code: the command succeeded, or the agent stopped cleanly (SIGINT/SIGTERM, or a stop
/// from the edge).
pub const EXIT_OK: u8 = 0;
/// Exit code: a failure — invalid config, flags or environment; the agent could not start or
/// the edge refused its credential; a service operation failed.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: the command line could not be parsed (clap's own code).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: a second SIGINT/SIGTERM arrived while shutting down.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Runs a parsed command line, reading the process environment.
pub fn run(cli: Cli) -> ExitCode {
    run_with_env(cli, settings::env_from_process())
}

/// Runs a parsed command line with `env` standing for the environment variables `warren`
/// reads ([`settings::ENV_VARS`]).
pub fn run_with_env(cli: Cli, env: Env) -> ExitCode {
    match cli.command {
        Command::Version => {
            println!("warren version {}", env!("CARGO_PKG_VERSION"));
            ExitCode::from(EXIT_OK)
        }
        Command::Config(ConfigCommand::Check(flag)) => config_check(&flag, &env),
        Command::Service(command) => service_command(command),
        Command::Api(args) => api_command(args, &env),
        command => run_agent(command, env),
    }
}

/// `warren api …`: API key from `--api-key`, `WARREN_API_KEY` or `agent.api_key`; base URL
/// from `--api-url`, `WARREN_API_URL` or [`api_cmd::DEFAULT_API_URL`].
fn api_command(args: api_cmd::ApiArgs, env: &Env) -> ExitCode {
    let var = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
    let key = match args.api_key.clone().or_else(|| var("WARREN_API_KEY")) {
        Some(k) => Some(k),
        None => match config::load(&config_paths(&args.config, env)) {
            Ok(file) => file.agent.api_key,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        },
    };
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        eprintln!(
            "error: no API key: pass --api-key, set WARREN_API_KEY, or set agent.api_key in the config file"
        );
        return ExitCode::from(EXIT_FAILURE);
    };
    let base = args
        .api_url
        .clone()
        .or_else(|| var("WARREN_API_URL"))
        .unwrap_or_else(|| api_cmd::DEFAULT_API_URL.to_owned())
        .trim_end_matches('/')
        .to_owned();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let target = api_cmd::Target { base, key };
    let mut out = std::io::stdout().lock();
    match runtime.block_on(api_cmd::run(args, target, &mut out)) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The default config file, when it exists.
fn existing_default_path() -> Option<PathBuf> {
    config::default_path().filter(|p| p.is_file())
}

/// The config files a command reads (see [`settings::config_paths`]).
pub fn config_paths(flag: &ConfigFlag, env: &Env) -> Vec<PathBuf> {
    settings::config_paths(flag, env, existing_default_path())
}

/// `warren config check`: loads and validates the config files, printing
/// `Valid configuration file at PATH` for each, or the error (`file:line:column: message`).
pub fn config_check(flag: &ConfigFlag, env: &Env) -> ExitCode {
    let paths = config_paths(flag, env);
    if paths.is_empty() {
        match config::default_path() {
            Some(default) => eprintln!(
                "error: no config file: {} does not exist; pass --config PATH",
                default.display()
            ),
            None => eprintln!("error: no config file: pass --config PATH"),
        }
        return ExitCode::from(EXIT_FAILURE);
    }
    match config::load(&paths) {
        Ok(_) => {
            for path in &paths {
                println!("Valid configuration file at {}", path.display());
            }
            ExitCode::from(EXIT_OK)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// `warren http|tcp|tls|start`: resolves settings, sets up output and runs the agent.
fn run_agent(command: Command, env: Env) -> ExitCode {
    let Some(flags) = command.agent_flags() else {
        return ExitCode::from(EXIT_FAILURE);
    };
    let paths = config_paths(&flags.config, &env);
    let file = match config::load(&paths) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let opts = match settings::resolve(&command, &env, file) {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let output = logging::output_settings(flags, &env, &opts.config.agent, Terminals::detect());
    if let Err(e) = logging::init(&output) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_FAILURE);
    }
    let reloader = runner::Reloader {
        command,
        env,
        paths,
    };
    runner::run(opts, reloader, output)
}

/// `warren service …`.
fn service_command(command: ServiceCommand) -> ExitCode {
    let systemctl = Systemctl::default();
    let result = match command {
        ServiceCommand::Install(args) => service_install(&args),
        ServiceCommand::Uninstall(args) => {
            let systemctl = (!args.no_stop).then_some(&systemctl);
            service::uninstall(&args.name, &args.unit_dir, systemctl)
                .map(|path| format!("Removed {}", path.display()))
                .map_err(|e| e.to_string())
        }
        ServiceCommand::Start(args) => service::start(&args.name, &systemctl)
            .map(|()| format!("Started {}", unit(&args.name)))
            .map_err(|e| e.to_string()),
        ServiceCommand::Stop(args) => service::stop(&args.name, &systemctl)
            .map(|()| format!("Stopped {}", unit(&args.name)))
            .map_err(|e| e.to_string()),
        ServiceCommand::Restart(args) => service::restart(&args.name, &systemctl)
            .map(|()| format!("Restarted {}", unit(&args.name)))
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(message) => {
            println!("{message}");
            ExitCode::from(EXIT_OK)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn unit(name: &str) -> String {
    format!("{}.service", name.strip_suffix(".service").unwrap_or(name))
}

/// `warren service install`: checks the config file, then writes the unit (and starts it
/// unless `--no-start`). Returns what to print.
fn service_install(args: &ServiceInstallArgs) -> Result<String, String> {
    let config_path = absolute(&args.config)?;
    if config_path.is_file() {
        // A service that cannot start is worse than no service: refuse a bad config now.
        config::load(std::slice::from_ref(&config_path)).map_err(|e| e.to_string())?;
    }
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the warren binary to run: {e}"))?;
    let spec = ServiceSpec {
        name: args.name.clone(),
        exe,
        config: config_path,
        unit_dir: args.unit_dir.clone(),
        user: args.user.clone(),
    };
    let opts = InstallOptions {
        force: args.force,
        systemctl: (!args.no_start).then(Systemctl::default),
    };
    let path = service::install(&spec, &opts).map_err(|e| e.to_string())?;
    let unit = unit(&spec.name);
    Ok(if args.no_start {
        format!(
            "Installed {}\nStart it with: systemctl daemon-reload && systemctl enable --now {unit}",
            path.display()
        )
    } else {
        format!("Installed {}\nStarted {unit}", path.display())
    })
}

/// `path` made absolute against the current directory (the unit runs from `/`).
fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))
}

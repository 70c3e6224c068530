//! The `warrend` binary: parse settings, set up logging, run until SIGTERM or Ctrl-C.

use anyhow::Context;
use clap::Parser;
use warrend::config::{Bootstrap, Cli, Command, LogFormat};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = cli.settings.merge_file()?;
    let config = settings.resolve(Bootstrap::from_env())?;
    init_logging(config.log_format);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Ca => runtime.block_on(async {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("creating {}", config.data_dir.display()))?;
            let ca = warren_edge::tls::Authority::load_or_create(&config.data_dir)?;
            print!("{}", ca.pem());
            Ok(())
        }),
        Command::Run => runtime.block_on(async {
            // Handlers are installed before anything listens, so an early SIGTERM still drains.
            let signal = shutdown_signal();
            warrend::run(config, signal).await
        }),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARREN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Installs the SIGTERM and SIGINT handlers now; the returned future resolves on either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
        async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

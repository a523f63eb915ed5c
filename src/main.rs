//! The `alertd` binary: command line, logging, signals. Everything else is
//! in the library.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use alertd::config::Config;
use alertd::daemon::{self, Mode, PollResults};
use alertd::demo::{self, DemoOptions};
use alertd::publish::TailStart;
use alertd::tail::TailOptions;

/// Alert ingestion daemon: vendor alert APIs → one event schema → NATS JetStream.
#[derive(Debug, Parser)]
#[command(name = "alertd", version, about, propagate_version = true)]
struct Cli {
    /// Log format: `auto` is JSON under systemd, human-readable otherwise.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto, env = "ALERTD_LOG_FORMAT")]
    log_format: LogFormat,
    /// The configuration file (for `run` and `cursors`).
    #[arg(short, long, global = true, env = "ALERTD_CONFIG", default_value = "/etc/alertd/alertd.toml")]
    config: PathBuf,
    /// This instance's name among `[cluster]` instances (default: the host name).
    #[arg(long, global = true, env = "ALERTD_INSTANCE")]
    instance: Option<String>,
    /// Serve /metrics and /healthz here instead of `[service] listen`
    /// (`host:port` or `off`), e.g. a port per instance on one host.
    #[arg(long, global = true, env = "ALERTD_LISTEN", value_parser = parse_listen_arg)]
    listen: Option<ListenArg>,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `alertd=debug`.
    #[arg(long, global = true, default_value = "info", env = "ALERTD_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Auto,
    Text,
    Json,
}

/// `--severity-at-least` values (alertd's scale).
#[derive(Debug, Clone, Copy, ValueEnum)]
enum SeverityArg {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl SeverityArg {
    fn level(self) -> alertd::event::SeverityLevel {
        use alertd::event::SeverityLevel;
        match self {
            SeverityArg::Info => SeverityLevel::Info,
            SeverityArg::Low => SeverityLevel::Low,
            SeverityArg::Medium => SeverityLevel::Medium,
            SeverityArg::High => SeverityLevel::High,
            SeverityArg::Critical => SeverityLevel::Critical,
        }
    }
}

/// `--format` values (clap's mirror of [`alertd::publish::Format`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Alertd,
    Ocsf,
}

impl OutputFormat {
    fn into_format(self) -> alertd::publish::Format {
        match self {
            OutputFormat::Alertd => alertd::publish::Format::Alertd,
            OutputFormat::Ocsf => alertd::publish::Format::Ocsf,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the pollers on their schedules until SIGTERM/SIGINT.
    Run {
        /// Poll every enabled source once, then exit (non-zero if any failed).
        #[arg(long)]
        once: bool,
    },
    /// Check config, each source's credentials (one cheap authenticated
    /// request) and NATS connectivity; prints a table, exits non-zero on failure.
    Check {
        /// Only this source.
        source: Option<String>,
    },
    /// Check a configuration file without running anything.
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
    },
    /// Fetch a source's first pages and print the events (JSON lines) and
    /// the items that would be dead letters, without publishing or committing.
    Preview {
        /// The source's name.
        source: String,
        /// Pages to fetch at most.
        #[arg(long, default_value_t = 1)]
        pages: u64,
    },
    /// Show or reset the stored cursors.
    Cursors {
        #[command(subcommand)]
        action: CursorAction,
    },
    /// Show the instances sharing the sources (`[cluster]`) and which holds which.
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Run the pipeline against built-in vendor simulators (no account or server needed).
    Demo {
        /// Publish to this NATS server (JetStream) instead of printing to stdout.
        #[arg(long)]
        nats: Option<String>,
        /// Keep polling while the simulators produce new alerts, until Ctrl-C.
        #[arg(long)]
        follow: bool,
        /// Alerts each simulator starts with.
        #[arg(long, default_value_t = 25)]
        items: usize,
        /// Seed of the simulated data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// What to publish or print for each event (repeatable): `alertd` (schema v1), `ocsf`.
        #[arg(long = "format", value_enum, default_values_t = [OutputFormat::Alertd])]
        formats: Vec<OutputFormat>,
    },
    /// Print the events in the stream as they arrive (one colored line each
    /// on a terminal, JSON lines when piped), until Ctrl-C.
    Tail {
        /// Only this vendor (key, e.g. `rapid7`).
        #[arg(long)]
        vendor: Option<String>,
        /// Only this source (its configured name).
        #[arg(long)]
        source: Option<String>,
        /// Only this kind: alert, detection, incident, investigation.
        #[arg(long)]
        kind: Option<String>,
        /// Only events at least this severe.
        #[arg(long, value_enum)]
        severity_at_least: Option<SeverityArg>,
        /// Replay every event the stream holds first.
        #[arg(long, conflicts_with = "since")]
        from_start: bool,
        /// Replay events stored since this time: RFC 3339, or a duration ago (`2h`).
        #[arg(long)]
        since: Option<String>,
        /// NATS server URL (instead of the `[nats]` section of --config).
        #[arg(long)]
        nats: Option<String>,
        /// Stream name, with --nats.
        #[arg(long, default_value = "ALERTD", requires = "nats")]
        stream: String,
    },
    /// Print the event JSON Schema (v1).
    Schema,
    /// List the vendors alertd can poll.
    Vendors,
    /// Print the man page (roff) generated from this help.
    #[command(hide = true)]
    Man,
}

#[derive(Debug, Subcommand)]
enum ClusterAction {
    /// Live instances, and each source's lease holder, epoch and preferred instance.
    Status,
}

#[derive(Debug, Subcommand)]
enum CursorAction {
    /// List every source's cursor.
    List,
    /// Forget a source's cursor: its next poll starts from its initial lookback, or from --since.
    Reset {
        /// The source's name.
        source: String,
        /// Restart from this time (RFC 3339) instead of the initial lookback.
        #[arg(long)]
        since: Option<DateTime<Utc>>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log);
    // The blocking pool (SQLite, DNS lookups, stdout) is capped well below
    // tokio's default of 512 so that the units' TasksMax=256 is never what
    // stops a thread from starting: blocking tasks are short and queue.
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().max_blocking_threads(64).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("alertd: cannot start the async runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
    let overrides = Overrides { instance: cli.instance, listen: cli.listen };
    match runtime.block_on(dispatch(cli.command, &cli.config, overrides)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("alertd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Settings the command line (or environment) gives over the file's.
struct Overrides {
    instance: Option<String>,
    listen: Option<ListenArg>,
}

/// `--listen`: an address, or `off` (`None`).
#[derive(Debug, Clone, Copy)]
struct ListenArg(Option<std::net::SocketAddr>);

fn parse_listen_arg(text: &str) -> Result<ListenArg, String> {
    alertd::config::parse_listen(text).map(ListenArg)
}

async fn dispatch(command: Command, config: &Path, overrides: Overrides) -> Result<ExitCode> {
    let load = |path: &Path| -> Result<Config> {
        let mut config = load(path)?;
        if overrides.instance.is_some() {
            config.cluster.instance.clone_from(&overrides.instance);
        }
        if let Some(ListenArg(listen)) = overrides.listen {
            config.service.listen = listen;
        }
        Ok(config)
    };
    match command {
        Command::Run { once } => {
            let config = load(config)?;
            let shutdown = shutdown_on_signals();
            let mode = if once { Mode::Once } else { Mode::Forever };
            let results = daemon::run(&config, None, mode, shutdown).await?;
            Ok(summarize(&results))
        }
        Command::Check { source } => {
            let config = load(config)?;
            let rows = alertd::check::run(&config, source.as_deref()).await;
            print!("{}", alertd::check::table(&rows));
            Ok(if rows.iter().all(|r| r.ok) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::CheckConfig { file } => {
            let config = load(&file)?;
            let enabled = config.enabled_sources().count();
            println!(
                "{}: OK ({} sources, {} enabled; events to {})",
                file.display(),
                config.sources.len(),
                enabled,
                config
                    .nats
                    .as_ref()
                    .map_or("stdout".to_owned(), |n| format!("NATS {} stream {}", n.url, n.stream))
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Preview { source, pages } => {
            let config = load(config)?;
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
            alertd::preview::run(&config, &source, pages, &mut out, &mut err).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cursors { action } => cursors(&load(config)?, action).await,
        Command::Cluster { action: ClusterAction::Status } => {
            let path = config;
            let config = load(path)?;
            if !config.cluster.is_enabled() {
                anyhow::bail!(
                    "{}: [cluster] is not enabled: every source is polled by the instance that loads it",
                    path.display()
                );
            }
            let table = daemon::open_leases(&config).await?;
            let sources: Vec<(String, String)> =
                config.enabled_sources().map(|s| (s.name().to_owned(), s.vendor().to_owned())).collect();
            let status = alertd::cluster::status::read(&table, &sources).await?;
            print!("{}", alertd::cluster::status::render(&status, Utc::now()));
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { nats, follow, items, seed, formats } => {
            let shutdown = shutdown_on_signals();
            let formats = formats.into_iter().map(OutputFormat::into_format).collect();
            let results = demo::run(DemoOptions { nats, follow, items, seed, formats }, shutdown).await?;
            Ok(summarize(&results))
        }
        Command::Tail { vendor, source, kind, severity_at_least, from_start, since, nats, stream } => {
            let nats_config = match nats {
                Some(url) => {
                    let text =
                        format!("[nats]\nurl = {}\nstream = {}\n", toml_string(&url), toml_string(&stream));
                    alertd::registry::parse(&text, "--nats")?.nats
                }
                None => load(config)?.nats,
            }
            .context("no NATS to tail: give --nats URL, or a config with a [nats] section")?;
            let start = match (from_start, since) {
                (true, _) => TailStart::All,
                (false, Some(text)) => TailStart::Since(parse_since(&text)?),
                (false, None) => TailStart::New,
            };
            let stdout = std::io::stdout();
            let terminal = stdout.is_terminal();
            let options = TailOptions {
                vendor,
                source,
                kind,
                severity_at_least: severity_at_least.map(SeverityArg::level),
                start,
                json: !terminal,
                color: terminal,
            };
            let mut out = stdout;
            alertd::tail::run(&nats_config, &options, &mut out, shutdown_on_signals()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => {
            println!("{}", serde_json::to_string_pretty(&alertd::event::json_schema())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            use clap::CommandFactory;
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            std::io::Write::write_all(&mut std::io::stdout(), &page)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Vendors => {
            for v in alertd::registry::VENDORS {
                println!(
                    "{:<14} {:<28} {}",
                    v.key,
                    v.name,
                    v.default_base_url.unwrap_or("(base_url required)")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A TOML basic string of `s`.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// `--since`: RFC 3339, or a duration before now (`90m`, `2h`, `7d`).
fn parse_since(text: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.to_utc());
    }
    let ago = humantime::parse_duration(text)
        .with_context(|| format!("--since `{text}` is neither RFC 3339 nor a duration like `2h`"))?;
    chrono::TimeDelta::from_std(ago)
        .ok()
        .and_then(|ago| Utc::now().checked_sub_signed(ago))
        .with_context(|| format!("--since `{text}` is too far back"))
}

fn load(path: &Path) -> Result<Config> {
    Ok(alertd::registry::load(path)?)
}

async fn cursors(config: &Config, action: CursorAction) -> Result<ExitCode> {
    let out = match action {
        CursorAction::List => alertd::cursors::list(config).await?,
        CursorAction::Reset { source, since } => alertd::cursors::reset(config, &source, since).await? + "\n",
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// Exit status for `--once` runs: failure if any source failed.
fn summarize(results: &PollResults) -> ExitCode {
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    for (name, result) in results {
        match result {
            Ok(r) => eprintln!(
                "{name}: {} pages, {} items, {} published, {} duplicates, {} already delivered, {} dead letters",
                r.pages, r.items, r.published, r.duplicates, r.skipped_seen, r.dead_letters
            ),
            // Errors quote vendors' answers: no terminal controls through.
            Err(e) => eprintln!("{name}: FAILED: {}", alertd::text::printable(&e.to_string())),
        }
    }
    if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Cancelled on SIGTERM or SIGINT; a second signal exits at once.
fn shutdown_on_signals() -> CancellationToken {
    acknowledge_reloads();
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(message = "Shutting down: finishing the page in flight.");
        trigger.cancel();
        wait_for_signal().await;
        tracing::warn!(message = "Second signal: exiting now.");
        std::process::exit(130);
    });
    token
}

/// SIGHUP (`systemctl reload`) must not end the daemon (its default action).
/// Nothing needs reloading: API keys are read afresh at every poll, so a
/// rotated key file or systemd credential is used from the next poll on.
fn acknowledge_reloads() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    tracing::info!(
                        message = "SIGHUP: API keys are re-read at every poll; the next poll uses the current ones."
                    );
                }
            });
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let under_systemd =
        std::env::var_os("JOURNAL_STREAM").is_some() || std::env::var_os("INVOCATION_ID").is_some();
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => under_systemd,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).with_current_span(false).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

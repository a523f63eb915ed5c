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

/// mimalloc instead of glibc's malloc: a backfill allocates and frees a few
/// small buffers per event (the parsed item, the event, its JSON), and
/// glibc's allocator took about a fifth of alertd's CPU in the e2e profile
/// (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use alertd::daemon::{self, Mode, PollResults, Reloads};
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
    /// Log filter (tracing EnvFilter syntax), e.g. `debug` or `alertd=debug`.
    /// Default: `RUST_LOG` if set, else alertd's lines at `info` and its
    /// libraries' (NATS client, HTTP, TLS) at `warn`.
    #[arg(long, global = true, env = "ALERTD_LOG")]
    log: Option<String>,
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
    /// Check what `run` would do, without doing it: config, NATS and the
    /// stream (as it is, or as `run` would create it), each source's key (one
    /// cheap authenticated request). Prints a table of ok / WARN / FAIL rows;
    /// exits non-zero only on FAIL, what would make `run` fail.
    Check {
        /// Only this source.
        source: Option<String>,
    },
    /// Print a commented configuration for the chosen vendors, to edit and
    /// then check with `check-config` and `check`.
    Init {
        /// A vendor to poll (repeatable); `alertd vendors` lists them.
        #[arg(long = "vendor", required = true, value_parser = clap::builder::PossibleValuesParser::new(alertd::registry::keys()))]
        vendors: Vec<String>,
        /// The NATS server to publish to.
        #[arg(long, default_value = alertd::init::DEFAULT_NATS_URL)]
        nats: String,
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
    init_logging(cli.log_format, cli.log.as_deref());
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
    let config_path = config;
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
            let path = config.to_owned();
            let (instance, listen) = (overrides.instance.clone(), overrides.listen);
            // The file, checked and with the command line's overrides, and
            // its TOML table (what a reload compares), from one read.
            let read = move || -> Result<(Config, toml::Table), String> {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
                let mut config =
                    alertd::registry::parse(&text, &path.display().to_string()).map_err(|e| e.to_string())?;
                if instance.is_some() {
                    config.cluster.instance.clone_from(&instance);
                }
                if let Some(ListenArg(listen)) = listen {
                    config.service.listen = listen;
                }
                let raw = text.parse::<toml::Table>().map_err(|e| format!("{}: {e}", path.display()))?;
                Ok((config, raw))
            };
            let (config, raw) = read().map_err(anyhow::Error::msg)?;
            let (tx, signals) = tokio::sync::mpsc::channel(1);
            let shutdown = shutdown_on(Some(tx));
            let mode = if once { Mode::Once } else { Mode::Forever };
            let reloads = Reloads { file: config_path.to_owned(), signals, load: Box::new(read), raw };
            let results = daemon::run_reloadable(&config, None, mode, shutdown, Some(reloads)).await?;
            let formats =
                config.nats.as_ref().map_or_else(alertd::publish::default_formats, |n| n.formats.clone());
            Ok(summarize(&results, &formats))
        }
        Command::Check { source } => {
            let config = load(config)?;
            let rows = alertd::check::run(&config, source.as_deref()).await;
            print!("{}", alertd::check::table(&rows));
            Ok(if alertd::check::passed(&rows) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Init { vendors, nats } => {
            let chosen: Vec<_> = vendors.iter().filter_map(|key| alertd::registry::lookup(key)).collect();
            print!("{}", alertd::init::render(&chosen, Some(&nats)));
            Ok(ExitCode::SUCCESS)
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
            let formats: Vec<_> = formats.into_iter().map(OutputFormat::into_format).collect();
            let options = DemoOptions { nats, follow, items, seed, formats: formats.clone() };
            let results = demo::run(options, shutdown).await?;
            Ok(summarize(&results, &formats))
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

/// Exit status for `--once` runs: failure if any source failed. Each
/// event is one message per format in `formats`.
fn summarize(results: &PollResults, formats: &[alertd::publish::Format]) -> ExitCode {
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    for (name, result) in results {
        match result {
            Ok(r) => eprintln!("{name}: {}", r.summary(formats)),
            // Errors quote vendors' answers: no terminal controls through.
            Err(e) => eprintln!("{name}: FAILED: {}", alertd::text::printable(&e.to_string())),
        }
    }
    if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Cancelled on SIGTERM or SIGINT; a second signal exits at once.
fn shutdown_on_signals() -> CancellationToken {
    shutdown_on(None)
}

/// [`shutdown_on_signals`]; SIGHUP asks `reloads` for a reload (`alertd run`).
fn shutdown_on(reloads: Option<tokio::sync::mpsc::Sender<()>>) -> CancellationToken {
    on_hangup(reloads);
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(
            message =
                "Shutting down: waits end now; a page already answered is published and committed first."
        );
        trigger.cancel();
        wait_for_signal().await;
        tracing::warn!(message = "Second signal: exiting now.");
        std::process::exit(130);
    });
    token
}

/// SIGHUP (`systemctl reload`) must not end the process (its default
/// action). `alertd run` reloads its configuration; several SIGHUPs while
/// a reload is pending make one more reload, which reads the newest file.
/// Other commands only say so (API keys are read afresh at every poll).
fn on_hangup(reloads: Option<tokio::sync::mpsc::Sender<()>>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    match &reloads {
                        Some(tx) => {
                            let _ = tx.try_send(());
                        }
                        None => tracing::info!(
                            message = "SIGHUP: API keys are re-read at every poll; the next poll uses the current ones."
                        ),
                    }
                }
            });
        }
    }
    #[cfg(not(unix))]
    drop(reloads);
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

/// The log filter when neither `--log` (`ALERTD_LOG`) nor `RUST_LOG` says:
/// alertd's own lines at `info`, every library's at `warn`, so a command's
/// output is not interleaved with the NATS client's connection events.
const DEFAULT_LOG_FILTER: &str = "warn,alertd=info";

fn init_logging(format: LogFormat, filter: Option<&str>) {
    let asked =
        filter.map(str::to_owned).or_else(|| std::env::var("RUST_LOG").ok().filter(|f| !f.is_empty()));
    let filter = asked
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
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

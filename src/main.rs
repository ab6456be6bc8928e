//! The `acdmon` command line (contract section 1).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use acdmon::config::Config;
use acdmon::replay::{self, Format};

#[derive(Parser)]
#[command(
    name = "acdmon",
    version = acdmon::build_info::LONG_VERSION,
    about = "Real-time ACD/queue monitor for contact centres"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The daemon with a built-in simulated contact centre; needs no config.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Random seed of the simulator (same seed, same traffic).
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// The daemon.
    Run {
        #[arg(long)]
        config: String,
    },
    /// Validates a configuration file; prints file:line:col: message per error.
    CheckConfig { file: String },
    /// Runs recorded events through the engine on event time; prints a JSON report.
    Replay {
        #[arg(long)]
        config: String,
        /// Input format; detected from the content when omitted.
        #[arg(long, value_enum)]
        format: Option<Format>,
        #[arg(required = true)]
        inputs: Vec<String>,
        /// Also write the interval history to [storage] (for `acdmon report`).
        #[arg(long)]
        store: bool,
    },
    /// Prints the interval history: seats per interval, forecast, actuals.
    Report {
        #[arg(long)]
        config: String,
        /// First day (2026-11-23), local time (2026-11-23T09:00) or RFC 3339.
        #[arg(long, required_unless_present = "handover")]
        from: Option<String>,
        /// Last day (inclusive), local time or RFC 3339 (exclusive).
        #[arg(long, required_unless_present = "handover")]
        to: Option<String>,
        #[arg(long)]
        queue: Option<String>,
        /// csv or json for intervals (default csv); markdown or json for
        /// `--handover` (default markdown).
        #[arg(long, value_enum)]
        format: Option<acdmon::store::report::ReportFormat>,
        /// The shift handover records of a local day (2026-11-23) instead.
        #[arg(long, conflicts_with_all = ["from", "to", "queue"])]
        handover: Option<String>,
        /// Language of the Markdown handover: en or zh-CN.
        #[arg(long, default_value = "en")]
        lang: String,
    },
}

/// Logs go to stderr, as human text by default or, with
/// `ACDMON_LOG_FORMAT=json`, one JSON object per line (timestamp, level,
/// target, message and the same structured fields) for journald, Loki or
/// Elastic. An unknown format is reported and falls back to text rather than
/// losing the logs.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ACDMON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let format = std::env::var("ACDMON_LOG_FORMAT").unwrap_or_default();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format.trim() {
        "json" => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        f => {
            // Colours only on a terminal: journald and log files get plain text.
            use std::io::IsTerminal;
            builder.with_ansi(std::io::stderr().is_terminal()).init();
            if !f.is_empty() && f != "text" {
                tracing::warn!(
                    value = f,
                    "ACDMON_LOG_FORMAT is neither `text` nor `json`; logging as text"
                );
            }
        }
    }
}

fn load_config(path: &str) -> Result<Config, ExitCode> {
    let cfg = Config::load(path).map_err(|errs| {
        for e in errs {
            eprintln!("{e}");
        }
        ExitCode::from(1)
    })?;
    for w in &cfg.warnings {
        tracing::warn!("{}:{}:{}: warning: {}", w.file, w.line, w.col, w.message);
    }
    Ok(cfg)
}

fn print_warning(e: &acdmon::config::ConfigError) {
    println!("{}:{}:{}: warning: {}", e.file, e.line, e.col, e.message);
}

fn main() -> ExitCode {
    // A wrong command line is bad input: exit 1 (contract section 1 has
    // 0 ok, 1 bad config or unreadable input, 2 runtime failure), not
    // clap's own 2, which a script would read as a daemon that failed.
    // `--help` and `--version` print to stdout and exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logs();
    match cli.command {
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(cfg) => {
                for w in &cfg.warnings {
                    print_warning(w);
                }
                println!("{file}: ok");
                ExitCode::SUCCESS
            }
            Err(errs) => {
                // An `env:` secret unset on the machine that checks is not an
                // error of the file (the service's environment sets it):
                // a warning with its position; `run` still refuses.
                let (unset, real): (Vec<_>, Vec<_>) = errs.into_iter().partition(|e| {
                    e.message.starts_with("environment variable ")
                        && e.message.ends_with(" is not set")
                });
                for e in &real {
                    println!("{e}");
                }
                for e in &unset {
                    println!(
                        "{}:{}:{}: warning: {} (`acdmon run` needs it)",
                        e.file, e.line, e.col, e.message
                    );
                }
                if real.is_empty() {
                    println!("{file}: ok");
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
        },
        Command::Replay {
            config,
            format,
            inputs,
            store,
        } => {
            let cfg = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let observers: &replay::ObserverFactory = if store {
                &acdmon::daemon::replay_observers_storing
            } else {
                &acdmon::daemon::replay_observers
            };
            match replay::replay(&cfg, &inputs, format, observers) {
                Ok(report) => match serde_json::to_string_pretty(&report) {
                    Ok(s) => {
                        println!("{s}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("acdmon: cannot encode the report: {e}");
                        ExitCode::from(2)
                    }
                },
                Err(e) => {
                    eprintln!("acdmon: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Report {
            config,
            from,
            to,
            queue,
            format,
            handover,
            lang,
        } => {
            use acdmon::store::report::{self, ReportFormat};
            let cfg = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let r = match (handover, from, to) {
                (Some(day), _, _) => {
                    report::handover(&cfg, &day, format.unwrap_or(ReportFormat::Markdown), &lang)
                }
                (None, Some(from), Some(to)) => report::run(
                    &cfg,
                    &from,
                    &to,
                    queue.as_deref(),
                    format.unwrap_or(ReportFormat::Csv),
                ),
                _ => Err(report::ReportError::Args(
                    "give --from and --to, or --handover DAY".into(),
                )),
            };
            match r {
                Ok(s) => {
                    print!("{s}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("acdmon: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Run { config } => {
            let cfg = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            runtime_main(async move { acdmon::daemon::run(cfg).await })
        }
        Command::Demo { listen, seed } => {
            runtime_main(async move { acdmon::demo::run(&listen, seed).await })
        }
    }
}

fn runtime_main(f: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("acdmon: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let r = rt.block_on(f);
    // Blocking tasks (a metrics rendering, a slow write) must not hold a
    // stopping daemon: the engine already had its bounded wait.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("acdmon: {e:#}");
            // Storage that cannot be opened or written at start is a setup
            // error, like a bad config: exit 1, before anything is served.
            if e.downcast_ref::<acdmon::store::StoreError>().is_some() {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

//! `aigate run | check | hash-key`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use aigate::consumers::stored_form;
use aigate::server::{self, RunOptions};

/// mimalloc, unless built with `--features system-allocator` (glibc's malloc), which heap
/// profilers such as heaptrack and valgrind can see into (benches/README.md, *Where the memory
/// of a stream goes*).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "aigate", version, about = "An AI gateway on Pingora for Kong decK configurations")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve: the proxy on proxy_listen, metrics and status on status_listen.
    Run {
        /// The settings file (see README.md).
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// Take over the listening sockets of the running aigate (zero-downtime upgrade).
        #[arg(long, short = 'u')]
        upgrade: bool,
        /// Run in the background (writes pid_file).
        #[arg(long, short = 'd')]
        daemon: bool,
    },
    /// Check the settings and decK files; list every problem and exit non-zero if any.
    Check {
        #[arg(long, short = 'c')]
        config: PathBuf,
    },
    /// Read a key on stdin and print the form to store in a decK file (`key: sha256:...`).
    HashKey,
}

/// Logging at `log_level` (RUST_LOG overrides). Pingora's own debug and trace output prints
/// request and response bodies, which hold secrets: it is capped at info unless RUST_LOG names
/// a pingora module explicitly (a deliberate debugging choice, never for production).
fn init_logging(level: &str) {
    let mut b = env_logger::Builder::new();
    b.format_timestamp_millis();
    b.parse_filters(level);
    for module in ["pingora", "pingora_core", "pingora_proxy", "pingora_http", "pingora_pool", "pingora_rustls"] {
        b.filter_module(module, log::LevelFilter::Info.min(log_level_of(level)));
    }
    if let Ok(env) = std::env::var("RUST_LOG") {
        b.parse_filters(&env);
    }
    b.init();
}

fn log_level_of(level: &str) -> log::LevelFilter {
    level.parse().unwrap_or(log::LevelFilter::Info)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::HashKey => {
            let mut key = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut key) {
                eprintln!("aigate: cannot read the key from stdin: {e}");
                return ExitCode::from(2);
            }
            let key = key.strip_suffix('\n').map(|k| k.strip_suffix('\r').unwrap_or(k)).unwrap_or(&key);
            if key.is_empty() {
                eprintln!("aigate: the key is empty");
                return ExitCode::from(2);
            }
            println!("{}", stored_form(key.as_bytes()));
            ExitCode::SUCCESS
        }
        Command::Check { config } => match server::check(&config) {
            Ok(checked) => {
                let g = &checked.loaded.config;
                println!(
                    "{}: ok ({} services, {} routes, {} consumers, {} keys)",
                    config.display(),
                    g.services.len(),
                    g.routes.len(),
                    g.consumers.list.len(),
                    g.consumers.key_count()
                );
                ExitCode::SUCCESS
            }
            Err(problems) => {
                eprintln!("{problems}");
                eprintln!("aigate: {} problem(s) found", problems.len());
                ExitCode::from(1)
            }
        },
        Command::Run { config, upgrade, daemon } => {
            let checked = match server::check(&config) {
                Ok(v) => v,
                Err(problems) => {
                    eprintln!("{problems}");
                    eprintln!("aigate: not started, {} problem(s) found", problems.len());
                    return ExitCode::from(1);
                }
            };
            init_logging(&checked.settings.log_level);
            match server::run(checked, RunOptions { upgrade, daemon }) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("aigate: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

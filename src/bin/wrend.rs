//! wrend: the wren daemon, and, by the name it is started as (`wren::personality`), BIRD
//! 1.6's programs in calico-node's image: `bird`/`bird6` (the daemon on BIRD's configuration
//! language, one family each) and `birdcl`/`birdcl6`/`birdc` (the client).

#![deny(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::reload;
use wren::config::bird::Family;
use wren::config::{Contents, LogLevel, Source};
use wren::personality::{self, BirdArgs, ClientArgs, Personality};
use wren::{daemon, datastore};

#[derive(Parser)]
#[command(name = "wrend", version, about = "wren BGP daemon")]
struct Args {
    /// Configuration file (TOML): the whole model, or a `[datastore]` table.
    #[arg(short = 'c', long = "config", default_value = "/etc/wren/wren.toml")]
    config: PathBuf,
    /// Control socket path; may be given more than once.
    #[arg(short = 's', long = "socket", default_value = "/run/wren/wren.ctl")]
    socket: Vec<PathBuf>,
    /// Check the configuration and exit (0 when valid).
    #[arg(short = 'p', long = "check-config")]
    check: bool,
    /// Start as a restarting speaker (graceful restart, RFC 4724).
    #[arg(short = 'R', long = "restarting")]
    restarting: bool,
    /// Stay in the foreground (always the case; accepted for BIRD compatibility).
    #[arg(short = 'd')]
    foreground: bool,
    /// `none`: leave the kernel alone (overrides `[kernel] enabled`).
    #[arg(long, value_parser = ["kernel", "none"])]
    fib: Option<String>,
}

/// glibc raises its mmap threshold each time a large block is freed, after which the route
/// tables' shards (each up to a few MiB, reallocated as they grow) come from the heap and
/// leave holes it rarely gives back. A fixed threshold keeps them mapped, so what the
/// tables free goes back to the kernel: 10-15 MiB less resident at a million routes.
/// Called before any thread starts.
fn fix_mmap_threshold() {
    wren::sys::set_mmap_threshold(128 * 1024);
}

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    match Personality::of(&argv0) {
        Personality::Wrend => wrend(Args::parse()),
        Personality::Bird(family) => bird(BirdArgs::parse(), family),
        Personality::Client(family) => {
            let args = ClientArgs::parse();
            let socket = args
                .socket
                .unwrap_or_else(|| personality::default_socket(family).into());
            wren::control::birdcl::run(&socket, &args.words)
        }
    }
}

/// wren's own daemon on its TOML configuration.
fn wrend(args: Args) -> ExitCode {
    let source = Source::Toml(args.config.clone());
    let mut contents = match source.read() {
        Ok(c) => c,
        Err(e) => {
            // FILE:LINE:COL: message, as every configuration error.
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if args.check {
        println!("{}: configuration OK", args.config.display());
        return ExitCode::SUCCESS;
    }
    if let Some(mode) = &args.fib {
        let kernel = match &mut contents {
            Contents::Model(c) => &mut c.kernel,
            Contents::Datastore(local) => &mut local.kernel,
        };
        kernel.enabled = mode == "kernel";
    }
    serve(contents, source, args.socket, args.restarting, "wrend")
}

/// `bird`/`bird6`: BIRD's flags and messages, the configuration in BIRD's language.
fn bird(args: BirdArgs, family: Family) -> ExitCode {
    let path = args.config_path(family);
    if args.parse_only {
        // As BIRD: nothing printed when the file is valid.
        return match personality::check(&path, family) {
            Ok(()) => ExitCode::SUCCESS,
            Err(line) => {
                eprintln!("{line}");
                ExitCode::FAILURE
            }
        };
    }
    let source = Source::Bird(path, family);
    let config = match source.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", personality::bird_message(&e));
            return ExitCode::FAILURE;
        }
    };
    let socket = args.socket_path(family);
    serve(
        Contents::Model(config),
        source,
        vec![socket],
        args.restarting,
        personality::BIRD,
    )
}

/// Runs the daemon until it is told to stop.
fn serve(
    contents: Contents,
    source: Source,
    control: Vec<PathBuf>,
    restarting: bool,
    program: &str,
) -> ExitCode {
    fix_mmap_threshold();
    let (filter, level) = reload::Layer::new(LevelFilter::INFO);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .with_target(false),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{program}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (config, datastore) = match contents {
        Contents::Model(config) => (config, None),
        Contents::Datastore(local) => {
            // Waits for etcd, or for the saved state when etcd does not answer.
            let (node, feed) = match runtime.block_on(datastore::start(&local.datastore)) {
                Ok(started) => started,
                Err(e) => {
                    eprintln!("{program}: datastore: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let decided = feed.borrow().state.decision.clone();
            let config = match decided {
                Ok(d) => local.overlay(d.config),
                Err(e) => {
                    eprintln!("{program}: datastore: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let start = daemon::DatastoreStart { local, node, feed };
            (config, Some(start))
        }
    };
    let opts = daemon::Options {
        config,
        source,
        control,
        restarting,
        set_log_level: Box::new(move |l| {
            let _ = level.modify(|f| *f = level_filter(l));
        }),
        datastore,
    };
    match runtime.block_on(daemon::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn level_filter(l: LogLevel) -> LevelFilter {
    match l {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    }
}

//! wrend: the wren daemon. Accepts BIRD's flags too (`-c`, `-s`, `-p`, `-R`, `-d`), so it
//! can stand where Calico runs `bird`.

#![deny(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::reload;
use wren::config::{LogLevel, Source};
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
    fix_mmap_threshold();
    let args = Args::parse();
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
    let source = match Source::load(&args.config) {
        Ok(s) => s,
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wrend: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let kernel = args.fib.as_deref().map(|mode| mode == "kernel");
    let (config, datastore) = match source {
        Source::Model(mut config) => {
            if let Some(on) = kernel {
                config.kernel.enabled = on;
            }
            (config, None)
        }
        Source::Datastore(mut local) => {
            if let Some(on) = kernel {
                local.kernel.enabled = on;
            }
            // Waits for etcd, or for the saved state when etcd does not answer.
            let (node, feed) = match runtime.block_on(datastore::start(&local.datastore)) {
                Ok(started) => started,
                Err(e) => {
                    eprintln!("wrend: datastore: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let decided = feed.borrow().state.decision.clone();
            let config = match decided {
                Ok(d) => local.overlay(d.config),
                Err(e) => {
                    eprintln!("wrend: datastore: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let start = daemon::DatastoreStart { local, node, feed };
            (config, Some(start))
        }
    };
    let opts = daemon::Options {
        config,
        config_path: args.config,
        control: args.socket,
        restarting: args.restarting,
        set_log_level: Box::new(move |l| {
            let _ = level.modify(|f| *f = level_filter(l));
        }),
        datastore,
    };
    match runtime.block_on(daemon::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wrend: {e:#}");
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

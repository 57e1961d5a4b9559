//! The `ward` command: parse the command line, load the configuration, start tracing, run.

mod bulk;
mod cli;
mod probe;
mod telemetry;

use std::io::Read;
use std::process::ExitCode;

use clap::Parser;
use ward_core::config::Config;

use crate::cli::{
    AnalyticsCommand, Cli, Command, ExportCommand, ImportCommand, KeysCommand, UserCommand,
};

fn main() -> ExitCode {
    fix_malloc_mmap_threshold();
    let cli = Cli::parse();
    // Before the configuration: a health check must not depend on it.
    if let Command::Probe(args) = &cli.command {
        return match probe::probe(&args.url) {
            Ok(_) => ExitCode::SUCCESS,
            Err(reason) => {
                eprintln!("ward probe: {reason}");
                ExitCode::FAILURE
            }
        };
    }
    let sources = cli.config_sources();
    // Configuration errors are printed plainly, before tracing exists (STYLE.md §5).
    let mut config = match Config::load(&sources) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("ward: {error}");
            return ExitCode::from(2);
        }
    };
    if let Command::Config = cli.command {
        return print_config(&config);
    }
    if let Command::Serve(args) = &cli.command
        && args.check
    {
        return check_serve(&config, args.demo);
    }
    if matches!(
        cli.command,
        Command::Import(_) | Command::Export(_) | Command::Analytics(_)
    ) {
        // A bulk command reports on the terminal; per-batch logs would bury it (RUST_LOG
        // still wins).
        config.log.filter = "warn".to_string();
    }
    let telemetry = match telemetry::init(&config) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("ward: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ward: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli.command, config));
    let exit_code = match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "ward failed");
            eprintln!("ward: {error}");
            ExitCode::FAILURE
        }
    };
    // Last, so the spans of the shutdown itself go out too (the exporter has its own thread).
    telemetry.shutdown();
    exit_code
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            ward_serve::serve(config, ward_serve::ServeOptions { demo: args.demo }).await?;
        }
        Command::Migrate(_) => {
            for line in ward_serve::migrate(&config).await? {
                println!("{line}");
            }
        }
        Command::User(UserCommand::Create(args)) => {
            let (password, generated) = if args.password_stdin {
                (read_password_from_stdin()?, false)
            } else {
                (generated_password(), true)
            };
            let user =
                ward_serve::create_user(&config, &args.email, args.role, password.clone()).await?;
            println!("created {} ({}) with id {}", user.email, user.role, user.id);
            if generated {
                println!("password (shown once, store it now): {password}");
            }
        }
        Command::Keys(KeysCommand::Generate(args)) => {
            let auth = &config.auth;
            if args.if_missing && auth.private_key_file.is_file() && auth.public_key_file.is_file()
            {
                println!(
                    "kept the existing key pair {} and {}",
                    auth.private_key_file.display(),
                    auth.public_key_file.display()
                );
                return Ok(());
            }
            let verifier = ward_serve::generate_keys(&config)?;
            println!(
                "wrote {} (private, mode 0600) and {}",
                config.auth.private_key_file.display(),
                config.auth.public_key_file.display()
            );
            println!("public key: {}", verifier.public_key_string());
        }
        Command::Import(ImportCommand::Patients(args)) => {
            let summary = bulk::import_patients(&config, &args.file).await?;
            println!("{summary}");
            anyhow::ensure!(
                summary.num_failed == 0,
                "{} line(s) could not be imported",
                summary.num_failed
            );
        }
        Command::Export(ExportCommand::Patients(args)) => {
            let num_exported =
                bulk::export_patients(&config, args.since, args.output.as_deref()).await?;
            eprintln!("exported {num_exported} patients");
        }
        Command::Analytics(AnalyticsCommand::Rebuild) => {
            let report = ward_serve::rebuild_analytics(&config).await?;
            println!("analytics rebuilt: {report}");
        }
        Command::Config | Command::Probe(_) => {}
    }
    Ok(())
}

fn print_config(config: &Config) -> ExitCode {
    let redacted = config.redacted();
    match toml::to_string_pretty(&redacted) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("ward: cannot print the configuration: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `ward serve --check`: no tracing, no runtime, no connection; the verdict on stdout/stderr.
fn check_serve(config: &Config, demo: bool) -> ExitCode {
    match ward_serve::check_serve(config, demo) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("ward: {error}");
            ExitCode::from(2)
        }
    }
}

fn read_password_from_stdin() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin().take(1024).read_to_string(&mut input)?;
    let password = input.lines().next().unwrap_or_default().to_string();
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(password)
}

/// A random (v4) UUID as 32 hex characters: 122 random bits, strong and easy to paste.
fn generated_password() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Keeps glibc returning large freed blocks to the system. Each password hash (argon2id, 19 MiB
/// by default) allocates one large block; glibc's mmap threshold rises to the size of the
/// first such block freed, after which every later one comes from the heap and stays resident:
/// ~19 MiB of idle RSS per malloc arena that ever hashed (BENCHMARKS.md, idle memory). Setting
/// the threshold fixes it at its default 128 KiB and turns that adjustment off.
fn fix_malloc_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only changes the allocator's tuning, before any thread starts.
        let _ = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
    }
}

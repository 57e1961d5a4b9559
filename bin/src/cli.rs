//! The command line. Flags override the configuration files and `WARD_*` variables.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use ward_core::UserRole;
use ward_core::config::ConfigSources;

/// Ward: patient management platform. One binary runs any of five roles: auth, patients,
/// billing, analytics and the REST gateway.
#[derive(Debug, Parser)]
#[command(name = "ward", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// A configuration file layered over config/ward.toml (must exist).
    #[arg(long, global = true, env = "WARD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the roles this process owns until SIGINT/SIGTERM.
    Serve(ServeArgs),
    /// Create or upgrade each local module's database and the event topics, then exit.
    Migrate(RolesArgs),
    /// Manage staff accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the token signing key pair.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Load records from a file into the local module databases.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Write records from the local module databases to a file.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Maintain the analytics figures.
    #[command(subcommand)]
    Analytics(AnalyticsCommand),
    /// Print the effective configuration (all layers merged), passwords redacted.
    Config,
    /// GET a URL and exit 0 on a 2xx answer, 1 otherwise: a container health check for images
    /// without curl (`ward probe http://127.0.0.1:9090/livez`). Reads no configuration.
    Probe(ProbeArgs),
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The URL to ask, plain http (the ops listener), e.g. http://127.0.0.1:9090/livez.
    #[arg(value_name = "URL")]
    pub url: String,
}

#[derive(Debug, Subcommand)]
pub enum AnalyticsCommand {
    /// Recompute every figure from the start of the event log: empties the analytics figures
    /// and the analytics consumer's offsets, replays both topics to their end, and prints how
    /// many events it replayed. Run it while no process runs the analytics role.
    Rebuild,
}

#[derive(Debug, Args)]
pub struct RolesArgs {
    /// Roles to run: auth, patients, billing, analytics, gateway. Comma list or repeated;
    /// default all. Also WARD_ROLES.
    #[arg(long = "roles", value_name = "ROLES")]
    pub roles: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub roles: RolesArgs,
    /// Load the demo user (testuser@test.com / password123, admin) and 15 demo patients.
    /// Idempotent. Never use on real data.
    #[arg(long)]
    pub demo: bool,
    /// Overrides server.http_addr.
    #[arg(long, value_name = "ADDR")]
    pub http_addr: Option<String>,
    /// Overrides server.ops_addr.
    #[arg(long, value_name = "ADDR")]
    pub ops_addr: Option<String>,
    /// Check the configuration for these roles without connecting anywhere (keys, database
    /// URLs, peers, brokers, listeners), print one line per role saying what it would run, and
    /// exit: 0 when it would start, 2 with `ward: <reason>` when it would not.
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a staff account in the auth database.
    Create(CreateUserArgs),
}

#[derive(Debug, Args)]
pub struct CreateUserArgs {
    /// The login; unique ignoring case.
    #[arg(long)]
    pub email: String,
    /// admin, clinician, billing or analyst.
    #[arg(long, value_parser = parse_user_role)]
    pub role: UserRole,
    /// Read the password from the first line of standard input; otherwise a strong one is
    /// generated and printed once.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a new key pair to auth.private_key_file and auth.public_key_file (never overwrites).
    Generate(GenerateKeysArgs),
}

#[derive(Debug, Args)]
pub struct GenerateKeysArgs {
    /// Succeed without writing when both files already exist (a one-shot setup step that runs
    /// on every `docker compose up`); one file without the other is still an error.
    #[arg(long)]
    pub if_missing: bool,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Register patients from FHIR R4 Patient NDJSON (one resource per line), validated as
    /// POST /fhir/Patient validates; a UUID `id` is kept. Prints `line N: reason` for each line
    /// that fails, goes on, and exits non-zero if any did.
    Patients(ImportPatientsArgs),
}

#[derive(Debug, Args)]
pub struct ImportPatientsArgs {
    /// The NDJSON file, or `-` for standard input.
    #[arg(value_name = "FILE")]
    pub file: String,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write every live patient as FHIR R4 Patient NDJSON.
    Patients(ExportPatientsArgs),
}

#[derive(Debug, Args)]
pub struct ExportPatientsArgs {
    /// Only patients changed at or after this instant (RFC 3339, e.g. 2024-01-01T00:00:00Z).
    #[arg(long, value_name = "RFC3339", value_parser = parse_instant)]
    pub since: Option<DateTime<Utc>>,
    /// Write to this file (created or replaced when complete) instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

fn parse_instant(raw: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|instant| instant.with_timezone(&Utc))
        .map_err(|error| format!("not an RFC 3339 instant ({error}), e.g. 2024-01-01T00:00:00Z"))
}

fn parse_user_role(raw: &str) -> Result<UserRole, String> {
    raw.parse()
}

impl Cli {
    /// The configuration layers the flags add.
    pub fn config_sources(&self) -> ConfigSources {
        let mut overrides = Vec::new();
        let roles_opt = match &self.command {
            Command::Serve(args) => Some(&args.roles.roles),
            Command::Migrate(args) => Some(&args.roles),
            Command::User(_)
            | Command::Keys(_)
            | Command::Import(_)
            | Command::Export(_)
            | Command::Analytics(_)
            | Command::Config
            | Command::Probe(_) => None,
        };
        if let Some(roles) = roles_opt.filter(|roles| !roles.is_empty()) {
            overrides.push((
                "roles".to_string(),
                serde_json::Value::from(roles.join(",")),
            ));
        }
        if let Command::Serve(args) = &self.command {
            if let Some(addr) = &args.http_addr {
                overrides.push(("server.http_addr".to_string(), addr.clone().into()));
            }
            if let Some(addr) = &args.ops_addr {
                overrides.push(("server.ops_addr".to_string(), addr.clone().into()));
            }
        }
        ConfigSources {
            explicit_file: self.config.clone(),
            overrides,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn roles_and_addresses_become_overrides() {
        let cli = Cli::parse_from([
            "ward",
            "serve",
            "--roles",
            "gateway,auth",
            "--http-addr",
            "127.0.0.1:0",
        ]);
        let sources = cli.config_sources();
        assert_eq!(
            sources.overrides[0],
            ("roles".to_string(), "gateway,auth".into())
        );
        assert_eq!(sources.overrides[1].0, "server.http_addr");
    }

    #[test]
    fn serve_check_is_a_flag_beside_the_roles() {
        let cli = Cli::parse_from(["ward", "serve", "--roles", "gateway", "--check"]);
        let Command::Serve(args) = &cli.command else {
            panic!("not serve");
        };
        assert!(args.check);
        assert_eq!(
            cli.config_sources().overrides[0],
            ("roles".to_string(), "gateway".into())
        );
        let Command::Serve(plain) = Cli::parse_from(["ward", "serve"]).command else {
            panic!("not serve");
        };
        assert!(!plain.check);
    }

    #[test]
    fn analytics_rebuild_takes_no_arguments() {
        let cli = Cli::parse_from(["ward", "analytics", "rebuild"]);
        assert!(matches!(
            cli.command,
            Command::Analytics(AnalyticsCommand::Rebuild)
        ));
        assert!(Cli::try_parse_from(["ward", "analytics", "rebuild", "--from", "x"]).is_err());
    }

    #[test]
    fn export_takes_an_rfc3339_since_only() {
        let cli = Cli::parse_from([
            "ward",
            "export",
            "patients",
            "--since",
            "2024-01-02T03:04:05+01:00",
        ]);
        let Command::Export(ExportCommand::Patients(args)) = cli.command else {
            panic!("not an export");
        };
        assert_eq!(
            args.since.unwrap().to_rfc3339(),
            "2024-01-02T02:04:05+00:00"
        );
        let bad = Cli::try_parse_from(["ward", "export", "patients", "--since", "2024-01-02"]);
        assert!(bad.is_err());
    }
}

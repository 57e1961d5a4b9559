//! Configuration: compiled defaults, then `config/ward.toml`, then the `--config` file, then
//! `WARD_*` environment variables (`__` nests), then CLI flags; later wins. Validated after merging,
//! and every error names the key, where its value came from, and why it is wrong.

mod database_password;
mod secrets;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::role::{Role, parse_roles};

pub use secrets::{SaslMechanism, SecretText};

/// The top-level keys of [`Config`]; environment variables are read only under these.
const TOP_LEVEL_KEYS: [&str; 10] = [
    "profile",
    "roles",
    "server",
    "database",
    "events",
    "peers",
    "auth",
    "patients",
    "log",
    "telemetry",
];

/// The project file read when present; relative to the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "config/ward.toml";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `embedded` (laptop: missing keys are created under `data/`) or `production`
    /// (missing keys are a start-up error, never silently generated).
    pub profile: Profile,
    /// The roles this process runs; empty or absent means all five.
    pub roles: RoleList,
    pub server: ServerOptions,
    pub database: DatabaseOptions,
    pub events: EventsOptions,
    pub peers: PeersOptions,
    pub auth: AuthOptions,
    pub patients: PatientsOptions,
    pub log: LogOptions,
    pub telemetry: TelemetryOptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    Embedded,
    Production,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerOptions {
    /// Public REST API when the gateway runs here, plus `/livez` `/readyz`.
    pub http_addr: SocketAddr,
    /// gRPC services of the modules that run here.
    pub grpc_addr: SocketAddr,
    /// `/livez` `/readyz` `/metrics` on every process.
    pub ops_addr: SocketAddr,
    /// Seconds to let in-flight requests finish on shutdown.
    pub shutdown_grace_secs: u64,
    /// Seconds a stopping process keeps serving while `/readyz` already says 503, so load
    /// balancers and peers that have not yet noticed send it no new work into closed listeners.
    /// Part of `shutdown_grace_secs`, so it must be shorter. Since v0.1.
    #[serde(default = "default_drain_secs")]
    pub drain_secs: u64,
    /// Browser origins allowed to call the public API (CORS), e.g. `https://clinic.example`;
    /// empty (the default) allows none. A list or one comma-separated string.
    #[serde(default, deserialize_with = "string_or_list")]
    pub cors_allowed_origins: Vec<String>,
    /// Proxies (IPs or CIDR ranges, e.g. the load balancer's subnet) whose `X-Forwarded-For`
    /// names the client. Empty (the default): the TCP peer is the client, and the header is
    /// ignored, so a client cannot choose the address it is throttled and audited under.
    #[serde(default, deserialize_with = "string_or_list")]
    pub trusted_proxies: Vec<String>,
}

fn default_drain_secs() -> u64 {
    2
}

impl ServerOptions {
    /// The parsed `trusted_proxies`; entries that do not parse were refused by validation.
    pub fn trusted_proxy_nets(&self) -> Vec<ipnet::IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|entry| parse_ip_net(entry))
            .collect()
    }
}

/// An IP range (`10.0.0.0/16`) or one address (`10.0.0.7`, taken as /32 or /128).
fn parse_ip_net(raw: &str) -> Option<ipnet::IpNet> {
    let trimmed = raw.trim();
    trimmed.parse::<ipnet::IpNet>().ok().or_else(|| {
        trimmed
            .parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

/// One database URL per module; `sqlite://...` embedded, `postgres://...` in production.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseOptions {
    pub auth: SecretUrl,
    pub patients: SecretUrl,
    pub billing: SecretUrl,
    pub analytics: SecretUrl,
    /// Run each local module's migrations when it starts (`ward migrate` always does).
    pub migrate_on_start: bool,
    /// The password of the auth database's PostgreSQL user, put into `auth` (whose URL then
    /// names the user but no password). For secrets injected as environment variables
    /// (`WARD_DATABASE__AUTH_PASSWORD`); refused with a SQLite URL. Since v0.4.
    #[serde(default)]
    pub auth_password: Option<SecretText>,
    /// As `auth_password`, for `patients` (`WARD_DATABASE__PATIENTS_PASSWORD`). Since v0.4.
    #[serde(default)]
    pub patients_password: Option<SecretText>,
    /// As `auth_password`, for `billing` (`WARD_DATABASE__BILLING_PASSWORD`). Since v0.4.
    #[serde(default)]
    pub billing_password: Option<SecretText>,
    /// As `auth_password`, for `analytics` (`WARD_DATABASE__ANALYTICS_PASSWORD`). Since v0.4.
    #[serde(default)]
    pub analytics_password: Option<SecretText>,
}

impl DatabaseOptions {
    pub fn url_for(&self, role: Role) -> Option<&SecretUrl> {
        match role {
            Role::Auth => Some(&self.auth),
            Role::Patients => Some(&self.patients),
            Role::Billing => Some(&self.billing),
            Role::Analytics => Some(&self.analytics),
            Role::Gateway => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventBackend {
    /// A durable log in an embedded database (`events.local_url`); the one-process default.
    Local,
    /// A Kafka-protocol broker (Amazon MSK in production).
    Kafka,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsOptions {
    pub backend: EventBackend,
    /// Kafka bootstrap brokers, `host:port`; a list, or one comma-separated string
    /// (`WARD_EVENTS__BROKERS=b-1:9092,b-2:9092`).
    #[serde(deserialize_with = "string_or_list")]
    pub brokers: Vec<String>,
    /// Where the local backend keeps its log.
    pub local_url: SecretUrl,
    /// How often relays and consumers look for work when nothing woke them.
    pub poll_interval_millis: u64,
    /// Partitions per topic that `ward migrate` creates on Kafka (the local log has one).
    pub partitions: i32,
    /// Replicas per partition that `ward migrate` asks Kafka for (3 on MSK, 1 on a dev broker).
    pub replication_factor: i16,
    /// This consumer instance's number, `0..consumer_instances`. Kafka has no consumer groups in
    /// the client Ward uses, so instances split partitions by configuration: instance `i` of `n`
    /// owns every partition `p` with `p % n == i`.
    pub consumer_instance: u32,
    /// How many instances of each consuming role share the partitions. Tasks of one autoscaled
    /// service cannot be numbered, so they all run instance 0 of 1: on PostgreSQL a consumer
    /// claims a partition per batch (an advisory lock), and the tasks share the work safely.
    pub consumer_instances: u32,
    /// Connect to the brokers over TLS (Amazon MSK: port 9094, or 9096 with SASL/SCRAM); the
    /// brokers' certificates are checked against the Mozilla root store. Since v0.4.
    #[serde(default)]
    pub tls: bool,
    /// `none`, `scram-sha-512` (Amazon MSK) or `scram-sha-256`. Since v0.4.
    #[serde(default)]
    pub sasl_mechanism: SaslMechanism,
    /// The SASL user name; required with a mechanism. Since v0.4.
    #[serde(default, deserialize_with = "secrets::optional_scalar_text")]
    pub sasl_username: Option<String>,
    /// The SASL password; required with a mechanism (`WARD_EVENTS__SASL_PASSWORD`). Since v0.4.
    #[serde(default)]
    pub sasl_password: Option<SecretText>,
}

impl EventsOptions {
    /// Whether this instance owns `partition`.
    pub fn owns_partition(&self, partition: i32) -> bool {
        let instances = i64::from(self.consumer_instances.max(1));
        i64::from(partition).rem_euclid(instances) == i64::from(self.consumer_instance)
    }
}

/// gRPC addresses of roles that do not run in this process; several per role are balanced.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeersOptions {
    #[serde(default, deserialize_with = "string_or_list")]
    pub auth: Vec<String>,
    #[serde(default, deserialize_with = "string_or_list")]
    pub patients: Vec<String>,
    #[serde(default, deserialize_with = "string_or_list")]
    pub billing: Vec<String>,
    #[serde(default, deserialize_with = "string_or_list")]
    pub analytics: Vec<String>,
}

impl PeersOptions {
    pub fn for_role(&self, role: Role) -> &[String] {
        match role {
            Role::Auth => &self.auth,
            Role::Patients => &self.patients,
            Role::Billing => &self.billing,
            Role::Analytics => &self.analytics,
            Role::Gateway => &[],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthOptions {
    /// The token signing key; only the auth role reads it.
    pub private_key_file: PathBuf,
    /// The verification key; every process that checks tokens reads it.
    pub public_key_file: PathBuf,
    /// The token signing key itself, as text (`ed25519-private/<hex>` as `ward keys generate`
    /// writes it, or PEM); wins over `private_key_file`. For a secret injected as an environment
    /// variable (`WARD_AUTH__PRIVATE_KEY`). Since v0.4.
    #[serde(default)]
    pub private_key: Option<SecretText>,
    /// The verification key itself, as text (`ed25519/<hex>` or PEM); wins over
    /// `public_key_file` (`WARD_AUTH__PUBLIC_KEY`). Since v0.4.
    #[serde(default)]
    pub public_key: Option<SecretText>,
    /// Earlier verification keys still trusted, so tokens they signed keep working while keys
    /// rotate; a token names its key by id.
    pub trusted_public_key_files: Vec<PathBuf>,
    /// The same as text (`ed25519/<hex>` or PEM), a list or one comma-separated string
    /// (`WARD_AUTH__TRUSTED_PUBLIC_KEYS`): how a task with no files (ECS) keeps trusting the
    /// previous key during a rotation. Public keys, so not secret. Since v0.4.
    #[serde(default, deserialize_with = "string_or_list")]
    pub trusted_public_keys: Vec<String>,
    /// Lifetime of an access token.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token (one login session can be refreshed this long).
    pub refresh_token_ttl_secs: u64,
    /// Password hashing cost (argon2id).
    pub argon2: Argon2Options,
}

/// The patients module's options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientsOptions {
    /// The text before the number of every new medical record number (`MRN-` gives
    /// `MRN-00000042`); up to 16 letters, digits, `-`, `_`, `.` or `/`. Changing it affects
    /// only patients registered afterwards. Since v0.2.
    pub mrn_prefix: String,
    /// How many digits the number is zero-padded to (1..=18); a number that outgrows it just
    /// gets longer. Since v0.2.
    pub mrn_digits: u8,
    /// How long after a merge it can still be undone (`POST /api/patients/{id}/unmerge`), in
    /// seconds; 30 days by default. Since v0.3.
    pub unmerge_window_secs: u64,
    /// Makes every change of an existing patient conditional: `PUT`, `PATCH`, `DELETE` and the
    /// restore (REST and FHIR) without `If-Match` answer 428 Precondition Required, so no client
    /// can overwrite a change it has not seen. Off by default: the last write wins. Since v0.2.
    pub require_if_match: bool,
}

impl Default for PatientsOptions {
    fn default() -> Self {
        Self {
            mrn_prefix: "MRN-".into(),
            mrn_digits: 8,
            unmerge_window_secs: 30 * 24 * 60 * 60,
            require_if_match: false,
        }
    }
}

/// argon2id cost parameters; the defaults are OWASP's (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Argon2Options {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Options {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogOptions {
    /// `pretty` for people, `json` for log pipelines.
    pub format: LogFormat,
    /// A tracing filter (`info`, `ward=debug,sqlx=warn`); `RUST_LOG` wins when set.
    pub filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Trace export over OTLP; nothing is exported (and nothing is spent on it) while
/// `otlp_endpoint` is unset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryOptions {
    /// The OTLP/HTTP collector's base URL, e.g. `http://127.0.0.1:4318` (spans go to
    /// `/v1/traces` under it); unset: no export. Since v0.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// The `service.name` resource attribute of every exported span. Since v0.3.
    pub service_name: String,
    /// The share of new traces sampled, 0.0..=1.0; a request that arrives with a `traceparent`
    /// follows its caller's decision instead. Since v0.3.
    pub sample_ratio: f64,
}

impl Default for TelemetryOptions {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "ward".into(),
            sample_ratio: 1.0,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            profile: Profile::Embedded,
            roles: RoleList::default(),
            server: ServerOptions {
                http_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
                grpc_addr: SocketAddr::from(([0, 0, 0, 0], 50051)),
                ops_addr: SocketAddr::from(([0, 0, 0, 0], 9090)),
                shutdown_grace_secs: 10,
                drain_secs: default_drain_secs(),
                cors_allowed_origins: Vec::new(),
                trusted_proxies: Vec::new(),
            },
            database: DatabaseOptions {
                auth: SecretUrl::new("sqlite://data/auth.db?mode=rwc"),
                patients: SecretUrl::new("sqlite://data/patients.db?mode=rwc"),
                billing: SecretUrl::new("sqlite://data/billing.db?mode=rwc"),
                analytics: SecretUrl::new("sqlite://data/analytics.db?mode=rwc"),
                migrate_on_start: true,
                auth_password: None,
                patients_password: None,
                billing_password: None,
                analytics_password: None,
            },
            events: EventsOptions {
                backend: EventBackend::Local,
                brokers: vec!["127.0.0.1:9092".into()],
                local_url: SecretUrl::new("sqlite://data/events.db?mode=rwc"),
                poll_interval_millis: 250,
                partitions: 6,
                replication_factor: 1,
                consumer_instance: 0,
                consumer_instances: 1,
                tls: false,
                sasl_mechanism: SaslMechanism::None,
                sasl_username: None,
                sasl_password: None,
            },
            peers: PeersOptions::default(),
            auth: AuthOptions {
                private_key_file: PathBuf::from("data/keys/auth-private.key"),
                public_key_file: PathBuf::from("data/keys/auth-public.key"),
                private_key: None,
                public_key: None,
                trusted_public_key_files: Vec::new(),
                trusted_public_keys: Vec::new(),
                access_token_ttl_secs: 900,
                refresh_token_ttl_secs: 14 * 24 * 3600,
                argon2: Argon2Options::default(),
            },
            patients: PatientsOptions::default(),
            log: LogOptions {
                format: LogFormat::Pretty,
                filter: "info,sqlx=warn,rskafka=warn".into(),
            },
            telemetry: TelemetryOptions::default(),
        }
    }
}

/// The role set, written as a list or as one comma-separated string (`WARD_ROLES=gateway,auth`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleList(Vec<Role>);

impl RoleList {
    pub fn new(roles: Vec<Role>) -> Self {
        Self(roles)
    }

    /// The roles to run; all five when none were named.
    pub fn resolved(&self) -> Vec<Role> {
        if self.0.is_empty() {
            Role::ALL.to_vec()
        } else {
            self.0.clone()
        }
    }
}

impl Serialize for RoleList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let names: Vec<&str> = self.resolved().into_iter().map(Role::as_str).collect();
        names.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RoleList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let items = string_or_list(deserializer)?;
        parse_roles(&items)
            .map(RoleList)
            .map_err(serde::de::Error::custom)
    }
}

fn string_or_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(text) => text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(String::from)
            .collect(),
        OneOrMany::Many(items) => items,
    })
}

/// A URL that may hold a password: never printed by `Debug`, redacted by [`SecretUrl::redacted`].
#[derive(Clone)]
pub struct SecretUrl(SecretString);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(SecretString::from(url.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The URL with any password replaced by `***`, safe to log.
    pub fn redacted(&self) -> String {
        redact_url_password(self.expose())
    }

    pub fn is_sqlite(&self) -> bool {
        self.expose().starts_with("sqlite:")
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({})", self.redacted())
    }
}

// Serializing exposes the value: figment needs it to layer compiled defaults. Printing for people
// goes through `Config::redacted_toml`, which redacts first.
impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(SecretUrl::new)
    }
}

fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_string(),
    }
}

/// A configuration problem, phrased for the operator who has to fix it.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key} = {value} (from {source_name}): {reason}")]
pub struct ConfigError {
    pub key: String,
    pub value: String,
    pub source_name: String,
    pub reason: String,
}

/// Where the layers come from; the CLI builds one of these.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// `--config` / `WARD_CONFIG`: must exist when named.
    pub explicit_file: Option<PathBuf>,
    /// Highest-precedence overrides, as dotted keys (`roles`, `server.http_addr`).
    pub overrides: Vec<(String, serde_json::Value)>,
}

impl Config {
    /// Merges every layer, then validates.
    pub fn load(sources: &ConfigSources) -> Result<Config, ConfigError> {
        let figment = Self::figment(sources)?;
        let mut config: Config = figment
            .extract()
            .map_err(|error| from_figment(&figment, error))?;
        config.validate(&figment)?;
        database_password::apply_database_passwords(&mut config, &figment)?;
        Ok(config)
    }

    fn figment(sources: &ConfigSources) -> Result<Figment, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(DEFAULT_CONFIG_FILE));
        if let Some(path) = &sources.explicit_file {
            if !path.is_file() {
                return Err(ConfigError {
                    key: "--config".into(),
                    value: path.display().to_string(),
                    source_name: "the command line or WARD_CONFIG".into(),
                    reason: "no such file".into(),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // WARD_CONFIG names the file above; it is not a key.
        // Only variables naming a known section are configuration: `WARD_CONFIG` names the file
        // above, and scripts' own `WARD_*` variables (WARD_BIN, ...) are not keys. A typo inside a
        // section (`WARD_SERVER__HTTP_ADR`) still fails, as an unknown field.
        figment = figment.merge(
            Env::prefixed("WARD_")
                .split("__")
                .filter(|key| {
                    let section = key.as_str().split('.').next().unwrap_or_default();
                    TOP_LEVEL_KEYS
                        .iter()
                        .any(|known| known.eq_ignore_ascii_case(section))
                })
                .ignore(&secrets::RAW_TEXT_KEYS),
        );
        figment = secrets::merge_raw_text_env(figment);
        for (key, value) in &sources.overrides {
            figment = figment.merge(Serialized::default(key, value));
        }
        Ok(figment)
    }

    fn validate(&self, figment: &Figment) -> Result<(), ConfigError> {
        let fail = |key: &str, value: String, reason: &str| ConfigError {
            key: key.into(),
            value,
            source_name: source_of(figment, key),
            reason: reason.into(),
        };
        for role in Role::ALL {
            let Some(url) = self.database.url_for(role) else {
                continue;
            };
            let raw = url.expose();
            if !(raw.starts_with("sqlite:")
                || raw.starts_with("postgres://")
                || raw.starts_with("postgresql://"))
            {
                return Err(fail(
                    &format!("database.{role}"),
                    url.redacted(),
                    "must start with sqlite:, postgres:// or postgresql://",
                ));
            }
        }
        if self.server.drain_secs > 0 && self.server.drain_secs >= self.server.shutdown_grace_secs {
            return Err(fail(
                "server.drain_secs",
                self.server.drain_secs.to_string(),
                "must be shorter than server.shutdown_grace_secs, which it is part of",
            ));
        }
        for proxy in &self.server.trusted_proxies {
            if parse_ip_net(proxy).is_none() {
                return Err(fail(
                    "server.trusted_proxies",
                    proxy.clone(),
                    "a proxy is an IP address or a CIDR range, such as 10.0.0.0/16",
                ));
            }
        }
        for origin in &self.server.cors_allowed_origins {
            let trimmed = origin.trim_end_matches('/');
            let is_origin = (trimmed.starts_with("https://") || trimmed.starts_with("http://"))
                && !trimmed.contains(['?', '#', '*'])
                && trimmed.matches('/').count() == 2;
            if !is_origin {
                return Err(fail(
                    "server.cors_allowed_origins",
                    origin.clone(),
                    "an origin is scheme://host[:port], such as https://clinic.example (no path, no wildcard)",
                ));
            }
        }
        if self.events.backend == EventBackend::Kafka && self.events.brokers.is_empty() {
            return Err(fail(
                "events.brokers",
                "[]".into(),
                "the kafka backend needs at least one broker",
            ));
        }
        if self.events.poll_interval_millis == 0 || self.events.poll_interval_millis > 60_000 {
            return Err(fail(
                "events.poll_interval_millis",
                self.events.poll_interval_millis.to_string(),
                "must be between 1 and 60000",
            ));
        }
        if !(1..=1024).contains(&self.events.partitions) {
            return Err(fail(
                "events.partitions",
                self.events.partitions.to_string(),
                "must be between 1 and 1024",
            ));
        }
        if !(1..=16).contains(&self.events.replication_factor) {
            return Err(fail(
                "events.replication_factor",
                self.events.replication_factor.to_string(),
                "must be between 1 and 16",
            ));
        }
        if self.events.consumer_instances == 0
            || self.events.consumer_instance >= self.events.consumer_instances
        {
            return Err(fail(
                "events.consumer_instance",
                format!(
                    "{} of {}",
                    self.events.consumer_instance, self.events.consumer_instances
                ),
                "needs 0 <= consumer_instance < consumer_instances",
            ));
        }
        if !(60..=86_400).contains(&self.auth.access_token_ttl_secs) {
            return Err(fail(
                "auth.access_token_ttl_secs",
                self.auth.access_token_ttl_secs.to_string(),
                "must be between 60 and 86400 seconds",
            ));
        }
        if !(3600..=90 * 86_400).contains(&self.auth.refresh_token_ttl_secs) {
            return Err(fail(
                "auth.refresh_token_ttl_secs",
                self.auth.refresh_token_ttl_secs.to_string(),
                "must be between 3600 seconds and 90 days",
            ));
        }
        let mrn_prefix = &self.patients.mrn_prefix;
        let is_mrn_prefix = mrn_prefix.chars().count() <= 16
            && mrn_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
        if !is_mrn_prefix {
            return Err(fail(
                "patients.mrn_prefix",
                mrn_prefix.clone(),
                "up to 16 ASCII letters, digits, -, _, . or /",
            ));
        }
        if !(1..=18).contains(&self.patients.mrn_digits) {
            return Err(fail(
                "patients.mrn_digits",
                self.patients.mrn_digits.to_string(),
                "must be between 1 and 18",
            ));
        }
        let argon2 = self.auth.argon2;
        if !(1..=16).contains(&argon2.parallelism) {
            return Err(fail(
                "auth.argon2.parallelism",
                argon2.parallelism.to_string(),
                "must be between 1 and 16",
            ));
        }
        if !(1..=64).contains(&argon2.iterations) {
            return Err(fail(
                "auth.argon2.iterations",
                argon2.iterations.to_string(),
                "must be between 1 and 64",
            ));
        }
        if !(1024..=4 * 1024 * 1024).contains(&argon2.memory_kib) {
            return Err(fail(
                "auth.argon2.memory_kib",
                argon2.memory_kib.to_string(),
                "must be between 1024 (1 MiB) and 4194304 (4 GiB)",
            ));
        }
        for role in Role::ALL {
            for peer in self.peers.for_role(role) {
                if !(peer.starts_with("http://") || peer.starts_with("https://")) {
                    return Err(fail(
                        &format!("peers.{role}"),
                        peer.clone(),
                        "a peer is a gRPC URL such as http://patients.internal:50051",
                    ));
                }
            }
        }
        if let Err(error) = self.log.filter.parse::<FilterSyntax>() {
            return Err(fail("log.filter", self.log.filter.clone(), &error));
        }
        self.telemetry
            .validate()
            .map_err(|(key, value, reason)| fail(key, value, reason))?;
        secrets::validate_secrets(self, figment)
    }

    /// The effective configuration as TOML-like JSON, with passwords redacted.
    pub fn redacted(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        for role in Role::ALL {
            if let Some(url) = self.database.url_for(role) {
                value["database"][role.as_str()] = url.redacted().into();
            }
        }
        value["events"]["local_url"] = self.events.local_url.redacted().into();
        secrets::redact_secrets(&mut value);
        value
    }

    pub fn data_dir_of(path: &Path) -> Option<&Path> {
        path.parent()
    }
}

impl TelemetryOptions {
    /// Returns the offending key, its value and why it is wrong.
    fn validate(&self) -> Result<(), (&'static str, String, &'static str)> {
        if let Some(endpoint) = &self.otlp_endpoint {
            let authority = endpoint
                .strip_prefix("http://")
                .or_else(|| endpoint.strip_prefix("https://"))
                .unwrap_or_default();
            let host = authority.split(['/', '?', '#']).next().unwrap_or_default();
            let is_url = !host.is_empty() && !endpoint.contains(char::is_whitespace);
            if !is_url {
                return Err((
                    "telemetry.otlp_endpoint",
                    endpoint.clone(),
                    "an OTLP/HTTP endpoint is an http(s) URL, such as http://127.0.0.1:4318",
                ));
            }
        }
        if self.service_name.trim().is_empty() {
            return Err((
                "telemetry.service_name",
                self.service_name.clone(),
                "must not be empty",
            ));
        }
        // Written to reject NaN too.
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err((
                "telemetry.sample_ratio",
                self.sample_ratio.to_string(),
                "must be between 0.0 and 1.0",
            ));
        }
        Ok(())
    }
}

/// Light syntax check of a tracing filter, so a typo fails at start-up with the key's name.
struct FilterSyntax;

impl std::str::FromStr for FilterSyntax {
    type Err = String;

    fn from_str(filter: &str) -> Result<Self, Self::Err> {
        const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
        for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let level = directive
                .rsplit_once('=')
                .map_or(directive, |(_, level)| level);
            let is_bare_target =
                !directive.contains('=') && !LEVELS.contains(&level.to_ascii_lowercase().as_str());
            if is_bare_target {
                // `ward` alone is a valid directive (target at trace level).
                continue;
            }
            if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
                return Err(format!(
                    "`{level}` is not a log level (trace, debug, info, warn, error, off)"
                ));
            }
        }
        Ok(FilterSyntax)
    }
}

fn source_of(figment: &Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(metadata) => match &metadata.source {
            Some(source) => format!("{} {}", metadata.name, source),
            None => metadata.name.to_string(),
        },
        None => "defaults".into(),
    }
}

fn from_figment(figment: &Figment, error: figment::Error) -> ConfigError {
    let key = error.path.join(".");
    let source_name = match &error.metadata {
        Some(metadata) => match &metadata.source {
            Some(source) => format!("{} {}", metadata.name, source),
            None => metadata.name.to_string(),
        },
        None => source_of(figment, &key),
    };
    let value = if secrets::is_secret_key(&key) {
        "***".to_string()
    } else {
        figment
            .find_value(&key)
            .map(|value| match value.as_str() {
                Some(text) => text.to_string(),
                None => format!("{value:?}"),
            })
            .unwrap_or_default()
    };
    ConfigError {
        key: if key.is_empty() { "(root)".into() } else { key },
        value,
        source_name,
        reason: error.kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact_url_password("postgres://ward:s3cret@db:5432/patients"),
            "postgres://ward:***@db:5432/patients"
        );
        assert_eq!(
            redact_url_password("sqlite://data/a.db?mode=rwc"),
            "sqlite://data/a.db?mode=rwc"
        );
    }

    #[test]
    fn the_drain_window_defaults_small_and_must_fit_in_the_grace_period() {
        let config = Config::load(&ConfigSources::default()).unwrap();
        assert!(config.server.drain_secs < config.server.shutdown_grace_secs);
        for (drain_secs, grace_secs, is_valid) in [(0, 0, true), (5, 25, true), (10, 10, false)] {
            let sources = ConfigSources {
                explicit_file: None,
                overrides: vec![
                    ("server.drain_secs".to_string(), drain_secs.into()),
                    ("server.shutdown_grace_secs".to_string(), grace_secs.into()),
                ],
            };
            match Config::load(&sources) {
                Ok(_) => assert!(is_valid, "{drain_secs} of {grace_secs} was accepted"),
                Err(error) => {
                    assert!(!is_valid, "{drain_secs} of {grace_secs}: {}", error.reason);
                    assert_eq!(error.key, "server.drain_secs");
                }
            }
        }
    }

    #[test]
    fn instances_split_partitions_without_overlap() {
        let mut events = Config::default().events;
        events.consumer_instances = 2;
        let mut owned = [Vec::new(), Vec::new()];
        for instance in 0..2u32 {
            events.consumer_instance = instance;
            for partition in 0..6 {
                if events.owns_partition(partition) {
                    owned[instance as usize].push(partition);
                }
            }
        }
        assert_eq!(owned, [vec![0, 2, 4], vec![1, 3, 5]]);
    }

    #[test]
    fn filter_syntax_accepts_common_filters() {
        for ok in ["info", "info,sqlx=warn,rskafka=warn", "ward=debug", "ward"] {
            assert!(ok.parse::<FilterSyntax>().is_ok(), "{ok}");
        }
        assert!("ward=loud".parse::<FilterSyntax>().is_err());
    }

    /// A section missing from [`TOP_LEVEL_KEYS`] silently ignores its `WARD_*` variables (as
    /// `WARD_PATIENTS__*` once did).
    #[test]
    fn every_section_is_settable_from_the_environment() {
        let config = Config::load(&ConfigSources::default()).unwrap();
        let serialized = serde_json::to_value(&config).unwrap();
        let sections: Vec<&String> = serialized.as_object().unwrap().keys().collect();
        for section in &sections {
            assert!(TOP_LEVEL_KEYS.contains(&section.as_str()), "{section}");
        }
        assert_eq!(sections.len(), TOP_LEVEL_KEYS.len());
    }

    #[test]
    fn telemetry_is_off_by_default_and_its_keys_are_checked() {
        let config = Config::load(&ConfigSources::default()).unwrap();
        assert_eq!(config.telemetry, TelemetryOptions::default());
        assert_eq!(config.telemetry.otlp_endpoint, None);
        assert_eq!(config.telemetry.service_name, "ward");
        assert_eq!(config.telemetry.sample_ratio, 1.0);
        let set = |key: &str, value: serde_json::Value| ConfigSources {
            explicit_file: None,
            overrides: vec![(key.to_string(), value)],
        };
        for endpoint in ["http://127.0.0.1:4318", "https://otel.internal/otlp"] {
            let config = Config::load(&set("telemetry.otlp_endpoint", endpoint.into())).unwrap();
            assert_eq!(config.telemetry.otlp_endpoint.as_deref(), Some(endpoint));
        }
        for (key, value) in [
            (
                "telemetry.otlp_endpoint",
                serde_json::json!("127.0.0.1:4318"),
            ),
            (
                "telemetry.otlp_endpoint",
                serde_json::json!("grpc://collector:4317"),
            ),
            ("telemetry.otlp_endpoint", serde_json::json!("http://")),
            ("telemetry.otlp_endpoint", serde_json::json!("http://a b")),
            ("telemetry.service_name", serde_json::json!(" ")),
            ("telemetry.sample_ratio", serde_json::json!(1.5)),
            ("telemetry.sample_ratio", serde_json::json!(-0.1)),
        ] {
            let error = Config::load(&set(key, value.clone())).unwrap_err();
            assert_eq!(error.key, key, "{value}");
        }
        let half = Config::load(&set("telemetry.sample_ratio", serde_json::json!(0.5))).unwrap();
        assert_eq!(half.telemetry.sample_ratio, 0.5);
    }

    #[test]
    fn medical_record_numbers_default_to_mrn_and_eight_digits_and_are_checked() {
        let config = Config::load(&ConfigSources::default()).unwrap();
        assert_eq!(config.patients, PatientsOptions::default());
        assert_eq!(config.patients.mrn_prefix, "MRN-");
        assert_eq!(config.patients.mrn_digits, 8);
        assert!(!config.patients.require_if_match);
        for (key, value) in [
            ("patients.mrn_prefix", serde_json::json!("MRN 1")),
            (
                "patients.mrn_prefix",
                serde_json::json!("A-VERY-LONG-PREFIX-"),
            ),
            ("patients.mrn_digits", serde_json::json!(0)),
            ("patients.mrn_digits", serde_json::json!(19)),
        ] {
            let sources = ConfigSources {
                explicit_file: None,
                overrides: vec![(key.to_string(), value.clone())],
            };
            let error = Config::load(&sources).unwrap_err();
            assert_eq!(error.key, key, "{value}");
        }
    }
}

//! Typed settings read from environment variables.
//!
//! Every knob has a default that works on a developer's machine (the contract's
//! ports, the local Postgres, the seed's delays). A bad value is an error that
//! names the variable, the value and what was expected. Tests build settings
//! from their own list of the same variables instead of touching the process
//! environment, so parallel tests never race on it.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::services::{MODE, Mode, SERVICES};

/// Every environment variable a service process reads: what [`Settings`]
/// reads (the runtime's `TOKIO_WORKER_THREADS` among them), plus `RUST_LOG`
/// (the tracing filter). The one list the Compose files, `.env.example` and
/// their tests are checked against; a unit test below proves it is exactly
/// what the code asks for.
pub const VARS: &[&str] = &[
    "BIND_HOST",
    "PORT",
    "DATABASE_URL",
    "DB_MAX_CONNECTIONS",
    "DB_ACQUIRE_TIMEOUT_MS",
    "SYNC_WORKERS",
    "TOKIO_WORKER_THREADS",
    "CLICK_BATCH_SIZE",
    "OUTBOUND_CONNECT_TIMEOUT_MS",
    "OUTBOUND_TIMEOUT_MS",
    "BODY_LIMIT_BYTES",
    "LOG_FORMAT",
    "EMAIL_DELAY_MS",
    "PAYMENT_DELAY_MS",
    "SEARCH_DELAY_MS",
    "CACHE_DELAY_MS",
    "ANALYTICS_DELAY_MS",
    "REPORT_SECONDS",
    "REPORT_ITERATIONS",
    "COMPENSATION_RETRY_MS",
    "SAGA_STALE_AFTER_MS",
    "SHUTDOWN_GRACE_MS",
    "HEADER_READ_TIMEOUT_MS",
    "AMQP_URL",
    "BROKER_PREFIX",
    "CONSUMER_PREFETCH",
    "CONSUMER_MAX_ATTEMPTS",
    "CONSUMER_RETRY_BASE_MS",
    "BROKER_RECONNECT_MS",
    "RELAY_POLL_MS",
    "REPORT_WORKERS",
    "CLICK_BATCH_MS",
    "USER_SERVICE_URL",
    "PAYMENT_SERVICE_URL",
    "PRODUCT_SERVICE_URL",
    "REPORT_SERVICE_URL",
    "ORDER_SERVICE_URL",
    "ANALYTICS_SERVICE_URL",
    "EMAIL_SERVICE_URL",
    "SEARCH_SERVICE_URL",
    "CACHE_SERVICE_URL",
    "INVENTORY_SERVICE_URL",
    "RUST_LOG",
];

/// A variable that could not be used, with the reason.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid {var}={value:?}: expected {expected}")]
pub struct ConfigError {
    pub var: String,
    pub value: String,
    pub expected: &'static str,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The simulated costs of the study; the same in both modes so the comparison is fair.
#[derive(Debug, Clone, PartialEq)]
pub struct Delays {
    pub email: Duration,
    pub payment: Duration,
    pub search: Duration,
    pub cache: Duration,
    pub analytics: Duration,
}

/// Async-mode settings: the broker, the consumers and the outbox relay.
#[derive(Debug, Clone, PartialEq)]
pub struct Broker {
    /// `AMQP_URL`, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub url: String,
    /// `BROKER_PREFIX`: the first part of every exchange and queue name, so
    /// that several stacks (or tests) can share one broker.
    pub prefix: String,
    /// `CONSUMER_PREFETCH`: unacknowledged messages a consumer may hold.
    pub prefetch: u16,
    /// `CONSUMER_MAX_ATTEMPTS`: tries of a failing message before it is dead-lettered.
    pub max_attempts: u32,
    /// `CONSUMER_RETRY_BASE_MS`: first retry delay; it doubles on each retry.
    pub retry_base: Duration,
    /// `BROKER_RECONNECT_MS`: pause between connection attempts.
    pub reconnect: Duration,
    /// `RELAY_POLL_MS`: how often the outbox relay looks for rows nobody told it about.
    pub relay_poll: Duration,
    /// `REPORT_WORKERS`: reports hashed at once (default: the number of cores).
    pub report_workers: u16,
    /// `CLICK_BATCH_MS`: longest wait for a delivery of click batches to fill.
    pub click_batch_wait: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `BIND_HOST`: address to listen on.
    pub host: IpAddr,
    /// `PORT`: overrides the contract port of the service (0 picks a free one).
    pub port: Option<u16>,
    /// `DATABASE_URL`: created if missing.
    pub database_url: String,
    /// `DB_MAX_CONNECTIONS`: pool size per service.
    pub db_max_connections: u32,
    /// `DB_ACQUIRE_TIMEOUT_MS`: how long a request waits for a pooled connection.
    pub db_acquire_timeout: Duration,
    /// `CLICK_BATCH_SIZE`: most clicks written (sync) or published (async)
    /// as one batch, and most messages the click consumer takes at once.
    pub click_batch_size: u16,
    /// `SYNC_WORKERS`: threads per service for blocking work (the seed's 40).
    pub sync_workers: usize,
    /// `TOKIO_WORKER_THREADS` (tokio's own name): the runtime's worker
    /// threads; by default one in async mode and [`cpus`] in sync mode
    /// (`app::serve_main` says why).
    pub runtime_workers: usize,
    /// `OUTBOUND_CONNECT_TIMEOUT_MS` and `OUTBOUND_TIMEOUT_MS` for calls to other services.
    pub outbound_connect_timeout: Duration,
    pub outbound_timeout: Duration,
    /// `BODY_LIMIT_BYTES`: larger request bodies get 413.
    pub body_limit: usize,
    /// `LOG_FORMAT`: pretty or json.
    pub log_format: LogFormat,
    pub delays: Delays,
    /// `REPORT_SECONDS`: the report's work is calibrated to take this long on one idle core.
    pub report_seconds: f64,
    /// `REPORT_ITERATIONS`: a fixed number of SHA-256 rounds instead of calibrating.
    pub report_iterations: Option<u64>,
    /// `COMPENSATION_RETRY_MS`: how often the order service retries a release that failed.
    pub compensation_retry: Duration,
    /// `SHUTDOWN_GRACE_MS`: on SIGTERM, how long requests in flight and then
    /// the background work (consumers' messages in hand) get to finish.
    pub shutdown_grace: Duration,
    /// `HEADER_READ_TIMEOUT_MS`: how long a client has to send a request's
    /// head (request line and headers), and how long a kept-alive connection
    /// may sit idle before the next one; then the connection is closed.
    pub header_read_timeout: Duration,
    /// `SAGA_STALE_AFTER_MS`: a saga still pending after this long was cut off
    /// (its order service stopped mid-saga); it is failed and its stock released.
    pub saga_stale_after: Duration,
    /// Async mode: how services reach RabbitMQ and what they tune there.
    pub broker: Broker,
    /// `<NAME>_SERVICE_URL` for every service.
    urls: HashMap<&'static str, String>,
}

impl Settings {
    /// Half the service's pool (`DB_MAX_CONNECTIONS`), at least one: what
    /// background work that holds a connection per unit (a consumer's
    /// messages, a batch of clicks) may take at once, so that requests
    /// still find a connection while it is busy.
    pub fn half_the_pool(&self) -> u32 {
        (self.db_max_connections / 2).max(1)
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// A test's settings: the defaults but for `vars`, which must be valid.
    #[cfg(test)]
    pub(crate) fn for_test(vars: &[(&str, &str)]) -> Self {
        Self::from_vars(vars.iter().copied()).expect("valid settings")
    }

    /// Reads settings from variable/value pairs (the same names as the environment).
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self::read(&Env::new(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        ))
    }

    fn read(env: &Env) -> Result<Self, ConfigError> {
        let millis = |var, default| env.millis(var, default);
        let mut urls = HashMap::new();
        for spec in &SERVICES {
            let default = format!("http://127.0.0.1:{}", spec.port(MODE));
            let url = env.string(&spec.url_var(), &default);
            urls.insert(spec.name, url.trim_end_matches('/').to_owned());
        }
        Ok(Settings {
            host: env.parse(
                "BIND_HOST",
                "127.0.0.1".parse().expect("literal"),
                "an IP address",
            )?,
            port: env.optional("PORT", "a port number (0-65535)")?,
            database_url: env.string(
                "DATABASE_URL",
                &format!("postgres://postgres@127.0.0.1:5432/lab_{MODE}"),
            ),
            db_max_connections: env.positive("DB_MAX_CONNECTIONS", 8)?,
            db_acquire_timeout: millis("DB_ACQUIRE_TIMEOUT_MS", 30_000)?,
            sync_workers: env.positive("SYNC_WORKERS", 40)?,
            runtime_workers: env.positive(
                "TOKIO_WORKER_THREADS",
                match MODE {
                    Mode::Async => 1,
                    Mode::Sync => cpus(),
                },
            )?,
            click_batch_size: env.positive("CLICK_BATCH_SIZE", 500)?,
            outbound_connect_timeout: millis("OUTBOUND_CONNECT_TIMEOUT_MS", 1_000)?,
            outbound_timeout: millis("OUTBOUND_TIMEOUT_MS", 30_000)?,
            body_limit: env.positive("BODY_LIMIT_BYTES", 64 * 1024)?,
            log_format: match env.string("LOG_FORMAT", "pretty").as_str() {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                other => return Err(env.error("LOG_FORMAT", other, "pretty or json")),
            },
            delays: Delays {
                email: millis("EMAIL_DELAY_MS", 500)?,
                payment: millis("PAYMENT_DELAY_MS", 2_000)?,
                search: millis("SEARCH_DELAY_MS", 100)?,
                cache: millis("CACHE_DELAY_MS", 50)?,
                analytics: millis("ANALYTICS_DELAY_MS", 50)?,
            },
            report_seconds: {
                let s: f64 = env.parse("REPORT_SECONDS", 10.0, "a positive number of seconds")?;
                if !(s.is_finite() && s > 0.0) {
                    return Err(env.error(
                        "REPORT_SECONDS",
                        &s.to_string(),
                        "a positive number of seconds",
                    ));
                }
                s
            },
            report_iterations: env
                .optional("REPORT_ITERATIONS", "a whole number of SHA-256 rounds")?,
            compensation_retry: millis("COMPENSATION_RETRY_MS", 2_000)?,
            saga_stale_after: millis("SAGA_STALE_AFTER_MS", 600_000)?,
            shutdown_grace: millis("SHUTDOWN_GRACE_MS", 8_000)?,
            header_read_timeout: millis("HEADER_READ_TIMEOUT_MS", 10_000)?,
            broker: Broker {
                url: env.string("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
                prefix: env.string("BROKER_PREFIX", "lab"),
                prefetch: env.positive("CONSUMER_PREFETCH", 10)?,
                max_attempts: env.positive("CONSUMER_MAX_ATTEMPTS", 5)?,
                retry_base: millis("CONSUMER_RETRY_BASE_MS", 200)?,
                reconnect: millis("BROKER_RECONNECT_MS", 500)?,
                relay_poll: millis("RELAY_POLL_MS", 1_000)?,
                report_workers: env
                    .positive("REPORT_WORKERS", u16::try_from(cpus()).unwrap_or(u16::MAX))?,
                click_batch_wait: millis("CLICK_BATCH_MS", 20)?,
            },
            urls,
        })
    }

    /// Base URL of another service, e.g. `http://127.0.0.1:8007`.
    pub fn url(&self, service: &str) -> &str {
        self.urls
            .get(service)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("unknown service {service}"))
    }
}

/// The CPUs this process may use (its cgroup's quota counts): the default
/// of the settings that go by cores.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// The variables given, and the names the settings asked for (see [`VARS`]).
struct Env {
    vars: HashMap<String, String>,
    asked: RefCell<BTreeSet<String>>,
}

impl Env {
    fn new(vars: HashMap<String, String>) -> Self {
        Env {
            vars,
            asked: RefCell::default(),
        }
    }

    /// The one place a variable is looked up, so every name asked for is recorded.
    fn get(&self, var: &str) -> Option<&str> {
        self.asked.borrow_mut().insert(var.to_owned());
        self.vars
            .get(var)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn string(&self, var: &str, default: &str) -> String {
        self.get(var).unwrap_or(default).to_owned()
    }

    fn error(&self, var: &str, value: &str, expected: &'static str) -> ConfigError {
        ConfigError {
            var: var.to_owned(),
            value: value.to_owned(),
            expected,
        }
    }

    fn parse<T: FromStr>(
        &self,
        var: &str,
        default: T,
        expected: &'static str,
    ) -> Result<T, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| self.error(var, v, expected)),
        }
    }

    fn optional<T: FromStr>(
        &self,
        var: &str,
        expected: &'static str,
    ) -> Result<Option<T>, ConfigError> {
        self.get(var)
            .map(|v| v.parse().map_err(|_| self.error(var, v, expected)))
            .transpose()
    }

    fn positive<T: FromStr + PartialOrd + Default>(
        &self,
        var: &str,
        default: T,
    ) -> Result<T, ConfigError> {
        let value = self.parse(var, default, "a whole number above zero")?;
        if value <= T::default() {
            let raw = self.get(var).unwrap_or_default();
            return Err(self.error(var, raw, "a whole number above zero"));
        }
        Ok(value)
    }

    fn millis(&self, var: &str, default: u64) -> Result<Duration, ConfigError> {
        self.parse(var, default, "a whole number of milliseconds")
            .map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_contract_and_the_seed() {
        let s = Settings::from_vars(Vec::<(String, String)>::new()).expect("defaults are valid");
        assert_eq!(s.delays.email, Duration::from_millis(500));
        assert_eq!(s.delays.payment, Duration::from_secs(2));
        assert_eq!(s.sync_workers, 40);
        if MODE == Mode::Async {
            assert_eq!(s.runtime_workers, 1);
        }
        let empty = Settings::from_vars([("TOKIO_WORKER_THREADS", " ")]).unwrap();
        assert_eq!(
            empty.runtime_workers, s.runtime_workers,
            "empty means the default"
        );
        assert_eq!(s.report_seconds, 10.0);
        assert_eq!(
            s.url("email"),
            format!(
                "http://127.0.0.1:{}",
                crate::services::find("email").unwrap().port(MODE)
            )
        );
    }

    #[test]
    fn a_bad_value_names_the_variable() {
        let err = Settings::from_vars([("EMAIL_DELAY_MS", "soon")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid EMAIL_DELAY_MS="soon": expected a whole number of milliseconds"#
        );
        let err = Settings::from_vars([("SYNC_WORKERS", "0")]).unwrap_err();
        assert_eq!(err.var, "SYNC_WORKERS");
        let err = Settings::from_vars([("LOG_FORMAT", "xml")]).unwrap_err();
        assert_eq!(err.var, "LOG_FORMAT");
        let err = Settings::from_vars([("TOKIO_WORKER_THREADS", "0")]).unwrap_err();
        assert_eq!(err.var, "TOKIO_WORKER_THREADS");
    }

    #[test]
    fn vars_is_exactly_what_the_code_reads() {
        let env = Env::new(HashMap::new());
        Settings::read(&env).expect("defaults are valid");
        let mut read = env.asked.into_inner();
        // The tracing filter reads its own variable (telemetry::init).
        read.insert(tracing_subscriber::EnvFilter::DEFAULT_ENV.to_owned());
        let listed: BTreeSet<String> = VARS.iter().map(|v| (*v).to_owned()).collect();
        assert_eq!(listed.len(), VARS.len(), "VARS has a duplicate");
        assert_eq!(read, listed, "VARS and the variables read have drifted");
    }

    #[test]
    fn urls_can_point_anywhere() {
        let s = Settings::from_vars([("EMAIL_SERVICE_URL", "http://email:8007/")]).unwrap();
        assert_eq!(s.url("email"), "http://email:8007");
    }
}

//! A whole lab stack for one test: all ten services (or some of them) built
//! from their libraries, each on its own port 0 listener, against a fresh
//! Postgres database that is dropped afterwards. Delays are set small through
//! the same variables users set.

#[cfg(feature = "async")]
pub mod broker;
pub mod helpers;

use std::collections::HashMap;
use std::time::Duration;

use common::{Application, Mode, SERVICES, ServiceDef};
use loadgen::scenario::Scenario;
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The library of each service, by name.
pub fn definition(name: &str) -> &'static ServiceDef {
    match name {
        "user" => &user::SERVICE,
        "email" => &email::SERVICE,
        "payment" => &payment::SERVICE,
        "product" => &product::SERVICE,
        "search" => &search::SERVICE,
        "cache" => &cache::SERVICE,
        "analytics" => &analytics::SERVICE,
        "report" => &report::SERVICE,
        "order" => &order::SERVICE,
        "inventory" => &inventory::SERVICE,
        other => panic!("no service named {other}"),
    }
}

/// The Postgres server tests use (`TEST_DATABASE_URL`, without a database name).
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Small delays: the same knobs as production, set so the suite runs fast.
const TEST_VARS: &[(&str, &str)] = &[
    ("EMAIL_DELAY_MS", "40"),
    ("PAYMENT_DELAY_MS", "60"),
    ("SEARCH_DELAY_MS", "30"),
    ("CACHE_DELAY_MS", "20"),
    ("ANALYTICS_DELAY_MS", "20"),
    ("REPORT_ITERATIONS", "20000"),
    ("DB_MAX_CONNECTIONS", "3"),
    ("COMPENSATION_RETRY_MS", "100"),
    ("OUTBOUND_TIMEOUT_MS", "5000"),
    // Async mode: quick retries and reconnects, so fault tests finish fast.
    ("CONSUMER_RETRY_BASE_MS", "20"),
    ("BROKER_RECONNECT_MS", "100"),
    ("RELAY_POLL_MS", "200"),
    ("CLICK_BATCH_MS", "5"),
];

#[derive(Default)]
pub struct StackBuilder {
    vars: Vec<(String, String)>,
    per_service: HashMap<&'static str, Vec<(String, String)>>,
    without: Vec<&'static str>,
    #[cfg(feature = "async")]
    broker_down: bool,
}

impl StackBuilder {
    /// Async mode: the services start while the broker is unreachable.
    #[cfg(feature = "async")]
    pub fn broker_down(mut self) -> Self {
        self.broker_down = true;
        self
    }

    /// Sets a variable for every service.
    pub fn var(mut self, name: &str, value: &str) -> Self {
        self.vars.push((name.into(), value.into()));
        self
    }

    /// Sets a variable for one service only.
    pub fn service_var(mut self, service: &'static str, name: &str, value: &str) -> Self {
        self.per_service
            .entry(service)
            .or_default()
            .push((name.into(), value.into()));
        self
    }

    /// Leaves a service out: its URL points at a port where nothing listens.
    pub fn without(mut self, service: &'static str) -> Self {
        self.without.push(service);
        self
    }

    pub async fn start(self) -> Stack {
        postgres_notices();
        let database = format!("lab_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&format!("{}/postgres", server_url()))
            .await
            .expect("Postgres is running (see README: scripts/ensure-services.sh)");
        sqlx::query(&format!(r#"CREATE DATABASE "{database}""#))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let mut listeners = HashMap::new();
        let mut vars: Vec<(String, String)> = TEST_VARS
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        vars.push((
            "DATABASE_URL".into(),
            format!("{}/{database}", server_url()),
        ));
        for spec in &SERVICES {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
            let port = listener.local_addr().expect("local addr").port();
            vars.push((spec.url_var(), format!("http://127.0.0.1:{port}")));
            // A left-out service's port is released: calls to it are refused.
            if !self.without.contains(&spec.name) {
                listeners.insert(spec.name, listener);
            }
        }
        #[cfg(feature = "async")]
        let (proxy, broker) = {
            let proxy = broker::Proxy::start().await;
            if self.broker_down {
                proxy.down();
            }
            let prefix = format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
            vars.push(("AMQP_URL".into(), proxy.url()));
            vars.push(("BROKER_PREFIX".into(), prefix.clone()));
            (proxy, broker::Broker { prefix })
        };
        vars.extend(self.vars);
        let mut stack = Stack {
            #[cfg(feature = "async")]
            proxy,
            #[cfg(feature = "async")]
            broker,
            database,
            vars,
            per_service: self.per_service,
            ports: HashMap::new(),
            running: HashMap::new(),
            http: reqwest::Client::new(),
        };
        // One after another: migrations serialise on sqlx's lock anyway, and a
        // failure then names its service.
        for (name, listener) in listeners {
            let app = Application::with_listener(definition(name), stack.settings(name), listener)
                .await
                .unwrap_or_else(|e| panic!("{name} failed to start: {e:#}"));
            stack.ports.insert(name, app.port());
            stack.running.insert(name, Running::spawn(app));
        }
        #[cfg(feature = "async")]
        if !self.broker_down {
            stack.wait_ready().await;
        }
        stack
    }
}

struct Running {
    token: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    fn spawn(app: Application) -> Self {
        let token = CancellationToken::new();
        let stop = token.clone();
        let task = tokio::spawn(app.run_until(async move { stop.cancelled().await }));
        Running { token, task }
    }
}

pub struct Stack {
    /// Between the services and RabbitMQ: cut it to drop their connections.
    #[cfg(feature = "async")]
    pub proxy: broker::Proxy,
    /// The real broker, under this test's name prefix.
    #[cfg(feature = "async")]
    pub broker: broker::Broker,
    database: String,
    vars: Vec<(String, String)>,
    per_service: HashMap<&'static str, Vec<(String, String)>>,
    ports: HashMap<&'static str, u16>,
    running: HashMap<&'static str, Running>,
    http: reqwest::Client,
}

impl Stack {
    pub fn builder() -> StackBuilder {
        StackBuilder::default()
    }

    /// All ten services with the test defaults.
    pub async fn start() -> Stack {
        Self::builder().start().await
    }

    fn settings(&self, name: &'static str) -> common::Settings {
        let own = self.per_service.get(name).into_iter().flatten().cloned();
        common::Settings::from_vars(self.vars.iter().cloned().chain(own))
            .expect("test settings are valid")
    }

    /// `http://127.0.0.1:<port of service><path>`.
    pub fn url(&self, service: &str, path: &str) -> String {
        let var = common::services::find(service)
            .expect("known service")
            .url_var();
        let base = &self
            .vars
            .iter()
            .rev()
            .find(|(k, _)| *k == var)
            .expect("url var")
            .1;
        format!("{base}{path}")
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// POSTs JSON and returns the status and the JSON body (Null if none).
    pub async fn post(
        &self,
        service: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.send(self.http.post(self.url(service, path)).json(&body))
            .await
    }

    pub async fn put(
        &self,
        service: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.send(self.http.put(self.url(service, path)).json(&body))
            .await
    }

    pub async fn get(&self, service: &str, path: &str) -> (u16, serde_json::Value) {
        let url = self.url(service, path);
        let response = match self.http.get(&url).send().await {
            // The server closed a pooled keep-alive connection just as the
            // request went out on it (a race every HTTP client meets, often
            // with a short idle timeout): a GET is idempotent, so it is sent
            // once more, as clients do.
            Err(e) if e.is_request() => self.http.get(&url).send().await,
            sent => sent,
        };
        Self::read(response.expect("request sent")).await
    }

    /// GETs until `done` holds for the body (async work finishing), for at
    /// most 20 s; returns the last body either way.
    pub async fn get_until(
        &self,
        service: &str,
        path: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (status, body) = self.get(service, path).await;
            if (status == 200 && done(&body)) || tokio::time::Instant::now() > deadline {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The final state of the operation `answer` (to `scenario`'s request)
    /// started, as a user reads it. Sync: the answer is already final; the
    /// resource it names ([`Scenario::resource`]) is read back to see what
    /// was stored. Async: the answer's `status_url` is polled until
    /// [`Scenario::finished`] holds. An answer that names no resource (the
    /// fan-out, clicks, an error that stored nothing) is its own final state.
    /// A sync error answer that wraps its operation (a declined payment's
    /// `{"detail", "payment"}`) names it inside.
    pub async fn finished(&self, scenario: Scenario, answer: &Value) -> Value {
        let Some(resource) = scenario
            .resource(answer)
            .or_else(|| scenario.resource(&answer["payment"]))
        else {
            return answer.clone();
        };
        let service = scenario.service();
        match common::MODE {
            Mode::Sync => {
                let (status, body) = self.get(service, &resource).await;
                assert_eq!(status, 200, "GET {resource} on {service}: {body}");
                body
            }
            Mode::Async => {
                let body = self
                    .get_until(service, &resource, |body| scenario.finished(body).is_some())
                    .await;
                assert!(
                    scenario.finished(&body).is_some(),
                    "{} at {resource} never finished: {body}",
                    scenario.name()
                );
                body
            }
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
        Self::read(request.send().await.expect("request sent")).await
    }

    async fn read(response: reqwest::Response) -> (u16, serde_json::Value) {
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body read");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Sends a request as a client that gives up: it waits for the server to
    /// start reading the body (`Expect: 100-continue`, answered once the
    /// handler asks for it, so the request has surely started), sends the
    /// body, waits `after`, and closes the connection without reading the
    /// answer. Returns what had arrived by then (empty when nothing had).
    pub async fn hang_up(
        &self,
        method: &str,
        service: &str,
        path: &str,
        body: &serde_json::Value,
        after: Duration,
    ) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let url = self.url(service, path);
        let address = url
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .expect("an http:// URL");
        let body = body.to_string();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nexpect: 100-continue\r\n\r\n",
            body.len()
        );
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        stream.write_all(head.as_bytes()).await.expect("send head");
        let mut seen = Vec::new();
        let continued = tokio::time::timeout(Duration::from_secs(10), async {
            let mut buf = [0; 256];
            while !String::from_utf8_lossy(&seen).contains("\r\n\r\n") {
                let n = stream.read(&mut buf).await.expect("read");
                assert!(n > 0, "the server closed before asking for the body");
                seen.extend_from_slice(&buf[..n]);
            }
        })
        .await;
        assert!(continued.is_ok(), "no 100 Continue within 10 s");
        let interim = String::from_utf8_lossy(&seen).into_owned();
        assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
        stream.write_all(body.as_bytes()).await.expect("send body");
        tokio::time::sleep(after).await;
        let mut answer = [0; 4096];
        let n = match tokio::time::timeout(Duration::ZERO, stream.read(&mut answer)).await {
            Ok(Ok(n)) => n,
            _ => 0,
        };
        String::from_utf8_lossy(&answer[..n]).into_owned()
    }

    /// `host:port` of a service.
    pub fn address(&self, service: &str) -> String {
        let url = self.url(service, "/");
        url.strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .expect("an http:// URL")
            .to_owned()
    }

    /// Sends `request` as it is on a new connection and reads until the
    /// server closes it or 10 s pass: what a client that speaks bad HTTP
    /// gets back (empty when the server said nothing).
    pub async fn raw(&self, service: &str, request: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.address(service))
            .await
            .expect("connect");
        // The server may answer and close before it has read everything.
        let _ = stream.write_all(request).await;
        let mut answer = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// Waits until every running service answers `/ready` 200 (async mode:
    /// connected to the broker).
    pub async fn wait_ready(&self) {
        for name in self.running.keys() {
            let ready = eventually(Duration::from_secs(15), || async {
                (self.get(name, "/ready").await.0 == 200).then_some(())
            })
            .await;
            assert!(ready.is_some(), "{name} never became ready");
        }
    }

    /// Stops a service gracefully (requests in flight finish) and frees its port.
    pub async fn stop(&mut self, name: &'static str) {
        let running = self.running.remove(name).expect("service is running");
        running.token.cancel();
        running
            .task
            .await
            .expect("service task")
            .expect("service stopped cleanly");
    }

    /// Starts a stopped service again on its old port.
    pub async fn restart(&mut self, name: &'static str) {
        let port = self.ports[name];
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("rebind the service's port");
        let app = Application::with_listener(definition(name), self.settings(name), listener)
            .await
            .expect("service restarts");
        self.running.insert(name, Running::spawn(app));
        #[cfg(feature = "async")]
        self.wait_ready().await;
    }

    /// Drops the test's database under the running services, closing their
    /// connections: what a lost database looks like to them.
    pub async fn lose_database(&self) {
        let mut admin = PgConnection::connect(&format!("{}/postgres", server_url()))
            .await
            .expect("connect to Postgres");
        sqlx::query(&format!(
            r#"DROP DATABASE "{}" WITH (FORCE)"#,
            self.database
        ))
        .execute(&mut admin)
        .await
        .expect("drop test database");
    }

    /// A connection to the test's database, for checks no endpoint offers.
    pub async fn db(&self) -> PgConnection {
        PgConnection::connect(&format!("{}/{}", server_url(), self.database))
            .await
            .expect("connect to test database")
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for running in self.running.values() {
            running.token.cancel();
        }
        let database = self.database.clone();
        #[cfg(feature = "async")]
        let prefix = self.broker.prefix.clone();
        // Drop runs inside the test's runtime: use a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                #[cfg(feature = "async")]
                broker::Broker { prefix }.delete_all().await;
                common::db::drop_database(&format!("{}/{database}", server_url()))
                    .await
                    .ok()
            })
        });
        let _ = dropped.join();
    }
}

/// The warnings and notices PostgreSQL sent to any service of this process
/// since the first call (sqlx logs them under `sqlx::postgres::notice`).
/// The first call (or the first stack's start) installs the process's
/// tracing subscriber that collects them and records the services' phases.
pub fn postgres_notices() -> Vec<String> {
    use std::sync::{Mutex, OnceLock};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::{Layer, filter};

    static NOTICES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();

    struct Collect;
    impl<S: tracing::Subscriber> Layer<S> for Collect {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            struct Message(String);
            impl tracing::field::Visit for Message {
                fn record_debug(&mut self, _: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                    self.0.push_str(&format!("{value:?}"));
                }
                fn record_str(&mut self, _: &tracing::field::Field, value: &str) {
                    self.0.push_str(value);
                }
            }
            let mut message = Message(String::new());
            event.record(&mut message);
            if let Some(all) = NOTICES.get()
                && let Ok(mut all) = all.lock()
            {
                all.push(message.0);
            }
        }
    }

    NOTICES.get_or_init(|| {
        let only_notices = filter::filter_fn(|meta| meta.target() == "sqlx::postgres::notice");
        // The services' phases go to their histograms as in production,
        // behind one filter for the process that lets through only what the
        // two layers read.
        let process = std::iter::once("sqlx::postgres::notice=trace")
            .chain(common::phases::DIRECTIVES)
            .collect::<Vec<_>>()
            .join(",");
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new(process))
            .with(Collect.with_filter(only_notices))
            .with(common::phases::layer());
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other tracing subscriber in the test process");
        Mutex::new(Vec::new())
    });
    NOTICES
        .get()
        .and_then(|all| all.lock().ok().map(|all| all.clone()))
        .unwrap_or_default()
}

/// Polls `check` until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

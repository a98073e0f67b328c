//! Building and running one service: the same code path for its own binary,
//! a launcher, and the tests (which bind port 0).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, State};
use axum::http::{Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::detach::{self, Detached};
#[cfg(not(feature = "async"))]
use crate::outbound::{CallError, Outbound};
use crate::phases::{self, Phase};
use crate::workers::Workers;
use crate::{Error, MODE, ServiceSpec, Settings, correlation, db, metrics, telemetry};

/// What a service crate hands to `common` to be built and run.
pub struct ServiceDef {
    pub spec: &'static ServiceSpec,
    pub migrator: &'static Migrator,
    /// The service's own routes, with their state applied, and the background
    /// work they need declared (started when the service runs).
    pub routes: fn(Ctx, &mut Background) -> Router,
    /// What it consumes in async mode (empty in sync mode).
    pub consumers: &'static [crate::events::Consumer],
    /// Its OpenAPI document in this build's mode (see [`crate::openapi`]):
    /// pure, built without a database or broker; served at `/openapi.json`.
    pub openapi: fn() -> utoipa::openapi::OpenApi,
}

/// The long-running work a service does besides answering requests (the
/// broker supervisor with its consumers, the outbox relay, the saga
/// follow-ups, the click batcher): declared while the service is built,
/// started when it runs, and awaited when it stops. Building a router starts
/// nothing.
#[derive(Default)]
pub struct Background {
    tasks: Vec<(&'static str, crate::events::BoxFuture<()>)>,
}

impl Background {
    /// Declares a task; it should end soon after `Ctx::shutdown` is cancelled.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push((name, Box::pin(task)));
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.tasks.iter().map(|(name, _)| *name).collect()
    }
}

/// What every handler of a service can reach.
#[derive(Clone)]
pub struct Ctx {
    pub spec: &'static ServiceSpec,
    pub settings: Arc<Settings>,
    pub db: PgPool,
    pub workers: Workers,
    /// Sync mode's blocking HTTP client (async mode asks by events and has none).
    #[cfg(not(feature = "async"))]
    pub outbound: Arc<Outbound>,
    /// Cancelled once the service's requests have finished on shutdown:
    /// background work (consumers, relay, follow-ups) stops taking new work.
    pub shutdown: CancellationToken,
    /// Every request's handler runs on a task here ([`crate::detach`]);
    /// shutdown waits for them before the pool closes.
    pub tasks: TaskTracker,
    #[cfg(feature = "async")]
    pub bus: crate::bus::Bus,
}

impl Ctx {
    pub fn name(&self) -> &'static str {
        self.spec.name
    }

    /// Simulates a slow external dependency (an SMTP server, a payment API).
    /// In sync mode it holds a worker thread for `delay`, as a blocking call would.
    #[cfg(not(feature = "async"))]
    pub async fn simulate_latency(&self, delay: Duration) -> crate::Result<()> {
        self.workers
            .run(move || {
                let start = std::time::Instant::now();
                std::thread::sleep(delay);
                record_delay(delay, start.elapsed());
            })
            .await
    }

    /// Simulates a slow external dependency (an SMTP server, a payment API).
    /// In async mode it is an awaited timer: no thread waits.
    #[cfg(feature = "async")]
    pub async fn simulate_latency(&self, delay: Duration) -> crate::Result<()> {
        let start = tokio::time::Instant::now();
        tokio::time::sleep(delay).await;
        record_delay(delay, start.elapsed());
        Ok(())
    }

    /// Opens a transaction; its `BEGIN` is timed (sqlx times the rest).
    pub async fn begin(&self) -> crate::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        db::begin(self.db.acquire().await?).await
    }

    /// Does `effect` (the service's own bookkeeping, e.g. recording the sent
    /// email) while the simulated external work of `delay` runs, and finishes
    /// when both have. The seed's services had no database: their whole cost
    /// was the delay, and overlapping keeps it so, in both modes.
    pub async fn with_latency<T>(
        &self,
        delay: Duration,
        effect: impl Future<Output = crate::Result<T>>,
    ) -> crate::Result<T> {
        let ((), value) = tokio::try_join!(self.simulate_latency(delay), effect)?;
        Ok(value)
    }

    /// POSTs `body` to `target`'s `path` from a sync worker thread, blocking
    /// it until the answer. The outer error is ours (no worker could run the
    /// call); the inner one is the other service's (down, slow, refused).
    #[cfg(not(feature = "async"))]
    pub async fn call<B, R>(
        &self,
        target: &'static str,
        path: &str,
        body: B,
    ) -> crate::Result<Result<R, CallError>>
    where
        B: serde::Serialize + Send + 'static,
        R: serde::de::DeserializeOwned + Send + 'static,
    {
        let outbound = Arc::clone(&self.outbound);
        let url = self.url(target, path);
        self.workers
            .run(move || outbound.post(target, &url, &body))
            .await
    }

    /// Base URL of another service plus `path`.
    pub fn url(&self, service: &str, path: &str) -> String {
        format!("{}{path}", self.settings.url(service))
    }
}

/// A simulated delay, and how much longer than asked it took.
fn record_delay(asked: Duration, took: Duration) {
    phases::record(Phase::Delay, took);
    phases::record(Phase::DelayOvershoot, took.saturating_sub(asked));
}

/// A built service, listening but not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    ctx: Ctx,
    port: u16,
    background: Background,
}

impl Application {
    /// Binds `BIND_HOST` and `PORT` (default: the contract's port for this mode).
    pub async fn build(def: &ServiceDef, settings: Settings) -> anyhow::Result<Self> {
        let port = settings.port.unwrap_or(def.spec.port(MODE));
        let listener = TcpListener::bind((settings.host, port))
            .await
            .with_context(|| format!("cannot listen on {}:{port}", settings.host))?;
        Self::with_listener(def, settings, listener).await
    }

    /// Builds the service on a listener the caller bound (tests bind port 0).
    pub async fn with_listener(
        def: &ServiceDef,
        settings: Settings,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        metrics::install();
        let name = def.spec.name;
        db::ensure_database(&settings.database_url).await?;
        let db = db::pool(&settings, &def.spec.schema())?;
        db::migrate(&db, &def.spec.schema(), def.migrator).await?;
        let settings = Arc::new(settings);
        #[cfg(not(feature = "async"))]
        let outbound = Outbound::new(name, &settings)?;
        let ctx = Ctx {
            spec: def.spec,
            workers: Workers::new(name, settings.sync_workers),
            db,
            #[cfg(not(feature = "async"))]
            outbound: Arc::new(outbound),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            #[cfg(feature = "async")]
            bus: crate::bus::Bus::new(name, &settings.broker),
            settings,
        };
        let mut background = Background::default();
        #[cfg(feature = "async")]
        crate::bus::Bus::start(&ctx, def.consumers, &mut background);
        let router = with_common_parts(def, (def.routes)(ctx.clone(), &mut background), &ctx);
        let port = listener.local_addr()?.port();
        Ok(Application {
            listener,
            router,
            ctx,
            port,
            background,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The background work this service declared, by name.
    pub fn background(&self) -> Vec<&'static str> {
        self.background.names()
    }

    /// Serves and runs the background work until `shutdown` completes, then
    /// stops in order within `SHUTDOWN_GRACE_MS`: no new connections; the
    /// requests in flight finish (also those whose clients hung up); then the
    /// background work stops taking new work and finishes what it holds
    /// (consumers ack what they handled); only then does the pool close.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            listener,
            router,
            ctx,
            background,
            ..
        } = self;
        let running = TaskTracker::new();
        for (name, task) in background.tasks {
            // Whose work it is, for its log lines and its phases.
            let span = tracing::info_span!(target: crate::phases::WORK, "background", service = ctx.name(), task = name);
            running.spawn(tracing::Instrument::instrument(task, span));
        }
        running.close();
        let signalled = CancellationToken::new();
        let signal = signalled.clone();
        let server = serve(
            listener,
            router,
            ctx.settings.header_read_timeout,
            async move {
                shutdown.await;
                signal.cancel();
            },
        );
        let grace = ctx.settings.shutdown_grace;
        let deadline = async {
            signalled.cancelled().await;
            tokio::time::Instant::now() + grace
        };
        tokio::pin!(server, deadline);
        let mut by = None;
        let served = loop {
            tokio::select! {
                served = &mut server => break served,
                at = &mut deadline, if by.is_none() => by = Some(at),
                () = sleep_until(by), if by.is_some() => {
                    tracing::warn!(service = ctx.name(), "connections still open after the grace period; closing them");
                    break Ok(());
                }
            }
        };
        let by = by.unwrap_or_else(|| tokio::time::Instant::now() + grace);
        ctx.tasks.close();
        if tokio::time::timeout_at(by, ctx.tasks.wait()).await.is_err() {
            tracing::warn!(
                service = ctx.name(),
                running = ctx.tasks.len(),
                "requests still running after the grace period"
            );
        }
        ctx.shutdown.cancel();
        if tokio::time::timeout_at(by, running.wait()).await.is_err() {
            tracing::warn!(
                service = ctx.name(),
                running = running.len(),
                "background work still running after the grace period"
            );
        }
        ctx.db.close().await;
        served?;
        Ok(())
    }
}

/// Serves `router` on `listener` until `shutdown`, then stops accepting and
/// lets every connection finish its request in flight (what `axum::serve`
/// does), with one thing more: a client gets `header_read_timeout` to send a
/// request's head, and a kept-alive connection may idle that long before its
/// next one, so slow or idle clients (slowloris, thousands of forgotten
/// keep-alives) do not hold the service's connections forever.
async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper::server::conn::http1;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait, as axum::serve does.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers are small and latency is what the lab measures: no Nagle.
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(tcp), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The whole `main` of a service binary: its settings, its runtime, then
/// the service. A setting that cannot be used stops it with exit code 2 and
/// a line naming the variable. With `--healthcheck` as its first argument
/// it only asks the running service whether it is alive (exit 0 or 1).
///
/// Async mode's services run one tokio worker thread each
/// (`Settings::runtime_workers`): all their work is short non-blocking tasks
/// (a handler, a relay batch, a consumer's message), and ten services share
/// the machine's cores with PostgreSQL and RabbitMQ. With a worker per core
/// in every service, the runtimes' threads wake each other to steal work
/// across services' message chains: on the 2-core VM the async saga
/// accepted 14-47 % more orders a second with one (docs/measuring.md, tenth
/// round). Sync mode's services run a worker per CPU they may use (their
/// blocking work runs on `SYNC_WORKERS` threads either way), where one
/// thread measured no better. `TOKIO_WORKER_THREADS` sets the count in
/// either mode; a service scales past one core by replicas.
pub fn serve_main(def: &ServiceDef) -> ExitCode {
    let binary = def.spec.binary();
    if std::env::args().nth(1).as_deref() == Some("--healthcheck") {
        return run_on(1, &binary, healthcheck(def.spec));
    }
    match Settings::from_env() {
        Ok(settings) => run_on(
            settings.runtime_workers,
            &binary,
            run_service(def, settings),
        ),
        Err(e) => {
            eprintln!("{binary}: {e}");
            ExitCode::from(2)
        }
    }
}

/// The whole `main` of the lab's tools (`lab`, `lab-load`, `showdown`): a
/// runtime with a worker per CPU, then `main`. Not `#[tokio::main]`, which
/// reads `TOKIO_WORKER_THREADS`: that is the services' setting, which `lab`
/// passes on to them and `.env.example` leaves empty (tokio rejects empty).
pub fn tool_main(main: impl Future<Output = ExitCode>) -> ExitCode {
    let name = std::env::args().next().unwrap_or_default();
    run_on(crate::config::cpus(), &name, main)
}

/// Runs `main` on a runtime of `workers` threads (never tokio's own reading
/// of `TOKIO_WORKER_THREADS`).
fn run_on(workers: usize, who: &str, main: impl Future<Output = ExitCode>) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(main),
        Err(e) => {
            eprintln!("{who}: cannot start a runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_service(def: &ServiceDef, settings: Settings) -> ExitCode {
    telemetry::init(settings.log_format);
    let app = match Application::build(def, settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(
                service = def.spec.name,
                error = format!("{e:#}"),
                "cannot start"
            );
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(service = def.spec.name, mode = %MODE, port = app.port(), "listening");
    match app.run_until(shutdown_signal()).await {
        Ok(()) => {
            tracing::info!(service = def.spec.name, "stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(
                service = def.spec.name,
                error = format!("{e:#}"),
                "server failed"
            );
            ExitCode::FAILURE
        }
    }
}

/// The container health check: the image carries no curl, so the binary asks
/// its own `/health` on the address it would listen on. Silent when healthy,
/// one line on stderr (kept in the container's health log) when not; exit 1,
/// never 2, which Docker reserves.
async fn healthcheck(spec: &ServiceSpec) -> ExitCode {
    let checked = match Settings::from_env() {
        Ok(settings) => check_health(&health_url(spec, &settings)).await,
        Err(e) => Err(e.to_string()),
    };
    match checked {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("{}: unhealthy: {reason}", spec.binary());
            ExitCode::FAILURE
        }
    }
}

/// Where the service these settings describe answers `/health`: its port
/// (`PORT`, else the contract's port for this build's mode) on loopback when
/// it listens on every address, else on the address it is bound to.
pub fn health_url(spec: &ServiceSpec, settings: &Settings) -> String {
    let port = settings.port.unwrap_or(spec.port(MODE));
    let host = match settings.host {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/health", SocketAddr::new(host, port))
}

/// GETs `url` with a 2 s limit: `Ok` only for a 200 answer.
pub async fn check_health(url: &str) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        // A proxy from the environment must not stand between us and loopback.
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let response = client.get(url).send().await.map_err(|e| {
        if e.is_timeout() {
            format!("{url} did not answer within 2 s")
        } else {
            format!("{url} is unreachable")
        }
    })?;
    match response.status() {
        StatusCode::OK => Ok(()),
        status => Err(format!("{url} answered {status}")),
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.ok();
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received, finishing requests in flight");
}

/// The routes every service answers besides its own, documented in every
/// service's OpenAPI document ([`crate::openapi::document`]).
pub(crate) fn common_routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::default()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(render_metrics))
        .routes(routes!(openapi_json))
}

/// Adds what every service answers (`/health`, `/ready`, `/metrics`,
/// `/openapi.json`, JSON 404 and 405) and the layers every request passes through.
fn with_common_parts(def: &ServiceDef, routes: Router, ctx: &Ctx) -> Router {
    let name = ctx.spec.name;
    let document = OpenApiJson(Arc::from(crate::openapi::render(&(def.openapi)())));
    let (ops, _) = common_routes().split_for_parts();
    let ops = ops.layer(axum::Extension(document)).with_state(ctx.clone());
    routes
        .merge(ops)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(ctx.settings.body_limit))
        .layer(axum::Extension(crate::extract::BodyLimit(
            ctx.settings.body_limit,
        )))
        .layer(axum::middleware::from_fn(correlation::scope))
        .layer(axum::middleware::from_fn_with_state(name, metrics::track_http))
        .layer(axum::middleware::from_fn_with_state(
            Detached {
                service: name,
                tasks: ctx.tasks.clone(),
            },
            detach::run_to_end,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(move |req: &Request<Body>| {
                    let id = req
                        .headers()
                        .get(correlation::HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
                    tracing::info_span!(target: crate::phases::WORK, "request", service = name, method = %req.method(), route, path = %req.uri().path(), correlation_id = id)
                }))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(CatchPanicLayer::custom(|_| Error::Internal(anyhow::anyhow!("handler panicked")).into_response())),
        )
}

/// The body of `/health`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents a body built with `json!`
struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: String,
    service: String,
    /// `sync` or `async`.
    mode: String,
}

/// The body of `/ready`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents a body built with `json!`
struct Readiness {
    /// `ready` or `not ready`.
    status: String,
    service: String,
    /// `sync` or `async`.
    mode: String,
    checks: ReadinessChecks,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents a body built with `json!`
struct ReadinessChecks {
    /// `ok`, `unreachable` or `timed out`.
    database: String,
    /// `connected` or `unreachable`.
    #[cfg(feature = "async")]
    broker: String,
}

/// Alive: 200 while the process lives.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process is alive.", body = Health)))]
async fn health(State(ctx): State<Ctx>) -> Response {
    axum::Json(json!({ "status": "ok", "service": ctx.name(), "mode": MODE.as_str() }))
        .into_response()
}

/// 200 only when the database answers (and, in async mode, the broker is connected).
#[utoipa::path(get, path = "/ready", tag = "operations", responses(
    (status = 200, description = "The database answers (and, in async mode, the broker is connected).", body = Readiness),
    (status = 503, description = "A dependency the service needs is unreachable; `checks` says which.", body = Readiness),
))]
async fn ready(State(ctx): State<Ctx>) -> Response {
    let ping = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query("SELECT 1").execute(&ctx.db),
    )
    .await;
    let (status, database) = match ping {
        Ok(Ok(_)) => (StatusCode::OK, "ok"),
        Ok(Err(_)) => (StatusCode::SERVICE_UNAVAILABLE, "unreachable"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "timed out"),
    };
    #[allow(unused_mut)]
    let mut checks = json!({ "database": database });
    #[cfg(feature = "async")]
    let status = {
        let connected = ctx.bus.connected();
        checks["broker"] = if connected {
            "connected"
        } else {
            "unreachable"
        }
        .into();
        if connected {
            status
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    let body = json!({
        "status": if status.is_success() { "ready" } else { "not ready" },
        "service": ctx.name(),
        "mode": MODE.as_str(),
        "checks": checks,
    });
    (status, axum::Json(body)).into_response()
}

/// The service's Prometheus metrics (docs/metrics.md).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus text exposition format 0.0.4.", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8"),
))]
async fn render_metrics(State(ctx): State<Ctx>) -> Response {
    // The pool gauges are set from this pool and rendered at once: a test
    // process runs several stacks' services of the same name, and another
    // one's pool must not be rendered in between (one service per process
    // otherwise: never contended).
    static POOL_GAUGES: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let text = {
        let _one_at_a_time = POOL_GAUGES.lock().unwrap_or_else(|p| p.into_inner());
        let labels = [("service", ctx.name()), ("mode", MODE.as_str())];
        let open = ctx.db.size();
        let idle = u32::try_from(ctx.db.num_idle()).unwrap_or(u32::MAX);
        ::metrics::gauge!("db_pool_connections_open", &labels).set(f64::from(open));
        ::metrics::gauge!("db_pool_connections_in_use", &labels)
            .set(f64::from(open.saturating_sub(idle)));
        metrics::render(ctx.name())
    };
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

/// The service's OpenAPI document, rendered once when the service is built.
#[derive(Clone)]
struct OpenApiJson(Arc<str>);

/// This OpenAPI document (also committed as `docs/openapi/<service>.<mode>.json`).
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses(
    (status = 200, description = "The service's OpenAPI 3.1 document for this mode.",
        body = Object, content_type = "application/json"),
))]
async fn openapi_json(
    axum::Extension(OpenApiJson(document)): axum::Extension<OpenApiJson>,
) -> Response {
    ([("content-type", "application/json")], document.to_string()).into_response()
}

async fn not_found(uri: Uri) -> Error {
    Error::NotFound(format!("no route for {}", uri.path()))
}

async fn method_not_allowed() -> Error {
    Error::Rejected {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: "method not allowed on this path".into(),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::services::USER;

    #[test]
    fn the_health_url_is_the_contract_port_on_loopback() {
        let port = USER.port(MODE);
        assert_eq!(
            health_url(&USER, &Settings::for_test(&[])),
            format!("http://127.0.0.1:{port}/health")
        );
        assert_eq!(
            health_url(&USER, &Settings::for_test(&[("BIND_HOST", "0.0.0.0")])),
            format!("http://127.0.0.1:{port}/health")
        );
        assert_eq!(
            health_url(
                &USER,
                &Settings::for_test(&[("BIND_HOST", "::"), ("PORT", "9")])
            ),
            "http://[::1]:9/health"
        );
        assert_eq!(
            health_url(&USER, &Settings::for_test(&[("BIND_HOST", "10.1.2.3")])),
            format!("http://10.1.2.3:{port}/health")
        );
    }

    /// A one-shot HTTP server that answers every request with `status_line`.
    async fn answering(status_line: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0; 1024];
                let _ = stream.read(&mut request).await;
                let answer = format!(
                    "HTTP/1.1 {status_line}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        format!("http://127.0.0.1:{port}/health")
    }

    #[tokio::test]
    async fn only_a_200_answer_is_healthy() {
        assert_eq!(check_health(&answering("200 OK").await).await, Ok(()));
        let err = check_health(&answering("503 Service Unavailable").await)
            .await
            .unwrap_err();
        assert!(err.ends_with("answered 503 Service Unavailable"), "{err}");
    }

    #[tokio::test]
    async fn nobody_listening_is_unhealthy() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/health", listener.local_addr().expect("addr"));
        drop(listener);
        let err = check_health(&url).await.unwrap_err();
        assert!(err.ends_with("is unreachable"), "{err}");
    }

    #[tokio::test]
    async fn a_silent_server_is_unhealthy_after_two_seconds() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/health", listener.local_addr().expect("addr"));
        // Accepted by the kernel's backlog, never answered.
        let err = check_health(&url).await.unwrap_err();
        assert!(err.ends_with("did not answer within 2 s"), "{err}");
        drop(listener);
    }
}

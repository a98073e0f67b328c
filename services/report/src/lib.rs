//! Report service: scenario 4, CPU-bound work. A job is stored `queued`, its
//! SHA-256 work runs on a worker thread (`running`), and its hash is stored
//! (`completed`). Sync mode answers when the hash is there; async mode at once.

mod seam;
pub mod work;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use common::{
    Background, Ctx, Delivery, Error, ErrorBody, JsonBody, PathParam, Result, ServiceDef,
};
use garde::Validate;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub static SERVICE: ServiceDef = ServiceDef {
    spec: &common::services::REPORT,
    migrator: &MIGRATOR,
    routes,
    consumers: seam::CONSUMERS,
    openapi,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

fn routes(ctx: Ctx, background: &mut Background) -> Router {
    if ctx.settings.report_iterations.is_none() {
        // Calibrate at start, so the first report does not pay for it.
        background.spawn("calibration", async {
            let _ = tokio::task::spawn_blocking(work::rounds_per_second).await;
        });
    }
    let (router, _) = api().split_for_parts();
    router.with_state(ctx)
}

/// The service's routes, each registered with its documentation.
fn api() -> OpenApiRouter<Ctx> {
    OpenApiRouter::default()
        .routes(routes!(generate_report))
        .routes(routes!(get_job))
}

/// The service's OpenAPI document in this build's mode.
pub fn openapi() -> utoipa::openapi::OpenApi {
    common::openapi::document(&common::services::REPORT, api())
}

common::openapi_tests!(crate::SERVICE, crate::api());

#[derive(Debug, Deserialize, Validate, ToSchema)]
struct GenerateReport {
    /// 1 to 64 letters, digits, `_` or `-`.
    #[garde(length(min = 1, max = 64), pattern(r"^[A-Za-z0-9_-]+$"))]
    #[schema(
        example = "monthly",
        pattern = r"^[A-Za-z0-9_-]+$",
        min_length = 1,
        max_length = 64
    )]
    report_type: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Job {
    #[serde(rename = "job_id")]
    pub id: Uuid,
    pub report_type: String,
    /// `queued`, `running`, then `completed`.
    pub status: String,
    pub iterations: i64,
    pub report_hash: Option<String>,
    pub computation_time_seconds: Option<f64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, report_type, status, iterations, report_hash, computation_time_seconds, created_at, started_at, completed_at";

/// A report job as the service shows it.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body `Job::body` builds
struct JobView {
    #[serde(flatten)]
    job: Job,
    /// `/jobs/{job_id}`.
    status_url: String,
}

impl Job {
    fn body(&self) -> serde_json::Value {
        let mut body = serde_json::to_value(self).unwrap_or_default();
        body["status_url"] = json!(format!("/jobs/{}", self.id));
        body
    }
}

/// Scenario 4. Sync: 200 with `report_hash`, `iterations` and
/// `computation_time_seconds` after the work. Async: 202 with `job_id`.
#[cfg_attr(not(feature = "async"), utoipa::path(post, path = "/generate_report", tag = "report",
    request_body = GenerateReport,
    responses(
        (status = 200, description = "The report is computed (`status: \"completed\"`, `report_hash`).", body = JobView),
        (status = 422, description = "`report_type` is not 1 to 64 letters, digits, `_` or `-`.", body = ErrorBody),
    ),
))]
#[cfg_attr(feature = "async", utoipa::path(post, path = "/generate_report", tag = "report",
    request_body = GenerateReport,
    responses(
        (status = 202, description = "Queued (`status: \"queued\"`); a report worker computes it (`status_url` turns `running`, then `completed`).", body = JobView),
        (status = 422, description = "`report_type` is not 1 to 64 letters, digits, `_` or `-`.", body = ErrorBody),
    ),
))]
async fn generate_report(
    State(ctx): State<Ctx>,
    JsonBody(req): JsonBody<GenerateReport>,
) -> Result<Response> {
    req.validate()?;
    let (fixed, seconds) = (ctx.settings.report_iterations, ctx.settings.report_seconds);
    let iterations = ctx
        .workers
        .run(move || work::iterations(fixed, seconds))
        .await?;
    let iterations = i64::try_from(iterations)
        .map_err(|_| Error::Invalid("REPORT_ITERATIONS is too large".into()))?;
    // One statement that commits by itself; in async mode it also writes
    // the `report.requested` event about the job to the outbox.
    let send = common::events::sent(seam::EVENT.as_ref(), 4);
    let sql = format!(
        "WITH new AS (
             INSERT INTO jobs (id, report_type, status, iterations) VALUES ($1, $2, 'queued', $3)
             RETURNING {COLUMNS}
         ){send}
         SELECT * FROM new"
    );
    let query = sqlx::query_as(&sql)
        .bind(Uuid::new_v4())
        .bind(&req.report_type)
        .bind(iterations);
    let job: Job = common::events::bind_sent(query, seam::EVENT.as_ref())
        .fetch_one(&ctx.db)
        .await?;
    match seam::submit(&ctx, &job).await? {
        Delivery::Done(job) => Ok((StatusCode::OK, axum::Json(job.body())).into_response()),
        Delivery::Accepted => Ok((StatusCode::ACCEPTED, axum::Json(job.body())).into_response()),
    }
}

/// Runs a queued job: marks it running, does the work on a worker thread,
/// stores the hash. Both modes' inbound sides end here.
pub async fn run(ctx: &Ctx, job: &Job) -> Result<Job> {
    sqlx::query("UPDATE jobs SET status = 'running', started_at = now() WHERE id = $1")
        .bind(job.id)
        .execute(&ctx.db)
        .await?;
    let (report_type, iterations) = (job.report_type.clone(), job.iterations as u64);
    let (hash, seconds) = seam::hash(ctx, move || {
        let start = std::time::Instant::now();
        let hash = work::hash_chain(&report_type, iterations);
        (hash, start.elapsed().as_secs_f64())
    })
    .await?;
    let done = sqlx::query_as(&format!(
        "UPDATE jobs SET status = 'completed', report_hash = $2, computation_time_seconds = $3, completed_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(job.id)
    .bind(hash)
    .bind(seconds)
    .fetch_one(&ctx.db)
    .await?;
    Ok(done)
}

/// A report job: `queued`, `running`, then `completed` with its hash.
#[utoipa::path(get, path = "/jobs/{job_id}", tag = "report",
    params(("job_id" = Uuid, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The job.", body = JobView),
        (status = 404, description = "No job has this id.", body = ErrorBody),
    ),
)]
async fn get_job(
    State(ctx): State<Ctx>,
    PathParam(id): PathParam<Uuid>,
) -> Result<axum::Json<serde_json::Value>> {
    Ok(axum::Json(find(&ctx, id).await?.body()))
}

pub async fn find(ctx: &Ctx, id: Uuid) -> Result<Job> {
    sqlx::query_as::<_, Job>(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"))
        .bind(id)
        .fetch_optional(&ctx.db)
        .await?
        .ok_or_else(|| Error::not_found(format!("report job {id}")))
}

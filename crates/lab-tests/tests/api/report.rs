//! Scenario 4: CPU-bound report generation, in both modes: sync answers
//! with the finished job, async with the queued one; either way the job ends
//! completed with the hash of its fixed work.

use common::{MODE, Mode};
use lab_tests::Stack;
use loadgen::scenario::Scenario;
use serde_json::json;

use lab_tests::helpers::time;

#[tokio::test]
async fn a_report_ends_with_the_hash_of_its_fixed_work() {
    let stack = Stack::builder()
        .var("REPORT_ITERATIONS", "50000")
        .start()
        .await;

    let (status, answer) = stack
        .post(
            "report",
            "/generate_report",
            json!({"report_type": "monthly"}),
        )
        .await;

    assert_eq!(status, Scenario::Report.expected(MODE), "{answer}");
    assert!(answer["job_id"].is_string(), "{answer}");
    let job = stack.finished(Scenario::Report, &answer).await;
    if MODE == Mode::Sync {
        assert_eq!(answer, job, "the answer is the finished job");
    } else {
        assert_eq!(answer["status"], "queued");
    }
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["iterations"], 50000);
    assert_eq!(
        job["report_hash"],
        report::work::hash_chain("monthly", 50000)
    );
    assert!(job["computation_time_seconds"].as_f64().unwrap() > 0.0);
    assert!(time(&job["started_at"]) >= time(&job["created_at"]));
    assert!(time(&job["completed_at"]) >= time(&job["started_at"]));
    // Async: the job's statement wrote the one event the worker read.
    #[cfg(feature = "async")]
    {
        let id = answer["job_id"].as_str().unwrap();
        let (sent, accepted_at): (serde_json::Value, _) = lab_tests::helpers::sent_event(
            &stack,
            "report_service",
            "report.requested",
            "job_id",
            id,
        )
        .await;
        assert_eq!(sent, json!({"job_id": id}));
        assert_eq!(accepted_at, time(&job["created_at"]));
    }
}

#[tokio::test]
async fn without_a_fixed_count_the_work_is_calibrated_to_report_seconds() {
    let stack = Stack::builder()
        .var("REPORT_ITERATIONS", "")
        .var("REPORT_SECONDS", "0.05")
        .start()
        .await;

    let (status, answer) = stack
        .post(
            "report",
            "/generate_report",
            json!({"report_type": "weekly"}),
        )
        .await;

    assert_eq!(status, Scenario::Report.expected(MODE), "{answer}");
    let job = stack.finished(Scenario::Report, &answer).await;
    if MODE == Mode::Sync {
        assert_eq!(answer, job, "the answer is the finished job");
    }
    assert_eq!(job["status"], "completed", "{job}");
    let iterations = job["iterations"].as_u64().unwrap();
    assert!(iterations > 1000, "{job}");
    assert_eq!(
        job["report_hash"],
        report::work::hash_chain("weekly", iterations)
    );
}

#[tokio::test]
async fn bad_report_types_are_422_and_create_no_job() {
    let stack = Stack::start().await;
    for body in [
        json!({"report_type": ""}),
        json!({"report_type": "../etc"}),
        json!({"report_type": 7}),
        json!({}),
    ] {
        let (status, answer) = stack.post("report", "/generate_report", body.clone()).await;
        assert_eq!(status, 422, "{body} -> {answer}");
    }
    let mut db = stack.db().await;
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM report_service.jobs")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(jobs, 0);
    let (status, _) = stack
        .get("report", &format!("/jobs/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(status, 404);
}

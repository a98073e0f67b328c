//! Scenario 4: CPU-bound report generation.

use lab_tests::Stack;
use serde_json::json;

// Sync answers; the async counterpart is in `async_scenarios`.
#[cfg(not(feature = "async"))]
#[tokio::test]
async fn a_report_answers_with_the_hash_of_its_fixed_work() {
    let stack = Stack::builder()
        .var("REPORT_ITERATIONS", "50000")
        .start()
        .await;

    let (status, report) = stack
        .post(
            "report",
            "/generate_report",
            json!({"report_type": "monthly"}),
        )
        .await;

    assert_eq!(status, 200, "{report}");
    assert_eq!(report["iterations"], 50000);
    assert_eq!(
        report["report_hash"],
        report::work::hash_chain("monthly", 50000)
    );
    assert!(report["computation_time_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(report["status"], "completed");
    let (status, job) = stack
        .get(
            "report",
            &format!("/jobs/{}", report["job_id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(job["status"], "completed");
    assert_eq!(job["report_hash"], report["report_hash"]);
    assert!(job["started_at"].is_string() && job["completed_at"].is_string());
}

// Sync answers; the async counterpart is in `async_scenarios`.
#[cfg(not(feature = "async"))]
#[tokio::test]
async fn without_a_fixed_count_the_work_is_calibrated_to_report_seconds() {
    let stack = Stack::builder()
        .var("REPORT_ITERATIONS", "")
        .var("REPORT_SECONDS", "0.05")
        .start()
        .await;

    let (status, report) = stack
        .post(
            "report",
            "/generate_report",
            json!({"report_type": "weekly"}),
        )
        .await;

    assert_eq!(status, 200, "{report}");
    let iterations = report["iterations"].as_u64().unwrap();
    assert!(iterations > 1000, "{report}");
    assert_eq!(
        report["report_hash"],
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

//! One race: the same requests sent to both stacks at the same instant with
//! the same concurrency (every request of a lane in flight at once), each
//! answer timed here, each accepted async operation followed to the stack's
//! own finished time, then every accepted operation read back from the stack.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use loadgen::scenario::{ORDER_PRODUCT, Scenario};
use serde::Serialize;
use serde_json::{Value, json};

use crate::Shared;
use crate::lanes::Lane;
use crate::summary::{Row, Summary, summarize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Sending,
    /// Async work accepted and not finished yet: followed until it is.
    Following,
    /// Reading every accepted operation back from the stacks.
    Reconciling,
    Done,
}

/// One check against a stack's own records after the race.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub ok: bool,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LaneRun {
    pub mode: &'static str,
    pub running: bool,
    pub expected: u16,
    /// Async scenarios whose operations have a status to follow.
    pub followed: bool,
    pub rows: Vec<Row>,
    pub summary: Summary,
    /// Operations accepted but not found in the stack's records.
    pub lost: Option<usize>,
    pub checks: Vec<Check>,
    /// The database connections of the services on the answer's path,
    /// before and after the sends.
    pub pools: Vec<Pool>,
}

/// A service's open database connections (`db_pool_connections_open`)
/// before and after the race's sends; `None` where `/metrics` did not answer.
#[derive(Debug, Clone, Serialize)]
pub struct Pool {
    pub service: &'static str,
    pub before: Option<u32>,
    pub after: Option<u32>,
}

/// Gauges sampled during the race, for the load-levelling chart.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub t: f64,
    pub sync_busy: Option<f64>,
    pub sync_waiting: Option<f64>,
    /// Messages waiting in the scenario's queues (ready).
    pub async_depth: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Race {
    pub id: u64,
    pub scenario: usize,
    pub count: usize,
    pub state: State,
    pub started_at: DateTime<Utc>,
    pub lanes: Vec<LaneRun>,
    pub timeline: Vec<Sample>,
    /// Said on the page (e.g. the stock raised to fit the race).
    pub notes: Vec<String>,
}

impl Race {
    pub fn new(id: u64, scenario: Scenario, count: usize, running: [bool; 2]) -> Race {
        let lanes = [common::Mode::Sync, common::Mode::Async]
            .into_iter()
            .zip(running)
            .map(|(mode, running)| LaneRun {
                mode: mode.as_str(),
                running,
                expected: scenario.expected(mode),
                followed: scenario.followed(mode),
                rows: if running {
                    vec![Row::default(); count]
                } else {
                    Vec::new()
                },
                summary: Summary::default(),
                lost: None,
                checks: Vec::new(),
                pools: Vec::new(),
            })
            .collect();
        Race {
            id,
            scenario: scenario.number(),
            count,
            state: State::Sending,
            started_at: Utc::now(),
            lanes,
            timeline: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn active(&self) -> bool {
        self.state != State::Done
    }

    fn refresh(&mut self) {
        for lane in &mut self.lanes {
            lane.summary = summarize(&lane.rows, lane.expected);
        }
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Milliseconds from the race's start to a time the stack reported.
fn ms_after(start: DateTime<Utc>, at: DateTime<Utc>) -> f64 {
    (at - start).num_microseconds().unwrap_or(0) as f64 / 1000.0
}

/// The final state a status body reports.
fn outcome(body: &Value) -> Option<String> {
    let detail = &body["detail"];
    [
        &body["email_status"],
        &body["status"],
        &detail["status"],
        &body["payment"]["status"],
    ]
    .into_iter()
    .find_map(|v| v.as_str().map(str::to_owned))
}

/// Sends, follows, reconciles; the race in `shared` is updated as it goes.
pub async fn run(shared: Arc<Shared>, scenario: Scenario) {
    let (id, count) = shared.with_race(|race| (race.id, race.count));
    let running: Vec<bool> = shared.with_race(|r| r.lanes.iter().map(|l| l.running).collect());
    let before = join_all(
        shared
            .lanes
            .iter()
            .zip(&running)
            .map(|(lane, running)| prepare(&shared, lane, *running, scenario, count)),
    )
    .await;
    // Every lane's pools on the answer's path, now.
    let all_pools = || {
        join_all(
            shared
                .lanes
                .iter()
                .zip(&running)
                .map(|(l, r)| pools(l, *r, scenario)),
        )
    };
    let pools_before = all_pools().await;
    let run_id = format!(
        "race{id}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let start = Instant::now();
    let started_at = Utc::now();
    shared.with_race(|race| race.started_at = started_at);
    shared.set_clock(start);
    let mut sends = Vec::new();
    for i in 0..count {
        for (lane_index, lane) in shared.lanes.iter().enumerate() {
            if running[lane_index] {
                sends.push(send(&shared, lane_index, lane, scenario, &run_id, i, start));
            }
        }
    }
    join_all(sends).await;
    let pools_after = all_pools().await;
    shared.with_race(|race| note_cold_pools(race, pools_before, pools_after));
    let followed = shared.with_race(|race| race.lanes.iter().any(|l| l.running && l.followed));
    if followed {
        shared.with_race(|race| race.state = State::Following);
        follow(&shared, scenario, started_at).await;
    }
    shared.with_race(|race| race.state = State::Reconciling);
    for (lane_index, lane) in shared.lanes.iter().enumerate() {
        if running[lane_index] {
            reconcile(&shared, lane_index, lane, scenario, &before[lane_index]).await;
        }
    }
    shared.with_race(|race| {
        race.state = State::Done;
        race.refresh();
    });
    shared.publish_race();
}

/// Each pooled service's open database connections in a lane, now.
async fn pools(lane: &Lane, running: bool, scenario: Scenario) -> Vec<(&'static str, Option<u32>)> {
    if !running {
        return Vec::new();
    }
    let services = crate::catalog::answer_path(scenario, lane.mode);
    let open = join_all(services.iter().map(|s| lane.pool_open(s))).await;
    services.iter().copied().zip(open).collect()
}

/// Records each lane's pools, and says on the page where one grew during
/// the sends: some answers may include opening a connection (a cold start,
/// or a pool that closed its idle ones), not only the mode's cost. (The
/// pool also serves the service's relay and consumers, hence "may".)
fn note_cold_pools(
    race: &mut Race,
    before: Vec<Vec<(&'static str, Option<u32>)>>,
    after: Vec<Vec<(&'static str, Option<u32>)>>,
) {
    for ((lane, before), after) in race.lanes.iter_mut().zip(before).zip(after) {
        lane.pools = before
            .into_iter()
            .zip(after)
            .map(|((service, before), (_, after))| Pool {
                service,
                before,
                after,
            })
            .collect();
        let opened: Vec<String> = lane
            .pools
            .iter()
            .filter_map(|p| match (p.before, p.after) {
                (Some(b), Some(a)) if a > b => Some(format!("{} {b} → {a}", p.service)),
                _ => None,
            })
            .collect();
        if !opened.is_empty() {
            let idle = common::db::POOL_IDLE_TIMEOUT.as_secs();
            race.notes.push(format!(
                "{}: database pools on the answer's path grew during the sends ({}); a pool opens connections as requests need them and closes them after {idle}-{} s idle, so some answers may include opening one; race again to see them warm",
                lane.mode,
                opened.join(", "),
                2 * idle
            ));
        }
    }
}

/// What a lane held before the race, to compare with after it.
async fn prepare(
    shared: &Shared,
    lane: &Lane,
    running: bool,
    scenario: Scenario,
    count: usize,
) -> Value {
    if !running {
        return Value::Null;
    }
    match scenario {
        Scenario::Order => {
            let mut stock = lane
                .get_json("inventory", &format!("/stock/{ORDER_PRODUCT}"))
                .await
                .map(|(_, s)| s)
                .unwrap_or_default();
            let available = stock["available"].as_u64().unwrap_or(0) as usize;
            let reserved = stock["reserved"].as_u64().unwrap_or(0);
            // Enough stock for every order, so that the saga (not a
            // refusal for lack of stock) is what the race shows.
            if available < count && reserved == 0 {
                let raised = lane
                    .quick
                    .put(format!("{}/stock/{ORDER_PRODUCT}", lane.base("inventory")))
                    .json(&json!({ "available": count }))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if raised {
                    stock["available"] = count.into();
                    shared.with_race(|race| {
                        race.notes.push(format!(
                            "{}: product {ORDER_PRODUCT}'s stock was {available}, raised to {count} so that every order can be reserved",
                            lane.mode
                        ));
                    });
                }
            }
            stock
        }
        Scenario::Click => json!({ "stored": stored_clicks(lane).await }),
        Scenario::Fanout => json!({ "logged": logged_updates(lane).await }),
        _ => Value::Null,
    }
}

async fn stored_clicks(lane: &Lane) -> Option<u64> {
    let (_, stats) = lane.get_json("analytics", "/clicks/stats").await?;
    stats["total"].as_u64()
}

/// Update log entries of the products a fan-out race touches (1, 2, 3).
async fn logged_updates(lane: &Lane) -> Option<u64> {
    let mut total = 0;
    for product in 1..=3 {
        let (_, logged) = lane
            .get_json(
                "analytics",
                &format!("/product_updates?product_id={product}"),
            )
            .await?;
        total += logged.as_array()?.len() as u64;
    }
    Some(total)
}

async fn send(
    shared: &Shared,
    lane_index: usize,
    lane: &Lane,
    scenario: Scenario,
    run_id: &str,
    i: usize,
    start: Instant,
) {
    let (method, path, body) = scenario.request(run_id, i as u64);
    let url = format!("{}{path}", lane.base(scenario.service()));
    let sent = ms(start);
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let answer = lane
        .racer
        .send(method.as_str(), &url, &body)
        .await
        .map_err(|failure| failure.describe().to_owned());
    let answered = ms(start);
    let expected = scenario.expected(lane.mode);
    let followed = scenario.followed(lane.mode);
    shared.update_row(lane_index, i, |row| {
        row.sent = sent;
        match answer {
            Ok(answer) => {
                let (status, body) = (
                    answer.status,
                    serde_json::from_slice(&answer.body).unwrap_or_default(),
                );
                row.answered = Some(answered);
                row.handled = answer.handled_ms;
                row.status = Some(status);
                row.resource = scenario.resource(&body);
                row.outcome = outcome(&body);
                // Sync work is over when its answer is; so is a refusal.
                if status == expected && !followed {
                    row.finished = Some(answered);
                }
            }
            Err(e) => row.error = Some(e),
        }
    });
}

/// Follows accepted async operations through their status endpoints: the
/// oldest few and a rotating few others each round, so a backlog of a
/// thousand costs a few hundred reads a second, not thousands.
async fn follow(shared: &Shared, scenario: Scenario, started_at: DateTime<Utc>) {
    let deadline = Instant::now() + shared.follow_limit;
    let mut cursor = 0;
    loop {
        let pending: Vec<(usize, usize, String)> = shared.with_race(|race| {
            race.lanes
                .iter()
                .enumerate()
                .filter(|(_, lane)| lane.running && lane.followed)
                .flat_map(|(l, lane)| {
                    lane.rows.iter().enumerate().filter_map(move |(i, row)| {
                        (row.status == Some(lane.expected) && row.finished.is_none())
                            .then(|| Some((l, i, row.resource.clone()?)))
                            .flatten()
                    })
                })
                .collect()
        });
        if pending.is_empty()
            || Instant::now() > deadline
            || shared.take_stop_following()
            || shared.shutdown.is_cancelled()
        {
            return;
        }
        let mut picked: BTreeSet<usize> = (0..pending.len().min(16)).collect();
        for k in 0..16 {
            picked.insert((cursor + k) % pending.len());
        }
        cursor = (cursor + 16) % pending.len().max(1);
        let reads = picked.into_iter().map(|k| {
            let (lane_index, i, resource) = &pending[k];
            let lane = &shared.lanes[*lane_index];
            async move {
                let (status, body) = lane.get_json(scenario.service(), resource).await?;
                let (_, finished) = scenario.finished(&body).filter(|_| status == 200)?;
                Some((*lane_index, *i, finished, outcome(&body)))
            }
        });
        for (lane_index, i, finished, outcome) in join_all(reads).await.into_iter().flatten() {
            shared.update_row(lane_index, i, |row| {
                row.finished = Some(ms_after(started_at, finished));
                row.outcome = outcome;
            });
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Reads every accepted operation back from the stack, and checks what the
/// scenario must leave behind (stock exact, every click stored, ...).
async fn reconcile(
    shared: &Shared,
    lane_index: usize,
    lane: &Lane,
    scenario: Scenario,
    before: &Value,
) {
    let (accepted, answered_ok): (Vec<String>, usize) = shared.with_race(|race| {
        let run = &race.lanes[lane_index];
        let accepted = run
            .rows
            .iter()
            .filter(|r| r.status == Some(run.expected))
            .filter_map(|r| r.resource.clone())
            .collect();
        let ok = run
            .rows
            .iter()
            .filter(|r| r.status == Some(run.expected))
            .count();
        (accepted, ok)
    });
    let mut checks = Vec::new();
    let lost;
    match scenario {
        Scenario::Register | Scenario::Payment | Scenario::Report | Scenario::Order => {
            let mut missing = 0;
            for chunk in accepted.chunks(16) {
                let reads = chunk
                    .iter()
                    .map(|path| lane.get_json(scenario.service(), path));
                missing += join_all(reads)
                    .await
                    .into_iter()
                    .filter(|read| !matches!(read, Some((200, _))))
                    .count();
            }
            missing += answered_ok - accepted.len();
            lost = Some(missing);
            checks.push(Check {
                ok: missing == 0,
                text: lost_text(missing, answered_ok),
            });
        }
        Scenario::Click | Scenario::Fanout => {
            let (what, key) = if scenario == Scenario::Click {
                ("clicks stored", "stored")
            } else {
                ("updates logged by analytics", "logged")
            };
            let from = before[key].as_u64().unwrap_or(0);
            // Async effects land after the answer: wait for them (10 s at most).
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut now;
            loop {
                now = if scenario == Scenario::Click {
                    stored_clicks(lane).await
                } else {
                    logged_updates(lane).await
                }
                .unwrap_or(from);
                if now - from >= answered_ok as u64 || Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let stored = now.saturating_sub(from) as usize;
            let missing = answered_ok.saturating_sub(stored);
            lost = Some(missing);
            checks.push(Check {
                ok: stored == answered_ok,
                text: format!("{what}: {stored} for {answered_ok} answered (lost: {missing})"),
            });
        }
    }
    if scenario == Scenario::Order {
        checks.push(stock_check(shared, lane_index, lane, before).await);
    }
    shared.with_race(|race| {
        let run = &mut race.lanes[lane_index];
        run.lost = lost;
        run.checks = checks;
    });
}

/// The read-back check's line: how many accepted operations the stack lacks.
fn lost_text(missing: usize, accepted: usize) -> String {
    match accepted {
        0 => format!("lost: {missing} (no operation was accepted, so none to read back)"),
        1 => format!("lost: {missing} (the one accepted operation read back from the stack)"),
        n => format!(
            "lost: {missing} (each of the {n} accepted operations read back from the stack)"
        ),
    }
}

/// After a saga race: every unit reserved by a closed order is back, and
/// confirmed orders took exactly theirs.
async fn stock_check(shared: &Shared, lane_index: usize, lane: &Lane, before: &Value) -> Check {
    let (confirmed, pending) = shared.with_race(|race| {
        let run = &race.lanes[lane_index];
        let confirmed = run
            .rows
            .iter()
            .filter(|r| r.outcome.as_deref() == Some("confirmed"))
            .count() as i64;
        let pending = run
            .rows
            .iter()
            .filter(|r| r.status == Some(run.expected) && r.finished.is_none())
            .count();
        (confirmed, pending)
    });
    let after = lane
        .get_json("inventory", &format!("/stock/{ORDER_PRODUCT}"))
        .await
        .map(|(_, s)| s)
        .unwrap_or_default();
    let (Some(a0), Some(r0), Some(a1), Some(r1)) = (
        before["available"].as_i64(),
        before["reserved"].as_i64(),
        after["available"].as_i64(),
        after["reserved"].as_i64(),
    ) else {
        return Check {
            ok: false,
            text: "stock: could not be read".into(),
        };
    };
    if pending > 0 {
        return Check {
            ok: true,
            text: format!(
                "stock: {r1} units reserved while {pending} orders are pending (not final yet)"
            ),
        };
    }
    let ok = a1 == a0 - confirmed && r1 == r0;
    Check {
        ok,
        text: format!(
            "stock {}: {a1} available, {r1} reserved (before: {a0}, {r0}; {confirmed} confirmed)",
            if ok { "exact" } else { "WRONG" }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::lost_text;

    #[test]
    fn the_lost_line_reads_right_for_none_one_and_many() {
        assert_eq!(
            lost_text(0, 0),
            "lost: 0 (no operation was accepted, so none to read back)"
        );
        assert_eq!(
            lost_text(0, 1),
            "lost: 0 (the one accepted operation read back from the stack)"
        );
        assert_eq!(
            lost_text(2, 40),
            "lost: 2 (each of the 40 accepted operations read back from the stack)"
        );
    }
}

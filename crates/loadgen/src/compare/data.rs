//! The report's data (`data.json`): every run's raw figures and what the
//! tables and plots derive from them. Nothing a report shows is typed in:
//! each figure is computed here from what a run measured.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::machine::Machine;
use super::procs::Used;
use crate::stats::histogram;

/// Bumped when `data.json` changes shape.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Data {
    pub format: u32,
    /// RFC 3339, when the report was started.
    pub created: String,
    /// `quick` or `full`.
    pub profile: String,
    pub machine: Machine,
    pub settings: Settings,
    pub runs: Vec<RunData>,
    /// Components restarted under load (`--faults`), each mode in turn.
    #[serde(default)]
    pub faults: Vec<crate::fault::FaultRun>,
}

/// Every setting both modes ran with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub repetitions: usize,
    pub clients: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub drain_timeout_s: f64,
    /// The open-loop rates are these shares of the async consumers' capacity
    /// (measured in the first repetition's closed loop).
    pub below_share: f64,
    pub above_share: f64,
    /// Open loop: the driver's requests in flight at most.
    pub max_in_flight: usize,
    /// Environment given to both stacks (delays, pools, workers); every other
    /// setting is the services' default (docs/configuration.md).
    pub stack_env: BTreeMap<String, String>,
    pub scenarios: Vec<String>,
    pub loads: Vec<LoadKind>,
}

/// How a run loads the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadKind {
    /// N clients back to back: what each mode sustains.
    Closed,
    /// Requests at a fixed rate below the async consumers' capacity.
    OpenBelow,
    /// ... and above it: where a backlog builds.
    OpenAbove,
}

impl LoadKind {
    pub fn title(self) -> &'static str {
        match self {
            LoadKind::Closed => "closed loop",
            LoadKind::OpenBelow => "open loop below capacity",
            LoadKind::OpenAbove => "open loop above capacity",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            LoadKind::Closed => "closed",
            LoadKind::OpenBelow => "open-below",
            LoadKind::OpenAbove => "open-above",
        }
    }
}

/// A latency distribution: its percentiles in milliseconds and the
/// histogram they came from (µs), so repetitions can be merged. The histogram
/// is in HdrHistogram's compressed base64 form (V2 + deflate), which its
/// other tools (HistogramLogAnalyzer, the Java and Go ports) read too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub histogram: String,
}

fn encode(h: &Histogram<u64>) -> String {
    use base64::Engine;
    use hdrhistogram::serialization::Serializer;
    let mut bytes = Vec::new();
    hdrhistogram::serialization::V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("a histogram serializes into memory");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn decode(text: &str) -> Option<Histogram<u64>> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    let read: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut std::io::Cursor::new(bytes))
        .ok()?;
    // Into the report's bounds, so any two merge. Each count is recorded at
    // the top of the bucket it was read from, the value a quantile of `read`
    // quotes; `Histogram::add` would record a histogram of other precision
    // (a report made before 4 digits) at its buckets' bottoms instead.
    let mut h = histogram();
    for v in read.iter_recorded() {
        h.record_n(v.value_iterated_to(), v.count_at_value()).ok()?;
    }
    Some(h)
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

impl Dist {
    pub fn of(h: &Histogram<u64>) -> Dist {
        let q = |q| ms(h.value_at_quantile(q));
        Dist {
            count: h.len(),
            p50_ms: q(0.50),
            p90_ms: q(0.90),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: if h.is_empty() { 0.0 } else { ms(h.max()) },
            histogram: encode(h),
        }
    }

    /// The histogram; an empty one if `data.json` was edited into nonsense.
    pub fn to_histogram(&self) -> Histogram<u64> {
        decode(&self.histogram).unwrap_or_else(histogram)
    }

    /// One distribution of all of `dists`' samples.
    pub fn merge<'a>(dists: impl IntoIterator<Item = &'a Dist>) -> Dist {
        let mut h = histogram();
        for d in dists {
            h.add(d.to_histogram()).expect("same bounds");
        }
        Dist::of(&h)
    }

    /// (percentile 0..1, ms) along the distribution, for the percentile plot:
    /// `steps` points per halving of what is left above, up to 99.99 %.
    pub fn by_percentile(&self) -> Vec<(f64, f64)> {
        let h = self.to_histogram();
        if h.is_empty() {
            return Vec::new();
        }
        let mut points = Vec::new();
        let mut q: f64 = 0.0;
        while q < 0.9999 - 1e-9 {
            points.push((q, ms(h.value_at_quantile(q))));
            // Ten points per decade of "nines".
            q = 1.0 - (1.0 - q) * 10f64.powf(-0.1);
        }
        points.push((0.9999, ms(h.value_at_quantile(0.9999))));
        points
    }

    pub fn get(&self, p: Percentile) -> f64 {
        match p {
            Percentile::P50 => self.p50_ms,
            Percentile::P90 => self.p90_ms,
            Percentile::P99 => self.p99_ms,
            Percentile::P999 => self.p999_ms,
            Percentile::Max => self.max_ms,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Percentile {
    P50,
    P90,
    P99,
    P999,
    Max,
}

pub const PERCENTILES: [Percentile; 5] = [
    Percentile::P50,
    Percentile::P90,
    Percentile::P99,
    Percentile::P999,
    Percentile::Max,
];

impl Percentile {
    pub fn label(self) -> &'static str {
        match self {
            Percentile::P50 => "p50",
            Percentile::P90 => "p90",
            Percentile::P99 => "p99",
            Percentile::P999 => "p99.9",
            Percentile::Max => "max",
        }
    }
}

/// What the stack's own records said after a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Records {
    pub started: i64,
    pub unfinished: i64,
    pub wrong: Vec<String>,
    /// Set when the records could not be read.
    pub error: Option<String>,
}

/// One run: one scenario, one mode, one load, one repetition, on a fresh stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunData {
    pub scenario: String,
    pub number: usize,
    pub mode: String,
    pub load: LoadKind,
    pub repetition: usize,
    pub clients: Option<usize>,
    pub rate: Option<f64>,
    /// The contract's status for the scenario's normal answer in this mode.
    pub expected_status: u16,
    pub statuses: BTreeMap<u16, u64>,
    pub errors: BTreeMap<String, u64>,
    /// Answered, measured from when each request was due (open loop) or sent.
    pub answered: Dist,
    /// Open loop: measured from when each request actually left.
    pub answered_raw: Dist,
    /// Sent → finished (async, operations followed to their end); sync
    /// operations finish when they are answered.
    pub finished: Option<Dist>,
    /// Answers per second in the measured window, and per second of it.
    pub throughput: f64,
    pub per_second: Vec<u64>,
    /// Async, followed: operations accepted (warm-up included), seen
    /// finished, left unfinished when the drain timed out.
    pub accepted: u64,
    pub finished_count: u64,
    pub left: u64,
    pub drained_after_s: Option<f64>,
    /// Operations finished per second: followed ones (async) from the load's
    /// start to the last finish, or since the load ended when they did not
    /// all finish; fan-out and clicks, from the stack's records, from the
    /// load's start to the last effect recorded. The consumers' pace.
    pub finish_rate: Option<f64>,
    /// The order saga: its slowest step's pace in the stack's records
    /// ([`crate::reconcile::Verdict::step_pace`], payments settled per second).
    #[serde(default)]
    pub step_pace: Option<f64>,
    /// (s since the load began, accepted and not finished) (async, followed).
    pub backlog: Vec<(f64, u64)>,
    /// (s, messages ready in the stack's queues) (async).
    pub queued: Vec<(f64, u64)>,
    /// The same per queue (async).
    pub queues: BTreeMap<String, Vec<(f64, u64)>>,
    /// (s, requests sent and not answered).
    pub in_flight: Vec<(f64, i64)>,
    pub window_start_s: f64,
    pub load_end_s: f64,
    pub records: Option<Records>,
    /// Operations the CPU figures are divided by: finished (async, followed)
    /// or answered as expected (the rest, whose effects the records check).
    pub operations: u64,
    pub resources: Vec<Used>,
    pub notes: Vec<String>,
}

/// What [`RunData::capacity`] is, as the report and the README say it.
pub const CAPACITY_IS: &str = "measured in the first closed loop: the rate its work finished (for the order, its payments settled per second; where neither is known, its slowest queue's drain, else its answers per second)";

impl RunData {
    pub fn expected_answers(&self) -> u64 {
        self.statuses
            .get(&self.expected_status)
            .copied()
            .unwrap_or(0)
    }

    /// Answers other than the expected one, and errors.
    pub fn unexpected(&self) -> u64 {
        self.answered.count - self.expected_answers()
    }

    /// What makes a run's figures not the whole truth, never averaged away.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.unexpected() > 0 {
            let what: Vec<String> = self
                .statuses
                .iter()
                .filter(|(s, _)| **s != self.expected_status)
                .map(|(s, n)| format!("{n} × {s}"))
                .chain(self.errors.iter().map(|(e, n)| format!("{n} × {e}")))
                .collect();
            problems.push(format!("unexpected answers: {}", what.join(", ")));
        }
        if self.left > 0 {
            problems.push(format!(
                "{} of {} accepted operations unfinished at the drain timeout",
                self.left, self.accepted
            ));
        }
        match &self.records {
            None => problems.push("the stack's records were not read".into()),
            Some(Records { error: Some(e), .. }) => {
                problems.push(format!("the stack's records could not be read: {e}"));
            }
            Some(r) => {
                if r.unfinished > 0 {
                    problems.push(format!(
                        "{} operations not final in the stack's records after the drain (still running, or lost; {} recorded)",
                        r.unfinished, r.started
                    ));
                }
                problems.extend(r.wrong.iter().cloned());
            }
        }
        problems
    }

    /// Sent → finished; sync work is finished when answered.
    pub fn finished_dist(&self) -> Option<&Dist> {
        match self.mode.as_str() {
            "sync" => Some(&self.answered),
            _ => self.finished.as_ref(),
        }
    }

    /// The async consumers' pace, messages per second, from how fast the
    /// slowest queue that held a backlog when the load ended drained after it
    /// (`None` when no queue held one: the consumers kept up). For the
    /// scenarios whose operations are not followed one by one.
    pub fn queue_drain_rate(&self) -> Option<f64> {
        const BACKLOG: u64 = 50;
        self.queues
            .values()
            .filter_map(|series| {
                let after: Vec<&(f64, u64)> = series
                    .iter()
                    .filter(|(t, _)| *t >= self.load_end_s)
                    .collect();
                let &&(t0, d0) = after.first()?;
                if d0 < BACKLOG {
                    return None;
                }
                let &&(t1, d1) = after
                    .iter()
                    .find(|(_, d)| *d == 0)
                    .or_else(|| after.last())?;
                (t1 > t0 + 0.5 && d1 < d0).then(|| (d0 - d1) as f64 / (t1 - t0))
            })
            .min_by(f64::total_cmp)
    }

    /// The async consumers' capacity in operations per second, as the open
    /// loops' rates are set from it: the saga's slowest step's pace in the
    /// stack's records (its orders, held behind shared queues after a burst,
    /// finish late and together), else the finishing rate of the operations
    /// followed or of the effects recorded, else the slowest queue's drain,
    /// else (they kept up) the answers per second.
    pub fn capacity(&self) -> f64 {
        self.step_pace
            .or(self.finish_rate)
            .or_else(|| self.queue_drain_rate())
            .unwrap_or(self.throughput)
    }

    pub fn cpu_per_1000(&self, group: &str) -> Option<f64> {
        let used = self.resources.iter().find(|u| u.name == group)?;
        (self.operations > 0).then(|| used.cpu_seconds * 1000.0 / self.operations as f64)
    }
}

/// min, median, max.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            min: v[0],
            median,
            max: v[n - 1],
        })
    }

    /// Whether two spreads share no value and their medians differ by more
    /// than `floor` (a share): a change beyond the run-to-run noise.
    pub fn differs(&self, other: &Spread, floor: f64) -> bool {
        let apart = self.max < other.min || other.max < self.min;
        let change = (other.median - self.median).abs() / self.median.abs().max(f64::EPSILON);
        apart && change > floor
    }
}

/// The runs of one scenario, load and mode, across repetitions.
pub struct Group<'a> {
    pub runs: Vec<&'a RunData>,
}

impl<'a> Group<'a> {
    pub fn of(data: &'a Data, scenario: &str, load: LoadKind, mode: &str) -> Group<'a> {
        Group {
            runs: data
                .runs
                .iter()
                .filter(|r| r.scenario == scenario && r.load == load && r.mode == mode)
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    pub fn spread(&self, f: impl Fn(&RunData) -> Option<f64>) -> Option<Spread> {
        Spread::of(self.runs.iter().filter_map(|r| f(r)))
    }

    pub fn answered(&self) -> Dist {
        Dist::merge(self.runs.iter().map(|r| &r.answered))
    }

    pub fn answered_raw(&self) -> Dist {
        Dist::merge(self.runs.iter().map(|r| &r.answered_raw))
    }

    /// `None` when no run followed its operations to their end.
    pub fn finished(&self) -> Option<Dist> {
        let dists: Vec<&Dist> = self.runs.iter().filter_map(|r| r.finished_dist()).collect();
        (!dists.is_empty()).then(|| Dist::merge(dists))
    }

    pub fn problems(&self) -> Vec<String> {
        self.runs
            .iter()
            .flat_map(|r| {
                r.problems()
                    .into_iter()
                    .map(move |p| format!("repetition {}: {p}", r.repetition + 1))
            })
            .collect()
    }
}

/// `a / b` as "N× sooner/faster" wording helpers use; `None` if either is 0.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite()).then(|| a / b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(values_ms: &[u64]) -> Dist {
        let mut h = histogram();
        for v in values_ms {
            h.record(v * 1000).expect("in range");
        }
        Dist::of(&h)
    }

    #[test]
    fn a_histogram_of_an_older_precision_quotes_what_it_did() {
        let mut three_digits = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for micros in [503_000, 503_010, 2_005_400] {
            three_digits.record(micros).unwrap();
        }
        let read = decode(&encode(&three_digits)).expect("decodes");
        for q in [0.5, 0.99] {
            assert_eq!(
                read.value_at_quantile(q),
                three_digits.value_at_quantile(q),
                "quantile {q}"
            );
        }
    }

    #[test]
    fn repetitions_merge_into_one_distribution_of_all_their_samples() {
        let a = dist(&[1, 2, 3, 4]);
        let b = dist(&[100, 200, 300, 400]);
        let merged = Dist::merge([&a, &b]);
        assert_eq!(merged.count, 8);
        assert!((merged.max_ms - 400.0).abs() < 0.5, "{}", merged.max_ms);
        // Half the samples are ≤ 4 ms: the median of all of them, not the
        // mean of the two medians (2 and 200 ms).
        assert!((merged.p50_ms - 4.0).abs() < 0.01, "{}", merged.p50_ms);
        assert_eq!(Dist::merge([&merged]), merged, "merging is lossless");
    }

    #[test]
    fn a_spread_is_min_median_max_and_a_change_beyond_it_is_flagged() {
        let s = Spread::of([3.0, 1.0, 2.0]).expect("values");
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        let even = Spread::of([4.0, 1.0, 2.0, 3.0]).expect("values");
        assert!((even.median - 2.5).abs() < 1e-12);
        assert_eq!(Spread::of([f64::NAN]), None);

        let before = Spread::of([100.0, 104.0, 102.0]).expect("values");
        let overlapping = Spread::of([103.0, 110.0, 108.0]).expect("values");
        let slower = Spread::of([130.0, 128.0, 131.0]).expect("values");
        let barely = Spread::of([105.0, 105.5, 106.0]).expect("values");
        assert!(!before.differs(&overlapping, 0.05), "the spreads overlap");
        assert!(before.differs(&slower, 0.05));
        assert!(!before.differs(&barely, 0.05), "apart, but by under 5 %");
    }

    #[test]
    fn the_percentile_curve_climbs_to_the_tail() {
        let d = dist(&(1..=10_000).collect::<Vec<u64>>());
        let curve = d.by_percentile();
        assert_eq!(curve[0].0, 0.0);
        assert!((curve.last().expect("points").0 - 0.9999).abs() < 1e-12);
        assert!(
            curve
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        );
        // 10 points per nine: 0 → 99.99 % is 40 steps.
        assert!((40..=42).contains(&curve.len()), "{}", curve.len());
    }

    #[test]
    fn the_consumers_pace_is_what_finished_else_the_slowest_queue_draining() {
        let mut run: RunData =
            serde_json::from_str(include_str!("testdata/run.json")).expect("a run");
        run.load_end_s = 10.0;
        run.finish_rate = None;
        run.throughput = 1000.0;
        // search drains 600 messages in 6 s, cache 300 in 1 s, clicks never
        // held a backlog.
        run.queues = [
            (
                "search".to_owned(),
                vec![(9.0, 500), (10.0, 600), (13.0, 300), (16.0, 0), (17.0, 0)],
            ),
            ("cache".to_owned(), vec![(10.0, 300), (11.0, 0), (12.0, 0)]),
            ("clicks".to_owned(), vec![(10.0, 3), (11.0, 0)]),
        ]
        .into();
        assert_eq!(run.queue_drain_rate(), Some(100.0));
        assert_eq!(run.capacity(), 100.0);
        run.finish_rate = Some(20.0);
        assert_eq!(run.capacity(), 20.0, "what finished says it first");
        run.step_pace = Some(5.0);
        assert_eq!(run.capacity(), 5.0, "unless the records show a slower step");
        run.step_pace = None;
        run.finish_rate = None;
        run.queues.clear();
        assert_eq!(run.capacity(), 1000.0, "the consumers kept up");
    }

    #[test]
    fn ratios_refuse_zero_and_nonsense() {
        assert_eq!(ratio(500.0, 10.0), Some(50.0));
        assert_eq!(ratio(500.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
    }
}

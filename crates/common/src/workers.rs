//! The bounded pool of sync worker threads.
//!
//! Sync mode's point is that a waiting request holds a thread: the seed's
//! framework ran each blocking handler on one of 40 threads. Here every
//! blocking piece of a request (a blocking reqwest call, a simulated delay,
//! the report's hashing) runs on one of `SYNC_WORKERS` threads of its service,
//! never on tokio's async workers. When all are busy a request waits for one,
//! so exhaustion under load is real and shows in `sync_workers_busy` and
//! `sync_workers_waiting`.

use std::sync::Arc;
use std::time::Instant;

use anyhow::anyhow;
use metrics::Gauge;
use tokio::sync::Semaphore;

use crate::phases::{self, Phase};
use crate::{MODE, Result, correlation};

#[derive(Clone)]
pub struct Workers {
    permits: Arc<Semaphore>,
    busy: Gauge,
    waiting: Gauge,
}

impl Workers {
    pub fn new(service: &'static str, size: usize) -> Self {
        let labels = [("service", service), ("mode", MODE.as_str())];
        metrics::gauge!("sync_workers_max", &labels).set(size as f64);
        let busy = metrics::gauge!("sync_workers_busy", &labels);
        let waiting = metrics::gauge!("sync_workers_waiting", &labels);
        busy.set(0.0);
        waiting.set(0.0);
        Workers {
            permits: Arc::new(Semaphore::new(size)),
            busy,
            waiting,
        }
    }

    /// Runs `work` on a worker thread, waiting for a free one first.
    ///
    /// The thread stays taken until `work` returns, even when the request that
    /// asked for it has gone away: a blocked thread cannot be interrupted,
    /// which is exactly the cost sync mode has to show.
    pub async fn run<T, F>(&self, work: F) -> Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let asked = Instant::now();
        let waiting = Held::new(&self.waiting);
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| anyhow!("sync worker pool closed"))?;
        drop(waiting);
        let busy = Held::new(&self.busy);
        let span = tracing::Span::current();
        let correlation_id = correlation::current();
        tokio::task::spawn_blocking(move || {
            let _taken = (permit, busy);
            precise_timers();
            span.in_scope(|| {
                phases::record(Phase::WorkerWait, asked.elapsed());
                correlation::within(correlation_id, work)
            })
        })
        .await
        .map_err(|e| anyhow!("sync worker failed: {e}").into())
    }

    /// Workers free right now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

/// Lets the kernel wake this thread within 1 µs of a timer (its default
/// slack is 50 µs), once per thread: a simulated delay lasts as long as
/// asked, not up to 50 µs more.
fn precise_timers() {
    thread_local! {
        static SET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if !SET.replace(true) {
        #[cfg(target_os = "linux")]
        if let Err(e) = nix::sys::prctl::set_timerslack(1_000) {
            tracing::debug!(error = %e, "timer slack left as it was");
        }
    }
}

/// Adds one to a gauge for as long as it lives (also when a future is dropped).
struct Held(Gauge);

impl Held {
    fn new(gauge: &Gauge) -> Self {
        gauge.increment(1.0);
        Held(gauge.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn gauge(text: &str, name: &str) -> f64 {
        let prefix = format!("{name}{{service=\"pool-test\",mode=\"{MODE}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    }

    #[tokio::test]
    async fn a_full_pool_makes_requests_wait_and_the_gauges_show_it() {
        crate::metrics::install();
        let workers = Workers::new("pool-test", 2);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let (workers, rx) = (workers.clone(), Arc::clone(&rx));
                tokio::spawn(
                    async move { workers.run(move || rx.lock().map(|r| r.recv()).ok()).await },
                )
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;

        let text = crate::metrics::render("pool-test");
        assert_eq!(gauge(&text, "sync_workers_max"), 2.0, "{text}");
        assert_eq!(gauge(&text, "sync_workers_busy"), 2.0, "{text}");
        assert_eq!(gauge(&text, "sync_workers_waiting"), 3.0, "{text}");
        assert_eq!(workers.available(), 0);

        for _ in 0..5 {
            tx.send(()).expect("a worker is listening");
        }
        for t in tasks {
            t.await.expect("task").expect("work ran");
        }
        let text = crate::metrics::render("pool-test");
        assert_eq!(gauge(&text, "sync_workers_busy"), 0.0, "{text}");
        assert_eq!(gauge(&text, "sync_workers_waiting"), 0.0, "{text}");
    }
}

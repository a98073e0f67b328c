//! `lab-load floor`: what this machine charges, right now, for each piece a
//! sync request is made of, with nothing else running: a hand-off to a sync
//! worker thread and back, a blocking HTTP call over loopback (the services'
//! own client, to a bare axum handler on a thread of its own), a PostgreSQL
//! round trip, a committed one-row INSERT, and a timer's overshoot. The
//! breakdown after a run (`lab-load run`) counts how many of each a
//! scenario's request made; these are the least each can cost. Figures, not
//! checks: they move with the machine and the hour.

use std::time::{Duration, Instant};

use common::outbound::Outbound;
use common::workers::Workers;
use sqlx::{Connection, PgConnection};

use crate::stats::{human, nearest_rank};

#[derive(clap::Args)]
pub struct FloorArgs {
    /// Samples of each piece back to back (the timers take a fifth as many,
    /// 5 ms each); a twentieth as many again after a pause each.
    #[arg(long, default_value_t = 2000)]
    pub samples: usize,
    /// A database URL of the server; a scratch database of its own replaces
    /// its database part and is dropped afterwards.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres: String,
}

/// One piece's figures: taken back to back, and each after a pause.
pub struct Piece {
    pub name: &'static str,
    pub back_to_back: Figures,
    pub after_pause: Figures,
}

pub struct Figures {
    pub p50: Duration,
    pub p99: Duration,
    pub samples: usize,
}

/// Before each sample of the second series: about as long as a sync
/// request's threads sit idle while a simulated delay runs.
pub const PAUSE: Duration = Duration::from_millis(50);

pub async fn run(args: FloorArgs) -> anyhow::Result<()> {
    let pieces = measure(&args).await?;
    println!(
        "{:<48} {:>19} {:>22}",
        "piece (one at a time)", "back to back", "after 50 ms idle"
    );
    println!(
        "{:<48} {:>9} {:>9} {:>12} {:>9} {:>6}",
        "", "p50", "p99", "p50", "p99", "n"
    );
    for p in &pieces {
        let (hot, idle) = (&p.back_to_back, &p.after_pause);
        println!(
            "{:<48} {:>9} {:>9} {:>12} {:>9} {:>6}",
            p.name,
            human(hot.p50),
            human(hot.p99),
            human(idle.p50),
            human(idle.p99),
            format!("{}+{}", hot.samples, idle.samples)
        );
    }
    println!(
        "(each piece alone, without load, on this machine now: the floor under the breakdown a run prints, which counts how many of each a request made. After idle, the threads and PostgreSQL's backend were asleep, as they are around a simulated delay. The timers' rows are time past the delay asked for; on a short series p99 is its largest.)"
    );
    Ok(())
}

pub async fn measure(args: &FloorArgs) -> anyhow::Result<Vec<Piece>> {
    let n = args.samples.max(1);
    let workers = Workers::new("floor", 4);
    let mut pieces = Vec::new();

    pieces.push(
        piece("hand-off to a sync worker thread and back", n, async || {
            let start = Instant::now();
            workers.run(|| ()).await?;
            Ok(start.elapsed())
        })
        .await?,
    );

    let (url, server) = echo_server()?;
    let settings = common::Settings::from_vars([("DATABASE_URL", args.postgres.as_str())])?;
    let outbound = std::sync::Arc::new(Outbound::new("floor", &settings)?);
    pieces.push(
        piece(
            "blocking HTTP call over loopback (on a worker)",
            n,
            async || {
                let (outbound, url) = (outbound.clone(), url.clone());
                let took = workers
                    .run(move || {
                        let start = Instant::now();
                        let body = serde_json::json!({"n": 1});
                        outbound
                            .post::<_, serde_json::Value>("echo", &url, &body)
                            .map(|_| start.elapsed())
                    })
                    .await??;
                Ok(took)
            },
        )
        .await?,
    );
    drop(server);

    let scratch = Scratch::create(&args.postgres).await?;
    let measured = async {
        let mut db = PgConnection::connect(&scratch.url).await?;
        sqlx::query(
            "CREATE TABLE probe (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())",
        )
        .execute(&mut db)
        .await?;
        let round_trip = piece("PostgreSQL round trip (SELECT 1)", n, async || {
            let start = Instant::now();
            sqlx::query("SELECT 1").execute(&mut db).await?;
            Ok(start.elapsed())
        })
        .await?;
        let commit = piece(
            "committed one-row INSERT (its own transaction)",
            n,
            async || {
                let start = Instant::now();
                sqlx::query("INSERT INTO probe DEFAULT VALUES")
                    .execute(&mut db)
                    .await?;
                Ok(start.elapsed())
            },
        )
        .await?;
        db.close().await.ok();
        anyhow::Ok([round_trip, commit])
    }
    .await;
    scratch.drop().await;
    pieces.extend(measured?);

    let delay = Duration::from_millis(5);
    pieces.push(
        piece(
            "a blocking sleep's overshoot (on a worker)",
            n / 5,
            async || {
                Ok(workers
                    .run(move || {
                        let start = Instant::now();
                        std::thread::sleep(delay);
                        start.elapsed().saturating_sub(delay)
                    })
                    .await?)
            },
        )
        .await?,
    );
    pieces.push(
        piece("an awaited timer's overshoot (tokio)", n / 5, async || {
            let start = Instant::now();
            tokio::time::sleep(delay).await;
            Ok(start.elapsed().saturating_sub(delay))
        })
        .await?,
    );
    Ok(pieces)
}

/// Times `once` `n` times back to back, after a tenth as many unrecorded
/// (warm connections and threads), then a twentieth as many times with
/// [`PAUSE`] before each.
async fn piece(
    name: &'static str,
    n: usize,
    mut once: impl AsyncFnMut() -> anyhow::Result<Duration>,
) -> anyhow::Result<Piece> {
    let n = n.max(1);
    for _ in 0..n / 10 {
        once().await?;
    }
    let mut hot = Vec::with_capacity(n);
    for _ in 0..n {
        hot.push(once().await?);
    }
    let mut idle = Vec::new();
    for _ in 0..(n / 20).max(1) {
        tokio::time::sleep(PAUSE).await;
        idle.push(once().await?);
    }
    Ok(Piece {
        name,
        back_to_back: figures(hot),
        after_pause: figures(idle),
    })
}

fn figures(took: Vec<Duration>) -> Figures {
    let mut secs: Vec<f64> = took.iter().map(Duration::as_secs_f64).collect();
    secs.sort_by(f64::total_cmp);
    let at = |q| Duration::from_secs_f64(nearest_rank(&secs, q).unwrap_or_default());
    Figures {
        p50: at(0.5),
        p99: at(0.99),
        samples: secs.len(),
    }
}

/// A bare axum handler answering `{}` to any POST, on a thread and runtime
/// of its own (as another process would be); it stops when the handle drops.
fn echo_server() -> anyhow::Result<(String, tokio::sync::oneshot::Sender<()>)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let url = format!("http://{}/echo", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("floor-echo".into())
        .spawn(move || {
            runtime.block_on(async move {
                let app = axum::Router::new().route(
                    "/echo",
                    axum::routing::post(|| async { axum::Json(serde_json::json!({})) }),
                );
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        })?;
    Ok((url, stop))
}

/// A database of the probe's own, dropped afterwards.
struct Scratch {
    url: String,
}

impl Scratch {
    async fn create(postgres: &str) -> anyhow::Result<Scratch> {
        let name = format!("lab_floor_{}", std::process::id());
        let url = crate::stack::database_url(postgres, &name);
        // One an interrupted probe of the same pid left would hold the table.
        common::db::drop_database(&url).await?;
        common::db::ensure_database(&url).await?;
        Ok(Scratch { url })
    }

    async fn drop(self) {
        if let Err(e) = common::db::drop_database(&self.url).await {
            eprintln!("lab-load floor: {e:#}");
        }
    }
}

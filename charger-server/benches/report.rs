//! Billing-report benchmark (not a test): `cargo bench -p charger-server --bench report`.
//!
//! Loads 1,000,000 stopped sessions (one a minute for about 23 months, 100 chargers of 3
//! owners) into a fresh SQLite database, and into a fresh PostgreSQL database when
//! `BENCH_DATABASE_URL` (or `TEST_DATABASE_URL`) names a server. On each, it starts the
//! real server and times `GET /api/v1/reports/billing` (HTTP, JSON, one owner's token,
//! grouped by day) over a month and over a year, against the same aggregate run directly
//! in the database on the same data (`SELECT day, currency, COUNT, SUMs ... GROUP BY`
//! over the same owner and range), and prints the ratio. Target: 2 or less.
//!
//! Each figure is the median and the best of 11 runs after 2 warm-up runs (the order of
//! the REST call and the direct queries alternates); every loop is bounded.

use std::time::{Duration, Instant};

use charger_server::config::Config;
use charger_server::secrets::Secret;
use charger_server::store::{self, Store as _};
use charger_server::App;
use sqlx::{Connection as _, Executor as _};

const SESSIONS: i64 = 1_000_000;
const DEVICES: i64 = 100;
/// 2026-01-01T00:00:00Z in ms: sessions start one a minute from here.
const BASE_MS: i64 = 1_767_225_600_000;
const MINUTE_MS: i64 = 60_000;
const RUNS: usize = 11;
const WARMUP: usize = 2;
const ADMIN: &str = "cht_bench_report_admin_token_000000000";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn load(url: &str) {
    let store = store::connect(url).await.expect("connect");
    let pool = store.pool().clone();
    for o in 0..3 {
        pool.execute(
            format!("INSERT INTO owners (id, name, list_version, created_at) VALUES ('o{o}', 'Owner {o}', 0, 0)")
                .as_str(),
        )
        .await
        .expect("owner");
    }
    for d in 0..DEVICES {
        pool.execute(
            format!(
                "INSERT INTO devices (id, owner_id, connectors, password_hash, key_version, online, created_at)
                 VALUES ('d{d}', 'o{}', 2, 'x', 1, 0, 0)",
                d % 3
            )
            .as_str(),
        )
        .await
        .expect("device");
    }
    let series = match store.backend() {
        store::Backend::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {})",
            SESSIONS - 1
        ),
        store::Backend::Postgres => format!(
            "WITH n(i) AS (SELECT generate_series(0, {})::BIGINT)",
            SESSIONS - 1
        ),
    };
    // Energy 1..50 kWh; 0.30/kWh + 0.50 fee, 21 % tax, in cents.
    let sql = format!(
        "{series}
         INSERT INTO sessions (device_id, connector, owner_id, tag_uid, status, offline,
             meter_start_wh, meter_stop_wh, last_meter_wh, started_at, stopped_at, stop_reason,
             tariff_id, currency, minor_units, energy_per_kwh, time_per_hour, session_fee,
             tax_rate, energy_wh, net_minor, tax_minor, total_minor, created_at)
         SELECT 'd' || (i % {DEVICES}), 1, 'o' || ((i % {DEVICES}) % 3),
             'AB' || (100000 + (i % 1000)), 'stopped', 0,
             0, 1000 + (i % 49000), 1000 + (i % 49000),
             {BASE_MS} + i * {MINUTE_MS}, {BASE_MS} + i * {MINUTE_MS} + 1800000, 'local',
             NULL, 'EUR', 2, '0.3', '0', '0.5', '0.21',
             1000 + (i % 49000),
             50 + (3 * (1000 + (i % 49000))) / 100,
             ((50 + (3 * (1000 + (i % 49000))) / 100) * 21) / 100,
             50 + (3 * (1000 + (i % 49000))) / 100 + ((50 + (3 * (1000 + (i % 49000))) / 100) * 21) / 100,
             {BASE_MS} + i * {MINUTE_MS}
         FROM n"
    );
    let started = Instant::now();
    pool.execute(sql.as_str()).await.expect("load sessions");
    pool.execute("ANALYZE").await.expect("analyze");
    if store.backend() == store::Backend::Sqlite {
        // The load went into the WAL in one transaction; a fleet's database has long been
        // checkpointed. Until this is done, reads look pages up in a huge WAL and the
        // timings depend on when the automatic checkpoint lands.
        pool.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            .await
            .expect("checkpoint");
    }
    eprintln!("  loaded {SESSIONS} sessions in {:?}", started.elapsed());
    pool.close().await;
}

/// The aggregate run straight in the database: the baseline.
/// `text_key`: the day as text, as the server's query has it; else as an integer.
async fn direct(pool: &sqlx::AnyPool, from: i64, to: i64, text_key: bool) -> Duration {
    let key = if text_key {
        "CAST(started_at / 86400000 AS TEXT)"
    } else {
        "started_at / 86400000"
    };
    let started = Instant::now();
    let rows: Vec<(String, String, i64, i64, i64, i64, i64)> = sqlx::query_as(&format!(
        "SELECT CAST({key} AS TEXT) AS day, currency, COUNT(*),
                CAST(SUM(energy_wh) AS BIGINT), CAST(SUM(net_minor) AS BIGINT),
                CAST(SUM(tax_minor) AS BIGINT), CAST(SUM(total_minor) AS BIGINT)
         FROM sessions
         WHERE owner_id = $1 AND started_at >= $2 AND started_at < $3 AND status = 'stopped'
         GROUP BY {key}, currency"
    ))
    .bind("o0")
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
    .expect("direct aggregate");
    assert!(!rows.is_empty());
    started.elapsed()
}

async fn via_api(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    from: &str,
    to: &str,
) -> Duration {
    let started = Instant::now();
    let a = http
        .get(format!(
            "{base}/api/v1/reports/billing?from={from}&to={to}&group_by=day"
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET report");
    assert_eq!(a.status(), 200);
    let body = a.bytes().await.expect("body");
    assert!(body.len() > 100);
    started.elapsed()
}

async fn bench(name: &str, url: String, dir: std::path::PathBuf) {
    eprintln!("{name}:");
    load(&url).await;
    let mut config = Config::for_tests(dir);
    config.database_url = Some(Secret::new(url.clone()));
    config.admin_token = Some(Secret::new(ADMIN));
    let app = App::start(config).await.expect("server starts");
    let base = format!("http://{}", app.http_addr);
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{base}/api/v1/owners/o0/tokens"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let token = token["token"].as_str().expect("token").to_owned();
    let pool = store::connect(&url).await.expect("connect").pool().clone();
    let ms = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .expect("time")
            .timestamp_millis()
    };
    for (period, from, to) in [
        ("month", "2026-06-01T00:00:00Z", "2026-07-01T00:00:00Z"),
        ("year", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
    ] {
        let (mut d_text, mut d_int, mut a) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..WARMUP + RUNS {
            // Alternate which goes first, so neither always runs on the other's warm cache.
            let (t1, t2, ta) = if run % 2 == 0 {
                let ta = via_api(&http, &base, &token, from, to).await;
                (
                    direct(&pool, ms(from), ms(to), true).await,
                    direct(&pool, ms(from), ms(to), false).await,
                    ta,
                )
            } else {
                let t1 = direct(&pool, ms(from), ms(to), true).await;
                let t2 = direct(&pool, ms(from), ms(to), false).await;
                (t1, t2, via_api(&http, &base, &token, from, to).await)
            };
            if run >= WARMUP {
                d_text.push(t1);
                d_int.push(t2);
                a.push(ta);
            }
        }
        let best = |v: &Vec<Duration>| v.iter().min().copied().unwrap_or_default();
        let (b_text, b_int, b_api) = (best(&d_text), best(&d_int), best(&a));
        let (d_text, d_int, a) = (median(d_text), median(d_int), median(a));
        // The baseline is the faster of the two ways to write the aggregate.
        let d = d_text.min(d_int);
        let b = b_text.min(b_int);
        println!(
            "{name} {period:5}: REST median {a:>9.2?} best {b_api:>9.2?} | direct SQL median {d:>9.2?} \
             best {b:>9.2?} (text key {d_text:.2?}, integer key {d_int:.2?}) | ratio median {:.2}, best {:.2}",
            a.as_secs_f64() / d.as_secs_f64(),
            b_api.as_secs_f64() / b.as_secs_f64()
        );
    }
    pool.close().await;
    app.stop().await.expect("stop");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir =
            std::env::temp_dir().join(format!("charger-report-bench-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let sqlite = format!("sqlite://{}/bench.db", dir.display());
        bench("SQLite", sqlite, dir.clone()).await;
        let pg = std::env::var("BENCH_DATABASE_URL")
            .or_else(|_| std::env::var("TEST_DATABASE_URL"))
            .ok();
        if let Some(server) = pg {
            let db = format!("report_bench_{}", std::process::id());
            let mut admin = sqlx::postgres::PgConnection::connect(&server)
                .await
                .expect("postgres");
            admin
                .execute(format!("CREATE DATABASE {db}").as_str())
                .await
                .expect("create database");
            let url = match server.rsplit_once('/') {
                Some((host, _)) => format!("{host}/{db}"),
                None => server.clone(),
            };
            let pg_dir = dir.join("pg");
            std::fs::create_dir_all(&pg_dir).expect("dir");
            bench("PostgreSQL", url, pg_dir).await;
            let _ = admin
                .execute(format!("DROP DATABASE {db} WITH (FORCE)").as_str())
                .await;
        } else {
            eprintln!("PostgreSQL: skipped (set BENCH_DATABASE_URL=postgres://...)");
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}

//! The allocator's time for a site of 1,000 chargers (issue 24): a site connection, 10
//! boards, 100 circuits of 10 chargers each (three-phase chargers in the three rotations,
//! one in five single-phase), a session on every charger (priorities 0 to 2, steps of 1 A
//! and 0.1 A); the median and worst of 50 runs, against a target of 10 ms (an allocation
//! runs on every start, stop and reading, and on a tick).
//!
//!     cargo bench -p charger-server --bench allocator

use std::time::{Duration, Instant};

use charger_server::sites::allocator::{allocate, bench_site as site};

fn main() {
    let site = site(1_000);
    let mut times: Vec<Duration> = Vec::new();
    let mut admitted = 0;
    for _ in 0..50 {
        let t = Instant::now();
        let a = allocate(&site);
        times.push(t.elapsed());
        admitted = a.currents.iter().filter(|(_, c)| *c > 0).count();
    }
    times.sort();
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    println!(
        "allocator, 1,000 chargers with a session each ({admitted} admitted): median {:.2} ms, worst {:.2} ms (target <= 10 ms: {})",
        median.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3,
        if median <= Duration::from_millis(10) { "met" } else { "MISSED" }
    );
}

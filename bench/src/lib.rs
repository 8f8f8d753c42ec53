//! Shared helpers for the benchmarks: timing loops and report lines. Every figure is
//! printed next to a baseline measured in the same run, as a ratio, because absolute
//! times on shared machines are noise.

use std::time::{Duration, Instant};

pub mod elf;
pub mod floor;
pub mod limit;
pub mod loadgen;
pub mod procs;
pub mod wrk;

/// Latency summary of one measured operation.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub iters: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub mean: Duration,
}

/// Runs `op` `warmup` times unmeasured, then `iters` times measured one by one.
pub async fn measure<F, Fut>(name: &str, warmup: usize, iters: usize, mut op: F) -> Sample
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..warmup {
        op().await;
    }
    let mut times = Vec::with_capacity(iters);
    let start = Instant::now();
    for _ in 0..iters {
        let t = Instant::now();
        op().await;
        times.push(t.elapsed());
    }
    summarize(name, times, start.elapsed())
}

/// The summary of `times`, measured one by one over `total`.
pub fn summarize(name: &str, mut times: Vec<Duration>, total: Duration) -> Sample {
    times.sort_unstable();
    let iters = times.len();
    let pick = |q: f64| {
        times
            .get(((iters.max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    Sample {
        name: name.into(),
        iters,
        p50: pick(0.5),
        p99: pick(0.99),
        mean: total / iters.max(1) as u32,
    }
}

/// Microseconds, for report lines.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The median (NaN of nothing).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `median [min–max]` of a figure across rounds.
pub fn spread(v: &[f64], decimals: usize) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!(
        "{:.*} [{:.*}–{:.*}]",
        decimals,
        median(v.to_vec()),
        decimals,
        lo,
        decimals,
        hi
    )
}

/// Prints one line per sample with its ratio to `baseline` (by p50).
pub fn report(baseline: &Sample, samples: &[&Sample]) {
    println!(
        "{:<44} {:>9} {:>10} {:>10} {:>10} {:>8}",
        "figure", "iters", "p50 µs", "p99 µs", "mean µs", "× base"
    );
    for s in std::iter::once(baseline).chain(samples.iter().copied()) {
        println!(
            "{:<44} {:>9} {:>10.1} {:>10.1} {:>10.1} {:>8.2}",
            s.name,
            s.iters,
            us(s.p50),
            us(s.p99),
            us(s.mean),
            us(s.p50) / us(baseline.p50).max(f64::EPSILON)
        );
    }
}

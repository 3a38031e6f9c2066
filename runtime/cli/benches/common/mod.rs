//! What every bench shares: timing a closure repeatedly and summarising the samples.

#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Runs `f` `runs` times and returns each wall time.
pub fn timed(runs: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

/// (median, min, max) of the samples.
pub fn summary(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// The median of the samples.
pub fn median(v: Vec<Duration>) -> Duration {
    summary(v).0
}

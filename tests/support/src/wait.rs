//! Bounded polling: every test waits for a condition through [`eventually`] (async) or
//! [`blocking`] (threads), never by sleeping in place of synchronisation.

use std::future::Future;
use std::time::{Duration, Instant};

/// Pause between two probes. It only paces the polling; correctness never depends on it.
pub const PACE: Duration = Duration::from_millis(50);

/// What a probe returns: done with a value, or not yet (optionally saying what it saw).
pub trait Probe<T> {
    /// `Ok(value)` when done, else what was last seen, if the probe says.
    fn outcome(self) -> Result<T, Option<String>>;
}

impl<T> Probe<T> for Option<T> {
    fn outcome(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T> Probe<T> for Result<T, String> {
    fn outcome(self) -> Result<T, Option<String>> {
        self.map_err(Some)
    }
}

fn timed_out(limit: Duration, what: &str, last: Option<String>) -> ! {
    match last {
        Some(last) => panic!("timed out after {limit:?} waiting for {what}; last seen: {last}"),
        None => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Polls `probe` until it is done, or panics after `limit` naming `what` (and what the probe
/// last reported, when it returns `Result<T, String>`).
pub async fn eventually<T, P, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    P: Probe<T>,
    F: FnMut() -> Fut,
    Fut: Future<Output = P>,
{
    let started = Instant::now();
    loop {
        let last = match probe().await.outcome() {
            Ok(v) => return v,
            Err(last) => last,
        };
        if started.elapsed() > limit {
            timed_out(limit, what, last);
        }
        tokio::time::sleep(PACE).await;
    }
}

/// [`eventually`] for code without an async runtime: polls on the current thread.
pub fn blocking<T, P, F>(limit: Duration, what: &str, mut probe: F) -> T
where
    P: Probe<T>,
    F: FnMut() -> P,
{
    let started = Instant::now();
    loop {
        let last = match probe().outcome() {
            Ok(v) => return v,
            Err(last) => last,
        };
        if started.elapsed() > limit {
            timed_out(limit, what, last);
        }
        std::thread::sleep(PACE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_returns_the_first_value() {
        let mut n = 0;
        let got = blocking(Duration::from_secs(5), "n to reach 3", || {
            n += 1;
            (n >= 3).then_some(n)
        });
        assert_eq!(got, 3);
    }

    #[test]
    #[should_panic(expected = "timed out after 0ns waiting for never; last seen: nope")]
    fn a_timeout_names_what_and_the_last_report() {
        blocking::<(), _, _>(Duration::ZERO, "never", || Err("nope".to_string()));
    }

    #[tokio::test]
    async fn eventually_accepts_option_and_result_probes() {
        let a = eventually(Duration::from_secs(5), "a", || async { Some(1) }).await;
        let b = eventually(Duration::from_secs(5), "b", || async { Ok::<_, String>(2) }).await;
        assert_eq!((a, b), (1, 2));
    }
}

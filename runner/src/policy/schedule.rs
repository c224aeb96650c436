//! Retry delays, computed from the persisted retry number so a resumed release continues
//! the same schedule. No retry crate: the schedule is this one function.

use std::time::Duration;

use super::model::{Backoff, RetryPolicy};

/// Delay before retry number `retry` (1 = the first retry, i.e. attempt 2).
///
/// `jitter_sample` in `[0, 1)` picks a point in `[base / 2, base]` ("equal jitter") when the
/// policy asks for jitter; it is ignored otherwise.
pub fn retry_delay(policy: &RetryPolicy, retry: u32, jitter_sample: f64) -> Duration {
    let retry = retry.max(1);
    let base = match policy.backoff {
        Backoff::Fixed => policy.delay,
        Backoff::Linear => policy.delay.saturating_mul(retry),
        Backoff::Exponential => {
            let factor = 2u32.checked_pow(retry - 1).unwrap_or(u32::MAX);
            policy.delay.saturating_mul(factor)
        }
    };
    let capped = base.min(policy.max_delay);
    if policy.jitter {
        let sample = jitter_sample.clamp(0.0, 1.0);
        capped.mul_f64(0.5 + 0.5 * sample)
    } else {
        capped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff: Backoff, jitter: bool) -> RetryPolicy {
        RetryPolicy {
            retries: 10,
            delay: Duration::from_secs(1),
            backoff,
            max_delay: Duration::from_secs(5),
            jitter,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn exponential_doubles_and_is_capped() {
        let p = policy(Backoff::Exponential, false);
        let delays: Vec<u64> = (1..=5).map(|n| retry_delay(&p, n, 0.0).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 5, 5]);
        assert_eq!(retry_delay(&p, 1000, 0.0), Duration::from_secs(5));
    }

    #[test]
    fn linear_and_fixed() {
        let p = policy(Backoff::Linear, false);
        assert_eq!(retry_delay(&p, 3, 0.0), Duration::from_secs(3));
        let p = policy(Backoff::Fixed, false);
        assert_eq!(retry_delay(&p, 3, 0.0), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_half_to_full_delay() {
        let p = policy(Backoff::Exponential, true);
        for sample in [0.0, 0.25, 0.5, 0.999] {
            let d = retry_delay(&p, 3, sample);
            assert!(
                d >= Duration::from_secs(2) && d <= Duration::from_secs(4),
                "{d:?}"
            );
        }
    }
}

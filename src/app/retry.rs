//! Retries of deleting calls, done here rather than in the SDK: each retry must follow a fresh
//! re-check (rule 2 and rule 9 of DESIGN.md §3), which the SDK cannot know about.

use std::time::Duration;

/// Attempts at one deleting call (BatchDeleteImage), each after its own re-check.
pub const ATTEMPTS: u32 = 5;
/// First wait before a new attempt; doubled each time, with jitter.
const BASE: Duration = Duration::from_millis(200);

/// Waits before attempt `attempt + 1`: exponential backoff with jitter (taken from the clock: no
/// RNG needed to spread concurrent retriers).
pub async fn pause(attempt: u32) {
    let ceiling = BASE * 2u32.pow(attempt.min(6));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let wait = ceiling / 2 + ceiling.mul_f64(f64::from(nanos % 1000) / 2000.0);
    tokio::time::sleep(wait).await;
}

//! Kernel timestamps are `CLOCK_MONOTONIC` nanoseconds; reports want wall-clock time.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Wall-clock nanoseconds since the epoch at monotonic time zero.
    boot_wall_ns: i128,
}

impl Clock {
    /// Measures the monotonic-to-wall offset now.
    #[must_use]
    pub fn now() -> Self {
        let mono = monotonic_ns();
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as i128;
        Clock { boot_wall_ns: wall - i128::from(mono) }
    }

    /// A clock with a known offset (read back from a recording).
    #[must_use]
    pub fn from_boot_wall_ns(boot_wall_ns: i128) -> Self {
        Clock { boot_wall_ns }
    }

    #[must_use]
    pub fn boot_wall_ns(&self) -> i128 {
        self.boot_wall_ns
    }

    #[must_use]
    pub fn wall(&self, mono_ns: u64) -> SystemTime {
        let ns = (self.boot_wall_ns + i128::from(mono_ns)).max(0);
        UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

#[must_use]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_now_maps_to_wall_now() {
        let clock = Clock::now();
        let wall = clock.wall(monotonic_ns());
        let drift = SystemTime::now().duration_since(wall).unwrap_or_default();
        assert!(drift < Duration::from_secs(1), "drift {drift:?}");
    }
}

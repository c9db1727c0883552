//! When work must stop: one type for every path (the Lambda invocation's stop time, the CLI's
//! `--timeout`, none for library callers), asked before every call that reads or writes.

use std::time::{Instant, SystemTime};

/// When work must stop. Cheap to copy; [`Deadline::time_left`] is asked before each call.
#[derive(Clone, Copy)]
pub struct Deadline<'a>(Check<'a>);

#[derive(Clone, Copy)]
enum Check<'a> {
    Never,
    At(SystemTime),
    AtInstant(Instant),
    Probe(&'a (dyn Fn() -> bool + Sync)),
}

impl Deadline<'static> {
    /// No deadline: work runs to its end (library callers, benchmarks).
    pub const NEVER: Deadline<'static> = Deadline(Check::Never);

    /// Work stops at `when` on the system clock (a Lambda invocation's stop time).
    pub fn at(when: SystemTime) -> Self {
        Deadline(Check::At(when))
    }

    /// Work stops at `when` on the monotonic clock (the CLI's `--timeout`).
    pub fn at_instant(when: Instant) -> Self {
        Deadline(Check::AtInstant(when))
    }

    /// [`Deadline::at`] when there is a stop time, [`Deadline::NEVER`] when there is none.
    pub fn from_stop(stop: Option<SystemTime>) -> Self {
        stop.map_or(Deadline::NEVER, Deadline::at)
    }
}

impl<'a> Deadline<'a> {
    /// Time runs out when `probe` says so (tests that end time after a given call).
    pub fn probe(probe: &'a (dyn Fn() -> bool + Sync)) -> Self {
        Deadline(Check::Probe(probe))
    }

    /// Whether work may still start now.
    pub fn time_left(&self) -> bool {
        match self.0 {
            Check::Never => true,
            Check::At(stop) => SystemTime::now() < stop,
            Check::AtInstant(stop) => Instant::now() < stop,
            Check::Probe(probe) => probe(),
        }
    }
}

impl std::fmt::Debug for Deadline<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Check::Never => f.write_str("Deadline::NEVER"),
            Check::At(stop) => write!(f, "Deadline::at({stop:?})"),
            Check::AtInstant(stop) => write!(f, "Deadline::at_instant({stop:?})"),
            Check::Probe(_) => f.write_str("Deadline::probe(..)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn every_kind_of_deadline_answers() {
        assert!(Deadline::NEVER.time_left());
        let past = SystemTime::now() - Duration::from_secs(1);
        assert!(!Deadline::at(past).time_left());
        assert!(Deadline::at(SystemTime::now() + Duration::from_secs(60)).time_left());
        assert!(!Deadline::at_instant(Instant::now()).time_left());
        assert!(Deadline::from_stop(None).time_left());
        assert!(!Deadline::from_stop(Some(past)).time_left());
        let no = || false;
        assert!(!Deadline::probe(&no).time_left());
    }
}

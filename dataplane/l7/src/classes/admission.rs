//! Admission control: whether a request of a class may be taken, on the
//! figures the member already has (the serving member's load, the class's
//! requests in flight) and the class's rate limit.
//!
//! The limits are checked in a fixed order (in flight, load, rate) and a
//! rate token is taken only by a request every other limit admits, so a
//! refused request never uses up the rate of the ones that follow.

use shoal_wire::time::Instant;

use super::{ClassId, Classes, Refusal};

/// What the cluster knows when a request arrives.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Figures {
    /// Load of the member chosen to serve it (a share of capacity, as
    /// `shoal-control` publishes; 0 = idle, 1 = at capacity).
    pub member_load: f64,
    /// The class's requests active or waiting, as this member counts them.
    pub in_flight: u32,
}

/// A token bucket holding at most one second's worth of `rate` (and at
/// least one token), in exact integer units: a token is
/// [`Bucket::TOKEN`] units and `rate_milli` requests per 1000 s add
/// `rate_milli` units a nanosecond.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    rate_milli: u64,
    units: u128,
    last: Instant,
}

impl Bucket {
    const TOKEN: u128 = 1_000_000_000_000;

    fn new(rate: f64, now: Instant) -> Bucket {
        let mut b = Bucket {
            rate_milli: (rate * 1000.0).round().max(1.0) as u64,
            units: 0,
            last: now,
        };
        b.units = b.burst();
        b
    }

    fn burst(&self) -> u128 {
        u128::from(self.rate_milli)
            .saturating_mul(1_000_000_000)
            .max(Self::TOKEN)
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = u128::from(now.as_nanos().saturating_sub(self.last.as_nanos()));
        let added = elapsed.saturating_mul(u128::from(self.rate_milli));
        self.units = self.units.saturating_add(added).min(self.burst());
        self.last = self.last.max(now);
        if self.units >= Self::TOKEN {
            self.units -= Self::TOKEN;
            true
        } else {
            false
        }
    }
}

/// The admission state of a service's classes (their rate buckets).
#[derive(Debug, Clone)]
pub struct Admission {
    limits: Vec<Limits>,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    max_in_flight: Option<u32>,
    max_load: Option<f64>,
    bucket: Option<Bucket>,
}

impl Admission {
    /// Fresh state for `classes`: every rate bucket full at `now`.
    pub fn new(classes: &Classes, now: Instant) -> Admission {
        Admission {
            limits: classes
                .iter()
                .map(|(_, c)| Limits {
                    max_in_flight: c.config.max_in_flight,
                    max_load: c.config.max_load,
                    bucket: c.config.max_rate.map(|rate| Bucket::new(rate, now)),
                })
                .collect(),
        }
    }

    /// Whether a request of `class` may be taken now; `Err` says why not.
    /// An unknown class is admitted (the caller classified with other
    /// classes: nothing here can limit it).
    pub fn admit(
        &mut self,
        class: ClassId,
        figures: &Figures,
        now: Instant,
    ) -> Result<(), Refusal> {
        let Some(l) = self.limits.get_mut(class.index()) else {
            return Ok(());
        };
        if l.max_in_flight.is_some_and(|max| figures.in_flight >= max) {
            return Err(Refusal::InFlight);
        }
        if l.max_load.is_some_and(|max| figures.member_load >= max) {
            return Err(Refusal::Load);
        }
        if let Some(bucket) = &mut l.bucket {
            if !bucket.take(now) {
                return Err(Refusal::Rate);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_config::{Dispatch, RequestClass};

    fn admission(f: impl FnOnce(&mut RequestClass)) -> (Classes, Admission) {
        let mut c = RequestClass::catch_all("limited");
        f(&mut c);
        let classes = Classes::new(&Dispatch {
            classes: vec![c],
            ..Dispatch::default()
        })
        .expect("classes");
        let a = Admission::new(&classes, Instant::ZERO);
        (classes, a)
    }

    const LIMITED: ClassId = ClassId(0);
    const DEFAULT: ClassId = ClassId(1);

    #[test]
    fn in_flight_and_load_limits_refuse_at_the_limit() {
        let (_, mut a) = admission(|c| {
            c.max_in_flight = Some(3);
            c.max_load = Some(0.9);
        });
        let at = |load, in_flight| Figures {
            member_load: load,
            in_flight,
        };
        let now = Instant::ZERO;
        assert_eq!(a.admit(LIMITED, &at(0.5, 2), now), Ok(()));
        assert_eq!(a.admit(LIMITED, &at(0.5, 3), now), Err(Refusal::InFlight));
        assert_eq!(a.admit(LIMITED, &at(0.9, 0), now), Err(Refusal::Load));
        assert_eq!(a.admit(LIMITED, &at(0.89, 0), now), Ok(()));
        // The default class has no limits.
        assert_eq!(a.admit(DEFAULT, &at(5.0, 1_000_000), now), Ok(()));
        assert_eq!(a.admit(ClassId(31), &at(5.0, 1_000_000), now), Ok(()));
    }

    #[test]
    fn max_in_flight_zero_refuses_every_request() {
        let (_, mut a) = admission(|c| c.max_in_flight = Some(0));
        assert_eq!(
            a.admit(LIMITED, &Figures::default(), Instant::ZERO),
            Err(Refusal::InFlight)
        );
    }

    #[test]
    fn the_rate_admits_a_second_of_burst_then_the_rate() {
        let (_, mut a) = admission(|c| c.max_rate = Some(10.0));
        let f = Figures::default();
        let mut admitted = 0;
        // 100 requests at the same instant: the bucket's 10.
        for _ in 0..100 {
            admitted += u32::from(a.admit(LIMITED, &f, Instant::ZERO).is_ok());
        }
        assert_eq!(admitted, 10);
        // Then 1000 requests spread over 10 s (one per 10 ms): 10 a second.
        let mut later = 0;
        for i in 1..=1000u64 {
            later += u32::from(a.admit(LIMITED, &f, Instant::from_millis(i * 10)).is_ok());
        }
        assert_eq!(later, 100);
        // A clock that goes back refills nothing and panics nowhere.
        assert_eq!(
            a.admit(LIMITED, &f, Instant::from_millis(5)),
            Err(Refusal::Rate)
        );
    }

    #[test]
    fn a_refused_request_takes_no_rate_token() {
        let (_, mut a) = admission(|c| {
            c.max_rate = Some(1.0);
            c.max_load = Some(0.5);
        });
        let busy = Figures {
            member_load: 0.7,
            in_flight: 0,
        };
        for _ in 0..5 {
            assert_eq!(a.admit(LIMITED, &busy, Instant::ZERO), Err(Refusal::Load));
        }
        assert_eq!(a.admit(LIMITED, &Figures::default(), Instant::ZERO), Ok(()));
        assert_eq!(
            a.admit(LIMITED, &Figures::default(), Instant::ZERO),
            Err(Refusal::Rate)
        );
    }

    #[test]
    fn a_slow_rate_still_admits_one_request() {
        // 0.5 per second: the bucket holds one token, refilled every 2 s.
        let (_, mut a) = admission(|c| c.max_rate = Some(0.5));
        let f = Figures::default();
        assert_eq!(a.admit(LIMITED, &f, Instant::ZERO), Ok(()));
        assert_eq!(
            a.admit(LIMITED, &f, Instant::from_millis(1_999)),
            Err(Refusal::Rate)
        );
        assert_eq!(a.admit(LIMITED, &f, Instant::from_millis(2_000)), Ok(()));
    }
}

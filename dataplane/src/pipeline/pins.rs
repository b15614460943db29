//! Operator pins (`shoalctl flows pin PREFIX MEMBER --for SECS`): the new
//! connections of clients in a prefix are placed on one member for a
//! while, whatever the service's placement would choose.
//!
//! A pin changes **placement only**, never which member inspects a
//! connection: the inspector is still elected by the selector over the
//! epoch, so exactly one member acts on each SYN whether or not every member
//! has the pin (a pin sent to some members only is applied by those, for
//! the connections they inspect). The inspector then serves a pinned
//! connection itself or sends it to the pinned member the way its mode
//! moves connections: a MAC rewrite (`local`, `dpr-mac`), IP-in-IP
//! (`dpr-ipip`), or a handoff (`splice`: the pin comes before the dispatch
//! policy and the sticky cookie). The flow keeps that choice until it ends,
//! so a pin that expires or is removed moves no established connection.
//!
//! Not applied to stateless DPR, which keeps no flow: every packet is
//! placed by a pure hash, so a pin that ends would move the connections it
//! placed (counted `pin_ignored_stateless`). Not applied while the pinned
//! member is not in the membership (or serves nothing): placement as
//! usual, counted `pin_target_gone`.

use core::net::Ipv4Addr;

use shoal_wire::time::Instant;

use super::Tables;
use crate::counters::{Counter, Counters};

/// The member a pin names (`pinned`, from [`Pins::target`]) if it can take
/// connections: in the membership and serving; counted `pin_target_gone`
/// when it cannot (placement as usual).
pub(super) fn usable(tables: &Tables, counters: &mut Counters, pinned: Option<u16>) -> Option<u16> {
    let member = pinned?;
    if tables.member(member).is_some() && tables.serves(member) {
        Some(member)
    } else {
        counters.inc(Counter::PinTargetGone);
        None
    }
}

/// Pins a worker holds at most (a longer list is refused, counted).
pub const MAX_PINS: usize = 64;

/// One pin: clients in `net/len` go to `member` until `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pin {
    net: u32,
    len: u8,
    member: u16,
    until: Instant,
}

/// The pins of a worker, longest prefix first on lookup.
#[derive(Debug, Default)]
pub(super) struct Pins {
    pins: Vec<Pin>,
}

impl Pins {
    /// Pins `prefix`/`len` to `member` for `secs` seconds from `now`
    /// (replacing a pin of the same prefix); `member = 0` removes it. The
    /// prefix is checked by the channel. `false`: [`MAX_PINS`] live pins
    /// are held already (expired ones are dropped first).
    pub(super) fn set(
        &mut self,
        prefix: Ipv4Addr,
        len: u8,
        member: u16,
        secs: u32,
        now: Instant,
    ) -> bool {
        let net = prefix.to_bits() & shoal_channel::prefix_mask(len);
        self.pins
            .retain(|p| p.until > now && (p.net, p.len) != (net, len));
        if member == 0 {
            return true;
        }
        if self.pins.len() >= MAX_PINS {
            return false;
        }
        let until = Instant::from_nanos(
            now.as_nanos()
                .saturating_add(u64::from(secs).saturating_mul(1_000_000_000)),
        );
        self.pins.push(Pin {
            net,
            len,
            member,
            until,
        });
        true
    }

    /// The member the longest live pin covering `client` names.
    pub(super) fn target(&self, client: Ipv4Addr, now: Instant) -> Option<u16> {
        if self.pins.is_empty() {
            return None;
        }
        let addr = client.to_bits();
        self.pins
            .iter()
            .filter(|p| p.until > now && addr & shoal_channel::prefix_mask(p.len) == p.net)
            .max_by_key(|p| p.len)
            .map(|p| p.member)
    }

    /// Live pins at `now`.
    pub(super) fn live(&self, now: Instant) -> usize {
        self.pins.iter().filter(|p| p.until > now).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Instant {
        Instant::from_nanos(s * 1_000_000_000)
    }

    #[test]
    fn longest_live_prefix_wins_and_pins_end() {
        let mut pins = Pins::default();
        assert!(pins.set(Ipv4Addr::new(198, 19, 0, 0), 16, 2, 60, at(0)));
        assert!(pins.set(Ipv4Addr::new(198, 19, 4, 0), 24, 3, 30, at(0)));
        let c = |a, b| Ipv4Addr::new(198, 19, a, b);
        assert_eq!(pins.target(c(4, 9), at(1)), Some(3));
        assert_eq!(pins.target(c(5, 9), at(1)), Some(2));
        assert_eq!(pins.target(Ipv4Addr::new(198, 18, 4, 9), at(1)), None);
        // The /24 ends at 30 s, the /16 at 60 s.
        assert_eq!(pins.target(c(4, 9), at(30)), Some(2));
        assert_eq!(pins.target(c(4, 9), at(60)), None);
        assert_eq!(pins.live(at(60)), 0);
    }

    #[test]
    fn a_pin_is_replaced_or_removed_by_prefix() {
        let mut pins = Pins::default();
        let p = Ipv4Addr::new(198, 19, 4, 0);
        assert!(pins.set(p, 24, 2, 60, at(0)));
        assert!(pins.set(p, 24, 3, 60, at(0)));
        assert_eq!(pins.live(at(1)), 1);
        assert_eq!(pins.target(Ipv4Addr::new(198, 19, 4, 1), at(1)), Some(3));
        assert!(pins.set(p, 24, 0, 0, at(1)));
        assert_eq!(pins.target(Ipv4Addr::new(198, 19, 4, 1), at(1)), None);
        // 0.0.0.0/0 covers everyone; a /32 one host.
        assert!(pins.set(Ipv4Addr::UNSPECIFIED, 0, 1, 5, at(0)));
        assert!(pins.set(Ipv4Addr::new(198, 19, 4, 1), 32, 2, 5, at(0)));
        assert_eq!(pins.target(Ipv4Addr::new(10, 0, 0, 1), at(1)), Some(1));
        assert_eq!(pins.target(Ipv4Addr::new(198, 19, 4, 1), at(1)), Some(2));
    }

    #[test]
    fn at_most_max_pins_live() {
        let mut pins = Pins::default();
        for i in 0..MAX_PINS as u32 {
            assert!(pins.set(Ipv4Addr::from(i << 8), 24, 2, 10, at(0)));
        }
        assert!(!pins.set(Ipv4Addr::new(10, 0, 0, 0), 8, 2, 10, at(0)));
        // Expired pins make room.
        assert!(pins.set(Ipv4Addr::new(10, 0, 0, 0), 8, 2, 10, at(11)));
        assert_eq!(pins.live(at(11)), 1);
    }
}

//! Who may claim a new connection: the fence (a lease from control) and the
//! epochs not yet confirmed by every member. This is the dataplane's half of
//! "exactly one server per connection" (ARCHITECTURE.md, "Control:
//! membership"); control's half (lease, confirmation) is in
//! `shoal-control`'s `membership.rs`.
//!
//! A member *claims* a new connection when it answers its SYN (its kernel or
//! its SYN cookie does), or places it on another member. Two rules make two
//! members never claim the same connection, whatever moment each learns of
//! a membership change:
//!
//! - **Lease.** With a control process (`Fence::Leased`) the worker claims
//!   only while `now < until`, a `CLOCK_MONOTONIC` deadline control renews
//!   every interval while it runs, hears a majority of members and every
//!   peer it hears acknowledges it. A control that dies, hangs or is cut off
//!   stops renewing; the lease lapses before any peer can remove this member
//!   (the lease ends a safety margin before the peers' failure timeout).
//!   Established flows are never fenced: state in the flow table wins.
//! - **Gap, not overlap.** Every epoch applied since the newest one that all
//!   live members confirmed is kept (`pending`); a key is claimed only when
//!   this member owns it in the current epoch *and* in every pending one.
//!   Space a member loses is released at once (it no longer owns it in the
//!   newest epoch); space it gains is claimed only once every member runs
//!   the new epoch. Any two members' claim sets then share an epoch, and in
//!   that epoch a key has one owner.
//! - **A confirmation holds only within one unbroken lease.** The epochs
//!   kept start at one control confirmed; that is true only while no peer
//!   can have removed this member, i.e. while its lease runs. Once the lease
//!   lapses (or was never held: a fresh dataplane's config table was
//!   confirmed by nobody), the peers may have removed this member and
//!   confirmed epochs it never applied, so no epoch kept is known to be
//!   shared: a renewal that finds the lease lapsed marks the set
//!   *unconfirmed*, and nothing is claimed until control confirms one of the
//!   kept epochs again (control, in turn, confirms only from
//!   acknowledgements of announcements sent since its lease was last
//!   unbroken). A late joiner, a restarted dataplane, a control stopped or
//!   cut off for longer than the lease: each waits for a confirmation
//!   instead of claiming with a table the others forgot.
//!
//! This module is pure (time passed in) and generic over the table type, so
//! the same code runs in the pipeline (`ClaimSet<Arc<Tables>>`) and in the
//! model test that checks the invariant over interleavings
//! (`control/tests/exactly_one.rs`).

use shoal_wire::time::Instant;

/// Pending epochs kept at most; past this the worker claims nothing until
/// control confirms an epoch (rapid churn turns into a gap, never into
/// forgetting an epoch another member may still run).
pub const MAX_PENDING: usize = 8;

/// Whether new connections need a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fence {
    /// No control process (tests, replay, a one-server deployment without
    /// control): claim by the tables alone.
    Unfenced,
    /// Claim only before `until` (`None`: no lease yet).
    Leased {
        /// End of the lease, on the pipeline's clock.
        until: Option<Instant>,
    },
}

/// The answer for one new connection this member might claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Claim it.
    Yes,
    /// Another member owns it in the current epoch.
    NotOwner,
    /// This member owns it but its lease lapsed (or never started).
    LeaseLapsed,
    /// This member owns it in the current epoch but not in every epoch
    /// still pending confirmation (or too many are pending, or the lease
    /// lapsed since the last confirmation).
    Pending,
}

/// The epochs a worker claims with, and its fence.
#[derive(Debug, Clone)]
pub struct ClaimSet<T> {
    current: T,
    current_digest: u64,
    /// Epochs applied before `current` and not yet confirmed, oldest first.
    pending: Vec<(u64, T)>,
    /// More than [`MAX_PENDING`] epochs were pending: claim nothing until a
    /// confirmation.
    overflowed: bool,
    /// The lease lapsed (or was never held) since the last confirmation:
    /// no epoch kept is known to be shared with the peers; claim nothing
    /// until a confirmation.
    unconfirmed: bool,
    fence: Fence,
}

impl<T> ClaimSet<T> {
    /// Starts with `current` (digest `digest`) and `fence`: unfenced, the
    /// table is all there is (confirmed); leased, it is unconfirmed (a
    /// table from the config, which no peer confirmed) until control
    /// confirms an epoch this set holds.
    pub fn new(current: T, digest: u64, fence: Fence) -> ClaimSet<T> {
        ClaimSet {
            current,
            current_digest: digest,
            pending: Vec::new(),
            overflowed: false,
            unconfirmed: matches!(fence, Fence::Leased { .. }),
            fence,
        }
    }

    /// The current (newest) epoch's table.
    pub fn current(&self) -> &T {
        &self.current
    }

    /// The current table's digest.
    pub fn current_digest(&self) -> u64 {
        self.current_digest
    }

    /// Epochs kept until confirmed (not counting the current one).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether too many epochs were pending (claims stop until confirmed).
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Whether the lease lapsed (or was never held) since the last
    /// confirmation (claims stop until confirmed).
    pub fn unconfirmed(&self) -> bool {
        self.unconfirmed
    }

    /// The fence.
    pub fn fence(&self) -> Fence {
        self.fence
    }

    /// Sets the fence (a control link appears: `Leased { until: None }`).
    /// A leased set is unconfirmed until control confirms an epoch: the
    /// tables it ran unfenced were confirmed by nobody.
    pub fn set_fence(&mut self, fence: Fence) {
        if matches!(fence, Fence::Leased { .. }) {
            self.unconfirmed = true;
        }
        self.fence = fence;
    }

    /// A new lease end from control (`None` revokes it), applied at `now`.
    /// When the lease had lapsed by `now` (or was never held), the peers
    /// may have removed this member meanwhile and confirmed epochs it never
    /// applied: the set becomes unconfirmed, and claims wait for the next
    /// [`ClaimSet::confirm`] of an epoch it holds (control sends it with
    /// the renewal when its own lease never lapsed).
    pub fn renew(&mut self, until: Option<Instant>, now: Instant) {
        if let Fence::Leased { until: u } = &mut self.fence {
            if u.is_none_or(|u| now >= u) {
                self.unconfirmed = true;
            }
            *u = until;
        }
    }

    /// Applies a new epoch's table. When its digest differs from the
    /// current one (ownership may differ) the current table is kept as
    /// pending until a confirmation; the same digest (loads, addresses, a
    /// renumbered epoch) replaces it in place.
    pub fn apply(&mut self, table: T, digest: u64) {
        let previous = std::mem::replace(&mut self.current, table);
        if digest != self.current_digest {
            self.pending.push((self.current_digest, previous));
            if self.pending.len() > MAX_PENDING {
                // Forgetting any of them could overlap with a member that
                // still runs it: keep the newest, claim nothing until
                // confirmed.
                self.pending.remove(0);
                self.overflowed = true;
            }
        }
        self.current_digest = digest;
    }

    /// Replaces the current table without starting a new epoch (same
    /// ownership: a reload of settings that do not touch selection, load
    /// reports).
    pub fn replace_current(&mut self, table: T) {
        self.current = table;
    }

    /// Every live member confirmed the epoch with `digest`: forgets every
    /// epoch older than the newest one with that digest. A digest this
    /// worker does not hold changes nothing (and an unconfirmed set stays
    /// so).
    pub fn confirm(&mut self, digest: u64) {
        if self.current_digest == digest {
            self.pending.clear();
        } else if let Some(i) = self.pending.iter().rposition(|(d, _)| *d == digest) {
            // `overflowed` means an epoch was dropped from the front: one
            // older than any kept, so a confirmation of a kept one covers it.
            self.pending.drain(..i);
        } else {
            return;
        }
        self.overflowed = false;
        self.unconfirmed = false;
    }

    /// Whether this member claims a new connection at `now`; `owns(t)` says
    /// whether this member owns the connection's key in table `t`.
    pub fn claims(&self, now: Instant, owns: impl Fn(&T) -> bool) -> Claim {
        if !owns(&self.current) {
            return Claim::NotOwner;
        }
        if let Fence::Leased { until } = self.fence {
            if until.is_none_or(|u| now >= u) {
                return Claim::LeaseLapsed;
            }
        }
        if self.overflowed || self.unconfirmed || !self.pending.iter().all(|(_, t)| owns(t)) {
            return Claim::Pending;
        }
        Claim::Yes
    }

    /// Whether this member owns a key in the current or any pending epoch
    /// (a SYN cookie it may have issued under one of them).
    pub fn owned_in_any(&self, owns: impl Fn(&T) -> bool) -> bool {
        owns(&self.current) || self.pending.iter().any(|(_, t)| owns(t))
    }

    /// Whether the lease is held at `now` (always true when unfenced).
    pub fn lease_held(&self, now: Instant) -> bool {
        match self.fence {
            Fence::Unfenced => true,
            Fence::Leased { until } => until.is_some_and(|u| now < u),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tables as sets of owned keys 0..8 (a bit per key).
    fn owns(key: u8) -> impl Fn(&u8) -> bool {
        move |t: &u8| t & (1 << key) != 0
    }

    #[test]
    fn lease_fences_new_connections_only_while_lapsed() {
        let mut c = ClaimSet::new(0b1111_u8, 1, Fence::Leased { until: None });
        assert_eq!(
            c.claims(Instant::from_millis(5), owns(0)),
            Claim::LeaseLapsed
        );
        assert_eq!(c.claims(Instant::from_millis(5), owns(5)), Claim::NotOwner);
        c.renew(Some(Instant::from_millis(100)), Instant::from_millis(5));
        c.confirm(1);
        assert_eq!(c.claims(Instant::from_millis(99), owns(0)), Claim::Yes);
        assert_eq!(
            c.claims(Instant::from_millis(100), owns(0)),
            Claim::LeaseLapsed
        );
        assert!(c.lease_held(Instant::from_millis(99)));
        assert!(!c.lease_held(Instant::from_millis(100)));
        c.renew(None, Instant::from_millis(99));
        assert_eq!(c.claims(Instant::ZERO, owns(0)), Claim::LeaseLapsed);
        let u = ClaimSet::new(0b1_u8, 1, Fence::Unfenced);
        assert_eq!(u.claims(Instant::from_secs(1000), owns(0)), Claim::Yes);
    }

    #[test]
    fn a_lapsed_lease_unconfirms_until_the_next_confirmation() {
        let ms = Instant::from_millis;
        // A fresh leased set: its table (from the config) is confirmed by
        // nobody, so a lease alone does not let it claim.
        let mut c = ClaimSet::new(0b0011_u8, 0, Fence::Leased { until: None });
        assert!(c.unconfirmed());
        c.renew(Some(ms(100)), ms(0));
        c.apply(0b0111, 7);
        assert_eq!(c.claims(ms(10), owns(0)), Claim::Pending);
        // A digest it does not hold changes nothing (the config table's 0
        // is never confirmed).
        c.confirm(5);
        assert_eq!(c.claims(ms(10), owns(0)), Claim::Pending);
        c.confirm(7);
        assert!(!c.unconfirmed());
        assert_eq!(c.claims(ms(10), owns(2)), Claim::Yes);
        // Renewed before the end: still confirmed.
        c.renew(Some(ms(200)), ms(99));
        assert_eq!(c.claims(ms(150), owns(2)), Claim::Yes);
        // Renewed after the end (or after a revocation): unconfirmed until
        // control confirms again, even with the lease held.
        c.renew(Some(ms(400)), ms(200));
        assert!(c.lease_held(ms(250)));
        assert_eq!(c.claims(ms(250), owns(2)), Claim::Pending);
        c.confirm(7);
        assert_eq!(c.claims(ms(250), owns(2)), Claim::Yes);
        c.renew(None, ms(260));
        c.renew(Some(ms(500)), ms(270));
        assert_eq!(c.claims(ms(300), owns(2)), Claim::Pending);
        // A control link appearing (unfenced before): unconfirmed.
        let mut u = ClaimSet::new(0b1_u8, 3, Fence::Unfenced);
        u.set_fence(Fence::Leased { until: None });
        u.renew(Some(ms(100)), ms(0));
        assert_eq!(u.claims(ms(1), owns(0)), Claim::Pending);
        u.confirm(3);
        assert_eq!(u.claims(ms(1), owns(0)), Claim::Yes);
    }

    #[test]
    fn gained_space_waits_for_confirmation_lost_space_goes_at_once() {
        let mut c = ClaimSet::new(0b0011_u8, 10, Fence::Unfenced);
        // New epoch: loses key 0, gains key 2.
        c.apply(0b0110, 20);
        assert_eq!(c.pending(), 1);
        assert_eq!(c.claims(Instant::ZERO, owns(0)), Claim::NotOwner);
        assert_eq!(c.claims(Instant::ZERO, owns(1)), Claim::Yes);
        assert_eq!(c.claims(Instant::ZERO, owns(2)), Claim::Pending);
        assert!(c.owned_in_any(owns(0)));
        // A confirmation of something unknown changes nothing.
        c.confirm(99);
        assert_eq!(c.claims(Instant::ZERO, owns(2)), Claim::Pending);
        c.confirm(20);
        assert_eq!(c.pending(), 0);
        assert_eq!(c.claims(Instant::ZERO, owns(2)), Claim::Yes);
        assert!(!c.owned_in_any(owns(0)));
        // The same digest again (a load report) starts no epoch.
        c.apply(0b0110, 20);
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn confirming_a_middle_epoch_keeps_the_newer_ones() {
        let mut c = ClaimSet::new(0b0001_u8, 1, Fence::Unfenced);
        c.apply(0b0011, 2);
        c.apply(0b0111, 3);
        c.apply(0b1111, 4);
        assert_eq!(c.pending(), 3);
        assert_eq!(c.claims(Instant::ZERO, owns(1)), Claim::Pending);
        c.confirm(2);
        assert_eq!(c.pending(), 2);
        assert_eq!(c.claims(Instant::ZERO, owns(1)), Claim::Yes);
        assert_eq!(c.claims(Instant::ZERO, owns(2)), Claim::Pending);
        c.confirm(4);
        assert_eq!(c.claims(Instant::ZERO, owns(3)), Claim::Yes);
    }

    #[test]
    fn too_many_pending_epochs_claim_nothing_until_confirmed() {
        let mut c = ClaimSet::new(0xff_u8, 0, Fence::Unfenced);
        for d in 1..=u64::try_from(MAX_PENDING).unwrap() + 1 {
            c.apply(0xff, d);
        }
        assert!(c.overflowed());
        assert_eq!(c.pending(), MAX_PENDING);
        assert_eq!(c.claims(Instant::ZERO, owns(0)), Claim::Pending);
        c.confirm(9);
        assert!(!c.overflowed());
        assert_eq!(c.claims(Instant::ZERO, owns(0)), Claim::Yes);
    }
}

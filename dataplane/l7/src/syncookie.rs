//! SYN cookies for the inspector of a spliced service (`docs/design.md`, "Splicing",
//! step 1): the inspector answers a SYN without keeping any state, and only
//! the client's ACK of that answer, carrying a valid cookie, creates a flow.
//!
//! This module owns the cookie format, the options a cookie carries and the
//! cookie keys with their rotation. It builds no packet, keeps no
//! per-connection state and reads no clock: the caller passes a coarse
//! counter ([`counter_at`]) and the inspector's TCP timestamp clock.
//!
//! # Format
//!
//! As in Linux (`net/ipv4/syncookies.c`), the cookie is the inspector's ISN
//! in its SYN-ACK, and the client's ACK acknowledges `cookie + 1`:
//!
//! ```text
//! cookie = H1(tuple) + client_isn + ((count mod 256) << 24 | mac << 2 | mss_index)
//! mac    = 22 bits of H2(tuple, client_isn, count, ts_bits, mss_index)
//! ```
//!
//! - `tuple` is client address and port, server address and port; H1 and H2
//!   are `SipHash-2-4` under the two halves of the 32-byte secret. H1 makes the
//!   ISN unpredictable; H2 authenticates everything the cookie stands for.
//! - `count` is the coarse counter ([`COOKIE_PERIOD`] per tick). A cookie is
//!   accepted in the period it was issued in and the next one ([`MAX_AGE`]),
//!   so it lives between one and two periods.
//! - `mss_index` indexes [`MSS_TABLE`] (Linux's IPv4 table): the client's
//!   MSS is rounded down to an entry, and up to 536 below that.
//! - When the client offered timestamps, the low 6 bits of the inspector's
//!   `TSval` (`ts_bits`, which the client echoes in its ACK's `TSecr`) carry the
//!   window scale (4 bits, 15 = none), SACK-permitted (bit 4) and a marker
//!   that timestamps are on (bit 5), like Linux's timestamp cookies. Unlike
//!   Linux, these bits are covered by the MAC, so a tampered or missing `TSecr`
//!   fails the cookie instead of silently changing the window scale (RFC 7323
//!   lets a receiver drop a segment without the negotiated `TSopt`).
//! - Without timestamps there is nowhere to keep window scale and SACK: the
//!   connection goes on without them, as in Linux. The inspector should then
//!   not offer them in its SYN-ACK ([`SynOptions::cookie_view`] says what
//!   survives).
//!
//! A random acknowledgement number is accepted with probability about
//! 2/256 (age) x 2^-22 (MAC) = 2^-29 per valid key.
//!
//! # Keys
//!
//! Every server draws its own secret (never shared with the cluster): when
//! two servers briefly disagree about membership and both answer a SYN, the
//! client acknowledges only one SYN-ACK, and only the server that issued it
//! can verify it, so only one creates state. [`CookieKeys::rotate`] replaces
//! the secret; cookies issued under the previous one stay valid for their
//! normal life and the one before that is forgotten.

use core::hash::Hasher;
use core::net::Ipv4Addr;
use core::time::Duration;

use siphasher::sip::SipHasher24;

use shoal_wire::time::Instant;
use shoal_wire::TcpPacket;

/// The MSS values a cookie can carry (Linux's `msstab` for IPv4); the index
/// of the largest entry not above the client's MSS is encoded.
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];

/// The MSS assumed when a SYN carries no MSS option (RFC 9293, 3.7.1).
pub const DEFAULT_MSS: u16 = 536;

/// Largest window-scale shift (RFC 7323, 2.3); larger values are used as 14.
pub const MAX_WINDOW_SCALE: u8 = 14;

/// Length of one tick of the cookie counter, in seconds (a minute, as Linux).
pub const COOKIE_PERIOD_SECS: u64 = 60;

/// Length of one tick of the cookie counter.
pub const COOKIE_PERIOD: Duration = Duration::from_secs(COOKIE_PERIOD_SECS);

/// How many ticks after the one it was issued in a cookie is still
/// accepted: 1 means the same period and the next one.
pub const MAX_AGE: u32 = 1;

/// Bits of the `TSval` that carry the options (`ts_bits`).
const TS_BITS_MASK: u32 = 0x3F;
/// Window-scale nibble of `ts_bits`.
const TS_WSCALE_MASK: u32 = 0x0F;
/// Window-scale nibble meaning "no window scaling".
const TS_WSCALE_NONE: u32 = 0x0F;
/// SACK-permitted bit of `ts_bits`.
const TS_SACK: u32 = 1 << 4;
/// Marker bit of `ts_bits`: the `TSval` is a timestamp cookie.
const TS_COOKIE: u32 = 1 << 5;
/// The MAC bits of a cookie (between the MSS index and the counter byte).
const MAC_MASK: u32 = (1 << 22) - 1;

/// The cookie counter at `now`: one tick per [`COOKIE_PERIOD`] (wraps after
/// about 8000 years; only differences of the low byte matter).
pub fn counter_at(now: Instant) -> u32 {
    (now.as_nanos() / COOKIE_PERIOD.as_nanos() as u64) as u32
}

/// The options of a client's SYN that the connection keeps, and the client's
/// timestamp clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SynOptions {
    /// The client's maximum segment size.
    pub mss: u16,
    /// The client's window-scale shift, when it offered window scaling.
    pub window_scale: Option<u8>,
    /// Whether the client offered SACK.
    pub sack_permitted: bool,
    /// The client's `TSval`, `Some` exactly when timestamps are on: from the
    /// SYN when encoding; from the ACK that carried the cookie when decoding
    /// (the value a replayed SYN should carry, see `docs/splice-replay.md` §6).
    pub client_tsval: Option<u32>,
}

impl SynOptions {
    /// The options of a client's SYN: MSS ([`DEFAULT_MSS`] when absent),
    /// window scale, SACK-permitted and the `TSval`.
    pub fn from_syn<T: AsRef<[u8]>>(syn: &TcpPacket<T>) -> SynOptions {
        SynOptions {
            mss: syn.mss().unwrap_or(DEFAULT_MSS),
            window_scale: syn.window_scale(),
            sack_permitted: syn.sack_permitted(),
            client_tsval: syn.timestamps().map(|(tsval, _)| tsval),
        }
    }

    /// Whether timestamps are on.
    pub const fn timestamps(&self) -> bool {
        self.client_tsval.is_some()
    }

    /// What a cookie keeps of these options, i.e. what the inspector should
    /// negotiate in its SYN-ACK: the MSS rounded to [`MSS_TABLE`], the window
    /// scale capped at 14, and window scale and SACK only with timestamps.
    #[must_use]
    pub fn cookie_view(&self) -> SynOptions {
        let ts = self.timestamps();
        SynOptions {
            mss: MSS_TABLE[mss_index(self.mss) as usize],
            window_scale: self
                .window_scale
                .filter(|_| ts)
                .map(|w| w.min(MAX_WINDOW_SCALE)),
            sack_permitted: self.sack_permitted && ts,
            client_tsval: self.client_tsval,
        }
    }

    /// The option bits carried in the `TSval` (0 without timestamps).
    fn ts_bits(&self) -> u32 {
        if !self.timestamps() {
            return 0;
        }
        let wscale = self
            .window_scale
            .map_or(TS_WSCALE_NONE, |w| u32::from(w.min(MAX_WINDOW_SCALE)));
        let sack = if self.sack_permitted { TS_SACK } else { 0 };
        TS_COOKIE | sack | wscale
    }
}

/// Index into [`MSS_TABLE`] of the largest entry not above `mss` (0 for
/// anything below 536, as Linux).
fn mss_index(mss: u16) -> u32 {
    MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0) as u32
}

/// One secret, as the two `SipHash` keys it is split into.
#[derive(Clone, Copy)]
struct Key {
    /// Key of H1, the ISN whitening.
    isn: (u64, u64),
    /// Key of H2, the MAC.
    mac: (u64, u64),
}

impl Key {
    fn new(secret: &[u8; 32]) -> Key {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&secret[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        Key {
            isn: (word(0), word(1)),
            mac: (word(2), word(3)),
        }
    }

    /// H1: the per-tuple offset of the cookie.
    fn isn_offset(&self, tuple: &[u8; 12]) -> u32 {
        let mut h = SipHasher24::new_with_keys(self.isn.0, self.isn.1);
        h.write(tuple);
        h.finish() as u32
    }

    /// H2, cut to the MAC bits.
    fn mac(&self, tuple: &[u8; 12], client_isn: u32, count: u32, ts_bits: u32, index: u32) -> u32 {
        let mut input = [0u8; 22];
        input[..12].copy_from_slice(tuple);
        input[12..16].copy_from_slice(&client_isn.to_be_bytes());
        input[16..20].copy_from_slice(&count.to_be_bytes());
        input[20] = ts_bits as u8;
        input[21] = index as u8;
        let mut h = SipHasher24::new_with_keys(self.mac.0, self.mac.1);
        h.write(&input);
        (h.finish() >> 42) as u32 & MAC_MASK
    }

    fn encode(
        &self,
        tuple: &[u8; 12],
        client_isn: u32,
        count: u32,
        ts_bits: u32,
        index: u32,
    ) -> u32 {
        let mac = self.mac(tuple, client_isn, count, ts_bits, index);
        let low = ((count & 0xFF) << 24) | (mac << 2) | index;
        self.isn_offset(tuple)
            .wrapping_add(client_isn)
            .wrapping_add(low)
    }

    /// Checks `cookie` at counter `now`; returns the counter it was issued at
    /// and its MSS index.
    fn check(
        &self,
        tuple: &[u8; 12],
        client_isn: u32,
        cookie: u32,
        ts_bits: u32,
        now: u32,
    ) -> Option<(u32, u32)> {
        let low = cookie
            .wrapping_sub(self.isn_offset(tuple))
            .wrapping_sub(client_isn);
        let age = now.wrapping_sub(low >> 24) & 0xFF;
        if age > MAX_AGE {
            return None;
        }
        let issued = now.wrapping_sub(age);
        let index = low & 0x3;
        let mac = (low >> 2) & MAC_MASK;
        (mac == self.mac(tuple, client_isn, issued, ts_bits, index)).then_some((issued, index))
    }
}

/// The 12 bytes naming a connection: client address, server address, client
/// port, server port.
fn tuple_bytes(client: (Ipv4Addr, u16), server: (Ipv4Addr, u16)) -> [u8; 12] {
    let mut t = [0u8; 12];
    t[..4].copy_from_slice(&client.0.octets());
    t[4..8].copy_from_slice(&server.0.octets());
    t[8..10].copy_from_slice(&client.1.to_be_bytes());
    t[10..12].copy_from_slice(&server.1.to_be_bytes());
    t
}

/// This server's cookie keys: the current secret, and the previous one for
/// the cookies it issued before the last rotation.
#[derive(Clone)]
pub struct CookieKeys {
    current: Key,
    /// The previous key and the counter at which it was retired.
    previous: Option<(Key, u32)>,
}

/// Shows whether a previous key is kept, never the secrets.
impl core::fmt::Debug for CookieKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CookieKeys")
            .field("current", &"<secret>")
            .field("previous_retired_at", &self.previous.map(|(_, at)| at))
            .finish()
    }
}

impl CookieKeys {
    /// Keys from a 32-byte secret, which must be random and this server's
    /// own (see the module documentation).
    pub fn new(secret: [u8; 32]) -> CookieKeys {
        CookieKeys {
            current: Key::new(&secret),
            previous: None,
        }
    }

    /// Replaces the secret at counter `now`. Cookies issued under the old
    /// secret (at `now` or before) stay valid for their normal life
    /// ([`MAX_AGE`]); those of the secret before it are rejected from now on.
    pub fn rotate(&mut self, new_secret: [u8; 32], now: u32) {
        self.previous = Some((self.current, now));
        self.current = Key::new(&new_secret);
    }

    /// The cookie ISN for a client's SYN, and the `TSval` for the SYN-ACK
    /// (`Some` exactly when the client offered timestamps).
    ///
    /// `now` is the cookie counter ([`counter_at`]); `ts_clock` is the
    /// inspector's TCP timestamp clock for this connection (milliseconds, may
    /// include a per-connection offset). The `TSval` is at most 63 below
    /// `ts_clock`, never above it, so the inspector's clock stays monotonic
    /// for the client. The options negotiated are `opts.cookie_view()`.
    pub fn encode(
        &self,
        client: (Ipv4Addr, u16),
        server: (Ipv4Addr, u16),
        client_isn: u32,
        opts: &SynOptions,
        now: u32,
        ts_clock: u32,
    ) -> (u32, Option<u32>) {
        let tuple = tuple_bytes(client, server);
        let index = mss_index(opts.mss);
        let ts_bits = opts.ts_bits();
        let cookie = self.current.encode(&tuple, client_isn, now, ts_bits, index);
        let ts_val = opts
            .timestamps()
            .then(|| ts_clock.wrapping_sub(ts_clock.wrapping_sub(ts_bits) & TS_BITS_MASK));
        (cookie, ts_val)
    }

    /// The options of the connection if `ack_number` acknowledges a cookie
    /// this server issued for this client, client ISN and options, and the
    /// cookie is not too old at counter `now`; `None` otherwise.
    ///
    /// `client_isn` is the client's ISN (the ACK's sequence number minus
    /// one: only the first segment after the SYN-ACK can carry the cookie);
    /// `ts` is the ACK's timestamps option `(tsval, tsecr)` as
    /// [`TcpPacket::timestamps`] returns it. A cookie issued with timestamps
    /// needs the echoed `TSecr`; one issued without ignores a `TSopt` that does
    /// not echo a timestamp cookie.
    pub fn decode(
        &self,
        client: (Ipv4Addr, u16),
        server: (Ipv4Addr, u16),
        client_isn: u32,
        ack_number: u32,
        ts: Option<(u32, u32)>,
        now: u32,
    ) -> Option<SynOptions> {
        let (ts_bits, client_tsval) = match ts {
            Some((tsval, tsecr)) if tsecr & TS_COOKIE != 0 => (tsecr & TS_BITS_MASK, Some(tsval)),
            _ => (0, None),
        };
        let tuple = tuple_bytes(client, server);
        let cookie = ack_number.wrapping_sub(1);
        let index = self
            .current
            .check(&tuple, client_isn, cookie, ts_bits, now)
            .map(|(_, index)| index)
            .or_else(|| self.check_previous(&tuple, client_isn, cookie, ts_bits, now))?;
        let wscale = ts_bits & TS_WSCALE_MASK;
        Some(SynOptions {
            mss: MSS_TABLE[index as usize],
            window_scale: (client_tsval.is_some() && wscale != TS_WSCALE_NONE)
                .then_some(wscale as u8),
            sack_permitted: ts_bits & TS_SACK != 0,
            client_tsval,
        })
    }

    /// Checks `cookie` under the previous key, if there is one and it was
    /// retired recently enough for its cookies to be alive; returns the MSS
    /// index.
    fn check_previous(
        &self,
        tuple: &[u8; 12],
        client_isn: u32,
        cookie: u32,
        ts_bits: u32,
        now: u32,
    ) -> Option<u32> {
        let (key, retired_at) = self.previous?;
        if now.wrapping_sub(retired_at) > MAX_AGE {
            return None;
        }
        let (issued, index) = key.check(tuple, client_isn, cookie, ts_bits, now)?;
        // The previous key issued nothing after it was retired: with both
        // counters within MAX_AGE of `now`, a cookie issued later makes this
        // difference wrap to a huge value.
        (retired_at.wrapping_sub(issued) <= MAX_AGE).then_some(index)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const CLIENT: (Ipv4Addr, u16) = (Ipv4Addr::new(198, 18, 0, 2), 49001);
    const SERVER: (Ipv4Addr, u16) = (Ipv4Addr::new(198, 18, 0, 100), 80);
    /// The client ISN of `docs/splice-replay.md` §6.
    const CL_ISN: u32 = 2_215_611_664;
    const NOW: u32 = 29_000_000;
    const TS_CLOCK: u32 = 0x1234_5678;

    fn secret(seed: u8) -> [u8; 32] {
        core::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8))
    }

    fn linux_opts() -> SynOptions {
        SynOptions {
            mss: 1460,
            window_scale: Some(7),
            sack_permitted: true,
            client_tsval: Some(0x9f3c_6d21),
        }
    }

    /// Every combination of the options a SYN can carry.
    fn all_combinations() -> impl Iterator<Item = SynOptions> {
        let mss = [1, 535, 536, 1299, 1300, 1400, 1440, 1459, 1460, 9000, 65535];
        let wscale = [None, Some(0), Some(7), Some(14), Some(15), Some(255)];
        mss.into_iter().flat_map(move |mss| {
            wscale.into_iter().flat_map(move |window_scale| {
                [false, true].into_iter().flat_map(move |sack_permitted| {
                    [None, Some(0), Some(0xFFFF_FFFF)]
                        .into_iter()
                        .map(move |client_tsval| SynOptions {
                            mss,
                            window_scale,
                            sack_permitted,
                            client_tsval,
                        })
                })
            })
        })
    }

    /// The ACK's timestamps for a cookie's `TSval`: the client's clock moved on.
    fn ack_ts(opts: &SynOptions, ts_val: Option<u32>) -> Option<(u32, u32)> {
        opts.client_tsval
            .zip(ts_val)
            .map(|(c, ours)| (c.wrapping_add(3), ours))
    }

    #[test]
    fn round_trip_for_every_option_combination() {
        let keys = CookieKeys::new(secret(1));
        let mut n = 0;
        for opts in all_combinations() {
            let (cookie, ts_val) = keys.encode(CLIENT, SERVER, CL_ISN, &opts, NOW, TS_CLOCK);
            assert_eq!(ts_val.is_some(), opts.timestamps(), "{opts:?}");
            if let Some(v) = ts_val {
                assert!(TS_CLOCK.wrapping_sub(v) < 64, "{opts:?}: {v:#x}");
            }
            let ts = ack_ts(&opts, ts_val);
            let mut expected = opts.cookie_view();
            expected.client_tsval = ts.map(|(tsval, _)| tsval);
            for now in [NOW, NOW + 1] {
                let got = keys.decode(CLIENT, SERVER, CL_ISN, cookie.wrapping_add(1), ts, now);
                assert_eq!(got, Some(expected), "{opts:?} at {now}");
            }
            n += 1;
        }
        assert_eq!(n, 11 * 6 * 2 * 3);
    }

    #[test]
    fn cookie_view_rounds_mss_and_needs_timestamps() {
        let mss = |m| SynOptions {
            mss: m,
            ..linux_opts()
        };
        let view = |o: SynOptions| o.cookie_view().mss;
        assert_eq!(
            [1, 536, 1299, 1300, 1439, 1440, 1459, 1460, 9000].map(|m| view(mss(m))),
            [536, 536, 536, 1300, 1300, 1440, 1440, 1460, 1460]
        );
        let no_ts = SynOptions {
            client_tsval: None,
            ..linux_opts()
        };
        assert_eq!(
            no_ts.cookie_view(),
            SynOptions {
                mss: 1460,
                window_scale: None,
                sack_permitted: false,
                client_tsval: None
            }
        );
        let big = SynOptions {
            window_scale: Some(20),
            ..linux_opts()
        };
        assert_eq!(big.cookie_view().window_scale, Some(14));
    }

    /// The exact values for fixed inputs: the format does not drift
    /// unnoticed, and the option bits sit in the low 6 bits of the `TSval`.
    #[test]
    fn exact_cookie_and_tsval() {
        let keys = CookieKeys::new(secret(1));
        let (cookie, ts_val) = keys.encode(CLIENT, SERVER, CL_ISN, &linux_opts(), NOW, TS_CLOCK);
        // ts_bits = marker 0x20 | SACK 0x10 | wscale 7 = 0x37; 0x...78 & 0x3F = 0x38.
        assert_eq!(ts_val, Some(0x1234_5677));
        let tuple = tuple_bytes(CLIENT, SERVER);
        assert_eq!(
            tuple,
            [198, 18, 0, 2, 198, 18, 0, 100, 0xbf, 0x69, 0x00, 0x50]
        );
        let key = Key::new(&secret(1));
        let low = cookie
            .wrapping_sub(key.isn_offset(&tuple))
            .wrapping_sub(CL_ISN);
        assert_eq!(low >> 24, NOW & 0xFF);
        assert_eq!(low & 3, 3, "MSS index of 1460");
        assert_eq!((low >> 2) & MAC_MASK, key.mac(&tuple, CL_ISN, NOW, 0x37, 3));
        // Without timestamps: no TSval, ts_bits 0 in the MAC.
        let plain = SynOptions {
            mss: 1300,
            window_scale: None,
            sack_permitted: false,
            client_tsval: None,
        };
        let (cookie, ts_val) = keys.encode(CLIENT, SERVER, CL_ISN, &plain, NOW, TS_CLOCK);
        assert_eq!(ts_val, None);
        let low = cookie
            .wrapping_sub(key.isn_offset(&tuple))
            .wrapping_sub(CL_ISN);
        assert_eq!(low & 3, 1);
        assert_eq!((low >> 2) & MAC_MASK, key.mac(&tuple, CL_ISN, NOW, 0, 1));
        // TSval when the clock's low bits are below the option bits: 64 back.
        let (_, ts_val) = keys.encode(CLIENT, SERVER, CL_ISN, &linux_opts(), NOW, 0x1000);
        assert_eq!(ts_val, Some(0x0FF7));
        let (_, ts_val) = keys.encode(CLIENT, SERVER, CL_ISN, &linux_opts(), NOW, 5);
        assert_eq!(ts_val, Some(0xFFFF_FFF7), "wraps");
    }

    #[test]
    fn wrong_inputs_are_rejected() {
        let keys = CookieKeys::new(secret(1));
        let opts = linux_opts();
        let (cookie, ts_val) = keys.encode(CLIENT, SERVER, CL_ISN, &opts, NOW, TS_CLOCK);
        let ts = ack_ts(&opts, ts_val);
        let ack = cookie.wrapping_add(1);
        let ok = |client, server, isn, ack, ts, now| {
            keys.decode(client, server, isn, ack, ts, now).is_some()
        };
        assert!(ok(CLIENT, SERVER, CL_ISN, ack, ts, NOW));
        let other_ip = (Ipv4Addr::new(198, 18, 0, 3), CLIENT.1);
        let other_port = (CLIENT.0, CLIENT.1 + 1);
        assert!(!ok(other_ip, SERVER, CL_ISN, ack, ts, NOW));
        assert!(!ok(other_port, SERVER, CL_ISN, ack, ts, NOW));
        assert!(!ok(CLIENT, (SERVER.0, 443), CL_ISN, ack, ts, NOW));
        assert!(!ok(CLIENT, (CLIENT.0, 80), CL_ISN, ack, ts, NOW));
        for d in [1u32, 2, 3, 4, 1 << 24, 0xFFFF_FFFF] {
            assert!(
                !ok(CLIENT, SERVER, CL_ISN.wrapping_add(d), ack, ts, NOW),
                "isn+{d}"
            );
            assert!(
                !ok(CLIENT, SERVER, CL_ISN, ack.wrapping_add(d), ts, NOW),
                "ack+{d}"
            );
        }
        // Old: issued at NOW, checked two periods later; or from the future.
        assert!(!ok(CLIENT, SERVER, CL_ISN, ack, ts, NOW + 2));
        assert!(!ok(CLIENT, SERVER, CL_ISN, ack, ts, NOW + 256));
        assert!(!ok(CLIENT, SERVER, CL_ISN, ack, ts, NOW - 1));
        // Option bits: missing, or a different window scale / SACK in TSecr.
        let (tsval, tsecr) = ts.expect("timestamps on");
        assert!(!ok(CLIENT, SERVER, CL_ISN, ack, None, NOW));
        assert!(!ok(
            CLIENT,
            SERVER,
            CL_ISN,
            ack,
            Some((tsval, tsecr ^ 1)),
            NOW
        ));
        assert!(!ok(
            CLIENT,
            SERVER,
            CL_ISN,
            ack,
            Some((tsval, tsecr ^ TS_SACK)),
            NOW
        ));
        assert!(!ok(
            CLIENT,
            SERVER,
            CL_ISN,
            ack,
            Some((tsval, tsecr ^ TS_COOKIE)),
            NOW
        ));
        // Another server's key (the inspector that lost the race).
        let other = CookieKeys::new(secret(2));
        assert_eq!(other.decode(CLIENT, SERVER, CL_ISN, ack, ts, NOW), None);
    }

    #[test]
    fn cookie_without_timestamps_ignores_a_stray_tsopt() {
        let keys = CookieKeys::new(secret(1));
        let opts = SynOptions {
            client_tsval: None,
            ..linux_opts()
        };
        let (cookie, ts_val) = keys.encode(CLIENT, SERVER, CL_ISN, &opts, NOW, TS_CLOCK);
        assert_eq!(ts_val, None);
        let expected = Some(opts.cookie_view());
        let ack = cookie.wrapping_add(1);
        assert_eq!(
            keys.decode(CLIENT, SERVER, CL_ISN, ack, None, NOW),
            expected
        );
        // A TSopt that echoes no timestamp cookie (TSecr 0) is ignored.
        assert_eq!(
            keys.decode(CLIENT, SERVER, CL_ISN, ack, Some((7, 0)), NOW),
            expected
        );
    }

    #[test]
    fn counter_wraps() {
        let keys = CookieKeys::new(secret(1));
        let opts = linux_opts();
        let (cookie, ts_val) = keys.encode(CLIENT, SERVER, CL_ISN, &opts, u32::MAX, TS_CLOCK);
        let ts = ack_ts(&opts, ts_val);
        let ack = cookie.wrapping_add(1);
        assert!(keys
            .decode(CLIENT, SERVER, CL_ISN, ack, ts, u32::MAX)
            .is_some());
        assert!(keys.decode(CLIENT, SERVER, CL_ISN, ack, ts, 0).is_some());
        assert!(keys.decode(CLIENT, SERVER, CL_ISN, ack, ts, 1).is_none());
        assert_eq!(counter_at(Instant::from_secs(59)), 0);
        assert_eq!(counter_at(Instant::from_secs(60)), 1);
        assert_eq!(counter_at(Instant::from_secs(3600)), 60);
    }

    #[test]
    fn rotation_keeps_the_previous_period_and_drops_older_ones() {
        let mut keys = CookieKeys::new(secret(1));
        let opts = linux_opts();
        let issue = |keys: &CookieKeys, now| {
            let (cookie, ts_val) = keys.encode(CLIENT, SERVER, CL_ISN, &opts, now, TS_CLOCK);
            (cookie.wrapping_add(1), ack_ts(&opts, ts_val))
        };
        let valid = |keys: &CookieKeys, (ack, ts): (u32, Option<(u32, u32)>), now| {
            keys.decode(CLIENT, SERVER, CL_ISN, ack, ts, now).is_some()
        };
        let a = issue(&keys, NOW);
        keys.rotate(secret(2), NOW);
        let b = issue(&keys, NOW);
        assert_ne!(a, b);
        // The first key's cookie lives its normal life, not longer.
        assert!(valid(&keys, a, NOW));
        assert!(valid(&keys, a, NOW + 1));
        assert!(!valid(&keys, a, NOW + 2));
        assert!(valid(&keys, b, NOW + 1));
        // Second rotation: the first key is gone, the second is kept.
        keys.rotate(secret(3), NOW + 1);
        let c = issue(&keys, NOW + 1);
        assert!(!valid(&keys, a, NOW + 1));
        assert!(valid(&keys, b, NOW + 1));
        assert!(valid(&keys, c, NOW + 1));
        assert!(!valid(&keys, b, NOW + 2));
        assert!(valid(&keys, c, NOW + 2));
        // The retired key issued nothing after its retirement.
        let late = CookieKeys::new(secret(2));
        let d = issue(&late, NOW + 5);
        let mut keys = CookieKeys::new(secret(2));
        keys.rotate(secret(4), NOW + 4);
        assert!(!valid(&keys, d, NOW + 5));
        assert!(valid(&late, d, NOW + 5));
        assert_eq!(
            format!("{keys:?}"),
            format!(
                "CookieKeys {{ current: \"<secret>\", previous_retired_at: Some({}) }}",
                NOW + 4
            )
        );
    }

    #[test]
    fn from_syn_reads_the_options() {
        // Linux's SYN: MSS 1460, SACK-permitted, TS, NOP, wscale 7.
        let syn: [u8; 40] = [
            0xc8, 0x22, 0x00, 0x50, 0x7a, 0x3b, 0x9c, 0x01, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02,
            0xfa, 0xf0, 0x6a, 0x1a, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a,
            0x9f, 0x3c, 0x6d, 0x21, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
        ];
        let packet = TcpPacket::new_checked(&syn[..]).expect("valid SYN");
        assert_eq!(SynOptions::from_syn(&packet), linux_opts());
        let mut bare = syn;
        bare[12] = 0x50;
        let packet = TcpPacket::new_checked(&bare[..20]).expect("valid SYN");
        assert_eq!(
            SynOptions::from_syn(&packet),
            SynOptions {
                mss: 536,
                window_scale: None,
                sack_permitted: false,
                client_tsval: None
            }
        );
    }

    /// `SplitMix64`, for a fixed sample without a random number generator.
    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A fixed sample of 2^18 random acknowledgement numbers (expected false
    /// accepts with two keys: 2^18 x 2^-28 = 1/1024), and 2^16 whose counter
    /// byte is right so the MAC alone must reject them (expected 2^16 x 2 x
    /// 2^-22 = 1/32): none is accepted.
    #[test]
    fn random_acks_are_rejected_on_a_fixed_sample() {
        let mut keys = CookieKeys::new(secret(1));
        keys.rotate(secret(2), NOW);
        let opts = linux_opts();
        let (cookie, ts_val) = keys.encode(CLIENT, SERVER, CL_ISN, &opts, NOW, TS_CLOCK);
        let ts = ack_ts(&opts, ts_val);
        let mut state = 42;
        let mut accepted = 0;
        for _ in 0..(1 << 18) {
            let ack = splitmix(&mut state) as u32;
            if ack != cookie.wrapping_add(1)
                && keys.decode(CLIENT, SERVER, CL_ISN, ack, ts, NOW).is_some()
            {
                accepted += 1;
            }
        }
        let h1 = Key::new(&secret(2)).isn_offset(&tuple_bytes(CLIENT, SERVER));
        for _ in 0..(1 << 16) {
            let low = ((NOW & 0xFF) << 24) | (splitmix(&mut state) as u32 & 0x00FF_FFFF);
            let ack = h1.wrapping_add(CL_ISN).wrapping_add(low).wrapping_add(1);
            if ack != cookie.wrapping_add(1)
                && keys.decode(CLIENT, SERVER, CL_ISN, ack, ts, NOW).is_some()
            {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 0);
    }

    proptest! {
        /// Random tuples, ISNs, acknowledgement numbers and times: only the
        /// issued cookie is accepted.
        #[test]
        fn random_acks_are_rejected(
            client_ip: u32, client_port: u16, isn: u32, ack: u32,
            now: u32, tsval: u32,
        ) {
            let keys = CookieKeys::new(secret(7));
            let client = (Ipv4Addr::from(client_ip), client_port);
            let opts = SynOptions { client_tsval: Some(tsval), ..linux_opts() };
            let (cookie, ts_val) = keys.encode(client, SERVER, isn, &opts, now, TS_CLOCK);
            let ts = ack_ts(&opts, ts_val);
            let good = keys.decode(client, SERVER, isn, cookie.wrapping_add(1), ts, now);
            prop_assert!(good.is_some());
            if ack != cookie.wrapping_add(1) {
                prop_assert_eq!(keys.decode(client, SERVER, isn, ack, ts, now), None);
            }
            prop_assert_eq!(
                keys.decode(client, SERVER, isn, cookie.wrapping_add(1), ts, now.wrapping_add(2)),
                None
            );
        }
    }
}

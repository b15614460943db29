//! The translation of a spliced flow (`docs/design.md`, "Splicing", step 4): after the
//! handover, the client keeps the view the inspector gave it (the cookie ISN,
//! the inspector's timestamp clock and window scale) while the processing
//! server's kernel has its own (its ISN, its timestamp offset, its window
//! scale). Every segment between them is rewritten in place, exactly as the
//! replay notes (`docs/splice-replay.md` §5) verified end to end:
//!
//! | direction | seq | ack | timestamps | SACK blocks | window |
//! |---|---|---|---|---|---|
//! | kernel -> client ([`Translation::to_client`]) | `-= delta` | unchanged | `TSval` `-= off` | unchanged | `min(0xFFFF, (w << W_k) >> W_cv)` |
//! | client -> kernel ([`Translation::to_kernel`]) | unchanged | `+= delta` if ACK | `TSecr` `+= off` | `+= delta` | unchanged |
//!
//! Only the server's sequence space and the server's timestamp clock are
//! translated: the client's own sequence numbers, `TSvals` and window reach the
//! kernel unchanged, because the replayed SYN gave the kernel the client's
//! ISN, options and window scale.
//!
//! Every rewrite updates the TCP checksum incrementally (RFC 1624, with
//! [`shoal_wire::checksum`]); nothing here recomputes a checksum over the
//! segment. Options may sit at odd offsets; that is handled.
//!
//! Addresses: in the broadcast VIP deployment (the only one `docs/design.md` has)
//! none change. The client's address is preserved end to end and the VIP is
//! configured on every server's TAP, so the kernel answers from the VIP
//! itself. Only the Ethernet header changes (toward the kernel: destination
//! MAC = the TAP's MAC, which the replay notes found mandatory; toward the client:
//! the cluster MAC as source), and that is the pipeline's job. Should a mode
//! ever deliver to a kernel under another address, the TCP checksum also
//! covers that address (pseudo-header): apply
//! [`checksum::update_addr`] to it as
//! well as to the IPv4 header checksum.
//!
//! This module owns the arithmetic of the translation and nothing else: it
//! keeps no flow state, reads no clock, does no I/O and allocates nothing. The
//! flow table stores a [`Translation`] per spliced flow.

use crate::syncookie::MAX_WINDOW_SCALE;
use shoal_wire::checksum;
use shoal_wire::tcp::option_kind;
use shoal_wire::TcpPacket;

/// What the handover measured: the numbers that map the kernel's view of a
/// spliced connection onto the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SpliceParams {
    /// `K_ISN - C_ISN` modulo 2^32: the kernel's ISN minus the ISN the client
    /// was given (the cookie ISN); see [`SpliceParams::seq_delta`].
    pub delta: u32,
    /// `TSval_k - TSval_c` modulo 2^32: the kernel's `TSval` in its SYN-ACK
    /// minus the `TSval` the client is to see for that moment; see
    /// [`SpliceParams::ts_offset`]. Irrelevant without timestamps.
    pub ts_offset: u32,
    /// `W_k`: the window-scale shift the kernel announced in its SYN-ACK, or
    /// 0 when window scaling is not in effect (the client offered none).
    pub kernel_wscale: u8,
    /// `W_cv`: the window-scale shift the inspector announced to the client,
    /// or 0 when window scaling is not in effect. Keep it at most
    /// `kernel_wscale`: above it, small windows lose precision (see
    /// [`WindowRewrite::RoundedUp`]).
    pub client_wscale_advertised: u8,
}

impl SpliceParams {
    /// `delta` after the first handover: the kernel's ISN (from its SYN-ACK)
    /// minus the cookie ISN the client acknowledged.
    pub const fn seq_delta(kernel_isn: u32, cookie_isn: u32) -> u32 {
        kernel_isn.wrapping_sub(cookie_isn)
    }

    /// `delta` after a later handover of the same connection (a persistent
    /// connection moved at a request boundary, `docs/splice-replay.md` §6): the new
    /// kernel's ISN + 1 minus the next server sequence number as the client
    /// sees it.
    pub const fn seq_delta_resumed(kernel_isn: u32, client_view_next_seq: u32) -> u32 {
        kernel_isn
            .wrapping_add(1)
            .wrapping_sub(client_view_next_seq)
    }

    /// `ts_offset`: the kernel's `TSval` in its SYN-ACK minus the `TSval` the
    /// client is to see for that moment. The replay notes measured it against the
    /// inspector's SYN-ACK; in general the client's view must not go back:
    /// take a value not below the highest `TSval` the client has already
    /// seen on this connection (from the inspector's SYN-ACK and ACKs, or
    /// from an earlier kernel), or the client's PAWS check (RFC 7323, 5)
    /// drops the kernel's first segments.
    pub const fn ts_offset(kernel_tsval: u32, client_view_tsval: u32) -> u32 {
        kernel_tsval.wrapping_sub(client_view_tsval)
    }
}

/// What happened to the window field of a kernel-to-client segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowRewrite {
    /// Left as it was: a SYN (whose window is never scaled) or equal shifts.
    Unchanged,
    /// Rescaled to the client's shift (rounded down where it is not exact,
    /// so the client is never promised more than the kernel offers).
    Scaled,
    /// A non-zero window would have become 0 (possible only when
    /// `W_cv > W_k`) and was sent as 1 unit instead: a zero window would stall the
    /// client while the kernel expects data. The client may send up to
    /// `2^W_cv` bytes the kernel has no room for; the kernel drops the excess
    /// and the client retransmits it.
    RoundedUp,
    /// Larger than the client's shift can express; sent as 0xFFFF (possible
    /// only when `W_cv < W_k`).
    Clamped,
}

/// The translation of one spliced flow, built from its [`SpliceParams`]
/// (and, while the serving dataplane has added bytes to the kernel's stream
/// that the client has not acknowledged yet, that insertion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Translation {
    params: SpliceParams,
    /// `len` bytes inserted before the kernel's byte `at`.
    insert: Option<(u32, u32)>,
}

/// `a < b` in sequence space.
const fn seq_lt(a: u32, b: u32) -> bool {
    a.wrapping_sub(b).cast_signed() < 0
}

impl Translation {
    /// The translation for `params`, with window-scale shifts above 14 taken
    /// as 14 (RFC 7323).
    pub const fn new(params: SpliceParams) -> Translation {
        let mut params = params;
        if params.kernel_wscale > MAX_WINDOW_SCALE {
            params.kernel_wscale = MAX_WINDOW_SCALE;
        }
        if params.client_wscale_advertised > MAX_WINDOW_SCALE {
            params.client_wscale_advertised = MAX_WINDOW_SCALE;
        }
        Translation {
            params,
            insert: None,
        }
    }

    /// This translation with `len` bytes inserted into the kernel's stream
    /// just before its byte `at` (a `Set-Cookie` line): the kernel's bytes
    /// from `at` on reach the client `len` later, and the client's
    /// acknowledgements of them reach the kernel `len` earlier (one that
    /// covers only part of the inserted bytes acknowledges `at`). A segment
    /// that holds bytes on both sides of `at` must be rebuilt with the
    /// inserted bytes by the caller, not given to [`Translation::to_client`].
    #[must_use]
    pub const fn with_insertion(self, at: u32, len: u32) -> Translation {
        Translation {
            insert: Some((at, len)),
            ..self
        }
    }

    /// The parameters in use.
    pub const fn params(&self) -> SpliceParams {
        self.params
    }

    /// A server sequence number as the kernel has it, as the client sees it.
    pub const fn server_seq_to_client(&self, kernel_seq: u32) -> u32 {
        let base = kernel_seq.wrapping_sub(self.params.delta);
        match self.insert {
            Some((at, len)) if !seq_lt(kernel_seq, at) => base.wrapping_add(len),
            _ => base,
        }
    }

    /// A server sequence number as the client sees it (an ACK, a SACK
    /// edge), as the kernel has it. Inverse of
    /// [`Translation::server_seq_to_client`].
    pub const fn server_seq_to_kernel(&self, client_view_seq: u32) -> u32 {
        let base = client_view_seq.wrapping_add(self.params.delta);
        match self.insert {
            Some((at, len)) if !seq_lt(base, at.wrapping_add(len)) => base.wrapping_sub(len),
            Some((at, _)) if seq_lt(at, base) => at,
            _ => base,
        }
    }

    /// A kernel `TSval` as the client sees it.
    pub const fn ts_to_client(&self, kernel_ts: u32) -> u32 {
        kernel_ts.wrapping_sub(self.params.ts_offset)
    }

    /// A server timestamp as the client echoes it (`TSecr`), as the kernel
    /// has it. Inverse of [`Translation::ts_to_client`].
    pub const fn ts_to_kernel(&self, client_view_ts: u32) -> u32 {
        client_view_ts.wrapping_add(self.params.ts_offset)
    }

    /// The window field of a kernel segment (not a SYN) rescaled from the
    /// kernel's shift to the client's: `min(0xFFFF, (w << W_k) >> W_cv)`,
    /// except that a non-zero window never becomes 0.
    pub const fn window_to_client(&self, kernel_window: u16) -> (u16, WindowRewrite) {
        let k = self.params.kernel_wscale;
        let c = self.params.client_wscale_advertised;
        if k == c {
            return (kernel_window, WindowRewrite::Unchanged);
        }
        // At most 16 + 14 bits: no overflow in u32.
        let bytes = (kernel_window as u32) << k;
        let scaled = bytes >> c;
        if scaled > 0xFFFF {
            (0xFFFF, WindowRewrite::Clamped)
        } else if scaled == 0 && kernel_window != 0 {
            (1, WindowRewrite::RoundedUp)
        } else {
            (scaled as u16, WindowRewrite::Scaled)
        }
    }

    /// Rewrites a kernel-to-client segment in place: sequence number, the
    /// `TSval` of every timestamps option, and the window (not on a SYN);
    /// updates the checksum incrementally. The acknowledgement number, `TSecr`
    /// and SACK blocks are in the client's spaces and stay.
    ///
    /// `tcp` must be a checked view (`TcpPacket::new_checked`), as every
    /// view the pipeline hands on is.
    pub fn to_client<T: AsRef<[u8]> + AsMut<[u8]>>(&self, tcp: &mut TcpPacket<T>) -> WindowRewrite {
        let mut sum = tcp.checksum();
        let seq = tcp.seq_number();
        let new_seq = self.server_seq_to_client(seq);
        tcp.set_seq_number(new_seq);
        sum = checksum::update_u32(sum, seq, new_seq);

        let mut rewrite = WindowRewrite::Unchanged;
        if !tcp.syn() {
            let window = tcp.window_len();
            let (new_window, how) = self.window_to_client(window);
            tcp.set_window_len(new_window);
            sum = checksum::update_u16(sum, window, new_window);
            rewrite = how;
        }

        if self.params.ts_offset != 0 {
            tcp.for_each_option_mut(|at, kind, data| {
                if kind == option_kind::TIMESTAMPS && data.len() == 8 {
                    sum = map_u32(sum, at, &mut data[..4], |v| self.ts_to_client(v));
                }
            });
        }
        tcp.set_checksum(sum);
        rewrite
    }

    /// Rewrites a client-to-kernel segment in place: the acknowledgement
    /// number (when ACK is set), the `TSecr` of every timestamps option and
    /// every SACK edge; updates the checksum incrementally. Sequence number,
    /// `TSval` and window are in the client's spaces and stay.
    ///
    /// `tcp` must be a checked view (`TcpPacket::new_checked`), as every
    /// view the pipeline hands on is.
    pub fn to_kernel<T: AsRef<[u8]> + AsMut<[u8]>>(&self, tcp: &mut TcpPacket<T>) {
        let mut sum = tcp.checksum();
        if tcp.ack() {
            let ack = tcp.ack_number();
            let new_ack = self.server_seq_to_kernel(ack);
            tcp.set_ack_number(new_ack);
            sum = checksum::update_u32(sum, ack, new_ack);
        }
        if self.params.ts_offset != 0 || self.params.delta != 0 || self.insert.is_some() {
            tcp.for_each_option_mut(|at, kind, data| match (kind, data.len()) {
                (option_kind::TIMESTAMPS, 8) => {
                    sum = map_u32(sum, at + 4, &mut data[4..], |v| self.ts_to_kernel(v));
                }
                (option_kind::SACK, 8 | 16 | 24 | 32) => {
                    for (i, edge) in data.chunks_exact_mut(4).enumerate() {
                        sum = map_u32(sum, at + 4 * i, edge, |v| self.server_seq_to_kernel(v));
                    }
                }
                _ => {}
            });
        }
        tcp.set_checksum(sum);
    }
}

/// Replaces the big-endian u32 in `bytes` (4 bytes at offset `at` of the
/// segment) by `f` of it; returns the checksum `sum` updated for the change.
fn map_u32(sum: u16, at: usize, bytes: &mut [u8], f: impl FnOnce(u32) -> u32) -> u16 {
    let old = [bytes[0], bytes[1], bytes[2], bytes[3]];
    let new = f(u32::from_be_bytes(old)).to_be_bytes();
    bytes[..4].copy_from_slice(&new);
    if at & 1 == 0 {
        checksum::update_u32(sum, u32::from_be_bytes(old), u32::from_be_bytes(new))
    } else {
        checksum::update_bytes(sum, at, &old, &new)
    }
}

#[cfg(test)]
mod insertion_tests {
    use super::*;

    #[test]
    fn inserted_bytes_shift_later_bytes_and_their_acknowledgements() {
        let params = SpliceParams {
            delta: 1000,
            ..SpliceParams::default()
        };
        // 40 bytes before the kernel's byte 5017 (the client's 4017).
        let t = Translation::new(params).with_insertion(5017, 40);
        assert_eq!(t.server_seq_to_client(5001), 4001);
        assert_eq!(t.server_seq_to_client(5016), 4016);
        assert_eq!(t.server_seq_to_client(5017), 4057);
        assert_eq!(t.server_seq_to_client(6000), 5040);
        assert_eq!(t.server_seq_to_kernel(4001), 5001);
        assert_eq!(t.server_seq_to_kernel(4017), 5017);
        assert_eq!(t.server_seq_to_kernel(4030), 5017, "part of the insertion");
        assert_eq!(t.server_seq_to_kernel(4057), 5017);
        assert_eq!(t.server_seq_to_kernel(5040), 6000);
        for k in [5001u32, 5016, 5017, 6000, 9999] {
            assert_eq!(t.server_seq_to_kernel(t.server_seq_to_client(k)), k);
        }
        // Across the wrap of the sequence space too.
        let t = Translation::new(SpliceParams::default()).with_insertion(u32::MAX - 5, 10);
        assert_eq!(t.server_seq_to_client(3), 13);
        assert_eq!(t.server_seq_to_client(u32::MAX - 6), u32::MAX - 6);
        assert_eq!(t.server_seq_to_kernel(13), 3);
    }
}

#[cfg(test)]
mod tests {
    use core::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;
    use shoal_wire::{TcpFlags, TcpOptionBytes, TcpRepr};

    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
    /// `docs/splice-replay.md` §6: the client's ISN and the kernel's.
    const CL_ISN: u32 = 2_215_611_664;
    const K_ISN: u32 = 1_114_225_999;
    /// The cookie ISN the inspector gave the client (above `K_ISN`: delta wraps).
    const C_ISN: u32 = 3_000_000_000;
    /// `TSvals` of the kernel's SYN-ACK and of the inspector's.
    const K_TS0: u32 = 0x0A1B_2C3D;
    const DP_TS0: u32 = 0xF123_4577;

    /// The setup of `docs/splice-replay.md` §5: kernel wscale 10, 7 advertised to the client.
    fn note_translation() -> Translation {
        Translation::new(SpliceParams {
            delta: SpliceParams::seq_delta(K_ISN, C_ISN),
            ts_offset: SpliceParams::ts_offset(K_TS0, DP_TS0),
            kernel_wscale: 10,
            client_wscale_advertised: 7,
        })
    }

    // The segments below were built and checksummed by an independent script
    // (Python, RFC 1071 over pseudo-header and segment).

    /// Kernel -> client, 198.18.0.100:80 -> 198.18.0.2:49001: PSH ACK, seq
    /// `K_ISN+1`, ack `CL_ISN+1+58` (after the replay notes' 58-byte request), window
    /// 64, NOP NOP TS(`K_TS0+40`, client TS), 17 bytes "HTTP/1.1 200 OK\r\n".
    const KERNEL_DATA: [u8; 49] = [
        0x00, 0x50, 0xbf, 0x69, 0x42, 0x69, 0xbd, 0x50, 0x84, 0x0f, 0x8d, 0x4b, 0x80, 0x18, 0x00,
        0x40, 0x16, 0x62, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x0a, 0x1b, 0x2c, 0x65, 0x9f, 0x3c,
        0x6d, 0x26, 0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e, 0x31, 0x20, 0x32, 0x30, 0x30, 0x20,
        0x4f, 0x4b, 0x0d, 0x0a,
    ];
    /// The same as the client must see it: seq `C_ISN+1`, window 512 (the
    /// note's "64 becomes 512"), `TSval` `DP_TS0+40`.
    const KERNEL_DATA_TO_CLIENT: [u8; 49] = [
        0x00, 0x50, 0xbf, 0x69, 0xb2, 0xd0, 0x5e, 0x01, 0x84, 0x0f, 0x8d, 0x4b, 0x80, 0x18, 0x02,
        0x00, 0x03, 0x47, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0xf1, 0x23, 0x45, 0x9f, 0x9f, 0x3c,
        0x6d, 0x26, 0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e, 0x31, 0x20, 0x32, 0x30, 0x30, 0x20,
        0x4f, 0x4b, 0x0d, 0x0a,
    ];
    /// Client -> kernel: ACK of those 17 bytes (ack `C_ISN+18`), window 501,
    /// NOP NOP TS(client, `DP_TS0+40`), NOP NOP SACK (ack+100, ack+200).
    const CLIENT_ACK: [u8; 44] = [
        0xbf, 0x69, 0x00, 0x50, 0x84, 0x0f, 0x8d, 0x4b, 0xb2, 0xd0, 0x5e, 0x12, 0xb0, 0x10, 0x01,
        0xf5, 0x6a, 0x12, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x9f, 0x3c, 0x6d, 0x2a, 0xf1, 0x23,
        0x45, 0x9f, 0x01, 0x01, 0x05, 0x0a, 0xb2, 0xd0, 0x5e, 0x76, 0xb2, 0xd0, 0x5e, 0xda,
    ];
    /// The same as the kernel must see it: ack `K_ISN+18`, `TSecr` `K_TS0+40`,
    /// SACK edges + delta.
    const CLIENT_ACK_TO_KERNEL: [u8; 44] = [
        0xbf, 0x69, 0x00, 0x50, 0x84, 0x0f, 0x8d, 0x4b, 0x42, 0x69, 0xbd, 0x61, 0xb0, 0x10, 0x01,
        0xf5, 0x9d, 0x9d, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x9f, 0x3c, 0x6d, 0x2a, 0x0a, 0x1b,
        0x2c, 0x65, 0x01, 0x01, 0x05, 0x0a, 0x42, 0x69, 0xbd, 0xc5, 0x42, 0x69, 0xbe, 0x29,
    ];
    /// Kernel FIN ACK with options NOP TS END (the `TSval` at odd offset 23)
    /// and one payload byte.
    const ODD_TS: [u8; 33] = [
        0x00, 0x50, 0xbf, 0x69, 0x42, 0x69, 0xbd, 0x50, 0x84, 0x0f, 0x8d, 0x4b, 0x80, 0x11, 0x00,
        0x40, 0xf8, 0xed, 0x00, 0x00, 0x01, 0x08, 0x0a, 0x0a, 0x1b, 0x2c, 0x3e, 0x00, 0x00, 0x00,
        0x4d, 0x00, 0x78,
    ];
    /// The same, translated.
    const ODD_TS_TO_CLIENT: [u8; 33] = [
        0x00, 0x50, 0xbf, 0x69, 0xb2, 0xd0, 0x5e, 0x01, 0x84, 0x0f, 0x8d, 0x4b, 0x80, 0x11, 0x02,
        0x00, 0xa3, 0x15, 0x00, 0x00, 0x01, 0x08, 0x0a, 0xf1, 0x23, 0x45, 0x78, 0x00, 0x00, 0x00,
        0x4d, 0x00, 0x78,
    ];
    /// Client SYN with options NOP MSS(1460) END (MSS value at odd offset 23).
    const SYN_MSS_ODD: [u8; 28] = [
        0xbf, 0x69, 0x00, 0x50, 0x84, 0x0f, 0x8d, 0x10, 0x00, 0x00, 0x00, 0x00, 0x70, 0x02, 0xfa,
        0xf0, 0x7e, 0x7d, 0x00, 0x00, 0x01, 0x02, 0x04, 0x05, 0xb4, 0x00, 0x00, 0x00,
    ];
    /// The same with MSS 1400.
    const SYN_MSS_ODD_CLAMPED: [u8; 28] = [
        0xbf, 0x69, 0x00, 0x50, 0x84, 0x0f, 0x8d, 0x10, 0x00, 0x00, 0x00, 0x00, 0x70, 0x02, 0xfa,
        0xf0, 0xba, 0x7d, 0x00, 0x00, 0x01, 0x02, 0x04, 0x05, 0x78, 0x00, 0x00, 0x00,
    ];

    fn view(buf: &mut [u8]) -> TcpPacket<&mut [u8]> {
        TcpPacket::new_checked(buf).expect("valid segment")
    }

    #[test]
    fn kernel_data_to_client_exact_bytes() {
        let t = note_translation();
        assert_eq!(t.params().delta, 2_409_193_295);
        assert_eq!(t.params().ts_offset, 0x18F7_E6C6);
        let mut buf = KERNEL_DATA;
        assert!(view(&mut buf).verify_checksum(VIP, CLIENT));
        assert_eq!(t.to_client(&mut view(&mut buf)), WindowRewrite::Scaled);
        assert_eq!(buf, KERNEL_DATA_TO_CLIENT);
        assert!(view(&mut buf).verify_checksum(VIP, CLIENT));
    }

    #[test]
    fn client_ack_to_kernel_exact_bytes() {
        let t = note_translation();
        let mut buf = CLIENT_ACK;
        assert!(view(&mut buf).verify_checksum(CLIENT, VIP));
        t.to_kernel(&mut view(&mut buf));
        assert_eq!(buf, CLIENT_ACK_TO_KERNEL);
        let packet = view(&mut buf);
        assert!(packet.verify_checksum(CLIENT, VIP));
        assert_eq!(packet.ack_number(), K_ISN + 1 + 17);
        assert_eq!(packet.timestamps(), Some((0x9F3C_6D2A, K_TS0 + 40)));
        assert_eq!(
            packet.sack_ranges(),
            [Some((K_ISN + 118, K_ISN + 218)), None, None, None]
        );
    }

    #[test]
    fn odd_offset_timestamps_exact_bytes() {
        let mut buf = ODD_TS;
        assert_eq!(
            view(&mut buf).option_offset(option_kind::TIMESTAMPS),
            Some(21)
        );
        assert_eq!(
            note_translation().to_client(&mut view(&mut buf)),
            WindowRewrite::Scaled
        );
        assert_eq!(buf, ODD_TS_TO_CLIENT);
    }

    #[test]
    fn mss_clamp_at_odd_offset() {
        let mut buf = SYN_MSS_ODD;
        assert!(!view(&mut buf).clamp_mss(1460));
        assert_eq!(buf, SYN_MSS_ODD);
        assert!(view(&mut buf).clamp_mss(1400));
        assert_eq!(buf, SYN_MSS_ODD_CLAMPED);
        assert!(view(&mut buf).verify_checksum(CLIENT, VIP));
        // No MSS option: nothing to do.
        let mut ack = CLIENT_ACK;
        assert!(!view(&mut ack).clamp_mss(100));
        assert_eq!(ack, CLIENT_ACK);
    }

    #[test]
    fn identity_parameters_change_nothing() {
        let t = Translation::new(SpliceParams {
            kernel_wscale: 7,
            client_wscale_advertised: 7,
            ..SpliceParams::default()
        });
        let mut buf = KERNEL_DATA;
        assert_eq!(t.to_client(&mut view(&mut buf)), WindowRewrite::Unchanged);
        assert_eq!(buf, KERNEL_DATA);
        let mut buf = CLIENT_ACK;
        t.to_kernel(&mut view(&mut buf));
        assert_eq!(buf, CLIENT_ACK);
    }

    #[test]
    fn syn_window_is_never_scaled_and_ack_needs_the_flag() {
        let t = note_translation();
        // A SYN from the kernel side: seq translated, window kept.
        let mut buf = SYN_MSS_ODD;
        assert_eq!(t.to_client(&mut view(&mut buf)), WindowRewrite::Unchanged);
        let packet = view(&mut buf);
        assert_eq!(packet.window_len(), 64240);
        assert_eq!(packet.seq_number(), CL_ISN.wrapping_sub(t.params().delta));
        assert!(packet.verify_checksum(CLIENT, VIP));
        // A client segment without ACK: the ack field (0) stays 0.
        let mut buf = SYN_MSS_ODD;
        t.to_kernel(&mut view(&mut buf));
        assert_eq!(buf, SYN_MSS_ODD);
    }

    #[test]
    fn window_edge_cases() {
        use WindowRewrite::{Clamped, RoundedUp, Scaled, Unchanged};
        let with = |k, c| {
            Translation::new(SpliceParams {
                kernel_wscale: k,
                client_wscale_advertised: c,
                ..SpliceParams::default()
            })
        };
        let cases: [(u8, u8, u16, (u16, WindowRewrite)); 17] = [
            (10, 7, 64, (512, Scaled)),
            (10, 7, 0, (0, Scaled)),
            (10, 7, 0x1FFF, (0xFFF8, Scaled)),
            (10, 7, 0x2000, (0xFFFF, Clamped)),
            (10, 7, 0xFFFF, (0xFFFF, Clamped)),
            (7, 10, 8, (1, Scaled)),
            (7, 10, 15, (1, Scaled)),
            (7, 10, 16, (2, Scaled)),
            (7, 10, 7, (1, RoundedUp)),
            (7, 10, 1, (1, RoundedUp)),
            (7, 10, 0, (0, Scaled)),
            (0, 14, 0x3FFF, (1, RoundedUp)),
            (0, 14, 0x4000, (1, Scaled)),
            (14, 0, 3, (0xC000, Scaled)),
            (14, 0, 4, (0xFFFF, Clamped)),
            (14, 14, 0xFFFF, (0xFFFF, Unchanged)),
            // Shifts above 14 count as 14 (RFC 7323).
            (15, 14, 0xFFFF, (0xFFFF, Unchanged)),
        ];
        for (k, c, w, expected) in cases {
            assert_eq!(
                with(k, c).window_to_client(w),
                expected,
                "W_k {k} W_cv {c} w {w}"
            );
        }
        assert_eq!(with(20, 30).params().kernel_wscale, 14);
        assert_eq!(with(20, 30).params().client_wscale_advertised, 14);
    }

    #[test]
    fn sequence_numbers_wrap() {
        // Cookie ISN just below 2^32, kernel ISN just above 0.
        let t = Translation::new(SpliceParams {
            delta: SpliceParams::seq_delta(0x10, 0xFFFF_FFF0),
            ..SpliceParams::default()
        });
        assert_eq!(t.params().delta, 0x20);
        assert_eq!(t.server_seq_to_client(0x11), 0xFFFF_FFF1);
        assert_eq!(t.server_seq_to_client(0x1F), 0xFFFF_FFFF);
        assert_eq!(t.server_seq_to_client(0x20), 0);
        assert_eq!(t.server_seq_to_kernel(0xFFFF_FFFF), 0x1F);
        assert_eq!(t.server_seq_to_kernel(0), 0x20);
        // A SACK block spanning the wrap in the client's view.
        let repr = TcpRepr {
            sack_ranges: [Some((0xFFFF_FF00, 0x100)), Some((0x200, 0x300)), None, None],
            ack_number: Some(0xFFFF_FFF1),
            ..client_repr()
        };
        let mut buf = emit(&repr, &[], CLIENT, VIP);
        t.to_kernel(&mut view(&mut buf));
        let packet = view(&mut buf);
        assert!(packet.verify_checksum(CLIENT, VIP));
        assert_eq!(packet.ack_number(), 0x11);
        assert_eq!(
            packet.sack_ranges(),
            [Some((0xFFFF_FF20, 0x120)), Some((0x220, 0x320)), None, None]
        );
    }

    /// A second handover (`docs/splice-replay.md` §6): the client's view continues where
    /// the first kernel left it; the new kernel's ISN+1 maps onto it.
    #[test]
    fn resumed_delta_continues_the_client_view() {
        let first = note_translation();
        // The first kernel sent 4 MiB + 251 bytes after its SYN.
        let next_kernel1 = K_ISN.wrapping_add(1 + 4_194_304 + 251);
        let next_client_view = first.server_seq_to_client(next_kernel1);
        let k_isn2 = 1_139_894_283;
        let second = Translation::new(SpliceParams {
            delta: SpliceParams::seq_delta_resumed(k_isn2, next_client_view),
            ..first.params()
        });
        assert_eq!(second.server_seq_to_client(k_isn2 + 1), next_client_view);
        assert_eq!(
            next_client_view,
            C_ISN.wrapping_add(1 + 4_194_304 + 251),
            "the client's view is continuous"
        );
    }

    fn client_repr() -> TcpRepr {
        TcpRepr {
            src_port: 49001,
            dst_port: 80,
            seq_number: CL_ISN + 59,
            ack_number: Some(0),
            flags: TcpFlags::ACK,
            window_len: 501,
            urgent: 0,
            mss: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: [None; 4],
            timestamps: Some((1, 2)),
            unknown_options: TcpOptionBytes::EMPTY,
        }
    }

    fn emit(repr: &TcpRepr, payload: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let mut buf = vec![0; repr.buffer_len(payload.len())];
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut buf[..]),
            src,
            dst,
            payload,
        );
        buf
    }

    /// The checksum a full recomputation gives for `buf`.
    fn full_checksum(buf: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        let mut copy = buf.to_vec();
        let mut packet = TcpPacket::new_unchecked(&mut copy[..]);
        packet.fill_checksum(src, dst);
        packet.checksum()
    }

    /// One option as bytes: NOP, MSS, window scale, SACK-permitted,
    /// timestamps, SACK (1 to 4 blocks) or an unknown kind.
    fn option() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(vec![option_kind::NOP]),
            any::<u16>().prop_map(|m| {
                let [a, b] = m.to_be_bytes();
                vec![option_kind::MSS, 4, a, b]
            }),
            any::<u8>().prop_map(|s| vec![option_kind::WINDOW_SCALE, 3, s]),
            Just(vec![option_kind::SACK_PERMITTED, 2]),
            (any::<u32>(), any::<u32>()).prop_map(|(v, e)| {
                let mut o = vec![option_kind::TIMESTAMPS, 10];
                o.extend(v.to_be_bytes());
                o.extend(e.to_be_bytes());
                o
            }),
            proptest::collection::vec(any::<u32>(), 2..=8).prop_map(|edges| {
                let blocks = edges.len() / 2;
                let mut o = vec![option_kind::SACK, 2 + 8 * blocks as u8];
                for e in &edges[..2 * blocks] {
                    o.extend(e.to_be_bytes());
                }
                o
            }),
            proptest::collection::vec(any::<u8>(), 0..4).prop_map(|d| {
                let mut o = vec![30, 2 + d.len() as u8];
                o.extend(d);
                o
            }),
        ]
    }

    /// A random segment: header fields, options in random order and
    /// alignment (as many as fit in 40 bytes), payload of any parity, and a
    /// correct checksum for `src -> dst`.
    fn segment() -> impl Strategy<Value = (Vec<u8>, Ipv4Addr, Ipv4Addr)> {
        (
            any::<[u8; 20]>(),
            proptest::collection::vec(option(), 0..8),
            proptest::collection::vec(any::<u8>(), 0..40),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(|(mut header, options, payload, src, dst)| {
                let mut opts = Vec::new();
                for o in options {
                    if opts.len() + o.len() <= 40 {
                        opts.extend(o);
                    }
                }
                opts.resize(opts.len().div_ceil(4) * 4, option_kind::END);
                header[12] = (((20 + opts.len()) / 4) as u8) << 4;
                let mut buf = header.to_vec();
                buf.extend(opts);
                buf.extend(payload);
                let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
                TcpPacket::new_unchecked(&mut buf[..]).fill_checksum(src, dst);
                (buf, src, dst)
            })
    }

    fn params() -> impl Strategy<Value = SpliceParams> {
        (any::<u32>(), any::<u32>(), 0u8..=16, 0u8..=16).prop_map(|(delta, ts_offset, k, c)| {
            SpliceParams {
                delta,
                ts_offset,
                kernel_wscale: k,
                client_wscale_advertised: c,
            }
        })
    }

    proptest! {
        /// The incrementally updated checksum is exactly what a full
        /// recomputation gives, in both directions and for the MSS clamp.
        #[test]
        fn incremental_checksum_equals_full_recomputation(
            (seg, src, dst) in segment(), params in params(), max_mss: u16,
        ) {
            prop_assume!(TcpPacket::new_checked(&seg[..]).is_ok());
            let t = Translation::new(params);

            let mut buf = seg.clone();
            t.to_client(&mut view(&mut buf));
            prop_assert_eq!(view(&mut buf).checksum(), full_checksum(&buf, src, dst));

            let mut buf = seg.clone();
            t.to_kernel(&mut view(&mut buf));
            prop_assert_eq!(view(&mut buf).checksum(), full_checksum(&buf, src, dst));

            let mut buf = seg.clone();
            view(&mut buf).clamp_mss(max_mss);
            prop_assert_eq!(view(&mut buf).checksum(), full_checksum(&buf, src, dst));
            let before = TcpPacket::new_checked(&seg[..]).expect("checked").mss();
            let after = view(&mut buf).mss();
            prop_assert_eq!(after, before.map(|m| m.min(max_mss)));
        }

        /// Exactly the table's fields change, by exactly the formulas.
        #[test]
        fn only_the_translated_fields_change(
            (seg, _src, _dst) in segment(), params in params(),
        ) {
            prop_assume!(TcpPacket::new_checked(&seg[..]).is_ok());
            let t = Translation::new(params);
            let before = TcpRepr::parse(&TcpPacket::new_checked(&seg[..]).expect("checked"))
                .expect("parses");

            let mut buf = seg.clone();
            t.to_client(&mut view(&mut buf));
            let after = TcpRepr::parse(&view(&mut buf)).expect("parses");
            let window = if before.flags.contains(TcpFlags::SYN) {
                before.window_len
            } else {
                t.window_to_client(before.window_len).0
            };
            let expected = TcpRepr {
                seq_number: t.server_seq_to_client(before.seq_number),
                window_len: window,
                timestamps: before.timestamps.map(|(v, e)| (t.ts_to_client(v), e)),
                ..before
            };
            prop_assert_eq!(after, expected);
            let header_len = view(&mut buf).header_len();
            prop_assert_eq!(&buf[header_len..], &seg[header_len..]);

            let mut buf = seg.clone();
            t.to_kernel(&mut view(&mut buf));
            let after = TcpRepr::parse(&view(&mut buf)).expect("parses");
            let expected = TcpRepr {
                ack_number: before.ack_number.map(|a| t.server_seq_to_kernel(a)),
                timestamps: before.timestamps.map(|(v, e)| (v, t.ts_to_kernel(e))),
                sack_ranges: before.sack_ranges.map(|b| {
                    b.map(|(l, r)| (t.server_seq_to_kernel(l), t.server_seq_to_kernel(r)))
                }),
                ..before
            };
            prop_assert_eq!(after, expected);
            if !before.flags.contains(TcpFlags::ACK) {
                prop_assert_eq!(&buf[8..12], &seg[8..12]);
            }
        }

        /// What the kernel sends and the client echoes comes back to the
        /// kernel as it was sent, and what the client acknowledges comes back
        /// to the client as it was acknowledged (with wrap-around).
        #[test]
        fn translations_invert(
            params in params(), kernel_seq: u32, kernel_ts: u32, client_ack: u32,
            client_tsecr: u32, len in 0u32..=65535,
        ) {
            let t = Translation::new(params);
            let seq = t.server_seq_to_client(kernel_seq);
            prop_assert_eq!(t.server_seq_to_kernel(seq), kernel_seq);
            let ack = t.server_seq_to_kernel(client_ack);
            prop_assert_eq!(t.server_seq_to_client(ack), client_ack);
            prop_assert_eq!(t.ts_to_kernel(t.ts_to_client(kernel_ts)), kernel_ts);
            prop_assert_eq!(t.ts_to_client(t.ts_to_kernel(client_tsecr)), client_tsecr);

            // Kernel segment -> client; the client's reply -> kernel.
            let kernel = TcpRepr {
                src_port: 80,
                dst_port: 49001,
                seq_number: kernel_seq,
                ack_number: Some(CL_ISN),
                timestamps: Some((kernel_ts, 9)),
                ..client_repr()
            };
            let mut buf = emit(&kernel, &[0x61; 3], VIP, CLIENT);
            t.to_client(&mut view(&mut buf));
            let seen = TcpRepr::parse(&view(&mut buf)).expect("parses");
            let seen_ts = seen.timestamps.expect("kept").0;
            let reply = TcpRepr {
                ack_number: Some(seen.seq_number.wrapping_add(len)),
                timestamps: Some((9, seen_ts)),
                sack_ranges: [
                    Some((seen.seq_number, seen.seq_number.wrapping_add(len))),
                    None,
                    None,
                    None,
                ],
                ..client_repr()
            };
            let mut buf = emit(&reply, &[], CLIENT, VIP);
            t.to_kernel(&mut view(&mut buf));
            let back = TcpRepr::parse(&view(&mut buf)).expect("parses");
            prop_assert_eq!(back.ack_number, Some(kernel_seq.wrapping_add(len)));
            prop_assert_eq!(back.timestamps, Some((9, kernel_ts)));
            let block = (kernel_seq, kernel_seq.wrapping_add(len));
            prop_assert_eq!(back.sack_ranges[0], Some(block));
            prop_assert!(view(&mut buf).verify_checksum(CLIENT, VIP));

            // Client segment -> kernel; the kernel's reply -> client.
            let client = TcpRepr {
                ack_number: Some(client_ack),
                timestamps: Some((5, client_tsecr)),
                ..client_repr()
            };
            let mut buf = emit(&client, &[], CLIENT, VIP);
            t.to_kernel(&mut view(&mut buf));
            let at_kernel = TcpRepr::parse(&view(&mut buf)).expect("parses");
            let answer = TcpRepr {
                src_port: 80,
                dst_port: 49001,
                seq_number: at_kernel.ack_number.expect("ACK set"),
                timestamps: at_kernel.timestamps.map(|(v, e)| (e, v)),
                ..kernel
            };
            let mut buf = emit(&answer, &[], VIP, CLIENT);
            t.to_client(&mut view(&mut buf));
            let at_client = TcpRepr::parse(&view(&mut buf)).expect("parses");
            prop_assert_eq!(at_client.seq_number, client_ack);
            prop_assert_eq!(at_client.timestamps, Some((client_tsecr, 5)));
            prop_assert!(view(&mut buf).verify_checksum(VIP, CLIENT));
        }

        /// The window sent to the client never promises more bytes than the
        /// kernel offers, except when rounding 0 up to 1 unit, and loses less
        /// than one unit of the client's shift unless clamped.
        #[test]
        fn window_never_overpromises(k in 0u8..=14, c in 0u8..=14, w: u16) {
            let t = Translation::new(SpliceParams {
                kernel_wscale: k,
                client_wscale_advertised: c,
                ..SpliceParams::default()
            });
            let (sent, how) = t.window_to_client(w);
            let offered = u64::from(w) << k;
            let promised = u64::from(sent) << c;
            match how {
                WindowRewrite::Unchanged => prop_assert_eq!(promised, offered),
                WindowRewrite::Scaled => {
                    prop_assert!(promised <= offered && offered - promised < 1 << c);
                }
                WindowRewrite::RoundedUp => {
                    prop_assert!(sent == 1 && w != 0 && offered < 1 << c);
                }
                WindowRewrite::Clamped => prop_assert!(sent == 0xFFFF && promised < offered),
            }
            prop_assert_eq!(sent == 0, w == 0);
        }
    }
}

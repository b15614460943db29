//! The per-packet work of the splice path allocates nothing: 10k SYN cookies
//! encoded and checked, and 10k segments translated each way (with
//! timestamps and SACK blocks) and MSS-clamped, make zero calls to the global
//! allocator.
//!
//! The counts are the measuring thread's own (`shoal_alloc_count`): other
//! threads allocating meanwhile (libtest's, other tests') do not move them.

use core::net::Ipv4Addr;

use shoal_alloc_count::{CountingAlloc, Region};
use shoal_l7::splice::{SpliceParams, Translation};
use shoal_l7::syncookie::{CookieKeys, SynOptions};
use shoal_wire::{TcpFlags, TcpOptionBytes, TcpPacket, TcpRepr};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

#[test]
fn cookies_and_translation_allocate_nothing() {
    let mut keys = CookieKeys::new([7; 32]);
    keys.rotate([9; 32], 1000);
    let opts = SynOptions {
        mss: 1460,
        window_scale: Some(7),
        sack_permitted: true,
        client_tsval: Some(12345),
    };
    let t = Translation::new(SpliceParams {
        delta: 0x8f99_5f4f,
        ts_offset: 0x18f7_e6c6,
        kernel_wscale: 10,
        client_wscale_advertised: 7,
    });
    let repr = TcpRepr {
        src_port: 49001,
        dst_port: 80,
        seq_number: 1,
        ack_number: Some(2),
        flags: TcpFlags::ACK,
        window_len: 64,
        urgent: 0,
        mss: Some(1460),
        window_scale: None,
        sack_permitted: false,
        sack_ranges: [Some((10, 20)), Some((30, 40)), None, None],
        timestamps: Some((3, 4)),
        unknown_options: TcpOptionBytes::EMPTY,
    };
    let mut seg = [0u8; 64];
    let len = repr.buffer_len(0);
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut seg[..len]),
        CLIENT,
        VIP,
        &[],
    );

    let region = Region::new();
    let mut accepted = 0u32;
    for i in 0..10_000u32 {
        let client = (CLIENT, 1024 + (i % 60_000) as u16);
        let (cookie, ts_val) = keys.encode(client, (VIP, 80), i, &opts, 1000, 5000 + i);
        let ts = ts_val.map(|v| (12346, v));
        if keys
            .decode(client, (VIP, 80), i, cookie.wrapping_add(1), ts, 1001)
            .is_some()
        {
            accepted += 1;
        }
        let mut packet = TcpPacket::new_checked(&mut seg[..len]).expect("valid segment");
        t.to_kernel(&mut packet);
        t.to_client(&mut packet);
        packet.clamp_mss(1400 - (i % 2) as u16);
    }
    let stats = region.change();

    assert_eq!(stats.allocations, 0, "{stats:?}");
    assert_eq!(stats.reallocations, 0, "{stats:?}");
    assert_eq!(accepted, 10_000);
    // 10k translations each way moved every field 10k times: ack, SACK edges
    // and TSecr by 10k x delta / offset, seq and TSval by -10k x; the
    // checksum still verifies.
    let packet = TcpPacket::new_checked(&seg[..len]).expect("valid segment");
    assert!(packet.verify_checksum(CLIENT, VIP));
    assert_eq!(
        packet.ack_number(),
        2u32.wrapping_add(0x8f99_5f4fu32.wrapping_mul(10_000))
    );
    assert_eq!(
        packet.seq_number(),
        1u32.wrapping_sub(0x8f99_5f4fu32.wrapping_mul(10_000))
    );
    assert_eq!(packet.mss(), Some(1399));
    // 64 scaled by 2^3 per pass: 512, 4096, 32768, then clamped.
    assert_eq!(packet.window_len(), 0xFFFF);
}

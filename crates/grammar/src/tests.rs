//! Unit tests of internals.

use super::matcher::{utf8_next, utf8_start, Frame};

#[test]
fn frame_is_small() {
    assert!(std::mem::size_of::<Frame>() <= 24);
}

#[test]
fn utf8_state_machine_matches_std() {
    // Every 1..=4 byte sequence over a representative byte set agrees with std.
    let interesting: Vec<u8> = (0u8..=255).filter(|b| b % 7 == 0 || *b >= 0x7E).collect();
    let accepts = |bytes: &[u8]| -> Option<bool> {
        let mut p = 0u8;
        for &b in bytes {
            p = if p == 0 {
                utf8_start(b)?
            } else {
                utf8_next(p, b)?
            };
        }
        Some(p == 0)
    };
    for &a in &interesting {
        for &b in &interesting {
            for &c in &[0x80u8, 0x90, 0xA0, 0xBF, 0x41] {
                let seq = [a, b, c];
                let std_ok = std::str::from_utf8(&seq).is_ok();
                assert_eq!(accepts(&seq) == Some(true), std_ok, "{seq:02x?}");
            }
        }
    }
}

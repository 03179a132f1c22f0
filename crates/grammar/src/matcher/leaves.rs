//! The leaf frames of the matcher: bytes of numbers, literals (`enum`/`const`/`true`/…), object
//! keys and strings.

use super::*;

pub(super) fn number_byte(
    g: &Grammar,
    slot: &mut Stack,
    num: (bool, NumState, u16),
    b: u8,
) -> bool {
    use NumState::*;
    let (integer, state, n) = num;
    let digit = b.is_ascii_digit();
    let d = u16::from(b.wrapping_sub(b'0'));
    let next = match (state, b) {
        (Minus, b'0') => Some((Zero, 0)),
        (Minus, b'1'..=b'9') => Some((Int, 1)),
        (Int, _) if digit && n < MAX_INT_DIGITS => Some((Int, n + 1)),
        (Zero | Int, b'.') if !integer => Some((Frac0, 0)),
        (Zero | Int | Frac, b'e' | b'E') if !integer => Some((Exp0, 0)),
        (Frac0 | Frac, _) if digit => Some((Frac, 0)),
        (Exp0, b'+' | b'-') => Some((ExpSign, 0)),
        (Exp0 | ExpSign, _) if digit => Some((Exp, d)),
        (Exp, _) if digit && n * 10 + d <= MAX_EXPONENT => Some((Exp, n * 10 + d)),
        _ => None,
    };
    match next {
        Some((state, n)) => {
            replace_top(slot, Frame::Num { integer, state, n });
            true
        }
        None if state.can_end() => end_and_reapply(g, slot, b),
        None => false,
    }
}

pub(super) fn literal_byte(
    g: &Grammar,
    slot: &mut Stack,
    node: NodeId,
    cur: u32,
    k: u32,
    b: u8,
) -> bool {
    let values = g.literal_values(node);
    let (cur_u, k_u) = (cur as usize, k as usize);
    let Some(prefix) = values.get(cur_u).and_then(|v| v.get(..k_u)) else {
        return false;
    };
    // Values sharing the prefix follow `cur` in sorted order, ordered by their next byte.
    let mut j = cur_u;
    while let Some(v) = values.get(j) {
        if !v.starts_with(prefix) {
            break;
        }
        if let Some(&c) = v.get(k_u) {
            if c == b {
                replace_top(
                    slot,
                    Frame::Lit {
                        node,
                        cur: j as u32,
                        k: k + 1,
                    },
                );
                if literal_finished(values, j, k_u + 1) {
                    return complete_value(slot);
                }
                return true;
            }
            if c > b {
                break;
            }
        }
        j += 1;
    }
    if values[cur_u].len() == k_u {
        return end_and_reapply(g, slot, b);
    }
    false
}

#[allow(clippy::too_many_arguments)]
pub(super) fn key_byte(
    g: &Grammar,
    slot: &mut Stack,
    obj: NodeId,
    hi: u32,
    cur: u32,
    k: u32,
    b: u8,
) -> bool {
    let o = g.object(obj);
    let containers = (slot.frames.len() as u32).saturating_sub(1);
    let k_u = k as usize;
    let Some(prefix) = o.props.get(cur as usize).and_then(|p| p.key.get(..k_u)) else {
        return false;
    };
    for j in cur..=hi {
        let Some(p) = o.props.get(j as usize) else {
            break;
        };
        if p.key.get(k_u) != Some(&b) || !p.key.starts_with(prefix) || !g.fits(p.node, containers) {
            continue;
        }
        if p.key.len() == k_u + 1 {
            return finish_key(slot, p.node, j + 1);
        }
        replace_top(
            slot,
            Frame::Key {
                obj,
                hi,
                cur: j,
                k: k + 1,
            },
        );
        return true;
    }
    false
}

/// The first declared key of `obj` at or after `cur` whose text extends the `k` bytes
/// matched so far with `b`.
pub(super) fn shadow_step(
    g: &Grammar,
    obj: NodeId,
    cur: u32,
    k: u32,
    b: u8,
) -> Option<(u32, bool)> {
    let props = &g.object(obj).props;
    let k_u = k as usize;
    let prefix = props.get(cur as usize)?.key.get(..k_u)?;
    for (j, p) in props.iter().enumerate().skip(cur as usize) {
        if p.key.get(k_u) == Some(&b) && p.key.starts_with(prefix) {
            return Some((j as u32, p.key.len() == k_u + 1));
        }
    }
    None
}

pub(super) fn string_byte(g: &Grammar, slot: &mut Stack, top: Frame, b: u8) -> bool {
    let Frame::Str {
        node,
        mut chars,
        key,
        mut esc,
        mut utf8,
        mut sh_cur,
        mut sh_k,
    } = top
    else {
        return false;
    };
    let (min, max) = if key {
        (0, UNBOUNDED)
    } else {
        g.string_bounds(node)
    };
    let hex = is_hex(b);
    match esc {
        Esc::None => {
            if utf8 != 0 {
                match utf8_next(utf8, b) {
                    Some(u) => utf8 = u,
                    None => return false,
                }
            } else if b == b'"' {
                if key {
                    let o = g.object(node);
                    let equals_declared = sh_cur != NONE
                        && shadow_step(g, node, sh_cur, sh_k, b).is_some_and(|(_, full)| full);
                    let Some(additional) = o.additional else {
                        return false;
                    };
                    return !equals_declared && finish_key(slot, additional, o.len());
                }
                return chars >= min && complete_value(slot);
            } else if b < 0x20 {
                return false;
            } else {
                if chars >= max {
                    return false;
                }
                chars += 1;
                if b == b'\\' {
                    esc = Esc::Backslash;
                } else {
                    match utf8_start(b) {
                        Some(u) => utf8 = u,
                        None => return false,
                    }
                }
            }
        }
        Esc::Backslash => match b {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => esc = Esc::None,
            b'u' => esc = Esc::HexFirst,
            _ => return false,
        },
        Esc::HexFirst if b == b'd' || b == b'D' => esc = Esc::HexD,
        Esc::HexFirst if hex => esc = Esc::Hex3,
        Esc::HexD => match b {
            b'0'..=b'7' => esc = Esc::Hex2,
            b'8' | b'9' | b'a' | b'b' | b'A' | b'B' => esc = Esc::HighHex2,
            _ => return false,
        },
        Esc::Hex3 if hex => esc = Esc::Hex2,
        Esc::Hex2 if hex => esc = Esc::Hex1,
        Esc::Hex1 if hex => esc = Esc::None,
        Esc::HighHex2 if hex => esc = Esc::HighHex1,
        Esc::HighHex1 if hex => esc = Esc::LowBackslash,
        Esc::LowBackslash if b == b'\\' => esc = Esc::LowU,
        Esc::LowU if b == b'u' => esc = Esc::LowD,
        Esc::LowD if b == b'd' || b == b'D' => esc = Esc::LowC,
        Esc::LowC if matches!(b, b'c'..=b'f' | b'C'..=b'F') => esc = Esc::Hex2,
        _ => return false,
    }
    if key && sh_cur != NONE {
        match shadow_step(g, node, sh_cur, sh_k, b) {
            Some((j, _)) => {
                sh_cur = j;
                sh_k += 1;
            }
            None => sh_cur = NONE,
        }
    }
    replace_top(
        slot,
        Frame::Str {
            node,
            chars,
            key,
            esc,
            utf8,
            sh_cur,
            sh_k,
        },
    );
    true
}

/// For a stack reading plain string content (no escape or UTF-8 sequence in progress), how
/// many more characters it may take.
pub(crate) fn plain_string_room(g: &Grammar, s: &Stack) -> Option<u32> {
    match s.frames.last() {
        Some(&Frame::Str {
            node,
            chars,
            key,
            esc: Esc::None,
            utf8: 0,
            ..
        }) => {
            if key {
                return Some(UNBOUNDED);
            }
            let (_, max) = g.string_bounds(node);
            Some(if max == UNBOUNDED {
                UNBOUNDED
            } else {
                max.saturating_sub(chars)
            })
        }
        _ => None,
    }
}

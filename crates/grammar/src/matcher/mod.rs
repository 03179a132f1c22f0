//! The incremental byte matcher.
//!
//! A matcher state is a small set of alternative *stacks*. Each stack is a pushdown
//! automaton configuration: container frames (objects and arrays being parsed) with one
//! leaf frame on top (a value about to start, a string, number, literal or key being read).
//! A byte advances every stack; a stack that cannot take the byte dies, and a stack that
//! can take it in several ways (the alternatives of `anyOf`, a declared key versus an extra
//! key) splits. Identical stacks are merged and at most [`MAX_ALTERNATIVES`] are kept.
//!
//! Every decision that could lead into a state with no completion (an optional property
//! whose schema is unsatisfiable, a nested value deeper than the limit allows) is refused
//! when it is made, so any state the matcher reaches can still be completed.

use std::fmt;
use std::sync::Arc;

use crate::grammar::{Grammar, Node, NodeId, UNBOUNDED};

mod leaves;
pub(crate) use leaves::plain_string_room;
use leaves::*;

/// Most alternative stacks kept; further ones are dropped (the accepted language shrinks).
pub(crate) const MAX_ALTERNATIVES: usize = 64;
/// "No candidate" for the key shadow of an extra key.
const NONE: u32 = u32::MAX;
/// Most digits before the decimal point of a number.
pub(crate) const MAX_INT_DIGITS: u16 = 200;
/// Largest exponent magnitude of a number. With [`MAX_INT_DIGITS`] this keeps every number
/// below 1e300, so it parses as a finite `f64` (serde_json rejects infinite ones).
pub(crate) const MAX_EXPONENT: u16 = 99;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ObjPhase {
    /// After `{`: a key or `}`.
    Open,
    /// A key frame is on top.
    InKey,
    /// After a key: `:`.
    AfterKey,
    /// A value frame is on top.
    InValue,
    /// After a value: `,` or `}`.
    AfterValue,
    /// After `,`: a key.
    AfterComma,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArrPhase {
    /// After `[`: an item or `]`.
    Open,
    /// An item frame is on top.
    InItem,
    /// After an item: `,` or `]`.
    AfterValue,
}

/// Escape-sequence state inside a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Esc {
    None,
    /// After `\`.
    Backslash,
    /// After `\u`.
    HexFirst,
    /// After `\uD`: the second digit decides between BMP and surrogate.
    HexD,
    /// Hex digits left of an ordinary `\uXXXX` (or of a low surrogate).
    Hex3,
    Hex2,
    Hex1,
    /// Hex digits left of a high surrogate `\uD[89AB]XX`.
    HighHex2,
    HighHex1,
    /// After a high surrogate: `\uDC00`-`\uDFFF` must follow.
    LowBackslash,
    LowU,
    LowD,
    LowC,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NumState {
    Minus,
    Zero,
    Int,
    Frac0,
    Frac,
    Exp0,
    ExpSign,
    Exp,
}

impl NumState {
    fn can_end(self) -> bool {
        matches!(
            self,
            NumState::Zero | NumState::Int | NumState::Frac | NumState::Exp
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A value of `node` comes next (whitespace may precede it).
    Value { node: NodeId },
    Obj {
        node: NodeId,
        /// First declared property that may still come.
        next: u32,
        /// Schema of the value after the key just read.
        val: NodeId,
        phase: ObjPhase,
    },
    Arr {
        node: NodeId,
        /// Items completed so far.
        count: u32,
        phase: ArrPhase,
    },
    /// A string value (`key == false`, `node` is the string node) or an extra object key
    /// (`key == true`, `node` is the object node).
    Str {
        node: NodeId,
        /// Characters so far (an escape or a surrogate pair counts once).
        chars: u32,
        key: bool,
        esc: Esc,
        /// Pending UTF-8 continuation bytes, see [`utf8_start`].
        utf8: u8,
        /// Extra keys: the first declared key whose text starts with the bytes read so far
        /// (`NONE` if none); a key equal to a declared key is refused.
        sh_cur: u32,
        /// Bytes of the key text read so far, the opening quote included.
        sh_k: u32,
    },
    /// A number; `n` counts integer digits (in `Int`) or holds the exponent (in `Exp`).
    Num {
        integer: bool,
        state: NumState,
        n: u16,
    },
    /// A literal of a literal set: `values[cur][..k]` has been read; `cur` is the first
    /// value with that prefix.
    Lit { node: NodeId, cur: u32, k: u32 },
    /// A declared key among properties `cur..=hi` of the object below.
    Key {
        obj: NodeId,
        hi: u32,
        cur: u32,
        k: u32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct Stack {
    pub frames: Vec<Frame>,
    /// Consecutive whitespace bytes just read between tokens.
    pub ws: u8,
}

/// A set of stacks whose buffers are reused from step to step.
#[derive(Debug, Default)]
pub(crate) struct StackSet {
    stacks: Vec<Stack>,
    len: usize,
}

impl Clone for StackSet {
    fn clone(&self) -> Self {
        StackSet {
            stacks: self.live().to_vec(),
            len: self.len,
        }
    }

    fn clone_from(&mut self, source: &Self) {
        self.len = 0;
        for s in source.live() {
            self.push_copy(s);
        }
    }
}

impl StackSet {
    pub(crate) fn live(&self) -> &[Stack] {
        &self.stacks[..self.len]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    pub(crate) fn push_copy(&mut self, src: &Stack) -> &mut Stack {
        if self.len == self.stacks.len() {
            self.stacks.push(Stack {
                frames: Vec::with_capacity(src.frames.len() + 4),
                ws: 0,
            });
        }
        let slot = &mut self.stacks[self.len];
        slot.frames.clear();
        slot.frames.extend_from_slice(&src.frames);
        slot.ws = src.ws;
        self.len += 1;
        slot
    }

    fn pop(&mut self) {
        self.len = self.len.saturating_sub(1);
    }

    fn dedup(&mut self) {
        let mut kept = 0;
        for i in 0..self.len {
            let duplicate = (0..kept).any(|j| self.stacks[j] == self.stacks[i]);
            if !duplicate {
                self.stacks.swap(kept, i);
                kept += 1;
            }
        }
        self.len = kept;
    }
}

pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\t' | b'\r')
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// UTF-8 state after a byte read at a character boundary: `Some(0)` for ASCII, the pending
/// continuation state for a valid lead byte, `None` for a byte that cannot start a
/// character. The pending state holds the number of continuation bytes left (high nibble)
/// and the allowed range of the next one (low nibble), which excludes overlong forms,
/// surrogates and code points above U+10FFFF.
pub(crate) fn utf8_start(b: u8) -> Option<u8> {
    match b {
        0x00..=0x7F => Some(0),
        0xC2..=0xDF => Some(0x10),
        0xE0 => Some(0x21),
        0xE1..=0xEC | 0xEE..=0xEF => Some(0x20),
        0xED => Some(0x22),
        0xF0 => Some(0x33),
        0xF1..=0xF3 => Some(0x30),
        0xF4 => Some(0x34),
        _ => None,
    }
}

/// UTF-8 state after continuation byte `b` in pending state `p != 0`.
pub(crate) fn utf8_next(p: u8, b: u8) -> Option<u8> {
    let (lo, hi) = match p & 0x0F {
        1 => (0xA0, 0xBF),
        2 => (0x80, 0x9F),
        3 => (0x90, 0xBF),
        4 => (0x80, 0x8F),
        _ => (0x80, 0xBF),
    };
    if b < lo || b > hi {
        return None;
    }
    let left = (p >> 4).saturating_sub(1);
    Some(left << 4)
}

/// Advances every stack of `src` by `b` into `out` (cleared first).
pub(crate) fn step_set(g: &Grammar, src: &[Stack], b: u8, out: &mut StackSet) {
    out.clear();
    for s in src {
        step_stack(g, s, b, out);
    }
    if out.len > 1 {
        out.dedup();
    }
    if out.len > MAX_ALTERNATIVES {
        tracing::debug!(
            alternatives = out.len,
            kept = MAX_ALTERNATIVES,
            "too many grammar alternatives; dropping the rest"
        );
        out.len = MAX_ALTERNATIVES;
    }
}

/// Whether `bytes` is a complete document of `node`.
pub(crate) fn accepts_document(g: &Grammar, node: NodeId, bytes: &[u8]) -> bool {
    let mut cur = StackSet::default();
    cur.push_copy(&Stack {
        frames: vec![Frame::Value { node }],
        ws: 0,
    });
    let mut next = StackSet::default();
    for &b in bytes {
        step_set(g, cur.live(), b, &mut next);
        if next.is_empty() {
            return false;
        }
        std::mem::swap(&mut cur, &mut next);
    }
    cur.live().iter().any(|s| stack_complete(g, s))
}

fn stack_complete(g: &Grammar, s: &Stack) -> bool {
    match s.frames.as_slice() {
        [] => true,
        [Frame::Num { state, .. }] => state.can_end(),
        [Frame::Lit { node, cur, k }] => g
            .literal_values(*node)
            .get(*cur as usize)
            .is_some_and(|v| v.len() == *k as usize),
        _ => false,
    }
}

/// How a copied stack is prepared before a value starts on it.
#[derive(Clone, Copy)]
enum Prep {
    /// The top is a `Value` frame: replace it.
    PopValue,
    /// The top is an array right after `[`: the item starts directly.
    ArrItem,
}

fn step_stack(g: &Grammar, src: &Stack, b: u8, out: &mut StackSet) {
    let Some(&top) = src.frames.last() else {
        return;
    };
    match top {
        Frame::Value { node } => {
            if is_ws(b) {
                if src.ws < g.max_ws {
                    let slot = out.push_copy(src);
                    slot.ws += 1;
                }
            } else {
                let containers = src.frames.len() as u32 - 1;
                start_value(g, src, node, containers, b, out, Prep::PopValue);
            }
        }
        Frame::Arr {
            node,
            count,
            phase: ArrPhase::Open,
        } if !is_ws(b) && b != b']' => {
            let containers = src.frames.len() as u32;
            if let Some(item) = item_to_start(g, node, count, containers) {
                start_value(g, src, item, containers, b, out, Prep::ArrItem);
            }
        }
        Frame::Obj {
            node,
            next,
            phase: ObjPhase::Open | ObjPhase::AfterComma,
            ..
        } if b == b'"' => start_key(g, src, node, next, out),
        _ => {
            let slot = out.push_copy(src);
            if !apply(g, slot, b) {
                out.pop();
            }
        }
    }
}

fn replace_top(slot: &mut Stack, frame: Frame) {
    if let Some(top) = slot.frames.last_mut() {
        *top = frame;
    }
}

/// Starts a value of `node` with byte `b`, one stack per fitting alternative.
fn start_value(
    g: &Grammar,
    src: &Stack,
    node: NodeId,
    containers: u32,
    b: u8,
    out: &mut StackSet,
    prep: Prep,
) {
    for &alt in g.alts_of(node) {
        if !g.first[alt as usize].contains(b) || !g.fits(alt, containers) {
            continue;
        }
        let slot = out.push_copy(src);
        slot.ws = 0;
        match prep {
            Prep::PopValue => {
                slot.frames.pop();
            }
            Prep::ArrItem => {
                if let Some(Frame::Arr { phase, .. }) = slot.frames.last_mut() {
                    *phase = ArrPhase::InItem;
                }
            }
        }
        if !begin(g, slot, alt, b) {
            out.pop();
        }
    }
}

/// Pushes the frame of concrete node `alt` after its first byte `b`.
fn begin(g: &Grammar, slot: &mut Stack, alt: NodeId, b: u8) -> bool {
    let frame = match g.nodes.get(alt as usize) {
        Some(Node::Object(_)) if b == b'{' => Frame::Obj {
            node: alt,
            next: 0,
            val: 0,
            phase: ObjPhase::Open,
        },
        Some(Node::Array(_)) if b == b'[' => Frame::Arr {
            node: alt,
            count: 0,
            phase: ArrPhase::Open,
        },
        Some(Node::String { .. }) if b == b'"' => Frame::Str {
            node: alt,
            chars: 0,
            key: false,
            esc: Esc::None,
            utf8: 0,
            sh_cur: NONE,
            sh_k: 0,
        },
        Some(Node::Number { integer }) => {
            let state = match b {
                b'-' => NumState::Minus,
                b'0' => NumState::Zero,
                b'1'..=b'9' => NumState::Int,
                _ => return false,
            };
            Frame::Num {
                integer: *integer,
                state,
                n: u16::from(state == NumState::Int),
            }
        }
        Some(Node::Literals(l)) => {
            let i = l
                .values
                .partition_point(|v| v.first().is_some_and(|&f| f < b));
            if l.values.get(i).and_then(|v| v.first()) != Some(&b) {
                return false;
            }
            slot.frames.push(Frame::Lit {
                node: alt,
                cur: i as u32,
                k: 1,
            });
            if literal_finished(&l.values, i, 1) {
                return complete_value(slot);
            }
            return true;
        }
        _ => return false,
    };
    slot.frames.push(frame);
    true
}

/// Whether `values[cur]` has exactly `k` bytes and no other value extends it.
fn literal_finished(values: &[Box<[u8]>], cur: usize, k: usize) -> bool {
    let Some(v) = values.get(cur) else {
        return false;
    };
    v.len() == k && !values.get(cur + 1).is_some_and(|w| w.starts_with(v))
}

/// Pops the finished leaf; the container below (if any) records a completed value.
fn complete_value(slot: &mut Stack) -> bool {
    slot.frames.pop();
    match slot.frames.last_mut() {
        None => true,
        Some(Frame::Obj { phase, .. }) if *phase == ObjPhase::InValue => {
            *phase = ObjPhase::AfterValue;
            true
        }
        Some(Frame::Arr { count, phase, .. }) if *phase == ArrPhase::InItem => {
            *count = count.saturating_add(1);
            *phase = ArrPhase::AfterValue;
            true
        }
        _ => false,
    }
}

/// The schema of item number `count` of array `node`, if one may start there.
fn item_to_start(g: &Grammar, node: NodeId, count: u32, containers: u32) -> Option<NodeId> {
    let item = g.array(node).item(count)?;
    g.fits(item, containers).then_some(item)
}

fn prop_fits(g: &Grammar, obj: NodeId, j: u32, containers: u32) -> bool {
    g.object(obj)
        .props
        .get(j as usize)
        .is_some_and(|p| g.fits(p.node, containers))
}

fn extra_fits(g: &Grammar, obj: NodeId, next: u32, containers: u32) -> bool {
    let o = g.object(obj);
    o.extra_allowed(next) && o.additional.is_some_and(|a| g.fits(a, containers))
}

/// Whether some key may come next in object `obj` (with `containers` open, itself included).
fn key_available(g: &Grammar, obj: NodeId, next: u32, containers: u32) -> bool {
    let o = g.object(obj);
    (next < o.len() && (next..=o.declared_hi(next)).any(|j| prop_fits(g, obj, j, containers)))
        || extra_fits(g, obj, next, containers)
}

/// The opening quote of a key: a declared-key stack and/or an extra-key stack.
fn start_key(g: &Grammar, src: &Stack, obj: NodeId, next: u32, out: &mut StackSet) {
    let o = g.object(obj);
    let containers = src.frames.len() as u32;
    let set_in_key = |slot: &mut Stack| {
        slot.ws = 0;
        if let Some(Frame::Obj { phase, .. }) = slot.frames.last_mut() {
            *phase = ObjPhase::InKey;
        }
    };
    if next < o.len() {
        let hi = o.declared_hi(next);
        if let Some(j) = (next..=hi).find(|&j| prop_fits(g, obj, j, containers)) {
            let slot = out.push_copy(src);
            set_in_key(slot);
            slot.frames.push(Frame::Key {
                obj,
                hi,
                cur: j,
                k: 1,
            });
        }
    }
    if extra_fits(g, obj, next, containers) {
        let slot = out.push_copy(src);
        set_in_key(slot);
        slot.frames.push(Frame::Str {
            node: obj,
            chars: 0,
            key: true,
            esc: Esc::None,
            utf8: 0,
            sh_cur: if o.props.is_empty() { NONE } else { 0 },
            sh_k: 1,
        });
    }
}

/// Sets the object below a finished key to expect `:`.
fn finish_key(slot: &mut Stack, value: NodeId, new_next: u32) -> bool {
    slot.frames.pop();
    match slot.frames.last_mut() {
        Some(Frame::Obj {
            next, val, phase, ..
        }) if *phase == ObjPhase::InKey => {
            *next = new_next;
            *val = value;
            *phase = ObjPhase::AfterKey;
            true
        }
        _ => false,
    }
}

/// Applies `b` to a stack whose top needs no splitting.
fn apply(g: &Grammar, slot: &mut Stack, b: u8) -> bool {
    let prev_ws = slot.ws;
    slot.ws = 0;
    let ws = is_ws(b);
    let containers = slot.frames.len() as u32;
    let Some(&top) = slot.frames.last() else {
        return false;
    };
    let ws_inc = |slot: &mut Stack| {
        if prev_ws < g.max_ws {
            slot.ws = prev_ws + 1;
            true
        } else {
            false
        }
    };
    match top {
        Frame::Obj {
            node,
            next,
            val,
            phase,
        } => {
            if ws {
                return matches!(
                    phase,
                    ObjPhase::Open
                        | ObjPhase::AfterKey
                        | ObjPhase::AfterValue
                        | ObjPhase::AfterComma
                ) && ws_inc(slot);
            }
            match (phase, b) {
                (ObjPhase::Open | ObjPhase::AfterValue, b'}') => {
                    g.object(node).can_close(next) && complete_value(slot)
                }
                (ObjPhase::AfterKey, b':') => {
                    replace_top(
                        slot,
                        Frame::Obj {
                            node,
                            next,
                            val,
                            phase: ObjPhase::InValue,
                        },
                    );
                    slot.frames.push(Frame::Value { node: val });
                    true
                }
                (ObjPhase::AfterValue, b',') => {
                    if !key_available(g, node, next, containers) {
                        return false;
                    }
                    replace_top(
                        slot,
                        Frame::Obj {
                            node,
                            next,
                            val,
                            phase: ObjPhase::AfterComma,
                        },
                    );
                    true
                }
                _ => false,
            }
        }
        Frame::Arr { node, count, phase } => {
            if ws {
                return matches!(phase, ArrPhase::Open | ArrPhase::AfterValue) && ws_inc(slot);
            }
            let a = g.array(node);
            match (phase, b) {
                (ArrPhase::Open, b']') => a.min == 0 && complete_value(slot),
                (ArrPhase::AfterValue, b']') => count >= a.min && complete_value(slot),
                (ArrPhase::AfterValue, b',') => match item_to_start(g, node, count, containers) {
                    Some(item) => {
                        replace_top(
                            slot,
                            Frame::Arr {
                                node,
                                count,
                                phase: ArrPhase::InItem,
                            },
                        );
                        slot.frames.push(Frame::Value { node: item });
                        true
                    }
                    None => false,
                },
                _ => false,
            }
        }
        Frame::Str { .. } => string_byte(g, slot, top, b),
        Frame::Num { integer, state, n } => number_byte(g, slot, (integer, state, n), b),
        Frame::Lit { node, cur, k } => literal_byte(g, slot, node, cur, k, b),
        Frame::Key { obj, hi, cur, k } => key_byte(g, slot, obj, hi, cur, k, b),
        Frame::Value { .. } => false,
    }
}

/// After a number or literal ends without consuming `b`, the container below reads `b`.
fn end_and_reapply(g: &Grammar, slot: &mut Stack, b: u8) -> bool {
    if !complete_value(slot) || slot.frames.is_empty() {
        // Nothing may follow the top-level value.
        return false;
    }
    apply(g, slot, b)
}

/// Incremental matching state for one document; cheap to clone.
///
/// Feed the bytes of generated tokens with [`Matcher::accept_bytes`]. At every point the
/// bytes accepted so far are a prefix of at least one document of the grammar's language
/// and that document can be completed (the matcher never accepts a byte that leads into a
/// dead end).
#[derive(Clone)]
pub struct Matcher {
    grammar: Arc<Grammar>,
    set: StackSet,
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Matcher")
            .field("alternatives", &self.set.len)
            .field("complete", &self.is_complete())
            .finish()
    }
}

impl Matcher {
    /// A matcher at the start of a document.
    pub fn new(grammar: Arc<Grammar>) -> Matcher {
        let mut set = StackSet::default();
        set.push_copy(&Stack {
            frames: vec![Frame::Value { node: grammar.root }],
            ws: 0,
        });
        Matcher { grammar, set }
    }

    /// The grammar this matcher follows.
    pub fn grammar(&self) -> &Arc<Grammar> {
        &self.grammar
    }

    /// Goes back to the start of a document.
    pub fn reset(&mut self) {
        *self = Matcher::new(self.grammar.clone());
    }

    /// Appends `bytes` to the document.
    ///
    /// Returns `false`, leaving the matcher unchanged, when the bytes do not keep the
    /// document a valid prefix (including when the document is already finished and
    /// `bytes` is non-empty). An empty slice is always accepted.
    pub fn accept_bytes(&mut self, bytes: &[u8]) -> bool {
        let Some((&first, rest)) = bytes.split_first() else {
            return true;
        };
        let g = &*self.grammar;
        let mut cur = StackSet::default();
        step_set(g, self.set.live(), first, &mut cur);
        if cur.is_empty() {
            return false;
        }
        let mut next = StackSet::default();
        for &b in rest {
            step_set(g, cur.live(), b, &mut next);
            if next.is_empty() {
                return false;
            }
            std::mem::swap(&mut cur, &mut next);
        }
        self.set = cur;
        true
    }

    /// Whether the bytes so far form a complete document of the grammar.
    ///
    /// For a top-level number this is true as soon as the digits read so far are a valid
    /// number, even though more digits may follow.
    pub fn is_complete(&self) -> bool {
        self.set
            .live()
            .iter()
            .any(|s| stack_complete(&self.grammar, s))
    }

    /// Whether some non-empty continuation is accepted.
    ///
    /// False once a top-level object, array, string or literal is closed, and when the
    /// only possible continuation would exceed a limit. Generation should end when
    /// `is_complete() && !can_continue()`.
    pub fn can_continue(&self) -> bool {
        let mut out = StackSet::default();
        (0..=255u8).any(|b| {
            step_set(&self.grammar, self.set.live(), b, &mut out);
            !out.is_empty()
        })
    }

    pub(crate) fn stacks(&self) -> &[Stack] {
        self.set.live()
    }
}

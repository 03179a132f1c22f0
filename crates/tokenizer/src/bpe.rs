//! Byte-pair merging over raw bytes.
//!
//! Two ways to rank a pair of adjacent parts:
//! - `Ranks` (tiktoken): the rank of the pair is the rank (= id) of the concatenated bytes;
//! - `Pairs` (HF / GGUF merges): the rank is the index of the merge `(left id, right id)`.
//!
//! In both, the lowest-ranked pair merges first and ties go to the leftmost pair (tiktoken's
//! `byte_pair_merge`, HF's and llama.cpp's priority queues). Short pieces use a linear scan, long
//! ones a heap; the two are checked against each other by a test.

use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

pub(crate) const NONE: u32 = u32::MAX;

/// Pieces at least this long use the heap-based merge.
const HEAP_THRESHOLD: usize = 128;

#[derive(Debug, Clone)]
pub(crate) enum Merges {
    Ranks,
    /// `(left << 32 | right)` → `(rank, merged id)`.
    Pairs(FxHashMap<u64, (u32, u32)>),
}

#[derive(Debug, Clone)]
pub(crate) struct Bpe {
    /// Ordinary tokens: raw bytes → id.
    pub(crate) encoder: FxHashMap<Box<[u8]>, u32>,
    /// Id of each single byte, or `NONE`.
    pub(crate) byte_ids: [u32; 256],
    pub(crate) merges: Merges,
    /// Look the whole piece up before merging (tiktoken always does; HF `ignore_merges`).
    pub(crate) ignore_merges: bool,
}

/// (rank, left start, right end, left end, merged id); ordered by rank, then leftmost.
type HeapEntry = (u32, usize, usize, usize, u32);

#[derive(Clone, Copy)]
struct Part {
    start: usize,
    id: u32,
}

#[inline]
fn pair_key(a: u32, b: u32) -> u64 {
    (u64::from(a) << 32) | u64::from(b)
}

impl Bpe {
    pub(crate) fn new(
        encoder: FxHashMap<Box<[u8]>, u32>,
        merges: Merges,
        ignore_merges: bool,
    ) -> Self {
        let mut byte_ids = [NONE; 256];
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            if let Some(&id) = encoder.get(&[b as u8][..]) {
                *slot = id;
            }
        }
        Bpe {
            encoder,
            byte_ids,
            merges,
            ignore_merges,
        }
    }

    /// The (rank, merged id) of merging the part `[a_start, mid)` (id `a`) with `[mid, end)` (id `b`).
    #[inline]
    fn rank(&self, piece: &[u8], a_start: usize, a: u32, b: u32, end: usize) -> Option<(u32, u32)> {
        match &self.merges {
            Merges::Ranks => {
                let bytes = piece.get(a_start..end)?;
                self.encoder.get(bytes).map(|&id| (id, id))
            }
            Merges::Pairs(map) => {
                if a == NONE || b == NONE {
                    return None;
                }
                map.get(&pair_key(a, b)).copied()
            }
        }
    }

    /// Appends the ids of one pre-token.
    pub(crate) fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) {
        if piece.is_empty() {
            return;
        }
        if self.ignore_merges || matches!(self.merges, Merges::Ranks) {
            if let Some(&id) = self.encoder.get(piece) {
                out.push(id);
                return;
            }
        }
        if piece.len() == 1 {
            self.push_part(piece, 0, 1, self.byte_ids[usize::from(piece[0])], out);
            return;
        }
        if piece.len() < HEAP_THRESHOLD {
            self.merge_linear(piece, out);
        } else {
            self.merge_heap(piece, out);
        }
    }

    fn push_part(&self, piece: &[u8], start: usize, end: usize, id: u32, out: &mut Vec<u32>) {
        if id != NONE {
            out.push(id);
            return;
        }
        // A part that is not a token (only possible with a vocabulary that lacks some bytes):
        // like llama.cpp, emit the tokens of its single bytes that exist.
        if let Some(bytes) = piece.get(start..end) {
            for &b in bytes {
                let bid = self.byte_ids[usize::from(b)];
                if bid != NONE {
                    out.push(bid);
                }
            }
        }
    }

    pub(crate) fn merge_linear(&self, piece: &[u8], out: &mut Vec<u32>) {
        let n = piece.len();
        let mut parts: Vec<Part> = piece
            .iter()
            .enumerate()
            .map(|(i, &b)| Part {
                start: i,
                id: self.byte_ids[usize::from(b)],
            })
            .collect();
        // ranks[i] = rank of merging parts[i] and parts[i + 1]
        let end_of = |parts: &[Part], i: usize| parts.get(i + 1).map_or(n, |p| p.start);
        let mut ranks: Vec<(u32, u32)> = (0..parts.len().saturating_sub(1))
            .map(|i| {
                self.rank(
                    piece,
                    parts[i].start,
                    parts[i].id,
                    parts[i + 1].id,
                    end_of(&parts, i + 1),
                )
                .unwrap_or((NONE, NONE))
            })
            .collect();
        loop {
            let mut best = NONE;
            let mut best_i = usize::MAX;
            for (i, &(r, _)) in ranks.iter().enumerate() {
                if r < best {
                    best = r;
                    best_i = i;
                }
            }
            if best == NONE {
                break;
            }
            let new_id = ranks[best_i].1;
            parts[best_i].id = new_id;
            parts.remove(best_i + 1);
            ranks.remove(best_i);
            if best_i + 1 < parts.len() {
                ranks[best_i] = self
                    .rank(
                        piece,
                        parts[best_i].start,
                        parts[best_i].id,
                        parts[best_i + 1].id,
                        end_of(&parts, best_i + 1),
                    )
                    .unwrap_or((NONE, NONE));
            }
            if best_i > 0 {
                ranks[best_i - 1] = self
                    .rank(
                        piece,
                        parts[best_i - 1].start,
                        parts[best_i - 1].id,
                        parts[best_i].id,
                        end_of(&parts, best_i),
                    )
                    .unwrap_or((NONE, NONE));
            }
        }
        for (i, p) in parts.iter().enumerate() {
            self.push_part(piece, p.start, end_of(&parts, i), p.id, out);
        }
    }

    pub(crate) fn merge_heap(&self, piece: &[u8], out: &mut Vec<u32>) {
        let n = piece.len();
        // Parts are indexed by their start byte; `end[i]` is exclusive; `prev`/`next` link alive parts.
        let mut id: Vec<u32> = piece
            .iter()
            .map(|&b| self.byte_ids[usize::from(b)])
            .collect();
        let mut end: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        let mut alive = vec![true; n];
        // (rank, left, right end, left end, merged id)
        let mut heap: BinaryHeap<Reverse<HeapEntry>> = BinaryHeap::with_capacity(n);
        for i in 0..n.saturating_sub(1) {
            if let Some((r, new)) = self.rank(piece, i, id[i], id[i + 1], i + 2) {
                heap.push(Reverse((r, i, i + 2, i + 1, new)));
            }
        }
        while let Some(Reverse((_, left, right_end, left_end, new))) = heap.pop() {
            // Valid only if `left` is alive, unchanged, and its right neighbour is unchanged.
            if !alive[left] || end[left] != left_end || left_end >= n || !alive[left_end] {
                continue;
            }
            let right = left_end;
            if end[right] != right_end {
                continue;
            }
            id[left] = new;
            end[left] = right_end;
            alive[right] = false;
            if right_end < n {
                prev[right_end] = left;
                if let Some((r, nid)) =
                    self.rank(piece, left, id[left], id[right_end], end[right_end])
                {
                    heap.push(Reverse((r, left, end[right_end], right_end, nid)));
                }
            }
            let p = prev[left];
            if p != usize::MAX {
                if let Some((r, nid)) = self.rank(piece, p, id[p], id[left], right_end) {
                    heap.push(Reverse((r, p, right_end, left, nid)));
                }
            }
        }
        let mut i = 0;
        while i < n {
            self.push_part(piece, i, end[i], id[i], out);
            i = end[i];
        }
    }
}

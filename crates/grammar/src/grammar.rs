//! Compiled grammars: the node graph a [`Matcher`](crate::Matcher) walks.
//!
//! A grammar is a graph of nodes. Concrete nodes (object, array, string, number, literal
//! set) each describe one JSON value shape; union nodes stand for "any of these nodes" and
//! come from `anyOf`, `type` arrays, `$ref` and the any-value schema. After compilation every
//! node knows its flattened list of concrete alternatives, the bytes a value of each
//! alternative can start with, and the least container nesting any value of it needs
//! (infinite when no finite value exists), which the matcher uses to never enter a state
//! from which no complete document can be reached.

use std::collections::HashMap;
use std::fmt;

use crate::error::GrammarError;
use crate::matcher;

/// Index of a node in [`Grammar::nodes`].
pub(crate) type NodeId = u32;

/// "No finite value" for [`Grammar::md`], and "no limit" for lengths and counts.
pub(crate) const INF: u32 = u32::MAX;
/// No upper bound on a string length or item count.
pub(crate) const UNBOUNDED: u32 = u32::MAX;

/// Most concrete alternatives kept for one node; more are dropped (the language shrinks,
/// it never grows).
const MAX_ALTS_PER_NODE: usize = 256;
/// Most rounds of `enum`/`const` filtering (see [`Grammar::filter_literals`]).
const MAX_FILTER_ROUNDS: usize = 16;
/// Upper bound on [`GrammarOptions::max_depth`].
pub(crate) const MAX_DEPTH_LIMIT: u32 = 1024;

/// Limits a grammar is compiled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrammarOptions {
    /// Most nested objects/arrays a document may have (default 64, clamped to 1..=1024).
    /// Deeper input is rejected, and the matcher never lets a document start a branch that
    /// could not be completed within this depth.
    pub max_depth: u32,
    /// Most consecutive whitespace bytes (space, `\n`, `\t`, `\r`) accepted between JSON
    /// tokens (default 2). Whitespace inside strings is content and is not counted.
    pub max_whitespace: u8,
}

impl Default for GrammarOptions {
    fn default() -> Self {
        GrammarOptions {
            max_depth: 64,
            max_whitespace: 2,
        }
    }
}

/// One declared object property.
#[derive(Debug, Clone)]
pub(crate) struct Prop {
    /// The key as JSON text, quotes included (serde_json's serialization of the name).
    pub key: Box<[u8]>,
    /// The value's schema.
    pub node: NodeId,
    pub required: bool,
}

/// An object: declared properties in order, then (when allowed) extra keys.
#[derive(Debug, Clone, Default)]
pub(crate) struct ObjectNode {
    pub props: Vec<Prop>,
    /// Schema of keys that are not declared; `None` = no extra keys.
    pub additional: Option<NodeId>,
    /// `first_required[i]`: index of the first required property at or after `i`, or
    /// `props.len()`; `props.len() + 1` entries.
    pub first_required: Vec<u32>,
}

impl ObjectNode {
    pub(crate) fn new(props: Vec<Prop>, additional: Option<NodeId>) -> ObjectNode {
        let n = props.len() as u32;
        let mut first_required = vec![n; props.len() + 1];
        for i in (0..props.len()).rev() {
            first_required[i] = if props[i].required {
                i as u32
            } else {
                first_required[i + 1]
            };
        }
        ObjectNode {
            props,
            additional,
            first_required,
        }
    }

    pub(crate) fn len(&self) -> u32 {
        self.props.len() as u32
    }

    /// Index of the first required property at or after `next` (`len()` if none).
    pub(crate) fn first_required(&self, next: u32) -> u32 {
        self.first_required
            .get(next as usize)
            .copied()
            .unwrap_or(self.len())
    }

    /// Whether the object may close once the properties before `next` are settled.
    pub(crate) fn can_close(&self, next: u32) -> bool {
        self.first_required(next) >= self.len()
    }

    /// Last declared property that may come next (declared ones are `next..=hi`).
    pub(crate) fn declared_hi(&self, next: u32) -> u32 {
        self.first_required(next).min(self.len().saturating_sub(1))
    }

    /// Whether an extra (undeclared) key may come next.
    pub(crate) fn extra_allowed(&self, next: u32) -> bool {
        self.additional.is_some() && self.can_close(next)
    }
}

/// An array: positional `prefix` items, then `items` (if any), between `min` and `max`.
#[derive(Debug, Clone)]
pub(crate) struct ArrayNode {
    pub prefix: Vec<NodeId>,
    /// Schema of items after the prefix; `None` = no further items.
    pub items: Option<NodeId>,
    pub min: u32,
    pub max: u32,
}

impl ArrayNode {
    /// Schema of item number `index` (0-based), if such an item may exist.
    pub(crate) fn item(&self, index: u32) -> Option<NodeId> {
        if index >= self.max {
            return None;
        }
        match self.prefix.get(index as usize) {
            Some(&n) => Some(n),
            None => self.items,
        }
    }
}

/// A finite set of exact JSON texts (from `enum`, `const`, `boolean`, `null`).
#[derive(Debug, Clone)]
pub(crate) struct LiteralsNode {
    /// Sorted, deduplicated, non-empty byte strings.
    pub values: Vec<Box<[u8]>>,
    /// The rest of the schema the values must satisfy; resolved at build time.
    pub base: Option<NodeId>,
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// Any of the members (no members: no value).
    Union(Vec<NodeId>),
    Object(ObjectNode),
    Array(ArrayNode),
    /// A string with a length in characters (code points) in `min..=max`.
    String {
        min: u32,
        max: u32,
    },
    Number {
        integer: bool,
    },
    Literals(LiteralsNode),
}

/// A set of bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ByteSet([u64; 4]);

impl ByteSet {
    pub(crate) fn insert(&mut self, b: u8) {
        self.0[(b >> 6) as usize] |= 1u64 << (b & 63);
    }

    pub(crate) fn contains(&self, b: u8) -> bool {
        self.0[(b >> 6) as usize] & (1u64 << (b & 63)) != 0
    }

    fn union_with(&mut self, other: &ByteSet) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= *b;
        }
    }
}

/// Builds node graphs, sharing the nodes every grammar needs.
#[derive(Default)]
pub(crate) struct Arena {
    pub nodes: Vec<Node>,
    any: Option<NodeId>,
    any_object: Option<NodeId>,
    never: Option<NodeId>,
    strings: HashMap<(u32, u32), NodeId>,
    numbers: [Option<NodeId>; 2],
}

impl Arena {
    pub(crate) fn push(&mut self, node: Node) -> NodeId {
        let id = self.nodes.len() as NodeId;
        self.nodes.push(node);
        id
    }

    /// Any JSON value.
    pub(crate) fn any(&mut self) -> NodeId {
        if let Some(id) = self.any {
            return id;
        }
        let any = self.push(Node::Union(Vec::new()));
        self.any = Some(any);
        let object = self.push(Node::Object(ObjectNode::new(Vec::new(), Some(any))));
        self.any_object = Some(object);
        let array = self.push(Node::Array(ArrayNode {
            prefix: Vec::new(),
            items: Some(any),
            min: 0,
            max: UNBOUNDED,
        }));
        let string = self.string(0, UNBOUNDED);
        let number = self.number(false);
        let words = self.literals(
            vec![b"true".to_vec(), b"false".to_vec(), b"null".to_vec()],
            None,
        );
        self.nodes[any as usize] = Node::Union(vec![object, array, string, number, words]);
        any
    }

    /// Any JSON object.
    pub(crate) fn any_object(&mut self) -> NodeId {
        self.any();
        self.any_object.unwrap_or(0)
    }

    /// No value at all.
    pub(crate) fn never(&mut self) -> NodeId {
        if let Some(id) = self.never {
            return id;
        }
        let id = self.push(Node::Union(Vec::new()));
        self.never = Some(id);
        id
    }

    pub(crate) fn string(&mut self, min: u32, max: u32) -> NodeId {
        if let Some(&id) = self.strings.get(&(min, max)) {
            return id;
        }
        let id = self.push(Node::String { min, max });
        self.strings.insert((min, max), id);
        id
    }

    pub(crate) fn number(&mut self, integer: bool) -> NodeId {
        let slot = usize::from(integer);
        if let Some(id) = self.numbers[slot] {
            return id;
        }
        let id = self.push(Node::Number { integer });
        self.numbers[slot] = Some(id);
        id
    }

    pub(crate) fn literals(&mut self, values: Vec<Vec<u8>>, base: Option<NodeId>) -> NodeId {
        let mut values: Vec<Box<[u8]>> = values
            .into_iter()
            .filter(|v| !v.is_empty())
            .map(Vec::into_boxed_slice)
            .collect();
        values.sort();
        values.dedup();
        self.push(Node::Literals(LiteralsNode { values, base }))
    }
}

/// A compiled JSON Schema: the language of JSON documents a [`Matcher`](crate::Matcher)
/// accepts.
///
/// Immutable once built; `Send + Sync`, meant to be shared in an `Arc` by every request
/// that uses the same schema. See the [crate documentation](crate) for the exact language.
pub struct Grammar {
    pub(crate) nodes: Vec<Node>,
    /// Per node: its concrete alternatives (a concrete node is its own only alternative).
    pub(crate) alts: Vec<Box<[NodeId]>>,
    /// Per node: the bytes a value of the node can start with.
    pub(crate) first: Vec<ByteSet>,
    /// Per node: least nesting (containers) a value needs; `INF` when no value fits within
    /// `max_depth`.
    pub(crate) md: Vec<u32>,
    pub(crate) root: NodeId,
    pub(crate) max_depth: u32,
    pub(crate) max_ws: u8,
}

impl fmt::Debug for Grammar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grammar")
            .field("nodes", &self.nodes.len())
            .field("root", &self.root)
            .field("max_depth", &self.max_depth)
            .field("max_whitespace", &self.max_ws)
            .finish()
    }
}

static EMPTY_OBJECT: ObjectNode = ObjectNode {
    props: Vec::new(),
    additional: None,
    first_required: Vec::new(),
};

static EMPTY_ARRAY: ArrayNode = ArrayNode {
    prefix: Vec::new(),
    items: None,
    min: 0,
    max: 0,
};

impl Grammar {
    /// Compiles a JSON Schema with the default [`GrammarOptions`].
    ///
    /// See the [crate documentation](crate) for the supported subset; anything outside it
    /// is an error rather than silently ignored.
    pub fn from_json_schema(schema: &serde_json::Value) -> Result<Grammar, GrammarError> {
        Self::from_json_schema_with(schema, GrammarOptions::default())
    }

    /// Compiles a JSON Schema with explicit limits.
    pub fn from_json_schema_with(
        schema: &serde_json::Value,
        options: GrammarOptions,
    ) -> Result<Grammar, GrammarError> {
        let (arena, root) = crate::schema::compile(schema)?;
        Self::build(arena, root, options)
    }

    /// Any JSON object at the top level (OpenAI `response_format: {"type": "json_object"}`).
    pub fn any_json_object() -> Grammar {
        Self::any_json_object_with(GrammarOptions::default())
    }

    /// [`Grammar::any_json_object`] with explicit limits.
    pub fn any_json_object_with(options: GrammarOptions) -> Grammar {
        let mut arena = Arena::default();
        let root = arena.any_object();
        Self::build_unchecked(arena.nodes, root, options)
    }

    /// Any JSON value at the top level; the same language as the schema `{}`.
    pub fn any_json_value() -> Grammar {
        Self::any_json_value_with(GrammarOptions::default())
    }

    /// [`Grammar::any_json_value`] with explicit limits.
    pub fn any_json_value_with(options: GrammarOptions) -> Grammar {
        let mut arena = Arena::default();
        let root = arena.any();
        Self::build_unchecked(arena.nodes, root, options)
    }

    /// The nesting limit this grammar was compiled with.
    pub fn max_depth(&self) -> u32 {
        self.max_depth
    }

    /// The whitespace-run limit this grammar was compiled with.
    pub fn max_whitespace(&self) -> u8 {
        self.max_ws
    }

    fn build(arena: Arena, root: NodeId, options: GrammarOptions) -> Result<Grammar, GrammarError> {
        let mut g = Self::derived(arena.nodes, root, options);
        if !g.filter_literals() {
            return Err(GrammarError::TooLarge {
                message: format!(
                    "`enum`/`const` values constrained by other `enum`/`const` values more \
                     than {MAX_FILTER_ROUNDS} levels deep"
                ),
            });
        }
        g.merge_literals();
        if g.md_of(g.root) > g.max_depth {
            return Err(GrammarError::Unsatisfiable {
                max_depth: g.max_depth,
            });
        }
        tracing::debug!(nodes = g.nodes.len(), "compiled JSON Schema grammar");
        Ok(g)
    }

    /// Builds a grammar whose literal sets have no `base` (nothing to filter).
    fn build_unchecked(nodes: Vec<Node>, root: NodeId, options: GrammarOptions) -> Grammar {
        let mut g = Self::derived(nodes, root, options);
        g.merge_literals();
        g
    }

    fn derived(nodes: Vec<Node>, root: NodeId, options: GrammarOptions) -> Grammar {
        let mut g = Grammar {
            nodes,
            alts: Vec::new(),
            first: Vec::new(),
            md: Vec::new(),
            root,
            max_depth: options.max_depth.clamp(1, MAX_DEPTH_LIMIT),
            max_ws: options.max_whitespace,
        };
        g.derive();
        g
    }

    pub(crate) fn md_of(&self, node: NodeId) -> u32 {
        self.md.get(node as usize).copied().unwrap_or(INF)
    }

    pub(crate) fn alts_of(&self, node: NodeId) -> &[NodeId] {
        self.alts.get(node as usize).map_or(&[], |a| a)
    }

    pub(crate) fn object(&self, node: NodeId) -> &ObjectNode {
        match self.nodes.get(node as usize) {
            Some(Node::Object(o)) => o,
            _ => &EMPTY_OBJECT,
        }
    }

    pub(crate) fn array(&self, node: NodeId) -> &ArrayNode {
        match self.nodes.get(node as usize) {
            Some(Node::Array(a)) => a,
            _ => &EMPTY_ARRAY,
        }
    }

    pub(crate) fn literal_values(&self, node: NodeId) -> &[Box<[u8]>] {
        match self.nodes.get(node as usize) {
            Some(Node::Literals(l)) => &l.values,
            _ => &[],
        }
    }

    /// `(min, max)` length of a string node (keys and unknown nodes: unbounded).
    pub(crate) fn string_bounds(&self, node: NodeId) -> (u32, u32) {
        match self.nodes.get(node as usize) {
            Some(Node::String { min, max }) => (*min, *max),
            _ => (0, UNBOUNDED),
        }
    }

    /// Whether a value of `node` may start at a place with `containers` open containers.
    pub(crate) fn fits(&self, node: NodeId, containers: u32) -> bool {
        containers.saturating_add(self.md_of(node)) <= self.max_depth
    }

    /// Computes `alts`, `first` and `md` from `nodes`.
    fn derive(&mut self) {
        self.alts = flatten_unions(&self.nodes);
        self.md = self.min_depths();
        // Alternatives without a finite value can never be entered: drop them.
        let md = &self.md;
        for alts in self.alts.iter_mut() {
            if alts.iter().any(|&c| md[c as usize] == INF) {
                *alts = alts
                    .iter()
                    .copied()
                    .filter(|&c| md[c as usize] != INF)
                    .collect();
            }
        }
        self.first = self.first_sets();
    }

    fn first_sets(&self) -> Vec<ByteSet> {
        let mut first: Vec<ByteSet> = self
            .nodes
            .iter()
            .map(|node| {
                let mut set = ByteSet::default();
                match node {
                    Node::Union(_) => {}
                    Node::Object(_) => set.insert(b'{'),
                    Node::Array(_) => set.insert(b'['),
                    Node::String { .. } => set.insert(b'"'),
                    Node::Number { .. } => {
                        set.insert(b'-');
                        for d in b'0'..=b'9' {
                            set.insert(d);
                        }
                    }
                    Node::Literals(l) => {
                        for v in &l.values {
                            if let Some(&b) = v.first() {
                                set.insert(b);
                            }
                        }
                    }
                }
                set
            })
            .collect();
        for (id, node) in self.nodes.iter().enumerate() {
            if matches!(node, Node::Union(_)) {
                let mut set = ByteSet::default();
                for &c in self.alts[id].iter() {
                    set.union_with(&first[c as usize]);
                }
                first[id] = set;
            }
        }
        first
    }

    /// Least container nesting of a value of each node, `INF` above `max_depth`.
    ///
    /// Iterates from "infinite" downwards; after pass `k` every concrete node whose least
    /// nesting is below `k` is exact, so `max_depth + 2` passes suffice.
    fn min_depths(&self) -> Vec<u32> {
        let n = self.nodes.len();
        let mut md = vec![INF; n];
        let union_md = |md: &[u32], alts: &[NodeId]| -> u32 {
            alts.iter().map(|&c| md[c as usize]).min().unwrap_or(INF)
        };
        for _pass in 0..self.max_depth + 2 {
            let mut changed = false;
            for id in 0..n {
                let value = match &self.nodes[id] {
                    Node::Union(_) => continue,
                    Node::String { min, max } => {
                        if min <= max {
                            0
                        } else {
                            INF
                        }
                    }
                    Node::Number { .. } => 0,
                    Node::Literals(l) => {
                        if l.values.is_empty() {
                            INF
                        } else {
                            0
                        }
                    }
                    Node::Object(o) => {
                        let mut worst = 0;
                        for p in o.props.iter().filter(|p| p.required) {
                            worst = worst.max(union_md(&md, &self.alts[p.node as usize]));
                        }
                        worst.saturating_add(1)
                    }
                    Node::Array(a) => {
                        let mut worst = if a.min > a.max { INF } else { 0 };
                        for (i, &item) in a.prefix.iter().enumerate() {
                            if i as u32 >= a.min {
                                break;
                            }
                            worst = worst.max(union_md(&md, &self.alts[item as usize]));
                        }
                        if a.min as usize > a.prefix.len() {
                            worst = worst.max(match a.items {
                                Some(item) => union_md(&md, &self.alts[item as usize]),
                                None => INF,
                            });
                        }
                        worst.saturating_add(1)
                    }
                };
                let value = if value > self.max_depth { INF } else { value };
                if value < md[id] {
                    md[id] = value;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        for id in 0..n {
            if matches!(self.nodes[id], Node::Union(_)) {
                md[id] = union_md(&md, &self.alts[id]);
            }
        }
        md
    }

    /// Drops `enum`/`const` values that the rest of their schema object rejects, until no
    /// more values are dropped (a value's check may depend on other filtered sets). Returns
    /// `false` if that takes more than [`MAX_FILTER_ROUNDS`] rounds.
    fn filter_literals(&mut self) -> bool {
        for _round in 0..MAX_FILTER_ROUNDS {
            let mut changes: Vec<(usize, Vec<Box<[u8]>>)> = Vec::new();
            for (id, node) in self.nodes.iter().enumerate() {
                let Node::Literals(LiteralsNode {
                    values,
                    base: Some(base),
                }) = node
                else {
                    continue;
                };
                let kept: Vec<Box<[u8]>> = values
                    .iter()
                    .filter(|v| matcher::accepts_document(self, *base, v))
                    .cloned()
                    .collect();
                if kept.len() != values.len() {
                    changes.push((id, kept));
                }
            }
            if changes.is_empty() {
                return true;
            }
            for (id, kept) in changes {
                if let Node::Literals(l) = &mut self.nodes[id] {
                    l.values = kept;
                }
            }
            self.derive();
        }
        false
    }

    /// Replaces several literal-set alternatives of one node by a single merged set, so a
    /// long `enum` or a mix of `boolean`/`null` alternatives is matched by one cursor.
    fn merge_literals(&mut self) {
        let mut memo: HashMap<Vec<NodeId>, NodeId> = HashMap::new();
        for id in 0..self.alts.len() {
            let lits: Vec<NodeId> = self.alts[id]
                .iter()
                .copied()
                .filter(|&c| matches!(self.nodes[c as usize], Node::Literals(_)))
                .collect();
            if lits.len() < 2 {
                continue;
            }
            let merged = match memo.get(&lits) {
                Some(&m) => m,
                None => {
                    let mut values: Vec<Box<[u8]>> = lits
                        .iter()
                        .flat_map(|&c| self.literal_values(c).iter().cloned())
                        .collect();
                    values.sort();
                    values.dedup();
                    let m = self.nodes.len() as NodeId;
                    let mut first = ByteSet::default();
                    for v in &values {
                        if let Some(&b) = v.first() {
                            first.insert(b);
                        }
                    }
                    self.nodes
                        .push(Node::Literals(LiteralsNode { values, base: None }));
                    self.alts.push(vec![m].into_boxed_slice());
                    self.first.push(first);
                    self.md.push(0);
                    memo.insert(lits.clone(), m);
                    m
                }
            };
            let mut alts: Vec<NodeId> = self.alts[id]
                .iter()
                .copied()
                .filter(|c| !lits.contains(c))
                .collect();
            alts.push(merged);
            self.alts[id] = alts.into_boxed_slice();
        }
    }
}

/// For every node, the concrete nodes reachable through union edges only.
///
/// Union nodes may form cycles (`{"anyOf": [{"$ref": "#"}, ...]}`); strongly connected
/// components are found with an iterative Tarjan walk, so every cycle shares one set and
/// no cycle is followed forever.
fn flatten_unions(nodes: &[Node]) -> Vec<Box<[NodeId]>> {
    const UNSET: u32 = u32::MAX;
    let n = nodes.len();
    let members = |v: usize| -> &[NodeId] {
        match &nodes[v] {
            Node::Union(m) => m,
            _ => &[],
        }
    };
    let is_union = |v: usize| matches!(nodes[v], Node::Union(_));
    let mut result: Vec<Box<[NodeId]>> = (0..n)
        .map(|v| {
            if is_union(v) {
                Box::default()
            } else {
                vec![v as NodeId].into_boxed_slice()
            }
        })
        .collect();
    let mut index = vec![UNSET; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut in_scc = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut call: Vec<(usize, usize)> = Vec::new();
    let mut next_index = 0u32;
    for start in 0..n {
        if !is_union(start) || index[start] != UNSET {
            continue;
        }
        index[start] = next_index;
        low[start] = next_index;
        next_index += 1;
        stack.push(start);
        on_stack[start] = true;
        call.push((start, 0));
        while let Some(&(v, pos)) = call.last() {
            let ms = members(v);
            if pos < ms.len() {
                if let Some(top) = call.last_mut() {
                    top.1 += 1;
                }
                let w = ms[pos] as usize;
                if w >= n || !is_union(w) {
                    continue;
                }
                if index[w] == UNSET {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            call.pop();
            if let Some(&(parent, _)) = call.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] != index[v] {
                continue;
            }
            let mut scc = Vec::new();
            while let Some(w) = stack.pop() {
                on_stack[w] = false;
                in_scc[w] = true;
                scc.push(w);
                if w == v {
                    break;
                }
            }
            let mut set: Vec<NodeId> = Vec::new();
            for &u in &scc {
                for &m in members(u) {
                    let m = m as usize;
                    if m >= n {
                        continue;
                    }
                    if !is_union(m) {
                        set.push(m as NodeId);
                    } else if !in_scc[m] {
                        set.extend_from_slice(&result[m]);
                    }
                }
            }
            set.sort_unstable();
            set.dedup();
            if set.len() > MAX_ALTS_PER_NODE {
                tracing::warn!(
                    alternatives = set.len(),
                    kept = MAX_ALTS_PER_NODE,
                    "too many schema alternatives; dropping the rest"
                );
                set.truncate(MAX_ALTS_PER_NODE);
            }
            let set = set.into_boxed_slice();
            for &u in &scc {
                in_scc[u] = false;
                result[u] = set.clone();
            }
        }
    }
    result
}

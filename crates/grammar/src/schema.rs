//! JSON Schema → grammar nodes.
//!
//! The schema is untrusted: subschema nesting, node count, `enum`/`const` sizes and value
//! nesting are bounded, `$ref`s are compiled once each from a work list (so reference
//! chains do not grow the call stack), and every malformed or unsupported construct is an
//! error naming its JSON Pointer.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::error::GrammarError;
use crate::grammar::{Arena, ArrayNode, Node, NodeId, ObjectNode, Prop, UNBOUNDED};

/// Most nested subschemas (each `properties/x`, `items`, `anyOf/i`... is one level).
pub(crate) const MAX_SCHEMA_DEPTH: usize = 64;
/// Most grammar nodes one schema may compile to.
pub(crate) const MAX_NODES: usize = 20_000;
/// Most subschemas one schema may contain (each compiled once; `$ref` targets once each).
pub(crate) const MAX_SUBSCHEMAS: usize = 20_000;
/// Most bytes of serialized `enum`/`const` values in one schema.
pub(crate) const MAX_LITERAL_BYTES: usize = 1 << 20;
/// Most nesting inside one `enum`/`const` value.
pub(crate) const MAX_VALUE_DEPTH: usize = 64;

/// Keywords that do not constrain the document and are ignored.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$id",
    "$comment",
    "format",
    "strict",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Numeric range keywords: accepted and not enforced.
const IGNORED_NUMERIC: &[&str] = &[
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
];

/// Keywords that constrain a value of some type.
const ASSERTIONS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "prefixItems",
    "additionalItems",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "enum",
    "const",
];

const COMBINATORS: &[&str] = &["$ref", "anyOf", "oneOf", "allOf"];

/// Keywords that only hold subschemas for `$ref`.
const DEFINITIONS: &[&str] = &["$defs", "definitions"];

const OBJECT_KEYWORDS: &[&str] = &["properties", "required", "additionalProperties"];
const ARRAY_KEYWORDS: &[&str] = &[
    "items",
    "prefixItems",
    "additionalItems",
    "minItems",
    "maxItems",
];
const STRING_KEYWORDS: &[&str] = &["minLength", "maxLength"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Type {
    String,
    Number,
    Integer,
    Boolean,
    Null,
    Object,
    Array,
}

/// Compiles `schema`; returns the nodes and the root node.
pub(crate) fn compile(schema: &Value) -> Result<(Arena, NodeId), GrammarError> {
    let mut c = Compiler {
        root: schema,
        arena: Arena::default(),
        refs: HashMap::new(),
        pending: Vec::new(),
        literal_bytes: 0,
        subschemas: 0,
    };
    // The root goes through the reference machinery too, so `{"$ref": "#"}` inside it
    // shares its node instead of compiling it twice.
    let root = c.reference_to("", "#", "")?;
    while let Some((pointer, placeholder)) = c.pending.pop() {
        let target = match c.root.pointer(&pointer) {
            Some(t) => t,
            None => {
                return Err(GrammarError::BadRef {
                    reference: format!("#{pointer}"),
                    pointer,
                    message: "no such location in the schema".into(),
                })
            }
        };
        let id = c.compile(target, &pointer, 0)?;
        c.arena.nodes[placeholder as usize] = Node::Union(vec![id]);
    }
    Ok((c.arena, root))
}

struct Compiler<'a> {
    root: &'a Value,
    arena: Arena,
    /// JSON Pointer of a `$ref` target → its node.
    refs: HashMap<String, NodeId>,
    /// `$ref` targets still to compile.
    pending: Vec<(String, NodeId)>,
    literal_bytes: usize,
    subschemas: usize,
}

fn child(pointer: &str, segment: &str) -> String {
    let mut s = String::with_capacity(pointer.len() + segment.len() + 1);
    s.push_str(pointer);
    s.push('/');
    for ch in segment.chars() {
        match ch {
            '~' => s.push_str("~0"),
            '/' => s.push_str("~1"),
            c => s.push(c),
        }
    }
    s
}

fn invalid(pointer: &str, message: impl Into<String>) -> GrammarError {
    GrammarError::InvalidSchema {
        pointer: pointer.to_string(),
        message: message.into(),
    }
}

/// A non-negative integer keyword value, saturated to `u32`.
fn count(m: &Map<String, Value>, key: &str, pointer: &str) -> Result<Option<u32>, GrammarError> {
    let Some(v) = m.get(key) else {
        return Ok(None);
    };
    let n = if let Some(u) = v.as_u64() {
        Some(u)
    } else {
        v.as_f64()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0)
            .map(|f| {
                if f >= u64::MAX as f64 {
                    u64::MAX
                } else {
                    f as u64
                }
            })
    };
    match n {
        Some(n) => Ok(Some(u32::try_from(n).unwrap_or(u32::MAX))),
        None => Err(invalid(
            pointer,
            format!("`{key}` must be a non-negative integer"),
        )),
    }
}

fn value_too_deep(v: &Value, limit: usize) -> bool {
    let mut stack = vec![(v, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        if depth > limit {
            return true;
        }
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|x| (x, depth + 1))),
            Value::Object(m) => stack.extend(m.values().map(|x| (x, depth + 1))),
            _ => {}
        }
    }
    false
}

/// Decodes `%XX` escapes of a URI fragment.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Compiler<'_> {
    fn push(&mut self, node: Node) -> Result<NodeId, GrammarError> {
        self.check_size()?;
        Ok(self.arena.push(node))
    }

    fn check_size(&self) -> Result<(), GrammarError> {
        if self.arena.nodes.len() >= MAX_NODES {
            return Err(GrammarError::TooLarge {
                message: format!("more than {MAX_NODES} grammar nodes"),
            });
        }
        Ok(())
    }

    /// The node for the schema at `target` (a JSON Pointer), compiled later from the work
    /// list.
    fn reference_to(
        &mut self,
        target: &str,
        reference: &str,
        pointer: &str,
    ) -> Result<NodeId, GrammarError> {
        if let Some(&id) = self.refs.get(target) {
            return Ok(id);
        }
        if self.root.pointer(target).is_none() {
            return Err(GrammarError::BadRef {
                reference: reference.to_string(),
                pointer: pointer.to_string(),
                message: "no such location in the schema".into(),
            });
        }
        let id = self.push(Node::Union(Vec::new()))?;
        self.refs.insert(target.to_string(), id);
        self.pending.push((target.to_string(), id));
        Ok(id)
    }

    fn reference(&mut self, v: &Value, pointer: &str) -> Result<NodeId, GrammarError> {
        let Some(r) = v.as_str() else {
            return Err(invalid(pointer, "`$ref` must be a string"));
        };
        let bad = |message: &str| GrammarError::BadRef {
            reference: r.to_string(),
            pointer: pointer.to_string(),
            message: message.to_string(),
        };
        let Some(fragment) = r.strip_prefix('#') else {
            return Err(bad(
                "only local references (`#`, `#/$defs/NAME`, `#/definitions/NAME`, \
                 `#/JSON/Pointer`) are supported",
            ));
        };
        if !fragment.is_empty() && !fragment.starts_with('/') {
            return Err(bad("only JSON Pointer fragments are supported"));
        }
        let Some(target) = percent_decode(fragment) else {
            return Err(bad("malformed percent-encoding"));
        };
        self.reference_to(&target, r, pointer)
    }

    fn compile(&mut self, s: &Value, pointer: &str, depth: usize) -> Result<NodeId, GrammarError> {
        if depth > MAX_SCHEMA_DEPTH {
            return Err(GrammarError::TooDeep {
                pointer: pointer.to_string(),
                limit: MAX_SCHEMA_DEPTH,
            });
        }
        self.check_size()?;
        self.subschemas += 1;
        if self.subschemas > MAX_SUBSCHEMAS {
            return Err(GrammarError::TooLarge {
                message: format!("more than {MAX_SUBSCHEMAS} subschemas"),
            });
        }
        let m = match s {
            Value::Bool(true) => return Ok(self.arena.any()),
            Value::Bool(false) => return Ok(self.arena.never()),
            Value::Object(m) => m,
            _ => return Err(invalid(pointer, "a schema must be an object or a boolean")),
        };
        for key in m.keys() {
            let k = key.as_str();
            let known = ANNOTATIONS.contains(&k)
                || IGNORED_NUMERIC.contains(&k)
                || ASSERTIONS.contains(&k)
                || COMBINATORS.contains(&k)
                || DEFINITIONS.contains(&k);
            if !known {
                return Err(GrammarError::UnsupportedKeyword {
                    keyword: key.clone(),
                    pointer: pointer.to_string(),
                });
            }
        }
        let combinators: Vec<&str> = COMBINATORS
            .iter()
            .copied()
            .filter(|k| m.contains_key(*k))
            .collect();
        if let Some(&comb) = combinators.first() {
            if let Some(&other) = combinators.get(1) {
                return Err(GrammarError::Unsupported {
                    pointer: pointer.to_string(),
                    message: format!("`{comb}` combined with `{other}`"),
                });
            }
            if let Some(other) = ASSERTIONS.iter().find(|k| m.contains_key(**k)) {
                return Err(GrammarError::Unsupported {
                    pointer: pointer.to_string(),
                    message: format!("`{comb}` combined with `{other}`"),
                });
            }
            return self.combinator(comb, m, pointer, depth);
        }
        if m.contains_key("enum") || m.contains_key("const") {
            return self.literals(m, pointer, depth);
        }
        self.typed(m, pointer, depth)
    }

    fn combinator(
        &mut self,
        comb: &str,
        m: &Map<String, Value>,
        pointer: &str,
        depth: usize,
    ) -> Result<NodeId, GrammarError> {
        let v = m.get(comb).unwrap_or(&Value::Null);
        if comb == "$ref" {
            return self.reference(v, pointer);
        }
        let Some(members) = v.as_array().filter(|a| !a.is_empty()) else {
            return Err(invalid(
                pointer,
                format!("`{comb}` must be a non-empty array of schemas"),
            ));
        };
        let base = child(pointer, comb);
        if comb == "allOf" {
            if members.len() > 1 {
                return Err(GrammarError::Unsupported {
                    pointer: pointer.to_string(),
                    message: "`allOf` with more than one subschema".into(),
                });
            }
            return self.compile(&members[0], &child(&base, "0"), depth + 1);
        }
        // `oneOf` is treated as `anyOf`: exclusivity is not enforced.
        let mut ids = Vec::with_capacity(members.len());
        for (i, member) in members.iter().enumerate() {
            ids.push(self.compile(member, &child(&base, &i.to_string()), depth + 1)?);
        }
        self.push(Node::Union(ids))
    }

    fn types(&self, m: &Map<String, Value>, pointer: &str) -> Result<Vec<Type>, GrammarError> {
        let parse = |name: &str| -> Result<Type, GrammarError> {
            Ok(match name {
                "string" => Type::String,
                "number" => Type::Number,
                "integer" => Type::Integer,
                "boolean" => Type::Boolean,
                "null" => Type::Null,
                "object" => Type::Object,
                "array" => Type::Array,
                _ => {
                    return Err(GrammarError::UnknownType {
                        name: name.to_string(),
                        pointer: pointer.to_string(),
                    })
                }
            })
        };
        let mut types = Vec::new();
        match m.get("type") {
            Some(Value::String(name)) => types.push(parse(name)?),
            Some(Value::Array(names)) if !names.is_empty() => {
                for name in names {
                    let Some(name) = name.as_str() else {
                        return Err(invalid(
                            pointer,
                            "`type` must be a string or an array of strings",
                        ));
                    };
                    let t = parse(name)?;
                    if !types.contains(&t) {
                        types.push(t);
                    }
                }
            }
            Some(_) => {
                return Err(invalid(
                    pointer,
                    "`type` must be a string or a non-empty array of strings",
                ))
            }
            None => {
                // No `type`: the value's type is inferred from the keywords present.
                let has = |keys: &[&str]| keys.iter().any(|k| m.contains_key(*k));
                if has(OBJECT_KEYWORDS) {
                    types.push(Type::Object);
                }
                if has(ARRAY_KEYWORDS) {
                    types.push(Type::Array);
                }
                if has(STRING_KEYWORDS) {
                    types.push(Type::String);
                }
            }
        }
        if types.contains(&Type::Number) {
            types.retain(|t| *t != Type::Integer);
        }
        Ok(types)
    }

    /// The schema without `enum`/`const`: a union of one node per allowed type.
    fn typed(
        &mut self,
        m: &Map<String, Value>,
        pointer: &str,
        depth: usize,
    ) -> Result<NodeId, GrammarError> {
        let types = self.types(m, pointer)?;
        if types.is_empty() {
            return Ok(self.arena.any());
        }
        let mut ids = Vec::with_capacity(types.len());
        for t in types {
            self.check_size()?;
            let id = match t {
                Type::String => {
                    let min = count(m, "minLength", pointer)?.unwrap_or(0);
                    let max = count(m, "maxLength", pointer)?.unwrap_or(UNBOUNDED);
                    self.arena.string(min, max)
                }
                Type::Number => self.arena.number(false),
                Type::Integer => self.arena.number(true),
                Type::Boolean => self
                    .arena
                    .literals(vec![b"true".to_vec(), b"false".to_vec()], None),
                Type::Null => self.arena.literals(vec![b"null".to_vec()], None),
                Type::Object => self.object(m, pointer, depth)?,
                Type::Array => self.array(m, pointer, depth)?,
            };
            ids.push(id);
        }
        if ids.len() == 1 {
            return Ok(ids[0]);
        }
        self.push(Node::Union(ids))
    }

    fn literals(
        &mut self,
        m: &Map<String, Value>,
        pointer: &str,
        depth: usize,
    ) -> Result<NodeId, GrammarError> {
        let mut values: Vec<&Value> = match m.get("enum") {
            None => Vec::new(),
            Some(Value::Array(a)) => a.iter().collect(),
            Some(_) => return Err(invalid(pointer, "`enum` must be an array")),
        };
        if let Some(c) = m.get("const") {
            if m.contains_key("enum") {
                values.retain(|v| *v == c);
            } else {
                values.push(c);
            }
        }
        let mut bytes = Vec::with_capacity(values.len());
        for v in values {
            if value_too_deep(v, MAX_VALUE_DEPTH) {
                return Err(GrammarError::TooDeep {
                    pointer: pointer.to_string(),
                    limit: MAX_VALUE_DEPTH,
                });
            }
            let text = serde_json::to_vec(v).map_err(|e| invalid(pointer, e.to_string()))?;
            self.literal_bytes += text.len();
            if self.literal_bytes > MAX_LITERAL_BYTES {
                return Err(GrammarError::TooLarge {
                    message: format!(
                        "more than {MAX_LITERAL_BYTES} bytes of `enum`/`const` values"
                    ),
                });
            }
            bytes.push(text);
        }
        // The other keywords of the same schema object still apply: values they reject are
        // dropped once the whole grammar is built.
        let constrained = ASSERTIONS
            .iter()
            .any(|k| *k != "enum" && *k != "const" && m.contains_key(*k));
        let base = if constrained {
            Some(self.typed(m, pointer, depth)?)
        } else {
            None
        };
        self.check_size()?;
        Ok(self.arena.literals(bytes, base))
    }

    fn object(
        &mut self,
        m: &Map<String, Value>,
        pointer: &str,
        depth: usize,
    ) -> Result<NodeId, GrammarError> {
        let properties = match m.get("properties") {
            None => None,
            Some(Value::Object(p)) => Some(p),
            Some(_) => return Err(invalid(pointer, "`properties` must be an object")),
        };
        let mut required: Vec<&str> = Vec::new();
        let mut required_set: HashSet<&str> = HashSet::new();
        match m.get("required") {
            None => {}
            Some(Value::Array(a)) => {
                for r in a {
                    let Some(r) = r.as_str() else {
                        return Err(invalid(pointer, "`required` must be an array of strings"));
                    };
                    if required_set.insert(r) {
                        required.push(r);
                    }
                }
            }
            Some(_) => return Err(invalid(pointer, "`required` must be an array of strings")),
        }
        // Without `additionalProperties`, an object with `properties` takes no other keys;
        // one without `properties` takes any keys.
        let additional_ptr = child(pointer, "additionalProperties");
        let (additional, forbidden) = match m.get("additionalProperties") {
            None => {
                if properties.is_some() {
                    (None, false)
                } else {
                    (Some(self.arena.any()), false)
                }
            }
            Some(Value::Bool(true)) => (Some(self.arena.any()), false),
            Some(Value::Bool(false)) => (None, true),
            Some(s @ Value::Object(_)) => {
                (Some(self.compile(s, &additional_ptr, depth + 1)?), false)
            }
            Some(_) => {
                return Err(invalid(
                    pointer,
                    "`additionalProperties` must be a boolean or a schema",
                ))
            }
        };
        let mut props = Vec::new();
        if let Some(properties) = properties {
            let base = child(pointer, "properties");
            for (name, sub) in properties {
                let node = self.compile(sub, &child(&base, name), depth + 1)?;
                props.push(Prop {
                    key: key_text(name, pointer)?,
                    node,
                    required: required_set.contains(name.as_str()),
                });
            }
        }
        for name in required {
            if properties.is_some_and(|p| p.contains_key(name)) {
                continue;
            }
            // A required key that `properties` does not declare: it is declared here, after
            // the others, with the schema undeclared keys get.
            let node = match additional {
                Some(a) => a,
                None if forbidden => {
                    return Err(invalid(
                        pointer,
                        format!(
                            "required property `{name}` is not in `properties` and \
                             `additionalProperties` is false"
                        ),
                    ))
                }
                None => self.arena.any(),
            };
            props.push(Prop {
                key: key_text(name, pointer)?,
                node,
                required: true,
            });
        }
        self.push(Node::Object(ObjectNode::new(props, additional)))
    }

    fn array(
        &mut self,
        m: &Map<String, Value>,
        pointer: &str,
        depth: usize,
    ) -> Result<NodeId, GrammarError> {
        let mut prefix = Vec::new();
        if let Some(p) = m.get("prefixItems") {
            let Some(p) = p.as_array() else {
                return Err(invalid(
                    pointer,
                    "`prefixItems` must be an array of schemas",
                ));
            };
            let base = child(pointer, "prefixItems");
            for (i, s) in p.iter().enumerate() {
                prefix.push(self.compile(s, &child(&base, &i.to_string()), depth + 1)?);
            }
        }
        let rest =
            |c: &mut Self, v: Option<&Value>, key: &str| -> Result<Option<NodeId>, GrammarError> {
                match v {
                    None | Some(Value::Bool(true)) => Ok(Some(c.arena.any())),
                    Some(Value::Bool(false)) => Ok(None),
                    Some(s @ Value::Object(_)) => {
                        Ok(Some(c.compile(s, &child(pointer, key), depth + 1)?))
                    }
                    Some(_) => Err(invalid(
                        pointer,
                        format!("`{key}` must be a boolean or a schema"),
                    )),
                }
            };
        let items = match m.get("items") {
            Some(Value::Array(tuple)) => {
                // Draft 4-2019 tuple form: `items` lists positions, `additionalItems` the rest.
                if m.contains_key("prefixItems") {
                    return Err(invalid(
                        pointer,
                        "`prefixItems` together with an array `items`",
                    ));
                }
                let base = child(pointer, "items");
                for (i, s) in tuple.iter().enumerate() {
                    prefix.push(self.compile(s, &child(&base, &i.to_string()), depth + 1)?);
                }
                rest(self, m.get("additionalItems"), "additionalItems")?
            }
            other => rest(self, other, "items")?,
        };
        let min = count(m, "minItems", pointer)?.unwrap_or(0);
        let max = count(m, "maxItems", pointer)?.unwrap_or(UNBOUNDED);
        self.push(Node::Array(ArrayNode {
            prefix,
            items,
            min,
            max,
        }))
    }
}

/// A property name as the JSON text the matcher expects (serde_json's escaping).
fn key_text(name: &str, pointer: &str) -> Result<Box<[u8]>, GrammarError> {
    serde_json::to_vec(name)
        .map(Vec::into_boxed_slice)
        .map_err(|e| invalid(pointer, e.to_string()))
}

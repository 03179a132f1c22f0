//! A restricted unpickler for PyTorch state dicts. It interprets the opcodes `torch.save` emits
//! (protocol 2, plus a few harmless protocol 4 ones) and NEVER calls anything: the only globals it
//! accepts are `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and the `torch.*Storage`
//! types, each of which it interprets itself. Any other global is refused with
//! [`FormatError::ForbiddenGlobal`].

use std::collections::HashMap;
use std::path::Path;

use crate::dtype::DType;
use crate::error::{FormatError, Result};

/// A global the unpickler knows how to interpret.
#[derive(Debug, Clone, PartialEq)]
pub enum Global {
    /// `collections.OrderedDict`
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2`
    RebuildTensorV2,
    /// `torch.<X>Storage`, with the element type it stores.
    StorageType(DType),
}

/// A storage referenced through a persistent id `('storage', type, key, location, numel)`.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    /// Element type of the storage.
    pub dtype: DType,
    /// Key: the storage data is the zip entry `<prefix>/data/<key>`.
    pub key: String,
    /// Device location string (e.g. `cpu`, `cuda:0`).
    pub location: String,
    /// Number of elements in the storage.
    pub numel: usize,
}

/// A tensor rebuilt by `_rebuild_tensor_v2(storage, offset, size, stride, ...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorDesc {
    /// The storage the tensor is a view of.
    pub storage: StorageRef,
    /// Offset into the storage, in elements.
    pub storage_offset: usize,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Strides, in elements.
    pub stride: Vec<usize>,
}

/// A value on the unpickler's stack.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(Global),
    Storage(StorageRef),
    Tensor(TensorDesc),
}

impl Value {
    /// Number of nodes, used to bound the work done by memo copies.
    fn weight(&self) -> usize {
        match self {
            Value::Tuple(v) | Value::List(v) => 1 + v.iter().map(Value::weight).sum::<usize>(),
            Value::Dict(v) => {
                1 + v
                    .iter()
                    .map(|(k, x)| k.weight() + x.weight())
                    .sum::<usize>()
            }
            Value::Str(s) => 1 + s.len() / 64,
            Value::Bytes(b) => 1 + b.len() / 64,
            _ => 1,
        }
    }
}

/// Maximum nesting depth of containers (guards the recursive clone/drop against stack overflow).
const MAX_DEPTH: usize = 100;

/// Whether `v` nests containers deeper than `budget` levels.
fn too_deep(v: &Value, budget: usize) -> bool {
    if budget == 0 {
        return true;
    }
    match v {
        Value::Tuple(items) | Value::List(items) => items.iter().any(|c| too_deep(c, budget - 1)),
        Value::Dict(items) => items
            .iter()
            .any(|(k, x)| too_deep(k, budget - 1) || too_deep(x, budget - 1)),
        _ => false,
    }
}

/// Upper bound on the total weight of values copied out of the memo (guards against
/// exponential-blow-up pickles).
const MAX_COPY_WEIGHT: usize = 1 << 20;

fn storage_dtype(name: &str) -> Option<DType> {
    Some(match name {
        "FloatStorage" => DType::F32,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "DoubleStorage" => DType::F64,
        "LongStorage" => DType::I64,
        "IntStorage" => DType::I32,
        "ShortStorage" => DType::I16,
        "CharStorage" => DType::I8,
        "ByteStorage" => DType::U8,
        "BoolStorage" => DType::Bool,
        _ => return None,
    })
}

struct Unpickler<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
    entry: &'a str,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    copied: usize,
}

/// Runs the restricted unpickler over `buf` (the bytes of `data.pkl`) and returns the result.
pub fn unpickle(path: &Path, entry: &str, buf: &[u8]) -> Result<Value> {
    let mut u = Unpickler {
        buf,
        pos: 0,
        path,
        entry,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        copied: 0,
    };
    u.run()
}

impl<'a> Unpickler<'a> {
    fn err(&self, at: usize, msg: impl Into<String>) -> FormatError {
        FormatError::Pickle {
            path: self.path.to_path_buf(),
            entry: self.entry.to_owned(),
            offset: at as u64,
            msg: msg.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let at = self.pos;
        let s = at
            .checked_add(n)
            .and_then(|e| self.buf.get(at..e))
            .ok_or_else(|| self.err(at, format!("truncated: need {n} bytes")))?;
        self.pos += n;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn line(&mut self) -> Result<&'a str> {
        let at = self.pos;
        let rest = self.buf.get(at..).unwrap_or(&[]);
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.err(at, "unterminated line"))?;
        let s = self.take(n + 1)?;
        std::str::from_utf8(s.get(..n).unwrap_or(&[]))
            .map_err(|_| self.err(at, "line is not UTF-8"))
    }

    fn pop(&mut self, at: usize) -> Result<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err(at, "stack underflow"));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.err(at, "stack underflow"))
    }

    fn pop_mark(&mut self, at: usize) -> Result<Vec<Value>> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| self.err(at, "no MARK on the stack"))?;
        if m > self.stack.len() {
            return Err(self.err(at, "MARK above stack top"));
        }
        Ok(self.stack.split_off(m))
    }

    /// Refuses items that would make a container nest deeper than [`MAX_DEPTH`].
    fn check_depth<'v>(&self, at: usize, items: impl IntoIterator<Item = &'v Value>) -> Result<()> {
        for v in items {
            if too_deep(v, MAX_DEPTH - 1) {
                return Err(self.err(at, format!("containers nested deeper than {MAX_DEPTH}")));
            }
        }
        Ok(())
    }

    fn top_mut(&mut self, at: usize) -> Result<&mut Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err(at, "stack underflow"));
        }
        let e = self.err(at, "stack underflow");
        self.stack.last_mut().ok_or(e)
    }

    fn memo_get(&mut self, at: usize, k: u32) -> Result<()> {
        let v = self
            .memo
            .get(&k)
            .ok_or_else(|| self.err(at, format!("memo key {k} not set")))?;
        self.copied = self.copied.saturating_add(v.weight());
        if self.copied > MAX_COPY_WEIGHT {
            return Err(self.err(at, "too much memo copying (malicious pickle?)"));
        }
        let v = v.clone();
        self.stack.push(v);
        Ok(())
    }

    fn memo_put(&mut self, at: usize, k: u32) -> Result<()> {
        let v = self
            .stack
            .last()
            .cloned()
            .ok_or_else(|| self.err(at, "PUT on empty stack"))?;
        self.copied = self.copied.saturating_add(v.weight());
        if self.copied > MAX_COPY_WEIGHT {
            return Err(self.err(at, "too much memo copying (malicious pickle?)"));
        }
        self.memo.insert(k, v);
        Ok(())
    }

    fn global(&self, at: usize, module: &str, name: &str) -> Result<Global> {
        match (module, name) {
            ("collections", "OrderedDict") => Ok(Global::OrderedDict),
            ("torch._utils", "_rebuild_tensor_v2") => Ok(Global::RebuildTensorV2),
            ("torch", s) if storage_dtype(s).is_some() => storage_dtype(s)
                .map(Global::StorageType)
                .ok_or_else(|| self.err(at, "unreachable")),
            _ => Err(FormatError::ForbiddenGlobal {
                path: self.path.to_path_buf(),
                global: format!("{module}.{name}"),
            }),
        }
    }

    fn run(&mut self) -> Result<Value> {
        loop {
            let at = self.pos;
            let op = self.byte()?;
            match op {
                0x80 => {
                    let proto = self.byte()?;
                    if proto > 5 {
                        return Err(self.err(at, format!("unsupported pickle protocol {proto}")));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: length hint only
                }
                b'.' => {
                    let v = self.pop(at)?;
                    return Ok(v);
                }
                b'(' => self.marks.push(self.stack.len()),
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b']' => self.stack.push(Value::List(Vec::new())),
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.byte()?;
                    self.stack.push(Value::Int(v.into()));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.stack.push(Value::Int(v.into()));
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.stack.push(Value::Int(v.into()));
                }
                0x8a => {
                    let n = usize::from(self.byte()?);
                    if n > 8 {
                        return Err(self.err(at, format!("LONG1 of {n} bytes does not fit i64")));
                    }
                    let b = self.take(n)?;
                    let mut a = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                        [0xFFu8; 8]
                    } else {
                        [0u8; 8]
                    };
                    a.get_mut(..n).unwrap_or(&mut []).copy_from_slice(b);
                    self.stack.push(Value::Int(i64::from_le_bytes(a)));
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le()?);
                    self.stack.push(Value::Float(v));
                }
                b'X' | 0x8c | b'U' | b'T' | b'C' | b'B' => {
                    let n = match op {
                        b'X' | b'T' | b'B' => u32::from_le_bytes(self.le()?) as usize,
                        _ => usize::from(self.byte()?),
                    };
                    let s = self.take(n)?;
                    if op == b'C' || op == b'B' {
                        self.stack.push(Value::Bytes(s.to_vec()));
                    } else {
                        let s = std::str::from_utf8(s)
                            .map_err(|_| self.err(at, "string is not UTF-8"))?;
                        self.stack.push(Value::Str(s.to_owned()));
                    }
                }
                b'q' => {
                    let k = self.byte()?;
                    self.memo_put(at, k.into())?;
                }
                b'r' => {
                    let k = u32::from_le_bytes(self.le()?);
                    self.memo_put(at, k)?;
                }
                0x94 => {
                    let k = u32::try_from(self.memo.len())
                        .map_err(|_| self.err(at, "memo too large"))?;
                    self.memo_put(at, k)?;
                }
                b'h' => {
                    let k = self.byte()?;
                    self.memo_get(at, k.into())?;
                }
                b'j' => {
                    let k = u32::from_le_bytes(self.le()?);
                    self.memo_get(at, k)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = self.global(at, module, name)?;
                    self.stack.push(Value::Global(g));
                }
                0x93 => {
                    // STACK_GLOBAL (protocol 4): module and name come from the stack.
                    let name = self.pop(at)?;
                    let module = self.pop(at)?;
                    let (Value::Str(module), Value::Str(name)) = (module, name) else {
                        return Err(self.err(at, "STACK_GLOBAL operands are not strings"));
                    };
                    let g = self.global(at, &module, &name)?;
                    self.stack.push(Value::Global(g));
                }
                b'i' => {
                    // INST instantiates module.name directly: refuse forbidden names by name, and
                    // do not interpret the opcode at all otherwise.
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(at, module, name)?;
                    return Err(self.err(at, format!("INST of {module}.{name} is not supported")));
                }
                b't' => {
                    let items = self.pop_mark(at)?;
                    self.check_depth(at, &items)?;
                    self.stack.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop(at)?);
                    }
                    items.reverse();
                    self.check_depth(at, &items)?;
                    self.stack.push(Value::Tuple(items));
                }
                b'l' => {
                    let items = self.pop_mark(at)?;
                    self.check_depth(at, &items)?;
                    self.stack.push(Value::List(items));
                }
                b'a' => {
                    let v = self.pop(at)?;
                    self.check_depth(at, [&v])?;
                    match self.top_mut(at)? {
                        Value::List(l) => l.push(v),
                        _ => return Err(self.err(at, "APPEND to a non-list")),
                    }
                }
                b'e' => {
                    let items = self.pop_mark(at)?;
                    self.check_depth(at, &items)?;
                    match self.top_mut(at)? {
                        Value::List(l) => l.extend(items),
                        _ => return Err(self.err(at, "APPENDS to a non-list")),
                    }
                }
                b's' => {
                    let v = self.pop(at)?;
                    let k = self.pop(at)?;
                    self.check_depth(at, [&k, &v])?;
                    match self.top_mut(at)? {
                        Value::Dict(d) => d.push((k, v)),
                        _ => return Err(self.err(at, "SETITEM on a non-dict")),
                    }
                }
                b'u' => {
                    let items = self.pop_mark(at)?;
                    if items.len() % 2 != 0 {
                        return Err(self.err(at, "SETITEMS with an odd number of items"));
                    }
                    self.check_depth(at, &items)?;
                    let mut it = items.into_iter();
                    let mut pairs = Vec::new();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    match self.top_mut(at)? {
                        Value::Dict(d) => d.extend(pairs),
                        _ => return Err(self.err(at, "SETITEMS on a non-dict")),
                    }
                }
                b'Q' => {
                    let pid = self.pop(at)?;
                    let s = self.persistent(at, pid)?;
                    self.stack.push(Value::Storage(s));
                }
                b'R' => {
                    let args = self.pop(at)?;
                    let callable = self.pop(at)?;
                    let v = self.reduce(at, callable, args)?;
                    self.stack.push(v);
                }
                b'b' => {
                    let state = self.pop(at)?;
                    self.check_depth(at, [&state])?;
                    let obj = self.top_mut(at)?;
                    match (obj, state) {
                        (_, Value::None) => {}
                        (Value::Dict(d), Value::Dict(s)) => d.extend(s),
                        (_, Value::Dict(s)) if s.is_empty() => {}
                        _ => {
                            return Err(self
                                .err(at, "BUILD with state on an object the unpickler cannot set"))
                        }
                    }
                }
                b'0' => {
                    self.pop(at)?;
                }
                b'2' => {
                    let v = self.top_mut(at)?.clone();
                    self.copied = self.copied.saturating_add(v.weight());
                    if self.copied > MAX_COPY_WEIGHT {
                        return Err(self.err(at, "too much copying (malicious pickle?)"));
                    }
                    self.stack.push(v);
                }
                other => {
                    return Err(self.err(
                        at,
                        format!(
                            "unsupported pickle opcode 0x{other:02x} ({:?})",
                            char::from(other)
                        ),
                    ))
                }
            }
        }
    }

    fn persistent(&self, at: usize, pid: Value) -> Result<StorageRef> {
        let bad = || {
            self.err(
                at,
                "persistent id is not ('storage', StorageType, key, location, numel)",
            )
        };
        let Value::Tuple(items) = pid else {
            return Err(bad());
        };
        match items.as_slice() {
            [Value::Str(tag), Value::Global(Global::StorageType(dtype)), Value::Str(key), Value::Str(location), Value::Int(numel)]
                if tag == "storage" =>
            {
                let numel =
                    usize::try_from(*numel).map_err(|_| self.err(at, "negative storage size"))?;
                if key.is_empty() || key.contains('/') || key.contains("..") {
                    return Err(self.err(at, format!("invalid storage key `{key}`")));
                }
                Ok(StorageRef {
                    dtype: *dtype,
                    key: key.clone(),
                    location: location.clone(),
                    numel,
                })
            }
            _ => Err(bad()),
        }
    }

    fn reduce(&self, at: usize, callable: Value, args: Value) -> Result<Value> {
        let Value::Tuple(args) = args else {
            return Err(self.err(at, "REDUCE arguments are not a tuple"));
        };
        match callable {
            Value::Global(Global::OrderedDict) => {
                if !args.is_empty() {
                    return Err(self.err(at, "OrderedDict called with arguments"));
                }
                Ok(Value::Dict(Vec::new()))
            }
            Value::Global(Global::RebuildTensorV2) => {
                let (storage, offset, size, stride) = match args.as_slice() {
                    [Value::Storage(s), Value::Int(o), Value::Tuple(size), Value::Tuple(stride), ..] => {
                        (s.clone(), *o, size, stride)
                    }
                    _ => return Err(self.err(
                        at,
                        "_rebuild_tensor_v2 arguments are not (storage, offset, size, stride, ...)",
                    )),
                };
                let ints = |v: &[Value], what: &str| -> Result<Vec<usize>> {
                    v.iter()
                        .map(|x| match x {
                            Value::Int(i) => usize::try_from(*i)
                                .map_err(|_| self.err(at, format!("negative {what}"))),
                            _ => Err(self.err(at, format!("{what} is not an integer"))),
                        })
                        .collect()
                };
                let shape = ints(size, "size")?;
                let stride = ints(stride, "stride")?;
                if shape.len() != stride.len() {
                    return Err(self.err(at, "size and stride have different lengths"));
                }
                let storage_offset =
                    usize::try_from(offset).map_err(|_| self.err(at, "negative storage offset"))?;
                Ok(Value::Tensor(TensorDesc {
                    storage,
                    storage_offset,
                    shape,
                    stride,
                }))
            }
            Value::Global(g) => Err(self.err(at, format!("{g:?} cannot be called"))),
            _ => Err(self.err(at, "REDUCE on a value that is not an allowed global")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(b: &[u8]) -> Result<Value> {
        unpickle(Path::new("t.pth"), "a/data.pkl", b)
    }

    #[test]
    fn forbidden_global_is_refused_before_any_call() {
        // pickle.dumps of os.system("echo") at protocol 2.
        let p = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00echoq\x01\x85q\x02Rq\x03.";
        match up(p) {
            Err(FormatError::ForbiddenGlobal { global, .. }) => assert_eq!(global, "os.system"),
            other => panic!("{other:?}"),
        }
        // STACK_GLOBAL and INST name the global too.
        let p = b"\x80\x04\x8c\x02os\x8c\x06system\x93.";
        assert!(
            matches!(up(p), Err(FormatError::ForbiddenGlobal { global, .. }) if global == "os.system")
        );
        let p = b"\x80\x02(X\x01\x00\x00\x00xiposix\nsystem\n.";
        assert!(
            matches!(up(p), Err(FormatError::ForbiddenGlobal { global, .. }) if global == "posix.system")
        );
        let p = b"\x80\x02cbuiltins\neval\n.";
        assert!(
            matches!(up(p), Err(FormatError::ForbiddenGlobal { global, .. }) if global == "builtins.eval")
        );
    }

    #[test]
    fn basic_values() {
        // {'a': (1, -2, True, None, 70000)}
        let p = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01(K\x01J\xfe\xff\xff\xff\x88NJp\x11\x01\x00tq\x02s.";
        let v = up(p).unwrap();
        let want = Value::Dict(vec![(
            Value::Str("a".into()),
            Value::Tuple(vec![
                Value::Int(1),
                Value::Int(-2),
                Value::Bool(true),
                Value::None,
                Value::Int(70000),
            ]),
        )]);
        assert_eq!(v, want);
    }

    #[test]
    fn truncation_never_panics() {
        let p = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01(K\x01J\xfe\xff\xff\xff\x88NJp\x11\x01\x00tq\x02s.";
        for n in 0..p.len() {
            assert!(up(&p[..n]).is_err(), "len {n}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_overflow() {
        let mut p = b"\x80\x02)".to_vec();
        p.extend(std::iter::repeat_n(0x85u8, 1_000_000));
        p.push(b'.');
        let e = up(&p).unwrap_err().to_string();
        assert!(e.contains("nested deeper"), "{e}");
        // Lists via APPEND, too.
        let mut p = b"\x80\x02]".to_vec();
        p.extend(std::iter::repeat_n(b']', 200));
        p.extend(std::iter::repeat_n(b'a', 200));
        p.push(b'.');
        assert!(up(&p).is_err());
    }

    #[test]
    fn memo_bomb_is_bounded() {
        // l = []; repeatedly: l = [l, l] via memo gets — doubles each step.
        let mut p = b"\x80\x02]q\x00".to_vec();
        for i in 0..64u8 {
            p.extend_from_slice(&[b'h', i, b'h', i, 0x86, b'q', i + 1]);
        }
        p.push(b'.');
        assert!(up(&p).is_err());
    }
}

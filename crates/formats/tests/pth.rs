//! Meta / PyTorch checkpoints built by hand (zip + pickle bytes written here, opcode by opcode, as
//! `torch.save` emits them), and the malicious or corrupt variants the reader must refuse.
mod common;

use llama31_formats::pth::zip::write_stored_zip;
use llama31_formats::{DType, FormatError, MetaCheckpoint, PthFile, WeightFile};

/// Protocol-2 pickle writer for the subset torch.save uses.
struct Pkl(Vec<u8>);

impl Pkl {
    fn new() -> Self {
        Pkl(vec![0x80, 2])
    }
    fn op(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn s(&mut self, s: &str) -> &mut Self {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn int(&mut self, v: u32) -> &mut Self {
        self.0.push(b'J');
        self.0.extend_from_slice(&(v as i32).to_le_bytes());
        self
    }
    fn global(&mut self, m: &str, n: &str) -> &mut Self {
        self.0.push(b'c');
        self.0.extend_from_slice(format!("{m}\n{n}\n").as_bytes());
        self
    }
    fn tuple(&mut self, v: &[usize]) -> &mut Self {
        self.op(b"(");
        for &x in v {
            self.int(x as u32);
        }
        self.op(b"t")
    }
}

struct T<'a> {
    name: &'a str,
    storage: &'a str,
    key: &'a str,
    numel: usize,
    offset: usize,
    shape: &'a [usize],
    stride: &'a [usize],
}

/// `{name: _rebuild_tensor_v2(storage, offset, shape, stride, False, OrderedDict())}` the way
/// torch.save writes it (memoised with BINPUT, storage via BINPERSID).
fn state_dict_pickle(tensors: &[T]) -> Vec<u8> {
    let mut p = Pkl::new();
    p.op(b"}q\x00(");
    let mut memo = 1u8;
    for t in tensors {
        p.s(t.name).op(&[b'q', memo]);
        memo += 1;
        p.global("torch._utils", "_rebuild_tensor_v2")
            .op(&[b'q', memo]);
        memo += 1;
        p.op(b"((")
            .s("storage")
            .global("torch", t.storage)
            .s(t.key)
            .s("cpu")
            .int(t.numel as u32);
        p.op(b"tQ")
            .int(t.offset as u32)
            .tuple(t.shape)
            .tuple(t.stride)
            .op(b"\x89");
        p.global("collections", "OrderedDict")
            .op(b")R")
            .op(b"tR")
            .op(&[b'q', memo]);
        memo += 1;
    }
    p.op(b"u.");
    p.0
}

fn checkpoint(prefix: &str, pkl: &[u8], storages: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let names: Vec<String> = storages
        .iter()
        .map(|(k, _)| format!("{prefix}/data/{k}"))
        .collect();
    let mut entries: Vec<(&str, &[u8])> = Vec::new();
    let pkl_name = format!("{prefix}/data.pkl");
    let bo = format!("{prefix}/byteorder");
    let ver = format!("{prefix}/version");
    entries.push((&pkl_name, pkl));
    entries.push((&bo, b"little"));
    for (n, (_, d)) in names.iter().zip(storages) {
        entries.push((n, d));
    }
    entries.push((&ver, b"3\n"));
    write_stored_zip(&entries)
}

fn bf16_storage(n: usize, base: u8) -> Vec<u8> {
    (0..n * 2).map(|i| base.wrapping_add(i as u8)).collect()
}

fn two_tensor_file() -> Vec<u8> {
    let pkl = state_dict_pickle(&[
        T {
            name: "a.weight",
            storage: "BFloat16Storage",
            key: "0",
            numel: 6,
            offset: 0,
            shape: &[2, 3],
            stride: &[3, 1],
        },
        T {
            name: "b.weight",
            storage: "FloatStorage",
            key: "1",
            numel: 4,
            offset: 1,
            shape: &[3],
            stride: &[1],
        },
    ]);
    checkpoint(
        "consolidated.00",
        &pkl,
        &[("0", bf16_storage(6, 0)), ("1", (100u8..116).collect())],
    )
}

fn open(b: Vec<u8>) -> Result<PthFile, FormatError> {
    PthFile::from_bytes("consolidated.00.pth", b)
}

#[test]
fn reads_hand_built_checkpoint() {
    let f = open(two_tensor_file()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.names().collect::<Vec<_>>(), ["a.weight", "b.weight"]);
    let a = f.tensor("a.weight").unwrap();
    assert_eq!((a.dtype, a.shape.clone()), (DType::BF16, vec![2, 3]));
    assert_eq!(a.data, bf16_storage(6, 0).as_slice());
    // Storage offset 1 (in f32 elements) -> bytes 4..16 of the storage.
    let b = f.tensor("b.weight").unwrap();
    assert_eq!(
        (b.dtype, b.data),
        (DType::F32, (104u8..116).collect::<Vec<_>>().as_slice())
    );
}

#[test]
fn os_system_pickle_is_refused_and_nothing_runs() {
    let marker = std::env::temp_dir().join(format!("llama31-pwned-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let cmd = format!("touch {}", marker.display());
    // cos\nsystem\n X<cmd> \x85 R . — what pickle.dumps of a __reduce__ returning (os.system, (cmd,)) emits.
    let mut p = Pkl::new();
    p.global("os", "system")
        .op(b"q\x00")
        .s(&cmd)
        .op(b"\x85q\x01R.");
    let file = checkpoint("consolidated.00", &p.0, &[("0", vec![0u8; 4])]);
    match open(file) {
        Err(e @ FormatError::ForbiddenGlobal { .. }) => {
            let FormatError::ForbiddenGlobal { ref global, .. } = e else {
                unreachable!()
            };
            assert_eq!(global, "os.system");
            assert!(e.to_string().contains("consolidated.00.pth"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!marker.exists(), "the pickle was executed");
    // The same inside a dict value, and other classic payloads.
    for (m, n) in [
        ("builtins", "eval"),
        ("posix", "system"),
        ("subprocess", "Popen"),
        ("torch", "load"),
        ("__builtin__", "exec"),
    ] {
        let mut p = Pkl::new();
        p.op(b"}q\x00(").s("x").global(m, n).s("1").op(b"\x85Ru.");
        match open(checkpoint("c", &p.0, &[])) {
            Err(FormatError::ForbiddenGlobal { global, .. }) => {
                assert_eq!(global, format!("{m}.{n}"))
            }
            other => panic!("{m}.{n}: {other:?}"),
        }
    }
}

#[test]
fn reduce_of_allowed_global_with_wrong_args_is_an_error() {
    let mut p = Pkl::new();
    p.op(b"}(")
        .s("x")
        .global("torch._utils", "_rebuild_tensor_v2")
        .s("oops")
        .op(b"\x85Ru.");
    assert!(matches!(
        open(checkpoint("c", &p.0, &[])),
        Err(FormatError::Pickle { .. })
    ));
    // A storage type is not callable.
    let mut p = Pkl::new();
    p.global("torch", "FloatStorage").op(b")R.");
    assert!(matches!(
        open(checkpoint("c", &p.0, &[])),
        Err(FormatError::Pickle { .. })
    ));
}

#[test]
fn every_truncation_is_an_error() {
    let full = two_tensor_file();
    for len in 0..full.len() {
        assert!(open(full[..len].to_vec()).is_err(), "len {len}");
    }
}

#[test]
fn missing_or_short_storage() {
    let t = [T {
        name: "a",
        storage: "HalfStorage",
        key: "7",
        numel: 6,
        offset: 0,
        shape: &[6],
        stride: &[1],
    }];
    let pkl = state_dict_pickle(&t);
    let e = open(checkpoint("c", &pkl, &[])).unwrap_err();
    assert!(e.to_string().contains("c/data/7"), "{e}");
    let e = open(checkpoint("c", &pkl, &[("7", vec![0u8; 11])])).unwrap_err();
    assert!(matches!(e, FormatError::InvalidTensor { .. }), "{e}");
    // Offset + shape beyond the storage.
    let t = [T {
        name: "a",
        storage: "HalfStorage",
        key: "7",
        numel: 6,
        offset: 2,
        shape: &[5],
        stride: &[1],
    }];
    let e = open(checkpoint(
        "c",
        &state_dict_pickle(&t),
        &[("7", vec![0u8; 12])],
    ))
    .unwrap_err();
    assert!(matches!(e, FormatError::InvalidTensor { .. }), "{e}");
}

#[test]
fn non_contiguous_is_reported() {
    let t = [T {
        name: "a",
        storage: "FloatStorage",
        key: "0",
        numel: 6,
        offset: 0,
        shape: &[2, 3],
        stride: &[1, 2],
    }];
    let f = open(checkpoint(
        "c",
        &state_dict_pickle(&t),
        &[("0", vec![0u8; 24])],
    ))
    .unwrap();
    let e = f.tensor("a").unwrap_err().to_string();
    assert!(e.contains("not contiguous"), "{e}");
    assert!(!f.tensor_infos()[0].is_contiguous());
}

#[test]
fn not_a_zip_or_compressed() {
    assert!(matches!(
        open(b"\x80\x02}.".to_vec()),
        Err(FormatError::BadMagic { .. })
    ));
    let mut z = two_tensor_file();
    // Mark the first central-directory entry as deflated.
    let cd = z
        .windows(4)
        .rposition(|w| w == [0x50, 0x4b, 0x01, 0x02])
        .unwrap();
    z[cd + 10] = 8;
    assert!(matches!(open(z), Err(FormatError::Zip { .. })));
}

#[test]
fn big_endian_byteorder_is_refused() {
    let pkl = state_dict_pickle(&[]);
    let z = write_stored_zip(&[("c/data.pkl", &pkl), ("c/byteorder", b"big")]);
    assert!(matches!(open(z), Err(FormatError::Zip { .. })));
}

#[test]
fn meta_directory_with_two_llama2_style_shards() {
    // Llama 2 layout: tok_embeddings split along dim 1, output along dim 0.
    let dir = common::temp_dir("meta-mp2-llama2");
    for (i, base) in [(0usize, 0u8), (1, 100)] {
        let pkl = state_dict_pickle(&[
            T {
                name: "tok_embeddings.weight",
                storage: "BFloat16Storage",
                key: "0",
                numel: 4,
                offset: 0,
                shape: &[4, 1],
                stride: &[1, 1],
            },
            T {
                name: "output.weight",
                storage: "BFloat16Storage",
                key: "1",
                numel: 4,
                offset: 0,
                shape: &[2, 2],
                stride: &[2, 1],
            },
            T {
                name: "norm.weight",
                storage: "BFloat16Storage",
                key: "2",
                numel: 2,
                offset: 0,
                shape: &[2],
                stride: &[1],
            },
        ]);
        let file = checkpoint(
            &format!("consolidated.{i:02}"),
            &pkl,
            &[
                ("0", bf16_storage(4, base)),
                ("1", bf16_storage(4, base + 50)),
                ("2", bf16_storage(2, 7)),
            ],
        );
        std::fs::write(dir.join(format!("consolidated.{i:02}.pth")), file).unwrap();
    }
    let w = WeightFile::open(&dir).unwrap_or_else(|e| panic!("{e}"));
    let WeightFile::Meta(ck) = &w else {
        panic!("not meta")
    };
    assert_eq!(ck.shard_dim("tok_embeddings.weight"), Some(1));
    let emb = w.get("tok_embeddings.weight").unwrap();
    assert_eq!(emb.shape, vec![4, 2]);
    // Row r = [shard0 row r, shard1 row r] (2 bytes per bf16 element).
    assert_eq!(&emb.data[..8], &[0, 1, 100, 101, 2, 3, 102, 103]);
    let out = w.get("output.weight").unwrap();
    assert_eq!(out.shape, vec![4, 2]);
    assert_eq!(
        &out.data[..],
        [bf16_storage(4, 50), bf16_storage(4, 150)]
            .concat()
            .as_slice()
    );
    let norm = w.get("norm.weight").unwrap();
    assert!(norm.is_borrowed());
    assert!(w.tensor("output.weight").is_err());
    // Shard numbering must have no gaps.
    std::fs::rename(
        dir.join("consolidated.01.pth"),
        dir.join("consolidated.02.pth"),
    )
    .unwrap();
    assert!(MetaCheckpoint::open(&dir).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn random_corruption_never_panics() {
    let base = two_tensor_file();
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..3000 {
        let mut b = base.clone();
        for _ in 0..2 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let at = (s % b.len() as u64) as usize;
            b[at] = (s >> 40) as u8;
        }
        if let Ok(f) = open(b) {
            for n in f.names().map(str::to_owned).collect::<Vec<_>>() {
                let _ = f.tensor(&n);
            }
        }
    }
}

//! GGUF reader validation: build small files with `GgufWriter`, corrupt specific bytes, and check
//! that each corruption gives the right typed error (never a panic). Cases follow llama.cpp's
//! `tests/test-gguf.cpp`.

use llama31_formats::{DType, FormatError, GgufArray, GgufFile, GgufValue, GgufWriter};

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{:?} not found", String::from_utf8_lossy(needle)))
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A small valid file: every metadata type, three tensors (the last one exactly 32 bytes, so the
/// file ends with tensor data and every shorter length is a real truncation).
fn sample() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama")
        .add_metadata("test.u8", 200u8)
        .add_metadata("test.i8", -100i8)
        .add_metadata("test.u16", 60000u16)
        .add_metadata("test.i16", -30000i16)
        .add_metadata("test.u32", 4_000_000_000u32)
        .add_metadata("test.i32", -2_000_000_000i32)
        .add_metadata("test.f32", 1.5f32)
        .add_metadata("test.bool", true)
        .add_metadata("test.string", "hé")
        .add_metadata("test.u64", u64::MAX)
        .add_metadata("test.i64", i64::MIN)
        .add_metadata("test.f64", 0.25f64)
        .add_metadata(
            "test.arr_str",
            GgufArray::String(vec!["a".into(), "".into(), "ccc".into()]),
        )
        .add_metadata("test.arr_i32", GgufArray::I32(vec![1, -2, 3]))
        .add_metadata("test.arr_i16", GgufArray::I16(vec![7, -8]))
        .add_metadata("test.arr_f32", GgufArray::F32(vec![0.5, -1.0]))
        .add_metadata(
            "test.nested",
            GgufArray::Array(vec![
                GgufArray::U8(vec![1, 2]),
                GgufArray::Bool(vec![true, false]),
            ]),
        );
    let t0 = f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let q = vec![7u8; 18]; // one Q4_0 block
    let t2 = f32_bytes(&[0.0; 8]);
    w.add_tensor("t.f32", DType::F32, &[2, 3], t0)
        .add_tensor("t.q4", DType::Q4_0, &[1, 32], q)
        .add_tensor("t.last", DType::F32, &[8], t2);
    w.to_bytes().unwrap()
}

fn open(b: Vec<u8>) -> Result<GgufFile, FormatError> {
    GgufFile::from_bytes("sample.gguf", b)
}

/// Position of a tensor info's fields: (n_dims, first dim, type, offset) for a tensor with `n` dims.
fn tensor_fields(b: &[u8], name: &str, n: usize) -> (usize, usize, usize, usize) {
    let mut needle = (name.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(name.as_bytes());
    let nd = find(b, &needle) + needle.len();
    (nd, nd + 4, nd + 4 + 8 * n, nd + 4 + 8 * n + 4)
}

/// Position of the type id of metadata key `key` (the value follows 4 bytes later).
fn kv_type_pos(b: &[u8], key: &str) -> usize {
    let mut needle = (key.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(key.as_bytes());
    find(b, &needle) + needle.len()
}

#[test]
fn round_trip_all_value_types() {
    let g = open(sample()).unwrap();
    assert_eq!(g.version(), 3);
    assert_eq!(g.alignment(), 32);
    assert_eq!(g.data_offset() % 32, 0);
    assert_eq!(g.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(g.get_u32("test.u8").unwrap(), 200);
    assert_eq!(g.get_i64("test.i8").unwrap(), -100);
    assert_eq!(g.get_u32("test.u16").unwrap(), 60000);
    assert_eq!(g.get_i64("test.i16").unwrap(), -30000);
    assert_eq!(g.get_u32("test.u32").unwrap(), 4_000_000_000);
    assert_eq!(g.get_i64("test.i32").unwrap(), -2_000_000_000);
    assert_eq!(g.get_f32("test.f32").unwrap(), 1.5);
    assert!(g.get_bool("test.bool").unwrap());
    assert_eq!(g.get_str("test.string").unwrap(), "hé");
    assert_eq!(g.get_u64("test.u64").unwrap(), u64::MAX);
    assert_eq!(g.get_i64("test.i64").unwrap(), i64::MIN);
    assert_eq!(g.get_f32("test.f64").unwrap(), 0.25);
    assert_eq!(g.get_str_array("test.arr_str").unwrap(), ["a", "", "ccc"]);
    assert_eq!(&*g.get_i32_array("test.arr_i32").unwrap(), &[1, -2, 3]);
    assert_eq!(&*g.get_i32_array("test.arr_i16").unwrap(), &[7, -8]);
    assert_eq!(&*g.get_f32_array("test.arr_f32").unwrap(), &[0.5, -1.0]);
    assert_eq!(
        g.get_array("test.nested").unwrap(),
        &GgufArray::Array(vec![
            GgufArray::U8(vec![1, 2]),
            GgufArray::Bool(vec![true, false])
        ])
    );
    assert_eq!(g.get("test.u8"), Some(&GgufValue::U8(200)));
    assert_eq!(g.keys().count(), 18);
    // Conversions that do not fit are typed errors.
    assert!(matches!(
        g.get_u32("test.i8"),
        Err(FormatError::WrongType { .. })
    ));
    assert!(matches!(
        g.get_u32("test.u64"),
        Err(FormatError::WrongType { .. })
    ));
    assert!(matches!(
        g.get_str("test.u8"),
        Err(FormatError::WrongType { .. })
    ));
    assert!(matches!(
        g.get_u32("nope"),
        Err(FormatError::MissingKey { .. })
    ));
    assert_eq!(g.opt_u32("nope").unwrap(), None);
    assert_eq!(g.opt_u32("test.u16").unwrap(), Some(60000));

    let t = g.tensor("t.f32").unwrap();
    assert_eq!(t.shape, vec![2, 3]);
    assert_eq!(t.dtype, DType::F32);
    assert_eq!(
        t.data,
        f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).as_slice()
    );
    assert_eq!(g.tensor_info("t.f32").unwrap().ne, vec![3, 2]);
    let q = g.tensor("t.q4").unwrap();
    assert_eq!(q.dtype, DType::Q4_0);
    assert_eq!(q.shape, vec![1, 32]);
    assert_eq!(q.data, &[7u8; 18]);
    for info in g.tensor_infos() {
        assert_eq!(info.offset % 32, 0, "{}", info.name);
    }
    assert!(matches!(
        g.tensor("missing"),
        Err(FormatError::TensorNotFound { .. })
    ));
}

#[test]
fn custom_alignment_is_honoured() {
    let mut w = GgufWriter::new();
    w.add_metadata("general.alignment", 64u32)
        .add_tensor("a", DType::F32, &[3], f32_bytes(&[1.0, 2.0, 3.0]))
        .add_tensor("b", DType::F16, &[5], vec![0u8; 10]);
    let g = open(w.to_bytes().unwrap()).unwrap();
    assert_eq!(g.alignment(), 64);
    assert_eq!(g.data_offset() % 64, 0);
    assert_eq!(g.tensor_info("b").unwrap().offset, 64);
}

#[test]
fn writer_rejects_inconsistent_tensors() {
    let mut w = GgufWriter::new();
    w.add_tensor("a", DType::F32, &[3], vec![0u8; 11]);
    assert!(w.to_bytes().is_err());
    let mut w = GgufWriter::new();
    w.add_tensor("a", DType::Q4_0, &[31], vec![0u8; 18]);
    assert!(w.to_bytes().is_err());
    let mut w = GgufWriter::new();
    w.add_tensor("a", DType::F32, &[1], vec![0u8; 4])
        .add_tensor("a", DType::F32, &[1], vec![0u8; 4]);
    assert!(w.to_bytes().is_err());
}

#[test]
fn every_truncation_is_an_error() {
    let full = sample();
    assert!(open(full.clone()).is_ok());
    for len in 0..full.len() {
        let r = open(full[..len].to_vec());
        assert!(
            r.is_err(),
            "truncated to {len} of {} bytes was accepted",
            full.len()
        );
    }
}

#[test]
fn bad_magic() {
    let mut b = sample();
    b[0] = b'X';
    assert!(matches!(open(b), Err(FormatError::BadMagic { .. })));
}

#[test]
fn unsupported_versions() {
    for v in [0u32, 1, 4, 0x0300_0000] {
        let mut b = sample();
        put_u32(&mut b, 4, v);
        match open(b) {
            Err(e @ FormatError::UnsupportedVersion { version, .. }) => {
                assert_eq!(version, v);
                assert!(e.to_string().contains("sample.gguf"), "{e}");
            }
            other => panic!("version {v}: {other:?}"),
        }
    }
    // Version 2 uses the same layout as 3 and is accepted.
    let mut b = sample();
    put_u32(&mut b, 4, 2);
    assert_eq!(open(b).unwrap().version(), 2);
}

#[test]
fn counts_larger_than_the_file() {
    for (at, v) in [
        (8usize, u64::MAX),
        (8, 1 << 40),
        (16, u64::MAX),
        (16, 1_000_000),
    ] {
        let mut b = sample();
        put_u64(&mut b, at, v);
        assert!(
            matches!(open(b), Err(FormatError::Truncated { .. })),
            "count at {at} = {v}"
        );
    }
}

#[test]
fn string_length_past_eof() {
    let mut b = sample();
    let at = kv_type_pos(&b, "test.string") + 4;
    put_u64(&mut b, at, u64::MAX - 3);
    assert!(matches!(open(b), Err(FormatError::Truncated { .. })));
    // A key length past EOF.
    let mut b = sample();
    put_u64(&mut b, 24, 1 << 50);
    assert!(matches!(open(b), Err(FormatError::Truncated { .. })));
}

#[test]
fn array_length_past_eof() {
    let mut b = sample();
    let at = kv_type_pos(&b, "test.arr_i32") + 4 + 4; // type, element type, then count
    put_u64(&mut b, at, 1 << 61);
    assert!(matches!(open(b), Err(FormatError::Truncated { .. })));
    let mut b = sample();
    let at = kv_type_pos(&b, "test.arr_str") + 8;
    put_u64(&mut b, at, 1_000_000);
    assert!(matches!(open(b), Err(FormatError::Truncated { .. })));
}

#[test]
fn unknown_value_types() {
    let mut b = sample();
    let at = kv_type_pos(&b, "test.u32");
    put_u32(&mut b, at, 13);
    match open(b) {
        Err(FormatError::UnknownValueType { key, type_id, .. }) => {
            assert_eq!(key, "test.u32");
            assert_eq!(type_id, 13);
        }
        other => panic!("{other:?}"),
    }
    // Unknown element type inside an array.
    let mut b = sample();
    let at = kv_type_pos(&b, "test.arr_i32") + 4;
    put_u32(&mut b, at, 99);
    assert!(matches!(
        open(b),
        Err(FormatError::UnknownValueType { type_id: 99, .. })
    ));
}

#[test]
fn bad_bool_value() {
    let mut b = sample();
    let at = kv_type_pos(&b, "test.bool") + 4;
    b[at] = 2;
    assert!(matches!(open(b), Err(FormatError::Invalid { .. })));
}

#[test]
fn unknown_ggml_types() {
    for id in [4u32, 5, 31, 40, 1000] {
        let mut b = sample();
        let (_, _, ty, _) = tensor_fields(&b, "t.f32", 2);
        put_u32(&mut b, ty, id);
        match open(b) {
            Err(FormatError::UnknownGgmlType {
                tensor, type_id, ..
            }) => {
                assert_eq!((tensor.as_str(), type_id), ("t.f32", id));
            }
            other => panic!("{id}: {other:?}"),
        }
    }
}

#[test]
fn n_dims_out_of_range() {
    for n in [0u32, 5, u32::MAX] {
        let mut b = sample();
        let (nd, ..) = tensor_fields(&b, "t.f32", 2);
        put_u32(&mut b, nd, n);
        assert!(
            matches!(open(b), Err(FormatError::InvalidTensor { .. })),
            "n_dims {n}"
        );
    }
}

#[test]
fn dimension_products_that_overflow() {
    let mut b = sample();
    let (_, d0, ..) = tensor_fields(&b, "t.f32", 2);
    put_u64(&mut b, d0, 1 << 40);
    put_u64(&mut b, d0 + 8, 1 << 40);
    let e = open(b).unwrap_err();
    assert!(matches!(e, FormatError::InvalidTensor { .. }), "{e}");
    assert!(e.to_string().contains("overflow"), "{e}");
    // Large but not overflowing: data past the end of the file.
    let mut b = sample();
    let (_, d0, ..) = tensor_fields(&b, "t.f32", 2);
    put_u64(&mut b, d0, 1 << 20);
    assert!(matches!(open(b), Err(FormatError::InvalidTensor { .. })));
}

#[test]
fn zero_size_dims() {
    let mut b = sample();
    let (_, d0, ..) = tensor_fields(&b, "t.f32", 2);
    put_u64(&mut b, d0 + 8, 0);
    let e = open(b).unwrap_err();
    assert!(e.to_string().contains("zero"), "{e}");
}

#[test]
fn row_not_multiple_of_block_size() {
    let mut b = sample();
    let (_, d0, ..) = tensor_fields(&b, "t.q4", 2);
    put_u64(&mut b, d0, 31);
    assert!(matches!(open(b), Err(FormatError::InvalidTensor { .. })));
}

#[test]
fn offsets_past_eof_or_misaligned() {
    let mut b = sample();
    let (.., off) = tensor_fields(&b, "t.last", 1);
    put_u64(&mut b, off, 1 << 20);
    assert!(matches!(open(b), Err(FormatError::InvalidTensor { .. })));
    let mut b = sample();
    let (.., off) = tensor_fields(&b, "t.last", 1);
    put_u64(&mut b, off, u64::MAX - 31);
    assert!(matches!(open(b), Err(FormatError::InvalidTensor { .. })));
    let mut b = sample();
    let (.., off) = tensor_fields(&b, "t.q4", 2);
    put_u64(&mut b, off, 33);
    let e = open(b).unwrap_err();
    assert!(e.to_string().contains("alignment"), "{e}");
}

#[test]
fn overlapping_tensor_data() {
    let mut b = sample();
    let (.., off) = tensor_fields(&b, "t.q4", 2);
    put_u64(&mut b, off, 0); // same place as t.f32
    let e = open(b).unwrap_err();
    assert!(e.to_string().contains("overlaps"), "{e}");
}

#[test]
fn invalid_alignment() {
    let make = || {
        let mut w = GgufWriter::new();
        w.add_metadata("general.alignment", 64u32).add_tensor(
            "a",
            DType::F32,
            &[16],
            vec![0u8; 64],
        );
        w.to_bytes().unwrap()
    };
    assert!(open(make()).is_ok());
    for a in [0u32, 48, 3] {
        let mut b = make();
        let at = kv_type_pos(&b, "general.alignment") + 4;
        put_u32(&mut b, at, a);
        match open(b) {
            Err(FormatError::InvalidAlignment { alignment, .. }) => {
                assert_eq!(alignment, u64::from(a))
            }
            other => panic!("alignment {a}: {other:?}"),
        }
    }
}

#[test]
fn duplicate_keys() {
    let mut b = sample();
    let at = kv_type_pos(&b, "test.i8") - 2; // the "i8" of "test.i8" -> "u8"
    b[at] = b'u';
    match open(b) {
        Err(FormatError::DuplicateKey { key, .. }) => assert_eq!(key, "test.u8"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn duplicate_tensor_names() {
    let mut w = GgufWriter::new();
    w.add_tensor("aa", DType::F32, &[8], vec![0u8; 32])
        .add_tensor("ab", DType::F32, &[8], vec![0u8; 32]);
    let mut b = w.to_bytes().unwrap();
    let at = find(&b, b"ab");
    b[at + 1] = b'a';
    match open(b) {
        Err(FormatError::DuplicateTensor { name, .. }) => assert_eq!(name, "aa"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn deeply_nested_arrays_are_refused() {
    let mut a = GgufArray::U8(vec![1]);
    for _ in 0..20 {
        a = GgufArray::Array(vec![a]);
    }
    let mut w = GgufWriter::new();
    w.add_metadata("deep", a);
    assert!(matches!(
        open(w.to_bytes().unwrap()),
        Err(FormatError::Invalid { .. })
    ));
}

#[test]
fn random_corruption_never_panics() {
    // Deterministic xorshift; flip bytes in the header region and make sure parsing returns.
    let base = sample();
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..3000 {
        let mut b = base.clone();
        for _ in 0..3 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let at = (s % 600) as usize % b.len();
            b[at] = (s >> 32) as u8;
        }
        let _ = open(b);
    }
}

#[test]
fn file_on_disk_error_names_the_path() {
    let dir = std::env::temp_dir().join(format!("llama31-formats-gguf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.gguf");
    let mut b = sample();
    b[0] = 0;
    std::fs::write(&p, &b).unwrap();
    let e = GgufFile::open(&p).unwrap_err().to_string();
    assert!(e.contains("bad.gguf"), "{e}");
    let good = dir.join("good.gguf");
    std::fs::write(&good, sample()).unwrap();
    let g = GgufFile::open(&good).unwrap();
    assert_eq!(g.tensor("t.last").unwrap().data.len(), 32);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn streamed_writer_matches_in_memory_writer() {
    let a = f32_bytes(&[1.0, 2.0, 3.0]);
    let q = vec![3u8; 34];
    let mut w = GgufWriter::new();
    w.add_metadata("general.alignment", 64u32)
        .add_tensor("a", DType::F32, &[3], a.clone())
        .add_tensor("q", DType::Q8_0, &[1, 32], q.clone());
    let whole = w.to_bytes().unwrap();
    let mut s = GgufWriter::new();
    s.add_metadata("general.alignment", 64u32)
        .add_tensor_info("a", DType::F32, &[3])
        .add_tensor_info("q", DType::Q8_0, &[1, 32]);
    assert!(
        s.to_bytes().is_err(),
        "data-less tensors cannot be written in one go"
    );
    let mut out = Vec::new();
    s.write_header_to(&mut out).unwrap();
    assert!(s.write_tensor_data(&mut out, 0, &a[..8]).is_err());
    s.write_tensor_data(&mut out, 0, &a).unwrap();
    s.write_tensor_data(&mut out, 1, &q).unwrap();
    assert_eq!(out, whole);
    let g = open(out).unwrap();
    assert_eq!(g.tensor("q").unwrap().data, q.as_slice());
}

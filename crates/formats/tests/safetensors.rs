//! safetensors single-file and sharded reading, and the corruptions the reader must refuse.
mod common;

use llama31_formats::{DType, FormatError, SafetensorsFile, SafetensorsModel, WeightFile};

/// Builds a safetensors file from a raw JSON header and a data blob.
fn raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

fn valid() -> Vec<u8> {
    raw(
        r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]},"c":{"dtype":"F16","shape":[1],"data_offsets":[22,24]},"d":{"dtype":"U32","shape":[1],"data_offsets":[24,28]}}"#,
        &(0u8..28).collect::<Vec<_>>(),
    )
}

fn open(b: Vec<u8>) -> Result<SafetensorsFile, FormatError> {
    SafetensorsFile::from_bytes("x.safetensors", b)
}

fn st_msg(r: Result<SafetensorsFile, FormatError>) -> String {
    match r {
        Err(e @ FormatError::Safetensors { .. }) => {
            let s = e.to_string();
            assert!(s.contains("x.safetensors"), "{s}");
            s
        }
        other => panic!("expected a safetensors error, got {other:?}"),
    }
}

#[test]
fn reads_tensors_zero_copy() {
    let f = open(valid()).unwrap();
    assert_eq!(f.len(), 4);
    assert_eq!(f.metadata().get("format").map(String::as_str), Some("pt"));
    let a = f.tensor("a").unwrap();
    assert_eq!((a.dtype, a.shape.clone()), (DType::F32, vec![2, 2]));
    assert_eq!(a.data, (0u8..16).collect::<Vec<_>>().as_slice());
    let b = f.tensor("b").unwrap();
    assert_eq!(
        (b.dtype, b.shape.clone(), b.data),
        (DType::BF16, vec![3], &[16u8, 17, 18, 19, 20, 21][..])
    );
    assert_eq!(f.tensor("c").unwrap().dtype, DType::F16);
    // U32 has no DType: a clear error on use, not at open.
    match f.tensor("d") {
        Err(FormatError::UnsupportedDType { name, dtype, .. }) => {
            assert_eq!((name.as_str(), dtype.as_str()), ("d", "U32"))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        f.tensor("zz"),
        Err(FormatError::TensorNotFound { .. })
    ));
}

#[test]
fn header_too_large_or_past_eof() {
    let mut b = valid();
    b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    st_msg(open(b));
    let mut b = valid();
    b[..8].copy_from_slice(&10_000u64.to_le_bytes());
    st_msg(open(b));
    st_msg(open(vec![1, 2, 3]));
}

#[test]
fn overlapping_offsets() {
    let b = raw(
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
        &[0u8; 12],
    );
    let m = st_msg(open(b));
    assert!(m.contains("offsets"), "{m}");
}

#[test]
fn size_not_shape_times_dtype() {
    let b = raw(
        r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
        &[0u8; 8],
    );
    let m = st_msg(open(b));
    assert!(m.contains("shape"), "{m}");
}

#[test]
fn truncated_data() {
    let full = valid();
    for len in 0..full.len() {
        assert!(open(full[..len].to_vec()).is_err(), "len {len}");
    }
}

fn write_shard(dir: &std::path::Path, file: &str, names: &[&str]) {
    let mut header = String::from("{");
    let mut off = 0;
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!(
            r#""{n}":{{"dtype":"F32","shape":[2],"data_offsets":[{off},{}]}}"#,
            off + 8
        ));
        off += 8;
    }
    header.push('}');
    let data: Vec<u8> = (0..off as u8).collect();
    std::fs::write(dir.join(file), raw(&header, &data)).unwrap();
}

fn write_index(dir: &std::path::Path, map: &[(&str, &str)]) {
    let entries: Vec<String> = map.iter().map(|(t, f)| format!(r#""{t}":"{f}""#)).collect();
    let json = format!(
        r#"{{"metadata":{{"total_size":0}},"weight_map":{{{}}}}}"#,
        entries.join(",")
    );
    std::fs::write(dir.join("model.safetensors.index.json"), json).unwrap();
}

#[test]
fn sharded_index() {
    let dir = common::temp_dir("st-sharded");
    write_shard(&dir, "model-00001-of-00002.safetensors", &["x", "y"]);
    write_shard(&dir, "model-00002-of-00002.safetensors", &["z"]);
    write_index(
        &dir,
        &[
            ("x", "model-00001-of-00002.safetensors"),
            ("y", "model-00001-of-00002.safetensors"),
            ("z", "model-00002-of-00002.safetensors"),
        ],
    );
    let m = SafetensorsModel::open(&dir).unwrap();
    assert_eq!(m.names(), ["x", "y", "z"]);
    assert_eq!(
        m.tensor("y").unwrap().data,
        &[8u8, 9, 10, 11, 12, 13, 14, 15]
    );
    assert_eq!(m.tensor("z").unwrap().data, &[0u8, 1, 2, 3, 4, 5, 6, 7]);
    let w = WeightFile::open(&dir).unwrap();
    assert_eq!(w.names(), ["x", "y", "z"]);
    assert!(w.get("x").unwrap().is_borrowed());

    // Index naming a missing shard.
    write_index(
        &dir,
        &[
            ("x", "model-00001-of-00002.safetensors"),
            ("w", "gone.safetensors"),
        ],
    );
    match SafetensorsModel::open(&dir) {
        Err(FormatError::MissingShard { shard, tensor, .. }) => {
            assert_eq!((shard.as_str(), tensor.as_str()), ("gone.safetensors", "w"))
        }
        other => panic!("{other:?}"),
    }
    // Index naming a tensor its shard does not hold.
    write_index(
        &dir,
        &[
            ("x", "model-00001-of-00002.safetensors"),
            ("q", "model-00002-of-00002.safetensors"),
        ],
    );
    match SafetensorsModel::open(&dir) {
        Err(FormatError::TensorNotFound { name, path }) => {
            assert_eq!(name, "q");
            assert!(path.ends_with("model-00002-of-00002.safetensors"));
        }
        other => panic!("{other:?}"),
    }
    // Path traversal in shard names is refused.
    write_index(&dir, &[("x", "../model-00001-of-00002.safetensors")]);
    assert!(matches!(
        SafetensorsModel::open(&dir),
        Err(FormatError::Json { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn directory_without_index_and_duplicates() {
    let dir = common::temp_dir("st-noindex");
    write_shard(&dir, "a.safetensors", &["x"]);
    write_shard(&dir, "b.safetensors", &["y"]);
    let m = SafetensorsModel::open(&dir).unwrap();
    assert_eq!(m.names(), ["x", "y"]);
    write_shard(&dir, "c.safetensors", &["x"]);
    assert!(matches!(
        SafetensorsModel::open(&dir),
        Err(FormatError::DuplicateTensor { .. })
    ));
    // A single file opens through WeightFile too.
    let w = WeightFile::open(dir.join("b.safetensors")).unwrap();
    assert_eq!(w.names(), ["y"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn detect_refuses_unknown_paths() {
    let dir = common::temp_dir("detect");
    assert!(matches!(
        WeightFile::open(&dir),
        Err(FormatError::NotAModel { .. })
    ));
    assert!(matches!(
        WeightFile::open(dir.join("nope")),
        Err(FormatError::Io { .. })
    ));
    std::fs::write(dir.join("x.bin"), b"hello").unwrap();
    assert!(matches!(
        WeightFile::open(dir.join("x.bin")),
        Err(FormatError::NotAModel { .. })
    ));
    // A .gguf name with bad content is reported by the GGUF reader, naming the file.
    std::fs::write(dir.join("m.gguf"), b"GGUF\x01\x00\x00\x00").unwrap();
    let e = WeightFile::open(dir.join("m.gguf")).unwrap_err();
    assert!(
        matches!(e, FormatError::UnsupportedVersion { version: 1, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("m.gguf"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn random_corruption_never_panics() {
    let base = valid();
    let mut s = 0x1234_5678_9ABC_DEF1u64;
    for _ in 0..3000 {
        let mut b = base.clone();
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let at = (s % b.len() as u64) as usize;
        b[at] = (s >> 40) as u8;
        if let Ok(f) = open(b) {
            for n in f.names().map(str::to_owned).collect::<Vec<_>>() {
                let _ = f.tensor(&n);
            }
        }
    }
}

//! llama.cpp's saved-logits file (`llama-perplexity --kl-divergence-base FILE`, written during a
//! perplexity run and read by `--kl-divergence`).
//!
//! Layout, little-endian: the 8 bytes `_logits_`; `i32 n_ctx`, `i32 n_vocab`, `i32 n_chunk`;
//! `n_chunk · n_ctx` token ids (`i32`); then for each chunk, `n_ctx - 1 - n_ctx/2` rows (the scored
//! second half of the chunk) of `nv = 2·⌈n_vocab/2⌉ + 4` `u16`: the first four hold two `f32`
//! (`scale`, `min_log_prob`), then `n_vocab` log-probabilities quantized as
//! `log p = scale · q + min_log_prob`, then padding.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{FormatError, Result};

/// The file's magic bytes.
pub const LOGITS_MAGIC: [u8; 8] = *b"_logits_";

/// Bytes before the token ids.
const HEADER_BYTES: u64 = 8 + 3 * 4;

/// What a logits file holds besides the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogitsHeader {
    /// Chunk length in tokens.
    pub n_ctx: usize,
    pub n_vocab: usize,
    pub n_chunk: usize,
    /// `n_chunk · n_ctx` token ids: the evaluated text.
    pub tokens: Vec<u32>,
}

impl LogitsHeader {
    /// `u16` per row (`2·⌈n_vocab/2⌉ + 4`).
    pub fn row_len(&self) -> usize {
        row_len(self.n_vocab)
    }

    /// Rows per chunk (`n_ctx - 1 - n_ctx/2`).
    pub fn rows_per_chunk(&self) -> usize {
        rows_per_chunk(self.n_ctx)
    }

    /// `u16` per chunk.
    pub fn chunk_len(&self) -> usize {
        self.row_len() * self.rows_per_chunk()
    }
}

/// `u16` per row for a vocabulary of `n_vocab`.
pub fn row_len(n_vocab: usize) -> usize {
    2 * n_vocab.div_ceil(2) + 4
}

/// Scored rows per chunk of `n_ctx` tokens.
pub fn rows_per_chunk(n_ctx: usize) -> usize {
    n_ctx.saturating_sub(1 + n_ctx / 2)
}

fn invalid(path: &Path, offset: u64, msg: impl Into<String>) -> FormatError {
    FormatError::Invalid {
        path: path.to_path_buf(),
        format: "logits",
        offset,
        msg: msg.into(),
    }
}

fn to_i32(path: &Path, what: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| FormatError::Write {
        path: path.to_path_buf(),
        msg: format!("{what} {v} does not fit the file's i32"),
    })
}

/// Writes a logits file chunk by chunk.
#[derive(Debug)]
pub struct LogitsWriter {
    path: PathBuf,
    w: BufWriter<File>,
    header: LogitsHeader,
    written: usize,
}

impl LogitsWriter {
    /// Creates `path` and writes the header and token ids.
    pub fn create(path: impl AsRef<Path>, header: LogitsHeader) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let need = header.n_chunk.checked_mul(header.n_ctx);
        if need != Some(header.tokens.len()) {
            return Err(FormatError::Write {
                path,
                msg: format!(
                    "{} tokens for {} chunks of {}",
                    header.tokens.len(),
                    header.n_chunk,
                    header.n_ctx
                ),
            });
        }
        let mut buf = Vec::with_capacity(HEADER_BYTES as usize + 4 * header.tokens.len());
        buf.extend_from_slice(&LOGITS_MAGIC);
        for (what, v) in [
            ("n_ctx", header.n_ctx),
            ("n_vocab", header.n_vocab),
            ("n_chunk", header.n_chunk),
        ] {
            buf.extend_from_slice(&to_i32(&path, what, v)?.to_le_bytes());
        }
        for &t in &header.tokens {
            buf.extend_from_slice(&to_i32(&path, "token id", t as usize)?.to_le_bytes());
        }
        let f = File::create(&path).map_err(|e| FormatError::io(&path, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        w.write_all(&buf).map_err(|e| FormatError::io(&path, e))?;
        Ok(Self {
            path,
            w,
            header,
            written: 0,
        })
    }

    /// The header being written.
    pub fn header(&self) -> &LogitsHeader {
        &self.header
    }

    /// Appends one chunk: exactly [`LogitsHeader::chunk_len`] values.
    pub fn write_chunk(&mut self, rows: &[u16]) -> Result<()> {
        if rows.len() != self.header.chunk_len() || self.written >= self.header.n_chunk {
            return Err(FormatError::Write {
                path: self.path.clone(),
                msg: format!(
                    "chunk {} of {} values (expected {} of {})",
                    self.written,
                    rows.len(),
                    self.header.n_chunk,
                    self.header.chunk_len()
                ),
            });
        }
        let mut bytes = Vec::with_capacity(rows.len() * 2);
        for v in rows {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.w
            .write_all(&bytes)
            .map_err(|e| FormatError::io(&self.path, e))?;
        self.written += 1;
        Ok(())
    }

    /// Flushes; every chunk must have been written.
    pub fn finish(mut self) -> Result<()> {
        if self.written != self.header.n_chunk {
            return Err(FormatError::Write {
                path: self.path.clone(),
                msg: format!("{} of {} chunks written", self.written, self.header.n_chunk),
            });
        }
        self.w.flush().map_err(|e| FormatError::io(&self.path, e))
    }
}

/// Reads a logits file chunk by chunk, after checking that its size matches its header.
#[derive(Debug)]
pub struct LogitsReader {
    path: PathBuf,
    r: BufReader<File>,
    header: LogitsHeader,
    read: usize,
}

impl LogitsReader {
    /// Opens `path` and reads the header and token ids.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let f = File::open(&path).map_err(|e| FormatError::io(&path, e))?;
        let size = f.metadata().map_err(|e| FormatError::io(&path, e))?.len();
        let mut r = BufReader::with_capacity(1 << 20, f);
        if size < HEADER_BYTES {
            return Err(FormatError::Truncated {
                path,
                what: "logits header".into(),
                offset: 0,
                needed: HEADER_BYTES,
                available: size,
            });
        }
        let mut head = [0u8; HEADER_BYTES as usize];
        r.read_exact(&mut head)
            .map_err(|e| FormatError::io(&path, e))?;
        if head[..8] != LOGITS_MAGIC {
            return Err(FormatError::BadMagic {
                path,
                format: "llama.cpp logits",
                found: head[..8].to_vec(),
            });
        }
        let field = |i: usize| i32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let (n_ctx, n_vocab, n_chunk) = (field(8), field(12), field(16));
        let positive = |v: i32, what: &str, off: u64| -> Result<usize> {
            usize::try_from(v)
                .ok()
                .filter(|&u| u > 0)
                .ok_or_else(|| invalid(&path, off, format!("{what} {v} must be positive")))
        };
        let n_ctx = positive(n_ctx, "n_ctx", 8)?;
        let n_vocab = positive(n_vocab, "n_vocab", 12)?;
        let n_chunk = positive(n_chunk, "n_chunk", 16)?;
        if n_ctx < 2 {
            return Err(invalid(
                &path,
                8,
                format!("n_ctx {n_ctx} must be at least 2"),
            ));
        }
        let expected = (|| {
            let toks = (n_chunk as u64).checked_mul(n_ctx as u64)?.checked_mul(4)?;
            let rows = (n_chunk as u64)
                .checked_mul(rows_per_chunk(n_ctx) as u64)?
                .checked_mul(row_len(n_vocab) as u64)?
                .checked_mul(2)?;
            HEADER_BYTES.checked_add(toks)?.checked_add(rows)
        })();
        if expected != Some(size) {
            return Err(invalid(
                &path,
                0,
                format!(
                    "{size} bytes, but {n_chunk} chunks of {n_ctx} tokens over {n_vocab} logits need {}",
                    expected.map_or_else(|| "more than u64".into(), |e| e.to_string())
                ),
            ));
        }
        let mut raw = vec![0u8; n_chunk * n_ctx * 4];
        r.read_exact(&mut raw)
            .map_err(|e| FormatError::io(&path, e))?;
        let mut tokens = Vec::with_capacity(n_chunk * n_ctx);
        for (i, b) in raw.chunks_exact(4).enumerate() {
            let t = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            match u32::try_from(t) {
                Ok(t) if (t as usize) < n_vocab => tokens.push(t),
                _ => {
                    return Err(invalid(
                        &path,
                        HEADER_BYTES + 4 * i as u64,
                        format!("token {i} is {t}, outside the vocabulary of {n_vocab}"),
                    ))
                }
            }
        }
        Ok(Self {
            path,
            r,
            header: LogitsHeader {
                n_ctx,
                n_vocab,
                n_chunk,
                tokens,
            },
            read: 0,
        })
    }

    /// The header.
    pub fn header(&self) -> &LogitsHeader {
        &self.header
    }

    /// The next chunk's rows into `out` (resized to [`LogitsHeader::chunk_len`]); `false` after
    /// the last chunk.
    pub fn read_chunk(&mut self, out: &mut Vec<u16>) -> Result<bool> {
        if self.read >= self.header.n_chunk {
            return Ok(false);
        }
        let n = self.header.chunk_len();
        let mut raw = vec![0u8; n * 2];
        self.r
            .read_exact(&mut raw)
            .map_err(|e| FormatError::io(&self.path, e))?;
        out.clear();
        out.extend(
            raw.chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]])),
        );
        self.read += 1;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_llama_cpp() {
        assert_eq!(row_len(49152), 49156);
        assert_eq!(row_len(5), 10);
        assert_eq!(rows_per_chunk(512), 255);
        assert_eq!(rows_per_chunk(3), 1);
    }

    #[test]
    fn round_trip_and_corruption() {
        let dir = std::env::temp_dir().join(format!("llama31-logits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.bin");
        let header = LogitsHeader {
            n_ctx: 4,
            n_vocab: 3,
            n_chunk: 2,
            tokens: vec![0, 1, 2, 1, 2, 0, 0, 1],
        };
        let mut w = LogitsWriter::create(&path, header.clone()).unwrap();
        let chunk: Vec<u16> = (0..header.chunk_len() as u16).collect();
        w.write_chunk(&chunk).unwrap();
        assert!(w.write_chunk(&chunk[1..]).is_err());
        w.write_chunk(&chunk).unwrap();
        w.finish().unwrap();
        let mut r = LogitsReader::open(&path).unwrap();
        assert_eq!(r.header(), &header);
        let mut got = Vec::new();
        assert!(r.read_chunk(&mut got).unwrap());
        assert_eq!(got, chunk);
        assert!(r.read_chunk(&mut got).unwrap());
        assert!(!r.read_chunk(&mut got).unwrap());

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(matches!(
            LogitsReader::open(&path),
            Err(FormatError::Invalid { .. })
        ));
        let mut bad = bytes.clone();
        bad[0] = b'X';
        std::fs::write(&path, &bad).unwrap();
        assert!(matches!(
            LogitsReader::open(&path),
            Err(FormatError::BadMagic { .. })
        ));
        let mut bad = bytes.clone();
        bad[20..24].copy_from_slice(&7i32.to_le_bytes());
        std::fs::write(&path, &bad).unwrap();
        assert!(matches!(
            LogitsReader::open(&path),
            Err(FormatError::Invalid { .. })
        ));
        std::fs::write(&path, b"_logi").unwrap();
        assert!(matches!(
            LogitsReader::open(&path),
            Err(FormatError::Truncated { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

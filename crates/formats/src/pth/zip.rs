//! A minimal reader for the zip container of PyTorch checkpoints (`torch.save` since 1.6).
//!
//! Only the central directory is trusted for sizes; entries must be *stored* (uncompressed) so
//! their data can be handed out as zero-copy slices of the map. ZIP64 (files > 4 GiB, e.g. Meta's
//! 8B `consolidated.00.pth`) is supported. Every offset and size is bounds-checked.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use crate::error::{FormatError, Result};

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD64_SIG: u32 = 0x0606_4b50;
const EOCD64_LOCATOR_SIG: u32 = 0x0706_4b50;
const CDH_SIG: u32 = 0x0201_4b50;
const LFH_SIG: u32 = 0x0403_4b50;
const EOCD_LEN: usize = 22;
const CDH_LEN: usize = 46;
const LFH_LEN: usize = 30;

/// One stored entry: its name and the byte range of its data in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntry {
    /// Entry name (path inside the archive).
    pub name: String,
    /// Byte range of the (uncompressed) data within the file.
    pub data: Range<usize>,
}

/// The entries of a zip file, by name.
#[derive(Debug, Clone, Default)]
pub struct ZipIndex {
    entries: Vec<ZipEntry>,
    by_name: HashMap<String, usize>,
}

fn zerr(path: &Path, msg: impl Into<String>) -> FormatError {
    FormatError::Zip {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

fn rd<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    let s = buf.get(at..at.checked_add(N)?)?;
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    Some(a)
}
fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    rd::<2>(buf, at).map(u16::from_le_bytes)
}
fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    rd::<4>(buf, at).map(u32::from_le_bytes)
}
fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    rd::<8>(buf, at).map(u64::from_le_bytes)
}

impl ZipIndex {
    /// Reads the central directory of the zip file in `buf`.
    pub fn parse(path: &Path, buf: &[u8]) -> Result<ZipIndex> {
        if buf.len() < EOCD_LEN {
            return Err(zerr(
                path,
                format!("file too short for a zip ({} bytes)", buf.len()),
            ));
        }
        // The EOCD record is the last 22 bytes plus an optional comment of up to 65535 bytes.
        let lowest = buf.len().saturating_sub(EOCD_LEN + 0xFFFF);
        let mut eocd = None;
        let mut at = buf.len() - EOCD_LEN;
        loop {
            if u32_at(buf, at) == Some(EOCD_SIG) {
                let comment = u16_at(buf, at + 20).map(usize::from);
                if comment.is_some_and(|c| at + EOCD_LEN + c == buf.len()) {
                    eocd = Some(at);
                    break;
                }
            }
            if at == lowest {
                break;
            }
            at -= 1;
        }
        let eocd =
            eocd.ok_or_else(|| zerr(path, "no end-of-central-directory record (not a zip file)"))?;
        let short = || zerr(path, "truncated end-of-central-directory record");
        let mut n_entries = u64::from(u16_at(buf, eocd + 10).ok_or_else(short)?);
        let mut cd_size = u64::from(u32_at(buf, eocd + 12).ok_or_else(short)?);
        let mut cd_offset = u64::from(u32_at(buf, eocd + 16).ok_or_else(short)?);
        // ZIP64: a locator just before the EOCD points at the EOCD64 record.
        if eocd >= 20 && u32_at(buf, eocd - 20) == Some(EOCD64_LOCATOR_SIG) {
            let loc = eocd - 20;
            let rec = u64_at(buf, loc + 8)
                .and_then(|o| usize::try_from(o).ok())
                .ok_or_else(|| zerr(path, "bad ZIP64 locator"))?;
            if u32_at(buf, rec) != Some(EOCD64_SIG) {
                return Err(zerr(path, format!("ZIP64 record expected at byte {rec}")));
            }
            let short64 = || zerr(path, "truncated ZIP64 end-of-central-directory record");
            n_entries = u64_at(buf, rec + 32).ok_or_else(short64)?;
            cd_size = u64_at(buf, rec + 40).ok_or_else(short64)?;
            cd_offset = u64_at(buf, rec + 48).ok_or_else(short64)?;
        }
        let cd_start = usize::try_from(cd_offset)
            .map_err(|_| zerr(path, "central directory offset too large"))?;
        let cd_end = usize::try_from(cd_size)
            .ok()
            .and_then(|s| cd_start.checked_add(s))
            .filter(|&e| e <= buf.len())
            .ok_or_else(|| {
                zerr(
                    path,
                    format!("central directory [{cd_offset}, +{cd_size}) lies outside the file"),
                )
            })?;
        let max_entries = (cd_end - cd_start) / CDH_LEN;
        if n_entries > max_entries as u64 {
            return Err(zerr(
                path,
                format!("{n_entries} entries cannot fit in a {cd_size}-byte central directory"),
            ));
        }
        let n = n_entries as usize;
        let mut entries = Vec::with_capacity(n);
        let mut by_name = HashMap::with_capacity(n);
        let mut p = cd_start;
        for i in 0..n {
            let bad = |m: &str| {
                zerr(
                    path,
                    format!("central directory entry #{i} at byte {p}: {m}"),
                )
            };
            if p.checked_add(CDH_LEN).is_none_or(|e| e > cd_end) || u32_at(buf, p) != Some(CDH_SIG)
            {
                return Err(bad("bad signature or truncated"));
            }
            let field16 = |o: usize| {
                u16_at(buf, p + o)
                    .map(usize::from)
                    .ok_or_else(|| bad("truncated"))
            };
            let field32 = |o: usize| u32_at(buf, p + o).ok_or_else(|| bad("truncated"));
            let flags = field16(8)?;
            let method = field16(10)?;
            let mut comp = u64::from(field32(20)?);
            let mut uncomp = u64::from(field32(24)?);
            let name_len = field16(28)?;
            let extra_len = field16(30)?;
            let comment_len = field16(32)?;
            let mut lho = u64::from(field32(42)?);
            let name_start = p + CDH_LEN;
            let next = name_start + name_len + extra_len + comment_len;
            if next > cd_end {
                return Err(bad("name/extra/comment run past the central directory"));
            }
            let name = buf
                .get(name_start..name_start + name_len)
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or_else(|| bad("name is not UTF-8"))?
                .to_owned();
            // ZIP64 extended information: present fields are those whose 32-bit value is 0xFFFFFFFF.
            let extra = buf
                .get(name_start + name_len..name_start + name_len + extra_len)
                .unwrap_or(&[]);
            let mut e = 0usize;
            while e + 4 <= extra.len() {
                let id = u16_at(extra, e).unwrap_or(0);
                let len = usize::from(u16_at(extra, e + 2).unwrap_or(0));
                let body = extra
                    .get(e + 4..e + 4 + len)
                    .ok_or_else(|| bad("extra field overruns"))?;
                if id == 1 {
                    let mut q = 0usize;
                    let mut next64 = || {
                        let v = u64_at(body, q);
                        q += 8;
                        v.ok_or_else(|| bad("short ZIP64 extra field"))
                    };
                    if uncomp == 0xFFFF_FFFF {
                        uncomp = next64()?;
                    }
                    if comp == 0xFFFF_FFFF {
                        comp = next64()?;
                    }
                    if lho == 0xFFFF_FFFF {
                        lho = next64()?;
                    }
                }
                e += 4 + len;
            }
            if flags & 1 != 0 {
                return Err(zerr(path, format!("entry `{name}` is encrypted")));
            }
            if method != 0 {
                return Err(zerr(
                    path,
                    format!("entry `{name}` is compressed (method {method}); only stored entries can be mapped"),
                ));
            }
            if comp != uncomp {
                return Err(bad(
                    "stored entry with different compressed and uncompressed sizes",
                ));
            }
            // Local header: its own name/extra lengths decide where the data starts.
            let lh = usize::try_from(lho).map_err(|_| bad("local header offset too large"))?;
            if u32_at(buf, lh) != Some(LFH_SIG) {
                return Err(zerr(
                    path,
                    format!("entry `{name}`: no local header at byte {lh}"),
                ));
            }
            let lname = u16_at(buf, lh + 26)
                .map(usize::from)
                .ok_or_else(|| bad("truncated local header"))?;
            let lextra = u16_at(buf, lh + 28)
                .map(usize::from)
                .ok_or_else(|| bad("truncated local header"))?;
            let start = lh + LFH_LEN + lname + lextra;
            let end = usize::try_from(comp)
                .ok()
                .and_then(|c| start.checked_add(c))
                .filter(|&end| end <= buf.len())
                .ok_or_else(|| {
                    zerr(
                        path,
                        format!("entry `{name}`: data [{start}, +{comp}) runs past the end of the file ({} bytes)", buf.len()),
                    )
                })?;
            if by_name.insert(name.clone(), entries.len()).is_some() {
                return Err(zerr(path, format!("duplicate entry `{name}`")));
            }
            entries.push(ZipEntry {
                name,
                data: start..end,
            });
            p = next;
        }
        Ok(ZipIndex { entries, by_name })
    }

    /// All entries, in central-directory order.
    pub fn entries(&self) -> &[ZipEntry] {
        &self.entries
    }

    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Option<&ZipEntry> {
        self.by_name.get(name).and_then(|&i| self.entries.get(i))
    }
}

/// Writes a zip of stored entries (no compression), each entry's data aligned to 64 bytes like
/// `torch.save` does. For tests and tools; small archives only (no ZIP64).
pub fn write_stored_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let lh = out.len();
        let crc = crc32(data);
        // Pad with an extra field (id 0x4650, like PyTorch) so the data starts 64-byte aligned.
        let base = lh + LFH_LEN + name.len() + 4;
        let pad = base.next_multiple_of(64) - base;
        out.extend_from_slice(&LFH_SIG.to_le_bytes());
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version, flags, method, time, date
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&((pad + 4) as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&0x4650u16.to_le_bytes());
        out.extend_from_slice(&(pad as u16).to_le_bytes());
        out.resize(out.len() + pad, 0);
        out.extend_from_slice(data);

        central.extend_from_slice(&CDH_SIG.to_le_bytes());
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // made, needed, flags, method, time, date
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0u8; 12]); // extra len, comment len, disk, int attr, ext attr
        central.extend_from_slice(&(lh as u32).to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len();
    out.extend_from_slice(&central);
    out.extend_from_slice(&EOCD_SIG.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&(cd_offset as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; 2]);
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_value() {
        // Standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn round_trip_and_alignment() {
        let z = write_stored_zip(&[("a/data.pkl", b"hello"), ("a/data/0", &[1, 2, 3, 4])]);
        let idx = ZipIndex::parse(Path::new("t.zip"), &z).unwrap();
        assert_eq!(idx.entries().len(), 2);
        let e = idx.get("a/data/0").unwrap();
        assert_eq!(e.data.start % 64, 0);
        assert_eq!(&z[e.data.clone()], &[1, 2, 3, 4]);
        assert_eq!(&z[idx.get("a/data.pkl").unwrap().data.clone()], b"hello");
    }

    #[test]
    fn truncation_never_panics() {
        let z = write_stored_zip(&[("a/data.pkl", b"hello"), ("a/data/0", &[1, 2, 3, 4])]);
        for len in 0..z.len() {
            assert!(
                ZipIndex::parse(Path::new("t.zip"), &z[..len]).is_err(),
                "len {len}"
            );
        }
    }

    #[test]
    fn compressed_entry_is_refused() {
        let mut z = write_stored_zip(&[("a/data.pkl", b"hello")]);
        // Set method = 8 (deflate) in the central directory header.
        let cd = z
            .windows(4)
            .position(|w| w == CDH_SIG.to_le_bytes())
            .unwrap();
        z[cd + 10] = 8;
        let err = ZipIndex::parse(Path::new("t.zip"), &z)
            .unwrap_err()
            .to_string();
        assert!(err.contains("compressed"), "{err}");
    }
}

//! Read-only memory maps of model files (or owned buffers, for tests and in-memory data).

use std::fs::File;
use std::ops::{Deref, Range};
use std::path::Path;
use std::sync::Arc;

use crate::error::{FormatError, Result};

/// The bytes of a model file: a read-only memory map, or an owned buffer.
#[derive(Debug)]
pub enum Bytes {
    /// A read-only map of a file.
    Mapped(memmap2::Mmap),
    /// An owned buffer (used for in-memory parsing and for empty files, which cannot be mapped).
    Owned(Vec<u8>),
}

/// How a model file's bytes are brought into memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FileLoading {
    /// Read the file into memory when that pays and fits ([`FileLoading::reads`]), else map it.
    #[default]
    Auto,
    /// Always map the file read-only (llama.cpp's default `--mmap`): loads instantly, pages are
    /// shared with other processes and the page cache, read on first touch.
    Map,
    /// Always read the whole file into anonymous memory advised for transparent huge pages (like
    /// llama.cpp's `--no-mmap`).
    Read,
}

/// Files smaller than this are mapped under [`FileLoading::Auto`]: too few pages for the TLB to
/// matter.
const AUTO_READ_MIN_BYTES: u64 = 32 << 20;

impl FileLoading {
    /// The mode named by the environment: `LLAMA31_NO_MMAP` set (to anything but `0`) reads,
    /// `LLAMA31_MMAP` set (to anything but `0`) maps, otherwise `self`. Command-line flags are
    /// applied by the caller before this, so they win.
    pub fn or_env(self) -> FileLoading {
        if self != FileLoading::Auto {
            return self;
        }
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| v != "0");
        if set("LLAMA31_NO_MMAP") {
            FileLoading::Read
        } else if set("LLAMA31_MMAP") {
            FileLoading::Map
        } else {
            FileLoading::Auto
        }
    }

    /// Whether a file of `len` bytes is read into memory rather than mapped. [`FileLoading::Auto`]
    /// reads it when the kernel can back anonymous memory with transparent huge pages (Linux, THP
    /// `always` or `madvise`), the file is at least 32 MiB and at most half the memory available:
    /// decoding streams every weight once per token, and through 2 MiB pages it does so with a
    /// few hundred TLB entries instead of one per 4 KiB (the 1B Q4_K_M benchmark decodes 35-38
    /// tok/s mapped, 39-42 read). Bigger files are mapped so that loading never pushes the
    /// machine into swapping; the page cache can give their pages back.
    pub fn reads(self, len: u64) -> bool {
        match self.or_env() {
            FileLoading::Map => false,
            FileLoading::Read => true,
            FileLoading::Auto => {
                len >= AUTO_READ_MIN_BYTES
                    && huge_pages_available()
                    && mem_available().is_some_and(|avail| len <= avail / 2)
            }
        }
    }
}

/// Whether anonymous memory can be backed by transparent huge pages when advised (Linux THP
/// `always` or `madvise`).
fn huge_pages_available() -> bool {
    if !cfg!(target_os = "linux") {
        return false;
    }
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|s| s.contains("[always]") || s.contains("[madvise]"))
}

/// `MemAvailable` of `/proc/meminfo` in bytes (Linux), if known.
fn mem_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&info)
}

fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let kb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    kb.checked_mul(1024)
}

impl Bytes {
    /// Maps `path` read-only (see [`Bytes::open`] for reading it into memory instead).
    pub fn map_file(path: &Path) -> Result<Bytes> {
        Bytes::open(path, FileLoading::Map)
    }

    /// The bytes of the file at `path`, mapped or read into anonymous memory as `loading` (after
    /// the environment, [`FileLoading::or_env`]) decides for its size. Read files are not shared
    /// with other processes and cost the read at load; decoding reads their weights through huge
    /// pages.
    pub fn open(path: &Path, loading: FileLoading) -> Result<Bytes> {
        let file = File::open(path).map_err(|e| FormatError::io(path, e))?;
        let len = file.metadata().map_err(|e| FormatError::io(path, e))?.len();
        if len == 0 {
            return Ok(Bytes::Owned(Vec::new()));
        }
        if loading.reads(len) {
            return read_anon(file, len, path);
        }
        // SAFETY: the map is read-only and we never create a mutable view of it. Memory-mapping is
        // only sound while no one truncates or rewrites the file: if another process shrinks the
        // file while it is mapped, touching the lost pages raises SIGBUS, and a concurrent rewrite
        // changes bytes we already validated. Model files are treated as immutable while open; this
        // is the same contract llama.cpp, candle and safetensors rely on. All bounds are checked
        // against the length of the map, which is fixed at map time.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| FormatError::io(path, e))?;
        tracing::debug!(path = %path.display(), bytes = map.len(), "mapped file");
        Ok(Bytes::Mapped(map))
    }
}

/// `file` (`len` bytes) read into an anonymous read-only map advised for huge pages.
fn read_anon(mut file: File, len: u64, path: &Path) -> Result<Bytes> {
    use std::io::Read;
    let n = usize::try_from(len).map_err(|_| {
        FormatError::io(
            path,
            std::io::Error::other("file larger than the address space"),
        )
    })?;
    let mut anon = memmap2::MmapMut::map_anon(n).map_err(|e| FormatError::io(path, e))?;
    #[cfg(target_os = "linux")]
    if let Err(e) = anon.advise(memmap2::Advice::HugePage) {
        tracing::debug!(error = %e, "madvise(MADV_HUGEPAGE) failed; reading into normal pages");
    }
    file.read_exact(&mut anon[..])
        .map_err(|e| FormatError::io(path, e))?;
    let map = anon
        .make_read_only()
        .map_err(|e| FormatError::io(path, e))?;
    tracing::debug!(path = %path.display(), bytes = n, "read file into memory");
    Ok(Bytes::Mapped(map))
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// A byte range of a shared file buffer: what a weight keeps to use a tensor in place, holding the
/// file's bytes alive (mapped or read) for as long as it needs them, without borrowing the file.
#[derive(Debug, Clone)]
pub struct SharedBytes {
    file: Arc<Bytes>,
    range: Range<usize>,
}

impl SharedBytes {
    /// The part of `file` that `part` is a slice of; `None` when `part` does not lie inside it.
    pub fn within(file: &Arc<Bytes>, part: &[u8]) -> Option<SharedBytes> {
        let base = file.as_ptr() as usize;
        let start = (part.as_ptr() as usize).checked_sub(base)?;
        let end = start.checked_add(part.len())?;
        if end > file.len() {
            return None;
        }
        Some(SharedBytes {
            file: Arc::clone(file),
            range: start..end,
        })
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.file[self.range.clone()]
    }

    /// Offset and end of the range within its file.
    pub fn range(&self) -> Range<usize> {
        self.range.clone()
    }

    /// Whether the file's bytes are a memory map (rather than read into memory).
    pub fn is_mapped(&self) -> bool {
        matches!(*self.file, Bytes::Mapped(_))
    }
}

impl Deref for SharedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slice of the file becomes the same bytes at the same range, kept alive by the range;
    /// a slice of anything else is not taken for part of the file.
    #[test]
    fn shared_bytes_locate_a_slice_of_their_file() {
        let file = Arc::new(Bytes::Owned((0..100u8).collect()));
        let part = SharedBytes::within(&file, &file[10..30]).unwrap();
        assert_eq!(part.range(), 10..30);
        assert_eq!(part.as_slice(), &(10..30u8).collect::<Vec<_>>()[..]);
        assert!(!part.is_mapped());
        let other = vec![0u8; 20];
        assert!(SharedBytes::within(&file, &other).is_none());
        drop(file);
        assert_eq!(part[0], 10, "the range keeps the file alive");
    }

    /// A file read into anonymous memory holds the same bytes as its map.
    #[test]
    fn read_anon_equals_the_map() {
        let dir = std::env::temp_dir().join(format!("llama31-anon-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.bin");
        let data: Vec<u8> = (0..3_000_001u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        let anon = read_anon(file, data.len() as u64, &path).unwrap();
        let mapped = Bytes::map_file(&path).unwrap();
        assert_eq!(&anon[..], &data[..]);
        assert_eq!(&mapped[..], &anon[..]);
        // A file shorter than claimed is an error, not a panic.
        let short = File::open(&path).unwrap();
        assert!(read_anon(short, data.len() as u64 + 10, &path).is_err());
        // `Bytes::open` gives the same bytes whichever way it loads; a missing file is an error.
        for mode in [FileLoading::Map, FileLoading::Read, FileLoading::Auto] {
            assert_eq!(
                &Bytes::open(&path, mode).unwrap()[..],
                &data[..],
                "{mode:?}"
            );
            assert!(Bytes::open(&dir.join("missing"), mode).is_err());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Explicit modes are obeyed whatever the size; `Auto` maps small files and files larger than
    /// half the available memory.
    #[test]
    fn auto_reads_only_large_files_that_fit() {
        assert!(!FileLoading::Map.reads(u64::MAX));
        assert!(FileLoading::Read.reads(1));
        // The environment may name a mode for `Auto` (LLAMA31_MMAP / LLAMA31_NO_MMAP).
        if FileLoading::Auto.or_env() == FileLoading::Auto {
            assert!(!FileLoading::Auto.reads(AUTO_READ_MIN_BYTES - 1));
            assert!(!FileLoading::Auto.reads(u64::MAX / 2));
            if let Some(avail) = mem_available() {
                let fits = huge_pages_available() && avail / 2 >= AUTO_READ_MIN_BYTES;
                assert_eq!(FileLoading::Auto.reads(AUTO_READ_MIN_BYTES), fits);
                // Twice the limit, so memory freed meanwhile by other processes cannot flip it.
                assert!(!FileLoading::Auto.reads(avail));
            }
        }
    }

    #[test]
    fn mem_available_parses_meminfo() {
        let info = "MemTotal:       24576000 kB\nMemFree:        20000000 kB\nMemAvailable:   23000000 kB\n";
        assert_eq!(parse_mem_available(info), Some(23_000_000 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: lots kB\n"), None);
        assert_eq!(
            parse_mem_available("MemAvailable: 99999999999999999999 kB\n"),
            None
        );
        if cfg!(target_os = "linux") {
            assert!(mem_available().is_some_and(|b| b > 0));
        }
    }
}

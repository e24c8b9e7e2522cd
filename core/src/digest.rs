//! File digests: plain SHA-256, and a sharded SHA-256 that lets one large file use every core.
//!
//! # `sha256-sharded`
//!
//! A file of `len` bytes hashed with shard size `S` (`S > 0`):
//!
//! * if `len <= S`, its digest is plain SHA-256 of the content, recorded under `"sha256"` (so
//!   small files keep the digest every other tool computes);
//! * otherwise it is cut into `m = ceil(len / S)` shards, shard `i` being bytes
//!   `[i*S, min((i+1)*S, len))`, and its digest, recorded under `"sha256-sharded"`, is
//!
//!   ```text
//!   SHA-256( "husai-sha256-sharded-v1\n" || u64be(S) || u64be(len) || H_0 || H_1 || ... || H_{m-1} )
//!   ```
//!
//!   where `H_i` is the raw 32-byte SHA-256 of shard `i` and `u64be` an 8-byte big-endian
//!   integer. The domain string keeps these digests from colliding with plain SHA-256 of any file;
//!   binding `S` and `len` means the shard boundaries are part of what is hashed. It can be
//!   recomputed with standard tools: `split -b S` and `sha256sum` give the `H_i`.
//!
//! Under [`DigestMethod::Sha256`] every file gets plain SHA-256.
//!
//! # Scheduling and I/O
//!
//! [`digest_files`] turns every file into work items (one per shard, or one for a whole small
//! file), sorts them largest first and hashes them on rayon's pool, so a single big checkpoint
//! keeps both cores busy and the many small files fill in at the end. Items are read with
//! positioned `read`s into a reused per-thread buffer, not memory-mapped: on a warm page cache the
//! copy costs little next to SHA-256 (see `examples/digest_bench.rs`), and a file truncated
//! while mapped would kill the process with SIGBUS, whereas a short read is an ordinary error.
//!
//! A file that changes between listing and hashing is reported as an I/O error naming it: each
//! item reads exactly the bytes the listing promised (a short read is `UnexpectedEof`), a whole
//! file must end where the listing said, and after hashing the file's size and modification time
//! must still match the listing.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Default shard size: 64 MiB.
pub const DEFAULT_SHARD_SIZE: u64 = 64 << 20;
/// Domain-separation prefix of the sharded construction.
pub const SHARDED_DOMAIN: &[u8] = b"husai-sha256-sharded-v1\n";
/// Bytes read (and reported to progress) per `read` call.
const CHUNK: usize = 1 << 20;

/// How files are digested; serialised as `{"method":"sha256"}` or
/// `{"method":"sha256-sharded","shard_size":N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", try_from = "MethodRepr")]
pub enum DigestMethod {
    #[serde(rename = "sha256")]
    Sha256,
    #[serde(rename = "sha256-sharded")]
    Sha256Sharded { shard_size: u64 },
}

impl Default for DigestMethod {
    fn default() -> Self {
        DigestMethod::Sha256Sharded {
            shard_size: DEFAULT_SHARD_SIZE,
        }
    }
}

// Deserialisation goes through this mirror so that a zero shard size is refused when a manifest
// is read, not discovered as a division by zero when files are hashed.
#[derive(Deserialize)]
#[serde(tag = "method")]
enum MethodRepr {
    #[serde(rename = "sha256")]
    Sha256,
    #[serde(rename = "sha256-sharded")]
    Sha256Sharded { shard_size: u64 },
}

impl TryFrom<MethodRepr> for DigestMethod {
    type Error = String;
    fn try_from(r: MethodRepr) -> Result<Self, String> {
        match r {
            MethodRepr::Sha256 => Ok(DigestMethod::Sha256),
            MethodRepr::Sha256Sharded { shard_size: 0 } => Err(
                "digest method sha256-sharded needs shard_size >= 1 (husai writes 67108864)".into(),
            ),
            MethodRepr::Sha256Sharded { shard_size } => {
                Ok(DigestMethod::Sha256Sharded { shard_size })
            }
        }
    }
}

/// One file's digest. `algorithm` is the key it is recorded under in a statement subject:
/// `"sha256"` or `"sha256-sharded"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    pub algorithm: String,
    pub hex: String,
    pub size: u64,
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Digest of one file (its shards still hashed in parallel).
pub fn digest_file(path: &Path, method: DigestMethod) -> io::Result<FileDigest> {
    digest_files(&[path.to_owned()], method, &|_| {})
        .pop()
        .unwrap_or_else(|| {
            Err(io::Error::other(
                "digest_files returned no result for one path",
            ))
        })
}

/// Digests every file in `paths`, in parallel over the shards of all files. The result has one
/// entry per path, in order. `on_bytes` is called (from worker threads) with the number of bytes
/// just hashed, for progress reporting.
pub fn digest_files(
    paths: &[PathBuf],
    method: DigestMethod,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Vec<io::Result<FileDigest>> {
    digest_files_with(paths, method, IoMode::Read, on_bytes)
}

/// How work items get their bytes. [`IoMode::Read`] is what [`digest_files`] uses; `Mmap`
/// exists so that `examples/digest_bench.rs` can measure the alternative on the same machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// Positioned reads into a reused per-thread buffer.
    Read,
    /// Memory-map each item's byte range (memmap2). The file's size is checked just before
    /// mapping, but a file truncated *while* mapped raises SIGBUS, which ends the process; use
    /// this only for files nothing else writes to.
    Mmap,
}

/// [`digest_files`] with an explicit [`IoMode`].
pub fn digest_files_with(
    paths: &[PathBuf],
    method: DigestMethod,
    io_mode: IoMode,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Vec<io::Result<FileDigest>> {
    let shard_size = match method {
        DigestMethod::Sha256 => None,
        DigestMethod::Sha256Sharded { shard_size: 0 } => {
            return paths
                .iter()
                .map(|p| {
                    Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{}: sha256-sharded needs shard_size >= 1", p.display()),
                    ))
                })
                .collect();
        }
        DigestMethod::Sha256Sharded { shard_size } => Some(shard_size),
    };

    // Listing: size and mtime of every file, fixed before any byte is read.
    let listed: Vec<io::Result<Listed>> = paths.iter().map(|p| list(p)).collect();

    let mut items = Vec::new();
    for (file, entry) in listed.iter().enumerate() {
        let Ok(entry) = entry else { continue };
        match shard_size {
            Some(s) if entry.size > s => {
                let count = entry.size.div_ceil(s);
                for index in 0..count {
                    let offset = index * s;
                    items.push(Item {
                        file,
                        index: index as usize,
                        offset,
                        len: s.min(entry.size - offset),
                        whole: false,
                    });
                }
            }
            _ => items.push(Item {
                file,
                index: 0,
                offset: 0,
                len: entry.size,
                whole: true,
            }),
        }
    }
    // Largest first: the long items start while the short ones are left to balance the end.
    items.sort_by(|a, b| b.len.cmp(&a.len));

    let hashed: Vec<(Item, io::Result<[u8; 32]>)> = items
        .into_par_iter()
        .with_max_len(1)
        .map(|item| {
            let path = &paths[item.file];
            let result = match io_mode {
                IoMode::Read => hash_item(path, &item, on_bytes),
                IoMode::Mmap => hash_item_mmap(path, &item, on_bytes),
            };
            (item, result)
        })
        .collect();

    // Assemble: shard digests in shard order, first error per file wins.
    let mut parts: Vec<Result<Vec<[u8; 32]>, io::Error>> = listed
        .iter()
        .map(|l| match (l, shard_size) {
            (Ok(l), Some(s)) if l.size > s => Ok(vec![[0u8; 32]; l.size.div_ceil(s) as usize]),
            _ => Ok(vec![[0u8; 32]; 1]),
        })
        .collect();
    for (item, result) in hashed {
        let slot = &mut parts[item.file];
        match (slot.as_mut(), result) {
            (Ok(digests), Ok(d)) => digests[item.index] = d,
            (Ok(_), Err(e)) => *slot = Err(e),
            (Err(_), _) => {}
        }
    }

    listed
        .into_iter()
        .zip(parts)
        .zip(paths)
        .map(|((entry, part), path)| {
            let entry = entry?;
            let digests = part?;
            recheck(path, &entry)?;
            Ok(match shard_size {
                Some(s) if entry.size > s => FileDigest {
                    algorithm: "sha256-sharded".to_owned(),
                    hex: hex::encode(combine_shards(s, entry.size, &digests)),
                    size: entry.size,
                },
                _ => FileDigest {
                    algorithm: "sha256".to_owned(),
                    hex: hex::encode(digests[0]),
                    size: entry.size,
                },
            })
        })
        .collect()
}

/// The sharded construction's final step (see the module docs), given the shard digests in order.
pub fn combine_shards(shard_size: u64, len: u64, shard_digests: &[[u8; 32]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(SHARDED_DOMAIN);
    h.update(shard_size.to_be_bytes());
    h.update(len.to_be_bytes());
    for d in shard_digests {
        h.update(d);
    }
    h.finalize().into()
}

struct Listed {
    size: u64,
    modified: Option<SystemTime>,
}

#[derive(Clone, Copy)]
struct Item {
    file: usize,
    index: usize,
    offset: u64,
    len: u64,
    /// The item is the whole file, so the file must end right after it.
    whole: bool,
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn list(path: &Path) -> io::Result<Listed> {
    let meta = std::fs::metadata(path).map_err(|e| with_path(path, e))?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a regular file, cannot be digested", path.display()),
        ));
    }
    Ok(Listed {
        size: meta.len(),
        modified: meta.modified().ok(),
    })
}

fn recheck(path: &Path, listed: &Listed) -> io::Result<()> {
    let now = list(path)?;
    if now.size != listed.size || now.modified != listed.modified {
        return Err(io::Error::other(format!(
            "{}: file changed while it was being hashed (size {} -> {}); hash it again once nothing writes to it",
            path.display(),
            listed.size,
            now.size
        )));
    }
    Ok(())
}

thread_local! {
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn hash_item(path: &Path, item: &Item, on_bytes: &(dyn Fn(u64) + Sync)) -> io::Result<[u8; 32]> {
    let file = File::open(path).map_err(|e| with_path(path, e))?;
    BUFFER.with(|buf| {
        let mut buf = buf.borrow_mut();
        if buf.len() < CHUNK {
            buf.resize(CHUNK, 0);
        }
        let mut hasher = Sha256::new();
        let mut pos = item.offset;
        let end = item.offset + item.len;
        while pos < end {
            let want = (end - pos).min(CHUNK as u64) as usize;
            let n = read_at(&file, &mut buf[..want], pos).map_err(|e| with_path(path, e))?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{}: file ended at byte {pos}, but it was {} bytes when listed; it was truncated while being hashed",
                        path.display(),
                        end
                    ),
                ));
            }
            hasher.update(&buf[..n]);
            on_bytes(n as u64);
            pos += n as u64;
        }
        if item.whole && read_at(&file, &mut buf[..1], end).map_err(|e| with_path(path, e))? != 0 {
            return Err(io::Error::other(format!(
                "{}: file grew beyond the {end} bytes it had when listed; it is being written to",
                path.display()
            )));
        }
        Ok(hasher.finalize().into())
    })
}

fn hash_item_mmap(
    path: &Path,
    item: &Item,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> io::Result<[u8; 32]> {
    let file = File::open(path).map_err(|e| with_path(path, e))?;
    let size = file.metadata().map_err(|e| with_path(path, e))?.len();
    let end = item.offset + item.len;
    if size < end || (item.whole && size != end) {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "{}: file is {size} bytes now but was {end} bytes when listed; it changed before it could be hashed",
                path.display()
            ),
        ));
    }
    if item.len == 0 {
        // Mapping zero bytes is an error on Linux; the digest of nothing needs no mapping.
        return Ok(Sha256::digest([]).into());
    }
    let len = usize::try_from(item.len).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{}: a {}-byte shard does not fit in memory on this platform",
                path.display(),
                item.len
            ),
        )
    })?;
    // SAFETY: the map is read-only and private to this call; the size check above makes every
    // mapped byte exist. Another process truncating the file during the hash would make a page
    // fault fail (SIGBUS), which is why `IoMode::Read` is the default.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(item.offset)
            .len(len)
            .map(&file)
    }
    .map_err(|e| with_path(path, e))?;
    let mut hasher = Sha256::new();
    for chunk in map.chunks(CHUNK) {
        hasher.update(chunk);
        on_bytes(chunk.len() as u64);
    }
    Ok(hasher.finalize().into())
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt as _;
    loop {
        match file.read_at(buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::windows::fs::FileExt as _;
    file.seek_read(buf, offset)
}

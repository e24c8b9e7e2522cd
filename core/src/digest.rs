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
//! file) and sorts them largest first. On x86-64 CPUs with the SHA extensions, neighbouring items
//! are paired and each pair is hashed on one thread by an interleaved two-stream SHA-256 kernel
//! (`digest/sha256x2.rs`), which nearly doubles the bytes hashed per core-second; elsewhere each
//! item is hashed alone with `sha2`. The jobs run on rayon's pool, so one big checkpoint keeps
//! every core busy and the many small files fill in at the end.
//!
//! Items are read with positioned `read`s of 64 KiB into two reused per-thread buffers that stay in
//! cache until hashed. Memory-mapping ([`IoMode::Mmap`], kept for measurement) gained little on a
//! warm page cache: on the 2-core benchmark tree (one 2 GiB file plus 200 of 1 MiB,
//! `benches/digest_peers.sh`) reads ran at a median 3.78 GB/s and 0.51 CPU-seconds per GB,
//! mapping at 3.86 GB/s and 0.47. A file truncated while mapped kills the process with SIGBUS,
//! whereas a short read is an ordinary error, so reads are the default.
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

#[cfg(target_arch = "x86_64")]
mod sha256x2;

/// Default shard size: 64 MiB.
pub const DEFAULT_SHARD_SIZE: u64 = 64 << 20;
/// Domain-separation prefix of the sharded construction.
pub const SHARDED_DOMAIN: &[u8] = b"husai-sha256-sharded-v1\n";
/// Most shards one file may be cut into (with the default shard size, a 64 TiB file).
pub const MAX_SHARDS_PER_FILE: u64 = 1 << 20;
/// Bytes read (and reported to progress) per `read` call. 64 KiB measured best among 32 KiB to
/// 1 MiB: two such buffers per thread stay in cache between the copy and the hash.
const CHUNK: usize = 64 << 10;

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
    let mut listed: Vec<io::Result<Listed>> = paths.iter().map(|p| list(p)).collect();

    // A shard count that would exhaust memory (a manifest asking for 1-byte shards of a big
    // checkpoint, say) fails that file instead of the process.
    for (entry, path) in listed.iter_mut().zip(paths) {
        if let (Ok(l), Some(s)) = (&*entry, shard_size) {
            if l.size.div_ceil(s) > MAX_SHARDS_PER_FILE {
                *entry = Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{}: shard_size {s} would cut this {}-byte file into more than {MAX_SHARDS_PER_FILE} shards; use a larger shard size (husai writes {DEFAULT_SHARD_SIZE})",
                        path.display(),
                        l.size
                    ),
                ));
            }
        }
    }

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
    items.sort_by_key(|item| std::cmp::Reverse(item.len));

    // With the two-stream kernel, neighbouring items (similar lengths, thanks to the sort) are
    // hashed as pairs on one thread; otherwise every item is a job of its own.
    let per_job = if two_lane_kernel() { 2 } else { 1 };
    let jobs: Vec<&[Item]> = items.chunks(per_job).collect();
    let hashed: Vec<(Item, io::Result<[u8; 32]>)> = jobs
        .into_par_iter()
        .with_max_len(1)
        .flat_map_iter(|job| hash_job(paths, job, io_mode, on_bytes))
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

#[cfg(target_arch = "x86_64")]
fn two_lane_kernel() -> bool {
    sha256x2::available()
}

#[cfg(not(target_arch = "x86_64"))]
fn two_lane_kernel() -> bool {
    false
}

thread_local! {
    /// Two read buffers per worker thread (one per stream of a pair), reused across items. They
    /// are `CHUNK` bytes so that a chunk is still in cache when it is hashed.
    static BUFFERS: std::cell::RefCell<[Vec<u8>; 2]> = const {
        std::cell::RefCell::new([Vec::new(), Vec::new()])
    };
}

/// Hashes the items of one job (one item, or two on the two-stream kernel).
fn hash_job(
    paths: &[PathBuf],
    job: &[Item],
    io_mode: IoMode,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Vec<(Item, io::Result<[u8; 32]>)> {
    BUFFERS.with(|buffers| {
        let mut buffers = buffers.borrow_mut();
        let [buf_a, buf_b] = &mut *buffers;
        for buf in [&mut *buf_a, &mut *buf_b] {
            if buf.len() < CHUNK {
                buf.resize(CHUNK, 0);
            }
        }
        match job {
            #[cfg(target_arch = "x86_64")]
            [a, b] => {
                let (ra, rb) = hash_pair(paths, [a, b], io_mode, on_bytes, buf_a, buf_b);
                vec![(*a, ra), (*b, rb)]
            }
            _ => job
                .iter()
                .map(|item| {
                    (
                        *item,
                        hash_single(&paths[item.file], item, io_mode, on_bytes, buf_a),
                    )
                })
                .collect(),
        }
    })
}

fn hash_single(
    path: &Path,
    item: &Item,
    io_mode: IoMode,
    on_bytes: &(dyn Fn(u64) + Sync),
    buf: &mut [u8],
) -> io::Result<[u8; 32]> {
    let mut source = Source::open(path, item, io_mode)?;
    let mut hasher = Sha256::new();
    while let Some(chunk) = source.next_chunk(buf)? {
        hasher.update(chunk);
        on_bytes(chunk.len() as u64);
    }
    Ok(hasher.finalize().into())
}

/// Hashes two items side by side with the two-stream kernel. Each keeps its own result: an error
/// in one (a truncated file, say) does not stop the other.
#[cfg(target_arch = "x86_64")]
fn hash_pair(
    paths: &[PathBuf],
    items: [&Item; 2],
    io_mode: IoMode,
    on_bytes: &(dyn Fn(u64) + Sync),
    buf_a: &mut [u8],
    buf_b: &mut [u8],
) -> (io::Result<[u8; 32]>, io::Result<[u8; 32]>) {
    use sha256x2::Lane;

    struct Stream<'p> {
        source: Option<Source<'p>>,
        lane: Lane,
        result: Option<io::Result<[u8; 32]>>,
    }
    /// What happened to a stream while taking its next chunk.
    enum Event {
        Ended,
        Failed(io::Error),
    }
    fn next<'s>(
        source: &'s mut Option<Source<'_>>,
        buf: &'s mut [u8],
        event: &mut Option<Event>,
    ) -> Option<&'s [u8]> {
        match source.as_mut()?.next_chunk(buf) {
            Ok(Some(chunk)) => Some(chunk),
            Ok(None) => {
                *event = Some(Event::Ended);
                None
            }
            Err(e) => {
                *event = Some(Event::Failed(e));
                None
            }
        }
    }
    fn settle(stream: &mut Stream<'_>, event: Option<Event>) {
        let result = match event {
            None => return,
            Some(Event::Ended) => Ok(std::mem::replace(&mut stream.lane, Lane::new()).finish()),
            Some(Event::Failed(e)) => Err(e),
        };
        stream.source = None;
        stream.result = Some(result);
    }

    let start = |item: &Item| match Source::open(&paths[item.file], item, io_mode) {
        Ok(source) => Stream {
            source: Some(source),
            lane: Lane::new(),
            result: None,
        },
        Err(e) => Stream {
            source: None,
            lane: Lane::new(),
            result: Some(Err(e)),
        },
    };
    let (mut a, mut b) = (start(items[0]), start(items[1]));
    while a.source.is_some() || b.source.is_some() {
        let (mut event_a, mut event_b) = (None, None);
        match (
            next(&mut a.source, buf_a, &mut event_a),
            next(&mut b.source, buf_b, &mut event_b),
        ) {
            (Some(ca), Some(cb)) => {
                Lane::update_pair(&mut a.lane, &mut b.lane, ca, cb);
                on_bytes((ca.len() + cb.len()) as u64);
            }
            (Some(ca), None) => {
                a.lane.update(ca);
                on_bytes(ca.len() as u64);
            }
            (None, Some(cb)) => {
                b.lane.update(cb);
                on_bytes(cb.len() as u64);
            }
            (None, None) => {}
        }
        settle(&mut a, event_a);
        settle(&mut b, event_b);
    }
    let result = |s: Stream<'_>| {
        // The loop ends only once both streams have settled.
        s.result
            .unwrap_or_else(|| Err(io::Error::other("internal error: stream left unsettled")))
    };
    (result(a), result(b))
}

/// The bytes of one item, chunk by chunk, read or mapped.
struct Source<'p> {
    path: &'p Path,
    file: File,
    pos: u64,
    end: u64,
    /// The item is the whole file, so the file must end where the listing said.
    whole: bool,
    map: Option<memmap2::Mmap>,
}

impl<'p> Source<'p> {
    fn open(path: &'p Path, item: &Item, io_mode: IoMode) -> io::Result<Source<'p>> {
        let file = File::open(path).map_err(|e| with_path(path, e))?;
        let end = item.offset + item.len;
        let map = match io_mode {
            IoMode::Read => None,
            IoMode::Mmap => map_range(path, &file, item)?,
        };
        Ok(Source {
            path,
            file,
            pos: item.offset,
            end,
            whole: item.whole,
            map,
        })
    }

    /// The next chunk (at most `CHUNK` bytes), or `None` once the item's range is done.
    fn next_chunk<'s>(&'s mut self, buf: &'s mut [u8]) -> io::Result<Option<&'s [u8]>> {
        if self.pos >= self.end {
            if self.whole && self.map.is_none() {
                self.check_no_growth(buf)?;
            }
            return Ok(None);
        }
        let want = (self.end - self.pos).min(CHUNK as u64) as usize;
        if let Some(map) = &self.map {
            // The map covers exactly [offset, end); index relative to its start.
            let start = (self.pos - (self.end - map.len() as u64)) as usize;
            self.pos += want as u64;
            return Ok(Some(&map[start..start + want]));
        }
        let n =
            read_at(&self.file, &mut buf[..want], self.pos).map_err(|e| with_path(self.path, e))?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: file ended at byte {}, but it was {} bytes when listed; it was truncated while being hashed",
                    self.path.display(),
                    self.pos,
                    self.end
                ),
            ));
        }
        self.pos += n as u64;
        Ok(Some(&buf[..n]))
    }

    fn check_no_growth(&self, buf: &mut [u8]) -> io::Result<()> {
        if read_at(&self.file, &mut buf[..1], self.end).map_err(|e| with_path(self.path, e))? != 0 {
            return Err(io::Error::other(format!(
                "{}: file grew beyond the {} bytes it had when listed; it is being written to",
                self.path.display(),
                self.end
            )));
        }
        Ok(())
    }
}

/// Maps an item's byte range, after checking that the file still has the listed size.
fn map_range(path: &Path, file: &File, item: &Item) -> io::Result<Option<memmap2::Mmap>> {
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
        // Mapping zero bytes is an error on Linux; an empty range needs no mapping.
        return Ok(None);
    }
    let len = usize::try_from(item.len).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{}: a {}-byte range does not fit in memory on this platform",
                path.display(),
                item.len
            ),
        )
    })?;
    // SAFETY: the map is read-only and private to this item; the size check above makes every
    // mapped byte exist. Another process truncating the file while it is mapped would make a page
    // fault fail (SIGBUS), which is why `IoMode::Read` is the default.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(item.offset)
            .len(len)
            .populate()
            .map(file)
    }
    .map_err(|e| with_path(path, e))?;
    Ok(Some(map))
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

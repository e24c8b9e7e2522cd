//! File digests: the sharded construction against independent computations, method selection,
//! parallel results, and files that change while they are hashed.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use husai_core::digest::{
    DEFAULT_SHARD_SIZE, DigestMethod, FileDigest, IoMode, digest_file, digest_files,
    digest_files_with, sha256_hex,
};
use sha2::{Digest as _, Sha256};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Deterministic non-repeating test bytes.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The sharded construction written out from plain SHA-256 calls, independently of the library.
fn sharded_reference(data: &[u8], shard: usize) -> String {
    let mut outer = Sha256::new();
    outer.update(b"husai-sha256-sharded-v1\n");
    outer.update((shard as u64).to_be_bytes());
    outer.update((data.len() as u64).to_be_bytes());
    for chunk in data.chunks(shard) {
        outer.update(Sha256::digest(chunk));
    }
    hex::encode(outer.finalize())
}

fn sharded(shard_size: u64) -> DigestMethod {
    DigestMethod::Sha256Sharded { shard_size }
}

#[test]
fn sha256_hex_known_answer() {
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn golden_sharded_digest() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "ten", b"0123456789");
    let d = digest_file(&p, sharded(4)).unwrap();
    // Shards "0123", "4567", "89". The constant was computed with Python's hashlib:
    // sha256(b"husai-sha256-sharded-v1\n" + struct.pack(">QQ", 4, 10) + b"".join(sha256(c).digest() ...))
    assert_eq!(
        d,
        FileDigest {
            algorithm: "sha256-sharded".into(),
            hex: "433343fc2918009294c211ea4d0656ef63a7d3e06ba33033242cd86a3e508464".into(),
            size: 10
        }
    );
    assert_eq!(d.hex, sharded_reference(b"0123456789", 4));
}

#[test]
fn small_files_and_the_plain_method_get_plain_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let data = bytes(1000, 1);
    let p = write(dir.path(), "f", &data);
    let plain = FileDigest {
        algorithm: "sha256".into(),
        hex: sha256_hex(&data),
        size: 1000,
    };
    assert_eq!(digest_file(&p, DigestMethod::Sha256).unwrap(), plain);
    assert_eq!(
        digest_file(&p, sharded(1000)).unwrap(),
        plain,
        "len == shard size is one shard"
    );
    assert_eq!(digest_file(&p, DigestMethod::default()).unwrap(), plain);
    let d = digest_file(&p, sharded(999)).unwrap();
    assert_eq!(d.algorithm, "sha256-sharded");
    assert_eq!(d.hex, sharded_reference(&data, 999));

    let empty = write(dir.path(), "empty", b"");
    let d = digest_file(&empty, sharded(1)).unwrap();
    assert_eq!((d.algorithm.as_str(), d.size), ("sha256", 0));
    assert_eq!(d.hex, sha256_hex(b""));
}

#[test]
fn many_files_in_parallel_match_sequential_references() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [
        0usize,
        1,
        4095,
        4096,
        4097,
        100_000,
        3 << 20,
        (5 << 20) + 17,
        65_536,
    ];
    let mut paths = Vec::new();
    let mut datas = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let data = bytes(n, i as u64 + 7);
        paths.push(write(dir.path(), &format!("f{i}"), &data));
        datas.push(data);
    }
    for shard in [4096u64, 65_536, 1 << 20, DEFAULT_SHARD_SIZE] {
        for io in [IoMode::Read, IoMode::Mmap] {
            let seen = AtomicU64::new(0);
            let results = digest_files_with(&paths, sharded(shard), io, &|n| {
                seen.fetch_add(n, Ordering::Relaxed);
            });
            assert_eq!(results.len(), paths.len());
            for ((r, data), path) in results.iter().zip(&datas).zip(&paths) {
                let d = r.as_ref().unwrap();
                let expected = if data.len() as u64 > shard {
                    sharded_reference(data, shard as usize)
                } else {
                    sha256_hex(data)
                };
                assert_eq!(d.hex, expected, "{} shard {shard} {io:?}", path.display());
                assert_eq!(d.size, data.len() as u64);
            }
            let total: u64 = datas.iter().map(|d| d.len() as u64).sum();
            assert_eq!(
                seen.load(Ordering::Relaxed),
                total,
                "progress must add up to the bytes hashed"
            );
        }
    }
}

#[test]
fn per_file_errors_name_the_file_and_leave_the_others_alone() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good", b"hello");
    let missing = dir.path().join("missing");
    let results = digest_files(
        &[good.clone(), missing.clone(), dir.path().to_owned()],
        DigestMethod::default(),
        &|_| {},
    );
    assert_eq!(results[0].as_ref().unwrap().hex, sha256_hex(b"hello"));
    let e = results[1].as_ref().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    assert!(
        e.to_string()
            .starts_with(&format!("{}: ", missing.display())),
        "{e}"
    );
    let e = results[2].as_ref().unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: not a regular file, cannot be digested",
            dir.path().display()
        )
    );
}

#[test]
fn zero_shard_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "f", b"x");
    let e = digest_file(&p, sharded(0)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("shard_size >= 1"), "{e}");

    let err = serde_json::from_str::<DigestMethod>(r#"{"method":"sha256-sharded","shard_size":0}"#)
        .unwrap_err();
    assert!(err.to_string().contains("needs shard_size >= 1"), "{err}");
}

#[test]
fn absurd_shard_counts_fail_the_file_not_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "f", &bytes(2 << 20, 5));
    let e = digest_file(&p, sharded(1)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(
        e.to_string(),
        format!(
            "{}: shard_size 1 would cut this 2097152-byte file into more than 1048576 shards; use a larger shard size (husai writes 67108864)",
            p.display()
        )
    );
}

#[test]
fn method_json_forms() {
    assert_eq!(
        serde_json::to_string(&DigestMethod::Sha256).unwrap(),
        r#"{"method":"sha256"}"#
    );
    assert_eq!(
        serde_json::to_string(&DigestMethod::default()).unwrap(),
        r#"{"method":"sha256-sharded","shard_size":67108864}"#
    );
    for m in [DigestMethod::Sha256, sharded(12345)] {
        let back: DigestMethod = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }
    assert!(serde_json::from_str::<DigestMethod>(r#"{"method":"md5"}"#).is_err());
}

/// A file of several read chunks, with an old mtime so that any write visibly changes it.
fn big_file(dir: &Path) -> (PathBuf, Vec<u8>) {
    let data = bytes(3 << 20, 99);
    let p = write(dir, "big", &data);
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    (p, data)
}

/// Runs `digest_file` and lets `change` act on the file once, after the first chunk is hashed.
fn hash_while(
    path: &Path,
    method: DigestMethod,
    change: impl Fn(&Path) + Sync,
) -> std::io::Result<FileDigest> {
    let done = Mutex::new(false);
    let results = digest_files(&[path.to_owned()], method, &|_| {
        let mut done = done.lock().unwrap();
        if !*done {
            *done = true;
            change(path);
        }
    });
    results.into_iter().next().unwrap()
}

#[test]
fn truncated_while_hashing_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let truncate = |p: &Path| {
        OpenOptions::new()
            .write(true)
            .open(p)
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
    };

    // One whole-file item: the read after the first chunk comes up short.
    let (p, _) = big_file(dir.path());
    let e = hash_while(&p, DigestMethod::Sha256, truncate).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: file ended at byte 1048576, but it was 3145728 bytes when listed; it was truncated while being hashed",
            p.display()
        )
    );

    // Shards: a shard read after the truncation comes up short; on a machine with more threads
    // than shards every shard may have been read already, and then the final re-check sees it.
    let (p, _) = big_file(dir.path());
    let e = hash_while(&p, sharded(256 << 10), truncate).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("{}: file ", p.display())), "{msg}");
    assert!(
        msg.contains("truncated while being hashed")
            || msg.contains("changed while it was being hashed"),
        "{msg}"
    );
}

#[test]
fn grown_while_hashing_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let (p, _) = big_file(dir.path());
    let e = hash_while(&p, DigestMethod::Sha256, |p| {
        OpenOptions::new()
            .append(true)
            .open(p)
            .unwrap()
            .write_all(b"more")
            .unwrap();
    })
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("grew beyond the 3145728 bytes it had when listed"),
        "{e}"
    );

    // Sharded: every shard reads its listed range; the final re-check sees the new size.
    let (p, _) = big_file(dir.path());
    let e = hash_while(&p, sharded(1 << 20), |p| {
        OpenOptions::new()
            .append(true)
            .open(p)
            .unwrap()
            .write_all(b"more")
            .unwrap();
    })
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("file changed while it was being hashed (size 3145728 -> 3145732)"),
        "{e}"
    );
}

#[test]
fn rewritten_in_place_while_hashing_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let (p, data) = big_file(dir.path());
    let e = hash_while(&p, sharded(1 << 20), |p| {
        // Same size, different content: only the modification time gives it away.
        let mut f = OpenOptions::new().write(true).open(p).unwrap();
        f.write_all(&[!data[0]]).unwrap();
    })
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("file changed while it was being hashed"),
        "{e}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Random trees and shard sizes: pairs of unequal items, shards that end mid-block, files
    /// shorter than a block; every digest must equal the reference built from sha2 calls.
    #[test]
    fn random_trees_match_the_reference(
        sizes in proptest::collection::vec(0usize..300_000, 1..7),
        shard in 16u64..200_000,
        seed in 0u64..1000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let datas: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &n)| bytes(n, seed + i as u64)).collect();
        let paths: Vec<PathBuf> = datas.iter().enumerate().map(|(i, d)| write(dir.path(), &format!("f{i}"), d)).collect();
        for io in [IoMode::Read, IoMode::Mmap] {
            let results = digest_files_with(&paths, sharded(shard), io, &|_| {});
            for (r, data) in results.iter().zip(&datas) {
                let expected = if data.len() as u64 > shard {
                    sharded_reference(data, shard as usize)
                } else {
                    sha256_hex(data)
                };
                proptest::prop_assert_eq!(&r.as_ref().unwrap().hex, &expected);
            }
        }
    }
}

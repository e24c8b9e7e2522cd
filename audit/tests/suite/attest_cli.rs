//! keygen and attest from the command line: keys, bad keys, commands, and crash safety.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use common::*;

#[test]
fn keygen_writes_a_0600_private_key_and_refuses_to_overwrite() {
    let p = Project::new();
    let o = p.run(&["keygen", "k/me"]);
    assert_success(&o);
    let private = p.path("k/me.pem");
    let public = p.path("k/me.pub.pem");
    let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        std::fs::read_to_string(&public)
            .unwrap()
            .contains("BEGIN PUBLIC KEY")
    );
    let keyid = husai_core::keys::SigningKey::from_pkcs8_pem_file(&private)
        .unwrap()
        .key_id();
    assert!(stdout(&o).contains(&keyid));

    let before = std::fs::read(&private).unwrap();
    let o = p.run(&["keygen", "k/me"]);
    assert_fails_with(&o, 2, &["me.pem"]);
    assert_eq!(
        std::fs::read(&private).unwrap(),
        before,
        "key was overwritten"
    );
}

#[test]
fn attest_without_a_key_says_how_to_get_one() {
    let p = Project::new();
    std::fs::create_dir_all(p.path("out")).unwrap();
    std::fs::write(p.path("out/a.json"), b"{}").unwrap();
    let o = p.run(&["attest", "out", "--campaign", "c"]);
    assert_fails_with(&o, 2, &["no signing key", "HUSAI_SIGNING_KEY", "keygen"]);
}

#[test]
fn attest_reads_the_key_from_the_environment() {
    let p = Project::new();
    std::fs::create_dir_all(p.path("out")).unwrap();
    std::fs::write(p.path("out/a.json"), b"{}").unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_husai-audit"))
        .args(["attest", "out", "--campaign", "c"])
        .current_dir(p.dir.path())
        .env("HUSAI_SIGNING_KEY", p.path("dev.pem"))
        .output()
        .unwrap();
    assert_success(&o);
    assert_success(&p.run(&["verify"]));
}

#[test]
fn attest_with_a_missing_or_wrong_type_key_names_the_file() {
    let p = Project::new();
    std::fs::create_dir_all(p.path("out")).unwrap();
    std::fs::write(p.path("out/a.json"), b"{}").unwrap();
    let o = p.run(&["attest", "out", "--campaign", "c", "--key", "nope.pem"]);
    assert_fails_with(&o, 2, &["nope.pem"]);
    let o = p.run(&[
        "attest",
        "out",
        "--campaign",
        "c",
        "--key",
        "keys/dev.pub.pem",
    ]);
    assert_fails_with(&o, 2, &["keys/dev.pub.pem", "private key"]);
    assert!(
        !p.path("results/c").exists()
            || std::fs::read_dir(p.path("results/c"))
                .unwrap()
                .next()
                .is_none()
    );
}

#[test]
fn attest_runs_the_command_and_records_it() {
    let p = Project::new();
    let o = p.run(&[
        "attest",
        "gen",
        "--campaign",
        "c",
        "--key",
        "dev.pem",
        "--json",
        "--",
        "sh",
        "-c",
        "echo '{\"x\": 1}' > gen/out.json",
    ]);
    assert_success(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let shown = p.run(&["show", v["dir"].as_str().unwrap(), "--json"]);
    assert_success(&shown);
    let m: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(m["predicate"]["command"]["argv"][0], "sh");
    assert_eq!(m["predicate"]["command"]["exit_code"], 0);
    assert_eq!(m["predicate"]["kind"], "external");
    assert_eq!(m["subject"][0]["name"], "out.json");
}

#[test]
fn a_failing_command_attests_nothing() {
    let p = Project::new();
    let o = p.run(&[
        "attest",
        "gen",
        "--campaign",
        "c",
        "--key",
        "dev.pem",
        "--",
        "sh",
        "-c",
        "echo partial > gen/out.json; exit 3",
    ]);
    assert_fails_with(&o, 1, &["failed", "nothing was attested"]);
    assert!(!p.path("results/c").exists());
}

#[test]
fn attest_refuses_symlinks_in_the_output_directory() {
    let p = Project::new();
    std::fs::create_dir_all(p.path("out")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", p.path("out/link")).unwrap();
    let o = p.run(&["attest", "out", "--campaign", "c", "--key", "dev.pem"]);
    assert_fails_with(&o, 2, &["out/link", "symbolic link"]);
    // The failed attempt leaves no staging directory behind.
    let leftovers: Vec<_> = std::fs::read_dir(p.path("results/c")).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// kill -9 at many points during attest: afterwards results/ holds either the complete signed
/// run or nothing that verify would take for a run, and the next attest clears the leftovers.
#[test]
fn attest_killed_at_any_point_leaves_no_half_run() {
    let p = Project::new();
    std::fs::create_dir_all(p.path("big")).unwrap();
    // Large enough that copying and hashing take a measurable time.
    let chunk = vec![0xA5u8; 1 << 20];
    let mut data = Vec::with_capacity(192 << 20);
    for i in 0..192u32 {
        let mut c = chunk.clone();
        c[..4].copy_from_slice(&i.to_le_bytes());
        data.extend_from_slice(&c);
    }
    std::fs::write(p.path("big/ckpt.bin"), &data).unwrap();
    for i in 0..20 {
        std::fs::write(p.path(&format!("big/small{i}.json")), b"{}").unwrap();
    }
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_husai-audit"))
            .args(["attest", "big", "--campaign", "crash", "--key", "dev.pem"])
            .current_dir(p.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // How long a full attest takes here.
    let t0 = Instant::now();
    assert!(spawn().wait().unwrap().success());
    let full = t0.elapsed();
    std::fs::remove_dir_all(p.path("results/crash")).unwrap();

    let mut killed_mid_run = 0;
    for step in 0..8u32 {
        let delay = full.mul_f64(f64::from(step) / 8.0);
        let mut child = spawn();
        std::thread::sleep(delay);
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if !finished {
            killed_mid_run += 1;
        }
        // A kill leaves at most a staging directory, which verify accepts only when told a run
        // may have been interrupted (--allow-staging); without it the leftover fails.
        let o = p.run(&["verify", "--json", "--allow-staging", "--allow-empty"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            v["passed"], true,
            "after a kill at {delay:?}, verify failed: {}",
            v["findings"]
        );
        for run in v["runs"].as_array().unwrap() {
            assert_eq!(run["ok"], true);
            assert_eq!(run["subjects"], 21, "a published run is always complete");
        }
    }
    assert!(
        killed_mid_run > 0,
        "no kill landed while attest was running"
    );

    // The next attest clears staging left by killed processes.
    let o = p.run(&["attest", "big", "--campaign", "crash", "--key", "dev.pem"]);
    assert_success(&o);
    let staging: Vec<_> = std::fs::read_dir(p.path("results/crash"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".staging-"))
        .collect();
    assert!(staging.is_empty(), "leftover staging: {staging:?}");
}

#[test]
fn a_signing_key_readable_by_others_is_refused_unless_allowed() {
    let p = Project::new();
    std::fs::create_dir_all(p.path("out")).unwrap();
    std::fs::write(p.path("out/a.json"), b"{}").unwrap();
    for (mode, who) in [
        (0o644, "group and others"),
        (0o640, "its group"),
        (0o604, "others"),
    ] {
        std::fs::set_permissions(p.path("dev.pem"), std::fs::Permissions::from_mode(mode)).unwrap();
        let o = p.run(&["attest", "out", "--campaign", "c", "--key", "dev.pem"]);
        assert_fails_with(
            &o,
            2,
            &[
                "dev.pem",
                who,
                &format!("mode {mode:04o}"),
                "chmod 600",
                "--allow-readable-key",
            ],
        );
    }
    assert!(
        !p.path("results/c").exists()
            || std::fs::read_dir(p.path("results/c"))
                .unwrap()
                .next()
                .is_none()
    );
    // The override, as a flag or in the environment.
    let o = p.run(&[
        "attest",
        "out",
        "--campaign",
        "c",
        "--key",
        "dev.pem",
        "--allow-readable-key",
    ]);
    assert_success(&o);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_husai-audit"))
        .args(["attest", "out", "--campaign", "c", "--key", "dev.pem"])
        .current_dir(p.dir.path())
        .env("HUSAI_ALLOW_READABLE_KEY", "1")
        .output()
        .unwrap();
    assert_success(&o);
}

#[test]
fn attest_refuses_a_directory_holding_a_private_key() {
    let p = Project::new();
    std::fs::create_dir_all(p.path("out/deep")).unwrap();
    std::fs::write(p.path("out/a.json"), b"{}").unwrap();
    // A key buried after a megabyte of other bytes is found too.
    let mut blob = vec![b'x'; (1 << 20) + 7];
    blob.extend_from_slice(b"\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA=\n");
    std::fs::write(p.path("out/deep/notes.txt"), &blob).unwrap();
    let o = p.run(&["attest", "out", "--campaign", "c", "--key", "dev.pem"]);
    assert_fails_with(
        &o,
        2,
        &["notes.txt", "holds a PEM private key", "refusing to attest"],
    );
    // A public key is fine.
    std::fs::write(
        p.path("out/deep/notes.txt"),
        p.key.public_key().to_spki_pem(),
    )
    .unwrap();
    assert_success(&p.run(&["attest", "out", "--campaign", "c", "--key", "dev.pem"]));
}

#[test]
fn attest_refuses_names_that_verify_would_reject() {
    use std::os::unix::ffi::OsStrExt as _;
    let p = Project::new();
    let cases: Vec<(&std::ffi::OsStr, &str)> = vec![
        (std::ffi::OsStr::new("a\\b.txt"), "backslash"),
        (std::ffi::OsStr::new("C:notes.txt"), "absolute"),
        (
            std::ffi::OsStr::new("bell\u{7}.txt"),
            "control character U+0007",
        ),
        (std::ffi::OsStr::from_bytes(b"x\xff.txt"), "not valid UTF-8"),
    ];
    for (name, why) in cases {
        let out = p.path("out");
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join(name), b"1").unwrap();
        let o = p.run(&["attest", "out", "--campaign", "c", "--key", "dev.pem"]);
        assert_fails_with(&o, 2, &["rename the file"]);
        let all = format!("{}{}", stdout(&o), stderr(&o)).to_lowercase();
        assert!(all.contains(&why.to_lowercase()), "{why}: {all}");
    }
    // Nothing was published, so verify passes (given that an empty tree is expected).
    assert_success(&p.run(&["verify", "--allow-empty"]));
}

#[test]
fn attest_refuses_to_attest_the_results_tree_itself() {
    let p = Project::new();
    p.attest("a", "exp", &[("x.json", b"{}")]);
    for dir in ["results", "."] {
        let o = p.run(&["attest", dir, "--campaign", "c", "--key", "dev.pem"]);
        assert_fails_with(
            &o,
            2,
            &["contains the results tree", "own staging directory"],
        );
    }
    assert_success(&p.run(&["verify"]));
}

#[test]
fn attest_records_the_commands_real_start_finish_and_duration() {
    let p = Project::new();
    let before = time::OffsetDateTime::now_utc();
    let o = p.run(&[
        "attest",
        "out",
        "--campaign",
        "c",
        "--key",
        "dev.pem",
        "--json",
        "--",
        "sh",
        "-c",
        "sleep 1.2 && echo done > out/r.txt",
    ]);
    assert_success(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let dir = p.dir.path().join(v["dir"].as_str().unwrap());
    let env: husai_core::dsse::Envelope =
        serde_json::from_slice(&std::fs::read(dir.join("husai.dsse.json")).unwrap()).unwrap();
    let st: serde_json::Value = serde_json::from_slice(&env.decode_payload().unwrap()).unwrap();
    let m = &st["predicate"];
    let cmd = &m["command"];
    let t =
        |v: &serde_json::Value| husai_core::store::parse_timestamp(v.as_str().unwrap()).unwrap();
    let (cs, cf) = (t(&cmd["started_at"]), t(&cmd["finished_at"]));
    let ms = cmd["duration_ms"].as_u64().unwrap();
    assert!((1200..10_000).contains(&ms), "{cmd}");
    assert!(cf - cs >= time::Duration::milliseconds(1150), "{cmd}");
    // The run starts before the command and is signed after it.
    assert!(
        t(&m["started_at"]) <= cs && cs >= before - time::Duration::seconds(1),
        "{m}"
    );
    assert!(t(&m["finished_at"]) >= cf, "{m}");
    assert_eq!(m["schema_version"], "1.2");
}

//! The known-circuit parts on planted and random inputs: the corrected share of a planted 94.7 % embedding, upstream's
//! parity figure on random embeddings, SAE alignment and planted recovery above random, and the null-result and
//! not-evaluated paths.

use super::*;
use husai_kernels::activations::write_npy_f32;
use husai_kernels::fourier;
use husai_kernels::rng::SplitMix64;

fn safetensors(tensors: &[(&str, [usize; 2], &[f32])]) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut offset = 0;
    for (name, [r, c], data) in tensors {
        let end = offset + 4 * data.len();
        entries.push(format!(
            "\"{name}\":{{\"dtype\":\"F32\",\"shape\":[{r},{c}],\"data_offsets\":[{offset},{end}]}}"
        ));
        offset = end;
    }
    let mut header = format!("{{{}}}", entries.join(","));
    while (8 + header.len()) % 8 != 0 {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    for (_, _, data) in tensors {
        out.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    }
    out
}

/// An embedding [p, d] with exactly `share` of its centred energy in the folded frequencies `keys`.
fn planted_embedding(p: usize, d: usize, keys: &[usize], share: f64, seed: u64) -> Vec<f32> {
    let basis = fourier::token_basis(p, keys);
    let cols = 2 * keys.len();
    let mut rng = SplitMix64::new(seed);
    let coef: Vec<f64> = (0..cols * d).map(|_| rng.normal()).collect();
    let mut noise: Vec<f64> = (0..p * d).map(|_| rng.normal()).collect();
    for j in 0..d {
        let m = (0..p).map(|n| noise[n * d + j]).sum::<f64>() / p as f64;
        (0..p).for_each(|n| noise[n * d + j] -= m);
    }
    let project = |x: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0; p * d];
        for i in 0..cols {
            for j in 0..d {
                let dot: f64 = (0..p).map(|n| basis[n * cols + i] * x[n * d + j]).sum();
                (0..p).for_each(|n| out[n * d + j] += basis[n * cols + i] * dot);
            }
        }
        out
    };
    let on = project(&noise);
    let off: Vec<f64> = noise.iter().zip(&on).map(|(a, b)| a - b).collect();
    let mut signal = vec![0.0; p * d];
    for n in 0..p {
        for i in 0..cols {
            for j in 0..d {
                signal[n * d + j] += basis[n * cols + i] * coef[i * d + j];
            }
        }
    }
    let es: f64 = signal.iter().map(|v| v * v).sum();
    let en: f64 = off.iter().map(|v| v * v).sum();
    let (a, b) = ((share / es).sqrt(), ((1.0 - share) / en).sqrt());
    signal
        .iter()
        .zip(&off)
        .map(|(s, n)| (a * s + b * n) as f32)
        .collect()
}

fn model_dir(root: &Path, name: &str, embed: &[f32], p: usize, d: usize) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(MODEL_WEIGHTS),
        safetensors(&[("embed", [p, d], embed)]),
    )
    .unwrap();
    dir
}

fn sae_dir(root: &Path, name: &str, w_dec: &[f32], rows: usize, d: usize) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let w_enc = vec![0.0f32; rows * d];
    std::fs::write(
        dir.join(SAE_WEIGHTS),
        safetensors(&[("W_dec", [rows, d], w_dec), ("W_enc", [d, rows], &w_enc)]),
    )
    .unwrap();
    dir
}

fn quick() -> Settings {
    Settings {
        random_inits: 100,
        random_decoders: 100,
        bootstrap: 1000,
        ..Settings::default()
    }
}

const KEYS: [usize; 5] = [4, 17, 30, 41, 52];

#[test]
fn a_planted_embedding_scores_its_share_and_is_recovered_above_random() {
    let tmp = tempfile::tempdir().unwrap();
    let e = planted_embedding(113, 128, &KEYS, 0.947, 1);
    let m = model_dir(tmp.path(), "m", &e, 113, 128);
    let (part, _) = embedding_part(
        &[m],
        &Settings {
            parity: true,
            ..quick()
        },
    )
    .unwrap();
    let share = part["trained"]["mean"].as_f64().unwrap();
    assert!((share - 0.947).abs() < 1e-4, "{share}");
    assert_eq!(part["outcome"], "recovered_above_random");
    // One model: no seed-level spread, and the method says what the interval is instead.
    assert_eq!(
        part["difference"]["method"],
        "1 trained value(s), fewer than the 5 a seed-level interval needs: the trained mean against the central \
         interval of the random draws (model seeds and random inits)"
    );
    let mut keys: Vec<u64> = part["key_frequencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_u64().unwrap())
        .collect();
    keys.sort();
    assert_eq!(keys, [4, 17, 30, 41, 52]);
    assert!((part["random"]["mean"].as_f64().unwrap() - 0.103).abs() < 0.006);
    // Upstream's formula on the same planted embedding (reference §3.6 K2: about 0.19, far from 0.947).
    let up = part["parity"]["trained"][0].as_f64().unwrap();
    assert!((0.1..0.3).contains(&up), "{up}");
}

#[test]
fn parity_reproduces_upstreams_figure_on_random_gaussian_embeddings() {
    // Reference §7: a random Gaussian 113×128 embedding gives 0.020 ± 0.001 by upstream's formula, ≈ 0.103 corrected.
    let (corrected, upstream) = parts::random_embeddings(113, 128, 5, 30, 7, true).unwrap();
    let (mu, mc) = (stats::mean(&upstream), stats::mean(&corrected));
    assert!((mu - 0.020).abs() < 0.001, "upstream mean {mu}");
    assert!((mc - 0.103).abs() < 0.004, "corrected mean {mc}");
}

#[test]
fn a_random_model_and_random_saes_are_null_results_and_missing_inputs_are_not_evaluated() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = SplitMix64::new(9);
    let (p, d) = (113, 32);
    let e = parts::gaussian(p, d, &mut rng);
    let mut inputs = BTreeMap::new();
    inputs.insert("model/0".to_owned(), model_dir(tmp.path(), "m", &e, p, d));
    for i in 0..5 {
        let w = parts::gaussian(64, d, &mut rng);
        inputs.insert(
            format!("sae/{i}"),
            sae_dir(tmp.path(), &format!("s{i}"), &w, 64, d),
        );
    }
    let summary = evaluate(&inputs, &quick()).unwrap();
    let parts = &summary["parts"];
    assert_eq!(
        parts["embedding"]["outcome"], "null_result",
        "{}",
        parts["embedding"]
    );
    assert_eq!(
        parts["sae_alignment"]["outcome"], "null_result",
        "{}",
        parts["sae_alignment"]
    );
    assert_eq!(parts["planted"]["outcome"], "not_evaluated");
    assert!(
        parts["planted"]["reason"]
            .as_str()
            .unwrap()
            .contains("no planted input")
    );
    assert_eq!(summary["schema"], SCHEMA_ID);

    // Four SAE seeds are too few for the seed-level interval; no model at all leaves nothing to compare.
    inputs.remove("sae/4");
    let s = evaluate(&inputs, &quick()).unwrap();
    let reason = s["parts"]["sae_alignment"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("4 SAE run(s) given") && reason.contains("at least 5"),
        "{reason}"
    );
    let s = evaluate(&BTreeMap::new(), &quick()).unwrap();
    assert_eq!(s["parts"]["embedding"]["outcome"], "not_evaluated");
    assert_eq!(s["parts"]["sae_alignment"]["outcome"], "not_evaluated");
}

#[test]
fn saes_inside_the_fourier_subspace_align_above_random() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, d) = (113, 64);
    let e = planted_embedding(p, d, &KEYS, 0.9, 2);
    let m = model_dir(tmp.path(), "m", &e, p, d);
    let (_, model) = embedding_part(&[m], &quick()).unwrap();
    let (e, p, d, keys) = model.unwrap();
    let basis = parts::model_space_basis(&e, p, d, &keys);
    let mut rng = SplitMix64::new(3);
    let mut saes = Vec::new();
    for i in 0..5 {
        // Decoder rows: random combinations of the basis plus a little noise.
        let mut w = Vec::new();
        for _ in 0..32 {
            let c: Vec<f64> = (0..basis.len()).map(|_| rng.normal()).collect();
            for j in 0..d {
                let v: f64 = basis.iter().zip(&c).map(|(q, c)| q[j] * c).sum();
                w.push((v + 0.05 * rng.normal()) as f32);
            }
        }
        saes.push(sae_dir(tmp.path(), &format!("s{i}"), &w, 32, d));
    }
    let part = alignment_part(&saes, Some(&(e, p, d, keys)), &quick()).unwrap();
    assert_eq!(part["outcome"], "recovered_above_random", "{part}");
    assert!(part["trained"]["mean"].as_f64().unwrap() > 0.9);
    let lower = part["difference"]["interval"]["lower"].as_f64().unwrap();
    assert!(lower > 0.4, "{part}");
    // A decoder of another width is refused by name.
    let wide = sae_dir(tmp.path(), "wide", &vec![0.1; 32 * (d + 1)], 32, d + 1);
    let model = embedding_part(&[tmp.path().join("m")], &quick()).unwrap().1;
    let mut five = saes.clone();
    five[0] = wide;
    let err = alignment_part(&five, model.as_ref(), &quick()).unwrap_err();
    assert!(err.message.contains("decodes to width 65"), "{err}");
}

#[test]
fn planted_recovery_is_above_random_for_decoders_near_the_dictionary() {
    let tmp = tempfile::tempdir().unwrap();
    let (n, d) = (16, 32);
    let mut rng = SplitMix64::new(4);
    let dict = parts::gaussian(n, d, &mut rng);
    let planted = tmp.path().join("planted");
    std::fs::create_dir_all(&planted).unwrap();
    write_npy_f32(&planted.join(DICTIONARY), n, d, &dict).unwrap();
    let mut saes = Vec::new();
    for i in 0..5 {
        let mut w: Vec<f32> = dict
            .iter()
            .map(|&v| v + 0.05 * rng.normal() as f32)
            .collect();
        w.extend(parts::gaussian(8, d, &mut rng));
        saes.push(sae_dir(tmp.path(), &format!("p{i}"), &w, n + 8, d));
    }
    let part = planted_part(std::slice::from_ref(&planted), &saes, &quick()).unwrap();
    assert_eq!(part["outcome"], "recovered_above_random", "{part}");
    assert_eq!(part["trained"]["mean"], 1.0);
    assert_eq!(part["random"]["mean"], 0.0);
    assert_eq!(
        part["difference"]["method"],
        "studentized bootstrap over SAE seeds and random decoders"
    );
    // Random decoders as the "trained" SAEs: a null result.
    let mut random = Vec::new();
    for i in 0..5 {
        let w = parts::gaussian(n + 8, d, &mut rng);
        random.push(sae_dir(tmp.path(), &format!("r{i}"), &w, n + 8, d));
    }
    let part = planted_part(&[planted], &random, &quick()).unwrap();
    assert_eq!(part["outcome"], "null_result", "{part}");
}

#[test]
fn an_unknown_role_is_refused() {
    let inputs = BTreeMap::from([("weights/0".to_owned(), PathBuf::from("/x"))]);
    let err = evaluate(&inputs, &quick()).unwrap_err();
    assert!(err.message.contains("input role \"weights\""), "{err}");
}

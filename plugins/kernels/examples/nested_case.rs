//! Writes one tiny case of a nested family's loss and gradients as JSON, for checking a PyTorch peer of the same
//! maths against ours (`bench/htopk_torch.py --check FILE`):
//!
//! ```text
//! cargo run --release -p husai-kernels --example nested_case -- hierarchical_topk OUT.json
//! cargo run --release -p husai-kernels --example nested_case -- matryoshka OUT.json
//! ```
//!
//! The model is an engine SAE (d_in 8, d_sae 24) with every parameter moved off its initial value, the batch 16
//! seeded rows; `hierarchical_topk` is K = 5, `matryoshka` is BatchTopK k = 4 with widths 4, 10, 24. AuxK is off
//! (it is the same term as in the flat families). The JSON holds the inputs (`x`, `W_enc` as `[d_in, d_sae]`,
//! `b_enc`, `W_dec` as `[d_sae, d_in]`, `b_dec`), the selected code, and our `nested_mse`, per-level losses and
//! the four gradients.

use husai_kernels::engine::{Grads, InitConfig, Sae, Workspace, loss_and_grads};
use husai_kernels::rng::SplitMix64;
use serde_json::json;

#[allow(dead_code)]
#[path = "../../sae-hierarchical-topk/src/family.rs"]
mod htopk_family;
#[allow(dead_code)]
#[path = "../../sae-matryoshka/src/family.rs"]
mod matryoshka_family;

fn case<F: husai_kernels::family::Family>(family: &F, k: usize) -> serde_json::Value {
    let (d_in, d_sae, rows) = (8, 24, 16);
    let init = Sae::init(family, d_in, d_sae, 3, InitConfig::default()).unwrap();
    let mut parts = init.to_parts();
    let mut r = SplitMix64::new(42);
    for v in parts.w_enc.iter_mut() {
        *v += 0.3 * (r.uniform_f32() - 0.5);
    }
    for v in parts.b_enc.iter_mut() {
        *v = 0.2 * (r.uniform_f32() - 0.3);
    }
    for v in parts.b_dec.iter_mut() {
        *v = 0.5 * (r.uniform_f32() - 0.5);
    }
    let model = Sae::from_parts(family, parts).unwrap();
    let x: Vec<f32> = (0..rows * d_in).map(|_| r.normal() as f32).collect();
    let mut ws = Workspace::default();
    let mut grads = Grads {
        tensors: vec![
            vec![0.0; d_sae * d_in],
            vec![0.0; d_sae],
            vec![0.0; d_sae * d_in],
            vec![0.0; d_in],
        ],
    };
    let loss = loss_and_grads(&model, family, 0, &x, None, &mut ws, &mut grads, None).unwrap();
    let code = ws.code();
    // W_enc as the peer holds it, [d_in, d_sae]; we keep its transpose.
    let t = |m: &[f32]| -> Vec<f32> {
        (0..d_in)
            .flat_map(|i| (0..d_sae).map(move |j| m[j * d_in + i]))
            .collect()
    };
    json!({
        "d_in": d_in, "d_sae": d_sae, "rows": rows, "k": k,
        "x": x, "W_enc": t(model.w_enc_t()), "b_enc": model.b_enc(), "W_dec": model.w_dec(), "b_dec": model.b_dec(),
        "code": {"offsets": code.offsets, "idx": code.idx, "val": code.val},
        "nested_mse": loss.nested_mse, "levels": loss.levels, "mse": loss.mse_loss,
        "grads": {"W_enc": t(&grads.tensors[0]), "b_enc": grads.tensors[1], "W_dec": grads.tensors[2],
                  "b_dec": grads.tensors[3]},
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [family, out] = args.as_slice() else {
        eprintln!("usage: nested_case hierarchical_topk|matryoshka OUT.json");
        std::process::exit(2);
    };
    let v = match family.as_str() {
        "hierarchical_topk" => case(&htopk_family::HierarchicalTopK::new(5, 24), 5),
        "matryoshka" => {
            let mut v = case(
                &matryoshka_family::Matryoshka::new(4, 0.01, &[4, 10, 24]),
                4,
            );
            v["widths"] = json!([4, 10, 24]);
            v
        }
        other => {
            eprintln!("nested_case: unknown family {other:?} (hierarchical_topk or matryoshka)");
            std::process::exit(2);
        }
    };
    std::fs::write(out, serde_json::to_string(&v).unwrap()).unwrap();
}

#!/usr/bin/env python3
"""PyTorch eager peer of husai's HierarchicalTopK trainer (sae-hierarchical-topk), the same maths written plainly.

HierarchicalTopK (Balagansky et al. 2025, "Train One Sparse Autoencoder Across Multiple Sparsity Budgets"): a TopK
SAE with K latents per row whose loss averages the reconstruction error of the k' largest latents over
k' = 1..K. Here that is computed the direct way: the K kept decoder rows of each row gathered into a [B, K, d_in]
tensor, scaled by their values, and cumulatively summed over K (x_hat for every k' at once); autograd does the rest.

As the husai plugin with its defaults: W_dec rows uniform then scaled to norm 0.1, W_enc = W_dec^T, b_enc = b_dec = 0;
Adam (betas 0.9, 0.999, eps 1e-8); the global gradient norm clipped to 1; decoder rows renormalised to 1 after every
step; AuxK (top k_aux = d_in / 2 raw pre-activations among latents dead for dead_window steps, reconstructing the
detached full residual, weight 1/32). Sequential batches (step * batch) % (rows - batch + 1), one untimed warm-up
step, then --steps timed steps.

  python bench/htopk_torch.py --npy TRAIN.npy [--eval-npy EVAL.npy] --d-sae 1536 --k 32 --batch 1024 --steps 300
  python bench/htopk_torch.py --check CASE.json [--gram]   # CASE from `cargo run --example nested_case`

--check compares this file's loss and autograd gradients with husai's on the tiny case the example writes
(hierarchical_topk, and matryoshka's prefix objective over BatchTopK), and exits 1 on a mismatch.
"""
import argparse
import json
import math
import sys
import time

import numpy as np
import torch

from torch_sae_common import after_step, auxk_loss


def hierarchical_loss(x, W_enc, b_enc, W_dec, b_dec, k):
    """(1/K) sum_k' ||x - x_hat_k'||^2 (summed over d_in, mean over rows), the per-level losses, and the code."""
    pre = (x - b_dec) @ W_enc + b_enc
    vals, idx = torch.topk(torch.relu(pre), k, dim=1)  # sorted, largest first
    x_hat = b_dec + torch.cumsum(vals.unsqueeze(-1) * W_dec[idx], dim=1)  # [B, K, d_in]: x_hat for every k'
    per_level = ((x_hat - x.unsqueeze(1)) ** 2).sum(-1).mean(0)  # [K]
    return per_level.mean(), per_level, pre, x_hat[:, -1], idx, vals


def hierarchical_loss_gram(x, W_enc, b_enc, W_dec, b_dec, k):
    """The same loss without the [B, K, d_in] partial reconstructions (--gram): with r0 = b_dec - x,
    ||x_hat_k' - x||^2 = ||r0||^2 + 2 sum_{i<k'} z_i <W_i, r0> + sum_{i,j<k'} z_i z_j <W_i, W_j>, the last term the
    k'-th diagonal entry of the 2-D prefix sum of z_i z_j G_ij (G the per-row Gram matrix of the kept rows)."""
    pre = (x - b_dec) @ W_enc + b_enc
    vals, idx = torch.topk(torch.relu(pre), k, dim=1)
    Wg = W_dec[idx]  # [B, K, d_in]
    r0 = b_dec - x
    a = torch.bmm(Wg, r0.unsqueeze(-1)).squeeze(-1)  # [B, K]
    G = torch.bmm(Wg, Wg.transpose(1, 2))  # [B, K, K]
    M = vals.unsqueeze(2) * vals.unsqueeze(1) * G
    quad = torch.diagonal(M.cumsum(1).cumsum(2), dim1=1, dim2=2)  # [B, K]
    err = (r0 * r0).sum(-1, keepdim=True) + 2 * torch.cumsum(vals * a, 1) + quad
    per_level = err.mean(0)
    x_hat_full = b_dec + (vals.unsqueeze(-1) * Wg).sum(1)
    return per_level.mean(), per_level, pre, x_hat_full, idx, vals


def matryoshka_loss(x, W_enc, b_enc, W_dec, b_dec, k, widths):
    """Sum over prefixes of ||x - x_hat_m||^2 over one BatchTopK selection (B * k largest of the batch)."""
    pre = (x - b_dec) @ W_enc + b_enc
    acts = torch.relu(pre)
    flat = acts.flatten()
    keep = torch.zeros_like(flat)
    keep[torch.topk(flat, x.shape[0] * k).indices] = 1.0
    z = acts * keep.view_as(acts)
    per_level, prev, x_hat = [], 0, b_dec.expand_as(x)
    for m in widths:
        x_hat = x_hat + z[:, prev:m] @ W_dec[prev:m]
        per_level.append(((x_hat - x) ** 2).sum(-1).mean())
        prev = m
    per_level = torch.stack(per_level)
    return per_level.sum(), per_level


def check(path, gram):
    case = json.load(open(path))
    d_in, d_sae, rows, k = case["d_in"], case["d_sae"], case["rows"], case["k"]
    t = lambda name, shape: torch.tensor(case[name], dtype=torch.float64).view(*shape).requires_grad_(True)
    x = torch.tensor(case["x"], dtype=torch.float64).view(rows, d_in)
    W_enc, b_enc = t("W_enc", (d_in, d_sae)), t("b_enc", (d_sae,))
    W_dec, b_dec = t("W_dec", (d_sae, d_in)), t("b_dec", (d_in,))
    if "widths" in case:
        loss, per_level = matryoshka_loss(x, W_enc, b_enc, W_dec, b_dec, k, case["widths"])
        name = "matryoshka"
    else:
        fn = hierarchical_loss_gram if gram else hierarchical_loss
        loss, per_level, _, _, idx, _ = fn(x, W_enc, b_enc, W_dec, b_dec, k)
        name = "hierarchical_topk" + (" (gram)" if gram else "")
        ours = np.array(case["code"]["idx"]).reshape(rows, k)
        if not np.array_equal(ours, idx.numpy()):
            print(f"{name}: the selections differ", file=sys.stderr)
            return 1
    loss.backward()
    worst = 0.0
    pairs = [("nested_mse", loss.item(), case["nested_mse"])]
    pairs += [(f"level {i}", a, b) for i, (a, b) in enumerate(zip(per_level.tolist(), case["levels"]))]
    for label, a, b in pairs:
        worst = max(worst, abs(a - b) / max(abs(b), 1e-6))
    for g, p in [("W_enc", W_enc), ("b_enc", b_enc), ("W_dec", W_dec), ("b_dec", b_dec)]:
        ours = np.array(case["grads"][g])
        theirs = p.grad.numpy().ravel()
        scale = max(np.abs(ours).max(), 1e-6)
        worst = max(worst, float(np.abs(ours - theirs).max() / scale))
    ok = worst < 1e-4
    print(json.dumps({"check": name, "loss_torch": loss.item(), "loss_husai": case["nested_mse"],
                      "max_relative_difference": worst, "ok": ok}))
    return 0 if ok else 1


def train(a):
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    x_all = torch.from_numpy(np.load(a.npy).astype(np.float32))
    rows, d_in = x_all.shape
    d_sae, k, batch = a.d_sae, a.k, a.batch
    bound = 1.0 / math.sqrt(d_in)
    W_dec = torch.empty(d_sae, d_in).uniform_(-bound, bound)
    W_dec = W_dec / W_dec.norm(dim=1, keepdim=True) * a.dec_init_norm
    W_enc = W_dec.t().clone().requires_grad_(True)
    W_dec.requires_grad_(True)
    b_enc = torch.zeros(d_sae, requires_grad=True)
    b_dec = torch.zeros(d_in, requires_grad=True)
    params = [W_enc, b_enc, W_dec, b_dec]
    opt = torch.optim.Adam(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    k_aux = min(a.k_aux or d_in // 2, d_sae)
    since_fired = torch.zeros(d_sae, dtype=torch.long)

    def step(i):
        nonlocal since_fired
        s = (i * batch) % (rows - batch + 1)
        x = x_all[s:s + batch]
        fn = hierarchical_loss_gram if a.gram else hierarchical_loss
        loss, _, pre, x_hat, idx, vals = fn(x, W_enc, b_enc, W_dec, b_dec, k)
        loss = loss + auxk_loss(pre, since_fired, a.dead_window, k_aux, W_dec, x - x_hat, a.aux_coeff)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, a.grad_clip)
        opt.step()
        since_fired = after_step(W_dec, idx, vals, since_fired)

    step(0)
    t0 = time.perf_counter()
    for i in range(1, a.steps + 1):
        step(i)
    seconds = time.perf_counter() - t0
    ev = torch.from_numpy(np.load(a.eval_npy).astype(np.float32)) if a.eval_npy else x_all[:16384]
    with torch.no_grad():
        pre = (ev - b_dec) @ W_enc + b_enc
        vals, idx = torch.topk(torch.relu(pre), k, dim=1)
        x_hat = b_dec + torch.cumsum(vals.unsqueeze(-1) * W_dec[idx], dim=1)
        var = ((ev - ev.mean(0)) ** 2).sum()
        curve = {f"fvu_k_{j}": float(((x_hat[:, j - 1] - ev) ** 2).sum() / var) for j in sorted({1, 8, 16, k}) if j <= k}
        l0 = float((vals > 0).sum(1).float().mean())
        fired = torch.zeros(d_sae, dtype=torch.bool)
        fired[idx[vals > 0]] = True
        dead_fraction = 1.0 - float(fired.float().mean())
    out = {"impl": f"torch-{torch.__version__}-eager" + ("-gram" if a.gram else ""), "arch": "hierarchical_topk", "threads": a.threads,
           "d_in": d_in, "d_sae": d_sae, "k": k, "batch": batch, "steps": a.steps, "seconds": round(seconds, 4),
           "rows_per_s": round(a.steps * batch / seconds, 1), "fvu": curve[f"fvu_k_{k}"], "l0": l0,
           "dead_fraction": dead_fraction,
           "eval_source": a.eval_npy or "first 16384 training rows", **curve}
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", help="compare with husai's loss and gradients on this case file, then exit")
    ap.add_argument("--gram", action="store_true",
                    help="the per-row Gram form of the same loss (no [B, K, d_in] tensors; faster on CPU)")
    ap.add_argument("--npy", help="float32 [rows, d_in] training bank")
    ap.add_argument("--eval-npy", help="held-out bank (default: the first 16384 training rows)")
    ap.add_argument("--d-sae", type=int, default=1536)
    ap.add_argument("--k", type=int, default=32, help="K, the largest budget")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=300, help="timed steps (one untimed warm-up step runs first)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dead-window", type=int, default=1000)
    ap.add_argument("--k-aux", type=int, default=0, help="0: d_in / 2")
    ap.add_argument("--aux-coeff", type=float, default=1.0 / 32)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--dec-init-norm", type=float, default=0.1)
    a = ap.parse_args()
    if a.check:
        sys.exit(check(a.check, a.gram))
    if not a.npy:
        ap.error("--npy is required (or --check)")
    train(a)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""PyTorch eager peer of husai's RouteSAE trainer (sae-routed), the same maths written plainly.

RouteSAE (Shi et al. 2025, "Route Sparse Autoencoder to Interpret Large Language Models"): a router reads the sum of
a row's L layer activations, r = W_router sum_l x_l (no bias), p = softmax(r); the row is routed hard to the layer
l* = argmax p, and one shared TopK SAE encodes x_l*.

How the router learns (--router):
  weighted (husai's default): the SAE encodes x_l* itself, and the router minimises the routing-weighted relative
      error sum_r p_r e_r / sum_r p_r, with p_r = p_l*(r) and e_r = ||x_hat - x||^2 / ||x||^2 held fixed. Its
      gradient through p_r is (e_r - batch mean) / sum p: rows whose chosen layer is explained worse than the batch
      average lower that layer's probability, rows explained better raise it.
  paper: the SAE encodes u = p_l* x_l* and the loss is the normalised MSE ||SAE(u) - u||^2 / ||u||^2, as the
      paper's public code trains it; the router learns only through how the SAE's biases break the scale
      invariance of that ratio.

Layers are first scaled by one constant each, s_l = sqrt(d / mean ||x_l||^2) over the training rows (MiniLM's
layer 6 has a third of the others' norm). As the husai plugin with its defaults: router weights uniform in
+-1/sqrt(d); W_dec rows uniform then scaled to norm 0.1, W_enc = W_dec^T, b_enc = 0, b_dec = 0; Adam (0.9, 0.999,
1e-8) for both; the SAE's gradient norm clipped to 1; decoder rows renormalised after every step; AuxK (k_aux = d/2,
weight 1/32). Sequential batches, one untimed warm-up step, then --steps timed steps.

  python bench/routesae_torch.py --bank LAYERS.safetensors [--eval-rows 3277] --d-sae 1536 --k 32 --steps 300
  python bench/routesae_torch.py --synthetic --layers 4 --d 64 ...   # planted home layer per row
  python bench/routesae_torch.py --check plugins/sae-routed/tests/golden/tiny_case.json

--check recomputes husai's tiny routed step (written by the sae-routed test `the_tiny_case_for_the_torch_peer_is_current`)
in float64 with autograd: the routes, the routing probabilities, the SAE's loss and gradients on the routed rows, and
the router's loss and gradient; exit 1 on a mismatch.
"""
import argparse
import json
import math
import sys
import time

import numpy as np
import torch

from torch_sae_common import after_step, auxk_loss


def load_bank(path, names):
    from safetensors.numpy import load_file
    t = load_file(path)
    names = names or sorted(t.keys(), key=lambda n: (n != "embeddings", n))
    return np.stack([t[n].astype(np.float32) for n in names], axis=1), names  # [rows, L, d]


def synthetic(rows, layers, d, m, k, seed):
    """Each row has a home layer holding a sparse code over its own group of atoms; other layers are noise of the
    same expected norm. Atoms of a group share a direction, so a linear router can see the home layer."""
    g = np.random.default_rng(seed)
    per = m // layers
    centers = g.standard_normal((layers, d))
    atoms = np.concatenate([centers[l] + 0.8 * g.standard_normal((per, d)) for l in range(layers)])
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    home = g.integers(0, layers, rows)
    x = np.empty((rows, layers, d), np.float32)
    for r in range(rows):
        c = g.exponential(1.0, k) + 0.5
        sig = c @ atoms[home[r] * per + g.choice(per, k, replace=False)]
        noise = g.standard_normal((layers, d)) * (np.linalg.norm(sig) / math.sqrt(d))
        noise[home[r]] = sig + 0.05 * g.standard_normal(d)
        x[r] = noise
    return x, home


def check(path):
    case = json.load(open(path))
    L, d, d_sae, k, rows = case["layers"], case["d_in"], case["d_sae"], case["k"], case["rows"]
    t = lambda name, shape: torch.tensor(case[name], dtype=torch.float64).view(*shape).requires_grad_(True)
    x = torch.tensor(case["x"], dtype=torch.float64).view(rows, L, d)
    W_r = t("W_router", (L, d))
    scale = torch.tensor(case["layer_scale"], dtype=torch.float64)
    W_enc, b_enc = t("W_enc", (d, d_sae)), t("b_enc", (d_sae,))
    W_dec, b_dec = t("W_dec", (d_sae, d)), t("b_dec", (d,))
    xs = x * scale[None, :, None]
    p = torch.softmax(xs.sum(1) @ W_r.t(), dim=-1)
    pmax, layer = p.max(-1)
    if layer.tolist() != case["layer"]:
        print(f"routes differ: {layer.tolist()} vs {case['layer']}", file=sys.stderr)
        return 1
    u = xs[torch.arange(rows), layer]
    pre = (u - b_dec) @ W_enc + b_enc
    vals, idx = torch.topk(pre, k, dim=1)
    x_hat = b_dec + (torch.relu(vals).unsqueeze(-1) * W_dec[idx]).sum(1)
    err = ((x_hat - u) ** 2).sum(-1)
    mse = err.mean()
    e = (err / (u ** 2).sum(-1)).detach()
    router_loss = (pmax * e).sum() / pmax.sum()
    (mse + router_loss).backward()
    worst = float(np.abs(p.detach().numpy().ravel() - np.array(case["p"])).max())
    for a, b in [(mse.item(), case["mse"]), (router_loss.item(), case["router_loss"])]:
        worst = max(worst, abs(a - b) / max(abs(b), 1e-6))
    for g, q in [("W_router", W_r), ("W_enc", W_enc), ("b_enc", b_enc), ("W_dec", W_dec), ("b_dec", b_dec)]:
        ours = np.array(case["grads"][g])
        scale_g = max(np.abs(ours).max(), 1e-6)
        worst = max(worst, float(np.abs(ours - q.grad.numpy().ravel()).max() / scale_g))
    ok = worst < 1e-4
    print(json.dumps({"check": "routesae", "mse_torch": mse.item(), "mse_husai": case["mse"],
                      "router_loss_torch": router_loss.item(), "router_loss_husai": case["router_loss"],
                      "max_relative_difference": worst, "ok": ok}))
    return 0 if ok else 1


def train(a):
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    if a.synthetic:
        xs, home = synthetic(a.rows, a.layers, a.d, a.synth_atoms, a.synth_k, a.seed)
        names = [f"layer_{l}" for l in range(a.layers)]
    else:
        xs, names = load_bank(a.bank, a.tensors)
        home = None
    rows, L, d = xs.shape
    n_eval = a.eval_rows or int(math.ceil(rows * 0.2))
    tr, ev = torch.from_numpy(xs[: rows - n_eval]), torch.from_numpy(xs[rows - n_eval:])
    scale = torch.sqrt(d / (tr ** 2).sum(-1).mean(0))  # [L]
    tr, ev = tr * scale[None, :, None], ev * scale[None, :, None]
    d_sae, k, batch = a.d_sae, a.k, a.batch
    bound = 1.0 / math.sqrt(d)
    W_r = torch.empty(L, d).uniform_(-bound, bound).requires_grad_(True)
    W_dec = torch.empty(d_sae, d).uniform_(-bound, bound)
    W_dec = W_dec / W_dec.norm(dim=1, keepdim=True) * a.dec_init_norm
    W_enc = W_dec.t().clone().requires_grad_(True)
    W_dec.requires_grad_(True)
    b_enc = torch.zeros(d_sae, requires_grad=True)
    b_dec = torch.zeros(d, requires_grad=True)
    sae_params = [W_enc, b_enc, W_dec, b_dec]
    opt = torch.optim.Adam(sae_params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    opt_r = torch.optim.Adam([W_r], lr=a.router_lr or a.lr, betas=(0.9, 0.999), eps=1e-8)
    k_aux = min(d // 2, d_sae)
    since_fired = torch.zeros(d_sae, dtype=torch.long)
    n_train = tr.shape[0]

    def route(x):
        p = torch.softmax(x.sum(1) @ W_r.t(), dim=-1)
        pmax, layer = p.max(-1)
        return p, pmax, layer, x[torch.arange(x.shape[0]), layer]

    def sae(u):
        pre = (u - b_dec) @ W_enc + b_enc
        vals, idx = torch.topk(pre, k, dim=1)
        vals = torch.relu(vals)
        x_hat = b_dec + (vals.unsqueeze(-1) * W_dec[idx]).sum(1)
        return pre, vals, idx, x_hat

    def step(i):
        nonlocal since_fired
        s = (i * batch) % (n_train - batch + 1)
        x = tr[s:s + batch]
        p, pmax, layer, xl = route(x)
        if a.router == "paper":
            u = pmax.unsqueeze(-1) * xl
            pre, vals, idx, x_hat = sae(u)
            loss = (((x_hat - u) ** 2).sum(-1) / (u ** 2).sum(-1)).mean()
            target = u
        else:
            u = xl
            pre, vals, idx, x_hat = sae(u)
            err = ((x_hat - u) ** 2).sum(-1)
            loss = err.mean()
            e = (err / (u ** 2).sum(-1).clamp_min(1e-12)).detach()
            loss = loss + (pmax * e).sum() / pmax.sum()
            target = u
        loss = loss + auxk_loss(pre, since_fired, a.dead_window, k_aux, W_dec, target - x_hat, a.aux_coeff)
        opt.zero_grad(set_to_none=True)
        opt_r.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(sae_params, a.grad_clip)
        opt.step()
        opt_r.step()
        since_fired = after_step(W_dec, idx, vals, since_fired)

    step(0)
    t0 = time.perf_counter()
    for i in range(1, a.steps + 1):
        step(i)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        p, pmax, layer, xl = route(ev)
        u = pmax.unsqueeze(-1) * xl if a.router == "paper" else xl
        _, vals, idx, x_hat = sae(u)
        entropy = float(-(p * p.clamp_min(1e-30).log()).sum(-1).mean())
        out = {"impl": f"torch-{torch.__version__}-eager", "arch": "routesae", "router": a.router,
               "threads": a.threads, "layers": names, "d_in": d, "d_sae": d_sae, "k": k, "batch": batch,
               "steps": a.steps, "seconds": round(seconds, 4), "rows_per_s": round(a.steps * batch / seconds, 1),
               "eval_rows": int(ev.shape[0]), "router_entropy": entropy, "ln_layers": math.log(L),
               "fvu": float(((x_hat - u) ** 2).sum() / ((u - u.mean(0)) ** 2).sum()),
               "l0": float((vals > 0).sum(1).float().mean())}
        for l, n in enumerate(names):
            sel = layer == l
            out[f"share_{n}"] = float(sel.float().mean())
            if int(sel.sum()) > 1:
                ul = u[sel]
                out[f"fvu_{n}"] = float(((x_hat[sel] - ul) ** 2).sum() / ((ul - ul.mean(0)) ** 2).sum())
        if home is not None:
            out["routed_to_home"] = float((layer.numpy() == home[rows - n_eval:]).mean())
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", help="compare with husai's tiny routed step in this case file, then exit")
    ap.add_argument("--bank", help="multi-layer .safetensors bank: one [rows, d] tensor per layer")
    ap.add_argument("--tensors", nargs="*", help="layers to route over (default: every tensor)")
    ap.add_argument("--synthetic", action="store_true", help="a planted multi-layer bank instead of --bank")
    ap.add_argument("--rows", type=int, default=8192)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--synth-atoms", type=int, default=256)
    ap.add_argument("--synth-k", type=int, default=4)
    ap.add_argument("--eval-rows", type=int, default=0, help="last rows held out (0: 20 %%)")
    ap.add_argument("--router", choices=["weighted", "paper"], default="weighted")
    ap.add_argument("--d-sae", type=int, default=1536)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=300, help="timed steps (one untimed warm-up step runs first)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--router-lr", type=float, default=0.0, help="0: --lr")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dead-window", type=int, default=1000)
    ap.add_argument("--aux-coeff", type=float, default=1.0 / 32)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--dec-init-norm", type=float, default=0.1)
    a = ap.parse_args()
    if a.check:
        sys.exit(check(a.check))
    if not a.synthetic and not a.bank:
        ap.error("--bank is required (or --synthetic)")
    train(a)


if __name__ == "__main__":
    main()

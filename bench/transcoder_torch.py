#!/usr/bin/env python3
"""PyTorch eager peer of husai's transcoder-stress fit (plugins/eval-transcoder-stress/src/fit.rs), the same maths
written the way a careful PyTorch user would: dense pre-activations, torch.topk, a scattered dense code, a dense
decode, autograd, torch.optim.Adam, decoder rows renormalised under no_grad.

One TopK encoder-decoder from rows x to targets t: the transcoder's target is y, the SAE's is x itself.
  pre = x W_enc^T + b_enc                 W_enc [m, d_in]
  z   = the k largest entries of relu(pre), scattered into a dense [rows, m] code (zeros elsewhere: only strictly
        positive entries carry a value or a gradient, as husai's ReLU-then-top-k; ties may break differently)
  t^  = b_dec + z W_dec                   W_dec [m, d_out], unit-norm rows
  loss = sum((t^ - t)^2) / (rows * d_out)
Adam (lr, 0.9, 0.999, 1e-8; torch.optim.Adam is the update husai copies), then every W_dec row back to unit norm.
Init: W_enc uniform in +-sqrt(6 / d_in), W_dec rows standard normal scaled to unit norm, b_enc = 0, b_dec = the
mean training target (the same laws as husai; not the same draws). Each epoch a fresh random order of the training
rows, batches of --batch rows, the last partial batch kept.

Rows as bench/../examples/fit_bench.rs: x and y divided by their RMS over the training rows; the last
round(0.2 * rows) rows held out. One JSON line per method with rows_per_s = rows_seen / wall_s, where wall_s covers
the initialisation and every step (as husai's Fitted.wall_s); one warm-up step on a throwaway model runs first,
untimed, so the peer's one-off costs (allocator, lazy kernels) are not counted against it.

  python bench/transcoder_torch.py --x X.npy --y Y.npy --d-sae 256 --k 32 --epochs 5 --lr 1e-3 --batch 512 \
      --seed 0 --threads 2
"""
import argparse
import json
import math
import time

import numpy as np
import torch


def init(d_in, d_out, d_sae, b_dec_init, gen):
    bound = math.sqrt(6.0 / d_in)
    W_enc = (torch.rand(d_sae, d_in, generator=gen) * 2 - 1).mul_(bound).requires_grad_(True)
    W_dec = torch.randn(d_sae, d_out, generator=gen)
    W_dec = (W_dec / W_dec.norm(dim=1, keepdim=True)).requires_grad_(True)
    b_enc = torch.zeros(d_sae, requires_grad=True)
    b_dec = b_dec_init.clone().requires_grad_(True)
    return W_enc, b_enc, W_dec, b_dec


def forward(params, x, k):
    W_enc, b_enc, W_dec, b_dec = params
    pre = torch.addmm(b_enc, x, W_enc.t())
    vals, idx = torch.topk(torch.relu(pre), k, dim=1)
    z = torch.zeros_like(pre).scatter(1, idx, vals)
    return torch.addmm(b_dec, z, W_dec)


def fit(tr_x, tr_t, ho_x, ho_t, a, seed, warmup):
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    n, d_in = tr_x.shape
    d_out = tr_t.shape[1]
    k = min(a.k, a.d_sae)
    b_dec0 = tr_t.double().mean(0).float()
    params = init(d_in, d_out, a.d_sae, b_dec0, gen)
    opt = torch.optim.Adam(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    W_dec = params[2]
    steps = rows_seen = 0
    final_loss = float("nan")
    for _ in range(1 if warmup else a.epochs):
        order = torch.randperm(n, generator=gen)
        total, count = 0.0, 0
        for s in range(0, n, a.batch):
            rows = order[s:s + a.batch]
            xb, tb = tr_x.index_select(0, rows), tr_t.index_select(0, rows)
            loss = torch.nn.functional.mse_loss(forward(params, xb, k), tb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                W_dec.div_(W_dec.norm(dim=1, keepdim=True))
            steps += 1
            rows_seen += rows.numel()
            total += loss.item()
            count += 1
            if warmup:
                return None
        final_loss = total / max(count, 1)
        if not math.isfinite(final_loss):
            raise SystemExit(f"the loss became {final_loss}; lower lr")
    wall = time.perf_counter() - t0
    with torch.no_grad():
        pred = forward(params, ho_x, k).double()
        t = ho_t.double()
        fvu = float(((pred - t) ** 2).sum() / ((t - t.mean(0)) ** 2).sum())
    return {"rows_per_s": rows_seen / wall, "wall_s": wall, "fvu": fvu, "steps": steps, "rows_seen": rows_seen,
            "final_loss": final_loss}


def scaled(m, n):
    rms = math.sqrt(float((m[:n].astype(np.float64) ** 2).mean()))
    return torch.from_numpy(m * np.float32(1.0 / rms))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--x", required=True, help="[rows, d_in] .npy")
    ap.add_argument("--y", required=True, help="[rows, d_out] .npy")
    ap.add_argument("--d-sae", type=int, default=256)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x = np.ascontiguousarray(np.load(a.x), dtype=np.float32)
    y = np.ascontiguousarray(np.load(a.y), dtype=np.float32)
    rows = x.shape[0]
    assert y.shape[0] == rows, f"x has {rows} rows, y has {y.shape[0]}"
    held = int(round(rows * 0.2))
    n = rows - held
    x, y = scaled(x, n), scaled(y, n)
    for method, t in [("transcoder", y), ("sae", x)]:
        args = (x[:n], t[:n], x[n:], t[n:], a)
        fit(*args, a.seed + 12345, warmup=True)
        out = {"impl": f"torch-{torch.__version__}-eager", "method": method}
        out.update(fit(*args, a.seed, warmup=False))
        out.update({"threads": torch.get_num_threads(), "train_rows": n, "held_rows": held, "d_in": x.shape[1],
                    "d_out": t.shape[1], "d_sae": a.d_sae, "k": a.k, "epochs": a.epochs, "batch": a.batch,
                    "lr": a.lr, "seed": a.seed})
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()

"""Time to grok of the toy modular-addition model in PyTorch eager, the same model, init law and optimiser as
plugins/toy-modadd (husai's Rust version, timed by `target/release/examples/grok_time`).

h = E[a] + E[b]; r = h + W_out·ReLU(W_in·h + b_in); logits = Uᵀr; cross-entropy on c = (a + b) mod p; full-batch
AdamW (decoupled weight decay 1.0, lr 3e-3, betas (0.9, 0.98)); 30 % of the p² pairs trained on.

With --token-tables the same function is computed as husai computes it (plugins/toy-modadd/src/step.rs):
P = E·W_inᵀ, Q = E·U, M = W_outᵀ·U, hidden = ReLU(P[a] + P[b] + b_in), logits = Q[a] + Q[b] + hidden·M, with autograd
for the backward pass (no symmetric-pair deduplication). It is there to show how much of husai's lead is that
algebra rather than the implementation; the peer of record is the plain eager form.

Usage: python bench/toy_grok_torch.py [--p 113] [--d 128] [--width 512] [--steps 1500] [--threads 2] [--seed 0]
                                      [--token-tables]
Prints one JSON line (same keys as grok_time).
"""
import argparse
import json
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--p", type=int, default=113)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stop-at-grok", action="store_true")
    ap.add_argument("--token-tables", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(a.seed)
    p, d, w = a.p, a.d, a.width
    E = (torch.randn(p, d, generator=g) / d**0.5).requires_grad_()
    U = (torch.randn(d, p, generator=g) / d**0.5).requires_grad_()
    W_in = ((torch.rand(w, d, generator=g) * 2 - 1) / d**0.5).requires_grad_()
    b_in = ((torch.rand(w, generator=g) * 2 - 1) / d**0.5).requires_grad_()
    W_out = ((torch.rand(d, w, generator=g) * 2 - 1) / w**0.5).requires_grad_()
    params = [E, W_in, b_in, W_out, U]
    opt = torch.optim.AdamW(params, lr=3e-3, betas=(0.9, 0.98), eps=1e-8, weight_decay=1.0)
    pairs = torch.cartesian_prod(torch.arange(p), torch.arange(p))
    perm = torch.randperm(p * p, generator=g)
    n_train = round(p * p * 0.3)
    train, test = pairs[perm[:n_train]], pairs[perm[n_train:]]

    def logits(x):
        if a.token_tables:
            P, Q, M = E @ W_in.T, E @ U, W_out.T @ U
            hidden = torch.relu(P[x[:, 0]] + P[x[:, 1]] + b_in)
            return Q[x[:, 0]] + Q[x[:, 1]] + hidden @ M
        h = E[x[:, 0]] + E[x[:, 1]]
        r = h + torch.relu(h @ W_in.T + b_in) @ W_out.T
        return r @ U

    y_train = (train[:, 0] + train[:, 1]) % p
    y_test = (test[:, 0] + test[:, 1]) % p
    start = time.perf_counter()
    grok_s, grok_step, acc = None, None, 0.0
    for step in range(1, a.steps + 1):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(logits(train), y_train)
        loss.backward()
        opt.step()
        if step % a.eval_every == 0 or step == a.steps:
            with torch.no_grad():
                acc = (logits(test).argmax(-1) == y_test).float().mean().item()
            if grok_s is None and acc >= 0.99:
                grok_s, grok_step = time.perf_counter() - start, step
                if a.stop_at_grok:
                    break
    total = time.perf_counter() - start
    print(json.dumps({"impl": "pytorch-eager" + ("-token-tables" if a.token_tables else ""), "p": p, "d": d, "width": w, "threads": a.threads,
                      "grok_step": grok_step, "grok_seconds": grok_s, "total_seconds": total, "steps": step,
                      "test_acc": acc, "torch": torch.__version__}))


if __name__ == "__main__":
    main()

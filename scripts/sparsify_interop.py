#!/usr/bin/env python3
"""Checks that EleutherAI sparsify loads `husai-audit export sparsify` output and reproduces husai's FVU.

Loads OUT/ with sparsify.SparseCoder.load_from_disk, runs its forward pass on the train run's held-out rows (the
rows the run's signed `metrics.eval.fvu` was computed on) and compares sparsify's FVU with the signed one. It also
compares sparsify's top-k latents on those rows with husai's `data encode` output (dense [rows, d_sae]). Prints one
JSON report; exit 0 when both agree within tolerance, 1 otherwise.
"""

import argparse
import json
import sys

import numpy as np
import torch
from sparsify import SparseCoder


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--export", required=True, help="directory written by husai-audit export sparsify")
    ap.add_argument("--run", required=True, help="the train run directory it was exported from")
    ap.add_argument("--data", required=True, help="the activation bank (.npy) the run trained on")
    ap.add_argument("--train-json", required=True, help="husai-audit train --json output of that run")
    ap.add_argument("--ours", required=True, help="husai-audit data encode output for the held-out rows")
    ap.add_argument("--fvu-rtol", type=float, default=1e-4)
    ap.add_argument("--act-tol", type=float, default=1e-4)
    args = ap.parse_args()

    metrics = json.load(open(args.train_json))["metrics"]["eval"]
    start, end = metrics["rows"]["start"], metrics["rows"]["end"]
    if metrics.get("source") not in (None, "activations"):
        print(f"FAIL: held-out rows come from {metrics['source']}, not the bank", file=sys.stderr)
        return 1

    sae = SparseCoder.load_from_disk(args.export, device="cpu")
    x = torch.from_numpy(np.array(np.load(args.data, mmap_mode="r")[start:end], dtype=np.float32))
    with torch.no_grad():
        out = sae(x)
    theirs_fvu = float(out.fvu)
    ours_fvu = float(metrics["fvu"])
    rel = abs(theirs_fvu - ours_fvu) / max(abs(ours_fvu), 1e-12)

    dense = np.zeros((x.shape[0], sae.num_latents), dtype=np.float32)
    np.put_along_axis(dense, out.latent_indices.numpy(), out.latent_acts.numpy(), axis=1)
    ours = np.load(args.ours)
    shape_ok = ours.shape == dense.shape
    act_diff = float(np.abs(dense - ours).max()) if shape_ok else float("inf")

    report = {
        "export": args.export,
        "rows": [start, end],
        "d_in": sae.d_in,
        "num_latents": sae.num_latents,
        "k": sae.cfg.k,
        "fvu_husai_signed": ours_fvu,
        "fvu_sparsify": theirs_fvu,
        "fvu_relative_difference": rel,
        "max_abs_latent_difference": act_diff,
        "sparsify_version": getattr(__import__("sparsify"), "__version__", "unknown"),
        "torch_version": torch.__version__,
    }
    ok = rel <= args.fvu_rtol and act_diff <= args.act_tol
    report["ok"] = ok
    print(json.dumps(report, indent=2))
    if not ok:
        print("FAIL: sparsify's FVU or latents differ from husai's beyond tolerance", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

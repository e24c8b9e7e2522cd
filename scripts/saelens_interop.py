#!/usr/bin/env python3
"""Check that a husai checkpoint (TopK, or BatchTopK saved as JumpReLU) loads in SAELens and encodes exactly like husai.

Loads the checkpoint directory (cfg.json + sae_weights.safetensors, e.g. a signed train run) with
sae_lens.SAE.load_from_disk, encodes the first --rows rows of the activation bank with SAELens, and compares the
result with husai's own encoder output for the same rows (written by `husai-audit data encode`).

Passes (exit 0) when the maximum absolute difference is within --tol. Prints one JSON line with the figures.
"""

import argparse
import json
import sys

import numpy as np
import torch
from sae_lens import SAE


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="directory with cfg.json and sae_weights.safetensors")
    ap.add_argument("--data", required=True, help="activation bank (.npy, [rows, d_in])")
    ap.add_argument("--ours", required=True, help="husai's encoder output (.npy, [rows, d_sae])")
    ap.add_argument("--rows", type=int, default=100)
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--arch", default="topk", help="the architecture SAELens must load the checkpoint as")
    args = ap.parse_args()

    sae = SAE.load_from_disk(args.checkpoint, device="cpu")
    arch = sae.cfg.architecture()
    if arch != args.arch:
        print(f"FAIL: SAELens loaded architecture {arch!r}, expected {args.arch!r}", file=sys.stderr)
        return 1

    # SAELens keeps cfg.json's metadata only when it carries sae_lens_version (v6 layout); check it survived the load.
    with open(f"{args.checkpoint}/cfg.json") as f:
        written = json.load(f)["metadata"]
    if "sae_lens_version" not in written:
        print(f"FAIL: cfg.json metadata has no sae_lens_version ({sorted(written)}); SAELens would read it as pre-6.0",
              file=sys.stderr)
        return 1
    kept = sae.cfg.metadata.to_dict() if hasattr(sae.cfg.metadata, "to_dict") else dict(vars(sae.cfg.metadata))
    for key, value in written.items():
        if key not in kept or kept[key] != value:
            print(f"FAIL: SAELens dropped or changed cfg.json metadata.{key} ({value!r} -> {kept.get(key, '<missing>')!r})",
                  file=sys.stderr)
            return 1

    # A writable copy: torch refuses to wrap a read-only memory map without a warning.
    x = np.array(np.load(args.data, mmap_mode="r")[: args.rows], dtype=np.float32)
    with torch.no_grad():
        theirs = sae.encode(torch.from_numpy(x)).numpy()
    ours = np.load(args.ours)
    if ours.shape != theirs.shape:
        print(f"FAIL: husai's output has shape {ours.shape}, SAELens's {theirs.shape}", file=sys.stderr)
        return 1

    diff = np.abs(theirs - ours)
    support_mismatch_rows = int(((theirs != 0) != (ours != 0)).any(axis=1).sum())
    report = {
        "checkpoint": args.checkpoint,
        "architecture": arch,
        "d_in": sae.cfg.d_in,
        "d_sae": sae.cfg.d_sae,
        "k": getattr(sae.cfg, "k", None),
        "threshold": float(sae.threshold.flatten()[0]) if hasattr(sae, "threshold") else None,
        "rows": int(x.shape[0]),
        "metadata_kept": sorted(written),
        "max_abs_diff": float(diff.max()),
        "max_abs_value": float(np.abs(theirs).max()),
        "rows_with_different_active_latents": support_mismatch_rows,
        "tolerance": args.tol,
        "sae_lens_version": __import__("sae_lens").__version__,
        "torch_version": torch.__version__,
    }
    ok = report["max_abs_diff"] <= args.tol
    report["result"] = "pass" if ok else "fail"
    print(json.dumps(report))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

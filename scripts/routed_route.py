#!/usr/bin/env python3
"""Route a multi-layer bank the way a sae-routed checkpoint documents it, from router.safetensors alone.

v = sum_l layer_scale[l] * x_l;  l* = argmax(W_router v);  the SAE's input is layer_scale[l*] * x_l*.

Routes the run's held-out rows (metrics.json eval.rows), checks that the share of rows sent to each layer equals
the run's own eval.share_<layer> (so this recipe is the router husai trained), and writes the first --rows routed
rows as a float32 .npy for the SAELens comparison (scripts/saelens_interop.py). Exit 1 on a mismatch.
"""
import argparse
import json
import sys

import numpy as np
from safetensors import safe_open


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a sae-routed run directory")
    ap.add_argument("--bank", required=True, help="the multi-layer .safetensors bank it was trained on")
    ap.add_argument("--out", required=True, help="routed rows (.npy) for the SAELens comparison")
    ap.add_argument("--rows", type=int, default=100)
    a = ap.parse_args()
    with safe_open(f"{a.run}/router.safetensors", "np") as f:
        meta = f.metadata()
        W, scale = f.get_tensor("W_router"), f.get_tensor("layer_scale")
    layers = json.loads(meta["layers"])
    m = json.load(open(f"{a.run}/metrics.json"))
    start, end = m["eval"]["rows"]["start"], m["eval"]["rows"]["end"]
    with safe_open(a.bank, "np") as f:
        x = np.stack([f.get_tensor(n)[start:end].astype(np.float32) for n in layers], axis=1)  # [rows, L, d]
    xs = x * scale[None, :, None]
    choice = np.argmax(xs.sum(1) @ W.T, axis=1)
    worst = 0.0
    for l, name in enumerate(layers):
        worst = max(worst, abs(float((choice == l).mean()) - m["eval"][f"share_{name}"]) * (end - start))
    routed = xs[np.arange(len(choice)), choice]
    np.save(a.out, np.ascontiguousarray(routed[: a.rows], dtype=np.float32))
    ok = worst <= 1.0  # a float tie may flip one row
    print(json.dumps({"layers": layers, "eval_rows": end - start, "max_share_difference_rows": worst, "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Time to grok: husai's toy model (plugins/toy-modadd, Rust) vs the same model in PyTorch eager
# (bench/toy_grok_torch.py), REPEATS runs each, 2 threads, under the bench lock, in rotation. Prints the JSON lines.
# The third line of each round is PyTorch computing through the same token tables as husai (--token-tables), to show
# how much of the lead is the algebra.
# Build first: cargo build --release -p husai-toy-modadd --examples
set -euo pipefail
repeats=${REPEATS:-3}
py=${PYTHON:-/work/venv-peer/bin/python}
args=(--stop-at-grok --threads 2 "$@")
for i in $(seq "$repeats"); do
  flock /tmp/husai-bench.lock target/release/examples/grok_time --seed 0 "${args[@]}"
  flock /tmp/husai-bench.lock "$py" bench/toy_grok_torch.py --seed 0 "${args[@]}"
  flock /tmp/husai-bench.lock "$py" bench/toy_grok_torch.py --seed 0 --token-tables "${args[@]}"
done

#!/usr/bin/env bash
# Verify husai envelopes with third-party tools only: securesystemslib, openssl and
# in-toto-attestation, from PyPI in a venv cached under target/ (docs/third-party-verify.md).
#   1. a committed run (signed before the key-id switch): securesystemslib given husai's key id;
#   2. a fresh run holding a file over one 64 MiB shard: securesystemslib by its default key id,
#      and plain sha256 on the big subject.
# Needs a built target/release/husai-audit (or HUSAI_AUDIT), python3 and openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/interop-venv
py=$venv/bin/python
if ! "$py" -c 'import securesystemslib, in_toto_attestation, cryptography' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'securesystemslib>=1,<2' 'in-toto-attestation>=0.9,<1' cryptography
fi
bin=$(realpath "${HUSAI_AUDIT:-target/release/husai-audit}")
here=$PWD
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# husai's key id for a key: sha256 of its SPKI DER, computable with openssl alone.
keyid=$(openssl pkey -pubin -in keys/ci.pub.pem -outform DER | sha256sum | cut -d' ' -f1)
run=$(find results -mindepth 3 -maxdepth 3 -name husai.dsse.json | sort | head -1)
echo "== committed run $(dirname "$run"), keyid $keyid"
"$py" scripts/interop_thirdparty.py --run "$(dirname "$run")" --pub keys/ci.pub.pem --keyid "$keyid"

echo "== fresh run with a 65 MiB file"
cd "$scratch"
"$bin" keygen me >/dev/null
"$bin" trust add me.pub.pem --role developer >/dev/null
mkdir out
head -c $((65 << 20)) /dev/zero > out/big.bin
echo '{"ok": true}' > out/small.json
"$bin" attest out --campaign interop --kind external --key me.pem >/dev/null
cd "$here"
"$py" scripts/interop_thirdparty.py --run "$(echo "$scratch"/results/interop/*)" --pub "$scratch/me.pub.pem" --expect-annotation
echo "third-party verification: ok"

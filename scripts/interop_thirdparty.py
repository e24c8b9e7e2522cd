"""Verify one husai run with third-party tools only (docs/third-party-verify.md).

1. securesystemslib: Envelope.verify with the run's public key, by its default key id, or with
   --keyid (husai's key id, sha256 of the SPKI DER) for runs signed before husai switched.
2. openssl: the plain ed25519 signature over the DSSE pre-authentication encoding.
3. in-toto-attestation: the payload parses as an in-toto Statement v1 and validates; every
   subject's sha256 matches the file next to the envelope (hashlib, no husai code).
"""

import argparse
import base64
import hashlib
import json
import pathlib
import subprocess
import sys
import tempfile

from cryptography.hazmat.primitives.serialization import load_pem_public_key
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True, type=pathlib.Path)
    ap.add_argument("--pub", required=True, type=pathlib.Path)
    ap.add_argument("--keyid", help="key id to give securesystemslib (default: its own)")
    ap.add_argument("--expect-annotation", action="store_true",
                    help="require at least one subject with a husai.dev/sha256-sharded annotation")
    a = ap.parse_args()

    env_json = json.loads((a.run / "husai.dsse.json").read_text())
    # 1. securesystemslib
    key = SSlibKey.from_crypto(load_pem_public_key(a.pub.read_bytes()), keyid=a.keyid)
    env = Envelope.from_dict(json.loads((a.run / "husai.dsse.json").read_text()))
    accepted = env.verify([key], 1)
    assert key.keyid in accepted, accepted
    print(f"securesystemslib: signature verifies under keyid {key.keyid}"
          + (" (given)" if a.keyid else " (its default)"))

    # 2. openssl
    payload = base64.b64decode(env_json["payload"])
    with tempfile.TemporaryDirectory() as d:
        msg, sig = pathlib.Path(d, "pae.bin"), pathlib.Path(d, "sig.bin")
        msg.write_bytes(pae(env_json["payloadType"], payload))
        sig.write_bytes(base64.b64decode(env_json["signatures"][0]["sig"]))
        out = subprocess.run(
            ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(a.pub), "-rawin",
             "-in", str(msg), "-sigfile", str(sig)],
            capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
        print("openssl: " + out.stdout.strip())

    # 3. in-toto-attestation
    st = Statement.copy_from_pb(json_format.Parse(payload, statement_pb2.Statement()))
    st.validate()
    annotated = 0
    for s in st.pb.subject:
        assert "sha256" in s.digest, f"subject {s.name} has no sha256: {dict(s.digest)}"
        h = hashlib.sha256()
        with open(a.run / s.name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        assert h.hexdigest() == s.digest["sha256"], s.name
        annotated += "husai.dev/sha256-sharded" in s.annotations
    assert not a.expect_annotation or annotated, "no subject carries a sharded annotation"
    print(f"in-toto-attestation: Statement v1 valid; {len(st.pb.subject)} subjects match their "
          f"sha256 ({annotated} also annotated with husai.dev/sha256-sharded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

# Sourced by the interop scripts: a throwaway signing key in the current directory, trusted by ./keys, so that the
# runs they make verify (data encode and export verify the run they read). Needs openssl for the key id (the
# sha256 of the public key's SPKI DER, as husai computes it).
"$bin" keygen interop >/dev/null
mkdir -p keys
cp interop.pub.pem keys/
keyid=$(openssl pkey -pubin -in interop.pub.pem -outform DER | sha256sum | cut -d' ' -f1)
cat >keys/trust-policy.json <<POLICY
{"schema_version": "1.0",
 "keys": [{"keyid": "$keyid", "public_key": "interop.pub.pem", "roles": ["ci"],
           "not_before": "2020-01-01T00:00:00Z", "not_after": null, "revoked": null}]}
POLICY

#!/usr/bin/env bash
# Regenerate the DEMO trust material in keys/demo/. Demo only: these private keys are public
# (they are in git). Never pin demo roots on a real checkpoint.
#
#   keys/demo/regenerate.sh            (uses .venv/bin/passgate, else passgate on PATH)
set -euo pipefail
cd "$(dirname "$0")"
PG=../../.venv/bin/passgate
[ -x "$PG" ] || PG=$(command -v passgate)
rm -rf roots issuers time demo-bundle.pgb revoked.txt
for who in alice bob carol; do
    "$PG" keys new-root --out "roots/$who" >/dev/null
    mv "roots/$who/root.key" "roots/demo-root-$who.key"
    mv "roots/$who/root.pub" "roots/demo-root-$who.pub"
    rmdir "roots/$who"
done
# The pinned form of the set (what a device stores): 2 of 3.
"${PG%/passgate}/python" -c 'import sys; from passgate.bundle import RootSet; sys.stdout.write(RootSet.load(sys.argv[1], threshold=2).to_toml())' roots > roots.toml
mv roots.toml roots/roots.toml
"$PG" keys new-issuer --out issuers --name "DEMO" >/dev/null
mv issuers/issuer.key issuers/demo-issuer.key
mv issuers/issuer.pub issuers/demo-issuer.pub
mv issuers/issuer.toml issuers/demo-issuer.toml
"$PG" keys new-time --out time >/dev/null
mv time/time.key time/demo-time.key
mv time/time.pub time/demo-time.pub
printf '# demo revocation list: one hex pass id per line\n0123456789abcdef01234567\n' > revoked.txt
"$PG" bundle build --root roots/demo-root-alice.key --root roots/demo-root-bob.key \
    --issuers issuers --revoked revoked.txt --policy ../../docs/policy.example.toml \
    --version 1 --issued 2026-01-01T00:00:00Z --expires 2036-01-01T00:00:00Z \
    --out demo-bundle.pgb
"$PG" bundle inspect demo-bundle.pgb --roots roots

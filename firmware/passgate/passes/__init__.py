"""The pass and its offline check: everything `passgate verify` needs.

``base45`` and ``cose`` (the envelope), ``format`` (PG1 text -> claims), ``keys`` (Ed25519 key
files, key ids, refusal of weak keys), ``purposes`` (the purpose table), ``revocation`` (the
revoked-id list), ``truststore`` (keys + revocations + purposes a checkpoint trusts), ``verify``
(``Verifier.check(text, now, zone) -> Verdict``, never raises) and ``verdict`` (the result types).

The lowest layer of the package: it imports nothing of passgate but ``errors`` and ``util``,
and no hardware library, no numpy, no socket.
"""

"""The issuer's tools: sign passes (``issuer``), many at once from a CSV (``batch``), draw and
read them as QR images (``qr``). Built on :mod:`passgate.passes`; the checkpoint never imports it
(only the simulation does, to make its demo passes).
"""

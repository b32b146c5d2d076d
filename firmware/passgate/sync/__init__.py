"""The sync agent: a separate process that moves the journal out and trust data and time in.

The scanner never touches the network; this package runs as ``passgate sync`` under its own
user. Modules: ``devicekey`` (the device's Ed25519 identity), ``backoff`` (retry delays),
``state`` (the JSON file the idle screen reads), ``client`` (HTTP to the collector) and
``agent`` (the upload / bundle / time loop).
"""

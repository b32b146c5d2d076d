"""The sync agent: a separate process that moves the journal out and trust data and time in.

The scanner never touches the network; this package runs as ``passgate sync`` under its own
user (docs/sync-protocol.md). Modules: ``devicekey`` (the device's Ed25519 identity),
``enrolment`` (the one-time-token registration, retried when the first boot is offline),
``backoff`` (retry delays with jitter), ``transport`` (HTTP over the standard library),
``client`` (the collector's API as typed replies and errors), ``agent`` (the upload / bundle /
heartbeat loop), ``hooks`` (adapters to the installed bundle and the clock floor) and
``state`` (the JSON file the scanner's idle screen reads).
"""

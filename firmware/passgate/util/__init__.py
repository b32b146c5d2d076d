"""Small helpers every layer may use: atomic file writes, durations and instants as text.

Nothing here knows about passes, the checkpoint or the network.
"""

"""Time and how far the checkpoint trusts it.

``clock`` reads wall time with its trust state (``SystemClock.read() -> TimeReading``),
``store`` persists the clock floor, ``sources`` says whether NTP or an RTC vouch for the
kernel clock, ``tokens`` are the signed time tokens the sync agent brings.
"""

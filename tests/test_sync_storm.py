"""Reconnect storms, device side: a saturated collector's 503 + Retry-After is honoured.

Rules checked: the agent waits at least ``Retry-After`` (never earlier), jittered upwards so a
district told "30 s" at once does not come back in the same second; the rows stay pending
(nothing marked, nothing dead-lettered); the hint is capped. The agent runs with its real
``CollectorClient`` over a fake transport that answers like a saturated collector.
"""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from passgate.journal.journal import Journal
from passgate.sync.agent import SyncAgent
from passgate.sync.backoff import Backoff
from passgate.sync.client import CollectorClient
from passgate.sync.devicekey import DeviceKey
from passgate.sync.transport import Request, Response
from sync_support import HASH_KEY, T0, fill_journal


class SaturatedCollector:
    """A transport whose collector answers every request 503 with ``Retry-After``."""

    def __init__(self, retry_after: str = "30") -> None:
        self.retry_after, self.requests = retry_after, []

    def send(self, request: Request) -> Response:
        self.requests.append(request)
        return Response(503, b"", {"retry-after": self.retry_after})


@pytest.fixture
def journal(tmp_path):
    fill_journal(tmp_path / "j.sqlite", 300, device_id="gate-1")
    j = Journal(tmp_path / "j.sqlite", HASH_KEY, "gate-1")
    yield j
    j.close()


def agent_for(journal, transport, rand) -> SyncAgent:
    key = Ed25519PrivateKey.generate()
    client = CollectorClient("http://collector.invalid", "gate-1",
                             DeviceKey(key, key.public_key().public_bytes_raw()),
                             now=lambda: T0, transport=transport)
    return SyncAgent(journal, client, now=lambda: T0,
                     backoff=Backoff(base=2, cap=300, rand=rand))


def test_503_retry_after_is_waited_with_upward_jitter_and_rows_stay_pending(journal):
    transport = SaturatedCollector("30")
    delays = []
    for i in range(50):
        result = agent_for(journal, transport, random.Random(i).random).run_round()
        assert not result.ok and result.error and "503" in result.error
        delays.append(result.delay)
    assert all(30 <= d <= 45 for d in delays)  # never earlier than asked, at most +50%
    assert max(delays) - min(delays) > 7  # spread: the fleet does not return in one second
    assert len({round(d, 3) for d in delays}) > 40
    assert journal.pending_count() == 300 and journal.dead_letter_count() == 0
    assert len(transport.requests) == 50  # one attempt per round: no tight resend loop


def test_a_huge_retry_after_is_capped(journal):
    agent = agent_for(journal, SaturatedCollector("999999999"), lambda: 0.9)
    assert agent.run_round().delay == 3600


def test_without_retry_after_the_backoff_alone_decides(journal):
    agent = agent_for(journal, SaturatedCollector(""), lambda: 0.5)
    assert agent.run_round().delay == 1.0  # half of the first 2 s step

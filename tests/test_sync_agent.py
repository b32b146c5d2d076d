"""The sync agent's policy, against a real journal and a scripted collector client.

The end-to-end behaviour (real collector, faults on the wire) is in test_sync_faults.py;
here each rule of docs/sync-protocol.md section 4 is checked on its own: what gets marked,
what gets dead-lettered, what stays pending, when the agent backs off, what it logs.
"""

from __future__ import annotations

import logging

import pytest

from passgate.errors import TrustError
from passgate.journal.journal import Journal
from passgate.journal.syncstate import OFFLINE, ONLINE, read_state
from passgate.sync.agent import SyncAgent
from passgate.sync.backoff import Backoff
from passgate.sync.client import (
    BatchReply,
    BundleReply,
    BundleTooLarge,
    Refused,
    RowResult,
    TooLarge,
    Transient,
)
from sync_support import HASH_KEY, T0, fill_journal


class ScriptedClient:
    """Answers ``upload`` with ``policy(rows) -> BatchReply`` or raises what ``errors`` yields."""

    def __init__(self, policy=None, errors=(), bundle=None):
        self.policy = policy or (lambda rows: [RowResult(r.seq, r.nonce, "stored") for r in rows])
        self.errors = list(errors)
        self.batches: list[tuple[bytes, list, dict]] = []
        self.bundle = bundle  # (version, data) published
        self.bundle_requests: list[int | None] = []
        self.hint: int | None = None

    def upload(self, prev_chain, rows, status):
        rows = list(rows)
        self.batches.append((prev_chain, rows, dict(status)))
        if self.errors:
            err = self.errors.pop(0)
            if err is not None:
                raise err
        return BatchReply(tuple(self.policy(rows)), self.hint)

    def fetch_bundle(self, have):
        self.bundle_requests.append(have)
        if self.bundle and (have is None or self.bundle[0] > have):
            return BundleReply(self.bundle[1], self.bundle[0])
        if self.bundle is None:  # the collector's 404 no_bundle
            return BundleReply(None, None, published=False)
        return BundleReply(None, self.bundle[0])


class FakeBundles:
    def __init__(self, version=None, refuse=False):
        self.version, self.refuse, self.installs = version, refuse, 0
        self.refreshes = []

    def installed(self):
        return None if self.version is None else (self.version, int(T0))

    def refreshed(self, now):
        self.refreshes.append(now)

    def install(self, data):
        self.installs += 1
        if self.refuse:
            raise TrustError("bundle signature does not verify")
        self.version = int(data.decode())
        return self.version


@pytest.fixture
def journal(tmp_path):
    path = tmp_path / "journal.sqlite"
    fill_journal(path, 1000)
    j = Journal(path, HASH_KEY, "gate-1")
    yield j
    j.close()


def make_agent(journal, client, tmp_path, **kw):
    kw.setdefault("backoff", Backoff(base=2, cap=300, rand=lambda: 0.5))
    kw.setdefault("now", lambda: T0 + 10_000)
    return SyncAgent(journal, client, state_file=tmp_path / "s.json", **kw)


def test_round_drains_oldest_first_in_consecutive_batches(journal, tmp_path):
    client = ScriptedClient()
    result = make_agent(journal, client, tmp_path, batch_size=300).run_round()
    assert result.ok and result.uploaded == 1000 and result.pending == 0
    seqs = [[r.seq for r in rows] for _, rows, _ in client.batches]
    # ... and a closing heartbeat, so the collector's health view shows the backlog gone.
    assert [len(s) for s in seqs] == [300, 300, 300, 100, 0]
    assert sum(seqs, []) == list(range(1, 1001))
    assert client.batches[-1][2]["backlog"] == 0
    # prev_chain is the chain of the row before each batch (zeros before the first row).
    assert client.batches[0][0] == bytes(32)
    assert client.batches[1][0] == client.batches[0][1][-1].chain
    assert client.batches[0][2]["backlog"] == 1000
    assert journal.pending_count() == 0 and journal.verify() is None
    state = read_state(tmp_path / "s.json")
    assert (state.connectivity, state.pending, state.last_error) == (ONLINE, 0, None)


def test_rejected_rows_are_dead_lettered_not_deleted(journal, tmp_path, caplog):
    def policy(rows):
        return [
            RowResult(r.seq, r.nonce, "rejected", "invalid_row")
            if r.seq % 100 == 7
            else RowResult(r.seq, r.nonce, "duplicate" if r.seq % 2 else "stored")
            for r in rows
        ]

    caplog.set_level(logging.INFO)
    result = make_agent(journal, ScriptedClient(policy), tmp_path).run_round()
    assert result.ok and (result.uploaded, result.dead_lettered) == (990, 10)
    dead = journal.dead_letters()
    assert [r.seq for r in dead] == [7 + 100 * i for i in range(10)]
    assert {r.dead_reason for r in dead} == {"invalid_row"}
    assert journal.pending_count() == 0 and journal.verify() is None  # kept, chain intact
    assert read_state(tmp_path / "s.json").dead_letters == 10
    # One line per batch, not per row.
    from passgate.sync.agent import DEFAULT_BATCH

    assert sum("dead letters" in r.message for r in caplog.records) == -(-1000 // DEFAULT_BATCH)


def test_rows_without_an_acknowledgement_stay_pending_and_the_agent_backs_off(journal, tmp_path):
    # A status value this device does not know means "not acknowledged".
    client = ScriptedClient(lambda rows: [RowResult(r.seq, r.nonce, "queued") for r in rows])
    result = make_agent(journal, client, tmp_path).run_round()
    assert not result.ok and result.delay > 0 and "acknowledged none" in result.error
    assert journal.pending_count() == 1000 and len(client.batches) == 1


def test_partly_acknowledged_batch_resends_the_gap_alone(journal, tmp_path):
    # "Not acknowledged" (a status this device does not know, e.g. a future "deferred")
    # means the collector wants the row later: resend it, alone so prev_chain stays exact,
    # and back off if it is still not taken rather than loop.
    def policy(rows):
        return [RowResult(r.seq, r.nonce, "later" if r.seq == 50 else "stored") for r in rows]

    client = ScriptedClient(policy)
    agent = make_agent(journal, client, tmp_path, batch_size=100)
    assert not agent.run_round().ok
    second_prev, second_rows, _ = client.batches[1]
    assert [r.seq for r in second_rows] == [50]
    assert second_prev == journal.chain_before(50)
    assert journal.pending_count() == 901  # nothing lost, nothing marked without an answer
    client.policy = lambda rows: [RowResult(r.seq, r.nonce, "stored") for r in rows]
    assert agent.run_round().ok and journal.pending_count() == 0


@pytest.mark.parametrize(
    "exc",
    [Transient("ConnectionRefusedError"), Transient("HTTP 503", 503), Transient("HTTP 429", 429)],
)
def test_transient_errors_keep_rows_and_back_off_exponentially(journal, tmp_path, exc):
    client = ScriptedClient(errors=[exc] * 4)
    agent = make_agent(
        journal, client, tmp_path, backoff=Backoff(base=2, cap=300, rand=lambda: 1.0)
    )
    delays = [agent.run_round().delay for _ in range(4)]
    assert delays == [2, 4, 8, 16]
    assert journal.pending_count() == 1000
    assert read_state(tmp_path / "s.json").connectivity == OFFLINE
    assert agent.run_round().ok and journal.pending_count() == 0
    assert agent.backoff.failures == 0


def test_retry_after_is_a_lower_bound(journal, tmp_path):
    client = ScriptedClient(errors=[Transient("HTTP 429", 429, "rate_limited", retry_after=90)])
    # rand() is 0.5 here: 90 s asked, plus half of the 50% upward jitter (issue 11).
    assert make_agent(journal, client, tmp_path).run_round().delay == 90 * 1.25


def test_permanent_batch_refusal_keeps_every_row_and_waits_at_the_cap(journal, tmp_path):
    client = ScriptedClient(errors=[Refused("HTTP 403 bad_signature", 403, "bad_signature")] * 3)
    agent = make_agent(journal, client, tmp_path)
    results = [agent.run_round() for _ in range(3)]
    assert all(not r.ok and 150 <= r.delay <= 300 for r in results)
    assert journal.pending_count() == 1000 and journal.dead_letter_count() == 0
    assert "bad_signature" in read_state(tmp_path / "s.json").last_error


def test_too_large_halves_the_batch(journal, tmp_path, caplog):
    client = ScriptedClient(errors=[TooLarge("HTTP 413", 413), TooLarge("HTTP 413", 413)])
    agent = make_agent(journal, client, tmp_path, batch_size=400)
    assert agent.run_round().ok and journal.pending_count() == 0
    assert agent.batch_size == 100 and [len(b[1]) for b in client.batches[:3]] == [400, 200, 100]


def test_empty_journal_sends_a_heartbeat(tmp_path):
    j = Journal(tmp_path / "j.sqlite", HASH_KEY, "gate-1")
    client = ScriptedClient()
    assert make_agent(j, client, tmp_path).run_round().ok
    assert len(client.batches) == 1 and client.batches[0][1] == []
    assert client.batches[0][2]["backlog"] == 0


def test_logs_transitions_only(journal, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="passgate.sync")
    client = ScriptedClient(errors=[Transient("ConnectionRefusedError")] * 5)
    agent = make_agent(journal, client, tmp_path, batch_size=50)
    for _ in range(6):
        agent.run_round()
    infos = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert infos[0].startswith("collector unreachable: ConnectionRefusedError")
    assert infos[1:] == ["collector back, uploaded 1000"]
    agent.run_round()  # a quiet good round logs nothing above debug
    assert len([r for r in caplog.records if r.levelno >= logging.INFO]) == 2


def test_newer_bundle_is_fetched_and_installed(journal, tmp_path):
    bundles = FakeBundles(version=3)
    client = ScriptedClient(bundle=(5, b"5"))
    client.hint = 5
    agent = make_agent(journal, client, tmp_path, bundle=bundles)
    assert agent.run_round().bundle_installed == 5
    assert client.bundle_requests == [3] and bundles.version == 5
    assert read_state(tmp_path / "s.json").bundle_version == 5
    assert bundles.refreshes == []
    agent.run_round()  # hint 5 <= installed 5: no request at all, but a successful refresh
    assert client.bundle_requests == [3] and bundles.refreshes == [T0 + 10_000]


def test_no_hint_asks_conditionally_and_a_failed_round_is_no_refresh(journal, tmp_path):
    bundles = FakeBundles(version=5)
    client = ScriptedClient(bundle=(5, b"5"), errors=[Transient("HTTP 503", 503)])
    agent = make_agent(journal, client, tmp_path, bundle=bundles)
    assert not agent.run_round().ok
    assert client.bundle_requests == [] and bundles.refreshes == []  # stale data stays stale
    assert agent.run_round().ok
    assert client.bundle_requests == [5] and bundles.refreshes == [T0 + 10_000]


def test_refused_bundle_keeps_the_old_one_and_is_not_fetched_again(journal, tmp_path, caplog):
    bundles = FakeBundles(version=3, refuse=True)
    client = ScriptedClient(bundle=(4, b"4"))
    client.hint = 4
    agent = make_agent(journal, client, tmp_path, bundle=bundles)
    r = agent.run_round()
    assert r.ok and r.bundle_installed is None and bundles.version == 3
    assert "bundle 4 from the collector refused" in caplog.text
    agent.run_round()
    assert bundles.installs == 1  # the same refused version is not downloaded again
    assert bundles.refreshes == []  # and the old bundle is not made to look fresh
    assert "bundle 4 refused" in read_state(tmp_path / "s.json").last_error  # visible, not lost
    client.bundle, client.hint = (6, b"6"), 6
    bundles.refuse = False
    assert agent.run_round().bundle_installed == 6
    assert read_state(tmp_path / "s.json").last_error is None


def test_oversized_bundle_is_a_bundle_refusal_not_a_dead_link(journal, tmp_path):
    bundles = FakeBundles(version=3)
    client = ScriptedClient(bundle=(9, b"9"))
    client.hint = 9

    def too_large(have):
        client.bundle_requests.append(have)
        raise BundleTooLarge("bundle larger than 67108864 bytes")

    client.fetch_bundle = too_large
    agent = make_agent(journal, client, tmp_path, bundle=bundles)
    assert agent.run_round().ok and agent.run_round().ok  # uploads go on; backoff untouched
    assert client.bundle_requests == [3] and bundles.installs == 0
    st = read_state(tmp_path / "s.json")
    assert st.connectivity == ONLINE and "bundle 9 refused" in st.last_error


def test_a_bundle_this_device_cannot_write_is_logged_once_and_the_rounds_go_on(
    journal, tmp_path, caplog
):
    import errno

    from passgate.sync.agent import BUNDLE_RETRY_S

    class FullDisk(FakeBundles):
        full = True

        def install(self, data):
            if self.full:
                self.installs += 1
                raise OSError(errno.ENOSPC, "No space left on device", "/srv/bundle/.x.tmp")
            return super().install(data)

    bundles, client, now = FullDisk(version=3), ScriptedClient(bundle=(4, b"4")), [T0]
    client.hint = 4
    agent = SyncAgent(
        journal, client, now=lambda: now[0], state_file=tmp_path / "s.json", bundle=bundles
    )
    r = agent.run_round()
    assert r.ok and r.bundle_installed is None and journal.pending_count() == 0
    now[0] += 60
    assert agent.run_round().ok
    assert bundles.installs == 1  # not downloaded again every round while the disk is full
    assert caplog.text.count("No space left on device") == 1
    assert "bundle 4 not installed" in read_state(tmp_path / "s.json").last_error
    bundles.full = False  # space freed: the same version installs at the next retry
    now[0] += BUNDLE_RETRY_S
    assert agent.run_round().bundle_installed == 4 and bundles.version == 4
    assert read_state(tmp_path / "s.json").last_error is None


def test_a_bundle_folder_under_a_regular_file_does_not_end_the_round(journal, tmp_path, caplog):
    from bundle_support import Fleet
    from passgate.sync.hooks import InstalledBundles

    (tmp_path / "file").write_text("a regular file where the state folder should be")
    bundles = InstalledBundles(tmp_path / "file" / "bundle", lambda: T0)
    client = ScriptedClient(bundle=(4, Fleet().bundle(4)))
    client.hint = 4
    agent = make_agent(journal, client, tmp_path, bundle=bundles)
    r = agent.run_round()
    assert r.ok and r.bundle_installed is None and journal.pending_count() == 0
    assert "bundle 4 not installed" in read_state(tmp_path / "s.json").last_error
    agent.run_round()
    assert caplog.text.count("Not a directory") == 2  # the header probe and the install, once


def test_a_refresh_that_cannot_be_recorded_does_not_end_the_round(journal, tmp_path, caplog):
    class ReadOnly(FakeBundles):
        def refreshed(self, now):
            raise OSError(30, "Read-only file system", "/srv/bundle/installed.json")

    client = ScriptedClient(bundle=(3, b"3"))
    client.hint = 3
    agent = make_agent(journal, client, tmp_path, bundle=ReadOnly(version=3))
    assert agent.run_round().ok and agent.run_round().ok
    assert caplog.text.count("Read-only file system") == 1


def test_stop_between_batches_leaves_the_rest_queued(journal, tmp_path):
    import threading

    stop = threading.Event()
    client = ScriptedClient()
    real = client.upload

    def upload(prev, rows, status):
        stop.set()  # SIGTERM arrives while the first batch is in flight
        return real(prev, rows, status)

    client.upload = upload
    make_agent(journal, client, tmp_path, batch_size=100).run(stop, lambda d: None)
    # One batch, then only the closing heartbeat telling the collector what is left.
    assert [len(b[1]) for b in client.batches] == [100, 0] and journal.pending_count() == 900
    assert client.batches[1][2]["backlog"] == 900


def test_retention_prunes_uploaded_rows_after_a_good_round(journal, tmp_path):
    # now = T0 + 10,000 s and rows are 7.25 s apart: rows 1..881 are older than one hour.
    client = ScriptedClient(
        lambda rows: [
            RowResult(r.seq, r.nonce, "stored")
            if r.seq <= 600
            else RowResult(r.seq, r.nonce, "rejected", "invalid_row")
            for r in rows
        ]
    )
    agent = make_agent(journal, client, tmp_path, retention_s=3600, batch_size=1000)
    assert agent.run_round().ok
    kept = journal.iter_since()
    assert [r.seq for r in kept][:1] == [601]  # uploaded 1..600 pruned
    assert journal.dead_letter_count() == 400  # dead letters never are
    assert journal.verify() is None  # the chain of what is left still checks


def test_prune_takes_the_prune_time_not_a_forward_jumped_clock(journal, tmp_path):
    """The device clock jumped a year ahead (untrusted): ``now`` would prune every uploaded
    row, anti-passback window included. The clock floor (T0 + 3700) is what pruning uses:
    only rows scanned before T0 + 100 (seqs 1..14, 7.25 s apart) are an hour old."""
    agent = make_agent(
        journal,
        ScriptedClient(),
        tmp_path,
        retention_s=3600,
        batch_size=1000,
        now=lambda: T0 + 365 * 86400,
        prune_time=lambda: T0 + 3700,
    )
    assert agent.run_round().ok
    assert [r.seq for r in journal.iter_since()][:1] == [15]


def test_no_prune_time_no_pruning(journal, tmp_path):
    agent = make_agent(
        journal, ScriptedClient(), tmp_path, retention_s=3600, prune_time=lambda: None
    )
    assert agent.run_round().ok
    assert len(list(journal.iter_since())) == 1000 and journal.pending_count() == 0


def test_run_loop_sleeps_interval_or_backoff_and_stops(journal, tmp_path):
    import threading

    stop = threading.Event()
    client = ScriptedClient(errors=[Transient("x"), None])
    agent = make_agent(
        journal, client, tmp_path, interval=60, backoff=Backoff(base=2, rand=lambda: 1.0)
    )
    slept = []

    def sleep(d):
        slept.append(d)
        if len(slept) == 3:
            stop.set()

    agent.run(stop, sleep)
    assert slept == [2, 60, 60]


def test_a_restarted_agent_keeps_the_last_success_when_its_first_round_fails(journal, tmp_path):
    # 'passgate sync --once' after a good run, with the collector down: the state must still
    # say when the last success was ('sync status' said "never").
    assert make_agent(journal, ScriptedClient(), tmp_path).run_round().ok
    good = read_state(tmp_path / "s.json")
    assert good.last_success is not None
    failing = ScriptedClient(errors=[Transient("ConnectionRefusedError")])
    assert not make_agent(journal, failing, tmp_path).run_round().ok
    st = read_state(tmp_path / "s.json")
    assert st.connectivity == OFFLINE and "ConnectionRefusedError" in st.last_error
    assert st.last_success == good.last_success


def test_no_bundle_published_is_no_refresh(journal, tmp_path):
    # The collector answers 404 no_bundle: it confirmed nothing, so the installed bundle's
    # age keeps counting (docs/sync-protocol.md section 5).
    bundles = FakeBundles(version=5)
    client = ScriptedClient(bundle=None)
    agent = make_agent(journal, client, tmp_path, bundle=bundles)
    assert agent.run_round().ok and agent.run_round().ok
    assert client.bundle_requests == [5, 5] and bundles.refreshes == []
    client.bundle = (5, b"5")  # published now, and not newer: that is a refresh
    assert agent.run_round().ok and bundles.refreshes == [T0 + 10_000]


def test_a_refusal_is_logged_as_a_refusal_not_as_unreachable(journal, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="passgate.sync")
    refused = Refused("POST /v1/enrol: HTTP 403 bad_token", 403, "bad_token")
    agent = make_agent(journal, ScriptedClient(errors=[refused]), tmp_path)
    assert not agent.run_round().ok
    assert "collector refused: POST /v1/enrol: HTTP 403 bad_token" in caplog.text
    assert "unreachable" not in caplog.text


def test_the_default_batch_is_the_collectors_limit():
    """The agent sends batches as large as a collector takes (``max_rows``): per row, a
    500-row batch cost agent + collector + PostgreSQL about 54 us of CPU against 67 for 200
    rows in the same bench rounds (docs/collector.md); ``passgate sync --batch`` defaults to
    the same number (the CLI does not import the agent to build its parser)."""
    from passgate.cli import build_parser
    from passgate.sync.agent import DEFAULT_BATCH
    from passgate_collector.protocol import MAX_ROWS

    args = build_parser().parse_args(["sync", "--collector", "https://c.example"])
    assert DEFAULT_BATCH == MAX_ROWS == args.batch


def test_a_newest_below_the_installed_version_is_no_refresh_and_nothing_is_fetched(
        journal, tmp_path):
    # The device holds v9 (installed by hand, or a revocation key's number); the collector's
    # newest is v4. It confirms nothing about v9: no refresh, and nothing is fetched
    # (versions only go up: v4 would be refused; 16 MB every round on a fleet). The reason
    # shows in the state; a newest above v9 installs as usual.
    bundles = FakeBundles(version=9)
    client = ScriptedClient(bundle=(4, b"4"))
    client.hint = 4
    agent = make_agent(journal, client, tmp_path, bundle=bundles)
    assert agent.run_round().ok and agent.run_round().ok
    assert client.bundle_requests == [] and bundles.installs == 0 and bundles.refreshes == []
    assert "below the installed v9" in read_state(tmp_path / "s.json").last_error
    client.hint = None  # no hint: the 304 names v4, below v9: the same
    agent.run_round()
    assert client.bundle_requests == [9] and bundles.refreshes == []
    client.bundle, client.hint = (10, b"10"), 10
    assert agent.run_round().bundle_installed == 10


def test_a_version_refused_once_then_installed_by_hand_is_still_refreshed(journal, tmp_path):
    # v5 refused by the agent (say, dated ahead of a clock not yet set); the technician sets
    # the clock and installs v5 by hand: the collector's newest is now the installed one,
    # a refresh (review 34: the refusal's memory had come first).
    bundles = FakeBundles(version=4, refuse=True)
    client = ScriptedClient(bundle=(5, b"5"))
    client.hint = 5
    agent = make_agent(journal, client, tmp_path, bundle=bundles)
    agent.run_round()
    bundles.version = 5  # `passgate bundle install` by hand
    agent.run_round()
    assert bundles.refreshes

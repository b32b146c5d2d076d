"""Each benchmark runs at tiny sizes and prints its figure beside its anchor (bench/measure.py).

Times are never asserted: only that the bench runs, names the machine and prints the ratio
to the anchor it must measure in the same run (issue 15).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CASES = {
    "verify.py": (["--passes", "20", "--repeats", "2", "--revoked", "1000", "--live", "5"],
                  "x bare Ed25519 + ECDSA verify"),
    "journal.py": (["--rows", "5", "--repeats", "2"], "x bare insert+commit"),
    "batch.py": (["--passes", "8", "--repeats", "1"], "x bare Ed25519 sign"),
    "startup.py": (["--repeats", "1"], "cold / warm ="),
    "memory.py": (["--revoked", "1000", "--issuers", "2", "--seconds", "0.2"],
                  "x the anchor"),
    "presentations.py": (["--presentations", "3", "--cameras", "fixed"],
                         "x bare zxing-cpp"),
    "pipeline.py": (["--sizes", "640x480", "--seconds", "0.2", "--scans", "4"],
                    "x bare zxing-cpp, empty frame"),
    # SQLite only (PostgreSQL needs its binaries); the anchor's COPY broke unseen once.
    "sync.py": (["--backend", "sqlite", "--rows", "400", "--repeats", "2", "--history", "0,200",
                 "--sqlite-wal-pages", "1000,10000"],
                "x bare executemany"),
    "sqlite_pragmas.py": (["--rows", "400", "--rounds", "1", "--history", "0,200",
                           "--variants", "wal1000,cache8+mmap8,default,passold"],
                          "x the anchor, wal1000"),
    "holder_screens.py": (["--frames", "1"], "x bare zxing-cpp"),
}


@pytest.mark.parametrize("bench", sorted(CASES))
def test_bench_runs_tiny_and_prints_its_anchor(bench: str) -> None:
    args, anchor = CASES[bench]
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "firmware"), str(ROOT / "collector")])}
    out = subprocess.run([sys.executable, str(ROOT / "bench" / bench), *args], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "machine: " in out.stdout
    assert anchor in out.stdout, out.stdout


def _presentations_module():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import presentations
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return presentations


def test_brighter_illuminator_shortens_the_exposure_after_its_switch_on_frames() -> None:
    """The model's brighter LED: the same presentation, the AE's exposure shrunk by its light;
    in good light it comes with the pass, so two frames are overexposed (clipped) first."""
    P = _presentations_module()
    switched = 0
    for index in range(12):
        plain = P.draw(index, 1, empty_share=0, max_exposure_ms=8.0, illuminator=True)
        bright = P.draw(index, 1, empty_share=0, max_exposure_ms=8.0, illuminator=True,
                        light=P.BRIGHT_LED)
        assert (bright.hold_mm, bright.seed, bright.surface) == (plain.hold_mm, plain.seed,
                                                                 plain.surface)
        assert bright.exposure_ms <= 4.0 + 1e-9 and bright.gain == 1.0
        if not bright.unlit_exposure_ms:  # dim: lit all along by the dim-light policy
            assert P.at_frame(bright, bright.enter_frame) == (bright, 1.0)
            continue
        switched += 1
        before, over = P.at_frame(bright, bright.enter_frame)
        assert over == 1.0 and before.exposure_ms == bright.unlit_exposure_ms
        assert before.exposure_ms == min(plain.exposure_ms * plain.gain, 8.0)
        for i in (bright.led_frame, bright.led_frame + P.AE_DELAY - 1):
            assert P.at_frame(bright, i)[1] == 1.0 + P.BRIGHT_LED
        assert P.at_frame(bright, bright.led_frame + P.AE_DELAY) == (bright, 1.0)
    assert 0 < switched < 12


def test_the_autofocus_rule_model_uses_the_firmwares_rule_and_refocuses_after_a_slow_approach(
        ) -> None:
    """af-rule: scans where PicameraSource would trigger them; the lens lands AF_SCAN_S later
    at the distance the pass had then, and a slow approach that looked held early is
    scanned again once the pass stops (the size rule), so the lens ends near the hold."""
    P = _presentations_module()
    from passgate.hardware.camera import picam

    several = 0
    for index in range(40):
        p = P.draw(index, 1, empty_share=0)
        scans = P.scans_by_rule(p)
        assert scans and list(scans) == sorted(scans)
        assert P.rule_focus(p, scans[0] + P.AF_SCAN_S - 0.01) == P.FOCUS_MM
        assert P.rule_focus(p, scans[-1] + P.AF_SCAN_S) == P.state(p, scans[-1])[0]
        several += len(scans) > 1
        # the last scan focused near where the pass is held (its tremor in depth aside)
        assert abs(P.state(p, scans[-1])[0] - p.hold_mm) <= 0.25 * p.hold_mm + 2 * p.tremor_mm
    assert several  # some presentations need a second scan
    P.scans_by_rule.cache_clear()
    old, picam.REFOCUS_SIZE = picam.REFOCUS_SIZE, 99.0  # the rule before: position only
    try:
        stuck = 0
        for index in range(400):  # the pose only, nothing drawn: quick
            p = P.draw(index, 1, empty_share=0)
            last = P.scans_by_rule(p)[-1]
            stuck += abs(P.state(p, last)[0] - p.hold_mm) > 0.25 * p.hold_mm + 2 * p.tremor_mm
        assert stuck >= 3  # without the size rule some lenses stay where the approach was
    finally:
        picam.REFOCUS_SIZE = old
        P.scans_by_rule.cache_clear()


def test_sync_flatness_pairs_each_round_with_its_own_round() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import sync
    finally:
        sys.path.remove(str(ROOT / "bench"))
    # Rounds' ratios 2.0, 1.1 and 1.0; the ratio of the medians (2.0 / 1.0) would say 2.0x.
    assert sync.flatness([2.0, 1.1, 3.0], [1.0, 1.0, 3.0]) == \
        "paired median 1.10x (1.00-2.00, 2 of 3 rounds within +-20%)"


def test_pg_ingest_parts_runs_tiny_and_prints_its_anchor() -> None:
    """Apart from CASES: it needs a PostgreSQL server (skipped without one, outside CI)."""
    from passgate_collector.pgcluster import PgCluster, PgUnavailable

    try:
        probe = PgCluster()  # finds the binaries and makes its folder; starts nothing
    except PgUnavailable as exc:
        if os.environ.get("CI"):
            raise  # CI installs postgresql
        pytest.skip(str(exc))
    shutil.rmtree(probe.dir)
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "firmware"), str(ROOT / "collector")])}
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "pg_ingest_parts.py"),
                          "--rows", "400", "--rounds", "1", "--history", "0,200",
                          "--variants", "full,unbounded,nopairs"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "machine: " in out.stdout
    assert "x the anchor" in out.stdout and "unbounded" in out.stdout, out.stdout


def test_bench_collectors_keep_the_benches_old_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The benches' rows are dated January 2026 (fleet.T0): a collector they start with the
    default retention removed them 60 s in, under bench/sync.py's rounds (docs/collector.md)."""
    from passgate_collector import cli

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import fleet
    finally:
        sys.path.remove(str(ROOT / "bench"))
    started: list[list[str]] = []

    class Started(Exception):
        pass

    def popen(argv: list[str], **_kw: object) -> None:
        started.append(argv)
        raise Started

    monkeypatch.setattr(fleet.subprocess, "Popen", popen)
    with pytest.raises(Started):
        fleet.start_collector("sqlite:///x.db", 1, "--threads", "4")
    argv = started[0]
    args = cli.build_parser().parse_args(argv[argv.index("serve"):])
    assert args.retention_days == 0 and args.threads == 4


def test_the_firmware_lens_model_lands_moves_late_slews_and_lets_manual_cancel_a_scan(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """af-fw / size with --af-model fixed (the third round's model): a LensPosition lands
    LENS_DELAY frames later and slews the speed's max_slew (1.5 dioptres a frame, normal); a scan
    lands AF_SCAN_S later at
    the distance the pass had when it was triggered; manual cancels a running scan."""
    P = _presentations_module()
    monkeypatch.setattr(P, "AF_MODEL", "fixed")
    lens = P.LensModel(size=True)
    lens.reset()
    p = P.draw(5, 1, empty_share=0)
    idle = 1000 / P.FOCUS_MM
    e = p.enter_frame
    lens.frame = e + 1
    lens.set_controls({"AfMode": 0, "LensPosition": idle + 4.0})
    at = [lens._dioptres(p, e + k) for k in range(1, 7)]
    assert at[:2] == [idle, idle]  # not yet: two frames in flight
    assert at[2:5] == pytest.approx([idle + 1.5, idle + 3.0, idle + 4.0])  # slewing
    lens.frame = e + 6
    lens.set_controls({"AfMode": 1, "AfTrigger": 0})
    assert lens._dioptres(p, e + 8) == pytest.approx(idle + 4.0)  # the scan runs: lens stays
    # landed: where the pass was on the trigger's frame (6 frames after its entry)
    assert lens._dioptres(p, e + 9) == pytest.approx(1000 / P.state(p, 6 / P.FPS)[0])
    lens.frame = e + 10
    lens.set_controls({"AfMode": 1, "AfTrigger": 0})
    lens.frame = e + 11
    lens.set_controls({"AfMode": 0, "LensPosition": idle})  # gone: manual cancels the scan
    assert lens._dioptres(p, e + 14) == pytest.approx(idle)
    assert P.LensModel(size=False).source.config.focus_from_size is False


@pytest.mark.parametrize("latency", [1, 0])
def test_the_pdaf_lens_model_follows_libcamera_rpi_af_frame_by_frame(latency, monkeypatch) -> None:
    """--af-model pdaf: a triggered scan is rpi.af's PDAF loop. It starts LENS_DELAY frames after
    the trigger, moves towards the pass's distance *on each frame* by at most the speed's
    max_slew (normal 1.5, fast 2.0 dioptres; manual moves too), settles step_frames frames once
    within pdaf_squelch, ignores a trigger while it runs, and a manual AfMode cancels it. A
    frame's phase moves the lens from the next frame on (--pdaf-latency 1, the default), or on
    that frame itself (0, the optimistic reading)."""
    P = _presentations_module()
    assert P.PDAF_LATENCY == 1
    monkeypatch.setattr(P, "PDAF_LATENCY", latency)
    p = P.draw(5, 1, empty_share=0)
    e = p.enter_frame
    idle = 1000 / P.FOCUS_MM

    def pass_at(g: int) -> float:
        return 1000 / P.state(p, (g - e) / P.FPS)[0]

    for speed, slew in (("normal", 1.5), ("fast", 2.0)):
        lens = P.LensModel(size=True, af_speed=speed)
        lens.reset()
        assert lens.speed == (1 if speed == "fast" else 0)  # the firmware asked for it at open
        lens.frame = e + 1
        lens.set_controls({"AfMode": 0, "LensPosition": idle + 4.0})  # manual: slews
        at = [lens._dioptres(p, e + k) for k in range(1, 6)]
        assert at[:2] == [idle, idle]
        assert at[2] == pytest.approx(idle + slew) and at[3] == pytest.approx(
            min(idle + 2 * slew, idle + 4.0))
        lens.frame = e + 6
        lens.set_controls({"AfMode": 1, "AfTrigger": 0})
        before = lens._dioptres(p, e + 7)
        assert before == pytest.approx(idle + 4.0)  # not yet: the trigger is in flight
        track = [lens._dioptres(p, e + k) for k in range(8, 16)]
        prev = before
        for pos in track:
            assert abs(pos - prev) <= slew + 1e-9  # never faster than the speed's slew
            prev = pos
        # the first step, towards the pass: seen on the scan's first frame, or the next one
        assert track[latency] == pytest.approx(before - slew)
        assert track[0] == pytest.approx(before if latency else before - slew)
        # it follows the pass where it is on each frame (a tremor here), not where it was
        assert any(abs(pos - pass_at(e + k)) < 0.3
                   for k, pos in zip(range(8, 16), track, strict=True))
        # and ends within pdaf_frames frames: the lens then stays
        end = e + 8 + int(P.AF_SPEEDS[lens.speed]["pdaf_frames"])
        assert lens._dioptres(p, end) == lens._dioptres(p, end + 3)
        lens.frame = e + 9
        lens.set_controls({"AfMode": 1, "AfTrigger": 0})  # while the scan runs: ignored
        assert [lens._dioptres(p, e + k) for k in range(8, 16)] == pytest.approx(track)
        lens.frame = e + 10
        lens.set_controls({"AfMode": 0, "LensPosition": idle})  # gone: manual cancels the scan
        assert lens._dioptres(p, e + 17) == pytest.approx(idle)

    speeds = P.AF_SPEEDS[0]  # the IMX708 tuning's rpi.af speeds, as read from libcamera
    assert speeds["pdaf_frames"] == 20 and speeds["step_frames"] == 5
    assert P.AF_SPEEDS[1]["max_slew"] == 2.0 and P.AF_SPEEDS[1]["pdaf_frames"] == 16


def test_the_presentation_bench_runs_the_firmware_lens_with_focus_from_size() -> None:
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "firmware"), str(ROOT / "collector")])}
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "presentations.py"),
                          "--presentations", "2", "--empty-share", "0", "--cameras",
                          "af-fw+8ms+bright,size+8ms+bright"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "## camera: size+8ms+bright" in out.stdout and "x bare zxing-cpp" in out.stdout

"""``passgate run --simulate``: the whole checkpoint on a laptop, no hardware, no config.

What is real: the decoder, debouncer, verifier, decide stage, journal (SQLite in the state
folder), anti-passback, display policy and renderer, and the signal patterns. What is
simulated: the camera (a scripted scene of synthetic frames, or ``--frames DIR``, or a real
webcam with ``--camera webcam``), the GPIO pins (gpiozero's ``MockFactory``) and the OLED
(luma's dummy device, written as PNG files to ``STATE/oled/`` and drawn in the terminal when
stdout is one).

The scene: a valid pass, an expired one, a forged one (a trusted key id, a signature by
another key), a revoked one, one for another zone, one from an unknown issuer, and the valid
one again (anti-passback: already used), with empty frames in between. The issuer key comes
from ``keys/demo/`` when present, else it is generated once into ``STATE/keys/``; its public
half and the revocation list form the trust folder ``STATE/trust/``.

``--language ru`` (or ``tt``) sets ``[display] language``, so the OLED frames are Russian
(Tatar), and prints the terminal's lines in it too: the verdict in words, the purpose's name
and the validity left with the language's plural forms. English lines keep their fixed form
(``ACCEPT shopping: 2h 50m left``, ``DENY   expired: ...``): the reason code and the
verifier's English detail, which scripts and the guides quote.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from passgate.checkpoint.wiring import HASH_KEY_LEN, run_checkpoint
from passgate.clock.clock import ClockState, TimeReading
from passgate.config.load import from_dict
from passgate.errors import UsageError
from passgate.hardware.camera import Paced, SceneSource, SceneStep
from passgate.hardware.camera.files import FolderSource, import_cv2
from passgate.hardware.camera.webcam import WebcamSource
from passgate.hardware.display import terminal_if_tty
from passgate.hardware.display.screens import reason_words
from passgate.hardware.signals.gpio import make_pin_factory
from passgate.issuing.issuer import Issuer
from passgate.passes.keys import new_keypair
from passgate.passes.purposes import PurposeTable
from passgate.util.atomicfile import write_atomic
from passgate.util.i18n import ENGLISH, N_, Language, duration, language

log = logging.getLogger(__name__)

ZONE = "gate-1"
FPS = 15.0
CODE_FRAMES = 10  # a code held up for 2/3 s
GAP_FRAMES = 50  # then 3.3 s of empty view: the verdict stays 3 s, then idle
ISSUER_NAME = "Demo City"


class SystemTimeClock:
    """The laptop's clock, taken as trusted (the simulation has no floor to keep)."""

    def read(self) -> TimeReading:
        return TimeReading(time.time(), ClockState.TRUSTED)


@dataclass(frozen=True)
class _Forger(Issuer):
    """Signs with its own key but claims another issuer's key id: a forged pass."""

    claimed_kid: bytes = b""

    @property
    def kid(self) -> bytes:
        return self.claimed_kid


@dataclass(frozen=True)
class Cast:
    """The passes of the scene, by label, in the order shown."""

    passes: tuple[tuple[str, str], ...]

    def labeller(self) -> Callable[[str], str]:
        """A function naming each scanned text; a text shown twice gets its labels in turn
        (and again from the start when the scene loops)."""
        names: dict[str, list[str]] = {}
        for name, text in self.passes:
            names.setdefault(text, []).append(name)
        seen: dict[str, int] = {}

        def label(text: str) -> str:
            if text not in names:
                return N_("a code not in the scene")
            i = seen.get(text, 0)
            seen[text] = i + 1
            return names[text][i % len(names[text])]

        return label


def demo_key_dirs() -> list[Path]:
    """Where committed demo keys may be: ``./keys/demo`` and the source tree's ``keys/demo``."""
    return [Path.cwd() / "keys" / "demo", Path(__file__).resolve().parents[2] / "keys" / "demo"]


def load_issuer(state: Path) -> tuple[Issuer, Path]:
    """The demo issuer and its public key file: from keys/demo, else made once in the state."""
    for folder in demo_key_dirs():
        for key in sorted(folder.glob("**/*issuer*.key")):
            if key.with_suffix(".pub").is_file():
                name = ISSUER_NAME if not key.with_suffix(".toml").is_file() else None
                return Issuer.from_key_file(key, name), key.with_suffix(".pub")
    keys = state / "keys"
    if not (keys / "issuer.key").is_file():
        new_keypair(keys, "issuer")
        log.info("made a demo issuer key in %s", keys)
    return Issuer.from_key_file(keys / "issuer.key", ISSUER_NAME), keys / "issuer.pub"


def prepare(state: Path, now: float) -> Cast:
    """Keys, trust folder, hash key and the scene's passes, in ``state``."""
    state.mkdir(parents=True, exist_ok=True)
    issuer, pub = load_issuer(state)
    trust = state / "trust"
    trust.mkdir(exist_ok=True)
    (trust / "issuer.pub").write_bytes(pub.read_bytes())
    (trust / "issuer.toml").write_text(f'name = "{issuer.name}"\n', encoding="utf-8")
    key_file = state / "journal.key"
    if not key_file.is_file() or key_file.stat().st_size != HASH_KEY_LEN:
        # Written whole or not at all; a damaged one (an older run killed mid-write) is only a
        # demo's key, so a new one replaces it rather than stopping the simulation.
        write_atomic(key_file, os.urandom(HASH_KEY_LEN), mode=0o600)

    t = int(now)
    revoked_id = os.urandom(12)
    (trust / "revoked.txt").write_text(revoked_id.hex() + "\n", encoding="ascii")
    forger = _Forger(Ed25519PrivateKey.generate(), issuer.name, claimed_kid=issuer.kid)
    stranger = Issuer(Ed25519PrivateKey.generate(), "Elsewhere")
    valid = issuer.issue("shopping", [ZONE], t - 600, 3 * 3600, hint="A.B.")
    return Cast(
        (
            (N_("valid pass"), valid),
            (N_("expired pass"), issuer.issue("dog_walk", [ZONE], t - 2 * 3600, 3600)),
            (N_("forged pass"), forger.issue("work", [ZONE], t - 600, 8 * 3600)),
            (
                N_("revoked pass"),
                issuer.issue("doctor", [ZONE], t - 600, 3 * 3600, pass_id=revoked_id),
            ),
            (N_("pass for another zone"), issuer.issue("work", ["lobby"], t - 600, 8 * 3600)),
            (N_("unknown issuer"), stranger.issue("work", [ZONE], t - 600, 8 * 3600)),
            (N_("valid pass again"), valid),
        )
    )


def scene(cast: Cast, loop: bool, size: tuple[int, int] = (640, 480)) -> Any:
    steps = [SceneStep(None, 30)]
    for _, text in cast.passes:
        steps += [SceneStep(text, CODE_FRAMES), SceneStep(None, GAP_FRAMES)]
    return SceneSource(steps, size=size, seed=7, loop=loop)


def sim_config(state: Path, fps: float = FPS, language: str = "en") -> Any:
    """The checkpoint's config for the simulation (what a device reads from TOML).

    A code counts as gone after 10 empty frames, so the scene reads the same at any ``fps``
    (tests play it fast)."""
    return from_dict(
        {
            "checkpoint": {"zone": ZONE, "device_id": "sim-gate-1", "state_dir": str(state)},
            "trust": {"source": "dir", "dir": str(state / "trust")},
            "display": {"driver": "dummy", "png_dir": str(state / "oled"), "language": language},
            "decoder": {"absent_frames": 5, "absent_s": min(1.0, 10 / fps)},
            "antipassback": {"window": "10m"},
            "clock": {"untrusted_policy": "flag"},
        },
        origin="<simulation>",
    )


def verdict_line(
    scan: Any, label: str, lang: Language = ENGLISH, purposes: PurposeTable | None = None
) -> str:
    """One terminal line for a scan, in ``lang``; ``label`` is the scene's English name."""
    _ = lang.gettext
    v = scan.verdict
    when = time.strftime("%H:%M:%S", time.localtime(scan.reading.now))
    seq = f"#{scan.seq}" if scan.seq is not None else "#-"
    name = _(label)  # the scene's names are marked N_() in prepare()
    english = lang.code == "en"  # the fixed English form: reason code, verifier's detail
    if v.accepted:
        purpose = v.purpose if english or purposes is None else purposes.label(v.purpose, lang.code)
        detail = v.detail
        if not english and v.expires is not None:
            left = duration(v.expires - scan.reading.now, lang)
            detail = _("{time} left").format(time=left)
        accept = _("ACCEPT")
        return f"{when} {seq:>4} {accept} {purpose}: {detail}  [{name}]"
    quiet = _(" (shown again while the door is open: recorded, not signalled)")
    quiet = quiet if "reshow" in scan.flags else ""
    if english:
        return f"{when} {seq:>4} DENY   {v.reason.value}: {v.detail}{quiet}  [{name}]"
    words = ", ".join(w for w in reason_words(v, scan.reading.now, lang) if w)
    deny = _("DENY")
    return f"{when} {seq:>4} {deny:<6} {words}{quiet}  [{name}]"


def main(
    state: Path,
    *,
    loop: bool = False,
    frames: Path | None = None,
    camera: str = "scene",
    out: TextIO | None = None,
    max_frames: int | None = None,
    fps: float = FPS,
    language: str = "en",
) -> int:
    """Run the simulated checkpoint; returns the exit code (0).

    ``fps``: the pace of the simulated camera (tests play the scene faster).
    ``language``: of the OLED and of the lines printed (``en``, ``ru``, ``tt``)."""
    out = out or sys.stdout
    lang = language_of(language)
    _ = lang.gettext
    state = Path(state)
    cast = prepare(state, time.time())
    cfg = sim_config(state, fps, lang.code)
    purposes = PurposeTable.default()
    if frames is not None:
        source = Paced(FolderSource(frames, loop=loop), fps)
        what = _("frames from {folder}").format(folder=frames)
    elif camera == "webcam":
        source = _webcam(fps)
        what = _("the webcam (hold a pass up to it: make one with passgate issue)")
    else:
        source = Paced(scene(cast, loop), fps)
        names = ", ".join(_(name) for name, _t in cast.passes)
        what = _("a scripted scene: {names}").format(names=names)
    print(_("passgate simulation: zone {zone}, camera: {what}").format(zone=ZONE, what=what),
          file=out)
    print(_("state in {state} (journal.sqlite, OLED frames in oled/); Ctrl-C stops").format(
        state=state), file=out)
    counts = {"accept": 0, "deny": 0}
    label = cast.labeller()
    door = [0.0]

    def on_scan(scan: Any) -> None:
        counts[scan.verdict.result.value] += 1
        line = verdict_line(scan, label(scan.text), lang, purposes)
        print(line, file=out, flush=True)

    def on_change(channel: str, value: float) -> None:
        if channel == "relay" and value != door[0]:
            door[0] = value
            said = _("door released") if value else _("door locked")
            print(f"         {said}", file=out, flush=True)

    checkpoint = run_checkpoint(
        cfg,
        source=source,
        pin_factory=make_pin_factory("mock"),
        clock=SystemTimeClock(),
        terminal=terminal_if_tty(out),
        on_scan=on_scan,
        on_signal_change=on_change,
        max_frames=max_frames,
    )
    scans = lang.ngettext("{n} scan", "{n} scans", checkpoint.scans).format(n=checkpoint.scans)
    summary = _(
        "{scans} ({accepted} accepted, {denied} denied) in {frames} frames; "
        "see them with: passgate log --state {state}"
    )
    print(
        summary.format(
            scans=scans, accepted=counts["accept"], denied=counts["deny"],
            frames=checkpoint.frames, state=state,
        ),
        file=out,
    )
    return 0


def language_of(code: str) -> Language:
    """The :class:`Language` for ``--language``; a bad code is a usage error."""
    try:
        return language(code)
    except ValueError as exc:
        raise UsageError(f"--language: {exc}") from None


def _webcam(fps: float) -> Any:
    try:
        import_cv2()
    except Exception as exc:  # HardwareError: OpenCV missing, with the pip command to fix it
        raise UsageError(str(exc)) from None
    return WebcamSource(0, size=(640, 480), fps=fps)


__all__ = ["main", "prepare", "scene", "sim_config", "verdict_line"]

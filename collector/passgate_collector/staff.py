"""The security staff's page: what happened, what looks wrong, which checkpoint is unwell.

Server-rendered (Jinja2, autoescaped), no JavaScript: it must work in any browser a guard
desk has. The page shows keyed pass hashes (shortened), never pass ids or names.

Values the devices report as codes (a verdict, a reason, a clock state, a device's state, an
update state) are shown in words in the request's language (``console.words`` and the tables
here); the codes stay in the HTML's ``class`` and ``data-`` attributes, and an unknown code
(a newer device's) is shown as itself. A scan's purpose is named as the newest bundle's
purpose table names it in that language (the site's own names, issue 14), else its id.
Bounded at a city's scale (70 million scans, 2,000 checkpoints; issue 12): no query reads a
whole table of scans. Denials per reason come from the per-hour counts kept at ingest;
flagged rows from a partial index of only them; recent scans are those of the
``RECENT_DEVICES`` checkpoints heard from last, one index range each; device health lists
the ``HEALTH_SHOWN`` most urgent checkpoints (every one is counted in the heading). The
console (``/console/``) is the tool for the rest: search, filters, every checkpoint's page.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import jinja2

from passgate.bundle.parts import decode_policy
from passgate.bundle.verify import read_bundle
from passgate.errors import TrustError
from passgate.passes.purposes import PurposeTable

from . import i18n
from .auth import signed_in
from .console import words
from .i18n import N_, _
from .releases import ReleaseDir, plan_line, progress
from .store import SqlStore

ALERT_LIMIT = 50  # tamper events listed one by one; every (device, kind) is summed up above
SHARING_LIMIT = 50
SHARING_SINCE_S = 7 * 86400  # look for shared passes among the last week's scans
STALE_AFTER_S = 15 * 60  # a device unheard of for this long is shown as "stale"
CLOCK_WARN_S = 2 * 3600  # field notes: verifiers flag a device clock > 2 h off the server's
DEVICE_STATE_WORDS = {"ok": N_("ok"), "stale": N_("stale"), "disabled": N_("disabled"),
                      "never": N_("never")}
# passgate.update.state's report (protocol.UPDATE_STATES), and the rollout's own word
UPDATE_WORDS = {"up_to_date": N_("up to date"), "downloading": N_("downloading"),
                "updating": N_("updating"), "rolled_back": N_("rolled back"),
                "failed": N_("failed"), "not_reported": N_("not reported")}


log = logging.getLogger(__name__)
_PURPOSES: dict[str, PurposeTable | None] = {}  # by the bundle's SHA-256: read each once


def purpose_table(store: SqlStore) -> PurposeTable | None:
    """The purpose table of the newest bundle this collector serves (its policy part, with
    each purpose's names per language); None when there is no bundle or it has no policy.
    The collector holds no roots: the devices verify the signatures, this only reads."""
    latest = store.latest_bundle()
    if latest is None:
        return None
    version, sha, _published = latest
    if sha not in _PURPOSES:
        data = store.bundle_data(version)
        table = None
        try:
            parts = read_bundle(data, None).parts if data is not None else {}
            if "policy" in parts:
                table = decode_policy(parts["policy"])[0]
        except TrustError as exc:  # BundleRefused is one: shown as ids, and said in the log
            log.warning("bundle v%d: purpose names unreadable (%s); purposes shown as ids",
                        version, exc)
        _PURPOSES.clear()  # only the newest is wanted
        _PURPOSES[sha] = table
    return _PURPOSES[sha]


def purpose_words(purpose: str | None, table: PurposeTable | None) -> str:
    """A purpose id as the site names it in the request's language; ``-`` for none."""
    if not purpose:
        return "-"
    return table.label(purpose, i18n.current()) if table is not None else purpose


def device_state_words(state: str) -> str:
    return _(DEVICE_STATE_WORDS[state]) if state in DEVICE_STATE_WORDS else state


def update_words(state: str) -> str:
    """An update state (``rolled_back`` or ``rolled back``) in words; ``-`` and unknown
    states as they are."""
    key = state.replace(" ", "_")
    return _(UPDATE_WORDS[key]) if key in UPDATE_WORDS else state
HEALTH_SHOWN = 300  # as the console's front page: all 2,000 rows were most of the page
RECENT_DEVICES = 20  # checkpoints whose recent scans are listed, the last heard from first
# Device health order: what needs a look first, disabled last.
STATE_ORDER = {"stale": 0, "never": 1, "ok": 2, "disabled": 3}


def fmt_time(t: float | None) -> str:
    """UTC text; ``@SECONDS`` for a time no datetime holds (a device clock far ahead)."""
    return "-" if t is None else words.utc_text(t)


def fmt_age(seconds: float | None) -> str:
    """A short, honest age: "42 s", "5 min", "3 h", "2 d"."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 0:
        return f"in {fmt_age(-s)}"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s // size} {unit}"
    return f"{s} s"


def fmt_offset(seconds: int | None) -> str:
    """Device clock minus collector clock: "+3 s", "5 min behind", "2 d ahead"."""
    if seconds is None:
        return "-"
    if abs(seconds) < 120:
        return f"{seconds:+d} s"
    return f"{fmt_age(abs(seconds))} {'ahead' if seconds > 0 else 'behind'}"


def short_hash(h: bytes | None) -> str:
    return h.hex()[:12] if h else "-"


@dataclass(frozen=True)
class HealthRow:
    device_id: str
    state: str  # "ok", "stale" (not seen lately), "disabled", "never" (never synced)
    last_seen: str
    last_seen_age: str
    clock_state: str
    clock_offset: str
    clock_warn: bool  # the clock went backwards, or is more than CLOCK_WARN_S off
    backlog: str
    dead_letters: str
    bundle_version: str
    bundle_age: str
    firmware: str
    update_target: str = "-"
    update_state: str = "-"  # as the device's updater reports it (passgate.update.state)
    update_reason: str = ""


def _state(d, now: int) -> str:
    if d.disabled:
        return "disabled"
    if d.last_seen is None:
        return "never"
    return "ok" if now - d.last_seen <= STALE_AFTER_S else "stale"


def _clock_warn(d) -> bool:
    """The clock went backwards, or is more than ``CLOCK_WARN_S`` off."""
    return d.clock_state == "backwards" or (
        d.clock_offset_s is not None and abs(d.clock_offset_s) > CLOCK_WARN_S)


def health_rows(store: SqlStore, now: int, devices: list | None = None,
                limit: int | None = None) -> list[HealthRow]:
    """Devices' rows, those that need a look first: stale, never synced, then a clock or dead
    letters to see to, then the rest; disabled last; by device id within. ``limit``: only the
    first so many are formatted (sorting 2,000 is cheap, formatting them is not)."""
    published = store.bundle_published_at()
    ranked = sorted(store.devices() if devices is None else devices, key=lambda d: (
        STATE_ORDER[_state(d, now)], not (_clock_warn(d) or d.dead_letters), d.device_id))
    out = []
    for d in ranked[:limit]:
        issued = d.bundle_issued_at or published.get(d.bundle_version)
        out.append(HealthRow(
            device_id=d.device_id, state=_state(d, now), last_seen=fmt_time(d.last_seen),
            last_seen_age=fmt_age(None if d.last_seen is None else now - d.last_seen),
            clock_state=d.clock_state or "-",
            clock_offset=fmt_offset(d.clock_offset_s),
            clock_warn=_clock_warn(d),
            backlog="-" if d.backlog is None else str(d.backlog),
            dead_letters="-" if d.dead_letters is None else str(d.dead_letters),
            bundle_version="-" if d.bundle_version is None else str(d.bundle_version),
            bundle_age=fmt_age(None if issued is None else now - issued),
            firmware=d.firmware or "-",
            update_target=d.update_target or "-",
            update_state=(d.update_state or "-").replace("_", " "),
            update_reason=d.update_reason or "",
        ))
    return out


@functools.cache
def _env() -> jinja2.Environment:
    """One environment for the process: it compiles the template once (a new one per request
    parsed and compiled the page again every time, half of its CPU). Its gettext callables
    follow each request's language."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("passgate_collector", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(time=fmt_time, age=fmt_age, short=short_hash,
                       mstime=lambda ms: fmt_time(None if ms is None else ms / 1000),
                       verdict=words.verdict_words, reason=words.reason_words,
                       clock=words.clock_words, device_state=device_state_words,
                       problem=words.problem_words, tamper=words.tamper_words,
                       detail=words.detail_words,
                       update=update_words)
    env.globals["binding"] = words.binding_words
    env.globals["signed_in"] = signed_in  # the sign-out form; None outside a request
    i18n.install(env)  # the request's language (English outside a request)
    return env


def render(store: SqlStore, *, now: int, settings, window_s: int, root: str = "") -> str:
    """The whole page as HTML for the instant ``now`` (POSIX seconds); ``root``: the
    application's script root, for the links into the console."""
    since_ms = (now - settings.denials_since_s) * 1000
    sharing = store.shared_passes(window_s * 1000, (now - SHARING_SINCE_S) * 1000, SHARING_LIMIT)
    for s in sharing:
        s["gap_s"] = (s["second_ms"] - s["first_ms"]) / 1000
    latest = store.latest_bundle()
    purposes = purpose_table(store)
    devices = store.devices()
    health = health_rows(store, now, devices, HEALTH_SHOWN)
    heard = sorted((d for d in devices if d.last_seen is not None),
                   key=lambda d: (-(d.last_seen or 0), d.device_id))[:RECENT_DEVICES]
    return _env().get_template("staff.html").render(
        purpose=lambda p: purpose_words(p, purposes),
        now=now,
        root=root,
        alert_kinds=store.alert_summary(),
        alerts=store.alerts(ALERT_LIMIT),
        alert_limit=ALERT_LIMIT,
        flagged=store.flagged_scans(ALERT_LIMIT),
        rejected=store.rejected_rows(ALERT_LIMIT),
        health=health,
        health_total=len(devices),
        health_attention=sum(1 for d in devices if _state(d, now) in ("stale", "never")),
        sharing=sharing,
        window_s=window_s,
        denials=store.denials_by_reason(since_ms),
        denials_since=fmt_age(settings.denials_since_s),
        recent=store.recent_scans(settings.recent_per_device, [d.device_id for d in heard]),
        recent_devices=RECENT_DEVICES,
        latest_bundle=latest,
        rollout=_rollout(store, settings),
    )


def _rollout(store: SqlStore, settings) -> dict | None:
    """The fleet's rollout progress, when this collector serves releases."""
    if settings.releases_dir is None:
        return None
    prog = progress(store, ReleaseDir(settings.releases_dir))
    return {"line": plan_line(prog["plan"]), "running": sorted(prog["running"].items()),
            "states": sorted(prog["states"].items())}

"""Alerts first: what needs a guard, most serious first, each with a key to acknowledge.

Rules kept here:

* Order is severity, then newest first: tamper (a forged batch, an edited or missing journal
  row), possible sharing (one pass at two checkpoints within the window), checkpoints
  offline, clock or trust data stale, dead letters.
* Every alert has a stable key naming the incident, so an acknowledgement covers that
  incident and no later one: an offline checkpoint's key holds its last-seen time, a clock
  alert its state and hour of offset, a trust alert the bundle version, a dead-letter alert the
  count. When the condition comes back in another form it is a new alert, open again.
* Acknowledged alerts are not deleted: they move to a collapsed list with who and when. An
  alert is acknowledged when its own key has an acknowledgement, however old (retention
  decides "open" the same way, so the console never shows open an alert whose scans
  retention has already let go).
* Device health is sorted by severity too, with a summary of how many need attention.
* Titles and texts are said in the request's language (``..i18n``) with its plural forms;
  keys never are (an acknowledgement must match whatever language the guard reads).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..i18n import N_, _, ngettext
from ..store import Device, SqlStore
from . import words
from .words import ago

STALE_AFTER_S = 15 * 60  # not heard from for this long: offline
CLOCK_WARN_S = 2 * 3600  # field notes: verifiers flag a device clock > 2 h off the server's
TRUST_LAG_S = 3600  # a newer bundle published this long ago and not yet taken: stale
SHARING_SINCE_S = 24 * 3600
LIMIT = 50

SEVERITY = {"tamper": 0, "forged": 0, "sharing": 1, "offline": 2, "clock": 3, "trust": 3,
            "dead": 4}
TITLES = {"tamper": N_("tamper"), "forged": N_("forged batches"),
          "sharing": N_("possible sharing"), "offline": N_("checkpoint offline"),
          "clock": N_("clock wrong"), "trust": N_("trust data stale"),
          "dead": N_("dead letters")}


@dataclass
class Alert:
    key: str
    kind: str
    device: str
    text: str
    at: float | None  # POSIX seconds of the incident, for ordering and the time shown
    ack: dict | None = None
    site: str | None = None  # the checkpoint's site: its zone is the time shown

    @property
    def title(self) -> str:
        return _(TITLES[self.kind])


@dataclass
class Health:
    device: Device
    site: str | None
    problems: list[str] = field(default_factory=list)
    severity: int = 9  # the most serious problem's SEVERITY; 9: none

    @property
    def state(self) -> str:
        if self.device.disabled:
            return "disabled"
        return "attention" if self.problems else "ok"

    @property
    def state_words(self) -> str:
        return _({"disabled": N_("disabled"), "attention": N_("attention"),
                  "ok": N_("ok")}[self.state])


def device_conditions(d: Device, now: int, latest: tuple | None) -> list[tuple[str, str, str]]:
    """(kind, key, text) for each condition of one checkpoint that needs attention."""
    out = []
    if d.disabled:
        return out
    if d.last_seen is None:
        out.append(("offline", f"offline:{d.device_id}:never", _("never synced")))
    elif now - d.last_seen > STALE_AFTER_S:
        out.append(("offline", f"offline:{d.device_id}:{d.last_seen}",
                    _("last heard {ago}").format(ago=ago(now - d.last_seen))))
    off = d.clock_offset_s
    if d.clock_state == "backwards" or (off is not None and abs(off) > CLOCK_WARN_S):
        hours = 0 if off is None else round(off / 3600)
        text = _("clock went backwards") if d.clock_state == "backwards" else (
            _("clock {h} h ahead") if (off or 0) > 0 else _("clock {h} h behind")
        ).format(h=abs(hours))
        out.append(("clock", f"clock:{d.device_id}:{d.clock_state}:{hours}", text))
    if latest is not None and d.last_seen is not None and (
            d.bundle_version is None or d.bundle_version < latest[0]) \
            and now - latest[2] > TRUST_LAG_S:
        have = _("none") if d.bundle_version is None else _("version {v}").format(
            v=d.bundle_version)
        out.append(("trust", f"trust:{d.device_id}:{d.bundle_version}:{latest[0]}",
                    _("trust data {have}, version {v} published {ago}").format(
                        have=have, v=latest[0], ago=ago(now - latest[2]))))
    if d.dead_letters:
        out.append(("dead", f"dead:{d.device_id}:{d.dead_letters}",
                    ngettext("{n} scan refused by the collector, kept on the device",
                             "{n} scans refused by the collector, kept on the device",
                             d.dead_letters).format(n=d.dead_letters)))
    return out


def collect(store: SqlStore, now: int, sharing_window_s: int,
            acks_from: SqlStore | None = None) -> tuple[list[Alert], list[Health]]:
    """All alerts (acknowledged ones marked) and every checkpoint's health, both sorted.
    ``acks_from``: where acknowledgements are read (the primary, when ``store`` is a
    replica), else ``store``."""
    alerts: list[Alert] = []
    for a in store.alerts(LIMIT):
        alerts.append(Alert(f"tamper:{a['id']}", "tamper", a["device_id"],
                            f"{words.tamper_words(a['kind'])}: {words.detail_words(a['detail'])}",
                            a["created_at"]))
    for s in store.alert_summary():
        if s["kind"] == "bad_signature":  # counted only (anyone can send them): one per device
            alerts.append(Alert(f"forged:{s['device_id']}:{s['last_at']}", "forged",
                                s["device_id"], ngettext(
                                    "{n} batch with a bad signature refused; latest: {last}",
                                    "{n} batches with a bad signature refused; latest: {last}",
                                    s["count"]).format(n=s["count"],
                                                      last=words.detail_words(s["last_detail"])),
                                s["last_at"]))
    since_ms = (now - SHARING_SINCE_S) * 1000
    for s in store.shared_passes(sharing_window_s * 1000, since_ms, LIMIT):
        gap = (s["second_ms"] - s["first_ms"]) / 1000
        alerts.append(Alert(
            f"sharing:{s['pass_hash'].hex()}:{s['first_device']}:{s['first_ms']}:"
            f"{s['second_device']}:{s['second_ms']}", "sharing", s["second_device"],
            _("pass {hash} at {first} then {second}, {gap} s apart").format(
                hash=s["pass_hash"].hex()[:12], first=s["first_device"],
                second=s["second_device"], gap=f"{gap:.0f}"), s["second_ms"] / 1000))
    latest = store.latest_bundle()
    sites = store.device_sites()
    health = []
    for d in store.devices():
        h = Health(d, sites.get(d.device_id))
        for kind, key, text in device_conditions(d, now, latest):
            h.problems.append(text)
            h.severity = min(h.severity, SEVERITY[kind])
            alerts.append(Alert(key, kind, d.device_id, text, d.last_seen))
        health.append(h)
    acks = (acks_from or store).acks_for([a.key for a in alerts])
    for a in alerts:
        a.ack, a.site = acks.get(a.key), sites.get(a.device)
    alerts.sort(key=lambda a: (SEVERITY[a.kind], -(a.at or 0), a.device))
    # Disabled last; then the most serious problem first; then the longest unheard.
    health.sort(key=lambda h: (h.device.disabled, h.severity, h.device.last_seen or 0,
                               h.device.device_id))
    return alerts, health


def summary(health: list[Health]) -> str:
    active = [h for h in health if not h.device.disabled]
    n = sum(1 for h in active if h.problems)
    total = len(active)
    if n == 0:
        return ngettext("all {total} checkpoint fine", "all {total} checkpoints fine",
                        total).format(total=total)
    # the plural follows the number that needs attention ("1 of 3 needs", "2 of 3 need")
    return ngettext("{n} of {total} checkpoints needs attention",
                    "{n} of {total} checkpoints need attention", n).format(n=n, total=total)

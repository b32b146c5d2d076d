"""Who may do what on the staff console: authorisation as data.

Rules kept here:
- Three roles, each with everything the one before it has: ``viewer`` sees everything,
  ``supervisor`` also acknowledges alerts and exports, ``admin`` also manages devices,
  enrolment tokens and accounts on the web.
- ``ACCESS`` is the one table of restricted console endpoints: a row matches a Flask endpoint
  name (``"views.export"``, or a pattern ``"views.export_*"``) or a URL path (starting with
  "/", an ``fnmatch`` pattern whose ``*`` spans "/"), optionally for some methods only. When
  several rows match, the strictest wins. Anything not listed needs a session (``viewer``):
  a new route is never public by accident.
- ``PUBLIC`` lists what needs no session: the sign-in page, the data-free health check,
  static files, and the holder web app under ``/holder/`` (``holder.py``: static files for
  pass holders, no staff data; a holder's key and pass never reach the collector).
  The device API under ``/v1/`` is outside the console (devices sign requests).
  tests/test_collector_auth.py walks every route of ``app.url_map`` against these tables.

Engineers adding console routes: add a row here for anything that changes state or exports.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

VIEWER, SUPERVISOR, ADMIN = "viewer", "supervisor", "admin"
ROLES = (VIEWER, SUPERVISOR, ADMIN)  # ascending
RANK = {role: i for i, role in enumerate(ROLES)}
WRITE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Rule:
    match: str  # endpoint name or pattern; a URL path pattern if it starts with "/"
    role: str
    methods: frozenset[str] | None = None  # None: every method

    def applies(self, endpoint: str | None, path: str, method: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        if self.match.startswith("/"):
            return fnmatchcase(path, self.match)
        return endpoint is not None and fnmatchcase(endpoint, self.match)


ACCESS: tuple[Rule, ...] = (
    # The console's own (console/views.py), named: acknowledge and export are supervisors'.
    Rule("console.acknowledge", SUPERVISOR),
    Rule("console.export", SUPERVISOR),
    # Exports (issue 12: "supervisor ... exports"): any CSV or export URL.
    Rule("/export*", SUPERVISOR),
    Rule("/*.csv", SUPERVISOR),
    Rule("*.export*", SUPERVISOR),
    # Acknowledging alerts, however the route spells it.
    Rule("/*/ack", SUPERVISOR, WRITE),
    Rule("/*/acknowledge", SUPERVISOR, WRITE),
    Rule("/alerts*", SUPERVISOR, WRITE),
    Rule("*.ack*", SUPERVISOR, WRITE),
    # Devices, enrolment tokens and accounts, if brought to the web.
    Rule("/devices*", ADMIN, WRITE),
    Rule("/tokens*", ADMIN),
    Rule("/users*", ADMIN),
    Rule("/admin*", ADMIN),
)

PUBLIC_ENDPOINTS = frozenset({"auth.login", "auth.login_post", "auth.healthz", "static",
                              "holder.bare", "holder.page", "holder.file"})
DEVICE_API = "/v1/"


def is_public(endpoint: str | None, path: str) -> bool:
    """True for what needs no staff session (see the module docstring)."""
    if path.startswith(DEVICE_API):
        return True
    if endpoint is None:
        return False  # an unknown URL: sign in first, then learn it does not exist
    return endpoint in PUBLIC_ENDPOINTS or endpoint.endswith(".static")


def required_role(endpoint: str | None, path: str, method: str) -> str:
    """The least role that may make this request (``viewer`` unless ``ACCESS`` says more)."""
    need = VIEWER
    for rule in ACCESS:
        if rule.applies(endpoint, path, method) and RANK[rule.role] > RANK[need]:
            need = rule.role
    return need


def allows(role: str, need: str) -> bool:
    return role in RANK and RANK[role] >= RANK[need]

"""The staff console: alerts first, a live feed, device health, search, export and charts.

A Flask Blueprint under ``/console/`` (registered by ``web.create_app``), server-rendered so
every page works without JavaScript; the script only adds live rows and draws charts.

Rules kept here and in the modules it names:

* Read-only but for one thing: acknowledging an alert (a POST that records who and when).
* Every query is bounded and paginated by keyset (``store/console.py``); no view reads a
  whole table.
* Pass ids never appear: passes are shown and searched as keyed hashes (``passsearch``).
* Nothing is fetched from the internet: the chart library is served from ``static/vendor/``
  (Chart.js, MIT, version and checksum in ``static/vendor/README.md``).
* Times are each site's local time on screen, UTC on hover and in exports (``words``).
* Endpoint names are stable (``console.acknowledge``, ``console.export``...): the role
  table of the sign-in layer refers to them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint

from ..store import SqlStore


@dataclass(frozen=True)
class ConsoleOptions:
    """``hash_key``: the fleet's pass-hash key, to search by pass text (None: by hash only).
    ``sharing_window_s``: two scans of one pass at two checkpoints closer than this are
    "possible sharing"."""

    hash_key: bytes | None = None
    sharing_window_s: int = 120
    page_size: int = 50
    feed_size: int = 20


def blueprint(store: SqlStore, clock: Callable[[], int],
              options: ConsoleOptions | None = None,
              read_store: SqlStore | None = None) -> Blueprint:
    """The console; ``read_store``: a replica its views read (``serve --read-db``)."""
    from . import views

    here = Path(__file__).parent
    bp = Blueprint("console", __name__, url_prefix="/console",
                   template_folder=str(here / "templates"), static_folder=str(here / "static"))
    views.register(bp, store, clock, options or ConsoleOptions(), read_store)
    return bp

"""The console's routes. Each view reads a bounded slice (see ``store/console.py``) and
renders it; the two JSON endpoints feed the page's script and carry UTC times only.

Rules kept here:

* Pages work without JavaScript: the live feed is a plain table (the script polls
  ``feed.json?after=<cursor>`` every few seconds and prepends new rows; without it the page
  reloads itself once a minute through ``<noscript>``).
* The only state change is ``POST /console/ack``: it records who (the signed-in user when
  the sign-in layer set one, else "anonymous") and when, then redirects (303) to the alerts.
* The CSV export streams the filtered view page by page (keyset, same filters, UTC times),
  so its memory does not grow with the range.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator

from flask import (
    Blueprint,
    Response,
    abort,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from markupsafe import Markup

from ..i18n import _, ngettext
from ..store import SqlStore
from ..store.console import ScanFilter, parse_cursor
from . import ConsoleOptions, alerts, filters, passsearch, words

EXPORT_PAGE = 1000
FEED_POLL_LIMIT = 100
PASS_LIMIT = 200
CHART_HOURS = 48
# Checkpoints listed on the front page, most urgent first: rendering all 2,000 of a city's
# fleet was 800 KB and most of the page's time; the summary still counts every one, and
# any checkpoint's own page is one link from its scans.
HEALTH_SHOWN = 300
CSV_COLUMNS = ("time_utc", "checkpoint", "site", "zone", "seq", "verdict", "reason",
               "reason_words", "pass_hash", "purpose", "flags", "problem")


def who() -> str:
    """The acknowledging user: whatever the sign-in layer put in ``g.user`` or the session."""
    user = g.get("staff") or g.get("user") or session.get("user")  # g.staff: auth/gate.py
    name = getattr(user, "name", None) or getattr(user, "username", None) or user
    return str(name)[:64] if name else "anonymous"


def register(bp: Blueprint, store: SqlStore, clock: Callable[[], int],
             opts: ConsoleOptions, reads: SqlStore | None = None) -> None:
    """``reads``: where the views read (a replica, ``serve --read-db``), else ``store``; an
    acknowledgement is written to ``store`` and acknowledgements are read back from it, so
    the one a guard just made shows at once whatever the replica's delay."""
    primary, store = store, reads or store  # every name below reads; ``primary`` writes
    def tz_of(site: str | None) -> str | None:
        return g.sites.get(site) if site else None

    @bp.before_request
    def load_sites() -> None:
        g.sites = store.sites()

    @bp.app_template_filter("when")
    def when(t: float | None, site: str | None = None) -> Markup:
        return words.time_tag(t, tz_of(site))

    @bp.context_processor
    def helpers() -> dict:
        return {"reason_words": words.reason_words, "reason_cell": words.reason_cell,
                "problem_words": words.problem_words, "binding_words": words.binding_words,
                "short": words.short, "ago": words.ago,
                "clock_words": words.clock_words, "now": clock(),
                "verdict_words": words.verdicts_shown(), "sites": g.sites}

    def feed_json(row: dict) -> dict:
        t = row["t_ms"] / 1000
        return {"cursor": row["cursor"], "time_utc": words.utc_iso(t),
                "local": words.local_text(t, tz_of(row["site"])), "utc": words.utc_text(t),
                "ago": words.ago(clock() - t), "checkpoint": row["device_id"],
                "site": row["site"], "zone": row["zone"], "verdict": row["verdict"],
                "verdict_words": words.verdict_words(row["verdict"]),
                "reason": row["reason"], "reason_words": words.reason_words(row["reason"]),
                "pass": words.short(row["pass_hash"]), "problem": row["problem"]}

    def recent_filter(**kw) -> ScanFilter:
        now = clock()
        return ScanFilter(since_ms=(now - filters.DEFAULT_HOURS * 3600) * 1000,
                          until_ms=(now + filters.FUTURE_S) * 1000, **kw)

    @bp.get("/")
    def index() -> str:
        now = clock()
        found, health = alerts.collect(store, now, opts.sharing_window_s, acks_from=primary)
        feed = store.find_scans(recent_filter(), opts.feed_size)
        return render_template(
            "console/index.html", open_alerts=[a for a in found if a.ack is None],
            acked=[a for a in found if a.ack is not None], health=health[:HEALTH_SHOWN],
            summary=alerts.summary(health) + (
                "; " + ngettext("the %(num)d most urgent listed",
                                "the %(num)d most urgent listed", HEALTH_SHOWN)
                % {"num": HEALTH_SHOWN} if len(health) > HEALTH_SHOWN else ""), feed=feed,
            cursor=feed[0]["cursor"] if feed else "", latest=store.latest_bundle())

    @bp.post("/ack")
    def acknowledge() -> Response:
        key = (request.form.get("key") or "").strip()
        if not key or len(key) > 300:
            abort(400)
        label = (request.form.get("label") or key)[:300]
        primary.acknowledge(key, label, who(), clock())
        return redirect(url_for("console.index") + "#alerts", code=303)

    @bp.get("/feed.json")
    def feed() -> Response:
        after = parse_cursor(request.args.get("after"))
        if after is None:
            rows = list(reversed(store.find_scans(recent_filter(), opts.feed_size)))
        else:
            f = recent_filter()
            f = ScanFilter(since_ms=min(f.since_ms, after[0]), until_ms=f.until_ms)
            rows = store.scans_after(f, after, FEED_POLL_LIMIT)
        cursor = rows[-1]["cursor"] if rows else (request.args.get("after") or "")
        return {"rows": [feed_json(r) for r in rows], "cursor": cursor}

    @bp.get("/scans")
    def scans() -> str:
        view = filters.parse(request.args, clock(), g.sites)
        rows = store.find_scans(view.filter, opts.page_size + 1, view.before)
        more = len(rows) > opts.page_size
        rows = rows[:opts.page_size]
        older = url_for("console.scans", **view.query(before=rows[-1]["cursor"])) \
            if more else None
        return render_template(
            "console/scans.html", view=view, rows=rows, older=older,
            newest=url_for("console.scans", **view.query()) if view.before else None,
            export=url_for("console.export", **view.query()),
            zones=store.zones(view.filter.since_ms), devices=sorted(store.device_sites()),
            reasons=words.reasons_shown(), verdicts=filters.VERDICTS)

    @bp.get("/export.csv")
    def export() -> Response:
        view = filters.parse(request.args, clock(), g.sites)

        def lines() -> Iterator[str]:
            buf = io.StringIO()
            out = csv.writer(buf, lineterminator="\r\n")
            out.writerow(CSV_COLUMNS)
            cursor = view.before
            while True:
                page = store.find_scans(view.filter, EXPORT_PAGE, cursor)
                for r in page:
                    out.writerow((words.utc_iso(r["t_ms"] / 1000), r["device_id"],
                                  r["site"] or "", r["zone"], r["seq"], r["verdict"],
                                  r["reason"], words.reason_words(r["reason"]),
                                  r["pass_hash"].hex() if r["pass_hash"] else "",
                                  r["purpose"] or "", " ".join(r["flags"]), r["problem"] or ""))
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
                if len(page) < EXPORT_PAGE:
                    return
                last = page[-1]
                cursor = (last["t_ms"], last["device_id"], last["seq"])

        name = f"passgate-scans-{view.form['from'][:10]}-{view.form['to'][:10]}.csv"
        return Response(lines(), content_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @bp.route("/pass", methods=["GET", "POST"])
    def pass_search() -> str:
        error, found, digest = None, None, None
        if request.method == "POST":
            request.max_content_length = passsearch.MAX_PHOTO_BYTES  # a phone photo
            upload = request.files.get("photo")
            photo = upload.read(passsearch.MAX_PHOTO_BYTES + 1) if upload else None
            try:
                digest = passsearch.hash_from(request.form.get("text", ""), photo,
                                              opts.hash_key)
            except passsearch.SearchError as exc:
                error = str(exc)
            if digest is not None:
                now = clock()
                f = ScanFilter(since_ms=0, until_ms=(now + 86400) * 1000, pass_hash=digest)
                found = store.find_scans(f, PASS_LIMIT)
        return render_template("console/pass.html", error=error, found=found,
                               digest=digest.hex() if digest else None,
                               has_key=opts.hash_key is not None, limit=PASS_LIMIT)

    @bp.get("/checkpoint/<device_id>")
    def checkpoint(device_id: str) -> str:
        dev = store.device(device_id)
        if dev is None:
            abort(404)
        site = store.device_sites().get(device_id)
        rows = store.find_scans(recent_filter(device=device_id), opts.page_size)
        latest = store.latest_bundle()
        return render_template(
            "console/checkpoint.html", dev=dev, site=site, rows=rows,
            history=store.health_history(device_id, 50), latest=latest,
            problems=[t for _k, _key, t in alerts.device_conditions(dev, clock(), latest)],
            more=url_for("console.scans", device=device_id))

    @bp.get("/charts")
    def charts() -> str:
        now = clock()
        hour = 3600 * 1000
        until = (now * 1000 // hour + 1) * hour
        since = until - CHART_HOURS * hour
        site = (request.args.get("site") or "").strip() or None
        per_site = store.hourly_by_site(since, until)
        reasons = store.hourly_reasons(since, until, site)
        tz = g.sites.get(site) if site else None
        data = {"labels": [words.local_text(since / 1000 + i * 3600, tz)[5:16]
                           for i in range(CHART_HOURS)],
                "sites": {}, "reasons": {}, "words": words.reasons_shown(),
                # the script's two series names, in the page's language
                "series": {"scans": _("{site}: scans"), "denials": _("{site}: denials")}}
        for s, h, n, denied in per_site:
            name = s or _("(no site)")
            entry = data["sites"].setdefault(name, {"scans": [0] * CHART_HOURS,
                                                    "denials": [0] * CHART_HOURS})
            i = (h - since) // hour
            entry["scans"][i] += n
            entry["denials"][i] += denied or 0
        for h, reason, n in reasons:
            data["reasons"].setdefault(reason, [0] * CHART_HOURS)[(h - since) // hour] += n
        return render_template("console/charts.html", data=data, per_site=per_site,
                               reasons=reasons, site=site, hours=CHART_HOURS,
                               zone_name=tz or "UTC")

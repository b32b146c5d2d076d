"""Search by pass in the console: a pasted pass text, a photo of its QR code, or the keyed hash
itself, to where and when the checkpoints saw it. The hash must be the very one a checkpoint's
journal stores (``Journal.pass_hash`` with the fleet key), or the search finds nothing."""

from __future__ import annotations

import hashlib
import io
import re

import pytest

from collector_support import (  # noqa: F401
    T0,
    FakeDevice,
    add_staff,
    cheap_argon2,
    csrf_of,
    fake_time_token,
    sign_in,
)
from passgate.issuing import qr
from passgate.journal.journal import Journal
from passgate_collector.console import ConsoleOptions, passsearch
from passgate_collector.store import open_store
from passgate_collector.web import create_app

CBOR = {"Content-Type": "application/cbor"}
FLEET_KEY = bytes(range(32))
PASS_ID = b"pass-id-0123456789ab"


pytestmark = pytest.mark.usefixtures("cheap_argon2")  # the console needs a session

@pytest.fixture
def pass_text(issuer):
    return issuer.issue("work", ["lobby"], T0 - 60, 3600, pass_id=PASS_ID)


@pytest.fixture
def seen(tmp_path):
    """A store where the pass was scanned at two checkpoints, hashed as their journals do."""
    journal = Journal(tmp_path / "journal.db", FLEET_KEY, "gate-north")
    digest = journal.pass_hash(PASS_ID)
    journal.close()
    store = open_store(f"sqlite:///{tmp_path}/c.db")

    add_staff(store, "guard", "viewer")

    def client(key: bytes | None):
        app = create_app(store, time_token=fake_time_token, now=lambda: T0 + 600,
                         console=ConsoleOptions(hash_key=key))
        c = app.test_client()
        assert sign_in(c, "guard").status_code == 302  # every console page needs a session
        token = csrf_of(c.get("/console/pass").get_data(as_text=True))
        c.environ_base["HTTP_X_CSRF_TOKEN"] = token  # as the page's own form sends it
        return c

    c = client(FLEET_KEY)
    for name, t in (("gate-north", T0 + 10), ("gate-south", T0 + 300)):
        dev = FakeDevice(name)
        tok = "tok-" + name + "-" * 16
        store.add_token(hashlib.sha256(tok.encode()).digest(), name, T0, T0 + 86400)
        assert c.post("/v1/enrol", data=dev.enrol_body(tok), headers=CBOR).status_code == 201
        dev.scans(3, t0=T0)
        dev.scan(t, ph=digest)
        assert c.post("/v1/batches", data=dev.batch_body(dev.rows), headers=CBOR).status_code \
            == 200
    yield client, digest
    store.close()


def sightings(html: str) -> list[str]:
    return re.findall(r'<a href="/console/checkpoint/([\w-]+)">', html.split('id="sightings"')[1])


def test_the_console_derives_the_hash_a_checkpoint_journal_stores(pass_text, seen):
    _client, digest = seen
    assert passsearch.hash_from(pass_text, None, FLEET_KEY) == digest


def test_search_by_pasted_pass_text_shows_where_and_when(pass_text, seen):
    client, digest = seen
    html = client(FLEET_KEY).post("/console/pass", data={"text": pass_text + "\r\n"}).get_data(
        as_text=True)
    assert f'id="pass-hash">{digest.hex()[:12]}<' in html
    assert sightings(html) == ["gate-south", "gate-north"]  # newest first
    assert PASS_ID.hex() not in html and pass_text not in html  # only the keyed hash shows


def test_search_by_a_photo_of_the_qr_code(pass_text, seen, tmp_path):
    client, _digest = seen
    png = tmp_path / "pass.png"
    qr.write_png(pass_text, png)
    html = client(FLEET_KEY).post("/console/pass", data={
        "text": "", "photo": (io.BytesIO(png.read_bytes()), "pass.png")},
        content_type="multipart/form-data").get_data(as_text=True)
    assert sightings(html) == ["gate-south", "gate-north"]


def test_without_the_fleet_key_a_pass_text_is_explained_and_the_hash_still_works(pass_text, seen):
    client, digest = seen
    c = client(None)
    html = c.post("/console/pass", data={"text": pass_text}).get_data(as_text=True)
    assert "has no fleet hash key" in html and 'id="sightings"' not in html
    html = c.post("/console/pass", data={"text": digest.hex()}).get_data(as_text=True)
    assert sightings(html) == ["gate-south", "gate-north"]


@pytest.mark.parametrize(("text", "photo", "message"), [
    ("", None, "paste a pass"),
    ("PG1:not-base45!", None, "not a readable pass"),
    ("", b"not a picture", "not a picture this console can read"),
])
def test_bad_input_is_one_line_for_the_guard(seen, text, photo, message):
    client, _digest = seen
    data = {"text": text}
    if photo is not None:
        data["photo"] = (io.BytesIO(photo), "x.jpg")
    r = client(FLEET_KEY).post("/console/pass", data=data, content_type="multipart/form-data")
    assert r.status_code == 200
    assert message in re.search(r'id="search-error">([^<]*)<', r.get_data(as_text=True)).group(1)


def test_a_photo_without_a_qr_code_says_so(seen):
    from PIL import Image

    client, _digest = seen
    buf = io.BytesIO()
    Image.new("L", (200, 200), 255).save(buf, format="PNG")
    r = client(FLEET_KEY).post("/console/pass", data={"photo": (io.BytesIO(buf.getvalue()),
                                                                "blank.png")},
                               content_type="multipart/form-data")
    assert "no QR code found in the photo" in r.get_data(as_text=True)


def test_a_hash_key_file_of_the_wrong_length_is_refused(tmp_path):
    path = tmp_path / "journal.key"
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="32 raw bytes"):
        passsearch.read_hash_key(path)
    path.write_bytes(FLEET_KEY)
    assert passsearch.read_hash_key(path) == FLEET_KEY

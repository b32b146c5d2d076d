"""Search by pass: from a pasted pass text, a photo of its QR code, or a keyed hash, to the
16-byte ``pass_hash`` the checkpoints store.

Rules kept here:

* The collector stores no pass ids, only ``HMAC-SHA256(fleet hash key, pass id)[:16]``
  (``passgate.journal.journal.Journal.pass_hash``). To search by pass text the console needs
  that same fleet key (``serve --hash-key FILE``, the ``journal.key`` provisioning writes);
  it derives the hash in memory and forgets the text. Without the key it says so, and
  accepts the hash itself (32 hex digits, as ``passgate log`` on a checkpoint prints it).
* The pass's signature is not checked: the search only asks "where was a pass with this id
  seen", which is worth asking about a forged copy too. Nothing here admits anyone.
* A photo is decoded with the firmware's own QR decoder (``passgate.hardware.decode``), after
  a size cap: a picture larger than ``MAX_PIXELS`` is refused, not decoded.
* Errors are one line for a guard ("no QR code found in the photo"), never a traceback,
  in the request's language.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
from pathlib import Path

from passgate.errors import PassFormatError, UsageError
from passgate.passes.format import parse_claims, parse_text

from ..errors import SearchError
from ..i18n import _

__all__ = ["SearchError", "hash_from", "keyed_hash", "read_hash_key"]

HASH_RE = re.compile(r"[0-9a-fA-F]{32}")
HASH_KEY_LEN = 32  # as the checkpoint's journal.hash_key_file (raw bytes)
MAX_PIXELS = 40_000_000  # a 40-megapixel photo; larger is refused before decoding
MAX_PHOTO_BYTES = 12 << 20


def read_hash_key(path: Path) -> bytes:
    key = Path(path).read_bytes()
    if len(key) != HASH_KEY_LEN:
        raise UsageError(f"--hash-key {path}: the fleet hash key is {HASH_KEY_LEN} raw bytes, "
                         f"this file has {len(key)}")
    return key


def keyed_hash(key: bytes, pass_id: bytes) -> bytes:
    """Exactly what a checkpoint's journal stores for ``pass_id``."""
    return hmac.new(key, pass_id, hashlib.sha256).digest()[:16]


def pass_id_of(text: str) -> bytes:
    """The pass id (CWT ``cti``) in a pass text; SearchError if it is not a readable pass."""
    try:
        return parse_claims(parse_text(text.strip()).payload).pass_id
    except PassFormatError as exc:
        raise SearchError(_("not a readable pass: {error}").format(error=exc)) from None


def texts_in_photo(data: bytes) -> list[str]:
    """Every QR text in an uploaded picture (any format Pillow reads)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from passgate.hardware.decode import default_decoder

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise SearchError(_("the photo is too large; send one under 40 megapixels"))
            frame = np.asarray(img.convert("L"))
    except (UnidentifiedImageError, OSError):
        raise SearchError(_("the file is not a picture this console can read")) from None
    return default_decoder().decode(frame)


def hash_from(text: str, photo: bytes | None, key: bytes | None) -> bytes:
    """The pass hash to look for: from a hash, a pass text or a photo (in that order)."""
    text = (text or "").strip()
    if HASH_RE.fullmatch(text):
        return bytes.fromhex(text)
    if not text and photo:
        found = texts_in_photo(photo)
        if not found:
            raise SearchError(_("no QR code found in the photo"))
        text = found[0]
    if not text:
        raise SearchError(_("paste a pass, upload a photo of its QR code, or give its hash"))
    if key is None:
        raise SearchError(_("this collector has no fleet hash key (serve --hash-key), so it "
                            "cannot turn a pass into the hash the checkpoints store; give the "
                            "32-digit hash from the checkpoint's log instead"))
    return keyed_hash(key, pass_id_of(text))

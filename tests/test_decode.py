"""QR decoders: exact texts from generated camera frames, nothing from empty ones, no exceptions."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pytest
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from passgate.hardware import decode
from passgate.hardware.camera import synth
from passgate.hardware.decode import ZbarDecoder, ZxingDecoder, default_decoder, make_decoder
from passgate.issuing.issuer import Issuer

SIZE = (640, 480)


@pytest.fixture(scope="module")
def pass_text() -> str:
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"test_decode").digest())
    text = Issuer(key, "NNov").issue("shopping", ["gate-1"], 1_700_000_000, 3600, pass_id=bytes(12))
    assert 200 < len(text) < 230  # a typical pass: QR version 8 at ECC M
    return text


def _frame(text: str | None, *, inverted: bool = False, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = synth.background(SIZE, rng)
    if text is not None:
        modules = synth.qr_modules(text)
        pose = synth.Pose(module_px=4.5, angle_deg=7, tilt_deg=5, tilt_dir_deg=30,
                          center=(330, 235))
        dark, light = (215.0, 30.0) if inverted else (35.0, 200.0)
        synth.place_code(frame, modules, pose, dark=dark, light=light, screen_modules=2)
    return synth.to_uint8(synth.noise(frame, 2.5, rng))


@pytest.fixture(scope="module")
def zbar() -> ZbarDecoder:
    try:
        return ZbarDecoder(try_invert=False)
    except ImportError as exc:
        pytest.skip(f"pyzbar needs the system library libzbar0 (apt install libzbar0): {exc}")


@pytest.fixture(scope="module")
def decoders(zbar) -> list:
    return [ZxingDecoder(), zbar]


def test_both_read_a_clean_pass_exactly(decoders, pass_text):
    frame = _frame(pass_text)
    for d in decoders:
        assert d.decode(frame) == [pass_text], d.name


def test_both_find_nothing_in_an_empty_frame(decoders):
    for seed in range(3):
        frame = _frame(None, seed=seed)
        for d in decoders:
            assert d.decode(frame) == [], d.name


def test_inverted_code_needs_inversion(pass_text, zbar):
    frame = _frame(pass_text, inverted=True)
    assert ZxingDecoder(try_invert=True).decode(frame) == [pass_text]
    assert ZxingDecoder(try_invert=False).decode(frame) == []
    assert zbar.decode(frame) == []
    assert ZbarDecoder(try_invert=True).decode(frame) == [pass_text]


def test_strided_views_are_read(decoders, pass_text):
    """The Picamera2 Y plane is a crop of a wider buffer: the decoders must honour strides."""
    frame = _frame(pass_text)
    wide = np.zeros((SIZE[1] * 3 // 2, SIZE[0] + 64), dtype=np.uint8)
    wide[: SIZE[1], : SIZE[0]] = frame
    view = wide[: SIZE[1], : SIZE[0]]
    assert not view.flags.c_contiguous
    transposed = np.ascontiguousarray(frame.T).T  # Fortran order: same image, other strides
    for d in decoders:
        assert d.decode(view) == [pass_text], d.name
        assert d.decode(transposed) == [pass_text], d.name


ODD = {
    "all zero": np.zeros((480, 640), np.uint8),
    "all 255": np.full((480, 640), 255, np.uint8),
    "1x1": np.zeros((1, 1), np.uint8),
    "0x0": np.zeros((0, 0), np.uint8),
    "1 row": np.zeros((1, 640), np.uint8),
    "every other column": (np.arange(480 * 640) % 256).astype(np.uint8).reshape(480, 640)[:, ::2],
    "reversed": np.random.default_rng(0).integers(0, 256, (120, 160), dtype=np.uint8)[::-1, ::-1],
    "checkerboard": (np.indices((240, 320)).sum(axis=0) % 2 * 255).astype(np.uint8),
    "read-only": np.zeros((50, 50), np.uint8).copy(),
}
ODD["read-only"].flags.writeable = False


@pytest.mark.parametrize("name", list(ODD))
def test_odd_frames_never_raise(decoders, name):
    for d in decoders:
        assert d.decode(ODD[name]) == [], d.name


@settings(max_examples=40, deadline=None)
@given(h=st.integers(0, 64), w=st.integers(0, 64), step=st.integers(1, 3), fill=st.integers(0, 255),
       noise=st.booleans())
def test_random_small_frames_never_raise(zbar, h, w, step, fill, noise):
    base = np.full((h * step, w * step), fill, np.uint8)
    if noise and base.size:
        base = np.random.default_rng(h * 1000 + w).integers(0, 256, base.shape, dtype=np.uint8)
    frame = base[::step, ::step]
    for d in (ZxingDecoder(), zbar):
        assert d.decode(frame) == []


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.float32), np.zeros((30, 30, 3), np.uint8),
                                 np.zeros(100, np.uint8), [[0, 0], [0, 0]]])
def test_not_a_grayscale_frame_is_a_programming_error(bad):
    with pytest.raises(ValueError, match="2-D uint8"):
        ZxingDecoder().decode(bad)


def test_micro_qr_is_not_a_pass():
    """zxing-cpp 3 includes Micro QR in 'QRCode'; a pass is never one, so none is reported."""
    img = segno.make_micro("376261")
    rows = np.array([list(r) for r in img.matrix_iter(scale=6, border=2)], dtype=bool)
    frame = np.full((200, 200), 220, np.uint8)
    frame[40:40 + rows.shape[0], 40:40 + rows.shape[1]] = np.where(rows, 30, 220)
    assert ZxingDecoder().decode(frame) == []


def test_backend_failure_is_logged_once_and_means_no_code(monkeypatch, caplog, pass_text):
    d = ZxingDecoder()

    def broken(*args, **kwargs):
        raise RuntimeError("backend exploded")

    monkeypatch.setattr(d._zx, "read_barcodes", broken)
    frame = _frame(pass_text)
    with caplog.at_level(logging.DEBUG, logger="passgate.hardware.decode"):
        assert d.decode(frame) == []
        assert d.decode(frame) == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "backend exploded" in warnings[0].getMessage()
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 1


def test_make_decoder():
    assert isinstance(default_decoder(), ZxingDecoder)
    assert default_decoder().try_invert is True
    assert make_decoder("zxing", try_invert=False).try_invert is False
    with pytest.raises(ValueError, match="unknown decoder 'opencv'"):
        make_decoder("opencv")
    assert set(decode.DECODERS) == {"zxing", "zbar"}


def test_make_decoder_zbar(zbar):
    d = make_decoder("zbar")
    assert isinstance(d, ZbarDecoder) and d.try_invert is True

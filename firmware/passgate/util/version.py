"""The one version of passgate: the ``version`` in ``pyproject.toml``.

Rules kept here:
- One source. ``pyproject.toml`` declares it; everything else (``passgate --version``,
  ``passgate-collector --version``, the self-test, every sync heartbeat and batch, the staff
  page, the Debian package's file name) reads it through :func:`version`.
- A source checkout wins over installed metadata: the tree being run is the truth, and an
  editable install's metadata is only as fresh as the last ``pip install -e``. So when a
  ``pyproject.toml`` naming the project ``passgate`` sits at the root of the checkout this
  runs from (``firmware/passgate/util`` -> three folders up), its version is used;
  otherwise (the venv in the Debian package) ``importlib.metadata``'s. Neither found:
  ``0+unknown``, never a guess
  that looks like a real release.
- Cheap and offline: stdlib only, read once, no hardware, no network.
"""

from __future__ import annotations

import functools
import importlib.metadata
import tomllib
from pathlib import Path

UNKNOWN = "0+unknown"
PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"


def from_pyproject(path: Path = PYPROJECT) -> str | None:
    """The version a source checkout's ``pyproject.toml`` declares, or None if there is none
    (an installed package) or it is another project's."""
    try:
        project = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    if project.get("name") != "passgate" or not isinstance(project.get("version"), str):
        return None
    return str(project["version"])


@functools.cache
def version() -> str:
    """passgate's version: the checkout's ``pyproject.toml``, else the installed metadata."""
    found = from_pyproject()
    if found is not None:
        return found
    try:
        return importlib.metadata.version("passgate")
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN

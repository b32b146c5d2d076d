"""The purpose table: which purposes exist, their labels and their longest validity.

A purpose's ``label`` is its English name; ``names`` optionally gives it per language
(``names = { ru = "Магазин", tt = "Кибет" }``), so a site names its purposes in the words its
staff and visitors read. A language with no name falls back to the label, never to blank.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from passgate.errors import TrustError
from passgate.util.timefmt import parse_duration

MAX_CODE = 65535
_PURPOSE_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,23}")


_LANG_RE = re.compile(r"[a-z]{2,3}")


def valid_names(names: object) -> bool:
    """Whether ``names`` is a table of language code (``ru``, ``tt``) -> non-empty name."""
    return isinstance(names, Mapping) and all(
        isinstance(k, str) and _LANG_RE.fullmatch(k) and isinstance(v, str) and v.strip()
        for k, v in names.items()
    )


@dataclass(frozen=True, slots=True)
class Purpose:
    id: str
    code: int  # what a pass carries
    label: str
    max_s: int | None  # None: open-ended
    names: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def name(self, lang: str = "en") -> str:
        """The purpose's name in language ``lang`` (``"ru"``), else its English label."""
        return self.names.get(lang) or self.label


class PurposeTable:
    def __init__(self, purposes: dict[str, Purpose]) -> None:
        self._by_id = dict(purposes)
        self._by_code = {p.code: p for p in self._by_id.values()}
        if len(self._by_code) != len(self._by_id):
            raise TrustError("purpose table: two purposes share a code")

    def get(self, purpose_id: str) -> Purpose | None:
        return self._by_id.get(purpose_id)

    def by_code(self, code: int) -> Purpose | None:
        return self._by_code.get(code)

    def label(self, purpose_id: str | None, lang: str = "en") -> str:
        """The name shown for ``purpose_id`` in ``lang``; an unknown id is shown as itself."""
        p = self._by_id.get(purpose_id or "")
        return p.name(lang) if p else (purpose_id or "")

    def __contains__(self, purpose_id: object) -> bool:
        return purpose_id in self._by_id

    def __iter__(self) -> Iterator[Purpose]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    @classmethod
    def from_toml(cls, text: str, where: str) -> PurposeTable:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise TrustError(f"{where}: not valid TOML: {exc}") from None
        table = doc.get("purposes")
        if not isinstance(table, dict) or not table:
            raise TrustError(f"{where}: needs a [purposes.ID] table per purpose")
        out: dict[str, Purpose] = {}
        codes: dict[int, str] = {}
        for pid, spec in table.items():
            if not _PURPOSE_ID_RE.fullmatch(pid) or not isinstance(spec, dict):
                raise TrustError(f"{where}: purposes.{pid}: bad purpose id or entry")
            unknown = set(spec) - {"code", "label", "max", "source", "names"}
            if unknown:
                raise TrustError(f"{where}: purposes.{pid}: unknown key {sorted(unknown)[0]!r}")
            label, max_text, code = spec.get("label", pid), spec.get("max", ""), spec.get("code")
            if not isinstance(label, str) or not isinstance(max_text, str):
                raise TrustError(f"{where}: purposes.{pid}: label and max must be strings")
            if type(code) is not int or not 0 <= code <= MAX_CODE:
                raise TrustError(
                    f"{where}: purposes.{pid}.code: an integer 0-{MAX_CODE} is required"
                )
            if code in codes:
                raise TrustError(f"{where}: purposes.{pid}.code: {code} is already {codes[code]!r}")
            codes[code] = pid
            try:
                max_s = parse_duration(max_text) if max_text else None
            except ValueError as exc:
                raise TrustError(f"{where}: purposes.{pid}.max: {exc}") from None
            names = spec.get("names", {})
            if not valid_names(names):
                raise TrustError(
                    f"{where}: purposes.{pid}.names: a table of language = name strings"
                )
            out[pid] = Purpose(pid, code, label, max_s, MappingProxyType(dict(names)))
        return cls(out)

    @classmethod
    def from_file(cls, path: Path) -> PurposeTable:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise TrustError(f"{path}: {exc.strerror}") from None
        return cls.from_toml(text, str(path))

    @classmethod
    def default(cls) -> PurposeTable:
        text = resources.files("passgate").joinpath("data/purposes.toml").read_text("utf-8")
        return cls.from_toml(text, "passgate/data/purposes.toml")

"""The exception tree: one module defines every error class, and nothing raises a bare built-in.

Rules pinned here (``passgate/errors.py`` states them):
- every exception class passgate defines lives in ``passgate/errors.py``; the collector's in
  ``passgate_collector/errors.py``;
- every passgate error derives from ``PassgateError``, every collector error from
  ``CollectorError``;
- no ``raise`` of a built-in exception class outside a short allowed list.
"""

from __future__ import annotations

import ast
import builtins
import inspect
from pathlib import Path

import pytest

import passgate
import passgate_collector
from passgate import errors
from passgate_collector import errors as collector_errors

FIRMWARE = Path(passgate.__file__).parent
COLLECTOR = Path(passgate_collector.__file__).parent
BUILTIN_EXCEPTIONS = frozenset(
    name for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, BaseException)
)
# A bug in the caller or an abstract method, never a user's input; KeyboardInterrupt is how a
# signal handler stops waitress.
ALLOWED_RAISES = frozenset({"NotImplementedError", "TypeError", "AssertionError",
                            "KeyboardInterrupt"})


def _modules(root: Path) -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(), str(p))) for p in sorted(root.rglob("*.py"))]


def _raised_builtins(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name) and target.id in BUILTIN_EXCEPTIONS:
                found.append((node.lineno, target.id))
    return found


def _exception_classes(tree: ast.Module, known: set[str]) -> list[tuple[int, str]]:
    """Classes whose bases name a built-in exception or an error class of the tree."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            names = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "")
                     for b in node.bases}
            if names & (BUILTIN_EXCEPTIONS | known):
                found.append((node.lineno, node.name))
    return found


def _tree_names(module) -> set[str]:
    return {n for n, o in vars(module).items()
            if inspect.isclass(o) and issubclass(o, BaseException)}


@pytest.mark.parametrize("root", [FIRMWARE, COLLECTOR], ids=["firmware", "collector"])
def test_no_module_raises_a_bare_builtin_exception(root):
    bad = [f"{p.relative_to(root.parent)}:{line} raise {name}"
           for p, tree in _modules(root)
           for line, name in _raised_builtins(tree) if name not in ALLOWED_RAISES]
    assert bad == [], "use a class of the error tree instead:\n" + "\n".join(bad)


@pytest.mark.parametrize("root, home", [(FIRMWARE, errors), (COLLECTOR, collector_errors)],
                         ids=["firmware", "collector"])
def test_exception_classes_are_defined_only_in_the_errors_module(root, home):
    known = _tree_names(errors) | _tree_names(collector_errors)
    bad = [f"{p.relative_to(root.parent)}:{line} class {name}"
           for p, tree in _modules(root) if p != Path(home.__file__)
           for line, name in _exception_classes(tree, known)]
    assert bad == [], "define it in the errors module instead:\n" + "\n".join(bad)


def test_the_walker_sees_what_it_must_refuse():
    # The rule tests above pass on an empty list; prove the walker finds both kinds of offence.
    tree = ast.parse("class E(ValueError): pass\nclass F(TrustError): pass\n"
                     "def f():\n    raise ValueError('x')\n\ndef g():\n    raise KeyError\n"
                     "def h():\n    raise\n")
    assert _raised_builtins(tree) == [(4, "ValueError"), (7, "KeyError")]
    assert _exception_classes(tree, {"TrustError"}) == [(1, "E"), (2, "F")]


def test_every_passgate_error_derives_from_passgate_error():
    classes = [o for o in vars(errors).values()
               if inspect.isclass(o) and issubclass(o, BaseException)]
    assert len(classes) > 10
    assert [c.__name__ for c in classes if not issubclass(c, errors.PassgateError)] == []
    # ... and from the built-in its callers catch.
    for cls in (errors.UsageError, errors.ConfigError, errors.TrustError, errors.BundleRefused,
                errors.PassFormatError, errors.ArgumentError, errors.Refused):
        assert issubclass(cls, ValueError), cls
    for cls in (errors.HardwareError, errors.JournalError, errors.Transient, errors.LinkError):
        assert issubclass(cls, OSError), cls
    assert issubclass(errors.RowPruned, LookupError)


def test_every_collector_error_derives_from_collector_error():
    classes = [o for o in vars(collector_errors).values()
               if inspect.isclass(o) and issubclass(o, BaseException)]
    assert {c.__name__ for c in classes} >= {"CollectorError", "ProtocolError", "StoreError",
                                             "PgUnavailable"}
    assert [c.__name__ for c in classes if not issubclass(c, collector_errors.CollectorError)] == []


def test_there_is_one_usage_error():
    from passgate_collector import cli as collector_cli

    assert collector_cli.UsageError is errors.UsageError

"""The package's layers, read from the source with ``ast`` (model: aioesphomeapi's
``tests/test_lazy_imports.py``).

Rules (written down in ``docs/architecture.md``):

1. Layer order of the sub-packages of ``firmware/passgate``, lowest first (``LAYERS``); a
   module may import its own layer and lower ones, never a higher one, at module level or
   inside a function.
2. No cycle between modules through module-level imports.
3. The scanner's packages (``SCANNER``) never import ``passgate.sync``, the collector or a
   network library (``socket``, ``urllib.request``, ``http``, ``ssl``, ``requests``): the
   checkpoint never opens a network connection. Also checked at run time in a fresh
   interpreter.
4. An import inside a function is either the command line's per-sub-command loading
   (``passgate.cli``), an optional heavy dependency (``LAZY_OK``), or a passgate module
   that loads one; never a light module imported late only to dodge a cycle. Imports under
   ``if TYPE_CHECKING:`` never run, so this rule and rule 2 skip them; rule 1 does not.

``ALLOWED`` lists the exceptions, each with its reason. A negative control runs the checker
on a small synthetic tree that breaks every rule.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import passgate

ROOT = Path(passgate.__file__).resolve().parent

# Lowest first; names in one tuple share a layer. Why this order: options is the kit each part
# declares its own config keys with (it needs only errors and util); passes is the verifier
# (format, signatures, trust); clock and bundle build on its keys; journal records verdicts
# and times; issuing makes passes (the synthetic camera draws them); hardware adapts camera,
# display and outputs; config declares every part's settings; checkpoint assembles the loop;
# sync talks to the collector; selftest and provision use all of these; cli is the top.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "util", "data", "__init__"),
    ("options",),
    ("passes",),
    ("release",),
    ("clock",),
    ("bundle",),
    ("journal",),
    ("issuing",),
    ("hardware",),
    ("config",),
    ("checkpoint",),
    ("sync", "update"),
    ("selftest", "provision"),
    ("cli",),
)
SCANNER = ("options", "passes", "clock", "bundle", "journal", "hardware", "config", "checkpoint")
NETWORK = ("socket", "urllib.request", "http", "ssl", "requests", "passgate.sync",
           "passgate_collector")
LAZY_OK = ("picamera2", "libcamera", "luma", "cv2", "flask", "gpiozero", "lgpio", "RPi",
           "zxingcpp", "pyzbar", "numpy", "segno", "tqdm", "PIL")

# (importing module, imported module or package) -> why it is allowed.
ALLOWED: dict[tuple[str, str], str] = {
    ("passgate.checkpoint.sdnotify", "socket"):
        "systemd's notify protocol: one AF_UNIX datagram to the local service manager, "
        "no network",
    ("passgate.config.load", "socket"):
        "socket.gethostname() names the device by default; it opens no socket",
    ("passgate.issuing.qr", "passgate.hardware.decode"):
        "'verify --image' decodes a picture with the scanner's decoder; loads numpy and "
        "zxing-cpp, so only inside decode_image_file",
}

@dataclass(frozen=True)
class Import:
    source: str  # importing module, e.g. passgate.cli.verify
    target: str  # imported module, e.g. passgate.passes.verify or numpy
    line: int
    lazy: bool  # inside a function: runs late, when the function is called
    typing: bool = False  # under ``if TYPE_CHECKING:``: never runs, read only by mypy


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path, root: Path, modules: set[str]) -> list[Import]:
    """Every absolute import in ``path``; ``from a import b`` names ``a.b`` when b is a
    module of ours. Imports under ``if TYPE_CHECKING:`` are marked ``typing``: they never
    run, so rule 4 (late imports) and the cycle rule skip them; rule 1 (layers) does not,
    since a type named from a higher layer still couples the lower one to it."""
    source = module_name(path, root)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool, typing: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            typed = typing or (isinstance(child, ast.If)
                               and "TYPE_CHECKING" in ast.unparse(child.test))
            if isinstance(child, ast.Import):
                found.extend(Import(source, a.name, child.lineno, lazy, typing)
                             for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                if child.module == "__future__":
                    continue
                for a in child.names:
                    sub = f"{child.module}.{a.name}"
                    target = sub if sub in modules else child.module
                    found.append(Import(source, target, child.lineno, lazy, typing))
            visit(child, inner, typed)

    visit(tree, False, False)
    return found


def scan(root: Path) -> list[Import]:
    files = sorted(root.rglob("*.py"))
    modules = {module_name(f, root) for f in files}
    return [imp for f in files for imp in imports_of(f, root, modules)]


def is_under(name: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in list(edges):
        if v not in index:
            strong(v)
    return found


def violations(root: Path, top: str = "passgate",
               allowed: dict[tuple[str, str], str] = ALLOWED) -> list[str]:
    """Every broken rule in the package at ``root`` (named ``top``), one line each."""
    imports = scan(root)
    rank = {name: i for i, names in enumerate(LAYERS) for name in names}
    found: list[str] = []

    def bad(imp: Import, why: str) -> None:
        if (imp.source, imp.target) not in allowed:
            found.append(f"{imp.source}:{imp.line} imports {imp.target}: {why}")

    eager: dict[str, set[str]] = {}
    for imp in imports:
        mine = is_under(imp.target, top)
        if mine:
            src, dst = layer_of(imp.source), layer_of(imp.target)
            if rank.get(dst, -1) > rank.get(src, -1):
                bad(imp, f"layer {dst} is above {src}")
            if not imp.lazy and not imp.typing:
                eager.setdefault(imp.source, set()).add(imp.target)
        if layer_of(imp.source) in SCANNER and is_under(
                imp.target, tuple(n.replace("passgate", top, 1) for n in NETWORK)):
            bad(imp, "the scanner opens no network connection")
    heavy = loads_heavy(eager, {(i.source, i.target) for i in imports
                                if not i.lazy and not i.typing})
    for imp in imports:
        if not imp.lazy or imp.typing or layer_of(imp.source) == "cli":
            continue
        if is_under(imp.target, top):
            if imp.target in heavy:
                continue
            bad(imp, "a late import of a light module (move it to the top)")
        elif not is_under(imp.target, LAZY_OK):
            bad(imp, "a late import that is not an optional heavy dependency")
    for comp in cycles(eager):
        found.append("import cycle: " + " -> ".join(comp))
    return found


def loads_heavy(eager: dict[str, set[str]], top_level: set[tuple[str, str]]) -> set[str]:
    """Our modules whose module-level imports reach an optional heavy dependency."""
    heavy = {source for source, target in top_level if is_under(target, LAZY_OK)}
    changed = True
    while changed:
        changed = False
        for module, targets in eager.items():
            if module not in heavy and any(is_under(t, LAZY_OK) or t in heavy for t in targets):
                heavy.add(module)
                changed = True
    return heavy


def test_the_package_keeps_its_layers() -> None:
    assert violations(ROOT) == []


def test_every_allowed_exception_is_still_used() -> None:
    """An exception whose import is gone must be struck from ALLOWED."""
    seen = {(i.source, i.target) for i in scan(ROOT)}
    assert set(ALLOWED) <= seen, set(ALLOWED) - seen


def test_every_subpackage_has_a_layer() -> None:
    named = {name for names in LAYERS for name in names}
    present = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
               if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
    assert present <= named, present - named


def test_the_scanner_loads_no_network_module_at_run_time() -> None:
    """Importing every scanner module leaves no network client and no sync code loaded."""
    names = sorted(module_name(f, ROOT) for f in ROOT.rglob("*.py")
                   if layer_of(module_name(f, ROOT)) in SCANNER)
    code = ("import importlib, json, sys\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT.parent)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    forbidden = ("urllib.request", "http.client", "ssl", "requests", "passgate.sync",
                 "passgate_collector")
    assert [m for m in loaded if is_under(m, forbidden)] == []


def test_the_checker_finds_a_bad_graph(tmp_path: Path) -> None:
    """Negative control: a synthetic package breaking each rule once."""
    pkg = tmp_path / "fake"
    files = {
        "__init__.py": "",
        "passes/__init__.py": "",
        "passes/a.py": "from fake.passes import b\nfrom fake.cli import main\n",
        "passes/b.py": "from fake.passes import a\n",
        "journal/__init__.py": "",
        "journal/c.py": "import socket\n\ndef f():\n    import json\n"
                        "    from fake.passes import b\n",
        "journal/d.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                        "    from fake.cli import main\n    from fake.passes import a\n",
        "cli/__init__.py": "def main():\n    import json\n",
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    found = "\n".join(violations(pkg, top="fake", allowed={}))
    assert "fake.passes.a:2 imports fake.cli: layer cli is above passes" in found
    assert "import cycle: fake.passes.a -> fake.passes.b" in found
    assert "fake.journal.c:1 imports socket: the scanner opens no network" in found
    assert "fake.journal.c:4 imports json: a late import that is not" in found
    assert "fake.journal.c:5 imports fake.passes.b: a late import of a light module" in found
    # A type-only import never runs: it is no late import, but it still may not go upward.
    assert "fake.journal.d:4 imports fake.cli: layer cli is above journal" in found
    assert "fake.journal.d:4 imports fake.cli: a late import" not in found
    assert "fake.journal.d:5" not in found
    assert "fake.cli" not in found.replace("imports fake.cli", "")  # cli may load late

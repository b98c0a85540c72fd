"""The package's folders are its architecture (docs/architecture.md): each folder imports only the
folders below it, no module imports another in a loop, and no module runs over 400 lines."""
from __future__ import annotations

import ast
from pathlib import Path

import chromosomenet

PACKAGE = Path(chromosomenet.__file__).parent
# From the ground up, as docs/architecture.md lists them; "" is the package's own top-level modules.
FLOORS = ("", "metrics", "data", "models", "pipeline", "importers", "training", "evaluation", "apps")
MAX_LINES = 400
# What may come from the package itself: its version string, and the shipped models' data package
# (the checkout's models/ folder, installed as chromosomenet.shipped_models).
FROM_PACKAGE = {"__version__", "shipped_models"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).with_suffix("")
        if rel.parts[0].startswith("sample"):
            continue
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(["chromosomenet", *parts])] = path
    return out


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``module`` imports (relative imports resolved, ``from X import mod`` too)."""
    is_pkg = path.name == "__init__.py"
    here = module.split(".") if is_pkg else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            subs = {f"{target}.{a.name}" for a in node.names} & known
            found.update(subs)
            names = {a.name for a in node.names} - (FROM_PACKAGE if target == "chromosomenet" else set())
            if len(subs) < len(names):  # some name is defined in `target` itself
                found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in known and m != module}


def _floor(module: str) -> int:
    parts = module.split(".")[1:]
    folder = parts[0] if len(parts) > 1 or (parts and parts[0] in FLOORS) else ""
    return FLOORS.index(folder)


def test_every_module_sits_in_a_known_folder():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert folders - {"sample", "sample_metaphases"} == set(FLOORS) - {""}


def test_folders_import_only_the_folders_below_them():
    mods = _modules()
    known = set(mods)
    upward = []
    for m, path in mods.items():
        if m == "chromosomenet" or m.endswith("__main__"):
            continue  # the package's face and `python -m` stand above everything by design
        for target in _imports(m, path, known):
            if target == "chromosomenet":
                upward.append(f"{m} imports the package's __init__ (import the module that defines the name)")
            elif _floor(target) > _floor(m):
                upward.append(f"{m} → {target}")
    assert not upward, "imports that run back up:\n" + "\n".join(sorted(upward))


def test_no_import_loops():
    mods = _modules()
    graph = {m: _imports(m, p, set(mods)) - {"chromosomenet"} for m, p in mods.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> list[str] | None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                return stack + [m, t]
            if t not in state and (loop := visit(t, stack + [m])):
                return loop
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            loop = visit(m, [])
            assert loop is None, " → ".join(loop)


def test_no_module_over_400_lines():
    long = {m: n for m, p in _modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_the_layout_check_sees_an_upward_import(tmp_path):
    """The check itself: a data module that imported the pipeline would be caught."""
    fake = tmp_path / "fake.py"
    fake.write_text("from ..pipeline.detect import load_detector\n")
    mods = _modules()
    targets = _imports("chromosomenet.data.fake", fake, set(mods))
    assert targets == {"chromosomenet.pipeline.detect"}
    assert _floor("chromosomenet.pipeline.detect") > _floor("chromosomenet.data.fake")

"""docs/architecture.md's rooms: what each may import, read from the code's own import statements."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"
# What api, worker and control may use of the projector.
PUBLIC_PROJECTOR = {"projector.queries", "projector.views", "projector.apply"}
MAY_IMPORT = {
    "kernel": set(),
    "orchestrator": {"kernel"},
    "projector": {"kernel"},
    "replay": {"kernel", "projector"},
    "worker": {"kernel", "projector"},
    "control": {"kernel", "projector", "audit"},
    "api": {"kernel", "projector", "control"},
    "audit": {"kernel"},
    "health": {"kernel"},
    "backup": {"kernel", "projector"},
}


def imports() -> list[tuple[str, str]]:
    """(importing module, imported module) for every import of Darkroom's own code, as dotted paths
    under services/ ("worker.service", "kernel.bus")."""
    found = []
    for path in SERVICES.rglob("*.py"):
        module = path.relative_to(SERVICES).with_suffix("").parts
        package = module[:-1] if module[-1] != "__init__" else module[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - node.level + 1]
                target = (*base, *(node.module or "").split(".")) if node.module else base
                names = [target] if node.module else [(*base, alias.name) for alias in node.names]
                found += [(".".join(module), ".".join(part for part in name if part)) for name in names]
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                absolute = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                found += [
                    (".".join(module), name.split(".", 1)[1])
                    for name in absolute
                    if name.startswith(("darkroom.", "services."))
                ]
    return found


def room(module: str) -> str:
    return module.split(".")[0]


def test_the_rules_see_the_imports():
    found = imports()
    assert ("worker.service", "kernel.bus") in found and ("replay.rebuild", "projector.store") in found


def test_each_room_imports_only_the_rooms_it_may():
    wrong = [
        (a, b)
        for a, b in imports()
        if room(a) in MAY_IMPORT and room(b) != room(a) and room(b) not in MAY_IMPORT[room(a)]
    ]
    assert wrong == []


def test_the_api_the_worker_and_the_controls_use_only_the_projectors_public_face():
    wrong = [
        (a, b)
        for a, b in imports()
        if room(a) in ("api", "worker", "control") and room(b) == "projector" and b not in PUBLIC_PROJECTOR
    ]
    assert wrong == []


def test_nothing_imports_the_api_or_the_cli_but_the_composition_root():
    wrong = [
        (a, b) for a, b in imports() if room(b) in ("api", "cli") and room(a) != room(b) and a not in ("runtime", "cli")
    ]
    assert wrong == []


def test_the_pure_decisions_reach_no_nats_not_even_through_the_kernel():
    edges: dict[str, set[str]] = {}
    for a, b in imports():
        edges.setdefault(a, set()).add(b)
    for pure in (
        "orchestrator.decide",
        "orchestrator.state",
        "projector.apply",
        "worker.plans",
        "worker.moving",
        "worker.lifecycle",
        "kernel.messages",
        "kernel.lanes",
    ):
        reached, todo = set(), [pure]
        while todo:
            module = todo.pop()
            if module not in reached:
                reached.add(module)
                todo += [m for m in edges.get(module, ()) if (SERVICES / (m.replace(".", "/") + ".py")).is_file()]
        outside = {name for module in reached for name in _third_party(module)}
        assert not outside & {"nats", "aiohttp", "aiosqlite"}, (pure, sorted(reached))


def _third_party(module: str) -> set[str]:
    tree = ast.parse((SERVICES / (module.replace(".", "/") + ".py")).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and not n.level]
    return {n.split(".")[0] for n in names}


def test_every_package_of_the_tree_ships_in_the_wheel():
    listed = set(tomllib.loads((SERVICES.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(("darkroom", *p.parent.relative_to(SERVICES).parts)) for p in SERVICES.rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)

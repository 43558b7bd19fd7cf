"""The house's layering, read from the code: no import circle, arrows pointing down only, and torch,
diffusers and transformers imported only on the torch side (generation/worker/, which also holds the
LLM prompt writer's llm/, KCF's estimator and worker, the eval worker). Lazy imports inside
functions count."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dst3d_addon"
#: The modules allowed to import torch, diffusers and transformers.
TORCH_SIDE = (
    "dst3d_addon.generation.worker",
    "dst3d_addon.kcf.estimator",
    "dst3d_addon.kcf.worker",
    # The eval stage's worker process: it trains KCF's estimator (the rest of eval/ is torch-free).
    "dst3d_addon.eval.worker",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def imports_of(name: str) -> set[str]:
    """The package's modules `name` imports (resolved to modules that exist)."""
    path = MODULES[name]
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                module = ".".join(anchor + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
    resolved = set()
    for target in found:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target and target not in ("dst3d_addon", name) and not name.startswith(target + "."):
            resolved.add(target)
    return resolved


GRAPH = {name: imports_of(name) for name in MODULES}


def test_no_import_circle():
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(GRAPH[name]):
            assert state.get(target) != 1, "import circle: " + " -> ".join([*path, name, target])
            if target not in state:
                visit(target, [*path, name])
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [])


def test_arrows_point_down():
    upward = []
    for name, targets in GRAPH.items():
        for target in targets:
            if name.startswith("dst3d_addon.core") and not target.startswith("dst3d_addon.core"):
                upward.append(f"{name} -> {target}")
            if target.startswith("dst3d_addon.cli") and not name.startswith("dst3d_addon.cli"):
                upward.append(f"{name} -> {target}")
    assert not upward, upward
    for path in PACKAGE.rglob("*.py"):
        assert "import tools" not in path.read_text() and "from tools" not in path.read_text(), path


BLOCKED_IMPORTS = """
import importlib, importlib.abc, json, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in {"torch", "diffusers", "transformers"}:
            raise ImportError(f"blocked: {fullname}")

import bpy  # Blender's own modules (mathutils, addon_utils) exist only after it
sys.meta_path.insert(0, Block())
failed = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(failed))
"""


def test_only_the_torch_side_imports_torch(tmp_path):
    names = [n for n in MODULES if not n.startswith(TORCH_SIDE) and not n.endswith("__main__")]
    env = {"BLENDER_USER_RESOURCES": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORTS, json.dumps(names)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {}
    assert len(names) > 60  # every module outside the torch side was tried


def third_party_roots(name: str) -> set[str]:
    """The top-level names of the modules `name` imports (its own package's included)."""
    roots = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_only_the_cluster_layer_imports_ray_and_it_stands_on_core():
    """Ray is the cluster layer's alone (the doors reach it only with --ray), and that layer
    needs nothing of the package but core: it hosts the other layers' workers, it knows none."""
    importers = sorted(name for name in MODULES if "ray" in third_party_roots(name))
    assert importers and all(name.startswith("dst3d_addon.cluster.") for name in importers), importers
    for name in MODULES:
        if name.startswith("dst3d_addon.cluster"):
            above = [t for t in GRAPH[name] if not t.startswith(("dst3d_addon.core", "dst3d_addon.cluster"))]
            assert not above, (name, above)

"""The import rules of the package layout, checked from the source (ast), so they stay true.

Layers, bottom up:
  core        tfapp/core/ (and the tfapp package itself): config, data, backbone, distribute,
              run dirs, logging, errors, the task contract and registry
  workflows   tfapp/serving/ < tfapp/scoring/, tfapp/training/ < tfapp/pretraining/,
              tfapp/compression/
              < tfapp/levers/ < tfapp/hyperparameter_search/
  tasks       tasks/<task>/: one package per task with its scenario code
  commands    modules directly in tfapp/ (python -m tfapp.<command>) and bench/

Rules: no import cycles between modules (imports inside functions count too); core imports
only core; a workflow imports core and workflows below it, never a task or a command; a task
imports core and its own package only; nothing but a command imports a command.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO

ROOTS = ("tfapp", "tasks", "bench")
WORKFLOW_RANK = {"serving": 1, "scoring": 2, "training": 2, "pretraining": 3, "compression": 3,
                 "levers": 4, "hyperparameter_search": 5}


def module_files(repo: Path) -> dict[str, Path]:
    """{dotted module name: file} for every .py file under the project's roots."""
    modules = {}
    for root in ROOTS:
        for path in sorted((repo / root).rglob("*.py")):
            parts = list(path.relative_to(repo).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `path` imports anywhere in its body (top level or inside a
    function); `from pkg import name` counts as importing pkg.name when that is a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules
                     else node.module for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:  # `import a.b.c` of a name inside a.b
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_graph(repo: Path) -> dict[str, set[str]]:
    modules = module_files(repo)
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def layer(module: str) -> tuple:
    """(layer name, detail) of a module."""
    parts = module.split(".")
    if parts[0] == "bench":
        return ("command", module)
    if parts[0] == "tasks":
        return ("task", parts[1] if len(parts) > 1 else None)
    if len(parts) == 1 or parts[1] == "core":
        return ("core", None)
    if parts[1] in WORKFLOW_RANK:
        return ("workflow", parts[1])
    return ("command", module)


def violation(src: str, dst: str):
    """Why the import src -> dst breaks a rule, or None."""
    (s_layer, s_detail), (d_layer, d_detail) = layer(src), layer(dst)
    if s_layer == "command":
        return None
    if d_layer == "command":
        return "only commands import command modules"
    if s_layer == "core" and d_layer != "core":
        return "the core imports only the core"
    if s_layer == "workflow":
        if d_layer == "task":
            return "a workflow never imports a task (it talks to the Task contract)"
        if d_layer == "workflow" and WORKFLOW_RANK[d_detail] >= WORKFLOW_RANK[s_detail] \
                and d_detail != s_detail:
            return f"workflow {s_detail} may import only workflows below it"
    if s_layer == "task":
        if d_layer == "workflow":
            return "a task imports the core and the Task contract, never a workflow"
        if d_layer == "task" and d_detail != s_detail:
            return "a task imports only its own package"
    return None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def problems(repo: Path) -> list[str]:
    graph = import_graph(repo)
    found = [f"cycle: {' <-> '.join(c)}" for c in cycles(graph)]
    for src in sorted(graph):
        for dst in sorted(graph[src]):
            why = violation(src, dst)
            if why:
                found.append(f"{src} -> {dst}: {why}")
    return found


def test_the_package_keeps_its_import_rules():
    assert problems(REPO) == []


def test_the_layers_are_where_the_tree_says():
    graph = import_graph(REPO)
    assert {"tfapp.core.config", "tfapp.training.driver", "tfapp.serving.saved_model",
            "tfapp.compression.distillation", "tfapp.pretraining.masked_lm", "tasks.qa.task",
            "tasks.sentiment.opinion_monitor", "tasks.recommend.model", "tfapp.train"} <= set(graph)
    # The checker sees imports made inside functions, where the old cycles hid.
    assert "tfapp.training.restore" in graph["tfapp.export"]


@pytest.mark.parametrize("files, expected", [
    ({"tfapp/core/a.py": "from tfapp.training import b\n", "tfapp/training/b.py": ""},
     "tfapp.core.a -> tfapp.training.b: the core imports only the core"),
    ({"tfapp/serving/a.py": "def f():\n    from tfapp.training.b import x\n",
      "tfapp/training/b.py": "x = 1\n"},
     "tfapp.serving.a -> tfapp.training.b: workflow serving may import only workflows "
     "below it"),
    ({"tasks/qa/a.py": "import tfapp.train\n", "tfapp/train.py": ""},
     "tasks.qa.a -> tfapp.train: only commands import command modules"),
    ({"tasks/qa/a.py": "from tasks.sentiment import b\n", "tasks/sentiment/b.py": ""},
     "tasks.qa.a -> tasks.sentiment.b: a task imports only its own package"),
    ({"tfapp/core/a.py": "from tfapp.core import b\n",
      "tfapp/core/b.py": "def f():\n    import tfapp.core.a\n"},
     "cycle: tfapp.core.a <-> tfapp.core.b"),
])
def test_the_checker_catches_each_kind_of_violation(tmp_path, files, expected):
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for root in ROOTS:
        (tmp_path / root).mkdir(exist_ok=True)
    assert expected in problems(tmp_path)


def name_clashes(repo: Path) -> list[str]:
    """Module or package names used at two levels of tfapp/ and tasks/ (a command and a
    workflow module both called `export`, ...). Modules of sibling task packages may share
    names: every task has its own `task`, `model`, ..."""
    seen: dict[str, set[str]] = {}
    for root in ("tfapp", "tasks"):
        for path in sorted((repo / root).rglob("*.py")):
            rel = path.relative_to(repo)
            if path.stem == "__init__":  # a package: its name, in its parent
                if len(rel.parts) > 2:
                    name, parent = rel.parts[-2], rel.parts[:-2]
                else:
                    continue
            else:
                name, parent = path.stem, rel.parts[:-1]
            where = "tasks/*" if parent[0] == "tasks" and len(parent) > 1 else "/".join(parent)
            seen.setdefault(name, set()).add(where)
    return sorted(f"{name}: {', '.join(sorted(places))}" for name, places in seen.items()
                  if len(places) > 1)


def test_no_two_modules_share_a_name_at_two_levels():
    assert name_clashes(REPO) == []


def test_the_clash_checker_sees_a_command_and_a_workflow_module_of_one_name(tmp_path):
    for rel in ("tfapp/export.py", "tfapp/serving/__init__.py", "tfapp/serving/export.py",
                "tasks/qa/__init__.py", "tasks/qa/model.py", "tasks/recommend/model.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert name_clashes(tmp_path) == ["export: tfapp, tfapp/serving"]

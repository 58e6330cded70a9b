"""The package's import rules (README, Layout): no cycles; the deploy side may import the training side,
never the reverse; the Lava worker's modules import no torch."""
import ast
import subprocess
import sys

import pytest

TRAINING_SIDE = ["ddla_neuro.snn", "ddla_neuro.zoo", "ddla_neuro.ddla", "ddla_neuro.ddla.executor",
                 "ddla_neuro.data", "ddla_neuro.checkpoint", "ddla_neuro.train", "ddla_neuro.train_config",
                 "ddla_neuro.analyze", "ddla_neuro.modelcard"]


def loaded_after(imports: list[str]) -> set[str]:
    """The modules a fresh interpreter holds after importing `imports`."""
    code = f"import sys\nfor m in {imports!r}: __import__(m)\nprint('\\n'.join(sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


def test_the_training_side_never_imports_deploy():
    modules = loaded_after(TRAINING_SIDE)
    assert "ddla_neuro.snn" in modules  # the probe works
    assert not {m for m in modules if m.startswith("ddla_neuro.deploy")}


@pytest.mark.parametrize("module", ["ddla_neuro.deploy.lava_run", "ddla_neuro.deploy.lava_worker",
                                    "ddla_neuro.deploy.isolation", "ddla_neuro.deploy.lava_stages",
                                    "ddla_neuro.deploy.lava.models"])
def test_the_lava_side_imports_no_torch(module):
    modules = loaded_after([module])
    assert module in modules
    assert "torch" not in modules


def test_the_readme_layout_names_every_module():
    """README's Layout section lists every module of the package (a newcomer's map of the tree)."""
    from conftest import ROOT
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    layout = layout[: layout.index("```", layout.index("```") + 3)]
    modules = [p for p in (ROOT / "ddla_neuro").rglob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert len(modules) > 40
    missing = sorted(str(p.relative_to(ROOT)) for p in modules if p.name not in layout)
    assert not missing, f"not in README's Layout: {missing}"


def _imports(path, package: str) -> set[str]:
    """The package modules `path` imports at run time (not under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", "") == "TYPE_CHECKING" for n in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
            continue
        base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
        target = ".".join(base + ([node.module] if node.module else []))
        found.update([target, *(f"{target}.{a.name}" for a in node.names)])
    return found


def test_the_package_has_no_import_cycles():
    from graphlib import CycleError, TopologicalSorter

    from conftest import ROOT
    modules = {}
    for p in (ROOT / "ddla_neuro").rglob("*.py"):
        name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = p
    graph = {}
    for name, p in modules.items():
        package = name if p.name == "__init__.py" else name.rsplit(".", 1)[0]
        graph[name] = {m for m in _imports(p, package) if m in modules and m != name and not name.startswith(m + ".")}
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as e:
        pytest.fail(f"import cycle: {' -> '.join(e.args[1])}")
    assert graph["ddla_neuro.deploy.pipeline"] >= {"ddla_neuro.deploy.loading", "ddla_neuro.deploy.sim"}  # it reads

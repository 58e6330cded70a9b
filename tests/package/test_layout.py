"""The package's import rules (README, Layout): the deploy side may import the training side,
never the reverse; the Lava worker's modules import no torch."""
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

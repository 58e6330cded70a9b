"""The wheel carries its data: built and installed (not editable), the deploy command finds the
shipped profiles and model from any directory."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_installed_wheel_deploys_the_shipped_model_from_another_directory(tmp_path):
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)], check=True,
                   capture_output=True, timeout=300)
    (wheel,) = wheels.glob("ddla_neuro-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True,
                   capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target)}  # the wheel's copy first, not the editable source tree
    where = subprocess.run([sys.executable, "-c", "import ddla_neuro.deploy.profiles as p, "
                            "ddla_neuro.deploy.loading as d; print(p.PROFILE_DIR); print(d.DEFAULT_CHECKPOINT)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(target)) for line in where.stdout.split()), where.stdout
    r = subprocess.run([sys.executable, "-m", "ddla_neuro.deploy", "--profile", "loihi2", "--backend", "fast",
                        "--samples", "20", "--out", "report"], cwd=elsewhere, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    report = json.loads((elsewhere / "report" / "report.json").read_text())
    assert report["profile"]["name"] == "loihi2" and report["run"]["samples"] == 20

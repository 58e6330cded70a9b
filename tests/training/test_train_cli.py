"""python -m ddla_neuro.train end to end: summary, determinism, eval, resume, DDP, bad input."""
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import fields

import pytest
import torch

from conftest import ROOT, STAT_PPID, processes_where, run_module
from ddla_neuro.errors import UserError
from ddla_neuro.train_config import build_parser
from ddla_neuro.train_config import TrainConfig, check_config, starting_point

pytestmark = pytest.mark.slow  # trains networks in subprocesses

SUMMARY_KEYS = {"test_accuracy", "spikes_per_sample", "spikes_per_layer", "spikes_per_timestep", "wall_s", "device"}


def test_summary_and_checkpoint(trained_digits):
    s = json.loads((trained_digits / "summary.json").read_text())
    assert SUMMARY_KEYS <= s.keys()
    assert 0.5 < s["test_accuracy"] <= 1.0  # 2 epochs of an MLP on digits is far above chance (0.1)
    assert len(s["spikes_per_timestep"]) == 2
    assert abs(sum(s["spikes_per_layer"].values()) - s["spikes_per_sample"]) < 1e-6
    meta = json.loads((trained_digits / "model.json").read_text())
    assert meta["arch"]["name"] == "mlp" and meta["seed"] == 3 and meta["timesteps"] == 2


def test_same_seed_is_bit_identical(trained_digits, tmp_path):
    r = run_module("ddla_neuro.train", "--model", "mlp", "--timesteps", "2", "--epochs", "2", "--seed", "3",
                   "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    a = torch.load(trained_digits / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (trained_digits, tmp_path))
    for key in ("test_accuracy", "spikes_per_sample", "spikes_per_layer_timestep"):
        assert sa[key] == sb[key]


def test_eval_reproduces_the_training_accuracy(trained_digits, tmp_path):
    r = run_module("ddla_neuro.train", "--eval", str(trained_digits / "model.pt"), "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    ev = json.loads((tmp_path / "summary.json").read_text())
    tr = json.loads((trained_digits / "summary.json").read_text())
    assert ev["test_accuracy"] == tr["test_accuracy"]
    assert ev["spikes_per_sample"] == tr["spikes_per_sample"]


def test_the_config_holds_every_flag_and_what_a_checkpoint_fixes(trained_digits):
    """TrainConfig is the parser's namespace, typed; an --init checkpoint fixes the architecture
    in a new config, the one given is left as it was."""
    assert {a.dest for a in build_parser()._actions if a.dest != "help"} == {f.name for f in fields(TrainConfig)}
    given = TrainConfig(init=str(trained_digits / "model.pt"), model="vgg", timesteps=9)
    config, resumed, init = starting_point(given)
    assert resumed is None and init is not None
    assert (config.model, config.timesteps) == ("mlp", 2) and (given.model, given.timesteps) == ("vgg", 9)
    assert check_config(TrainConfig(keep="0.7:0.3")).keep == [0.7, 0.3]
    with pytest.raises(UserError, match=r"--lam must lie in \[0, 1\], got 2.0"):
        check_config(TrainConfig(lam=2.0))
    with pytest.raises(UserError, match=r"--warmup-epochs \(3\) must be fewer than --epochs \(3\)"):
        check_config(TrainConfig(epochs=3, warmup_epochs=3))


def test_resume_continues_where_it_stopped(tmp_path):
    common = ["--model", "mlp", "--timesteps", "2", "--seed", "5"]
    full, part = tmp_path / "full", tmp_path / "part"
    assert run_module("ddla_neuro.train", *common, "--epochs", "3", "--out", str(full)).returncode == 0
    # the same schedule, interrupted after 2 epochs: a 3-epoch run whose checkpoint we take at epoch 2
    r = run_module("ddla_neuro.train", *common, "--epochs", "3", "--stop-after", "2", "--out", str(part))
    assert r.returncode == 0, r.stderr
    assert json.loads((part / "model.json").read_text())["epoch"] == 2
    r = run_module("ddla_neuro.train", "--resume", str(part / "model.pt"), *common, "--epochs", "3", "--out", str(part))
    assert r.returncode == 0, r.stderr
    a = torch.load(full / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(part / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ddp_two_cpu_processes_with_gloo(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "ddla_neuro.train", "--model", "mlp", "--timesteps", "2", "--epochs", "1",
           "--batch-size", "32", "--device", "cpu", "--out", str(tmp_path)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["world_size"] == 2 and s["ddp_params_in_sync"] is True
    assert s["test_accuracy"] > 0.2


def test_bad_input_one_line_no_traceback_no_files(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    cases = [
        ["--dataset", "mnist", "--data-dir", str(tmp_path / "nowhere")],
        ["--eval", str(tmp_path / "bad.pt")],
        ["--eval", str(tmp_path / "missing.pt")],
        ["--timesteps", "0"],
    ]
    for i, extra in enumerate(cases):
        out = tmp_path / f"out{i}"
        r = run_module("ddla_neuro.train", *extra, "--out", str(out))
        assert r.returncode != 0
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
        assert "Traceback" not in r.stderr
        assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["killed", "stopped"])
def test_a_lost_rank_ends_the_others_with_one_clear_line(tmp_path, how):
    """torchrun with two CPU ranks; rank 1 is SIGKILLed (its peer sees the socket close at once)
    or SIGSTOPped (a hang: its peer's collective times out after --ddp-timeout). Rank 0 ends
    with one line naming the loss, within seconds, instead of waiting in a collective."""
    # torchrun would SIGTERM rank 0 when it notices rank 1 gone; a slow monitor lets rank 0 see the loss itself
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29519",
           "--monitor-interval", "60",
           "-m", "ddla_neuro.train", "--model", "mlp", "--timesteps", "2", "--epochs", "300", "--batch-size", "32",
           "--device", "cpu", "--ddp-timeout", "5", "--out", str(tmp_path)]
    run = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    ranks = []
    try:
        deadline = time.monotonic() + 120
        while len(processes_where(STAT_PPID, run.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        ranks = rank0, rank1 = processes_where(STAT_PPID, run.pid)
        time.sleep(6)  # both in the training loop
        os.kill(rank1, signal.SIGKILL if how == "killed" else signal.SIGSTOP)
        deadline = time.monotonic() + 30
        while rank0 in processes_where(STAT_PPID, run.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert rank0 not in processes_where(STAT_PPID, run.pid), "rank 0 still waits for its lost peer"
    finally:  # torchrun starts each rank in its own process group: kill them by pid
        for pid in (*ranks, run.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        err = run.stderr.read()
        run.wait()
        run.stderr.close()
    assert "error: rank 0: lost the other training processes" in err and "Traceback" not in err

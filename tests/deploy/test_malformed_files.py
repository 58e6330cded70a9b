"""Damaged files of every format the deploy command reads, one mutation of a real file each
(`benchmarks/malformed_files.py`: lava-dl's own netx files, a NIR export of the shipped model, the
shipped checkpoint, the loihi2 profile, a frames file; a dataset or field removed, halved, set to
NaN, negated or blown up, or a layer removed): the command exits 0, or exits 2 with one line on
stderr ending in its newline, and writes nothing. Hypothesis draws the cases (derandomized: the
same ones every run); the benchmark runs them all."""
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("lava.lib.dl.netx")  # lava-dl's files, installed by `make setup`
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from malformed_files import Case, cases, run_case  # noqa: E402

FORMATS = ("netx", "nir", "checkpoint", "profile", "frames")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("malformed")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=25, deadline=None, derandomize=True)
@given(data=st.data())
def test_a_damaged_file_is_read_or_refused_in_one_line(fmt, folder, data):
    case = data.draw(st.sampled_from(cases(fmt, folder)), label="case")
    outcome, text = run_case(case, folder)
    assert outcome in ("ok", "refused"), f"{case.label}: {outcome}: {text}"


KNOWN = [(Case("netx", "mnist", "layer/1/neuron/iDecay", "nan"), "layer 1 (dense): its neuron's 'iDecay'"),
         (Case("netx", "tiny", "layer/1/type", "halve"), "netx layer 1 (?): its 'type' is not a name ('')"),
         (Case("nir", "shipped", "node/nodes/0/weight", "nan"), "its 'weight' holds NaN"),
         (Case("netx", "tiny", "layer/2/groups", "nan"), "layer 2 (conv): its 'groups' holds nan")]


@pytest.mark.parametrize("case, message", KNOWN, ids=[c.label for c, _ in KNOWN])
def test_known_damage_is_refused_naming_the_layer_and_the_field(case, message, folder):
    """The issue's examples: a NaN decay, an emptied type, a NaN weight (NIR), a NaN groups."""
    outcome, text = run_case(case, folder)
    assert outcome == "refused" and message in text, text

"""Hardware profiles: the shipped files load and hold the published values; every malformed file
fails with a one-line ProfileError that names the offending field."""
import json
import re

import pytest
import tomli

from ddla_neuro.errors import UserError
from ddla_neuro.deploy.profiles import (KINDS, OPTIONAL, PROFILE_DIR, REQUIRED, Profile, ProfileError, Quantity,
                                 list_profiles, load_profile)

SHIPPED = ["generic-45nm", "loihi", "loihi2", "truenorth"]


def test_list_profiles():
    assert list_profiles() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_is_complete(name):
    p = load_profile(name)
    assert isinstance(p, Profile) and p.name == name and p.description and "\n" not in p.description
    for section, fields in REQUIRED.items():
        for field, unit in fields.items():
            q = p.quantity(section, field)
            assert isinstance(q, Quantity) and q.unit == unit and q.kind in KINDS and q.source.strip()
            assert q.known == (q.kind != "unknown")


@pytest.mark.parametrize("name", SHIPPED)
def test_loader_keeps_every_field_as_written(name):
    """Every quantity of a shipped file, read with tomli directly, is what the loader returns:
    same value and type (counts stay integers), unit, kind and source; nothing added or dropped."""
    raw = tomli.loads((PROFILE_DIR / f"{name}.toml").read_text())
    p = load_profile(name)
    assert (p.name, p.scope, p.description) == (raw["profile"]["name"], raw["profile"]["scope"],
                                                raw["profile"]["description"])
    for section in ("chip", "energy", "time"):
        assert set(getattr(p, section)) == set(raw[section])
        for field, entry in raw[section].items():
            q = p.quantity(section, field)
            assert (q.value, q.unit, q.kind, q.source) == (entry.get("value"), entry["unit"], entry["kind"],
                                                           entry["source"]), (section, field)
            assert type(q.value) is type(entry.get("value"))


def test_shipped_chips_differ_where_the_cost_model_branches():
    """The facts the cost model branches on: Loihi and TrueNorth carry binary spikes only (signed
    deltas need on/off axon pairs), Loihi 2 graded payloads; TrueNorth's SOP energy is all-in;
    the generic 45 nm profile has no chip, so no cores."""
    loihi, loihi2, tn, generic = (load_profile(n) for n in ("loihi", "loihi2", "truenorth", "generic-45nm"))
    assert loihi.chip["spike_payload_bits_max"].value == tn.chip["spike_payload_bits_max"].value == 0
    assert loihi2.chip["spike_payload_bits_max"].value > 0
    assert tn.scope == "all_in" and {p.scope for p in (loihi, loihi2, generic)} == {"per_term"}
    assert not any(q.known for q in generic.chip.values())


def test_derived_energies_match_their_stated_derivation():
    """A value whose source derives it as a sum of cited figures ("= 3.7 pJ mult + 0.9 pJ add")
    equals that sum; the SNN papers' E_MAC/E_AC and the per-SOP prices are the same figures."""
    generic = load_profile("generic-45nm")
    derived = [q for p in map(load_profile, SHIPPED) for q in p.energy.values()
               if q.known and re.search(r"= [\d.]+ pJ \w+ \+ [\d.]+ pJ", q.source)]
    assert derived
    for q in derived:
        terms = re.search(r"= ([\d.]+) pJ \w+ \+ ([\d.]+) pJ", q.source).groups()
        assert q.value == pytest.approx(sum(float(t) for t in terms) * 1e-12), q.source
    assert generic.energy["e_mac"].value == generic.energy["e_synop_graded"].value
    assert generic.energy["e_ac"].value == generic.energy["e_synop"].value


def test_optional_fields():
    assert set(load_profile("generic-45nm").energy) == set(REQUIRED["energy"]) | {"e_mac", "e_ac"}
    assert set(load_profile("loihi").energy) == set(REQUIRED["energy"]) | {"e_synop_conv"}
    assert set(OPTIONAL["energy"]) == {"e_mac", "e_ac", "e_synop_conv"}
    with pytest.raises(ProfileError, match="e_mac"):
        load_profile("loihi").quantity("energy", "e_mac")
    with pytest.raises(ProfileError, match="watts"):
        load_profile("loihi").quantity("watts", "cores")


def test_load_by_path_and_to_dict(tmp_path):
    p = load_profile(str(PROFILE_DIR / "loihi2.toml"))
    assert p.name == "loihi2" and p.path == str((PROFILE_DIR / "loihi2.toml").resolve())
    copy = tmp_path / "mine.toml"
    copy.write_text((PROFILE_DIR / "loihi2.toml").read_text())
    assert load_profile(copy).energy == p.energy
    d = json.loads(json.dumps(load_profile("generic-45nm").to_dict()))
    assert set(d) == {"name", "description", "scope", "mapping", "path", "chip", "energy", "time"}
    assert d["energy"]["e_mac"] == {"value": 4.6e-12, "unit": "J", "kind": "derived",
                                    "source": load_profile("generic-45nm").energy["e_mac"].source}
    assert d["chip"]["cores"]["value"] is None
    assert json.loads(json.dumps(p.to_dict())) == p.to_dict()


def test_unknown_name():
    with pytest.raises(ProfileError) as e:
        load_profile("loihi9")
    assert str(e.value) == ("unknown profile 'loihi9': pick one of generic-45nm, loihi, loihi2, truenorth, "
                            "or pass a path to a .toml file")
    assert isinstance(e.value, UserError)


def test_missing_file(tmp_path):
    with pytest.raises(ProfileError, match="nope.toml.*not found"):
        load_profile(str(tmp_path / "nope.toml"))


LOIHI = (PROFILE_DIR / "loihi.toml").read_text()
BARRIER = next(line for line in LOIHI.split("\n") if line.startswith("e_barrier ="))


def _sub(old: str, new: str, text: str = LOIHI) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


BAD = {  # case -> (edited text, what the message must name)
    "toml syntax": (_sub("[chip]", "[chip"), r"line \d+, column \d+"),
    "no [profile]": (LOIHI[:LOIHI.index("[profile]")] + LOIHI[LOIHI.index("[chip]"):], r"\[profile\] is missing"),
    "misspelt [profile]": (_sub("[profile]", "[profil]"), r"\[profil\] is not a known section"),
    "no name": (_sub('name = "loihi"\n', ""), r"\[profile\] name"),
    "no scope": (_sub('scope = "per_term"\n', ""), r"\[profile\] scope"),
    "bad scope": (_sub('scope = "per_term"', 'scope = "everything"'), r"\[profile\] scope.*per_term, all_in"),
    "no section": (LOIHI[:LOIHI.index("[time]")], r"\[time\]"),
    "missing field": (_sub(BARRIER + "\n", ""), r"\[energy\] e_barrier is missing"),
    "not inline table": (_sub(BARRIER, "e_barrier = 0.0"), r"\[energy\] e_barrier is not an inline table"),
    "no unit": (_sub('e_barrier = { unit = "J", ', "e_barrier = { "), r"\[energy\] e_barrier has no unit"),
    "no kind": (_sub('unit = "J", kind = "unknown", ', 'unit = "J", '), r"\[energy\] e_barrier has no kind"),
    "no source": (_sub(BARRIER, 'e_barrier = { unit = "J", kind = "unknown" }'), r"\[energy\] e_barrier has no source"),
    "bad kind": (_sub('kind = "measured"', 'kind = "guess"'), r"\[energy\] e_synop has unknown kind 'guess'"),
    "wrong unit": (_sub('3.0e-12, unit = "J"', '3.0e-12, unit = "pJ"'), r"\[energy\] e_hop_ew has unit 'pJ'"),
    "low above high": (_sub("low = 3.124e-11, high = 3.976e-11", "low = 3.976e-11, high = 3.124e-11"),
                       r"\[energy\] e_synop band 3.976e-11..3.124e-11 does not hold the value"),
    "band without the value": (_sub("low = 3.124e-11, high = 3.976e-11", "low = 4e-11, high = 5e-11"),
                               r"\[energy\] e_synop band 4e-11..5e-11 does not hold the value 3.55e-11"),
    "one end": (_sub("low = 3.124e-11, high = 3.976e-11, ", "low = 3.124e-11, "),
                r"\[energy\] e_synop has one end of a band"),
    "nan end": (_sub("low = 3.124e-11", "low = nan"), r"\[energy\] e_synop low value nan is not a finite"),
    "negative end": (_sub("low = 3.124e-11", "low = -1e-12"), r"\[energy\] e_synop low value -1e-12 is negative"),
    "fitted without its band": (_sub('value = 3.0e-12, unit = "J", kind = "simulated"',
                                     'value = 3.0e-12, unit = "J", kind = "fitted"'),
                                r"\[energy\] e_hop_ew .*is fitted without its band \(low, high\) and prior"),
    "fitted without its prior": (_sub('high = 3.976e-11, unit = "J", kind = "measured"',
                                      'high = 3.976e-11, unit = "J", kind = "fitted"'),
                                 r"\[energy\] e_synop .*fitted without its band \(low, high\) and prior"),
    "bad mapping": (_sub('scope = "per_term"', 'scope = "per_term"\nmapping = "greedy"'),
                    r"\[profile\] mapping is 'greedy'.*explicit, tiled"),
    "tiled without synapse words": (_sub('scope = "per_term"', 'scope = "per_term"\nmapping = "tiled"'),
                                    r"\[chip\] syn_mem_words_per_core is missing \(mapping = \"tiled\""),
    "wrong chip unit": (_sub('value = 128, unit = "count"', 'value = 128, unit = "bits"'), r"\[chip\] cores has unit"),
    "not a number": (_sub("value = 35.5e-12", 'value = "35.5 pJ"'), r"\[energy\] e_synop value '35.5 pJ' is not a"),
    "bool": (_sub("value = 35.5e-12", "value = true"), r"\[energy\] e_synop value True is not a finite"),
    "nan": (_sub("value = 35.5e-12", "value = nan"), r"\[energy\] e_synop value nan is not a finite"),
    "inf": (_sub("value = 35.5e-12", "value = inf"), r"\[energy\] e_synop value inf is not a finite"),
    "negative": (_sub("value = 35.5e-12", "value = -35.5e-12"), r"\[energy\] e_synop value -3.55e-11 is negative"),
    "value with unknown": (_sub('e_barrier = { unit = "J", kind = "unknown"', 'e_barrier = { value = 0, unit = "J", '
                                'kind = "unknown"'), r"\[energy\] e_barrier has a value but kind 'unknown'"),
    "unknown without value": (_sub("value = 35.5e-12, ", ""), r"\[energy\] e_synop has no value but kind 'measured'"),
    "extra field": (_sub("e_hop_ew =", "e_hop_we = { value = 1.0, unit = \"J\", kind = \"estimate\", source = \"x\" }"
                         "\ne_hop_ew ="), r"\[energy\] e_hop_we is not a known field: allowed: e_synop"),
    "optional elsewhere": (LOIHI + 'e_mac = { value = 1.0, unit = "J", kind = "estimate", source = "x" }\n',
                           r"\[time\] e_mac is not a known field"),
    "extra attr": (_sub("value = 35.5e-12,", "value = 35.5e-12, note = 1,"), r"\[energy\] e_synop note is not"),
    "extra section": (LOIHI + "\n[energi]\n", r"\[energi\] is not a known section"),
    "fractional count": (_sub("value = 128,", "value = 128.5,"), r"\[chip\] cores value 128.5 is not a positive int"),
    "zero count": (_sub("value = 128,", "value = 0,"), r"\[chip\] cores value 0 is not a positive integer"),
    "all_in with terms": (_sub('scope = "per_term"', 'scope = "all_in"'), r"\[energy\] e_synop_graded breaks scope"),
    "renamed field": (_sub("value = 128,", 'value = 128, unit = "count", kind = "vendor", source = "x" }\n'
                           'syn_bits_per_synapse = { value = 15,'),
                      r"\[chip\] syn_bits_per_synapse is not a known field: it became syn_index_bits"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_profile(tmp_path, case):
    text, pattern = BAD[case]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ProfileError) as e:
        load_profile(str(path))
    message = str(e.value)
    assert "\n" not in message and message.startswith(str(path.resolve())), message
    assert re.search(pattern, message), message


def test_zero_payload_and_zero_energy_allowed(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(_sub("value = 3.0e-12", "value = 0"))  # a measured 0 is a value, not "unknown"
    p = load_profile(path)
    assert p.energy["e_hop_ew"].value == 0.0 and p.chip["spike_payload_bits_max"].value == 0

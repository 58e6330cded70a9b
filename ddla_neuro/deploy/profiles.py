"""Hardware profiles (`hw_profiles/*.toml`): per-event energies, times and mapping limits of one
target. Every number carries a unit, an evidence `kind` and a `source`, so a cost report can say
how much of its total rests on silicon. A term with no published figure is `kind = "unknown"` with
no value, never a silent 0, so the cost model flags it instead of under-counting. `scope = "all_in"`
(TrueNorth's 26 pJ/SOP = total power / event rate) already contains every other energy term.

A number may carry its uncertainty as a band, `low` and `high` around its value (a measured
spread, a fit's residual, a model's stated accuracy); the cost model propagates the bands
(`Profile.bound`). A `fitted` number (fitted to a measurement) must carry its band and the
`prior` it was fitted from, and its source must name the run, the method and the residual.
`mapping` in [profile] says how layers go onto cores (`cost.py`): `explicit` (the default: every
synapse stored, each layer on enough cores for its neurons and synapses) or `tiled` (Loihi 2's
compiler: power-of-two tiles of a map, shared conv kernels, dense layers split until their
synapse words fit), which needs the synapse-memory fields `TILED`.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from importlib.resources import files
from pathlib import Path

import tomli

from ..errors import UserError

KINDS = ("measured", "simulated", "vendor", "derived", "estimate", "unknown", "arch", "fitted")
SCOPES = ("per_term", "all_in")
MAPPINGS = ("explicit", "tiled")
# hw_profiles/ at the top of the repository, shipped in the wheel as package data
PROFILE_DIR = Path(str(files("ddla_neuro.hw_profiles")))
HEADER = ("name", "description", "scope")
ATTRS = ("value", "unit", "kind", "source", "low", "high", "prior")
BOUNDS = ("low", "high")
REQUIRED: dict[str, dict[str, str]] = {
    "chip": {"cores": "count", "cores_per_tile": "count", "mesh_cols": "count", "mesh_rows": "count",
             "neurons_per_core": "count", "syn_mem_bytes_per_core": "bytes", "weight_bits_max": "bits",
             "spike_payload_bits_max": "bits", "message_bits": "bits", "fanin_axons_per_core": "count",
             "fanout_axons_per_core": "count"},
    "energy": {"e_synop": "J", "e_synop_graded": "J", "e_neuron_active": "J", "e_neuron_idle": "J", "e_spike_out": "J",
               "e_msg_local": "J", "e_hop_ew": "J", "e_hop_ns": "J", "e_barrier": "J", "p_static_chip": "W"},
    "time": {"t_synop": "s", "t_neuron_active": "s", "t_neuron_idle": "s", "t_spike_out": "s", "t_hop_ew": "s",
             "t_hop_ns": "s", "t_barrier": "s"},
}
# e_synop_conv: a synaptic op of a convolutional projection where the chip stores shared kernels
# at another cost than a dense matrix (e_synop where absent)
# the tiled mapping's synapse memory (Loihi 2's compiler counts it in words): per input axon and core,
# a header and the bits of each synapse to the core's neurons
# fields of older profiles, and what took their place
RENAMED = {"syn_bits_per_synapse": "it became syn_index_bits (12 on loihi2: a synapse's bits beside its weight, whose "
                                   "bits now follow each layer's weights)"}
TILED = {"syn_mem_words_per_core": "count", "syn_word_bits": "bits", "syn_header_bits": "bits",
         "syn_index_bits": "bits"}
# selection_units_per_neuron: the neuron slots a neuron running a neuron-local DDLA selection takes;
# delay_slots_per_neuron: the steps of delayed input a neuron slot buffers (more take more slots);
# delay_steps_max: the longest synaptic delay the chip holds
DELAYS = {"delay_slots_per_neuron": "count", "delay_steps_max": "count"}
OPTIONAL: dict[str, dict[str, str]] = {"energy": {"e_mac": "J", "e_ac": "J", "e_synop_conv": "J"},
                                       "chip": {**TILED, "selection_units_per_neuron": "count", **DELAYS}}
ZERO_OK = ("spike_payload_bits_max",)  # 0 = binary spikes; every other chip limit must be >= 1
FORM = '{field} = {{ value = ..., unit = "{unit}", kind = "...", source = "..." }}'


class ProfileError(UserError):
    """A hardware profile is missing, malformed or inconsistent; the message names file and field."""


@dataclass(frozen=True)
class Quantity:
    """One number with its unit and evidence; value is None when nothing is published. `low` and
    `high` bound it where its source states an uncertainty; `prior` is a fitted value's value
    before the fit."""

    value: float | None
    unit: str
    kind: str
    source: str
    low: float | None = None
    high: float | None = None
    prior: float | None = None

    @property
    def known(self) -> bool:
        return self.value is not None

    def at(self, side: str) -> Quantity:
        """The quantity with its `low` or `high` end (or its `prior`) as the value; itself without one."""
        end = getattr(self, side)
        return self if end is None else replace(self, value=end)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    scope: str
    path: str
    chip: dict[str, Quantity]
    energy: dict[str, Quantity]
    time: dict[str, Quantity]
    mapping: str = "explicit"

    def bound(self, side: str) -> Profile:
        """The profile at one end of its bands (`low`, `high`) or before its fit (`prior`): every
        energy and time that has one takes it (monotone costs: the ends bound every total)."""
        return replace(self, **{s: {f: q.at(side) for f, q in getattr(self, s).items()} for s in ("energy", "time")})

    @property
    def banded(self) -> bool:
        """Whether any energy or time states its uncertainty."""
        return any(q.low is not None for s in ("energy", "time") for q in getattr(self, s).values())

    def quantity(self, section: str, field: str) -> Quantity:
        """One field; an absent one (e_mac outside generic-45nm) is a one-line ProfileError, not a KeyError."""
        table = getattr(self, section) if section in REQUIRED else {}
        if field not in table:
            raise ProfileError(f"{self.path}: [{section}] {field} is not defined in profile {self.name!r}: "
                               f"add it to the file or pick a profile that defines it (sections: chip, energy, time)")
        return table[field]

    def to_dict(self) -> dict:
        """JSON-able form for report.json (unknown values become null; a band and prior only where given)."""
        head = {"name": self.name, "description": self.description, "scope": self.scope, "mapping": self.mapping,
                "path": self.path}
        return {**head, **{s: {f: {k: v for k, v in asdict(q).items() if v is not None or k == "value"}
                               for f, q in getattr(self, s).items()} for s in REQUIRED}}


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def load_profile(name_or_path: str | Path) -> Profile:
    """A shipped profile by name ("loihi2") or any .toml file by path, fully validated."""
    path = _resolve(name_or_path)
    try:
        with path.open("rb") as f:
            doc = tomli.load(f)
    except (tomli.TOMLDecodeError, OSError, UnicodeDecodeError) as e:
        what = "is not valid TOML" if isinstance(e, tomli.TOMLDecodeError) else "cannot be read"
        raise ProfileError(f"{path}: {what} ({e}): fix the file") from None
    extra = sorted(set(doc) - {"profile", *REQUIRED})
    if extra:
        raise _err(path, f"[{extra[0]}]", "is not a known section", f"allowed: profile, {', '.join(REQUIRED)}")
    head = _header(doc.get("profile"), path)
    sections = {s: _section(doc.get(s), s, path) for s in REQUIRED}
    missing = [f for f in TILED if f not in sections["chip"]]
    if head["mapping"] == "tiled" and missing:
        form = FORM.format(field=missing[0], unit=TILED[missing[0]])
        raise _err(path, f"[chip] {missing[0]}", 'is missing (mapping = "tiled" needs the synapse memory)',
                   f"add {form}")
    # An all-in e_synop already contains every other energy term: summing them would double count.
    summed = [f for f, q in sections["energy"].items() if q.known and f != "e_synop"]
    if head["scope"] == "all_in" and (summed or not sections["energy"]["e_synop"].known):
        raise _err(path, f"[energy] {summed[0] if summed else 'e_synop'}", 'breaks scope = "all_in" (only '
                   'e_synop has a value, it includes every other term)',
                   'make the others kind = "unknown" or use scope = "per_term"')
    return Profile(**head, path=str(path), **sections)


def _err(path: Path | str, where: str, problem: str, fix: str) -> ProfileError:
    return ProfileError(f"{path}: {where} {problem}: {fix}")


def _resolve(name_or_path: str | Path) -> Path:
    """A bare name picks a shipped profile; anything that looks like a path is a file."""
    text = str(name_or_path)
    names = ", ".join(list_profiles())
    if isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text or "\\" in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ProfileError(f"{text}: profile file not found: pass an existing .toml file or one of {names}")
        return path.resolve()
    if not (PROFILE_DIR / f"{text}.toml").is_file():
        raise ProfileError(f"unknown profile {text!r}: pick one of {names}, or pass a path to a .toml file")
    return PROFILE_DIR / f"{text}.toml"


def _header(head: object, path: Path) -> dict[str, str]:
    if not isinstance(head, dict):
        raise _err(path, "[profile]", "is missing or not a table", "add [profile] with name, description, scope")
    _no_extra(head, (*HEADER, "mapping"), path, "[profile]")
    for key in HEADER:
        if not isinstance(head.get(key), str) or not head[key].strip():
            raise _err(path, f"[profile] {key}", "is missing or not a non-empty string", f'add {key} = "..."')
    if head["scope"] not in SCOPES:
        raise _err(path, "[profile] scope", f"is {head['scope']!r}", f"use one of {', '.join(SCOPES)}")
    mapping = head.get("mapping", "explicit")
    if mapping not in MAPPINGS:
        raise _err(path, "[profile] mapping", f"is {mapping!r}", f"use one of {', '.join(MAPPINGS)}")
    return {**{key: head[key] for key in HEADER}, "mapping": mapping}


def _no_extra(table: dict, allowed: Iterable[str], path: Path, where: str) -> None:
    """Typo protection: a misspelt field would otherwise be ignored (or reported as missing)."""
    extra = sorted(set(table) - set(allowed))
    if not extra:
        return
    if extra[0] in RENAMED:
        raise _err(path, f"{where} {extra[0]}", "is not a known field", RENAMED[extra[0]])
    raise _err(path, f"{where} {extra[0]}", "is not a known field", f"allowed: {', '.join(allowed)}")


def _section(table: object, section: str, path: Path) -> dict[str, Quantity]:
    if not isinstance(table, dict):
        raise _err(path, f"[{section}]", "is missing or not a table",
                   f"add [{section}] with {', '.join(REQUIRED[section])}")
    allowed = {**REQUIRED[section], **OPTIONAL.get(section, {})}
    _no_extra(table, allowed, path, f"[{section}]")
    missing = [f for f in REQUIRED[section] if f not in table]
    if missing:
        form = FORM.format(field=missing[0], unit=allowed[missing[0]])
        raise _err(path, f"[{section}] {missing[0]}", "is missing",
                   f'add {form} (kind = "unknown" and no value if nothing is published)')
    return {f: _quantity(table[f], section, f, allowed[f], path) for f in allowed if f in table}


def _quantity(raw: object, section: str, field: str, unit: str, path: Path) -> Quantity:
    where = f"[{section}] {field}"
    if not isinstance(raw, dict):
        raise _err(path, where, "is not an inline table", "write " + FORM.format(field=field, unit=unit))
    _no_extra(raw, ATTRS, path, where)
    for key in ("unit", "kind", "source"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise _err(path, where, f"has no {key} (a non-empty string)", f'add {key} = "..."')
    kind, source = raw["kind"], raw["source"]
    if kind not in KINDS:
        raise _err(path, where, f"has unknown kind {kind!r}", f"use one of {', '.join(KINDS)}")
    if raw["unit"] != unit:
        raise _err(path, where, f"has unit {raw['unit']!r}", f'this field is in "{unit}"')
    if "value" not in raw:
        if kind != "unknown":
            raise _err(path, where, f"has no value but kind {kind!r}", 'add the value, or set kind = "unknown" '
                       "and say in source why none is published")
        return Quantity(None, unit, kind, source)
    if kind == "unknown":
        raise _err(path, where, "has a value but kind 'unknown'", "drop the value or give its real kind")
    value = _number(raw["value"], field, where, path, chip=section == "chip")
    extra = {k: _number(raw[k], field, f"{where} {k}", path, chip=False) for k in (*BOUNDS, "prior") if k in raw}
    _check_band(value, extra, kind, where, path)
    return Quantity(value, unit, kind, source, **extra)


def _check_band(value: float, extra: dict, kind: str, where: str, path: Path) -> None:
    """A band has both ends around the value; a fitted value has its band and its prior."""
    if (("low" in extra) != ("high" in extra)) or (kind == "fitted" and not {"low", "high", "prior"} <= set(extra)):
        raise _err(path, where, "has one end of a band, or is fitted without its band (low, high) and prior",
                   "give low and high around the value (and prior, the value before the fit)")
    if "low" in extra and not extra["low"] <= value <= extra["high"]:
        raise _err(path, where, f"band {extra['low']:g}..{extra['high']:g} does not hold the value {value:g}",
                   "low <= value <= high")


def _number(value: object, field: str, where: str, path: Path, chip: bool) -> float | int:
    """Costs are finite and >= 0; chip limits are whole counts, >= 1 except a 0-bit payload."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _err(path, where, f"value {value!r} is not a finite number", "write a number such as 23.6e-12")
    if value < 0:
        raise _err(path, where, f"value {value!r} is negative", "costs and limits are >= 0")
    if not chip:
        return float(value)
    if value != int(value) or (value == 0 and field not in ZERO_OK):
        raise _err(path, where, f"value {value!r} is not a positive integer", "chip limits are whole counts >= 1")
    return int(value)

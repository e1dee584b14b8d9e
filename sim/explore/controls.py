"""The explorer's controls, derived from the config schema and ``configs/`` (nothing about a
lever is written here): one control group per folder of ``configs/policy/`` and
``configs/demography/``, its options (the folder's files) as a menu, and each number of its
schema node with a declared range as a slider:

- a plain number (``policy.hukou.old_age_factor``): a slider over the schema's ``lo..hi``;
- a year-keyed rate (``policy.hukou.conversion_rate``): two sliders, its level in the jump-off
  year and its value in :data:`SECOND_YEAR`; moved, the lever becomes the path
  ``{start_year: level, 2030: value}`` (linear between, flat outside, as every year-keyed value);
  equal values give a number (a constant path).

Maps and lists (``openness``, ``regions``, ``big_cities``) and fields without a range (the
options' names, ``srb`` whose null means the census ratio) have no control: an option carries
them. A control state is turned into the Hydra overrides that reproduce it on the command line
(:func:`overrides`), and everything goes through the same composition and validation as
``python -m sim``.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass

from sim.config.jobs import _get as get
from sim.config.schema import Config
from sim.config.values import year_map
from sim.paths import CONFIG_DIR

GROUP_ROOTS = ("policy", "demography")  # the folders of configs/ whose groups get controls
SECOND_YEAR = 2030  # a year-keyed lever's second slider: its value in this year
SLIDER_STEPS = 200  # a slider's range in about this many steps (a step of 1, 2 or 5 x 10^k)


@dataclass(frozen=True)
class Lever:
    path: str  # dotted config path (policy.hukou.conversion_rate)
    lo: float
    hi: float
    years: bool  # year-keyed: a level and a SECOND_YEAR value
    step: float
    doc: str

    @property
    def label(self) -> str:
        return self.path.rsplit(".", 1)[-1].replace("_", " ")


@dataclass(frozen=True)
class Group:
    key: str  # the config group (policy/hukou)
    options: tuple[str, ...]  # its files in configs/<key>/
    levers: tuple[Lever, ...]

    @property
    def path(self) -> str:
        return self.key.replace("/", ".")


def nice_step(lo: float, hi: float, n: int = SLIDER_STEPS) -> float:
    """A step of 1, 2 or 5 x 10^k that cuts ``lo..hi`` into about ``n`` steps."""
    raw = (hi - lo) / n
    k = math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * 10**k >= raw:
            return float(m * 10**k)
    return float(10 ** (k + 1))


def _node_type(path: str):
    cls = Config
    for part in path.split("."):
        hints = typing.get_type_hints(cls)
        cls = hints[part]
    return cls


def _levers(path: str) -> tuple[Lever, ...]:
    cls = _node_type(path)
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        m = f.metadata
        if m.get("lo") is None or m.get("hi") is None or m.get("choices") or m.get("regions"):
            continue
        numeric = hints[f.name] in (float, int)
        if not (numeric or m.get("years")):
            continue  # a map by state, an optional number (null has a meaning): an option carries it
        lo, hi = float(m["lo"]), float(m["hi"])
        out.append(Lever(f"{path}.{f.name}", lo, hi, bool(m.get("years")), nice_step(lo, hi), m.get("doc", "")))
    return tuple(out)


def _default_order() -> list[str]:
    """The config groups in the order of ``configs/config.yaml``'s defaults list."""
    import yaml

    entries = yaml.safe_load((CONFIG_DIR / "config.yaml").read_text(encoding="utf-8"))["defaults"]
    return [k for e in entries if isinstance(e, dict) for k in e]


def groups() -> list[Group]:
    """Every control group: the folders of ``configs/policy/`` and ``configs/demography/``, policy
    first, each in the order of the default config's defaults list."""
    order = _default_order()
    out = []
    for root in GROUP_ROOTS:
        keys = [f"{root}/{d.name}" for d in (CONFIG_DIR / root).iterdir() if d.is_dir()]
        for key in sorted(keys, key=lambda k: (order.index(k) if k in order else len(order), k)):
            out.append(Group(key, tuple(sorted(p.stem for p in (CONFIG_DIR / key).glob("*.yaml"))), _levers(key.replace("/", "."))))
    return out


def scenarios() -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / "scenario").glob("*.yaml"))


def slider_values(cfg: Config, lever: Lever) -> tuple[float, ...]:
    """What the lever's slider(s) show for ``cfg``: the value, or the level in the jump-off year
    and the value in :data:`SECOND_YEAR`."""
    v = get(cfg, lever.path)
    if lever.years:
        return tuple(float(x) for x in year_map(v, [cfg.start_year, SECOND_YEAR]))
    return (float(v),)


def lever_value(lever: Lever, values: tuple[float, ...], start_year: int):
    """The config value of the slider ``values``: a number, or the path
    ``{start_year: level, SECOND_YEAR: value}`` (a number when the two are equal)."""
    if not lever.years or values[0] == values[1]:
        return _clean(values[0])
    return {start_year: _clean(values[0]), SECOND_YEAR: _clean(values[1])}


def _clean(x: float) -> float:
    """``x`` without the float noise of a slider (12 significant digits)."""
    return float(f"{float(x):.12g}")


def format_value(v) -> str:
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{x!r}" for k, x in v.items()) + "}"
    return repr(float(v))


@dataclass
class State:
    """What the page has set: a scenario, the group options that differ from the scenario's,
    and the levers moved (path -> config value). Everything else is the scenario's."""

    scenario: str
    options: dict[str, str] = dataclasses.field(default_factory=dict)  # group key -> option
    values: dict[str, object] = dataclasses.field(default_factory=dict)  # lever path -> value

    def copy(self) -> "State":
        return State(self.scenario, dict(self.options), dict(self.values))


def overrides(state: State, base: list[str] | tuple = ()) -> list[str]:
    """The command-line overrides of ``state`` after the explorer's ``base`` ones (geography,
    params, draws): ``python -m sim <these>`` projects what the page shows."""
    out = [*base, f"scenario={state.scenario}"]
    out += [f"{g}={o}" for g, o in state.options.items()]
    out += [f"{p}={format_value(v)}" for p, v in state.values.items()]
    return out


def command_line(ovs: list[str]) -> str:
    """``python -m sim`` with ``ovs``, quoted for a POSIX shell."""
    import shlex

    return " ".join(["python -m sim", *(shlex.quote(o) for o in ovs)])

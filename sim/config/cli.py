"""The command line of the Hydra apps (``python -m sim``, ``python -m calibration``): overrides
of year-keyed values, and one style for every bad value.

- A map given for a year-keyed field (``policy.reclassification.rate={2020: 0.004, 2030: 0.008}``)
  replaces the field's path: Hydra would merge it into the default map and, in a structured
  config, refuse a year the default does not have ("Key '2030' is not in struct").
  :func:`rewrite_overrides` passes such a map as a quoted string, which replaces the value
  whole, and :func:`sim.config.schema.validate` parses it back (YAML) and checks it. A number
  (``...rate=0.006``, ``range(...)`` in a sweep) needs no rewrite: it means the same value
  every year.
- Every error in the config (Hydra's and OmegaConf's as well as the schema's range checks)
  reads ``config error: <field> ...`` on one line and exits with code 2 (:func:`run_app`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from typing import Callable

from sim.config.schema import Config, ConfigError

_OVERRIDE = re.compile(r"^(?P<prefix>\+{0,2})(?P<key>[A-Za-z_][\w.]*)=(?P<value>.*)$", re.S)


def year_keyed_fields(obj=Config, path: str = "", key: str = "years") -> set[str]:
    """Dotted paths of every year-keyed field of the schema (``key="mapping"``: of every region map)."""
    out = set()
    for f in dataclasses.fields(obj):
        p = f"{path}.{f.name}" if path else f.name
        if f.metadata.get(key):
            out.add(p)
        elif f.default_factory is not dataclasses.MISSING:
            sub = f.default_factory()
            if dataclasses.is_dataclass(sub):
                out |= year_keyed_fields(type(sub), p, key)
    return out


def _quoted(v) -> str:
    """A map as a quoted string of the override grammar (the schema parses it back); other
    values as they were written."""
    if isinstance(v, dict):
        text = "{" + ", ".join(f"{k}: {x}" for k, x in v.items()) + "}"
        return f"'{text}'"
    return str(v)


_SWEEP_FUNCTION = re.compile(r"^(?P<fn>choice|glob)\((?P<args>.*)\)$", re.S)


def _group_values(value: str) -> tuple[list[str], bool]:
    """The option names a group override gives (``a``, ``a,b``, ``choice(a,b)``, ``glob(a*)``),
    unquoted, and whether they are glob patterns."""
    m = _SWEEP_FUNCTION.match(value.strip())
    body, is_glob = (m["args"], m["fn"] == "glob") if m else (value, False)
    values = [v.strip().strip("'\"") for v in body.split(",")]
    if is_glob:  # glob(*, exclude=[a, b]): only the patterns matter here
        values = [v.partition("=")[2].strip("[] ") if "=" in v else v.strip("[] ") for v in values]
    return [v for v in values if v], is_glob


def _outside(name: str) -> bool:
    """Whether a group or option name could leave the config tree (a path, not a name)."""
    return name.startswith(("/", "~")) or "\\" in name or ".." in name.split("/")


def check_group_choices(args: list[str]) -> None:
    """A choice of a config group (``params=calibrated``, ``policy/land=link,off``) must name one
    of its files in ``configs/<group>/``, and nothing else: Hydra skips an unknown option of an
    optional group (``params``) without a word, and would load a relative path
    (``policy/hukou=../../secret``) from anywhere on the machine and echo its keys in its error.
    Raises :class:`ConfigError` naming the group, the value and its options, before anything is
    read; a value that is not an option is never opened."""
    from sim.paths import CONFIG_DIR

    for a in args:
        key, eq, value = a.partition("=")
        key = key.lstrip("+~")
        if not eq or not ("/" in key or (CONFIG_DIR / key).is_dir()):
            continue  # a value, not a group choice
        if _outside(key):
            raise ConfigError(f"{key}: no such config group (a group is a folder of configs/, named without '..')")
        values, is_glob = _group_values(value)
        bad = next((v for v in values if _outside(v) or "/" in v), None)
        if key.startswith("hydra/") or not (CONFIG_DIR / key).is_dir():
            if bad is not None:  # Hydra's own groups: their options are names too
                raise ConfigError(f"{key} = {bad!r}: an option is a name, not a path")
            continue
        options = sorted(p.stem for p in (CONFIG_DIR / key).glob("*.yaml"))
        for v in values:
            if v == "null" or (is_glob and bad is None) or v in options:
                continue
            raise ConfigError(f"{key} = {v!r}: no such option; allowed values are {', '.join(options)}")


def rewrite_overrides(args: list[str]) -> list[str]:
    """``args`` with each map given to a year-keyed field (also in a choice sweep) passed as a
    quoted string, which replaces the field's value whole (see the module); every other
    argument unchanged, in order."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType
    from hydra.errors import OverrideParseException

    fields = year_keyed_fields() | year_keyed_fields(key="mapping")
    parser = None
    out = []
    for a in args:
        m = _OVERRIDE.match(a)
        if not (m and m["key"] in fields and "{" in m["value"]):
            out.append(a)
            continue
        parser = parser or OverridesParser.create()
        try:
            o = parser.parse_override(a)
        except OverrideParseException:
            out.append(a)  # Hydra reports it
            continue
        if o.value_type == ValueType.ELEMENT and isinstance(o.value(), dict):
            out.append(f"{m['key']}={_quoted(o.value())}")
        elif o.value_type == ValueType.SIMPLE_CHOICE_SWEEP:
            out.append(f"{m['key']}=" + ",".join(_quoted(v) for v in o.value().list))
        else:
            out.append(a)
    return out


def _schema_keys(path: str) -> list[str] | None:
    """The keys the schema allows under the dotted ``path`` ("" for the top), or None."""
    obj = Config
    for part in [p for p in path.split(".") if p]:
        f = {f.name: f for f in dataclasses.fields(obj)}.get(part)
        if f is None or f.default_factory is dataclasses.MISSING:
            return None
        sub = f.default_factory()
        if not dataclasses.is_dataclass(sub):
            return None
        obj = type(sub)
    return [f.name for f in dataclasses.fields(obj)]


def describe(ex: BaseException) -> str:
    """One line for a config error of Hydra, OmegaConf or the schema: the field, the value and
    what is allowed."""
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(ex, ConfigError):
        return str(ex)
    cause = ex if isinstance(ex, OmegaConfBaseException) else ex.__cause__
    if isinstance(cause, OmegaConfBaseException):
        key = getattr(cause, "full_key", None) or ""
        msg = (getattr(cause, "msg", None) or str(cause)).splitlines()[0]
        if "not in struct" in msg or "Could not override" in str(ex):
            parent = key.rpartition(".")[0]
            allowed = _schema_keys(parent)
            hint = f"; allowed keys{' of ' + parent if parent else ''}: {', '.join(allowed)}" if allowed else ""
            return f"{key or '?'}: no such field{hint}"
        value = getattr(cause, "value", None)
        return f"{key} = {value!r}: {msg}" if key else msg
    lines = [ln for ln in str(ex).splitlines() if ln.strip()]
    return " ".join(lines[:2]) if lines else type(ex).__name__


def config_exceptions() -> tuple:
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    return (ConfigError, ConfigCompositionException, MissingConfigException, OverrideParseException, OmegaConfBaseException)


def own_arguments(argv: list[str], defaults: dict) -> tuple[dict, list[str]]:
    """A command's own ``key=value`` arguments (the keys of ``defaults``, given values replace
    theirs) and the rest (Hydra overrides), in their order."""
    own, rest = dict(defaults), []
    for a in argv:
        k, sep, v = a.partition("=")
        if sep and k in own:
            own[k] = v
        else:
            rest.append(a)
    return own, rest


def skip_mode_composition(args: list[str]) -> None:
    """Hydra composes the whole config once only to read ``hydra.mode`` (``Hydra.get_mode``),
    then again to run: a second composition of every run (0.2-0.5 s). No config of ``configs/``
    sets ``hydra.mode`` (``tests/test_config.py`` checks it), so unless the command line does,
    the mode is Hydra's default from the flags (``-m``: multirun, else run), which is what
    ``get_mode`` returning None gives: that is what it returns here, without composing."""
    if any(a.lstrip("+~").partition("=")[0] == "hydra.mode" for a in args):
        return
    from hydra._internal.hydra import Hydra

    Hydra.get_mode = lambda self, config_name, overrides: None


_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([KMGT]?)I?B?\s*")
SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(name: str, text: str) -> int:
    """Bytes of a size given in the environment variable ``name`` (``8G``, ``512M``, ``1e9``);
    :class:`ConfigError` naming the variable, the value and what is allowed otherwise."""
    m = _SIZE.fullmatch(text.upper())
    value = float(m[1]) * SIZE_UNITS[m[2]] if m else 0.0
    if not (m and value >= 1 << 20):
        raise ConfigError(f"{name} = {text!r}: allowed values are a size of at least 1M: a number of bytes, or with a K, M, G or T suffix (e.g. 8G)")
    return int(value)


def check_environment(env=os.environ) -> None:
    """The environment variables the engine reads, checked before anything runs:
    ``URBSIM_MEMORY_LIMIT`` (a size) and ``NUMBA_NUM_THREADS`` (a whole number of threads,
    at least 1). Raises :class:`ConfigError` naming the variable."""
    if env.get("URBSIM_MEMORY_LIMIT"):
        parse_size("URBSIM_MEMORY_LIMIT", env["URBSIM_MEMORY_LIMIT"])
    threads = env.get("NUMBA_NUM_THREADS")
    if threads is not None and not (threads.strip().isdigit() and int(threads) >= 1):
        raise ConfigError(f"NUMBA_NUM_THREADS = {threads!r}: allowed values are whole numbers >= 1 (threads of the kernel; unset: every core)")


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM: a cluster's time limit, ``kill``, ``scancel``): raised
    in the main thread, so that a run records an honest status (``failed``, the signal named; a
    complete earlier result stays its own) and stops its worker processes on the way out."""

    def __init__(self, signum: int):
        import signal

        super().__init__(f"stopped by signal {signal.Signals(signum).name}")
        self.signum = signum


def _terminate(signum, frame):
    raise Terminated(signum)


def on_sigterm() -> None:
    """SIGTERM raises :class:`Terminated` (in the main thread) instead of ending the process
    where it stands."""
    import signal

    signal.signal(signal.SIGTERM, _terminate)


def os_error(e: OSError) -> str:
    """One line for an error of the file system: the path(s) and the cause."""
    where = " -> ".join(str(p) for p in (e.filename, e.filename2) if p)
    return f"{where}: {e.strerror or e}" if where else str(e)


def run_app(main: Callable[[], None], prog: str = "") -> None:
    """Run the ``@hydra.main`` function ``main`` on ``sys.argv`` with year-keyed overrides
    rewritten; a config error prints one line and exits 2 (Hydra's own report is turned off
    with ``HYDRA_FULL_ERROR`` so that the error reaches this handler)."""
    sys.argv = [sys.argv[0]] + rewrite_overrides(sys.argv[1:])
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    from hydra.errors import InstantiationException

    on_sigterm()
    try:
        check_environment()
        check_group_choices([a for a in sys.argv[1:] if not a.startswith("-")])
        skip_mode_composition(sys.argv[1:])
        main()
    except Terminated as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(128 + e.signum)
    except OSError as e:  # the file system: a run directory that is a file, a full or read-only disk
        print(f"error: {os_error(e)}", file=sys.stderr)
        sys.exit(2)
    except config_exceptions() as e:
        print(f"config error: {describe(e)}", file=sys.stderr)
        sys.exit(2)
    except InstantiationException as e:  # a plugin (the batched launcher) refusing its keys
        if not isinstance(e.__cause__, ConfigError):
            raise
        print(f"config error: {e.__cause__}", file=sys.stderr)
        sys.exit(2)

"""The configs of many sweep jobs at once, each equal to the config Hydra composes for the job
(the library of the batched launcher, ``hydra_plugins/urbsim_launcher``).

Hydra composes a job from scratch: the defaults tree, every config file, the merges (about
0.25 s a job here). A sweep's jobs differ in a few overrides, so the work is shared:

- **Config groups.** Jobs are grouped by their *global* group choices (a group whose option
  files carry a defaults list or a ``@package`` header, such as ``scenario``, and every
  ``hydra/`` choice): Hydra composes each such set once (the base). A *simple* group choice
  (``policy/hukou=easing``: a file merged at its own package and nowhere else) replaces the
  base's node at its package with the option merged onto the schema's default node, which is
  what Hydra's merge gives when no other entry of the defaults list writes into that package;
  that is checked on the base's defaults list, and the construction is checked against the
  base's own choices. Where a check fails the jobs of that base are composed by Hydra.
- **Values.** Each distinct ``key=value`` is applied once, by Hydra's own override code, to a
  copy of a base, and the value it leaves at ``key`` (coerced by the schema) is set on each
  job's :class:`sim.config.schema.Config`. Overrides that interact (``+``/``~``, a key inside
  another's, an interpolation) are applied by Hydra to the job's own copy.

Every job is then validated (:func:`sim.config.schema.validate`); a refused job gets its
:class:`~sim.config.schema.ConfigError` in place of a config.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Sequence

from sim.config.schema import Config, ConfigError, validate, validate_changed


def _get(cfg, path: str):
    for part in path.split("."):
        cfg = getattr(cfg, part)
    return cfg


def is_group(key: str) -> bool:
    """Whether the override key ``key`` (``policy/hukou``, ``+scenario``, ``hydra/launcher``)
    names a config group (a folder of ``configs/``, or one of Hydra's own)."""
    from sim.paths import CONFIG_DIR

    k = key.lstrip("+~")
    return k.startswith("hydra/") or (CONFIG_DIR / k).is_dir()


def replace_path(obj, path: str, value):
    """``obj`` (nested dataclasses) with the field at dotted ``path`` set to ``value``."""
    head, _, rest = path.partition(".")
    if isinstance(obj, dict):
        return {**obj, head: replace_path(obj[head], rest, value) if rest else value}
    if not rest:
        return dataclasses.replace(obj, **{head: value})
    return dataclasses.replace(obj, **{head: replace_path(getattr(obj, head), rest, value)})


def _touches(node, rel: str) -> bool:
    """Whether the raw config ``node`` has the dotted path ``rel`` ("" : any key)."""
    from omegaconf import DictConfig

    if not rel:
        return True
    for part in rel.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False
        node = node[part]
    return True


def _file_package(group: str, res, at: str = "") -> str:
    """The package a file of ``group`` (its loaded ``res``) merges into: ``at`` (``group@at``),
    else its ``# @package`` header, else the group's path; ``""`` for ``_global_``."""
    header = (res.header or {}).get("package")
    package = at or (header if header not in (None, "", "_group_") else group.replace("/", "."))
    return "" if package == "_global_" else package


@dataclasses.dataclass(frozen=True)
class Entry:
    """One config of a composition's defaults list: its path and the package it is merged into."""

    config_path: str
    package: str


class JobComposer:
    """Compose many jobs of one Hydra app (``config_loader`` and ``master_config`` of the
    launcher's ``setup``); see the module."""

    def __init__(self, config_loader, master_config, is_group=is_group):
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from omegaconf import OmegaConf

        self.loader = config_loader
        self.master = master_config
        self.is_group = is_group
        self.parser = OverridesParser.create()
        self.schema = OmegaConf.structured(Config)
        self._bases: dict[tuple, Any] = {}  # global group choices -> (DictConfig, simple-group check)
        self._options: dict[tuple, Any] = {}  # (group, option) -> node or None (not simple)
        self._values: dict[tuple, Any] = {}  # (base key, override) -> the value left at its key
        self._scratch: dict[tuple, Any] = {}  # base key -> a copy of its config, leaf overrides applied and put back
        self._objects: dict[tuple, Config] = {}
        self._validated: set = set()
        self._simples: dict[tuple, bool] = {}
        self._nodes: dict[Any, Any] = {}
        self._raws: dict[str, Any] = {}
        self.hydra_composed = 0  # jobs Hydra composed whole (a check failed)

    # -- groups ------------------------------------------------------------------------------
    def _option(self, group: str, option: str):
        """The node of a simple group's option (merged onto the schema's default node), or None
        when the option is not simple (a defaults list, a package header, no such file)."""
        from omegaconf import OmegaConf

        key = (group, option)
        if key not in self._options:
            node = None
            res = self._raw(f"{group}/{option}")
            package = group.replace("/", ".")
            if res is not None and not res.defaults_list and _file_package(group, res) == package:
                try:
                    default = OmegaConf.select(self.schema, package)
                    if default is not None:
                        raw = copy.deepcopy(res.config)
                        if "defaults" in raw:
                            raw = None
                        node = None if raw is None else OmegaConf.merge(default, raw)
                except Exception:
                    node = None
            self._options[key] = node
        return self._options[key]

    def _base(self, globals_: tuple):
        """Hydra's composition of the global choices, without ``hydra``, and the simple groups
        whose package no other entry of its defaults list writes to."""
        from hydra.types import RunMode
        from omegaconf import OmegaConf, open_dict, read_write

        if globals_ not in self._bases:
            cfg = self.loader.load_sweep_config(self.master, list(globals_))
            choices = dict(OmegaConf.to_container(cfg.hydra.runtime.choices))
            overrides = list(OmegaConf.to_container(self.master.hydra.overrides.hydra))
            with read_write(cfg), open_dict(cfg):
                del cfg["hydra"]
            entries = self._entries(choices)
            if entries is None:  # a defaults list Hydra alone can unfold
                try:
                    dl = self.loader.compute_defaults_list(self.master.hydra.job.config_name, overrides + list(globals_), RunMode.RUN)
                    entries = [Entry(d.config_path, d.package or "") for d in dl.defaults if not d.config_path.startswith("hydra/")]
                except Exception:
                    entries = None
            self._bases[globals_] = (cfg, choices, entries)
        return self._bases[globals_]

    def _entries(self, choices: dict) -> list | None:
        """The composition's defaults-list entries (config path, package) read off its group
        choices (``hydra.runtime.choices``) and the files' package headers, without unfolding
        the defaults list again; None when a file's defaults list names a config outside a group
        (no choice records it), or an entry is not found."""
        from hydra.core.default_element import ConfigDefault

        primary = str(self.master.hydra.job.config_name)
        out = [Entry(primary, "")]
        for key, option in choices.items():
            if key.startswith("hydra/") or option is None:
                continue
            group, _, at = key.partition("@")
            path = f"{group}/{option}"
            res = self._raw(path)
            if res is None:
                return None
            out.append(Entry(path, _file_package(group, res, at)))
        for e in out:
            res = self._raw(e.config_path)
            if res is None or any(isinstance(d, ConfigDefault) and d.path != "_self_" for d in res.defaults_list or ()):
                return None
        return out

    def _written_by(self, globals_: tuple, group: str) -> bool:
        """Whether the file of one of the ``globals_`` options (``scenario=plan``) sets values inside
        ``group``'s package (``configs/scenario/plan.yaml`` sets ``policy.land.*``)."""
        package = group.replace("/", ".")
        for o in globals_:
            g, _, opt = o.partition("=")
            if g.startswith(("hydra/", "+", "~")) or "@" in g:
                continue
            res = self._raw(f"{g}/{opt}")
            if res is None:
                continue
            p = _file_package(g, res)
            if not p:  # a global file: any key path
                rel = package
            elif package == p or package.startswith(p + "."):  # the group's package lies inside the file's
                rel = package[len(p) + 1 :]
            else:
                continue
            if _touches(res.config, rel):
                return True
        return False

    def _simple(self, globals_: tuple, group: str) -> bool:
        """Whether ``group``'s node in the base of ``globals_`` is its option's alone."""

        if (globals_, group) not in self._simples:
            self._simples[(globals_, group)] = self._check_simple(globals_, group)
        return self._simples[(globals_, group)]

    def _raw(self, config_path: str):
        if config_path not in self._raws:
            self._raws[config_path] = self.loader.repository.load_config(config_path)
        return self._raws[config_path]

    def _check_simple(self, globals_: tuple, group: str) -> bool:
        from omegaconf import OmegaConf

        cfg, choices, entries = self._base(globals_)
        if entries is None or group not in choices:
            return False
        package = group.replace("/", ".")
        for e in entries:
            if e.config_path == f"{group}/{choices[group]}" or e.config_path.startswith("schema/"):
                continue
            p = e.package or ""
            if p and not (package == p or package.startswith(p + ".") or p.startswith(package + ".")):
                continue
            res = self._raw(e.config_path)
            if res is None or res.is_schema_source:
                continue
            if p.startswith(package + ".") or _touches(res.config, package[len(p) + 1 :] if p else package):
                return False
        mine = self._option(group, str(choices[group]))
        return mine is not None and OmegaConf.to_container(mine) == OmegaConf.to_container(OmegaConf.select(cfg, package))

    def choices(self, global_overrides: Sequence[str] = ()) -> dict:
        """The config-group choices (``{"policy/hukou": "easing", ...}``) of the composition of
        ``global_overrides`` (``scenario=plan``): what a scenario selects."""
        return dict(self._base(tuple(global_overrides))[1])

    # -- values ------------------------------------------------------------------------------
    def _value(self, base_key, make_base, override: str):
        """The value Hydra's override code leaves at the override's key (schema-coerced) when
        applied to the config ``make_base()`` of ``base_key``."""
        from hydra._internal.config_loader_impl import ConfigLoaderImpl
        from omegaconf import DictConfig, ListConfig, OmegaConf, read_write

        if override in self._values:  # a leaf: its value does not depend on the base
            return self._values[override]
        key = (base_key, override)
        if key not in self._values:
            ov = self.parser.parse_overrides([override])
            k = ov[0].key_or_group
            scratch = self._scratch.get(base_key)
            if scratch is None:
                scratch = self._scratch[base_key] = make_base()
            old = OmegaConf.select(scratch, k, throw_on_missing=False) if OmegaConf.select(scratch, k.rpartition(".")[0] or "", default=None) is not None else None
            if old is not None and not isinstance(ov[0].value(), (dict, list)):
                # a leaf set on the base's one scratch copy and put back (no copy of the whole
                # config); the key's old node may be a container (a year-keyed lever given one
                # number: a constant path), put back from its plain value and checked
                node = isinstance(old, (DictConfig, ListConfig))
                before = OmegaConf.to_container(old) if node else old
                with read_write(scratch):
                    ConfigLoaderImpl._apply_overrides_to_config(ov, scratch)
                    v = OmegaConf.select(scratch, k)
                    OmegaConf.update(scratch, k, before, merge=False)
                    if node and OmegaConf.to_container(OmegaConf.select(scratch, k)) != before:
                        self._scratch.pop(base_key)  # not put back as it was: a fresh copy next time
                if not isinstance(v, (DictConfig, ListConfig)):
                    self._values[override] = v
                    return v
            cfg = make_base()
            with read_write(cfg):
                ConfigLoaderImpl._apply_overrides_to_config(ov, cfg)
            v = OmegaConf.select(cfg, k)
            if isinstance(v, (DictConfig, ListConfig)):  # merged into the base's: per base
                self._values[key] = OmegaConf.to_object(v)
            else:
                self._values[override] = v
                return v
        return self._values[key]

    @staticmethod
    def _independent(values: Sequence[str]) -> bool:
        keys = []
        for o in values:
            k, eq, v = o.partition("=")
            if not eq or k.startswith(("+", "~")) or "${" in v:
                return False
            keys.append(k)
        return not any(a != b and (b.startswith(a + ".")) for a in keys for b in keys) and len(set(keys)) == len(keys)

    # -- jobs --------------------------------------------------------------------------------
    def compose_one(self, overrides: Sequence[str]) -> Config:
        from hydra._internal.config_loader_impl import ConfigLoaderImpl
        from omegaconf import OmegaConf, read_write

        groups = [o for o in overrides if self.is_group(o.partition("=")[0])]
        values = [o for o in overrides if o not in groups and not o.startswith("hydra.")]
        simple, globals_ = [], []
        for o in groups:
            g, _, opt = o.partition("=")
            if g.startswith(("hydra/", "+", "~")) or self._option(g, opt) is None:
                globals_.append(o)
            else:
                simple.append((g, opt))
        # a group another entry writes into joins the global choices (Hydra composes it): those a
        # global option's own file writes into (read off the file: no composition of the global
        # choices alone), then any other the composition of the key shows
        first = tuple(globals_)
        gkey = first + tuple(f"{g}={opt}" for g, opt in simple if self._written_by(first, g))
        gkey = gkey + tuple(f"{g}={opt}" for g, opt in simple if f"{g}={opt}" not in gkey and not self._simple(gkey, g))
        simple = [(g, opt) for g, opt in simple if f"{g}={opt}" not in gkey]
        base_cfg, _, _ = self._base(gkey)
        skey = (gkey, tuple(simple))
        if skey not in self._objects:
            obj = self._object(gkey, base_cfg)
            for g, opt in simple:
                obj = replace_path(obj, g.replace("/", "."), self._object((g, opt), self._option(g, opt)))
            self._objects[skey] = obj
        obj = self._objects[skey]

        def combined():  # the job's DictConfig before the values
            cfg = copy.deepcopy(base_cfg)
            with read_write(cfg):
                for g, opt in simple:
                    OmegaConf.update(cfg, g.replace("/", "."), copy.deepcopy(self._option(g, opt)), merge=False)
            return cfg

        if not self._independent(values):
            cfg = combined()
            with read_write(cfg):
                ConfigLoaderImpl._apply_overrides_to_config(self.parser.parse_overrides(values), cfg)
            return validate(OmegaConf.to_object(cfg))
        if skey not in self._validated:  # the shared part checked once; per job the values set
            validate(obj)
            self._validated.add(skey)
        keys = []
        for o in values:
            k = o.partition("=")[0]
            obj = replace_path(obj, k, self._value(skey, combined, o))
            keys.append(k)
        return validate_changed(obj, keys)

    def _object(self, key, node):
        """``OmegaConf.to_object(node)``, once per ``key``."""
        from omegaconf import OmegaConf

        if key not in self._nodes:
            self._nodes[key] = OmegaConf.to_object(node)
        return self._nodes[key]

    def _hydra(self, overrides: Sequence[str]) -> Config:
        from omegaconf import OmegaConf, open_dict, read_write

        self.hydra_composed += 1
        cfg = self.loader.load_sweep_config(self.master, list(overrides))
        with read_write(cfg), open_dict(cfg):
            del cfg["hydra"]
        return validate(OmegaConf.to_object(cfg))

    def compose(self, job_overrides: Sequence[Sequence[str]]) -> list:
        """Every job's validated :class:`Config`, or its :class:`ConfigError`."""
        from sim.config.cli import describe

        out: list = []
        for ovs in job_overrides:
            try:
                out.append(self.compose_one(list(ovs)))
            except ConfigError as e:
                out.append(e)
            except Exception as e:  # Hydra's and OmegaConf's, in the schema's words
                out.append(ConfigError(describe(e)))
        return out

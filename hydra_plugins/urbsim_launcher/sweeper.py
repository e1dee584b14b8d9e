"""``hydra/sweeper=urbsim`` (the default of ``configs/config.yaml``): Hydra's basic sweeper, which
composes every job's config once before handing the jobs to the launcher, "to detect failures
early". The batched launcher (:mod:`.batched_launcher`) composes and validates every job itself
before anything computes, so with it that first composition is skipped (for 64 jobs of distinct
config groups it cost 17 s); with any other launcher this sweeper is the basic one.
"""

# no `from __future__ import annotations`: see batched_launcher
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore


@dataclass
class UrbsimSweeperConf:
    _target_: str = "hydra_plugins.urbsim_launcher.sweeper.UrbsimSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None


ConfigStore.instance().store(group="hydra/sweeper", name="urbsim", node=UrbsimSweeperConf, provider="urbsim")


class UrbsimSweeper(BasicSweeper):
    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        from hydra_plugins.urbsim_launcher.batched_launcher import BatchedLauncher

        if isinstance(self.launcher, BatchedLauncher):
            return  # the launcher composes and validates every job before any computes
        super().validate_batch_is_legal(batch)

"""The lever explorer: ``python -m sim.explore`` serves a page whose controls are the config
groups of ``configs/policy/`` and ``configs/demography/``; every change is projected and every
panel redrawn (:mod:`sim.explore.controls`: the controls and their overrides;
:mod:`sim.explore.session`: the projections; :mod:`sim.explore.app`: the Bokeh page)."""

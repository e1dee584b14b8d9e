"""Compile options of the numba kernel, in one place.

``JIT``: every kernel function (cached on disk, no GIL, NumPy's error model). ``SUM``: sums
over ages may be reassociated. ``VIEW`` / ``VIEW_SUM``: functions that only index and slice
arrays they are given, compiled without reference counting. ``ROW``: the innermost loops over
ages, compiled with the no-alias pipeline below. Each option's reason is next to it.
"""

from __future__ import annotations

from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.core.compiler_machinery import FunctionPass, register_pass
from numba.core.typed_passes import NopythonTypeInference

JIT = dict(cache=True, nogil=True, error_model="numpy")
# Sums over ages may be reassociated so that LLVM vectorises them (a serial float sum waits on
# every add); only 'reassoc' is allowed: NaN and infinity semantics stay strict.
SUM = dict(JIT, fastmath={"reassoc"})
# Functions that only index and slice arrays they are given (never allocate one, never return
# one) are compiled without numba's reference counting (`_nrt=False`): each slice of a counted
# array costs an atomic increment and decrement, 0.3 us a region for survival alone. Numba
# refuses to compile an allocation in such a function, so the rule cannot be broken silently;
# returning an array from one would be (the caller would release a reference never taken).
VIEW = dict(JIT, _nrt=False)
VIEW_SUM = dict(SUM, _nrt=False)


# Row functions: the innermost loops over ages, on 1-D rows, compiled with numba's `noalias`
# flag, which marks every array argument `noalias` in LLVM (as numba does for the bodies of its
# parallel loops). Without it LLVM cannot prove that the ~25 rows a loop reads and writes do not
# overlap, gives up vectorising ("too many memory checks") and runs them one double at a time:
# 2.6x slower for the moves. The promise this makes is checked by nobody, so every caller must
# keep it: **no row a row function writes may overlap any other array argument of the call**
# (rows of one array are disjoint; read-only arguments may be shared).
@register_pass(mutates_CFG=False, analysis_only=True)
class _ArgumentsDoNotAlias(FunctionPass):
    _name = "urbsim_arguments_do_not_alias"

    def __init__(self):
        FunctionPass.__init__(self)

    def run_pass(self, state):
        state.flags.noalias = True
        return False


class _NoAliasCompiler(CompilerBase):
    """numba's nopython pipeline with the `noalias` flag set after type inference."""

    def define_pipelines(self):
        pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
        pm.add_pass_after(_ArgumentsDoNotAlias, NopythonTypeInference)
        pm.finalize()
        return [pm]


ROW = dict(SUM, pipeline_class=_NoAliasCompiler, _nrt=False)

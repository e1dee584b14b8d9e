"""A run's figures drawn by two processes: a second one, forked as soon as the run's dataset
exists, draws the costlier half (:data:`SECOND`: the small multiples, the flow matrix and the
pyramid, about 1.2 of the 1.9 s the set takes here) while the run writes its netCDF, tables and
report and then draws the rest. Where the process may use one core only
(``os.sched_getaffinity``, e.g. a SLURM task of one CPU), where ``fork`` is not available, or with
``figures.parallel=false``, one process draws them all. The forked process imports matplotlib
and draws only (no numba, no file but its figures) and ends with ``os._exit`` (no exit handlers
of the parent run in it); its error, if any, is raised by the run as its own.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

SECOND = ("regions", "flows", "pyramid")  # the figures the second process draws (sim.outputs.figures.figure_builders' stems)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _second(ds, out_dir, fcfg, send) -> None:
    try:
        from sim.outputs.figures import write_figures

        send.send(("ok", [str(p) for p in write_figures(ds, out_dir, fcfg, stems=SECOND)]))
    except BaseException as e:  # reported to the run, which raises it
        send.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        send.close()


class FigureJob:
    """The figures of one run into ``out_dir``: started (the second process forked) when made,
    done by :meth:`finish` (the rest drawn, the second process joined)."""

    def __init__(self, ds, out_dir: Path, fcfg):
        self.ds, self.out_dir, self.fcfg = ds, Path(out_dir), fcfg
        self.proc = None
        if getattr(fcfg, "parallel", True) and _cores() > 1 and "fork" in mp.get_all_start_methods():
            ctx = mp.get_context("fork")
            self.recv, send = ctx.Pipe(duplex=False)
            self.proc = ctx.Process(target=_second, args=(ds, self.out_dir, fcfg, send), daemon=True)
            self.proc.start()
            send.close()

    def finish(self) -> list[Path]:
        from sim.outputs.figures import write_figures

        if self.proc is None:
            return write_figures(self.ds, self.out_dir, self.fcfg)
        mine = write_figures(self.ds, self.out_dir, self.fcfg, exclude=SECOND)
        try:
            status, payload = self.recv.recv()
        except EOFError:
            status, payload = "error", f"the figure process ended with exit code {self.proc.exitcode} before reporting"
        finally:
            self.recv.close()
            self.proc.join()
        if status != "ok":
            raise RuntimeError(f"figures {', '.join(SECOND)}: {payload}")
        return mine + [Path(p) for p in payload]

    def abort(self) -> None:
        """Stop the second process (the run failed)."""
        if self.proc is not None and self.proc.is_alive():
            self.proc.kill()
        if self.proc is not None:
            self.proc.join()
            self.recv.close()

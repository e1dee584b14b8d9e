"""A run's figures drawn beside the run. Where the process may use more than one core
(``os.sched_getaffinity``; not a SLURM task of one CPU), ``fork`` is available and
``figures.parallel`` is on (the default), a figure process is forked when the run starts,
before its model is built: it imports matplotlib and the figure module (about 1 s here) while
the run projects. When the run's dataset exists it is sent to that process (pickled through a
pipe), which forks once more, so that two processes draw the set, the second the costlier half
(:data:`SECOND`: the small multiples and the flow matrix), while the run writes its
netCDF, tables and report. Otherwise the run draws them all itself. The figure processes draw
only (no numba, no file but their figures), form a process group of their own (a failed run
kills both) and end with ``os._exit`` (no exit handlers of the run in them); their error, if
any, is raised by the run as its own.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
from pathlib import Path

SECOND = ("regions", "flows")  # the figures the second process draws (about half the time of the set) (sim.outputs.figures.figure_builders' stems)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _draw(ds, out_dir, fcfg, **which) -> tuple[str, object]:
    try:
        from sim.outputs.figures import write_figures

        return "ok", [str(p) for p in write_figures(ds, out_dir, fcfg, **which)]
    except BaseException as e:  # reported to the run, which raises it
        return "error", f"{type(e).__name__}: {e}"


def _worker(recv, send, *parents) -> None:
    """The figure process: warm up, wait for the dataset, draw it in two processes. ``parents``:
    the run's ends of the pipes, closed here (the run's end, not this copy, says EOF)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a stop (a cluster's time limit) ends it quietly; the run reports it
    try:
        for end in parents:
            end.close()
        os.setpgid(0, 0)
        import matplotlib

        matplotlib.use("Agg")
        import sim.outputs.figures as figures

        figures.cjk_font()  # the font lookup, done while the run projects
        try:
            msg = recv.recv()
        except EOFError:  # the run ended without figures
            return
        if msg is None:
            return
        ds, out_dir, fcfg = msg
        r, w = mp.Pipe(duplex=False)
        pid = os.fork()
        if pid == 0:  # the second: the costlier half
            try:
                r.close()
                send.close()
                w.send(_draw(ds, out_dir, fcfg, stems=SECOND))
            finally:
                os._exit(0)
        w.close()
        mine = _draw(ds, out_dir, fcfg, exclude=SECOND)
        try:
            theirs = r.recv()
        except EOFError:
            theirs = ("error", "the second figure process ended before reporting")
        os.waitpid(pid, 0)
        for status, payload in (mine, theirs):
            if status != "ok":
                send.send((status, payload))
                return
        send.send(("ok", mine[1] + theirs[1]))
    except BaseException as e:
        send.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        send.close()


class FigureJob:
    """The figures of one run into ``out_dir``: made when the run starts (the figure process
    forked, warming up), given the run's dataset by :meth:`draw`, done by :meth:`finish` (the
    figures' paths), or stopped by :meth:`abort` (the run failed)."""

    def __init__(self, out_dir: Path, fcfg):
        self.out_dir, self.fcfg = Path(out_dir), fcfg
        self.proc = self.ds = None
        if getattr(fcfg, "parallel", True) and _cores() > 1 and "fork" in mp.get_all_start_methods():
            ctx = mp.get_context("fork")
            recv, self.send = ctx.Pipe(duplex=False)
            self.recv, send = ctx.Pipe(duplex=False)
            self.proc = ctx.Process(target=_worker, args=(recv, send, self.send, self.recv), daemon=True)
            self.proc.start()
            try:
                os.setpgid(self.proc.pid, self.proc.pid)  # as the worker does: whichever runs first
            except OSError:
                pass
            recv.close()
            send.close()
        self.sender = None

    def draw(self, ds) -> None:
        """Start drawing ``ds`` (in the figure processes; without them, at :meth:`finish`).
        The dataset is sent by a thread: the figure process may still be importing matplotlib,
        and the run goes on meanwhile."""
        self.ds = ds
        if self.proc is not None:
            def send():
                try:
                    self.send.send((ds, self.out_dir, self.fcfg))
                except OSError:  # the figure process is gone: finish() reports it
                    pass
                finally:
                    self.send.close()

            self.sender = threading.Thread(target=send, daemon=True)
            self.sender.start()

    def finish(self) -> list[Path]:
        if self.proc is None:
            from sim.outputs.figures import write_figures

            return write_figures(self.ds, self.out_dir, self.fcfg)
        self.sender.join()
        try:
            status, payload = self.recv.recv()
        except EOFError:
            status, payload = "error", f"the figure process ended with exit code {self.proc.exitcode} before reporting"
        finally:
            self.recv.close()
            self.proc.join()
        if status != "ok":
            raise RuntimeError(f"figures: {payload}")
        return [Path(p) for p in payload]

    def abort(self) -> None:
        """Stop the figure processes (the run failed or ended without figures)."""
        if self.proc is None:
            return
        if self.proc.is_alive():
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the worker and its second process
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        self.proc.join()
        if self.sender is not None:
            self.sender.join()
        for end in (self.send, self.recv):
            end.close()

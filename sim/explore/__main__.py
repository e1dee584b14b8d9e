"""``python -m sim.explore [geography=...] [params=...] [draws=N] [port=8050] [host=127.0.0.1] [out=DIR]``:
the lever explorer, a local web app (a Bokeh server); prints its URL.

- ``geography``, ``params``: the inputs and parameters every run of the page uses (as on the
  command line: ``params=calibrated_ensemble`` gives bands and probabilities);
- ``draws``: an ensemble's draws (default 200 for a posterior ensemble);
- ``host`` (127.0.0.1): the address it listens on; another one exposes the page, which runs
  projections for whoever reaches it, to the network: see docs/explorer.md;
- ``out`` (outputs/explore): the folder of the exported runs, the only place it writes.

Bad arguments are refused naming the field, exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sim.config.cli import own_arguments
from sim.config.schema import ConfigError

DEFAULTS = {"geography": "", "params": "", "draws": "", "port": "8050", "host": "127.0.0.1", "out": ""}
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _export_handler():
    from tornado.web import HTTPError, RequestHandler

    from sim.explore.session import EXPORT_FILES

    class ExportHandler(RequestHandler):
        """``GET /export/<token>/<name>``: a file of an export this server made (a token it
        issued, a name of :data:`EXPORT_FILES`); nothing else is served."""

        def initialize(self, exports):
            self.exports = exports

        def get(self, token, name):
            d = self.exports.get(token)
            if d is None or name not in EXPORT_FILES or not (d / name).is_file():
                raise HTTPError(404)
            self.set_header("Content-Type", "text/plain; charset=utf-8" if name.endswith((".csv", ".txt")) else "application/x-netcdf")
            self.set_header("Content-Disposition", f'attachment; filename="{name}"')
            self.write((d / name).read_bytes())

    return ExportHandler


def parse(argv: list[str]) -> tuple[dict, list[str]]:
    own, rest = own_arguments(argv, DEFAULTS)
    if rest:
        raise ConfigError(f"unknown argument(s) {rest}; allowed: {', '.join(f'{k}=...' for k in DEFAULTS)}")
    try:
        port = int(own["port"])
    except ValueError:
        raise ConfigError(f"port = {own['port']!r}: must be an integer 1..65535") from None
    if not 0 < port < 65536:
        raise ConfigError(f"port = {port}: must be an integer 1..65535")
    own["port"] = port
    if own["draws"]:
        try:
            own["draws"] = int(own["draws"])
        except ValueError:
            raise ConfigError(f"draws = {own['draws']!r}: must be an integer >= 1") from None
        if own["draws"] < 1:
            raise ConfigError(f"draws = {own['draws']}: must be an integer >= 1")
    base = [f"{k}={own[k]}" for k in ("geography", "params") if own[k]]
    return own, base


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        own, base = parse(argv)
        from sim.explore.controls import State
        from sim.explore.session import Explorer

        explorer = Explorer(base, out_dir=Path(own["out"]) if own["out"] else None, draws=own["draws"] or None)
        explorer.run(State(explorer.default_scenario))  # the first model built (and the inputs checked) before the URL is printed
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    from functools import partial

    from bokeh.application import Application
    from bokeh.application.handlers.function import FunctionHandler
    from bokeh.server.server import Server

    from sim.explore.app import make_document

    host, port = own["host"], own["port"]
    if host not in LOCAL_HOSTS:
        print(f"warning: listening on {host}: anyone who reaches this address can run projections on this machine (docs/explorer.md)", file=sys.stderr)
    origins = [f"{h}:{port}" for h in ("127.0.0.1", "localhost", host)]
    server = Server({"/": Application(FunctionHandler(partial(make_document, explorer=explorer)))}, address=host, port=port,
                    allow_websocket_origin=origins, extra_patterns=[(r"/export/([0-9a-f]{16})/([A-Za-z0-9_.]+)", _export_handler(), {"exports": explorer.exports})])
    server.start()
    print(f"explorer: http://{'127.0.0.1' if host in LOCAL_HOSTS else host}:{port}/  (Ctrl-C stops it)", flush=True)
    try:
        server.io_loop.start()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``flowsim explore``: a run folder's phase plane in the browser, served by a Bokeh server on 127.0.0.1.

The page shows the run's heatmap over the starts (any numeric column), the field's arrows
behind it, and, for a clicked start, its path computed in this process by flowsim's own
engines under the run's setting and under one picked on the page.  Every asset (BokehJS
included) is served by this process from the installed ``bokeh`` package: the page needs
no network.  See :mod:`flowsim.app.explore.compute` for what is computed and
:mod:`flowsim.app.explore.page` for the page; a traced training run (``flowsim trace``) is
opened by :mod:`flowsim.app.explore.trace`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from flowsim.errors import UserError

#: The only address served: the page runs code in this process, so it is never exposed.
ADDRESS = "127.0.0.1"


def explore(run_dir: str | Path, port: int = 0, show: Callable[[str], None] = print) -> None:
    """Serve the explore page for ``run_dir`` until interrupted (Ctrl-C: KeyboardInterrupt, after a clean stop).

    Parameters
    ----------
    run_dir : str or pathlib.Path
        A run folder (or its flows.csv), checked against its meta.json as ``flowsim plot`` checks it;
        or a traced training run (its trace folder or ``flowsim trace``'s output).
    port : int, default 0
        The port on 127.0.0.1; 0 takes a free one.
    show : callable
        Called once with the line naming the page's address, when the server listens.
    """
    from bokeh.application import Application
    from bokeh.application.handlers.function import FunctionHandler
    from bokeh.server.server import BaseServer
    from bokeh.server.tornado import BokehTornado
    from bokeh.server.util import bind_sockets
    from tornado.httpserver import HTTPServer
    from tornado.ioloop import IOLoop

    from flowsim.app.explore.page import document_factory, run_data, warm_up
    from flowsim.app.load import load
    from flowsim.model.parameterisations import PARAMETERISATIONS

    if not 0 <= port <= 65535:
        raise UserError(f"--port must be a port number in 0..65535 (0: a free one); got {port}")
    data = _trace_data(run_dir)
    if data is None:
        res = load(run_dir)
        if res.experiment is not None and not res.experiment.model_class.policy_of_starts:
            raise UserError(
                f"{res.folder} is a run of trained networks: flowsim explore draws the flows of the "
                f"policy models {sorted(PARAMETERISATIONS)} (their field and paths are recomputed on "
                "the page); see the run's figures/trajectories.png"
            )
        data = run_data(res.folder.name, res.flows, res.experiment)
    warm_up(data)  # the first click then costs what every click costs
    try:
        sockets, actual = bind_sockets(ADDRESS, port)
    except OSError as exc:
        raise UserError(
            f"cannot listen on {ADDRESS}:{port} ({exc.strerror}); choose another --port, or 0 for a free one"
        ) from None
    origins = [f"{ADDRESS}:{actual}", f"localhost:{actual}"]
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app = BokehTornado({"/": Application(FunctionHandler(document_factory(data)))}, extra_websocket_origins=origins)
    http = HTTPServer(app)
    http.add_sockets(sockets)
    server = BaseServer(IOLoop.current(), app, http)
    server.start()
    show(f"flowsim explore: {run_dir} at http://{ADDRESS}:{actual}/  (Ctrl-C stops it)")
    try:
        server.io_loop.start()
    finally:
        server.stop()
        server.io_loop.close(all_fds=False)
        asyncio.set_event_loop(None)


def _trace_data(run_dir: str | Path):
    """The page's data for a traced training run (a trace folder or ``flowsim trace``'s output), else None."""
    from flowsim.app.trace import traced

    folder = traced(run_dir)
    if folder is None:
        return None
    from flowsim.app.explore import trace
    from flowsim.app.explore.page import trace_run_data

    out = trace.trace_output(folder)
    flows, record = trace.read_output(out)
    return trace_run_data(Path(record.get("source", out)).name, flows, float(record["trace"]["beta"]))

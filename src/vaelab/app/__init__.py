"""The interactive latent-space explorer: `vaelab serve RUN_DIR`, or `vaelab.serve(run)`.

explorer.py computes what the page shows from a run (the map, sliders, encodings, paths);
server.py serves it (Starlette under uvicorn) with the page in static/.
"""

from __future__ import annotations

from pathlib import Path


def serve(run: str | Path, *, host: str = "127.0.0.1", port: int = 8000,
          open_browser: bool = False, checkpoint: str = "best", device: str = "cpu",
          data_dir: str | Path | None = None, threads: int | None = 1) -> None:
    """Serve an interactive explorer of a run's latent space in the browser, until Ctrl-C.

    Prints the page's URL (http://127.0.0.1:8000/ by default; `port=0` takes any free
    port; `open_browser` opens it). The page shows the test set's latent means coloured by
    class, decodes any point of that map live, has sliders for the most active dimensions,
    a canvas to draw on, and interpolation between two codes. Nothing is written to the run
    directory. `threads` sets torch's threads while serving (1: the lowest latency for
    one-image decodes; None leaves torch's setting). A bad run directory or a port in use
    raise `vaelab.VaelabError`.
    """
    from .server import serve as serve_run

    serve_run(run, host=host, port=port, open_browser=open_browser, checkpoint=checkpoint,
              device=device, data_dir=data_dir, threads=threads)


__all__ = ["serve"]

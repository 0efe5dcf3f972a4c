"""Figures of a run: matplotlib plots (plots.py), the figures each command draws from a model
(run_figures.py) and the one-page HTML report (report.py). Pillow grids live in
`vaelab.data.images`, so training can write its sample grids without matplotlib.
Import the modules themselves: matplotlib loads only when a figure is drawn."""

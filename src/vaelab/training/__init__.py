"""`train(cfg) -> run directory`: the epoch loop (loop.py), one step (steps.py), objectives,
batches, trainer state, speed settings, data-parallel processes, and what each epoch writes."""

from .loop import train

__all__ = ["train"]

"""The run directory, the unit every command after `train` reads: its layout, atomic
checkpoints (safetensors, JSON, tensors read with weights_only), loading, and export."""

from .export import export, load_decoder, load_encoder
from .rundir import load, load_run

__all__ = ["export", "load", "load_decoder", "load_encoder", "load_run"]

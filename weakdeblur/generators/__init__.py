"""Untrained generators: G_x (image) and G_k (kernel)."""

from weakdeblur.generators.kernel_mlp import KernelMLP
from weakdeblur.generators.skip import NonLocalBlock, SkipNetwork

__all__ = ["KernelMLP", "NonLocalBlock", "SkipNetwork"]

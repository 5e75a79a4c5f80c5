"""Untrained generators: G_x (image) and G_k (kernel, or a grid of kernels)."""

from weakdeblur.generators.kernel_grid import KernelGridMLP
from weakdeblur.generators.kernel_mlp import KernelMLP
from weakdeblur.generators.skip import NonLocalBlock, SkipNetwork

__all__ = ["KernelGridMLP", "KernelMLP", "NonLocalBlock", "SkipNetwork"]

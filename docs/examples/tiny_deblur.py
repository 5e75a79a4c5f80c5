"""A tiny deblurring network, the example of docs/supervisors.md ("Any other network").

g(y) = y + PS(W_2 ReLU(W_1 PU(y))): pixel unshuffle (so sizes must be even),
two 3x3 convolutions, pixel shuffle, and the input added back.
"""

import torch
from torch import nn


class TinyDeblur(nn.Module):
    def __init__(self, channels: int = 3, width: int = 8):
        super().__init__()
        self.body = nn.Sequential(
            nn.PixelUnshuffle(2),
            nn.Conv2d(4 * channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 4 * channels, 3, padding=1),
            nn.PixelShuffle(2),
        )

    def forward(self, blurry: torch.Tensor) -> torch.Tensor:
        return blurry + self.body(blurry)

"""Self-checks of lesson 5 (convolution and pooling). References: torch.nn.functional."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from utils.checks._core import ExerciseCheckFailed, assert_close, exercise_check, passed


@exercise_check
def check_conv2d_loops(conv2d: Callable) -> None:
    """Against ``F.conv2d`` on random shapes, kernels, strides and paddings."""
    generator = torch.Generator().manual_seed(501)
    cases = [(1, 1, 3, 1, 0, 6, 7), (2, 3, 3, 1, 1, 8, 6), (3, 2, 2, 2, 0, 9, 8), (2, 4, 5, 3, 2, 11, 10)]
    for L, M, k, stride, padding, height, width in cases:
        Y = torch.randn(L, height, width, generator=generator, dtype=torch.float64)
        W = torch.randn(M, L, k, k, generator=generator, dtype=torch.float64)
        B = torch.randn(M, generator=generator, dtype=torch.float64)
        expected = F.conv2d(Y[None], W, B, stride=stride, padding=padding)[0]
        assert_close(f"conv2d_loops (L={L}, M={M}, k={k}, stride={stride}, padding={padding})",
                     conv2d(Y, W, B, stride, padding), expected, rtol=1e-9, atol=1e-9,
                     hint="Index the padded input at (stride·i + α, stride·j + β) and add the bias once per output.")
    passed("conv2d_loops")


@exercise_check
def check_conv_output_size(output_size: Callable) -> None:
    """Against the shape of ``F.conv2d``'s output for 200 combinations."""
    generator = torch.Generator().manual_seed(502)
    for _ in range(200):
        kernel, stride, padding = (int(v) for v in torch.randint(1, 6, (3,), generator=generator))
        padding = min(padding - 1, kernel // 2)
        size = kernel + int(torch.randint(0, 40, (1,), generator=generator))
        expected = F.conv2d(torch.zeros(1, 1, size, 1), torch.zeros(1, 1, kernel, 1), stride=stride,
                            padding=(padding, 0)).shape[2]
        got = output_size(size, kernel, stride, padding)
        if got != expected:
            raise ExerciseCheckFailed(f"conv_output_size(size={size}, kernel={kernel}, stride={stride}, "
                                      f"padding={padding}) = {got}, but PyTorch gives {expected}. Use floor division.")
    passed("conv_output_size")


@exercise_check
def check_pool2d(pool2d: Callable) -> None:
    """Against ``F.max_pool2d`` and ``F.avg_pool2d`` with window = stride."""
    generator = torch.Generator().manual_seed(503)
    for channels, height, width, size in ((1, 4, 4, 2), (3, 6, 9, 3), (2, 32, 64, 4)):
        Y = torch.randn(channels, height, width, generator=generator, dtype=torch.float64)
        assert_close(f"max pooling ({size}×{size} on {channels}×{height}×{width})", pool2d(Y, size, "max"),
                     F.max_pool2d(Y[None], size)[0], rtol=0, atol=1e-12)
        assert_close(f"average pooling ({size}×{size} on {channels}×{height}×{width})", pool2d(Y, size, "avg"),
                     F.avg_pool2d(Y[None], size)[0], rtol=1e-12, atol=1e-12)
    passed("pool2d")

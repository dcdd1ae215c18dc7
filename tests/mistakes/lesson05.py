"""Lesson 5: convolution with loops, pooling, the transposed convolution's output size."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.mistakes.catalogue import Answer, Exercise
from utils.checks import lesson05


def _conv_loops(Y, W, B, stride=1, padding=0, *, bias_inside=False, flip=False, use_padding=True, stride_in_index=True,
                stride_in_size=True, with_bias=True, buffer_dtype=None):
    if use_padding:
        Y = F.pad(Y, (padding, padding, padding, padding))
    if flip:
        W = W.flip(-1, -2)
    n_out, n_in, k, _ = W.shape
    step = stride if stride_in_size else 1
    height, width = (Y.shape[1] - k) // step + 1, (Y.shape[2] - k) // step + 1
    Z = torch.zeros(n_out, height, width, dtype=Y.dtype if buffer_dtype is None else buffer_dtype)
    offset = stride if stride_in_index else 1
    for m in range(n_out):
        for i in range(height):
            for j in range(width):
                total = torch.zeros((), dtype=Y.dtype)
                for channel in range(n_in):
                    for a in range(k):
                        for b in range(k):
                            total = total + W[m, channel, a, b] * Y[channel, offset * i + a, offset * j + b]
                            if bias_inside:
                                total = total + B[m]
                Z[m, i, j] = total + (B[m] if with_bias and not bias_inside else 0.0)
    return Z


def _conv_unfold(Y, W, B, stride=1, padding=0):
    n_out, _, k, _ = W.shape
    columns = F.unfold(Y[None], k, padding=padding, stride=stride)[0]
    height = (Y.shape[1] + 2 * padding - k) // stride + 1
    return (W.reshape(n_out, -1) @ columns + B[:, None]).reshape(n_out, height, -1)


def _conv_einsum(Y, W, B, stride=1, padding=0):
    k = W.shape[-1]
    windows = F.pad(Y, (padding,) * 4).unfold(1, k, stride).unfold(2, k, stride)  # (L, H_out, W_out, k, k)
    return torch.einsum("lijab,mlab->mij", windows, W) + B[:, None, None]


CONV2D = Exercise("5.1", lesson05.check_conv2d_loops, wrong=(
    Answer("bias inside the sums (the slide's formula)", lambda *a: _conv_loops(*a, bias_inside=True),
           "inside the sums"),
    Answer("no bias", lambda *a: _conv_loops(*a, with_bias=False), "without the bias"),
    Answer("flipped kernel", lambda *a: _conv_loops(*a, flip=True), "flipped"),
    Answer("padding ignored", lambda *a: _conv_loops(*a, use_padding=False), "without the padding"),
    Answer("stride ignored", lambda *a: _conv_loops(*a, stride_in_index=False, stride_in_size=False),
           "without the stride"),
    Answer("stride only in the output size", lambda *a: _conv_loops(*a, stride_in_index=False), "(i + α, j + β)"),
    Answer("channels not summed (first input channel only)", lambda Y, W, B, s=1, p=0: _conv_unfold(
        Y[:1], W[:, :1], B, s, p), ""),
    Answer("right formula, float32 buffer (torch.zeros without dtype)",
           lambda *a: _conv_loops(*a, buffer_dtype=torch.float32), "dtype=Y.dtype"),
    Answer("the slide's bias placement in a float32 buffer",
           lambda *a: _conv_loops(*a, bias_inside=True, buffer_dtype=torch.float32), "inside the sums"),
    Answer("no bias, float32 buffer", lambda *a: _conv_loops(*a, with_bias=False, buffer_dtype=torch.float32),
           "float32"),
), correct=(
    Answer("unfold and a matrix product", _conv_unfold),
    Answer("einsum over windows", _conv_einsum),
))


def _paint_and_crop(size, kernel, stride=1, padding=0, output_padding=0):
    canvas = torch.zeros((size - 1) * stride + kernel)
    for i in range(size):
        canvas[stride * i:stride * i + kernel] += 1.0
    return len(canvas[padding:len(canvas) - padding]) + output_padding


def _invert_the_convolution(size, kernel, stride=1, padding=0, output_padding=0):
    smallest = next(m for m in range(1, 10_000) if (m + 2 * padding - kernel) // stride + 1 == size)
    return smallest + output_padding


TRANSPOSED_SIZE = Exercise("5.3", lesson05.check_transposed_conv_output_size, wrong=(
    Answer("padding once", lambda n, k, s=1, p=0, q=0: (n - 1) * s - p + k + q, "cropped once"),
    Answer("padding added", lambda n, k, s=1, p=0, q=0: (n - 1) * s + 2 * p + k + q, "added instead"),
    Answer("n·s", lambda n, k, s=1, p=0, q=0: n * s - 2 * p + k + q, "n·s instead of (n − 1)·s"),
    Answer("no output_padding", lambda n, k, s=1, p=0, q=0: (n - 1) * s - 2 * p + k, "without output_padding"),
    Answer("output_padding subtracted", lambda n, k, s=1, p=0, q=0: (n - 1) * s - 2 * p + k - q, "subtracted"),
    Answer("n·s alone", lambda n, k, s=1, p=0, q=0: n * s, "n·s alone"),
    Answer("the convolution's formula", lambda n, k, s=1, p=0, q=0: (n + 2 * p - k) // s + 1, "convolution's formula"),
    Answer("float result", lambda n, k, s=1, p=0, q=0: float((n - 1) * s - 2 * p + k + q), "return an int"),
    Answer("kernel minus one", lambda n, k, s=1, p=0, q=0: (n - 1) * s - 2 * p + k - 1 + q, "last input pixel"),
), correct=(
    Answer("painting patches on a canvas", _paint_and_crop),
    Answer("inverting the convolution's size", _invert_the_convolution),
))


def _pool_unfold(Y, size, mode="max"):
    windows = Y.unfold(1, size, size).unfold(2, size, size)
    return windows.amax(dim=(-1, -2)) if mode == "max" else windows.mean(dim=(-1, -2))


def _pool_loops(Y, size, mode="max"):
    channels, height, width = Y.shape
    out = torch.empty(channels, height // size, width // size, dtype=Y.dtype)
    for c in range(channels):
        for i in range(height // size):
            for j in range(width // size):
                window = Y[c, i * size:(i + 1) * size, j * size:(j + 1) * size]
                out[c, i, j] = window.max() if mode == "max" else window.mean()
    return out


POOL = Exercise("5.2", lesson05.check_pool2d, wrong=(
    Answer("modes swapped", lambda Y, s, mode="max": _pool_unfold(Y, s, "avg" if mode == "max" else "max"), "swapped"),
    Answer("scrambled reshape", lambda Y, s, mode="max": (lambda w: w.amax(dim=(3, 4)) if mode == "max"
                                                         else w.mean(dim=(3, 4)))(
        Y.reshape(Y.shape[0], Y.shape[1] // s, Y.shape[2] // s, s, s)), "scrambled"),
    Answer("stride 1", lambda Y, s, mode="max": (F.max_pool2d if mode == "max" else F.avg_pool2d)(
        Y[None], s, stride=1)[0], "overlapping"),
    Answer("sum for mean", lambda Y, s, mode="max": _pool_unfold(Y, s, "max") if mode == "max"
           else _pool_unfold(Y, s, "avg") * s * s, "sum over each window"),
    Answer("max of absolute values", lambda Y, s, mode="max": _pool_unfold(Y.abs(), s, "max") if mode == "max"
           else _pool_unfold(Y, s, "avg"), "absolute values"),
    Answer("max over one axis only", lambda Y, s, mode="max": Y.reshape(
        Y.shape[0], Y.shape[1] // s, s, Y.shape[2] // s, s).amax(dim=2)[..., 0] if mode == "max"
        else _pool_unfold(Y, s, "avg"), ""),
    Answer("relu before max", lambda Y, s, mode="max": _pool_unfold(Y.clamp(min=0), s, mode), ""),
), correct=(
    Answer("unfold", _pool_unfold),
    Answer("loops", _pool_loops),
))

EXERCISES = (CONV2D, POOL, TRANSPOSED_SIZE)

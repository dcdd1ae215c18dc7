"""Self-checks of lesson 5 (convolution and pooling). References: torch.nn.functional."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from utils.checks._core import ExerciseCheckFailed, assert_close, exercise_check, passed, returned


@exercise_check
def check_conv2d_loops(conv2d: Callable) -> None:
    """Against ``F.conv2d`` on random float64 shapes (odd, non-square, a 1×1 kernel), strides and paddings; a
    result in another dtype (a float32 buffer) is named, with the formula's slip if it has one."""
    generator = torch.Generator().manual_seed(501)
    cases = [(1, 1, 3, 1, 0, 6, 7), (2, 3, 3, 1, 1, 8, 6), (3, 2, 2, 2, 0, 9, 8), (2, 4, 5, 3, 2, 11, 10),
             (3, 2, 1, 1, 0, 4, 5), (2, 3, 3, 2, 1, 7, 9)]
    for L, M, k, stride, padding, height, width in cases:
        Y = torch.randn(L, height, width, generator=generator, dtype=torch.float64)
        K = torch.randn(M, L, k, k, generator=generator, dtype=torch.float64)
        B = torch.randn(M, generator=generator, dtype=torch.float64)
        expected = F.conv2d(Y[None], K, B, stride=stride, padding=padding)[0]
        unstrided = F.conv2d(Y[None], K, B, stride=1, padding=padding)[0]
        mistakes = {
            "with the bias inside the sums (added k²·L times, once per term)":
                F.conv2d(Y[None], K, B * k * k * L, stride=stride, padding=padding)[0],
            "without the bias B[m]": F.conv2d(Y[None], K, None, stride=stride, padding=padding)[0],
            "with the kernel flipped (a true convolution; deep learning's conv2d does not flip)":
                F.conv2d(Y[None], K.flip(-1, -2), B, stride=stride, padding=padding)[0],
            "without the padding": F.conv2d(Y[None], K, B, stride=stride)[0],
            "without the stride": unstrided,
            "with the window at (i + α, j + β) instead of (s·i + α, s·j + β)":
                unstrided[:, :expected.shape[1], :expected.shape[2]],
        }
        case = f"conv2d_loops (L={L}, M={M}, k={k}, stride={stride}, padding={padding}, input {height}×{width})"
        hint = "Z[m, i, j] = Σ_l Σ_α Σ_β K[m, l, α, β]·Ypad[l, s·i + α, s·j + β] + B[m]."
        got = conv2d(Y, K, B, stride, padding)
        if isinstance(got, torch.Tensor) and got.dtype != Y.dtype:
            _fail_on_dtype(case, got, expected, mistakes, hint)
        assert_close(case, got, expected, rtol=1e-9, atol=1e-9, mistakes=mistakes, hint=hint)
    passed("conv2d_loops")


# A float32 result of float64 inputs carries about 7 significant digits: compared at this tolerance, its values
# still say whether the formula is right.
FLOAT32_RTOL = 1e-5


def _fail_on_dtype(case: str, got: torch.Tensor, expected: torch.Tensor, mistakes: dict[str, torch.Tensor],
                   hint: str) -> None:
    """Fail a result whose dtype is not the input's, naming the dtype, and the formula's slip too if there is one
    (compared at float32 precision, so the slides' bias placement is still named with a float32 buffer)."""
    dtype_note = (f"your result is {got.dtype} while the inputs are {expected.dtype}: torch.zeros(M, H_out, W_out) "
                  "makes a float32 buffer by default, which rounds every value to 7 digits; create it with "
                  "dtype=Y.dtype.")
    try:
        assert_close(case, got, expected, rtol=FLOAT32_RTOL, atol=FLOAT32_RTOL, mistakes=mistakes, hint=hint)
    except ExerciseCheckFailed as failure:
        raise ExerciseCheckFailed(f"{failure} Also, {dtype_note}") from None
    raise ExerciseCheckFailed(f"{case}: the values are right to float32 precision, but {dtype_note}")


_TRANSPOSED_SIZE_MISTAKES: dict[str, Callable[[int, int, int, int, int], float]] = {
    "with the padding cropped once instead of at both ends (− p instead of − 2p)":
        lambda n, k, s, p, q: (n - 1) * s - p + k + q,
    "with the padding added instead of cropped (+ 2p)": lambda n, k, s, p, q: (n - 1) * s + 2 * p + k + q,
    "with n·s instead of (n − 1)·s (the last patch starts at s·(n − 1))": lambda n, k, s, p, q: n * s - 2 * p + k + q,
    "without output_padding": lambda n, k, s, p, q: (n - 1) * s - 2 * p + k,
    "with output_padding subtracted": lambda n, k, s, p, q: (n - 1) * s - 2 * p + k - q,
    "from n·s alone (the stride's upsampling without the kernel's overhang)": lambda n, k, s, p, q: n * s,
    "from the convolution's formula instead (⌊(n + 2p − k)/s⌋ + 1)": lambda n, k, s, p, q: (n + 2 * p - k) // s + 1,
}


@exercise_check
def check_transposed_conv_output_size(output_size: Callable) -> None:
    """Against the shape of ``F.conv_transpose2d``'s output for 300 combinations (stride 1, a 1×1 kernel, padding
    and output_padding included); a wrong answer is compared with the usual slips over all of them."""
    generator = torch.Generator().manual_seed(502)
    cases = []
    for _ in range(300):
        kernel, stride = (int(v) for v in torch.randint(1, 6, (2,), generator=generator))
        padding = int(torch.randint(0, kernel, (1,), generator=generator)) // 2
        output_padding = int(torch.randint(0, stride, (1,), generator=generator))  # PyTorch needs it below the stride
        size = int(torch.randint(1, 40, (1,), generator=generator))
        expected = F.conv_transpose2d(torch.zeros(1, 1, size, 1), torch.zeros(1, 1, kernel, 1), stride=(stride, 1),
                                      padding=(padding, 0), output_padding=(output_padding, 0)).shape[2]
        arguments = (size, kernel, stride, padding, output_padding)
        cases.append((arguments, expected, returned("transposed_conv_output_size", output_size(*arguments))))
    wrong = [(arguments, expected, got) for arguments, expected, got in cases if got != expected]
    if not wrong:
        if not all(isinstance(got, int) for _, _, got in cases):
            raise ExerciseCheckFailed("transposed_conv_output_size: return an int (a number of outputs).")
        passed("transposed_conv_output_size")
        return
    (size, kernel, stride, padding, output_padding), expected, got = wrong[0]
    message = (f"transposed_conv_output_size(size={size}, kernel={kernel}, stride={stride}, padding={padding}, "
               f"output_padding={output_padding}) = {got}, but PyTorch gives {expected}")
    for description, mistake in _TRANSPOSED_SIZE_MISTAKES.items():
        if all(mistake(*arguments) == got for arguments, _, got in cases):
            raise ExerciseCheckFailed(f"{message}: that is what you get {description}.")
    raise ExerciseCheckFailed(f"{message}. Where does the last input pixel's patch start and end on the canvas? "
                              "Then crop the padding from both ends and keep output_padding more.")


@exercise_check
def check_pool2d(pool2d: Callable) -> None:
    """Against ``F.max_pool2d`` and ``F.avg_pool2d`` with window = stride, on square and non-square inputs whose
    sides are multiples of the window, all-negative values included."""
    generator = torch.Generator().manual_seed(503)
    for channels, height, width, size in ((1, 4, 4, 2), (3, 6, 9, 3), (2, 32, 64, 4), (1, 2, 6, 2)):
        Y = torch.randn(channels, height, width, generator=generator, dtype=torch.float64)
        if height == 2:
            Y = -Y.abs() - 1.0
        case = f"{size}×{size} on {channels}×{height}×{width}"
        max_pooled, mean_pooled = F.max_pool2d(Y[None], size)[0], F.avg_pool2d(Y[None], size)[0]
        scrambled = Y.reshape(channels, height // size, width // size, size, size)
        mistakes = {
            "with the other pooling (max and mean swapped)": mean_pooled,
            "with windows of scrambled pixels: reshape to (C, H/k, k, W/k, k), not (C, H/k, W/k, k, k)":
                scrambled.amax(dim=(3, 4)),
            "with overlapping windows (stride 1)": F.max_pool2d(Y[None], size, stride=1)[0],
            "with the maximum of absolute values": F.max_pool2d(Y.abs()[None], size)[0],
        }
        assert_close(f"max pooling ({case})", pool2d(Y, size, "max"), max_pooled, rtol=0, atol=1e-12,
                     mistakes=mistakes, hint="Each output is the maximum of one size×size window; windows do not "
                                             "overlap.")
        mistakes = {
            "with the other pooling (max and mean swapped)": max_pooled,
            "with windows of scrambled pixels: reshape to (C, H/k, k, W/k, k), not (C, H/k, W/k, k, k)":
                scrambled.mean(dim=(3, 4)),
            "for a sum over each window instead of a mean": mean_pooled * size**2,
            "with overlapping windows (stride 1)": F.avg_pool2d(Y[None], size, stride=1)[0],
        }
        assert_close(f"average pooling ({case})", pool2d(Y, size, "avg"), mean_pooled, rtol=1e-12, atol=1e-12,
                     mistakes=mistakes, hint="Each output is the mean of one size×size window; windows do not overlap.")
    passed("pool2d")

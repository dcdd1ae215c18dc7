# %% [markdown]
# # Lesson 5 — Convolution and pooling, from the formula to a convolutional encoder
#
# **Time estimate:** 35 minutes. **You will:** implement the convolution formula yourself and see it equal
# PyTorch, apply hand-made filters to a topology design, implement pooling, derive the output size of the
# transposed convolution that lesson 7's decoder uses, and build the convolutional
# encoder that lesson 7's VAE uses — tracing every shape, parameter and receptive field.
#
# A convolutional layer with input channels $l = 1..L$ and output channels $m = 1..M$ computes
#
# $$Z^{m}_{i,j} = \phi\Big(\sum_{l=1}^{L} \sum_{\alpha=0}^{k-1} \sum_{\beta=0}^{k-1}
#   K^{m,l}_{\alpha,\beta}\, Y^{l}_{s i+\alpha,\ s j+\beta} + B^{m}\Big),$$
#
# where $Y$ is the input (zero-padded by $p$ on each side), $K$ the $M \times L \times k \times k$ kernel, $B$ the bias,
# $s$ the stride and $\phi$ an activation such as the ReLU. Deep-learning "convolution" is really cross-correlation:
# the kernel is not flipped. (The slides write $W$ for the kernel and $\sigma$ for the activation; here $H \times W$ is
# an image's height and width, and $\sigma$ stays a standard deviation, as in lessons 1–4.)
#
# > **Erratum (seed slides).** The slides' version of this formula differs in two places, both wrong. It indexes
# > the input by the *output* channel ($Y^{c}$ where we write $Y^{l}$), so the sum over input channels would read
# > one and the same input channel $L$ times; and it puts the bias $B^m$ *inside* the triple sum, where it is added
# > $k^2 L$ times instead of once. The formula above is what `F.conv2d` computes: exercise 5.1 checks your loops
# > against it, and its check names the slide's bias placement if you reproduce it.

# %%
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from utils import seed_everything
from utils.checks.lesson05 import check_conv2d_loops, check_pool2d, check_transposed_conv_output_size
from utils.data import load_topology_dataset
from utils.plotting import DENSITY_CMAP, show_design, use_course_style

use_course_style()
rng = seed_everything(0)

# %% [markdown]
# **Exercise 5.1** — implement the formula with explicit loops (no activation: $\phi$ = identity), for one
# image `Y: (L, H, W)` ($L$ channels of height $H$ and width $W$), kernel `K: (M, L, k, k)`, bias `B: (M,)`.
# Pad with `F.pad(Y, (p, p, p, p))`. The check passes float64 tensors: create your output buffer with the input's
# dtype (`torch.zeros(..., dtype=Y.dtype)`), or it rounds every value to float32's 7 digits.

# %%
# EXERCISE: convolution with loops
def conv2d_loops(Y: torch.Tensor, K: torch.Tensor, B: torch.Tensor, stride: int = 1, padding: int = 0) -> torch.Tensor:
    """Z[m, i, j] = Σ_l Σ_α Σ_β K[m, l, α, β] · Ypad[l, s·i + α, s·j + β] + B[m]; returns (M, H_out, W_out)."""
    # BEGIN SOLUTION
    Y = F.pad(Y, (padding, padding, padding, padding))
    n_out, _, k, _ = K.shape
    height = (Y.shape[1] - k) // stride + 1
    width = (Y.shape[2] - k) // stride + 1
    Z = torch.zeros(n_out, height, width, dtype=Y.dtype)
    for m in range(n_out):
        for i in range(height):
            for j in range(width):
                patch = Y[:, stride * i:stride * i + k, stride * j:stride * j + k]
                Z[m, i, j] = (K[m] * patch).sum() + B[m]
    return Z
    # END SOLUTION


# %%
check_conv2d_loops(conv2d_loops)


# %% [markdown]
# Loops are clear but slow. The same sum is a matrix product once every $k \times k \times L$ patch is laid out
# as a column (`F.unfold`, "im2col"): then one `einsum` does all output positions at once.

# %%
def conv2d_vectorized(Y: torch.Tensor, K: torch.Tensor, B: torch.Tensor, stride: int = 1,
                      padding: int = 0) -> torch.Tensor:
    """The same convolution for a batch Y: (N, L, H, W) via unfold + einsum; returns (N, M, H_out, W_out)."""
    n_out, _, k, _ = K.shape
    patches = F.unfold(Y, kernel_size=k, stride=stride, padding=padding)  # (N, L·k·k, H_out·W_out)
    height = (Y.shape[2] + 2 * padding - k) // stride + 1
    Z = torch.einsum("mc,ncp->nmp", K.reshape(n_out, -1), patches) + B[None, :, None]
    return Z.reshape(Y.shape[0], n_out, height, -1)


for _ in range(20):
    L, M, k = (int(v) for v in rng.integers(1, 5, size=3))
    stride, padding = int(rng.integers(1, 4)), int(rng.integers(0, 3))
    Y = torch.randn(2, L, int(rng.integers(k + 3, 20)), int(rng.integers(k + 3, 20)))
    K, B = torch.randn(M, L, k, k), torch.randn(M)
    torch.testing.assert_close(conv2d_vectorized(Y, K, B, stride, padding), F.conv2d(Y, K, B, stride, padding))
print("conv2d_vectorized equals F.conv2d on 20 random shapes, strides and paddings")

Y, K, B = torch.randn(1, 8, 32, 64), torch.randn(16, 8, 3, 3), torch.randn(16)
timings = {}
for name, run in [("loops", lambda: conv2d_loops(Y[0], K, B, 1, 1)),
                  ("unfold + einsum", lambda: conv2d_vectorized(Y, K, B, 1, 1)),
                  ("F.conv2d", lambda: F.conv2d(Y, K, B, 1, 1))]:
    start = time.perf_counter()
    run()
    timings[name] = time.perf_counter() - start
print("one 8→16-channel 3×3 convolution of a 32×64 image: "
      + ", ".join(f"{name} {seconds * 1e3:.2f} ms" for name, seconds in timings.items()))

# %% [markdown]
# ## The output size
#
# Along each axis, an input of size $n$, kernel $k$, padding $p$ and stride $s$ give
# $\left\lfloor \frac{n - k + 2p}{s} \right\rfloor + 1$ outputs: the kernel's first position plus one per stride
# that still fits in the padded input of size $n + 2p$. We check it against PyTorch on every small case.

# %%
def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Number of outputs along one axis: ⌊(size − kernel + 2·padding) / stride⌋ + 1."""
    return (size - kernel + 2 * padding) // stride + 1


combinations = [(n, k, s, p) for n in range(4, 20) for k in range(1, 5) for s in range(1, 4) for p in range(k // 2 + 1)]
assert all(conv_output_size(n, k, s, p) == F.conv2d(torch.zeros(1, 1, n, 1), torch.zeros(1, 1, k, 1), stride=s,
                                                   padding=(p, 0)).shape[2] for n, k, s, p in combinations)
print(f"the formula gives PyTorch's output size in all {len(combinations)} cases")

# %% [markdown]
# ## Hand-made filters on a topology design
#
# Before a network learns its filters, we choose some by hand: horizontal and vertical Sobel edges and
# a 5×5 blur, applied to one design of the course's dataset (lesson 6 explains where it comes from).

# %%
design = torch.tensor(load_topology_dataset().density[0])[None, None]  # (1, 1, 32, 64)
sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
filters = {"vertical edges (Sobel x)": sobel_x, "horizontal edges (Sobel y)": sobel_x.T,
           "blur (5×5 mean)": torch.full((5, 5), 1 / 25)}
fig, axes = plt.subplots(1, 4, figsize=(13, 2.2))
show_design(axes[0], design[0, 0], "design")
for ax, (name, kernel) in zip(axes[1:], filters.items(), strict=True):
    feature_map = conv2d_vectorized(design, kernel[None, None], torch.zeros(1), padding=kernel.shape[-1] // 2)
    image = ax.imshow(feature_map[0, 0], cmap="RdBu_r" if "edges" in name else DENSITY_CMAP)
    ax.set(title=name, xticks=[], yticks=[])
    ax.grid(False)
    fig.colorbar(image, ax=ax, shrink=0.8)
plt.tight_layout()
plt.show()

# %% [markdown]
# The edge filters respond only at the boundaries of members (red and blue: the two sides), the blur
# smears the design: a first layer of a CNN learns filters of exactly this kind.
#
# ## Pooling
#
# Pooling summarises each $k \times k$ window (stride $k$ here) by its maximum or its mean: it shrinks the
# feature map, keeps *whether* a feature is present (max) or *how much* of it (mean), and has no parameters.
#
# **Exercise 5.2** — implement pooling with window and stride `size`, `mode` "max" or "avg", for `Y: (C, H, W)`
# (assume H and W are multiples of `size`). Tip: `Y.reshape(C, H // size, size, W // size, size)`.

# %%
# EXERCISE: max and average pooling
def pool2d(Y: torch.Tensor, size: int, mode: str = "max") -> torch.Tensor:
    """Non-overlapping size×size pooling of Y: (C, H, W) → (C, H // size, W // size)."""
    # BEGIN SOLUTION
    channels, height, width = Y.shape
    windows = Y.reshape(channels, height // size, size, width // size, size)
    if mode == "max":
        return windows.amax(dim=(2, 4))
    return windows.mean(dim=(2, 4))
    # END SOLUTION


# %%
check_pool2d(pool2d)

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 2.2))
show_design(axes[0], design[0, 0], "design 32×64")
show_design(axes[1], pool2d(design[0], 4, "max")[0], "max pool 4×4 → 8×16: any material")
show_design(axes[2], pool2d(design[0], 4, "avg")[0], "average pool 4×4 → 8×16: how much")
plt.tight_layout()
plt.show()

# %% [markdown]
# Max pooling thickens thin members (a window with any solid becomes solid); average pooling keeps the
# volume fraction exactly (the mean of the means is the mean) but turns thin members grey.
#
# ## A convolutional encoder
#
# `Input → CONV → ReLU → POOL → CONV → ReLU → POOL → CONV → ReLU → POOL → FC`, ending in $2d$ numbers:
# the mean $\mu$ and log-variance $\log\sigma^2$ of $q(z \mid x)$ for a latent of dimension $d$ (choose it here).

# %%
latent_dim = 16
encoder = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(64 * 4 * 8, 2 * latent_dim),
)

def describe(layer: nn.Module) -> str:
    """A short name for a layer: type and the settings that change shapes."""
    if isinstance(layer, nn.Conv2d):
        return (f"Conv2d {layer.in_channels}→{layer.out_channels}, k={layer.kernel_size[0]}, "
                f"s={layer.stride[0]}, p={layer.padding[0]}")
    if isinstance(layer, nn.MaxPool2d):
        return f"MaxPool2d k={layer.kernel_size}"
    if isinstance(layer, nn.Linear):
        return f"Linear {layer.in_features}→{layer.out_features}"
    return type(layer).__name__


print(f"{'layer':<30} {'output shape':<14} {'parameters':>10}")
h = torch.zeros(1, 1, 32, 64)
print(f"{'input':<30} {str(tuple(h.shape[1:])):<14} {0:>10}")
for layer in encoder:
    h = layer(h)
    n_params = sum(p.numel() for p in layer.parameters())
    print(f"{describe(layer):<30} {str(tuple(h.shape[1:])):<14} {n_params:>10,}")
print(f"{'total':<30} {'':<14} {sum(p.numel() for p in encoder.parameters()):>10,}")
mu, logvar = encoder(design).chunk(2, dim=-1)
print(f"μ and log σ² have shape {tuple(mu.shape)} and {tuple(logvar.shape)}")
assert mu.shape == (1, latent_dim)

# %% [markdown]
# A convolution's parameters are $M \cdot L \cdot k^2 + M$, independent of the image size; the final linear
# layer holds most of them ($2048 \cdot 2d + 2d$).
#
# ### The receptive field
#
# Each output of a deeper layer sees a larger patch of the input. With $j$ the distance in input pixels
# between neighbouring outputs ("jump") and $r$ the receptive field, a layer with kernel $k$ and stride $s$
# gives $r \leftarrow r + (k - 1)\, j$ and $j \leftarrow j \cdot s$. We check the formula empirically: the input
# pixels whose gradient reaches one output of a layer are exactly its receptive field.

# %%
def receptive_fields(layers: nn.Sequential) -> list[tuple[str, int]]:
    """(layer name, receptive field in input pixels) after each convolution or pooling layer."""
    field_size, jump, table = 1, 1, []
    for layer in layers:
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            kernel = layer.kernel_size if isinstance(layer.kernel_size, int) else layer.kernel_size[0]
            stride = layer.stride if isinstance(layer.stride, int) else layer.stride[0]
            field_size, jump = field_size + (kernel - 1) * jump, jump * stride
            table.append((type(layer).__name__, field_size))
    return table


def empirical_receptive_field(layers: nn.Sequential, n_layers: int) -> int:
    """Height of the input region that influences the central output of the first n_layers layers."""
    x = torch.zeros(1, 1, 64, 64, requires_grad=True)
    out = layers[:n_layers](x)
    out[0, :, out.shape[2] // 2, out.shape[3] // 2].sum().backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1) > 0)
    return int(rows.max() - rows.min() + 1)


def gradient_probe(layer: nn.Module) -> nn.Module:
    """The same geometry with gradients everywhere: ReLU → identity, max → average pooling."""
    if isinstance(layer, nn.ReLU):
        return nn.Identity()
    if isinstance(layer, nn.MaxPool2d):
        return nn.AvgPool2d(layer.kernel_size, layer.stride)
    return layer


probe = nn.Sequential(*[gradient_probe(layer) for layer in encoder[:9]])
with torch.no_grad():
    for layer in probe:
        if isinstance(layer, nn.Conv2d):
            layer.weight.fill_(1.0)
theory = receptive_fields(probe)
layer_ends = [i + 1 for i, layer in enumerate(probe) if isinstance(layer, (nn.Conv2d, nn.AvgPool2d))]
measured = [empirical_receptive_field(probe, n) for n in layer_ends]
for (name, predicted), actual in zip(theory, measured, strict=True):
    print(f"after {name:<10} receptive field {predicted:3d} px (measured {actual})")
assert [p for _, p in theory] == measured
fig, ax = plt.subplots()
ax.plot(range(1, len(measured) + 1), measured, "o-")
ax.set_xticks(range(1, len(measured) + 1), [name for name, _ in theory], rotation=30)
ax.set(ylabel="receptive field (pixels)", title="the receptive field grows layer by layer")
plt.show()

# %% [markdown]
# (The probe swaps ReLU for the identity and max for average pooling: both keep the geometry, but a ReLU
# or a max can block a gradient and hide part of the field.) After three conv–pool stages every output
# sees 22 pixels: a large part of the 32-pixel-high design.
#
# ## Strided convolutions, and transposed convolutions for the decoder
#
# A convolution with stride 2 downsamples like pooling, but with learned weights; lesson 7's encoder uses
# it (kernel 4, stride 2, padding 1 halves each side). The decoder must go the other way: a **transposed
# convolution** maps each input pixel to a $k \times k$ patch of the output, spaced by the stride. It is the
# convolution's adjoint, i.e. $\langle \mathrm{conv}(x), y \rangle = \langle x, \mathrm{conv}^\top(y) \rangle$ with the
# same kernel: it reverses the *shape* change of the matching convolution (when it can: see below), not its
# values.

# %%
kernel = torch.randn(8, 1, 4, 4)
x = torch.randn(1, 1, 32, 64)
down = F.conv2d(x, kernel, stride=2, padding=1)
y = torch.randn_like(down)
up = F.conv_transpose2d(y, kernel, stride=2, padding=1)
print(f"conv: {tuple(x.shape)} → {tuple(down.shape)};  transposed conv: {tuple(y.shape)} → {tuple(up.shape)}")
lhs, rhs = (down * y).sum().item(), (x * up).sum().item()
print(f"⟨conv(x), y⟩ = {lhs:.4f},  ⟨x, convᵀ(y)⟩ = {rhs:.4f}")
assert up.shape == x.shape and abs(lhs - rhs) < 1e-3 * abs(lhs)

# %% [markdown]
# ### The transposed convolution's output size
#
# Along one axis, a transposed convolution with kernel $k$, stride $s$ and padding $p$ works like this: input
# pixel $i = 0, \dots, n-1$ paints a patch of $k$ values starting at position $s \cdot i$ of a canvas (overlapping
# patches add up); then $p$ values are cropped from *each* end of the canvas (the padding of the matching
# convolution, removed again); finally `output_padding` extra values are kept at the far end. The sketch below
# paints one small case, cell by cell:

# %%
def sketch_transposed_convolution(ax: plt.Axes, size: int, kernel: int, stride: int, padding: int) -> None:
    """One axis of a transposed convolution: input pixel i paints `kernel` cells from position stride·i (one row
    each), the canvas (bottom row) adds them up, and `padding` cells are cropped from each end."""
    coverage: list[int] = []
    for i in range(size):
        for offset in range(kernel):
            position = stride * i + offset
            coverage.extend([0] * (position + 1 - len(coverage)))
            coverage[position] += 1
            ax.add_patch(plt.Rectangle((position, size - i), 1, 0.8, color=f"C{i}", alpha=0.7))
        ax.text(-0.3, size - i + 0.4, f"input pixel {i}", ha="right", va="center")
    for position, count in enumerate(coverage):
        cropped = position < padding or position >= len(coverage) - padding
        ax.add_patch(plt.Rectangle((position, -0.6), 1, 0.8, facecolor="0.85" if cropped else "white",
                                   edgecolor="k", hatch="//" if cropped else None))
        ax.text(position + 0.5, -0.2, str(count), ha="center", va="center")
    ax.text(-0.3, -0.2, "canvas (patches added)", ha="right", va="center")
    ax.set(xlim=(-0.2, len(coverage) + 0.2), ylim=(-0.8, size + 1),
           title=f"n = {size}, k = {kernel}, s = {stride}, p = {padding}: hatched cells are cropped, the others "
                 "are the output")
    ax.set_xticks(range(len(coverage) + 1))
    ax.set_yticks([])
    ax.set_xlabel("position on the canvas")
    ax.grid(False)


fig, ax = plt.subplots(figsize=(9, 2.6))
sketch_transposed_convolution(ax, size=3, kernel=3, stride=2, padding=1)
plt.tight_layout()
plt.show()

# %% [markdown]
# **Exercise 5.3** — derive from this description the number of outputs as a function of `size` ($n$), `kernel`,
# `stride`, `padding` and `output_padding`, and implement it. (The check compares with `F.conv_transpose2d`.)

# %%
# EXERCISE: the transposed convolution's output size
def transposed_conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                                output_padding: int = 0) -> int:
    """Number of outputs along one axis of a transposed convolution."""
    # BEGIN SOLUTION
    return (size - 1) * stride - 2 * padding + kernel + output_padding
    # END SOLUTION


# %%
check_transposed_conv_output_size(transposed_conv_output_size)

# %% [markdown]
# **Your derivation** — how many values does the canvas hold before the crop (where does the last input pixel's patch
# end?), and how many are left after it?
#
# <!-- BEGIN ANSWER -->
# The last patch starts at $s(n-1)$ and ends at $s(n-1) + k$: the canvas has $(n-1)s + k$ values. Cropping $p$ at
# each end and keeping `output_padding` more gives $(n-1)\,s - 2p + k + \text{output\_padding}$.
# <!-- END ANSWER -->

# %% [markdown]
# **When does the transposed convolution undo the shape change?** The convolution maps every size
# $n$ with the same $\lfloor (n + 2p - k)/s \rfloor$ to the same output size, so it forgets up to $s - 1$ pixels; the
# transposed convolution (with `output_padding` 0) returns to $n$ exactly when $s$ divides $n + 2p - k$. Otherwise
# `output_padding` must supply the missing rows. Lesson 7's 32×64 designs with $k = 4$, $s = 2$, $p = 1$ are of the
# lucky kind at every layer (32 → 16 → 8 → 4, all even). We check the rule on sizes 28–36:

# %%
for n in range(28, 37):
    there = conv_output_size(n, kernel=4, stride=2, padding=1)
    back = F.conv_transpose2d(torch.zeros(1, 1, there, 1), torch.zeros(1, 1, 4, 1), stride=2, padding=(1, 0)).shape[2]
    divides = (n + 2 * 1 - 4) % 2 == 0
    assert (back == n) == divides
    print(f"n = {n}: conv → {there}, transposed conv → {back}"
          + ("" if divides else f"  (s does not divide n + 2p − k: output_padding = {n - back} restores {n})"))

# %% [markdown]
# ## What you should take away
# - A convolution is the sum $\sum_l\sum_\alpha\sum_\beta K^{m,l}_{\alpha,\beta} Y^l_{si+\alpha, sj+\beta} + B^m$:
#   your loop version,
#   the unfold/einsum version and `F.conv2d` agree; the output size is $\lfloor (n-k+2p)/s \rfloor + 1$. The slides
#   index the input by the wrong channel and add the bias $k^2 L$ times.
# - Max pooling keeps "is there material", average pooling keeps "how much".
# - A conv encoder turns a 32×64 design into $(\mu, \log\sigma^2)$; its receptive field grows with depth.
# - Transposed convolutions (the adjoint of convolutions) bring the decoder back to the image size: their output
#   size is $(n-1)s - 2p + k + \text{output\_padding}$, which undoes the convolution's shape change only when $s$
#   divides $n + 2p - k$.

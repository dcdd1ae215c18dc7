"""Self-checks of lesson 7 (the convolutional VAE). References: torch.distributions for the loss, the architecture
rebuilt with F.conv_transpose2d from the student's own layers for the decoder, one epoch of Adam computed
independently for the training epoch, and the course's solver for the physics errors."""
from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Normal, kl_divergence

from utils.checks._core import (
    ExerciseCheckFailed,
    assert_close,
    exercise_check,
    gradients,
    passed,
    returned,
    student_call,
)
from utils.data import load_topology_dataset
from utils.metrics import threshold
from utils.topopt import LoadCase, compliance
from utils.vae import ConvVAE, vae_loss
from utils.vae import Decoder as CourseDecoder


@exercise_check
def check_vae_loss(vae_loss: Callable) -> None:
    """Against −Bernoulli(logits).log_prob(x) and kl_divergence(Normal(μ, σ), Normal(0, 1)), for binary and
    grey targets, a batch of one, and β ∈ {0, 0.5, 4}; the three values must be tensors and the total must carry
    gradients to the logits, μ and log σ² (training calls backward() on it)."""
    generator = torch.Generator().manual_seed(702)
    for batch in (6, 1):
        logits = 3 * torch.randn(batch, 1, 32, 64, generator=generator, dtype=torch.float64)
        mu = torch.randn(batch, 16, generator=generator, dtype=torch.float64)
        logvar = torch.randn(batch, 16, generator=generator, dtype=torch.float64)
        targets = {"binary": (torch.rand(batch, 1, 32, 64, generator=generator) > 0.5).double(),
                   "grey": torch.rand(batch, 1, 32, 64, generator=generator, dtype=torch.float64)}
        kl_terms = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0))
        kl = kl_terms.sum(1).mean()
        kl_mistakes = {"for a sum over the batch instead of a mean": kl_terms.sum(),
                       "for a mean over latent dimensions instead of a sum": kl_terms.mean(),
                       "with logvar taken for log σ": kl_divergence(Normal(mu, torch.exp(logvar)),
                                                                    Normal(0.0, 1.0)).sum(1).mean()}
        for kind, x in targets.items():
            pixel_terms = -Bernoulli(logits=logits, validate_args=False).log_prob(x).flatten(1)
            reconstruction = pixel_terms.sum(1).mean()
            reconstruction_mistakes = {
                "for a mean over pixels instead of a sum": pixel_terms.mean(),
                "for a sum over the batch instead of a mean": pixel_terms.sum(),
                "with probabilities passed as logits (sigmoid applied twice)": -Bernoulli(
                    logits=torch.sigmoid(logits), validate_args=False).log_prob(x).flatten(1).sum(1).mean(),
                "with the logits and the targets swapped": -Bernoulli(logits=x, validate_args=False).log_prob(
                    torch.sigmoid(logits)).flatten(1).sum(1).mean(),
            }
            for beta in (0.0, 0.5, 4.0):
                total, got_reconstruction, got_kl = returned("vae_loss", vae_loss(logits, x, mu, logvar, beta))
                case = f"{kind} targets, batch {batch}"
                assert_close(f"reconstruction ({case})", got_reconstruction, reconstruction, rtol=1e-9, atol=1e-9,
                             mistakes=reconstruction_mistakes,
                             hint="Sum the pixels' BCE (binary_cross_entropy_with_logits on the logits), then "
                                  "average over the batch.")
                assert_close(f"KL ({case})", got_kl, kl, rtol=1e-9, atol=1e-9, mistakes=kl_mistakes,
                             hint="Sum lesson 4's −½(1 + log σ² − μ² − σ²) over latents, then average over the "
                                  "batch.")
                assert_close(f"total (β={beta}, {case})", total, reconstruction + beta * kl, rtol=1e-9, atol=1e-9,
                             mistakes={"from β·reconstruction + KL (β on the wrong term)": beta * reconstruction + kl,
                                       "without β (reconstruction + KL)": reconstruction + kl,
                                       "from reconstruction − β·KL": reconstruction - beta * kl},
                             hint="total = reconstruction + β·KL.")
            _check_loss_is_trainable(vae_loss, logits, targets["grey"], mu, logvar)
    passed("vae_loss")


def _check_loss_is_trainable(vae_loss: Callable, logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor,
                             logvar: torch.Tensor) -> None:
    """Training calls backward() on the total and .detach() on the three values: each must be a tensor, and the
    total must carry gradients to the logits, μ and log σ² (β = 0.5)."""
    inputs = {name: value.detach().clone().requires_grad_() for name, value in
              (("logits", logits), ("mu", mu), ("logvar", logvar))}
    values = vae_loss(inputs["logits"], x, inputs["mu"], inputs["logvar"], 0.5)
    for name, value in zip(("total", "reconstruction", "KL"), values, strict=True):
        if not isinstance(value, torch.Tensor):
            raise ExerciseCheckFailed(
                f"vae_loss: the {name} is a {type(value).__name__}, not a tensor. Return torch tensors (no .item() or "
                "float()): training calls backward() on the total, which a Python number cannot do.")
    gradients("vae_loss (the total)", values[0], inputs)


def _transposed_layers(decoder: nn.Module) -> list[nn.ConvTranspose2d]:
    return [module for module in decoder.modules() if isinstance(module, nn.ConvTranspose2d)]


def _layer_data(layer: nn.ConvTranspose2d) -> dict:
    """A transposed convolution as plain data: its channels, weights and kernel, stride and padding choices."""
    return {"in": layer.in_channels, "out": layer.out_channels, "weight": layer.weight.detach().clone(),
            "bias": None if layer.bias is None else layer.bias.detach().clone(), "stride": list(layer.stride),
            "padding": list(layer.padding), "output_padding": list(layer.output_padding), "groups": layer.groups,
            "dilation": list(layer.dilation)}


def _decoder_reference(parts: dict, z: torch.Tensor, width: int, *, first_relu: bool = True,
                       relus: bool = True, swap_height_width: bool = False) -> torch.Tensor:
    """The decoder the exercise asks for, computed with F.conv_transpose2d from the student's own layers (their
    weights and their kernel, stride and padding choices, as :func:`_drive_decoder` reads them); the keywords give
    the usual mistakes."""
    features = F.linear(z, *parts["from_latent"])
    if first_relu:
        features = torch.relu(features)
    features = features.view(-1, 4 * width, 8, 4).transpose(-1, -2) if swap_height_width else \
        features.view(-1, 4 * width, 4, 8)
    layers = parts["layers"]
    for index, layer in enumerate(layers):
        features = F.conv_transpose2d(features, layer["weight"], layer["bias"], layer["stride"], layer["padding"],
                                      layer["output_padding"], layer["groups"], layer["dilation"])
        if relus and index < len(layers) - 1:
            features = torch.relu(features)
    return features


def _drive_decoder(decoder_class: Callable, width: int, z: torch.Tensor) -> dict:
    """The student's part of :func:`check_decoder`, run where the class lives: build the decoder (its initial
    weights from the global generator seeded with ``width``), set the last layer's bias to −1, run it forward and
    backward, and return as plain data what the verdict reads: whether from_latent is a linear layer, layers held
    in a plain container, the logits, the layers, the parameters no gradient reaches, and the output again without
    gradients."""
    torch.manual_seed(width)  # the student's layers draw their initial weights from the global generator
    decoder = decoder_class(6, width)
    run: dict = {"from_latent": isinstance(getattr(decoder, "from_latent", None), nn.Linear)}
    if not run["from_latent"]:
        return run
    run["unregistered"] = _unregistered_container(decoder)
    if run["unregistered"]:
        return run
    layers = _transposed_layers(decoder)
    if layers and layers[-1].bias is not None:
        with torch.no_grad():  # a bias of −1 makes most correct logits negative, whatever the initial weights
            layers[-1].bias.fill_(-1.0)
    logits = decoder(z)
    run |= {"returned_none": logits is None, "kind": type(logits).__name__,
            "logits": logits.detach() if isinstance(logits, torch.Tensor) else None,
            "layers": [_layer_data(layer) for layer in layers],
            "from_latent_parameters": [decoder.from_latent.weight.detach().clone(),
                                       None if decoder.from_latent.bias is None
                                       else decoder.from_latent.bias.detach().clone()]}
    if isinstance(logits, torch.Tensor) and logits.requires_grad:
        logits.sum().backward()
    run["silent"] = [name for name, p in decoder.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    with torch.no_grad():
        run["again"] = decoder(z)
    return run


@exercise_check
def check_decoder(decoder_class: Callable) -> None:
    """For widths 8 and 16 and batches of 1 and 5: logits of shape (B, 1, 32, 64) that can be negative,
    gradients to every layer, three transposed convolutions 4w → 2w → w → 1 channels, and the same output as the
    architecture the exercise describes, rebuilt from the student's own layers (so any kernel, stride and
    padding that double each side are accepted). Layers kept in a plain Python list are named; after a pass, a
    note says whether the shipped checkpoint's weights would load into the student's layout."""
    generator = torch.Generator().manual_seed(704)
    for width, batch in ((8, 5), (16, 1)):
        z = 3 * torch.randn(batch, 6, generator=generator)
        run = student_call(_drive_decoder, decoder_class, width, z)
        if not run["from_latent"]:
            raise ExerciseCheckFailed("Decoder: keep the given linear layer self.from_latent")
        if run["unregistered"]:
            name, kind = run["unregistered"]
            raise ExerciseCheckFailed(
                f"Decoder: your layers sit in a Python {kind} (self.{name}), which nn.Module does not "
                "see: their weights are not parameters of the decoder, so the optimizer, .to(device) and "
                "state_dict() miss them. Hold them in nn.Sequential(...) or nn.ModuleList([...]).")
        if run["returned_none"]:
            returned("Decoder's forward", None)
        logits = run["logits"]
        if not isinstance(logits, torch.Tensor) or logits.shape != (batch, 1, 32, 64):
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else run["kind"]
            raise ExerciseCheckFailed(f"Decoder (width {width}): expected logits of shape ({batch}, 1, 32, 64), got "
                                      f"{shape}. Each transposed convolution must double both sides: 4×8 → 8×16 → "
                                      "16×32 → 32×64 (exercise 5.3's formula).")
        channels = [(layer["in"], layer["out"]) for layer in run["layers"]]
        wanted = [(4 * width, 2 * width), (2 * width, width), (width, 1)]
        if channels != wanted:
            unregistered = "" if channels else (" (nn.Module registers a layer only when it is assigned to self "
                                                "directly or held in nn.Sequential or nn.ModuleList)")
            raise ExerciseCheckFailed(f"Decoder (width {width}): expected three nn.ConvTranspose2d with (in, out) "
                                      f"channels {wanted}, found {channels}{unregistered}.")
        if not torch.any(logits < 0):
            raise ExerciseCheckFailed("Decoder: no output is negative. The decoder returns logits (any real number); "
                                      "put no ReLU or sigmoid after the last transposed convolution.")
        if run["silent"]:
            raise ExerciseCheckFailed(f"Decoder: no gradient reaches {run['silent']}; use every layer in forward")
        parts = {"from_latent": run["from_latent_parameters"], "layers": run["layers"]}
        with torch.no_grad():
            expected = _decoder_reference(parts, z, width)
            mistakes = {
                "without the ReLU between the linear layer and the first transposed convolution":
                    _decoder_reference(parts, z, width, first_relu=False),
                "without the ReLUs between the transposed convolutions":
                    _decoder_reference(parts, z, width, relus=False),
                "with the 4×8 feature maps reshaped as 8×4 and transposed": _decoder_reference(
                    parts, z, width, swap_height_width=True),
            }
            assert_close(f"Decoder output (width {width}, batch {batch})", run["again"], expected, rtol=1e-5,
                         atol=1e-5, mistakes=mistakes,
                         hint="ReLU after from_latent, view as (B, 4·width, 4, 8), then transposed convolution, ReLU, "
                              "transposed convolution, ReLU, transposed convolution.")
    passed("Decoder")
    _note_checkpoint_layout(student_call(_drive_state_shapes, decoder_class), CourseDecoder(6, 8))


def _unregistered_container(decoder: nn.Module) -> tuple[str, str] | None:
    """(attribute, container type) of layers kept in a plain list, tuple or dict, which are invisible to nn.Module
    (no parameters, no .to(device)); None when there are none."""
    for name, value in vars(decoder).items():
        if name.startswith("_"):  # nn.Module's own bookkeeping (_modules, _parameters, …)
            continue
        held = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else ()
        if any(isinstance(item, nn.Module) for item in held):
            return name, type(value).__name__
    return None


def _drive_state_shapes(decoder_class: Callable) -> dict[str, list[int]]:
    """The shapes of a width-8 student decoder's state_dict, by name (run where the class lives)."""
    return {name: list(value.shape) for name, value in decoder_class(6, 8).state_dict().items()}


def _note_checkpoint_layout(theirs: dict[str, list[int]], course_decoder: nn.Module) -> None:
    """Print whether the shipped checkpoint's decoder weights would load into this layout (``theirs``: the shapes
    of the student's state_dict): the check accepts any layout that computes the right function, but
    load_state_dict needs the same parameter names and shapes."""
    theirs = {name: tuple(shape) for name, shape in theirs.items()}
    ours = {name: tuple(value.shape) for name, value in course_decoder.state_dict().items()}
    if theirs == ours:
        print("   Your layout is utils.vae.Decoder's: the shipped checkpoint's decoder weights load into it.")
    else:
        layers = sorted({name.rsplit(".", 1)[0] for name in ours})
        print("   Note: your layers are named or shaped differently from utils.vae.Decoder's "
              f"({', '.join(layers)}), so the shipped checkpoint's weights would not load into your class with "
              "load_state_dict. That is fine for this lesson, which loads the checkpoint into utils.vae's class; "
              "to match it, make self.upsample an nn.Sequential that starts with the ReLU, with kernel 4.")


def _tiny_training_setup(seed: int) -> tuple[nn.Module, list[torch.Tensor]]:
    """A narrow VAE (width 2, 2 latents) and three batches of 4, 4 and 3 random designs."""
    torch.manual_seed(seed)
    model = ConvVAE(latent_dim=2, width=2)
    generator = torch.Generator().manual_seed(seed)
    batches = [torch.rand(size, 1, 32, 64, generator=generator) for size in (4, 4, 3)]
    return model, batches


def _reference_epoch(model: nn.Module, batches: list[torch.Tensor], kl_weight: float, seed: int, *,
                     zero_grad: bool = True,
                     weighted_average: bool = True) -> tuple[dict[str, float], list[torch.Tensor]]:
    """One epoch of Adam (lr 0.01) on reconstruction + kl_weight·KL (torch.distributions); returns the averages
    and the parameters after it. The keywords give the usual mistakes (the wrong KL weight and a missing step are
    caught before the comparison)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    torch.manual_seed(seed)
    rows, sizes = [], []
    for x in batches:
        logits, mu, logvar = model(x)
        reconstruction = -Bernoulli(logits=logits, validate_args=False).log_prob(x).flatten(1).sum(1).mean()
        kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(1).mean()
        loss = reconstruction + kl_weight * kl
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        rows.append(torch.stack([loss, reconstruction, kl]).detach())
        sizes.append(len(x))
    rows_tensor, size_tensor = torch.stack(rows), torch.tensor(sizes, dtype=rows[0].dtype)
    averages = (rows_tensor * size_tensor[:, None]).sum(0) / size_tensor.sum() if weighted_average \
        else rows_tensor.mean(0)
    return dict(zip(("loss", "reconstruction", "kl"), averages.tolist(), strict=True)), \
        [p.detach().clone() for p in model.parameters()]


def _flat(parameters: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([p.flatten() for p in parameters])


def _recording_loss(seen_weights: list[float]) -> Callable:
    """vae_loss that appends the KL weight it receives to ``seen_weights``."""
    def recording_loss(logits, x, mu, logvar, beta=1.0):
        seen_weights.append(float(beta))
        return vae_loss(logits, x, mu, logvar, beta)
    return recording_loss


def _record_training_events(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The order of the epoch's "backward", "zero_grad" and "step" calls ("step without gradients" for a step
    taken when every gradient is missing or zero), recorded by hooks on the parameters and the optimizer."""
    events: list[str] = []

    def backward_seen(gradient: torch.Tensor) -> torch.Tensor:
        if not events or events[-1] != "backward":
            events.append("backward")
        return gradient

    for parameter in model.parameters():
        parameter.register_hook(backward_seen)
    zero_grad, step = optimizer.zero_grad, optimizer.step

    def recording_zero_grad(*args, **kwargs):
        events.append("zero_grad")
        return zero_grad(*args, **kwargs)

    def recording_step(*args, **kwargs):
        has_gradients = any(p.grad is not None and bool(torch.any(p.grad != 0))
                            for group in optimizer.param_groups for p in group["params"])
        events.append("step" if has_gradients else "step without gradients")
        return step(*args, **kwargs)

    optimizer.zero_grad, optimizer.step = recording_zero_grad, recording_step
    return events


def _order_diagnosis(events: list[str]) -> str:
    """Why the steps moved nothing, from the order of the calls before the first step."""
    if not any(event.startswith("step") for event in events):
        return "call optimizer.step() after loss.backward() for every batch."
    before = events[:next(i for i, event in enumerate(events) if event.startswith("step"))]
    if "backward" in before and before[-1] == "zero_grad":
        return ("you call optimizer.zero_grad() between loss.backward() and optimizer.step(), which erases the "
                "gradients the step needs. Clear them before backward(): zero_grad(), backward(), step().")
    if "backward" not in before:
        return ("optimizer.step() comes before loss.backward(), so it has no gradient to use. The order is "
                "zero_grad(), backward(), step().")
    return "each batch needs optimizer.zero_grad(), loss.backward(), then optimizer.step(), in that order."


def _check_floats(averages: dict) -> None:
    """The epoch's averages are what the lesson plots and prints: Python numbers, not tensors."""
    for key, value in averages.items():
        if isinstance(value, torch.Tensor):
            attached = (" still attached to the autograd graph (requires_grad): each epoch's graph stays in memory "
                        "and the plot cell fails on it" if value.requires_grad else "")
            raise ExerciseCheckFailed(
                f"train_epoch: the average '{key}' is a tensor{attached}. Return Python floats: sum "
                "loss.item() · len(x) (or detached tensors, converted with .item() or .tolist() at the end).")
        if not isinstance(value, int | float | np.floating) or isinstance(value, bool):
            raise ExerciseCheckFailed(f"train_epoch: the average '{key}' is a {type(value).__name__}; return floats.")


def _drive_train_epoch(train_epoch: Callable, seed: int, kl_weight: float, loss_fn: Callable) -> dict:
    """The student's part of :func:`check_train_epoch`, run where the function lives: one epoch of
    ``train_epoch`` on the narrow VAE of ``seed`` (handed over in eval mode, the global generator seeded with
    ``seed``), with hooks recording the order of the backward, zero_grad and step calls and the model's mode at
    each forward; returns the averages it returned, those records and the parameters after the epoch."""
    model, batches = _tiny_training_setup(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    events = _record_training_events(model, optimizer)
    modes: list[bool] = []
    model.register_forward_pre_hook(lambda module, _, seen=modes: seen.append(module.training))
    model.eval()  # as the lesson's evaluation code leaves a model: the epoch must switch it back
    torch.manual_seed(seed)
    averages = train_epoch(model, batches, optimizer, kl_weight, loss_fn)
    return {"averages": averages, "events": events, "modes": modes,
            "parameters": [p.detach().clone() for p in model.parameters()]}


@exercise_check
def check_train_epoch(train_epoch: Callable) -> None:
    """On a narrow VAE and three batches of 4, 4 and 3 designs, with KL weights 0.3 and 1: the parameters after
    the student's epoch and the returned averages (each batch weighted by its size) equal one epoch of Adam on
    reconstruction + kl_weight·KL, computed here with torch.distributions, from the same initial weights and the
    same random numbers; the loss goes through the ``loss_fn`` argument, the averages are Python floats, the
    model is switched to training mode (the check hands it over in eval mode), and a step that moves nothing is
    explained by the order of the zero_grad, backward and step calls."""
    seed = 705
    for kl_weight in (0.3, 1.0):
        reference_model, batches = _tiny_training_setup(seed)  # the student's epoch starts from the same model
        initial = _flat([p.detach().clone() for p in reference_model.parameters()])
        seen_weights: list[float] = []
        run = student_call(_drive_train_epoch, train_epoch, seed, kl_weight, _recording_loss(seen_weights))
        averages, events, modes = returned("train_epoch", run["averages"]), run["events"], run["modes"]
        if len(seen_weights) != len(batches):
            raise ExerciseCheckFailed(f"train_epoch: loss_fn was called {len(seen_weights)} times for "
                                      f"{len(batches)} batches; call the loss_fn argument once per batch.")
        if any(abs(value - kl_weight) > 1e-12 for value in seen_weights):
            raise ExerciseCheckFailed(f"train_epoch: loss_fn received β = {seen_weights[0]:g}, but the KL weight of "
                                      f"this epoch is {kl_weight}; pass kl_weight as loss_fn's last argument.")
        if not isinstance(averages, dict) or set(averages) != {"loss", "reconstruction", "kl"}:
            raise ExerciseCheckFailed("train_epoch: return a dict with the keys 'loss', 'reconstruction' and 'kl'")
        _check_floats(averages)
        if not all(modes):
            raise ExerciseCheckFailed(
                "train_epoch: the model ran in evaluation mode. Call model.train() at the start of the epoch: the "
                "lesson's evaluation code leaves models in eval mode, where dropout and batch normalisation behave "
                "as at test time.")
        got_parameters = _flat(run["parameters"])
        if torch.equal(got_parameters, initial):
            raise ExerciseCheckFailed(f"train_epoch: the parameters did not change; {_order_diagnosis(events)}")
        expected, expected_parameters = _reference_epoch(copy.deepcopy(reference_model), batches, kl_weight, seed)
        without_zero_grad = _reference_epoch(copy.deepcopy(reference_model), batches, kl_weight, seed,
                                             zero_grad=False)[1]
        assert_close(f"parameters after one epoch (kl_weight {kl_weight})", got_parameters, _flat(expected_parameters),
                     rtol=1e-4, atol=1e-6,
                     mistakes={"without optimizer.zero_grad() (gradients add up over the batches)":
                               _flat(without_zero_grad)},
                     hint="For each batch: logits, μ, log σ² = model(x); loss = loss_fn(..., kl_weight)[0]; "
                          "optimizer.zero_grad(); loss.backward(); optimizer.step().")
        unweighted = _reference_epoch(copy.deepcopy(reference_model), batches, kl_weight, seed,
                                      weighted_average=False)[0]
        for key in ("loss", "reconstruction", "kl"):
            assert_close(f"average {key} over the epoch (kl_weight {kl_weight})", averages[key], expected[key],
                         rtol=1e-5, atol=1e-5,
                         mistakes={"from a plain mean of the batch means (the last batch has 3 designs, not 4)":
                                   unweighted[key]},
                         hint="Weight each batch's mean by its size, then divide by the number of designs.")
    passed("train_epoch")


def _judging_cases() -> list[tuple[str, np.ndarray, np.ndarray, LoadCase]]:
    """(name, design, grey original, problem) on real test designs: the original itself, a thickened and a
    thinned copy (grey values moved across 0.5), and a copy with a column of material removed."""
    test = load_topology_dataset().subset("test")
    cases = []
    for index in (0, 7, 21):
        original = test.density[index]
        cases.append((f"test design {index} against itself", original.copy(), original, test.load_case(index)))
    original, problem = test.density[3], test.load_case(3)
    cases.append(("a thickened copy of test design 3", np.clip(original + 0.3, 0, 1), original, problem))
    cases.append(("a thinned copy of test design 3", np.clip(original - 0.3, 0, 1), original, problem))
    cut = original.copy()
    cut[:, 30:32] = 0.0
    cases.append(("test design 3 cut in two", cut, original, problem))
    return cases


def _drive_physics_errors(physics_errors: Callable, design: np.ndarray, original: np.ndarray, problem: dict
                          ) -> object:
    """The student's part of :func:`check_physics_errors`, run where the function lives: its result on a design,
    its original and the problem (sent as :meth:`LoadCase.to_dict`, rebuilt here)."""
    return physics_errors(design, original, LoadCase.from_dict(problem))


@exercise_check
def check_physics_errors(physics_errors: Callable) -> None:
    """On real test designs, against the course's solver: CE = C(thr design)/C(thr original) − 1 and VFE =
    |VF − VF_ref|/VF_ref of the thresholded designs. A design equal to its original must score 0 on both,
    a thicker one a negative CE, a cut one a CE of orders of magnitude."""
    for name, design, original, problem in _judging_cases():
        got = returned("physics_errors", student_call(_drive_physics_errors, physics_errors, design.copy(),
                                                      original.copy(), problem.to_dict()))
        if not (isinstance(got, tuple | list) and len(got) == 2):
            raise ExerciseCheckFailed("physics_errors: return two numbers, (CE, VFE)")
        solid, solid_original = threshold(design), threshold(original)
        reference_compliance = compliance(solid_original, problem)
        design_compliance = compliance(solid, problem)
        expected_ce = design_compliance / reference_compliance - 1
        volume, reference_volume = solid.mean(), solid_original.mean()
        expected_vfe = abs(volume - reference_volume) / reference_volume
        grey_volume, grey_reference = np.mean(design), np.mean(original)
        ce_mistakes = {
            "without thresholding the design (its grey compliance)":
                compliance(design, problem) / reference_compliance - 1,
            "without thresholding the original (the grey SIMP compliance as the reference)":
                design_compliance / compliance(original, problem) - 1,
            "from C_ref / C − 1 (the ratio upside down)": reference_compliance / design_compliance - 1,
            "from C − C_ref (a difference, not a relative error)": design_compliance - reference_compliance,
            "in per cent (100 × the ratio − 1)": 100 * expected_ce,
        }
        assert_close(f"CE ({name})", float(got[0]), expected_ce, rtol=1e-6, atol=1e-9,
                     mistakes={k: v for k, v in ce_mistakes.items() if not np.isclose(v, expected_ce)},
                     hint="Threshold both designs at 0.5, solve each under the problem, CE = C_design / C_ref − 1.")
        vfe_mistakes = {
            "against the problem's volume target instead of the thresholded original's volume":
                abs(volume - problem.volfrac) / problem.volfrac,
            "from the grey volumes (no thresholding)": abs(grey_volume - grey_reference) / grey_reference,
            "without the absolute value": (volume - reference_volume) / reference_volume,
            "divided by the design's volume instead of the original's":
                abs(volume - reference_volume) / max(volume, 1e-12),
        }
        assert_close(f"VFE ({name})", float(got[1]), expected_vfe, rtol=1e-6, atol=1e-9,
                     mistakes={k: v for k, v in vfe_mistakes.items() if not np.isclose(v, expected_vfe)},
                     hint="VFE = |VF − VF_ref| / VF_ref with VF the share of solid elements after thresholding.")
    passed("physics_errors")

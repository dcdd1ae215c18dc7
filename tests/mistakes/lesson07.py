"""Lesson 7: the β-VAE loss, the decoder, one training epoch, the physics errors."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from tests.mistakes.catalogue import Answer, Exercise
from utils.checks import lesson07
from utils.metrics import compliance_error, threshold, volume_fraction_error
from utils.topopt import compliance
from utils.vae import Decoder
from utils.vae import train_epoch as reference_train_epoch
from utils.vae import vae_loss as vae_loss_reference


def _loss(logits, x, mu, logvar, beta=1.0, *, pixel="sum", batch="mean", kl_std=lambda lv: torch.exp(0.5 * lv),
          beta_on="kl", kl_latents="sum"):
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1)
    per_image = bce.sum(1) if pixel == "sum" else bce.mean(1)
    reconstruction = per_image.mean() if batch == "mean" else per_image.sum()
    kl_terms = kl_divergence(Normal(mu, kl_std(logvar)), Normal(0.0, 1.0))
    kl_per_image = kl_terms.sum(1) if kl_latents == "sum" else kl_terms.mean(1)
    kl = kl_per_image.mean() if batch == "mean" else kl_per_image.sum()
    total = reconstruction + beta * kl if beta_on == "kl" else beta * reconstruction + kl
    return total, reconstruction, kl


VAE_LOSS = Exercise("7.1", lesson07.check_vae_loss, wrong=(
    Answer("mean over pixels", lambda *a: _loss(*a, pixel="mean"), "mean over pixels"),
    Answer("sum over the batch", lambda *a: _loss(*a, batch="sum"), "sum over the batch"),
    Answer("β on the reconstruction", lambda *a: _loss(*a, beta_on="reconstruction"), "β on the wrong term"),
    Answer("logvar as log σ in the KL", lambda *a: _loss(*a, kl_std=torch.exp), "logvar taken for log σ"),
    Answer("KL mean over latents", lambda *a: _loss(*a, kl_latents="mean"), "mean over latent"),
    Answer("sigmoid twice", lambda logits, *a: _loss(torch.sigmoid(logits), *a), "sigmoid applied twice"),
    Answer("ignores β", lambda logits, x, mu, lv, beta=1.0: _loss(logits, x, mu, lv, 1.0), "without β"),
    Answer("F.binary_cross_entropy's default mean", lambda logits, x, mu, lv, beta=1.0: (lambda r, k: (
        r + beta * k, r, k))(F.binary_cross_entropy_with_logits(logits, x), _loss(logits, x, mu, lv)[2]),
        "mean over pixels"),
    Answer("returns Python floats (.item())", lambda *a: tuple(v.item() for v in _loss(*a)), "not a tensor"),
    Answer("returns the total detached", lambda *a: (lambda t, r, k: (t.detach(), r, k))(*_loss(*a)),
           "not differentiable"),
), correct=(
    Answer("torch.distributions", lambda logits, x, mu, lv, beta=1.0: (lambda r, k: (r + beta * k, r, k))(
        -Independent(Bernoulli(logits=logits, validate_args=False), 3).log_prob(x).mean(),
        kl_divergence(Independent(Normal(mu, torch.exp(0.5 * lv)), 1),
                      Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)).mean())),
    Answer("BCE on probabilities", lambda logits, x, mu, lv, beta=1.0: (lambda r, k: (r + beta * k, r, k))(
        F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="sum") / x.shape[0],
        0.5 * (mu.pow(2) + lv.exp() - 1 - lv).sum() / mu.shape[0])),
))


def _decoder(layers, forward=None):
    """A student's decoder: ``layers(width)`` builds self.upsample; ``forward(self, z)`` overrides the forward."""
    class StudentDecoder(nn.Module):
        def __init__(self, latent_dim, width=32):
            super().__init__()
            self.width = width
            self.from_latent = nn.Linear(latent_dim, 4 * width * 4 * 8)
            self.upsample = layers(width)

        def forward(self, z):
            if forward is not None:
                return forward(self, z)
            return self.upsample(self.from_latent(z).view(-1, 4 * self.width, 4, 8))
    return StudentDecoder


def _stack(width, k=4, p=1, q=0, first_relu=True, relus=True, final=()):
    layers = [nn.ReLU()] if first_relu else []
    channels = [4 * width, 2 * width, width, 1]
    for index in range(3):
        layers.append(nn.ConvTranspose2d(channels[index], channels[index + 1], k, stride=2, padding=p,
                                         output_padding=q))
        if relus and index < 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers, *final)


class _listed_decoder(nn.Module):  # noqa: N801  (named like the answers around it)
    """A decoder whose transposed convolutions sit in a plain list: right shapes, unregistered layers."""

    def __init__(self, latent_dim, width=32):
        super().__init__()
        self.width = width
        self.from_latent = nn.Linear(latent_dim, 4 * width * 4 * 8)
        self.layers = [nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1), nn.ConvTranspose2d(2 * width, width, 4, 2, 1),
                       nn.ConvTranspose2d(width, 1, 4, 2, 1)]

    def forward(self, z):
        features = self.from_latent(z).view(-1, 4 * self.width, 4, 8)
        for layer in self.layers:
            features = layer(torch.relu(features))
        return features


class _relu_in_forward_decoder(nn.Module):  # noqa: N801
    """A correct decoder whose ReLUs live in forward: the check accepts it; its state_dict differs from utils.vae's."""

    def __init__(self, latent_dim, width=32):
        super().__init__()
        self.width = width
        self.from_latent = nn.Linear(latent_dim, 4 * width * 4 * 8)
        self.upsample = nn.ModuleList([nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1),
                                       nn.ConvTranspose2d(2 * width, width, 4, 2, 1),
                                       nn.ConvTranspose2d(width, 1, 4, 2, 1)])

    def forward(self, z):
        features = self.from_latent(z).view(-1, 4 * self.width, 4, 8)
        for index, layer in enumerate(self.upsample):
            features = layer(torch.relu(features)) if index == 0 else layer(features)
            if index < 2:
                features = torch.relu(features)
        return features


DECODER = Exercise("7.2", lesson07.check_decoder, wrong=(
    Answer("no first ReLU", _decoder(lambda w: _stack(w, first_relu=False)), "between the linear layer"),
    Answer("no ReLUs between", _decoder(lambda w: _stack(w, relus=False)), "between the transposed"),
    Answer("sigmoid at the end", _decoder(lambda w: _stack(w, final=(nn.Sigmoid(),))), "no output is negative"),
    Answer("ReLU at the end", _decoder(lambda w: _stack(w, final=(nn.ReLU(),))), "no output is negative"),
    Answer("kernel 3, padding 1, no output_padding", _decoder(lambda w: _stack(w, k=3)), "double both sides"),
    Answer("stride 1", _decoder(lambda w: nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(4 * w, 2 * w, 3, padding=1),
                                                        nn.ReLU(), nn.ConvTranspose2d(2 * w, w, 3, padding=1),
                                                        nn.ReLU(), nn.ConvTranspose2d(w, 1, 3, padding=1))), "shape"),
    Answer("8×4 reshape transposed", _decoder(lambda w: _stack(w), lambda self, z: self.upsample(
        self.from_latent(z).view(-1, 4 * self.width, 8, 4).transpose(-1, -2))), "reshaped as 8×4"),
    Answer("channels 4w → w → w → 1", _decoder(lambda w: nn.Sequential(
        nn.ReLU(), nn.ConvTranspose2d(4 * w, w, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(w, w, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(w, 1, 4, 2, 1))), "channels"),
    Answer("layers kept in a Python list", _listed_decoder, "nn.ModuleList"),
    Answer("from_latent skipped", _decoder(lambda w: _stack(w), lambda self, z: self.upsample(
        z.repeat(1, 4 * self.width * 32 // z.shape[1] + 1)[:, :4 * self.width * 32].view(-1, 4 * self.width, 4, 8))),
        "from_latent"),
), correct=(
    Answer("the course's decoder", Decoder),
    Answer("kernel 2, padding 0", _decoder(lambda w: _stack(w, k=2, p=0))),
    Answer("kernel 3, padding 1, output_padding 1, layers listed separately", _decoder(
        lambda w: _stack(w, k=3, q=1), lambda self, z: _layer_by_layer(self, z))),
    Answer("ReLUs in forward, layers in nn.ModuleList", _relu_in_forward_decoder),
))


def _layer_by_layer(decoder, z):
    features = torch.relu(decoder.from_latent(z)).reshape(z.shape[0], 4 * decoder.width, 4, 8)
    for layer in list(decoder.upsample)[1:]:
        features = layer(features)
    return features



def _epoch(model, batches, optimizer, kl_weight, loss_fn=vae_loss_reference, *, zero_grad=True, weight=None,
           weighted=True, step=True, backward_after_step=False, zero_grad_before_step=False, keep_graph=False,
           train_mode=True):
    if train_mode:
        model.train()
    rows, sizes = [], []
    for x in batches:
        logits, mu, logvar = model(x)
        loss, reconstruction, kl = loss_fn(logits, x, mu, logvar, kl_weight if weight is None else weight)
        if zero_grad:
            optimizer.zero_grad()
        if backward_after_step:
            optimizer.step()
            loss.backward()
        else:
            loss.backward()
            if zero_grad_before_step:
                optimizer.zero_grad()
            if step:
                optimizer.step()
        rows.append(torch.stack([loss, reconstruction, kl]) if keep_graph else
                    [loss.item(), reconstruction.item(), kl.item()])
        sizes.append(len(x))
    if keep_graph:  # the slip: totals summed from the losses themselves, never detached
        totals = sum(row * size for row, size in zip(rows, sizes, strict=True)) / sum(sizes)
        return dict(zip(("loss", "reconstruction", "kl"), totals, strict=True))
    rows, sizes = torch.tensor(rows), torch.tensor(sizes, dtype=torch.float32)
    averages = (rows * sizes[:, None]).sum(0) / sizes.sum() if weighted else rows.mean(0)
    return dict(zip(("loss", "reconstruction", "kl"), averages.tolist(), strict=True))


def _epoch_twice_through_the_model(model, batches, optimizer, kl_weight, loss_fn=vae_loss_reference):
    """Logs with a second forward pass after each step: other random numbers, and twice the time."""
    model.train()
    rows, sizes = [], []
    for x in batches:
        logits, mu, logvar = model(x)
        optimizer.zero_grad()
        loss_fn(logits, x, mu, logvar, kl_weight)[0].backward()
        optimizer.step()
        with torch.no_grad():
            rows.append([float(v) for v in loss_fn(*_reordered(model(x), x), kl_weight)])
        sizes.append(len(x))
    rows, sizes = torch.tensor(rows), torch.tensor(sizes, dtype=torch.float32)
    return dict(zip(("loss", "reconstruction", "kl"), ((rows * sizes[:, None]).sum(0) / sizes.sum()).tolist(),
                    strict=True))


def _reordered(outputs, x):
    logits, mu, logvar = outputs
    return logits, x, mu, logvar


def _epoch_by_hand(model, batches, optimizer, kl_weight, loss_fn=vae_loss_reference):
    model.train()
    sums = {"loss": 0.0, "reconstruction": 0.0, "kl": 0.0}
    designs = 0
    for x in batches:
        values = loss_fn(*_reordered(model(x), x), kl_weight)
        for parameter in model.parameters():
            parameter.grad = None
        values[0].backward()
        optimizer.step()
        for key, value in zip(sums, values, strict=True):
            sums[key] += value.item() * x.shape[0]
        designs += x.shape[0]
    return {key: total / designs for key, total in sums.items()}


TRAIN_EPOCH = Exercise("7.3", lesson07.check_train_epoch, wrong=(
    Answer("no zero_grad", lambda *a: _epoch(*a, zero_grad=False), "without optimizer.zero_grad()"),
    Answer("β = 1 instead of the warm-up weight", lambda *a: _epoch(*a, weight=1.0), "received β = 1"),
    Answer("mean of batch means", lambda *a: _epoch(*a, weighted=False), "plain mean of the batch means"),
    Answer("no optimizer.step()", lambda *a: _epoch(*a, step=False), "did not change"),
    Answer("step before backward", lambda *a: _epoch(*a, backward_after_step=True), "comes before loss.backward()"),
    Answer("zero_grad between backward and step", lambda *a: _epoch(*a, zero_grad=False, zero_grad_before_step=True),
           "between loss.backward() and optimizer.step()"),
    Answer("epoch totals kept as tensors attached to the graph", lambda *a: _epoch(*a, keep_graph=True),
           "attached to the autograd graph"),
    Answer("forgets model.train()", lambda *a: _epoch(*a, train_mode=False), "model.train()"),
    Answer("ignores loss_fn", lambda m, b, o, w, loss_fn=None: _epoch(m, b, o, w, vae_loss_reference),
           "loss_fn was called 0 times"),
    Answer("a second pass for logging", _epoch_twice_through_the_model, "called 6 times"),
    Answer("returns a tuple", lambda *a: tuple(_epoch(*a).values()), "return a dict"),
), correct=(
    Answer("the course's train_epoch", reference_train_epoch),
    Answer("set grads to None and sum floats", _epoch_by_hand),
))



def _errors(design, original, problem, *, threshold_design=True, threshold_original=True, ce="ratio",
            vfe_reference="original", absolute=True):
    solid = threshold(design) if threshold_design else np.asarray(design)
    reference = threshold(original) if threshold_original else np.asarray(original)
    c, c_ref = compliance(solid, problem), compliance(reference, problem)
    compliance_error = {"ratio": c / c_ref - 1, "inverted": c_ref / c - 1, "difference": c - c_ref}[ce]
    volume, reference_volume = solid.mean(), reference.mean()
    target = {"original": reference_volume, "target": problem.volfrac}[vfe_reference]
    difference = volume - target
    return float(compliance_error), float((abs(difference) if absolute else difference) / target)


def _errors_via_metrics(design, original, problem):
    solid, reference = threshold(design), threshold(original)
    return (compliance_error(compliance(solid, problem), compliance(reference, problem)),
            volume_fraction_error(solid, reference.mean()))


PHYSICS_ERRORS = Exercise("7.4", lesson07.check_physics_errors, wrong=(
    Answer("grey design", lambda *a: _errors(*a, threshold_design=False), "without thresholding the design"),
    Answer("grey original", lambda *a: _errors(*a, threshold_original=False), "without thresholding the original"),
    Answer("ratio upside down", lambda *a: _errors(*a, ce="inverted"), "upside down"),
    Answer("a difference", lambda *a: _errors(*a, ce="difference"), "a difference"),
    Answer("VFE against the target", lambda *a: _errors(*a, vfe_reference="target"), "volume target"),
    Answer("signed VFE", lambda *a: _errors(*a, absolute=False), "without the absolute value"),
    Answer("nothing thresholded", lambda *a: _errors(*a, threshold_design=False, threshold_original=False), ""),
    Answer("CE in per cent", lambda *a: (lambda ce, vfe: (100 * ce, vfe))(*_errors(*a)), "per cent"),
), correct=(
    Answer("utils.metrics' definitions", _errors_via_metrics),
    Answer("explicit ratios with numpy booleans", lambda d, o, p: (
        compliance((d > 0.5).astype(float), p) / compliance((o > 0.5).astype(float), p) - 1,
        abs((d > 0.5).sum() - (o > 0.5).sum()) / (o > 0.5).sum())),
))

EXERCISES = (VAE_LOSS, DECODER, TRAIN_EPOCH, PHYSICS_ERRORS)

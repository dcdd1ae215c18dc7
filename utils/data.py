"""The course's topology dataset: verified loading, splits, and torch data loaders.

The dataset ships in ``data/`` with a manifest holding its SHA-256. A missing, truncated or tampered file
is a :class:`DataIntegrityError` that names the regeneration command; nothing is downloaded or rewritten.
"""
from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from utils.device import memory_format, preferred_layout
from utils.integrity import DataIntegrityError, file_sha256
from utils.paths import DATA_DIR
from utils.settings import DATASET_FILE, MANIFEST_FILE, BatchOrder, MemoryLayout
from utils.topopt import LoadCase

GENERATOR_VERSION = "1.0"
SPLIT_NAMES = ("train", "validation", "test")
REGENERATE_HINT = ("Students: unpack data/ again from the course zip you were given. Instructors, in the course "
                   "repository: restore it with `git checkout -- data/` or regenerate it with `make data` (minutes).")


@dataclass(frozen=True)
class TopologyData:
    """The dataset's arrays; ``density: (N, 32, 64)`` in [0, 1], one row per sample elsewhere."""

    density: np.ndarray
    volfrac: np.ndarray
    load_y: np.ndarray
    angle_deg: np.ndarray
    compliance: np.ndarray
    compliance_thresholded: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    split: np.ndarray
    problems: np.ndarray

    def load_case(self, index: int) -> LoadCase:
        """The full problem of sample ``index``, rebuilt from its stored description."""
        return LoadCase.from_dict(json.loads(str(self.problems[index])))

    def subset(self, split: str) -> TopologyData:
        """The samples of one split: ``"train"``, ``"validation"`` or ``"test"``."""
        if split not in SPLIT_NAMES:
            raise ValueError(f"unknown split {split!r}; choose one of {SPLIT_NAMES}")
        mask = self.split == SPLIT_NAMES.index(split)
        return TopologyData(**{name: getattr(self, name)[mask] for name in self.__dataclass_fields__})

    def take(self, indices: np.ndarray) -> TopologyData:
        """The samples at ``indices``, in that order (repeats allowed)."""
        return TopologyData(**{name: getattr(self, name)[indices] for name in self.__dataclass_fields__})

    def __len__(self) -> int:
        return int(self.density.shape[0])


def read_manifest(directory: Path = DATA_DIR, manifest_file: str = MANIFEST_FILE) -> dict:
    """The dataset's manifest; a clear error if it is missing or unreadable."""
    path = Path(directory) / manifest_file
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataIntegrityError(f"The dataset manifest {path} is missing. {REGENERATE_HINT}") from None
    except json.JSONDecodeError as error:
        raise DataIntegrityError(
            f"The dataset manifest {path} is not valid JSON ({error}). {REGENERATE_HINT}") from None


def load_topology_dataset(directory: Path = DATA_DIR, manifest_file: str = MANIFEST_FILE) -> TopologyData:
    """Load and verify the shipped dataset (checksum against the manifest, then every array);
    ``manifest_file=OOD_MANIFEST_FILE`` loads lesson 8's out-of-distribution problems instead."""
    directory = Path(directory)
    manifest = read_manifest(directory, manifest_file)
    path = directory / manifest.get("file", DATASET_FILE)
    if not path.exists():
        raise DataIntegrityError(f"The dataset {path} is missing. {REGENERATE_HINT}")
    actual = file_sha256(path)
    if actual != manifest.get("sha256"):
        raise DataIntegrityError(
            f"The dataset {path} does not match its manifest (SHA-256 {actual[:12]}…, expected "
            f"{str(manifest.get('sha256'))[:12]}…): it is truncated, corrupted or was changed. {REGENERATE_HINT}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in TopologyData.__dataclass_fields__}
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError, OSError) as error:
        raise DataIntegrityError(f"The dataset {path} cannot be read ({error}). {REGENERATE_HINT}") from None
    return TopologyData(**arrays)


BATCH_ORDERS: tuple[BatchOrder, ...] = ("dataloader", "permutation")


class DesignBatches:
    """Mini-batches of designs ``(B, 1, 32, 64)`` in [0, 1], the whole split held as one tensor on ``device``; with
    ``conditions: (N, C)`` (lesson 8's problems), pairs ``(designs, conditions)`` drawn in the same order. The one
    batcher of every model of the course.

    No per-item Python work and no host-to-device copy per batch: on a GPU the dataset (1,200 designs,
    10 MB) stays in its memory, and a batch is one indexing operation. Shuffled each epoch from its own
    generator, in one of two orders (:data:`BatchOrder`): ``"dataloader"``, the very order
    ``torch.utils.data.DataLoader(shuffle=True, generator=…)`` gives for the same seed (a test checks it; the shipped
    VAE was trained in it), or ``"permutation"``, one ``torch.randperm`` per epoch and nothing else drawn (the
    shipped CVAE's), so that both shipped models retrain bit for bit. The images are held in ``layout`` (default:
    :func:`utils.device.preferred_layout` of ``device``), which the training loop gives the model too.
    ``mirror=True`` flips
    each design upside down with probability ½ (a mirrored design is optimal for the mirrored load, so it
    stays a valid structure), drawn from a second generator; it is refused beside conditions, which would then
    describe the unmirrored problem.
    """

    def __init__(self, density: np.ndarray, batch_size: int, shuffle: bool, mirror: bool = False,
                 seed: int = 0, device: torch.device | str = "cpu", conditions: torch.Tensor | None = None,
                 order: BatchOrder = "dataloader", layout: MemoryLayout | None = None) -> None:
        if mirror and conditions is not None:
            raise ValueError("mirror=True would flip the designs but not their conditions; mirror without conditions")
        if order not in BATCH_ORDERS:
            raise ValueError(f"unknown batch order {order!r}: one of {', '.join(map(repr, BATCH_ORDERS))}")
        self.batch_order = order
        self.layout: MemoryLayout = preferred_layout(device) if layout is None else layout
        self.images = torch.as_tensor(np.asarray(density, dtype=np.float32)).unsqueeze(1).to(device).contiguous(
            memory_format=memory_format(self.layout))
        if conditions is not None and len(conditions) != len(self.images):
            raise ValueError(f"{len(conditions)} conditions for {len(self.images)} designs")
        self.conditions = None if conditions is None else conditions.to(device)
        self.batch_size, self.shuffle, self.mirror = batch_size, shuffle, mirror
        self.order_generator = torch.Generator().manual_seed(seed)
        self.mirror_generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        """The number of batches per epoch (the last one may be smaller)."""
        return -(-self.images.shape[0] // self.batch_size)

    def _epoch_order(self) -> torch.Tensor | None:
        if not self.shuffle:
            return None
        if self.batch_order == "dataloader":  # a DataLoader draws a number for its workers' seeds, then the permutation
            torch.empty((), dtype=torch.int64).random_(generator=self.order_generator)
        return torch.randperm(self.images.shape[0], generator=self.order_generator).to(self.images.device)

    def __iter__(self) -> Iterator[torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        order = self._epoch_order()
        for start in range(0, self.images.shape[0], self.batch_size):
            index = slice(start, start + self.batch_size) if order is None else order[start: start + self.batch_size]
            batch = self.images[index]
            if self.mirror:
                flip = (torch.rand(len(batch), generator=self.mirror_generator) < 0.5).to(batch.device)
                batch = torch.where(flip[:, None, None, None], torch.flip(batch, dims=(2,)), batch)
            yield batch if self.conditions is None else (batch, self.conditions[index])
        if order is not None and self.batch_order == "dataloader":  # its sampler ends an epoch with one more draw
            torch.randperm(self.images.shape[0], generator=self.order_generator)


def make_loader(data: TopologyData, split: str, batch_size: int = 64, shuffle: bool | None = None,
                mirror: bool = False, seed: int = 0, device: torch.device | str = "cpu",
                order: BatchOrder = "dataloader", layout: MemoryLayout | None = None) -> DesignBatches:
    """Batches of one split on ``device`` in ``layout`` (:class:`DesignBatches`); shuffles (reproducibly, from
    ``seed``, in ``order``) the training split by default."""
    shuffle = split == "train" if shuffle is None else shuffle
    return DesignBatches(data.subset(split).density, batch_size, shuffle, mirror=mirror, seed=seed, device=device,
                         order=order, layout=layout)


def layout_of(batches: Iterable[Any]) -> MemoryLayout:
    """The memory layout a training on ``batches`` gives its model: a :class:`DesignBatches`' own, else the default."""
    return batches.layout if isinstance(batches, DesignBatches) else "contiguous"

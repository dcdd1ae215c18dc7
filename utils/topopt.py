"""2-D SIMP compliance minimisation, equivalent to the 88-line code of Andreassen et al. (2011).

Conventions (those of top88): the design is an image ``density: (nely, nelx)``, row 0 at the top.
Node ``(ix, iy)`` (``0 <= ix <= nelx``, ``0 <= iy <= nely``, ``iy`` counted from the top) has number
``n = ix * (nely + 1) + iy`` and degrees of freedom ``2n`` (horizontal, positive to the right) and ``2n + 1``
(vertical, positive *upwards*). Elements are numbered column by column, ``e = ix * nely + iy``, so an image
flattened in Fortran order is a vector of element values.

The stiffness matrix of the free DOFs is assembled straight into LAPACK's symmetric band storage (the node
numbering keeps its bandwidth at most ``2 nely + 5``) and factorised by a banded Cholesky; everything
that does not change between iterations (element DOF maps, band positions, the filter) is built once.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.linalg
import scipy.sparse

from utils.settings import DATASET_SOLVER, SolverSettings
from utils.threads import single_threaded_blas

E0 = 1.0
E_MIN = 1e-9
POISSON = 0.3



def element_stiffness(nu: float = POISSON) -> np.ndarray:
    """The 8×8 stiffness matrix of a unit bilinear (Q4) plane-stress element with Young's modulus 1."""
    k = np.array([1 / 2 - nu / 6, 1 / 8 + nu / 8, -1 / 4 - nu / 12, -1 / 8 + 3 * nu / 8,
                  -1 / 4 + nu / 12, -1 / 8 - nu / 8, nu / 6, 1 / 8 - 3 * nu / 8])
    order = [[0, 1, 2, 3, 4, 5, 6, 7], [1, 0, 7, 6, 5, 4, 3, 2], [2, 7, 0, 5, 6, 3, 4, 1],
             [3, 6, 5, 0, 7, 2, 1, 4], [4, 5, 6, 7, 0, 1, 2, 3], [5, 4, 3, 2, 1, 0, 7, 6],
             [6, 3, 4, 1, 2, 7, 0, 5], [7, 2, 1, 4, 3, 6, 5, 0]]
    return 1 / (1 - nu**2) * k[np.array(order)]


def node_number(ix: int, iy: int, nely: int) -> int:
    """Number of node ``(ix, iy)``; ``iy`` counts from the top."""
    return ix * (nely + 1) + iy


@dataclass(frozen=True)
class PointLoad:
    """A point force at a (possibly fractional) position on the node grid.

    ``x`` and ``y`` are in element widths (``y`` from the top); a fractional position is shared linearly
    between the neighbouring nodes. ``angle_deg`` is measured anticlockwise from +x (−90: downwards).
    """

    x: float
    y: float
    angle_deg: float
    magnitude: float = 1.0


@dataclass(frozen=True)
class LoadCase:
    """A complete compliance problem: domain, supports, loads and the volume fraction target."""

    nelx: int
    nely: int
    fixed_dofs: tuple[int, ...]
    loads: tuple[PointLoad, ...]
    volfrac: float

    @property
    def n_dofs(self) -> int:
        return 2 * (self.nelx + 1) * (self.nely + 1)

    def force_vector(self) -> np.ndarray:
        """The global load vector ``F: (n_dofs,)``."""
        force = np.zeros(self.n_dofs)
        for load in self.loads:
            fx = load.magnitude * np.cos(np.radians(load.angle_deg))
            fy = load.magnitude * np.sin(np.radians(load.angle_deg))
            for ix, iy, weight in _bilinear_nodes(load.x, load.y, self.nelx, self.nely):
                n = node_number(ix, iy, self.nely)
                force[2 * n] += weight * fx
                force[2 * n + 1] += weight * fy
        return force

    def to_dict(self) -> dict:
        """A JSON-friendly description from which :meth:`from_dict` rebuilds the same problem."""
        return {"nelx": self.nelx, "nely": self.nely, "fixed_dofs": list(self.fixed_dofs),
                "loads": [vars(load) for load in self.loads], "volfrac": self.volfrac}

    @classmethod
    def from_dict(cls, data: dict) -> LoadCase:
        return cls(int(data["nelx"]), int(data["nely"]), tuple(int(d) for d in data["fixed_dofs"]),
                   tuple(PointLoad(**load) for load in data["loads"]), float(data["volfrac"]))


def _bilinear_nodes(x: float, y: float, nelx: int, nely: int) -> list[tuple[int, int, float]]:
    """Nodes around the point ``(x, y)`` and their bilinear weights (weights > 0 only)."""
    if not (0 <= x <= nelx and 0 <= y <= nely):
        raise ValueError(f"load position ({x}, {y}) lies outside the {nelx}×{nely} domain")
    x0, y0 = min(int(np.floor(x)), nelx - 1), min(int(np.floor(y)), nely - 1)
    tx, ty = x - x0, y - y0
    nodes = [(x0, y0, (1 - tx) * (1 - ty)), (x0 + 1, y0, tx * (1 - ty)),
             (x0, y0 + 1, (1 - tx) * ty), (x0 + 1, y0 + 1, tx * ty)]
    return [(ix, iy, w) for ix, iy, w in nodes if w > 1e-12]


def mbb_beam(nelx: int = 60, nely: int = 20, volfrac: float = 0.5) -> LoadCase:
    """The half MBB beam of top88: symmetry on the left edge, a roller at the bottom right, load at top left."""
    left_x_dofs = tuple(2 * node_number(0, iy, nely) for iy in range(nely + 1))
    bottom_right_y = 2 * node_number(nelx, nely, nely) + 1
    return LoadCase(nelx, nely, left_x_dofs + (bottom_right_y,), (PointLoad(0.0, 0.0, -90.0),), volfrac)


def cantilever(nelx: int, nely: int, volfrac: float, load_y: float, angle_deg: float) -> LoadCase:
    """A cantilever clamped along its left edge, loaded on its right edge at height ``load_y`` (from the top)."""
    clamped = tuple(d for iy in range(nely + 1)
                    for d in (2 * node_number(0, iy, nely), 2 * node_number(0, iy, nely) + 1))
    return LoadCase(nelx, nely, clamped, (PointLoad(float(nelx), float(load_y), float(angle_deg)),), volfrac)


@dataclass
class FiniteElementModel:
    """Everything about a mesh and its supports that stays fixed during an optimisation."""

    nelx: int
    nely: int
    fixed_dofs: tuple[int, ...]
    ke: np.ndarray = field(default_factory=element_stiffness)

    def __post_init__(self) -> None:
        nelx, nely = self.nelx, self.nely
        n_dofs = 2 * (nelx + 1) * (nely + 1)
        ix, iy = np.meshgrid(np.arange(nelx), np.arange(nely), indexing="ij")
        lower_left_x_dof = (2 * (ix * (nely + 1) + iy) + 2).ravel()
        offsets = np.array([0, 1, 2 * nely + 2, 2 * nely + 3, 2 * nely, 2 * nely + 1, -2, -1])
        self.edofs = lower_left_x_dof[:, None] + offsets[None, :]  # (n_elements, 8)
        free = np.ones(n_dofs, dtype=bool)
        free[list(self.fixed_dofs)] = False
        self.free_dofs = np.flatnonzero(free)
        reduced_index = np.full(n_dofs, -1)
        reduced_index[self.free_dofs] = np.arange(len(self.free_dofs))
        rows = reduced_index[self.edofs][:, :, None].repeat(8, axis=2)  # (n_el, 8, 8)
        cols = reduced_index[self.edofs][:, None, :].repeat(8, axis=1)
        keep = (rows >= 0) & (cols >= 0) & (rows >= cols)  # lower triangle of the free block
        element, local_row, local_col = np.nonzero(keep)
        self._entry_element = element
        self._entry_ke = self.ke[local_row, local_col]
        n_free = len(self.free_dofs)
        self.bandwidth = int((rows - cols)[keep].max())
        self._band_shape = (self.bandwidth + 1, n_free)
        self._band_position = (rows - cols)[keep] * n_free + cols[keep]

    @property
    def n_elements(self) -> int:
        return self.nelx * self.nely

    def solve(self, young: np.ndarray, force: np.ndarray) -> np.ndarray:
        """Displacements ``U: (n_dofs,)`` for element moduli ``young: (n_elements,)`` (Fortran order).

        The banded solve runs on one BLAS thread: faster than two for a system this small, idle or shared.
        """
        values = young[self._entry_element] * self._entry_ke
        band = np.bincount(self._band_position, weights=values, minlength=np.prod(self._band_shape))
        displacement = np.zeros_like(force)
        with single_threaded_blas():
            displacement[self.free_dofs] = scipy.linalg.solveh_banded(
                band.reshape(self._band_shape), force[self.free_dofs], lower=True, check_finite=False)
        return displacement

    def element_energies(self, displacement: np.ndarray) -> np.ndarray:
        """``u_eᵀ KE u_e`` per element: (n_elements,)."""
        ue = displacement[self.edofs]
        return np.einsum("ei,ij,ej->e", ue, self.ke, ue)

    def sparse_stiffness(self, young: np.ndarray) -> scipy.sparse.csc_matrix:
        """The full free-DOF stiffness matrix as a sparse matrix (for the solver baseline and tests)."""
        i = np.repeat(self.edofs, 8, axis=1).ravel()
        j = np.tile(self.edofs, (1, 8)).ravel()
        values = (young[:, None] * self.ke.ravel()[None, :]).ravel()
        n_dofs = 2 * (self.nelx + 1) * (self.nely + 1)
        full = scipy.sparse.csc_matrix((values, (i, j)), shape=(n_dofs, n_dofs))
        return full[self.free_dofs][:, self.free_dofs]



class SharedModels:
    """One :class:`FiniteElementModel` per mesh and supports, built on first use and shared by every load case on
    it (problems that differ only in their load and volume share the factorisation's structure)."""

    def __init__(self) -> None:
        self._models: dict[tuple[int, int, tuple[int, ...]], FiniteElementModel] = {}

    def __call__(self, case: LoadCase) -> FiniteElementModel:
        """The model of ``case``'s mesh and supports."""
        key = (case.nelx, case.nely, case.fixed_dofs)
        if key not in self._models:
            self._models[key] = FiniteElementModel(*key)
        return self._models[key]


@dataclass
class DensityFilter:
    """The linear hat filter of radius ``rmin`` (in elements) used by both filter variants of top88."""

    nelx: int
    nely: int
    rmin: float

    @cached_property
    def matrix(self) -> scipy.sparse.csr_matrix:
        reach = int(np.ceil(self.rmin)) - 1
        ix, iy = np.meshgrid(np.arange(self.nelx), np.arange(self.nely), indexing="ij")
        ix, iy = ix.ravel(), iy.ravel()
        rows, cols, weights = [], [], []
        for dx in range(-reach, reach + 1):
            for dy in range(-reach, reach + 1):
                jx, jy = ix + dx, iy + dy
                inside = (jx >= 0) & (jx < self.nelx) & (jy >= 0) & (jy < self.nely)
                weight = max(0.0, self.rmin - np.hypot(dx, dy))
                rows.append((ix * self.nely + iy)[inside])
                cols.append((jx * self.nely + jy)[inside])
                weights.append(np.full(inside.sum(), weight))
        n = self.nelx * self.nely
        return scipy.sparse.csr_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                                       shape=(n, n))

    @cached_property
    def row_sums(self) -> np.ndarray:
        return np.asarray(self.matrix.sum(axis=1)).ravel()


@dataclass
class OptimizationResult:
    """The outcome of :func:`optimize`; ``density`` is the physical density image ``(nely, nelx)``."""

    density: np.ndarray
    compliance: float
    iterations: int
    converged: bool
    compliance_history: list[float]
    snapshots: list[np.ndarray]


def young_modulus(density: np.ndarray, penal: float, e_min: float = E_MIN) -> np.ndarray:
    """SIMP interpolation E(x) = Emin + x^p (E0 − Emin)."""
    return e_min + density**penal * (E0 - e_min)


def compliance(density: np.ndarray, load_case: LoadCase, penal: float = 3.0,
               model: FiniteElementModel | None = None, e_min: float = E_MIN) -> float:
    """Compliance ``c = Fᵀ U`` of any density image ``(nely, nelx)`` in [0, 1] (grey or thresholded).

    ``e_min`` is the void's stiffness: the course's 1e-9 by default; TopoDiff's evaluation uses 1e-3."""
    density = np.asarray(density, dtype=float)
    if density.shape != (load_case.nely, load_case.nelx):
        raise ValueError(f"density has shape {density.shape}, the load case needs {(load_case.nely, load_case.nelx)}")
    model = model or FiniteElementModel(load_case.nelx, load_case.nely, load_case.fixed_dofs)
    force = load_case.force_vector()
    displacement = model.solve(young_modulus(np.clip(density, 0, 1).ravel(order="F"), penal, e_min), force)
    return float(force @ displacement)


def compliance_sensitivity(density: np.ndarray, energies: np.ndarray, penal: float,
                           e_min: float = E_MIN) -> np.ndarray:
    """dc/dx_e = −p x_e^(p−1) (E0 − E_min) u_eᵀ k0 u_e, the adjoint sensitivity of the compliance (lesson 6,
    exercise 6.1; lesson 9 wraps it as the backward of a differentiable compliance). ``energies`` are the
    elements' u_eᵀ k0 u_e (:meth:`FiniteElementModel.element_energies`)."""
    return -penal * (E0 - e_min) * density ** (penal - 1) * energies


def optimality_criteria_update(x: np.ndarray, dc: np.ndarray, dv: np.ndarray, volfrac: float,
                               to_physical: Callable[[np.ndarray], np.ndarray],
                               move: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """top88's OC step: bisect the Lagrange multiplier until the physical volume meets ``volfrac``.

    Where the move limit forbids reaching ``volfrac`` even as the multiplier tends to 0 (a start far below the
    target, such as a generated design warm-starting SIMP for a larger volume fraction), the step is that limit:
    every element with material and a compliance-lowering sensitivity grows by ``move``; top88's bisection would
    halve the multiplier to zero and divide by it.

    Returns the new design variables and their physical densities (both Fortran-ordered vectors).
    """
    lower, upper = 0.0, 1e9
    scale = x * np.sqrt(np.maximum(-dc / dv, 0.0))
    richest = np.where(scale > 0, np.minimum(1.0, x + move), np.maximum(0.0, x - move))
    richest_physical = to_physical(richest)
    if richest_physical.sum() <= volfrac * x.size:
        return richest, richest_physical
    while (upper - lower) / (lower + upper) > 1e-3:
        middle = 0.5 * (lower + upper)
        x_new = np.clip(scale / np.sqrt(middle), np.maximum(0.0, x - move), np.minimum(1.0, x + move))
        x_physical = to_physical(x_new)
        if x_physical.sum() > volfrac * x.size:
            lower = middle
        else:
            upper = middle
    return x_new, x_physical


def _simp_steps(load_case: LoadCase, settings: SolverSettings, initial_density: np.ndarray | None,
                model: FiniteElementModel) -> Iterator[tuple[np.ndarray, float, float]]:
    """SIMP's iterations, one finite-element solve each, without end: after each, the physical density (a Fortran
    vector), the compliance of the design that was solved (the one before the update) and the largest change of a
    design variable."""
    nelx, nely = load_case.nelx, load_case.nely
    filt = DensityFilter(nelx, nely, settings.rmin)
    H, Hs = filt.matrix, filt.row_sums
    force = load_case.force_vector()
    if initial_density is None:
        x = np.full(model.n_elements, load_case.volfrac)
    else:
        x = np.clip(np.asarray(initial_density, dtype=float), 0.0, 1.0).ravel(order="F")

    def to_physical(design: np.ndarray) -> np.ndarray:
        return design if settings.filter == "sensitivity" else (H @ design) / Hs

    x_physical = to_physical(x)
    while True:
        displacement = model.solve(young_modulus(x_physical, settings.penal), force)
        energies = model.element_energies(displacement)
        solved = float(np.sum(young_modulus(x_physical, settings.penal) * energies))
        dc = compliance_sensitivity(x_physical, energies, settings.penal)
        dv = np.ones(model.n_elements)
        if settings.filter == "sensitivity":
            dc = (H @ (x * dc)) / Hs / np.maximum(1e-3, x)
        else:
            dc, dv = H @ (dc / Hs), H @ (dv / Hs)
        x_new, x_physical = optimality_criteria_update(x, dc, dv, load_case.volfrac, to_physical)
        change = float(np.max(np.abs(x_new - x)))
        x = x_new
        yield x_physical, solved, change


def optimize(load_case: LoadCase, solver: SolverSettings = DATASET_SOLVER, *,
             initial_density: np.ndarray | None = None, snapshot_every: int = 0,
             model: FiniteElementModel | None = None, **overrides: float | int | str) -> OptimizationResult:
    """Minimise compliance under a volume constraint with SIMP and the OC update (top88): the course's one
    SIMP entry point.

    ``solver`` holds the settings (by default the dataset's, :data:`utils.settings.DATASET_SOLVER`);
    ``overrides`` replace some of them by name (``penal``, ``rmin``, ``filter``, ``max_iterations``,
    ``tolerance``). Stops when the largest change of a design variable falls below ``tolerance`` or after
    ``max_iterations``. ``initial_density`` (``(nely, nelx)``) warm-starts the design variables; by
    default they start uniform at the volume fraction. ``snapshot_every > 0`` keeps every k-th design.
    ``model`` replaces the finite-element model (e.g. one with another linear solver, for benchmarks).
    The result's compliance is that of the final design (one more solve); :func:`simp_iterations` spends exactly
    the iterations' solves.
    """
    settings = solver.with_overrides(**overrides)
    nelx, nely = load_case.nelx, load_case.nely
    model = model or FiniteElementModel(nelx, nely, load_case.fixed_dofs)
    history: list[float] = []
    snapshots: list[np.ndarray] = []
    change, iteration = 1.0, 0
    x_physical = None
    steps = _simp_steps(load_case, settings, initial_density, model)
    while change > settings.tolerance and iteration < settings.max_iterations:
        iteration += 1
        x_physical, solved, change = next(steps)
        history.append(solved)
        if snapshot_every and (iteration % snapshot_every == 0 or iteration == 1):
            snapshots.append(x_physical.reshape(nely, nelx, order="F").copy())
    if x_physical is None:  # no iteration: the start itself
        density = (np.full((nely, nelx), load_case.volfrac) if initial_density is None
                   else np.clip(np.asarray(initial_density, dtype=float), 0.0, 1.0))
    else:
        density = x_physical.reshape(nely, nelx, order="F")
    return OptimizationResult(density=density, compliance=compliance(density, load_case, settings.penal, model),
                              iterations=iteration, converged=change <= settings.tolerance,
                              compliance_history=history, snapshots=snapshots)


def simp_iterations(load_case: LoadCase, iterations: int, start: np.ndarray | None = None,
                    keep: Iterable[int] | None = None, solver: SolverSettings = DATASET_SOLVER,
                    model: FiniteElementModel | None = None) -> dict[int, np.ndarray]:
    """Exactly ``iterations`` SIMP iterations from ``start`` (``(nely, nelx)``; uniform at the volume fraction when
    None), never fewer and no more solves: one finite-element solve per iteration, no tolerance, no final solve, so
    "n iterations" costs n solves whatever the start. Returns the physical designs ``(nely, nelx)`` after b
    iterations for each b in ``keep`` (default: ``iterations`` only; b = 0 is the start, clipped to [0, 1])."""
    keep = sorted({iterations} if keep is None else {int(b) for b in keep})
    if iterations < 0 or (keep and (keep[0] < 0 or keep[-1] > iterations)):
        raise ValueError(f"kept iterations {keep} must lie in 0 … {iterations} (the iterations asked for)")
    model = model or FiniteElementModel(load_case.nelx, load_case.nely, load_case.fixed_dofs)
    first = (np.full((load_case.nely, load_case.nelx), load_case.volfrac) if start is None
             else np.clip(np.asarray(start, dtype=float), 0.0, 1.0))
    designs = {0: first} if 0 in keep else {}
    steps = _simp_steps(load_case, solver, start, model)
    for iteration in range(1, iterations + 1):
        x_physical, _, _ = next(steps)
        if iteration in keep:
            designs[iteration] = x_physical.reshape(load_case.nely, load_case.nelx, order="F").copy()
    return designs

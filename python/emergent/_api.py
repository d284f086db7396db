"""The public Python API of emergent (see python/README.md and docs/conventions.md).

Every function converts its array arguments as the CLI converts .npy files: float64 C-order
arrays are passed to C++ without a copy; float32, float16, integer and bool arrays (and nested
lists) are converted to float64; complex, object, string and structured arrays are rejected;
NaN and ±Inf raise ValueError naming the argument and the element. Bad arguments raise
ValueError (or a subclass: SpecError, MemoryCapError) with the C++ library's message.
Long computations release the GIL and run on a worker thread; Ctrl-C raises KeyboardInterrupt
at once (the abandoned computation finishes in the background and its result is dropped).
"""
from __future__ import annotations

import collections
import math
from typing import Iterable, NamedTuple, Optional, Sequence, Union

import numpy as np

from . import _core
from ._core import Architecture, Representation

ArrayLike = Union[np.ndarray, Sequence]
Times = Union[float, Sequence[float], np.ndarray]
MemoryCap = Union[int, str, None]

_ACCEPTED = "float64, float32, float16, (unsigned) integers or bool"


def as_float64(a: ArrayLike, name: str) -> np.ndarray:
    """`a` as a float64 C-order array (no copy if it already is one), converting like the CLI."""
    arr = np.asarray(a)
    kind = arr.dtype.kind
    if arr.dtype.names is not None or kind == "V":
        raise ValueError(f"{name}: structured dtype {arr.dtype} is not supported; expected {_ACCEPTED}")
    if kind not in "fiub":
        raise ValueError(f"{name}: dtype {arr.dtype} is not supported; expected {_ACCEPTED}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _arch(arch: Union[str, Architecture]) -> Architecture:
    return arch if isinstance(arch, Architecture) else Architecture(arch)


def _memory_cap(memory_cap: MemoryCap) -> int:
    if memory_cap is None:
        return 0
    if isinstance(memory_cap, str):
        return _core.parse_bytes(memory_cap, "memory_cap")
    if isinstance(memory_cap, (int, np.integer)) and not isinstance(memory_cap, bool) and memory_cap >= 0:
        return int(memory_cap)
    raise ValueError(f"memory_cap: {memory_cap!r} is not a size; expected bytes (int ≥ 0) or a string like '4G' or '25%'")


def _times(t: Times) -> tuple[list[float], bool]:
    """(list of times, whether a scalar was given)."""
    if np.ndim(t) == 0:
        return [float(t)], True
    return [float(v) for v in np.asarray(t, dtype=np.float64).ravel()], False


def _shape(shape: Union[int, Sequence[int]]) -> list[int]:
    return [int(shape)] if np.ndim(shape) == 0 else [int(s) for s in shape]


def _targets(y: ArrayLike, name: str) -> tuple[np.ndarray, bool]:
    """Targets as (N, k); True if they were given as (N,)."""
    arr = as_float64(y, name)
    if arr.ndim == 1:
        return arr.reshape(-1, 1), True
    return arr, False


# ---- kernels --------------------------------------------------------------------------------


def kernel(arch: Union[str, Architecture], x1: ArrayLike, x2: Optional[ArrayLike] = None,
           get: Union[str, Sequence[str]] = ("nngp", "ntk"), *, memory_cap: MemoryCap = None,
           threads: int = 0, quadrature_order: int = 0, return_summary: bool = False):
    """Infinite-width NNGP kernel K and NTK Θ of `arch` on x1 × x2 (docs/conventions.md §2).

    Layer recursions in Neural Tangents' 'ntk' parameterization (Lee et al. 2018 Eq. 4, Jacot et
    al. 2018 Thm. 1, Arora et al. 2019 for convolutions):
        K⁽ˡ⁺¹⁾ = W²·E[φ(u)φ(v)] + B²,   Θ⁽ˡ⁺¹⁾ = K⁽ˡ⁺¹⁾ + W²·E[φ'(u)φ'(v)]·Θ⁽ˡ⁾,
    (u, v) ~ N(0, K⁽ˡ⁾), convolutions summing over the filter window divided by its size.

    x1, x2: (N, d) vectors or (N, H, W, C) NHWC images; x2=None means x1 (only one triangle is
    computed). get: "nngp", "ntk" or a tuple of them (as NT's kernel_fn): a str returns one
    array, a tuple a namedtuple ``Kernels`` with those fields. Shapes: (N1, N2) for MLPs and
    networks with a flatten/gap readout; (N1, N2, H, W, H, W) for CNNs without readout (pixel
    indices (h1, w1) of x1 and (h2, w2) of x2). memory_cap: bytes or '4G'/'25%' (default 25% of
    RAM); threads: OpenMP threads (0: default; results do not depend on it).
    """
    names = (get,) if isinstance(get, str) else tuple(get)
    for n in names:
        if n not in ("nngp", "ntk"):
            raise ValueError(f"get: {n!r} is not a kernel; expected 'nngp', 'ntk' or a tuple of them")
    a = _arch(arch)
    b1 = as_float64(x1, "x1")
    b2 = None if x2 is None else as_float64(x2, "x2")
    nngp, ntk, summary = _core.kernels(a, b1, b2, _memory_cap(memory_cap), threads, quadrature_order)
    values = {"nngp": nngp, "ntk": ntk}
    if isinstance(get, str):
        out = values[get]
    else:
        out = collections.namedtuple("Kernels", names)(*(values[n] for n in names))
    return (out, summary) if return_summary else out


# ---- gradient flow --------------------------------------------------------------------------


class GradientFlow:
    """Closed-form gradient flow of an infinitely wide ensemble under MSE (docs/conventions.md §3).

    Loss ½·(1/(N·k))·Σ‖f(x_i) − y_i‖², learning rate η, time t in gradient-descent steps; with
    T_t = I − exp(−ηtΘ/(N·k)) (Lee et al. 2019, Eqs. 14–16; NT's gradient_descent_mse_ensemble):
        mean        μ_t(x)    = Θ(x,X)·Θ⁻¹T_t·Y
        covariance  Σ_t(x,x') = K(x,x') + Θ(x,X)Θ⁻¹T_t·K(X,X)·T_tΘ⁻¹Θ(X,x')
                                − [Θ(x,X)Θ⁻¹T_t·K(X,x') + (x ↔ x')ᵀ]
    Θ(X,X) (+ diag_reg) is eigendecomposed once here; eigenvalues ≤ rank_rtol·λ_max are dropped at
    every t (t = ∞ is the pseudo-inverse). ``summary`` tells how trustworthy that is (status Ok,
    RankDeficient, IllConditioned, ZeroKernel or NotPositiveSemidefinite).

    Times: a scalar t gives one array, a sequence a leading time axis; t = math.inf is allowed.
    y_train (N,) gives outputs without the k axis. Use :meth:`from_architecture` to build the
    kernels from an architecture and keep them for :meth:`predict`.
    """

    def __init__(self, ntk_train_train: ArrayLike, y_train: ArrayLike,
                 nngp_train_train: Optional[ArrayLike] = None, *, learning_rate: float = 1.0,
                 diag_reg: float = 0.0, diag_reg_relative: bool = False, rank_rtol: float = 0.0,
                 psd_rtol: float = 1e-8, ill_conditioned: float = 1e10, symmetry_rtol: float = 1e-10,
                 threads: int = 0):
        y, self._vector_y = _targets(y_train, "y_train")
        nngp = None if nngp_train_train is None else as_float64(nngp_train_train, "nngp_train_train")
        self._flow = _core.GradientFlow(as_float64(ntk_train_train, "ntk_train_train"), y, nngp,
                                        learning_rate, diag_reg, diag_reg_relative, rank_rtol, psd_rtol,
                                        ill_conditioned, symmetry_rtol, threads)
        self._arch: Optional[Architecture] = None
        self._x_train: Optional[np.ndarray] = None
        self._kernel_args: dict = {}

    @classmethod
    def from_architecture(cls, arch: Union[str, Architecture], x_train: ArrayLike, y_train: ArrayLike, *,
                          memory_cap: MemoryCap = None, threads: int = 0, **options) -> "GradientFlow":
        """K(X,X) and Θ(X,X) of `arch`, then the flow; :meth:`predict` computes the test kernels."""
        a = _arch(arch)
        x = as_float64(x_train, "x_train")
        k = kernel(a, x, None, ("nngp", "ntk"), memory_cap=memory_cap, threads=threads)
        flow = cls(k.ntk, y_train, k.nngp, threads=threads, **options)
        flow._arch, flow._x_train = a, x
        flow._kernel_args = {"memory_cap": memory_cap, "threads": threads}
        return flow

    @property
    def summary(self) -> "_core.SpectralSummary":
        """SpectralSummary of Θ(X,X): status, rank, eigenvalue range, condition numbers."""
        return self._flow.summary

    @property
    def covariance_factor(self) -> "_core.CovarianceFactorSummary":
        """How K̃ = Vᵀ·K(X,X)·V was factored for :meth:`covariance`: status, size, rank, tolerance,
        remainder, dense (size 0 when no nngp_train_train was given)."""
        return self._flow.covariance_factor

    @property
    def train_size(self) -> int:
        return self._flow.train_size

    @property
    def outputs(self) -> int:
        return self._flow.outputs

    def _shape_out(self, arr: np.ndarray, scalar: bool, has_k: bool = True) -> np.ndarray:
        if has_k and self._vector_y:
            arr = arr[..., 0]
        return arr[0] if scalar else arr

    def mean(self, t: Times, ntk_test_train: ArrayLike) -> np.ndarray:
        """μ_t(x) = Θ(x,X)·Θ⁻¹T_t·Y: (n_test, k), or (n_times, n_test, k) for a sequence of t."""
        times, scalar = _times(t)
        return self._shape_out(self._flow.mean(times, as_float64(ntk_test_train, "ntk_test_train")), scalar)

    def covariance(self, t: Times, ntk_test_train: ArrayLike, nngp_test_train: ArrayLike,
                   nngp_test_test: ArrayLike) -> np.ndarray:
        """Σ_t(x,x') (formula above), (n_test, n_test) per time, shared by the k outputs."""
        times, scalar = _times(t)
        out = self._flow.covariance(times, as_float64(ntk_test_train, "ntk_test_train"),
                                    as_float64(nngp_test_train, "nngp_test_train"),
                                    as_float64(nngp_test_test, "nngp_test_test"))
        return self._shape_out(out, scalar, has_k=False)

    def train_mean(self, t: Times) -> np.ndarray:
        """f_t(X) = Θ(X,X)·Θ_reg⁻¹T_t·Y on the training inputs."""
        times, scalar = _times(t)
        return self._shape_out(self._flow.train_mean(times), scalar)

    def train_loss(self, t: Times):
        """½·(1/(N·k))·‖f_t(X) − Y‖² per time."""
        times, scalar = _times(t)
        out = np.asarray(self._flow.train_loss(times))
        return float(out[0]) if scalar else out

    def evolve(self, t: Times, ntk_test_train: ArrayLike, f0_train: ArrayLike, f0_test: ArrayLike) -> np.ndarray:
        """One linearized member: f_t(x) = f_0(x) + Θ(x,X)Θ⁻¹T_t·(Y − f_0(X))."""
        times, scalar = _times(t)
        f0tr, _ = _targets(f0_train, "f0_train")
        f0te, _ = _targets(f0_test, "f0_test")
        return self._shape_out(self._flow.evolve(times, as_float64(ntk_test_train, "ntk_test_train"), f0tr, f0te),
                               scalar)

    def sample_members(self, t: Times, ntk_test_train: ArrayLike, nngp_test_train: ArrayLike,
                       nngp_test_test: ArrayLike, members: int, seed: int = 0):
        """M linearized infinite-width members, f_0 ~ GP(0, K ⊗ I_k) drawn jointly on train ∪ test.

        Returns ``(values, prior)``: values (members, n_times, n_test, k) (time axis dropped for a
        scalar t), prior the SpectralSummary of the joint K. Bit-identical at any thread count.
        """
        times, scalar = _times(t)
        values, prior = self._flow.sample_members(times, as_float64(ntk_test_train, "ntk_test_train"),
                                                  as_float64(nngp_test_train, "nngp_test_train"),
                                                  as_float64(nngp_test_test, "nngp_test_test"), members, seed)
        if self._vector_y:
            values = values[..., 0]
        return (values[:, 0] if scalar else values), prior

    def predict(self, x_test: ArrayLike, t: Times = math.inf, covariance: bool = True):
        """(mean, covariance) at x_test for a flow made by :meth:`from_architecture`."""
        if self._arch is None:
            raise ValueError("predict: this GradientFlow was built from kernel matrices; use "
                             "GradientFlow.from_architecture or call mean()/covariance() with test kernels")
        z = as_float64(x_test, "x_test")
        cross = kernel(self._arch, z, self._x_train, ("nngp", "ntk"), **self._kernel_args)
        mean = self.mean(t, cross.ntk)
        if not covariance:
            return mean, None
        test = kernel(self._arch, z, None, "nngp", **self._kernel_args)
        return mean, self.covariance(t, cross.ntk, cross.nngp, test)


class NngpPosterior:
    """Exact Bayesian inference with the NNGP kernel (Lee et al. 2018; NT's predict.gp_inference):
    mean K(x,X)K⁻¹Y, covariance K(x,x) − K(x,X)K⁻¹K(X,x), K⁻¹ the pseudo-inverse on kept eigenvalues."""

    def __init__(self, nngp_train_train: ArrayLike, y_train: ArrayLike, *, diag_reg: float = 0.0,
                 diag_reg_relative: bool = False, rank_rtol: float = 0.0, psd_rtol: float = 1e-8,
                 ill_conditioned: float = 1e10, symmetry_rtol: float = 1e-10, threads: int = 0):
        y, self._vector_y = _targets(y_train, "y_train")
        self._p = _core.NngpPosterior(as_float64(nngp_train_train, "nngp_train_train"), y, diag_reg,
                                      diag_reg_relative, rank_rtol, psd_rtol, ill_conditioned, symmetry_rtol,
                                      threads)

    @property
    def summary(self) -> "_core.SpectralSummary":
        return self._p.summary

    def mean(self, nngp_test_train: ArrayLike) -> np.ndarray:
        out = self._p.mean(as_float64(nngp_test_train, "nngp_test_train"))
        return out[:, 0] if self._vector_y else out

    def covariance(self, nngp_test_train: ArrayLike, nngp_test_test: ArrayLike) -> np.ndarray:
        return self._p.covariance(as_float64(nngp_test_train, "nngp_test_train"),
                                  as_float64(nngp_test_test, "nngp_test_test"))


class Prediction(NamedTuple):
    mean: np.ndarray                   #: (n_times, n_test, k)
    covariance: Optional[np.ndarray]   #: (n_times, n_test, n_test)
    summary: "_core.SpectralSummary"   #: of Θ(X,X)


def predict(arch: Union[str, Architecture], x_train: ArrayLike, y_train: ArrayLike, x_test: ArrayLike,
            t: Times = (0.0, math.inf), *, covariance: bool = True, learning_rate: float = 1.0,
            diag_reg: float = 0.0, diag_reg_relative: bool = False, memory_cap: MemoryCap = None,
            threads: int = 0) -> Prediction:
    """What ``emergent predict`` computes: the ensemble mean μ_t and covariance Σ_t at x_test
    (see GradientFlow), from the analytic kernels of `arch`."""
    flow = GradientFlow.from_architecture(arch, x_train, y_train, learning_rate=learning_rate, diag_reg=diag_reg,
                                          diag_reg_relative=diag_reg_relative, memory_cap=memory_cap,
                                          threads=threads)
    mean, cov = flow.predict(x_test, t, covariance)
    return Prediction(mean, cov, flow.summary)


# ---- finite networks ------------------------------------------------------------------------


class EnsembleResult(NamedTuple):
    predictions: np.ndarray  #: (members, checkpoints, n_test, k)
    train_loss: np.ndarray   #: (members, checkpoints)
    seconds: float


def train_ensemble(arch: Union[str, Architecture], x_train: ArrayLike, y_train: ArrayLike, x_test: ArrayLike, *,
                   members: int, steps: int, learning_rate: float = 1.0, seed: int = 0,
                   checkpoints: Optional[Iterable[int]] = None, batch_size: int = 0, loss: str = "mse",
                   threads: int = 0) -> EnsembleResult:
    """Train `members` finite networks of `arch` (NTK parameterization, N(0,1) parameters) by
    gradient descent θ ← θ − η∇L on L = ½·(1/(N·k))·Σ‖f(x_i) − y_i‖² (docs/conventions.md §3), and
    record their test predictions at `checkpoints` (default: [steps]). Step S is flow time t = S.
    loss: 'mse' or 'softmax_cross_entropy'; batch_size 0 is full batch."""
    y, _ = _targets(y_train, "y_train")
    cps = [steps] if checkpoints is None else [int(c) for c in checkpoints]
    p, l, s = _core.train_ensemble(_arch(arch), as_float64(x_train, "x_train"), y, as_float64(x_test, "x_test"),
                                   members, steps, learning_rate, seed, cps, batch_size, loss, threads)
    return EnsembleResult(p, l, s)


# ---- groups ---------------------------------------------------------------------------------


def make_group(name: str, shape: Union[int, Sequence[int]]) -> Representation:
    """A built-in group acting on examples of `shape` ((d,) or (H, W, C)): c4, d4, flip,
    translations, rot(K), sign, cyclic, rot2(K) or a path to a (|G|, d, d) .npy (conventions §5)."""
    return _core.make_group(name, _shape(shape))


def group_from_matrices(name: str, shape: Union[int, Sequence[int]], matrices: ArrayLike) -> Representation:
    """A group from (|G|, d, d) matrices, element 0 the identity; exact iff orthogonal and closed."""
    return _core.group_from_matrices(name, _shape(shape), as_float64(matrices, "matrices"))


def trivial_output(input: Representation, outputs: int) -> Representation:
    """ρ_Y(g) = I_k: invariant targets."""
    return _core.trivial_output(input, outputs)


def pixel_output(input: Representation, output_shape: Sequence[int]) -> Representation:
    """The input's pixel action on (H, W, k) outputs of a CNN without readout."""
    return _core.pixel_output(input, _shape(output_shape))


def matrix_output(input: Representation, matrices: ArrayLike) -> Representation:
    """ρ_Y from (|G|, k, k) matrices in the input's element order."""
    return _core.matrix_output(input, as_float64(matrices, "matrices"))


def augment(x: ArrayLike, y: ArrayLike, rho_x: Representation, rho_y: Representation):
    """Full orbit of (x, y): returns (x_aug, y_aug, source, element), row g·N + i = (ρ_X(g)x_i, ρ_Y(g)y_i)."""
    yy, _ = _targets(y, "y")
    return _core.augment(as_float64(x, "x"), yy, rho_x, rho_y)


# ---- theorem checks -------------------------------------------------------------------------

INF = math.inf


def check_theorem_5_1(arch, x1, rho_x, x2=None, *, memory_cap: MemoryCap = None, threads: int = 0,
                      safety: float = 4.0) -> "_core.TheoremResult":
    """Theorem 5.1: Θ(ρ(g)x, ρ(g)x') = ρ_K(g)Θ(x,x')ρ_K(g)ᵀ and the same for K, every g (parts NNGP, NTK)."""
    return _core.check_theorem_5_1(_arch(arch), as_float64(x1, "x1"), None if x2 is None else as_float64(x2, "x2"),
                                   rho_x, _memory_cap(memory_cap), threads, safety)


def check_lemmas_5_1_5_2(arch, train_x, rho_x, *, learning_rate: float = 1.0, outputs: int = 1,
                         times: Sequence[float] = (1.0, 100.0), memory_cap: MemoryCap = None, threads: int = 0,
                         safety: float = 4.0) -> "_core.TheoremResult":
    """Lemmas 5.1/5.2: on an augmented set ρ(g) permutes rows, and σ_g commutes with K, Θ and
    g_t(Θ) = Θ⁻¹(1 − e^{−ηtΘ/(Nk)})."""
    return _core.check_lemmas_5_1_5_2(_arch(arch), as_float64(train_x, "train_x"), rho_x, learning_rate, outputs,
                                      [float(t) for t in times], _memory_cap(memory_cap), threads, safety)


def check_theorem_5_2(arch, train_x, train_y, test_x, rho_x, rho_y, *,
                      times: Sequence[float] = (1.0, 100.0, INF), augment: bool = True, noise_inputs: int = 3,
                      seed: int = 1, safety: float = 4.0, learning_rate: float = 1.0, diag_reg: float = 0.0,
                      memory_cap: MemoryCap = None, threads: int = 0) -> "_core.TheoremResult":
    """Theorem 5.2: μ_t(ρ_X(g)x) = ρ_Y(g)μ_t(x) and Σ_t(ρ_X(g)x, ρ_X(g)x') = ρ_K Σ_t ρ_Kᵀ at every t
    when trained on the full orbit, on test_x and on off-manifold noise."""
    y, _ = _targets(train_y, "train_y")
    return _core.check_theorem_5_2(_arch(arch), as_float64(train_x, "train_x"), y, as_float64(test_x, "test_x"),
                                   rho_x, rho_y, [float(t) for t in times], augment, noise_inputs, seed, safety,
                                   learning_rate, diag_reg, _memory_cap(memory_cap), threads)


def verify(check: str, arch: Union[str, Architecture], x: ArrayLike, group: Union[str, Representation], *,
           train_y: Optional[ArrayLike] = None, test_x: Optional[ArrayLike] = None,
           times: Sequence[float] = (1.0, 100.0, INF), learning_rate: float = 1.0, diag_reg: float = 0.0,
           seed: int = 1, safety: float = 4.0, memory_cap: MemoryCap = None, threads: int = 0,
           output_rep: Optional[str] = None):
    """As ``emergent verify CHECK``: 'kernel-transform' (Theorem 5.1), 'lemmas' (Lemmas 5.1/5.2 on
    the augmented set), 'equivariance' (Theorem 5.2) or 'all' (a dict of the three).

    x: training inputs; group: a name for make_group or a Representation. Networks with a
    readout (and MLPs) use invariant targets (trivial ρ_Y), CNNs without readout the pixel
    action on their (H, W, k) outputs; output_rep names another action as ``--output-rep`` does
    (sign, regular, rotation or a .npy path). train_y defaults to N(0, 1) targets (seeded by `seed`),
    test_x to the training inputs. Each result is a TheoremResult (holds, parts, to_dict())."""
    a = _arch(arch)
    xx = as_float64(x, "x")
    rho_x = group if isinstance(group, Representation) else make_group(group, xx.shape[1:])
    if check == "all":
        return {c: verify(c, a, xx, rho_x, train_y=train_y, test_x=test_x, times=times, learning_rate=learning_rate,
                          diag_reg=diag_reg, seed=seed, safety=safety, memory_cap=memory_cap, threads=threads,
                          output_rep=output_rep)
                for c in ("kernel-transform", "lemmas", "equivariance")}
    if check not in ("kernel-transform", "lemmas", "equivariance"):
        raise ValueError(f"check: {check!r} is not a check; expected 'kernel-transform', 'lemmas', 'equivariance' or 'all'")
    zz = xx if test_x is None else as_float64(test_x, "test_x")
    if check == "kernel-transform":
        return check_theorem_5_1(a, xx, rho_x, zz, memory_cap=memory_cap, threads=threads, safety=safety)
    shapes = a.shapes(list(xx.shape[1:]))
    out_shape = shapes[-1]
    k = int(np.prod(out_shape))
    if check == "lemmas":
        aug_x, _, _, _ = augment(xx, np.zeros((xx.shape[0], 1)), rho_x, trivial_output(rho_x, 1))
        finite = [float(t) for t in times if math.isfinite(t)]
        return check_lemmas_5_1_5_2(a, aug_x, rho_x, learning_rate=learning_rate, outputs=a.outputs,
                                    times=finite or [1.0], memory_cap=memory_cap, threads=threads, safety=safety)
    if output_rep is not None:
        rho_y = _core.make_output_rep(output_rep, rho_x, list(out_shape))
    else:
        rho_y = trivial_output(rho_x, k) if len(out_shape) == 1 else pixel_output(rho_x, out_shape)
    y = np.random.default_rng(seed).standard_normal((xx.shape[0], k)) if train_y is None else train_y
    return check_theorem_5_2(a, xx, y, zz, rho_x, rho_y, times=times, seed=seed, safety=safety,
                             learning_rate=learning_rate, diag_reg=diag_reg, memory_cap=memory_cap, threads=threads)


def linearized_member_violation(arch, train_x, train_y, inputs, rho_x, rho_y, times: Sequence[float], members: int,
                                seed: int = 1, *, learning_rate: float = 1.0, diag_reg: float = 0.0,
                                memory_cap: MemoryCap = None, threads: int = 0) -> "_core.MemberViolationResult":
    """max_{g,x}|f_m(ρ_X(g)x) − ρ_Y(g)f_m(x)| of linearized infinite-width members (not equivariant)."""
    y, _ = _targets(train_y, "train_y")
    return _core.linearized_member_violation(_arch(arch), as_float64(train_x, "train_x"), y,
                                             as_float64(inputs, "inputs"), rho_x, rho_y, [float(t) for t in times],
                                             members, seed, learning_rate, diag_reg, _memory_cap(memory_cap), threads)


def finite_member_violation(arch, train_x, train_y, inputs, rho_x, rho_y, *, members: int, steps: int,
                            learning_rate: float, seed: int = 1, checkpoints: Optional[Iterable[int]] = None,
                            threads: int = 0) -> "_core.MemberViolationResult":
    """The same violation for finite-width members trained by full-batch gradient descent."""
    y, _ = _targets(train_y, "train_y")
    cps = [steps] if checkpoints is None else [int(c) for c in checkpoints]
    return _core.finite_member_violation(_arch(arch), as_float64(train_x, "train_x"), y, as_float64(inputs, "inputs"),
                                         rho_x, rho_y, members, steps, learning_rate, seed, cps, threads)


# ---- bounds ---------------------------------------------------------------------------------


def ensemble_deviation(variance: float, members: int, delta: float) -> "_core.EnsembleDeviation":
    """P(|f̂_t(x) − f̄_t(x)| > δ) = erfc(δ/(σ√2)), σ² = Σ_t(x,x)/M, and the paper's bound
    √(2/π)(σ/δ)e^{−δ²/2σ²}."""
    return _core.ensemble_deviation(float(variance), int(members), float(delta))


def ensemble_delta(variance: float, members: int, probability: float) -> "_core.EnsembleDelta":
    """δ with P(|f̂ − f̄| > δ) = p: exactly σ√2·erfc⁻¹(p), and where the paper's bound equals p."""
    return _core.ensemble_delta(float(variance), int(members), float(probability))


def ensemble_min_members(variance: float, delta: float, probability: float) -> "_core.MinMembers":
    """Smallest M with P(|f̂ − f̄| > δ) ≤ p (exact, paper, upper)."""
    return _core.ensemble_min_members(float(variance), float(delta), float(probability))


def violation_probability(S: ArrayLike, members: int, delta: float, **options) -> "_core.ViolationProbability":
    """P(‖v‖ > δ) for v ~ N(0, S/M), S the k×k violation covariance: exact (Ruben's series),
    union, Chernoff and the paper's bound."""
    return _core.violation_probability(as_float64(S, "S"), int(members), float(delta), **options)


def violation_delta(S: ArrayLike, members: int, probability: float, **options) -> "_core.ViolationDelta":
    return _core.violation_delta(as_float64(S, "S"), int(members), float(probability), **options)


def violation_min_members(S: ArrayLike, delta: float, probability: float, **options) -> "_core.MinMembers":
    return _core.violation_min_members(as_float64(S, "S"), float(delta), float(probability), **options)


def chi_square_mixture_tail(weights: ArrayLike, x: float, **options) -> "_core.ChiSquareMixtureTail":
    """P(Σ w_i Z_i² > x), Z_i i.i.d. N(0,1), by Ruben's (1962) series with a rigorous error bound."""
    return _core.chi_square_mixture_tail(as_float64(weights, "weights"), float(x), **options)


def continuous_group_bound(arch, train_x, train_y, test_x, *, order: int = 4, times: Sequence[float] = (INF,),
                           learning_rate: float = 1.0, diag_reg: float = 0.0, quadrature_nodes: int = 64,
                           scan_points: int = 256, memory_cap: MemoryCap = None,
                           threads: int = 0) -> "_core.ContinuousBoundResult":
    """SO(2) approximated by C_k (training on the rot2(k)-augmented set, MLPs, invariant targets):
    |f̄_t(ρ(g)x) − f̄_t(x)| ≤ κ·C_t(x), κ = 2 sin(π/2k), against the measured worst case."""
    y, _ = _targets(train_y, "train_y")
    return _core.continuous_group_bound(_arch(arch), as_float64(train_x, "train_x"), y, as_float64(test_x, "test_x"),
                                        order, [float(t) for t in times], learning_rate, diag_reg, quadrature_nodes,
                                        scan_points, _memory_cap(memory_cap), threads)


def invariance_violation_laws(arch, train_x, train_y, test_x, group: Representation,
                              augment_group: Optional[Representation] = None, *, times: Sequence[float] = (INF,),
                              learning_rate: float = 1.0, diag_reg: float = 0.0, memory_cap: MemoryCap = None,
                              threads: int = 0) -> list:
    """For each time, test point and element: f̂_t(gx) − f̂_t(x) ~ N(mean, (variance/M)·I_k)."""
    y, _ = _targets(train_y, "train_y")
    return _core.invariance_violation_laws(_arch(arch), as_float64(train_x, "train_x"), y,
                                           as_float64(test_x, "test_x"), group, augment_group,
                                           [float(t) for t in times], learning_rate, diag_reg,
                                           _memory_cap(memory_cap), threads)


def fit_power_law(x: Sequence[float], y: Sequence[float], sigma: Sequence[float] = (), *, offset: bool = False,
                  absolute_sigma: bool = True, max_iterations: int = 200) -> "_core.PowerLawFitResult":
    """Fit y ≈ a·x^(−α) [+ c] by weighted Levenberg–Marquardt (Ceres)."""
    return _core.fit_power_law([float(v) for v in x], [float(v) for v in y], [float(v) for v in sigma], offset,
                               absolute_sigma, max_iterations)


rot2_kappa = _core.rot2_kappa

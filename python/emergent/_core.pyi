"""emergent C++ core (nanobind)"""

from collections.abc import Sequence
import enum
from typing import Annotated

import numpy
from numpy.typing import NDArray


class Cancelled(RuntimeError):
    pass

class SpecError(ValueError):
    pass

class MemoryCapError(ValueError):
    pass

class NpyError(ValueError):
    pass

class SpectralStatus(enum.Enum):
    def __str__(self) -> str: ...

    Ok = 0

    RankDeficient = 1

    IllConditioned = 2

    ZeroKernel = 3

    NotPositiveSemidefinite = 4

class TailStatus(enum.Enum):
    def __str__(self) -> str: ...

    Ok = 0

    NotConverged = 1

class MembersStatus(enum.Enum):
    def __str__(self) -> str: ...

    Ok = 0

    TooMany = 1

class FitStatus(enum.Enum):
    def __str__(self) -> str: ...

    Converged = 0

    NoConvergence = 1

    Failed = 2

class Theorem(enum.Enum):
    def __str__(self) -> str: ...

    KernelTransform51 = 0

    Lemma51 = 1

    Lemma52 = 2

    Ensemble52 = 3

class Quantity(enum.Enum):
    def __str__(self) -> str: ...

    RowPermutation = 0

    Nngp = 1

    Ntk = 2

    SpectralFilter = 3

    Mean = 4

    Covariance = 5

class InputSet(enum.Enum):
    def __str__(self) -> str: ...

    Given = 0

    Train = 1

    Collinear = 2

    Test = 3

    Noise = 4

class SpectralSummary:
    """What the eigendecomposition of a kernel matrix found."""

    _fields: tuple[str, ...]
    def to_dict(self) -> dict:
        """The record as a dict of plain Python values (JSON-serialisable)."""

    @property
    def status(self) -> SpectralStatus: ...

    @property
    def size(self) -> int: ...

    @property
    def regularizer(self) -> float: ...

    @property
    def min_eigenvalue(self) -> float: ...

    @property
    def max_eigenvalue(self) -> float: ...

    @property
    def condition(self) -> float: ...

    @property
    def effective_condition(self) -> float: ...

    @property
    def rank_threshold(self) -> float: ...

    @property
    def rank(self) -> int: ...

    @property
    def clipped_negative(self) -> int: ...

    @property
    def most_negative(self) -> float: ...

    def __str__(self) -> str: ...

class CovarianceFactorSummary:
    """
    How K~ = V^T K(X,X) V behind GradientFlow.covariance was factored (pivoted Cholesky).
    """

    _fields: tuple[str, ...]
    def to_dict(self) -> dict:
        """The record as a dict of plain Python values (JSON-serialisable)."""

    @property
    def status(self) -> SpectralStatus: ...

    @property
    def size(self) -> int: ...

    @property
    def rank(self) -> int: ...

    @property
    def tolerance(self) -> float: ...

    @property
    def remainder(self) -> float: ...

    @property
    def dense(self) -> bool: ...

    def __str__(self) -> str: ...

class RepresentationSummary:
    """What verifying the group axioms found."""

    _fields: tuple[str, ...]
    def to_dict(self) -> dict:
        """The record as a dict of plain Python values (JSON-serialisable)."""

    @property
    def identity_violation(self) -> float: ...

    @property
    def orthogonality_violation(self) -> float: ...

    @property
    def closure_violation(self) -> float: ...

    @property
    def inverse_violation(self) -> float: ...

    @property
    def tolerance(self) -> float: ...

    @property
    def identity_first(self) -> bool: ...

    @property
    def orthogonal(self) -> bool: ...

    @property
    def closed(self) -> bool: ...

    @property
    def has_inverses(self) -> bool: ...

    @property
    def exact(self) -> bool: ...

    def __str__(self) -> str: ...

class ElementViolation:
    """Largest violation of one identity for one group element."""

    _fields: tuple[str, ...]
    def to_dict(self) -> dict:
        """The record as a dict of plain Python values (JSON-serialisable)."""

    @property
    def element(self) -> int: ...

    @property
    def label(self) -> str: ...

    @property
    def violation(self) -> float: ...

class CheckResult:
    """One checked identity: holds iff max_violation ≤ tolerance."""

    _fields: tuple[str, ...]
    def to_dict(self) -> dict:
        """The record as a dict of plain Python values (JSON-serialisable)."""

    @property
    def name(self) -> str: ...

    @property
    def theorem(self) -> Theorem: ...

    @property
    def quantity(self) -> Quantity: ...

    @property
    def inputs(self) -> InputSet: ...

    @property
    def time(self) -> float:
        """training time t (inf allowed); NaN for parts without one"""

    @property
    def holds(self) -> bool: ...

    @property
    def max_violation(self) -> float: ...

    @property
    def scale(self) -> float: ...

    @property
    def tolerance(self) -> float: ...

    @property
    def tolerance_rule(self) -> str: ...

    @property
    def worst_element(self) -> int: ...

    @property
    def elements(self) -> list[ElementViolation]: ...

    @property
    def relative_violation(self) -> float: ...

    def __str__(self) -> str: ...

class TheoremResult:
    """A theorem: several identities, holds iff every part holds."""

    _fields: tuple[str, ...]
    def to_dict(self) -> dict:
        """The record as a dict of plain Python values (JSON-serialisable)."""

    @property
    def theorem(self) -> str: ...

    @property
    def holds(self) -> bool: ...

    @property
    def status(self) -> str: ...

    @property
    def parts(self) -> list[CheckResult]: ...

    @property
    def max_ratio(self) -> float: ...

    def part(self, quantity: Quantity, inputs: InputSet, time: float = float('nan')) -> CheckResult:
        """
        The part comparing quantity on inputs at time; raises IndexError if there is none.
        """

    def find(self, quantity: Quantity, inputs: InputSet, time: float = float('nan')) -> CheckResult | None:
        """As part, but None if there is none."""

    def __str__(self) -> str: ...

class MemberViolationResult:
    """Equivariance violation of individual members."""

    _fields: tuple[str, ...]
    def to_dict(self) -> dict:
        """The record as a dict of plain Python values (JSON-serialisable)."""

    @property
    def kind(self) -> str: ...

    @property
    def members(self) -> int: ...

    @property
    def times(self) -> list[float]: ...

    @property
    def member_max(self) -> list[float]: ...

    @property
    def member_mean(self) -> list[float]: ...

    @property
    def sample_mean(self) -> list[float]: ...

    @property
    def scale(self) -> list[float]: ...

    @property
    def diverged(self) -> list[int]:
        """members with non-finite predictions, per time"""

    def __str__(self) -> str: ...

def check_theorem_5_1(arch: Architecture, x1: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], x2: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)] | None, rho_x: Representation, memory_cap: int = 0, threads: int = 0, safety: float = 4.0) -> TheoremResult: ...

def check_lemmas_5_1_5_2(arch: Architecture, train_x: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], rho_x: Representation, learning_rate: float = 1.0, outputs: int = 1, times: Sequence[float] = [1.0, 100.0], memory_cap: int = 0, threads: int = 0, safety: float = 4.0) -> TheoremResult: ...

def check_theorem_5_2(arch: Architecture, train_x: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], train_y: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], test_x: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], rho_x: Representation, rho_y: Representation, times: Sequence[float], augment: bool = True, noise_inputs: int = 3, seed: int = 1, safety: float = 4.0, learning_rate: float = 1.0, diag_reg: float = 0.0, memory_cap: int = 0, threads: int = 0) -> TheoremResult: ...

def linearized_member_violation(arch: Architecture, train_x: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], train_y: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], inputs: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], rho_x: Representation, rho_y: Representation, times: Sequence[float], members: int, seed: int, learning_rate: float = 1.0, diag_reg: float = 0.0, memory_cap: int = 0, threads: int = 0) -> MemberViolationResult: ...

def finite_member_violation(arch: Architecture, train_x: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], train_y: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], inputs: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], rho_x: Representation, rho_y: Representation, members: int, steps: int, learning_rate: float, seed: int, checkpoints: Sequence[int], threads: int = 0) -> MemberViolationResult: ...

class Architecture:
    """
    A network spec (docs/conventions.md §1), e.g. 'conv(64, 3x3, padding=circular) relu gap dense(1)'.
    """

    def __init__(self, spec: str) -> None:
        """
        Parse a spec; raises SpecError (a ValueError) naming the token and its column.
        """

    @property
    def outputs(self) -> int:
        """k: the width of the last affine layer."""

    @property
    def has_readout(self) -> bool:
        """True if a flatten or gap layer is present."""

    @property
    def expects_images(self) -> bool:
        """True if inputs are (N, H, W, C) images."""

    @property
    def layers(self) -> list:
        """
        One dict per layer (kind, spec, width, w_std, b_std, filter, padding, activation).
        """

    def shapes(self, input_shape: Sequence[int]) -> list:
        """
        Shape after every layer for one example of `input_shape` ((d,) or (H, W, C)); entry 0 is the input.
        """

    def __str__(self) -> str: ...

    def __repr__(self) -> str: ...

    def __eq__(self, arg: Architecture, /) -> bool: ...

def parse_bytes(text: str, what: str = 'memory cap') -> int:
    """
    Bytes from '4G', '512M', '1.5GiB', '100000' or '25%' (of physical memory).
    """

def default_memory_cap_bytes() -> int: ...

def physical_memory_bytes() -> int: ...

def kernels(arch: Architecture, x1: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], x2: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)] | None = None, memory_cap: int = 0, threads: int = 0, quadrature_order: int = 0) -> tuple:
    """
    (nngp, ntk, summary): K and Θ on x1 × x2 (x2=None: x1 × x1, one triangle computed). Readout/MLP: (N1, N2); CNN without readout: (N1, N2, H, W, H, W).
    """

class Representation:
    """
    A finite group acting linearly on one example: ρ(g) for g = 0..|G|−1, identity first.
    """

    @property
    def name(self) -> str: ...

    @property
    def shape(self) -> tuple: ...

    @property
    def size(self) -> int:
        """|G|"""

    def __len__(self) -> int: ...

    @property
    def dim(self) -> int:
        """d: numbers per example"""

    @property
    def exact(self) -> bool:
        """A verified finite group of orthogonal maps."""

    @property
    def is_permutation(self) -> bool: ...

    @property
    def labels(self) -> list[str]: ...

    def matrix(self, g: int) -> NDArray[numpy.float64]:
        """The d × d matrix ρ(g) = M_g ⊗ I_block."""

    def block_matrix(self, g: int) -> NDArray[numpy.float64]:
        """
        ρ_K(g): the blocks × blocks matrix M_g (acts on pixel indices of kernels).
        """

    def permutation(self, g: int) -> list[int]:
        """Index map p with (ρ(g)x)[i] = x[p(i)] (permutation groups only)."""

    def apply(self, g: int, rows: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)]) -> NDArray[numpy.float64]:
        """ρ(g) applied to every row of an (N, d) array."""

    def compose(self, g: int, h: int) -> int:
        """Index of g∘h (exact groups)."""

    def inverse(self, g: int) -> int:
        """Index of g⁻¹ (exact groups)."""

    @property
    def composition_table(self) -> list[list[int]]: ...

    def verify(self) -> RepresentationSummary:
        """Measure the group axioms (RepresentationSummary)."""

    def __str__(self) -> str: ...

    def __repr__(self) -> str: ...

def make_group(name: str, shape: Sequence[int]) -> Representation:
    """
    A built-in group (c4, d4, flip, translations, rot(K), sign, cyclic, rot2(K), cube, icosahedron, or a .npy path) for examples of `shape` ((d,) or (H, W, C)); docs/conventions.md §5.
    """

def group_from_matrices(name: str, shape: Sequence[int], matrices: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)]) -> Representation: ...

def trivial_output(input: Representation, outputs: int) -> Representation: ...

def pixel_output(input: Representation, output_shape: Sequence[int]) -> Representation: ...

def matrix_output(input: Representation, matrices: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)]) -> Representation: ...

def make_output_rep(name: str, input: Representation, output_shape: Sequence[int]) -> Representation:
    """
    The output action ρ_Y named like --output-rep (trivial, pixels, sign, regular, rotation or a .npy path) for outputs of `output_shape`, checked to be orthogonal and a homomorphism of input's law (docs/conventions.md §5).
    """

def augment(x: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], y: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], rho_x: Representation, rho_y: Representation) -> tuple:
    """
    (x_aug, y_aug, source, element): row g·N + i is (ρ_X(g)x_i, ρ_Y(g)y_i).
    """

class GradientFlow:
    def __init__(self, ntk_train_train: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], y_train: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], nngp_train_train: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)] | None = None, learning_rate: float = 1.0, diag_reg: float = 0.0, diag_reg_relative: bool = False, rank_rtol: float = 0.0, psd_rtol: float = 1e-08, ill_conditioned: float = 10000000000.0, symmetry_rtol: float = 1e-10, threads: int = 0) -> None: ...

    @property
    def summary(self) -> SpectralSummary: ...

    @property
    def covariance_factor(self) -> CovarianceFactorSummary: ...

    @property
    def train_size(self) -> int: ...

    @property
    def outputs(self) -> int: ...

    def mean(self, times: Sequence[float], ntk_test_train: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)]) -> NDArray[numpy.float64]: ...

    def covariance(self, times: Sequence[float], ntk_test_train: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], nngp_test_train: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], nngp_test_test: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)]) -> NDArray[numpy.float64]: ...

    def train_mean(self, times: Sequence[float]) -> NDArray[numpy.float64]: ...

    def train_loss(self, times: Sequence[float]) -> list[float]: ...

    def evolve(self, times: Sequence[float], ntk_test_train: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], f0_train: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], f0_test: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)]) -> NDArray[numpy.float64]: ...

    def sample_members(self, times: Sequence[float], ntk_test_train: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], nngp_test_train: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], nngp_test_test: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], members: int, seed: int) -> tuple: ...

class NngpPosterior:
    def __init__(self, nngp_train_train: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], y_train: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], diag_reg: float = 0.0, diag_reg_relative: bool = False, rank_rtol: float = 0.0, psd_rtol: float = 1e-08, ill_conditioned: float = 10000000000.0, symmetry_rtol: float = 1e-10, threads: int = 0) -> None: ...

    @property
    def summary(self) -> SpectralSummary: ...

    def mean(self, nngp_test_train: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)]) -> NDArray[numpy.float64]: ...

    def covariance(self, nngp_test_train: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], nngp_test_test: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)]) -> NDArray[numpy.float64]: ...

def train_ensemble(arch: Architecture, train_x: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], train_y: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], test_x: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], members: int, steps: int, learning_rate: float, seed: int, checkpoints: Sequence[int], batch_size: int = 0, loss: str = 'mse', threads: int = 0) -> tuple: ...

def member_seed(seed: int, member: int) -> int: ...

class EnsembleDeviation:
    """P(|f̂_t(x) − f̄_t(x)| > δ) for M members, Var = Σ_t(x,x)/M."""

    _fields: tuple[str, ...]
    def to_dict(self) -> dict:
        """The record as a dict of plain Python values (JSON-serialisable)."""

    @property
    def sigma(self) -> float: ...

    @property
    def exact_probability(self) -> float: ...

    @property
    def log_exact_probability(self) -> float: ...

    @property
    def paper_bound(self) -> float: ...

    @property
    def log_paper_bound(self) -> float: ...

class EnsembleDelta:
    """δ at which the probability equals p."""

    _fields: tuple[str, ...]
    def to_dict(self) -> dict:
        """The record as a dict of plain Python values (JSON-serialisable)."""

    @property
    def exact_delta(self) -> float: ...

    @property
    def paper_delta(self) -> float: ...

class MemberCount:
    """Smallest member count M that passes."""

    _fields: tuple[str, ...]
    def to_dict(self) -> dict:
        """The record as a dict of plain Python values (JSON-serialisable)."""

    @property
    def status(self) -> MembersStatus: ...

    @property
    def members(self) -> int: ...

    @property
    def members_real(self) -> float: ...

class MinMembers:
    """
    Smallest M: exactly, by the paper's bound, by the tightest upper bound.
    """

    _fields: tuple[str, ...]
    def to_dict(self) -> dict:
        """The record as a dict of plain Python values (JSON-serialisable)."""

    @property
    def exact(self) -> MemberCount: ...

    @property
    def paper(self) -> MemberCount: ...

    @property
    def upper(self) -> MemberCount: ...

class ChiSquareMixtureTail:
    """P(Σ w_i Z_i² > x) by Ruben's series."""

    _fields: tuple[str, ...]
    def to_dict(self) -> dict:
        """The record as a dict of plain Python values (JSON-serialisable)."""

    @property
    def status(self) -> TailStatus: ...

    @property
    def probability(self) -> float: ...

    @property
    def log_probability(self) -> float: ...

    @property
    def error_bound(self) -> float: ...

    @property
    def terms(self) -> int: ...

class ViolationProbability:
    """P(‖v‖ > δ) for the M-member violation v ~ N(0, S/M)."""

    _fields: tuple[str, ...]
    def to_dict(self) -> dict:
        """The record as a dict of plain Python values (JSON-serialisable)."""

    @property
    def outputs(self) -> int: ...

    @property
    def rank(self) -> int: ...

    @property
    def eigenvalues(self) -> Annotated[NDArray[numpy.float64], dict(shape=(None,), order='C')]: ...

    @property
    def status(self) -> TailStatus: ...

    @property
    def exact_probability(self) -> float: ...

    @property
    def log_exact_probability(self) -> float: ...

    @property
    def error_bound(self) -> float: ...

    @property
    def terms(self) -> int: ...

    @property
    def union_bound(self) -> float: ...

    @property
    def chernoff_bound(self) -> float: ...

    @property
    def upper_bound(self) -> float: ...

    @property
    def paper_bound(self) -> float: ...

class ViolationDelta:
    """δ at which each probability/bound equals p."""

    _fields: tuple[str, ...]
    def to_dict(self) -> dict:
        """The record as a dict of plain Python values (JSON-serialisable)."""

    @property
    def exact_delta(self) -> float: ...

    @property
    def paper_delta(self) -> float: ...

    @property
    def upper_delta(self) -> float: ...

    @property
    def status(self) -> TailStatus: ...

class ContinuousBoundPoint:
    """Bound and measured worst case, one test point and time."""

    _fields: tuple[str, ...]
    def to_dict(self) -> dict:
        """The record as a dict of plain Python values (JSON-serialisable)."""

    @property
    def test_index(self) -> int: ...

    @property
    def time(self) -> float: ...

    @property
    def kappa(self) -> float: ...

    @property
    def lipschitz_constant(self) -> float: ...

    @property
    def paper_bound(self) -> float: ...

    @property
    def fourier_bound(self) -> float: ...

    @property
    def roundoff(self) -> float: ...

    @property
    def bound(self) -> float: ...

    @property
    def measured(self) -> float: ...

    @property
    def measured_scan(self) -> float: ...

    @property
    def worst_angle(self) -> float: ...

    @property
    def ratio(self) -> float: ...

    @property
    def f_norm(self) -> float: ...

    @property
    def f_perp_norm(self) -> float: ...

class ContinuousBoundResult:
    """SO(2) approximated by C_k: bounds for every point and time."""

    _fields: tuple[str, ...]
    def to_dict(self) -> dict:
        """The record as a dict of plain Python values (JSON-serialisable)."""

    @property
    def order(self) -> int: ...

    @property
    def kappa(self) -> float: ...

    @property
    def train_size(self) -> int: ...

    @property
    def augmented_size(self) -> int: ...

    @property
    def times(self) -> list[float]: ...

    @property
    def points(self) -> list[ContinuousBoundPoint]: ...

    @property
    def spectral(self) -> SpectralSummary: ...

    @property
    def quadrature_error(self) -> float: ...

    @property
    def max_ratio(self) -> float: ...

    @property
    def min_ratio(self) -> float: ...

    def at(self, time_index: int, test_index: int) -> ContinuousBoundPoint: ...

    def __str__(self) -> str: ...

class ViolationLaw:
    """f̂_t(gx) − f̂_t(x) ~ N(mean, (variance/M)·I_k)."""

    _fields: tuple[str, ...]
    def to_dict(self) -> dict:
        """The record as a dict of plain Python values (JSON-serialisable)."""

    @property
    def test_index(self) -> int: ...

    @property
    def element(self) -> int: ...

    @property
    def time(self) -> float: ...

    @property
    def variance(self) -> float: ...

    @property
    def mean(self) -> Annotated[NDArray[numpy.float64], dict(shape=(None,), order='C')]: ...

class PowerLawFitResult:
    """y ≈ a·x^(−α) [+ c] by weighted least squares."""

    _fields: tuple[str, ...]
    def to_dict(self) -> dict:
        """The record as a dict of plain Python values (JSON-serialisable)."""

    @property
    def status(self) -> FitStatus: ...

    @property
    def message(self) -> str: ...

    @property
    def iterations(self) -> int: ...

    @property
    def has_offset(self) -> bool: ...

    @property
    def amplitude(self) -> float: ...

    @property
    def exponent(self) -> float: ...

    @property
    def offset(self) -> float: ...

    @property
    def amplitude_se(self) -> float: ...

    @property
    def exponent_se(self) -> float: ...

    @property
    def offset_se(self) -> float: ...

    @property
    def covariance(self) -> Annotated[NDArray[numpy.float64], dict(shape=(None, None), order='F')]: ...

    @property
    def covariance_ok(self) -> bool: ...

    @property
    def covariance_scaled(self) -> bool: ...

    @property
    def chi_square(self) -> float: ...

    @property
    def dof(self) -> int: ...

    @property
    def reduced_chi_square(self) -> float: ...

    def evaluate(self, x: float) -> float: ...

    def __str__(self) -> str: ...

def ensemble_deviation(variance: float, members: int, delta: float) -> EnsembleDeviation: ...

def ensemble_delta(variance: float, members: int, probability: float) -> EnsembleDelta: ...

def ensemble_min_members(variance: float, delta: float, probability: float) -> MinMembers: ...

def chi_square_mixture_tail(weights: Annotated[NDArray[numpy.float64], dict(shape=(None,), order='C')], x: float, relative_tolerance: float = 1e-14, max_terms: int = 4000000, rank_rtol: float = 0.0) -> ChiSquareMixtureTail: ...

def violation_probability(S: Annotated[NDArray[numpy.float64], dict(shape=(None, None), order='F')], members: int, delta: float, relative_tolerance: float = 1e-14, max_terms: int = 4000000, rank_rtol: float = 0.0) -> ViolationProbability: ...

def violation_delta(S: Annotated[NDArray[numpy.float64], dict(shape=(None, None), order='F')], members: int, probability: float, relative_tolerance: float = 1e-14, max_terms: int = 4000000, rank_rtol: float = 0.0) -> ViolationDelta: ...

def violation_min_members(S: Annotated[NDArray[numpy.float64], dict(shape=(None, None), order='F')], delta: float, probability: float, relative_tolerance: float = 1e-14, max_terms: int = 4000000, rank_rtol: float = 0.0) -> MinMembers: ...

def rot2_kappa(k: int) -> float: ...

def continuous_group_bound(arch: Architecture, train_x: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], train_y: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], test_x: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], order: int, times: Sequence[float], learning_rate: float = 1.0, diag_reg: float = 0.0, quadrature_nodes: int = 64, scan_points: int = 256, memory_cap: int = 0, threads: int = 0) -> ContinuousBoundResult: ...

def invariance_violation_laws(arch: Architecture, train_x: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], train_y: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], test_x: Annotated[NDArray[numpy.float64], dict(order='C', device='cpu', writable=False)], group: Representation, augment: Representation | None, times: Sequence[float], learning_rate: float = 1.0, diag_reg: float = 0.0, memory_cap: int = 0, threads: int = 0) -> list[ViolationLaw]: ...

def fit_power_law(x: Sequence[float], y: Sequence[float], sigma: Sequence[float] = [], offset: bool = False, absolute_sigma: bool = True, max_iterations: int = 200) -> PowerLawFitResult: ...

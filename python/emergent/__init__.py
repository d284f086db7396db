"""emergent: infinite-width NNGP/NTK kernels, closed-form gradient flow of deep ensembles and
the emergent-equivariance theorems of Gerken & Kessel (ICML 2024), over the C++ library.

    >>> import numpy as np, emergent
    >>> arch = emergent.Architecture("dense(512, b=0.1) relu dense(1)")
    >>> k = emergent.kernel(arch, np.random.randn(8, 3))        # k.nngp, k.ntk: (8, 8)

Conventions (spec grammar, kernels, loss and time units) are those of Neural Tangents; see
docs/conventions.md. Bad input raises ValueError with the C++ library's message.
"""
from . import _results  # noqa: F401  (adds to_dict()/__repr__ to the result records)
from ._api import (INF, EnsembleResult, GradientFlow, NngpPosterior, Prediction, as_float64, augment,
                   check_lemmas_5_1_5_2, check_theorem_5_1, check_theorem_5_2, chi_square_mixture_tail,
                   continuous_group_bound, ensemble_delta, ensemble_deviation, ensemble_min_members,
                   finite_member_violation, fit_power_law, group_from_matrices, invariance_violation_laws, kernel,
                   linearized_member_violation, make_group, matrix_output, pixel_output, predict, rot2_kappa,
                   train_ensemble, trivial_output, verify, violation_delta, violation_min_members,
                   violation_probability)
from ._core import (Architecture, Cancelled, CheckResult, CovarianceFactorSummary, InputSet, Quantity, Theorem, ContinuousBoundResult, FitStatus, MembersStatus, MemoryCapError,
                    NpyError, Representation, SpecError, SpectralStatus, SpectralSummary, TailStatus,
                    TheoremResult, __version__, member_seed, parse_bytes)

__all__ = [n for n in dir() if not n.startswith("_")]

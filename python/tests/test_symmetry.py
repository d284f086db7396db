"""Groups, augmentation, the theorem checks (verify) and the bounds calculators."""
import json
import math

import numpy as np
import pytest

import emergent


def test_c4_is_numpy_rot90(rng):
    g = emergent.make_group("c4", (4, 4, 2))
    assert len(g) == 4 and g.exact and g.is_permutation and g.labels[0] == "e"
    x = rng.standard_normal((3, 4, 4, 2))
    r = g.apply(1, x.reshape(3, -1)).reshape(x.shape)
    assert np.array_equal(r, np.rot90(x, 1, axes=(1, 2)))
    m = g.matrix(1)
    assert np.allclose(m.T @ m, np.eye(32))
    assert g.compose(1, 3) == 0 and g.inverse(1) == 3
    assert g.verify().exact


def test_group_from_matrices_and_errors():
    s = np.array([np.eye(2), -np.eye(2)])
    g = emergent.group_from_matrices("sign2", 2, s)
    assert g.exact and g.size == 2
    with pytest.raises(ValueError, match="blorp"):
        emergent.make_group("blorp", (4, 4, 1))


def test_augment_rows(rng):
    g = emergent.make_group("flip", (3, 3, 1))
    x = rng.standard_normal((2, 3, 3, 1))
    xa, ya, source, element = emergent.augment(x, np.ones(2), g, emergent.trivial_output(g, 1))
    assert xa.shape == (4, 3, 3, 1) and ya.shape == (4, 1)
    assert source == [0, 1, 0, 1] and element == [0, 0, 1, 1]
    assert np.array_equal(xa[2], x[0, :, ::-1])


def test_verify_all_holds_for_an_invariant_network(rng):
    x = rng.standard_normal((4, 5, 5, 1))
    results = emergent.verify("all", "conv(16, 3x3, padding=circular) relu flatten dense(1)", x, "c4")
    assert set(results) == {"kernel-transform", "lemmas", "equivariance"}
    for r in results.values():
        assert isinstance(r, emergent.TheoremResult) and r.holds
        d = r.to_dict()
        json.dumps(d)
        assert d["parts"][0]["holds"] and "tolerance_rule" in d["parts"][0]
    t51 = results["kernel-transform"]
    ntk = t51.part(emergent.Quantity.Ntk, emergent.InputSet.Given)
    assert ntk.theorem == emergent.Theorem.KernelTransform51 and ntk.name == "NTK"
    assert ntk.max_violation <= ntk.tolerance
    assert t51.find(emergent.Quantity.Mean, emergent.InputSet.Test) is None
    with pytest.raises(IndexError):
        t51.part(emergent.Quantity.Mean, emergent.InputSet.Test)
    assert "TheoremResult(" in repr(t51)


def test_theorem_5_2_fails_without_augmentation(rng):
    arch = "conv(8, 3x3, padding=same) relu flatten dense(1)"   # not invariant: same padding
    g = emergent.make_group("c4", (4, 4, 1))
    x = rng.standard_normal((3, 4, 4, 1))
    y = rng.standard_normal((3, 1))
    r = emergent.check_theorem_5_2(arch, x, y, x, g, emergent.trivial_output(g, 1), augment=False,
                                   times=[10.0])
    assert not r.holds
    r2 = emergent.check_theorem_5_2(arch, x, y, x, g, emergent.trivial_output(g, 1), augment=True, times=[10.0])
    assert r2.holds


def test_member_violation_is_positive(rng):
    g = emergent.make_group("sign", 3)
    x = rng.standard_normal((3, 3))
    y = rng.standard_normal((3, 1))
    r = emergent.linearized_member_violation("dense(64) relu dense(1)", x, y, x, g, emergent.trivial_output(g, 1),
                                             [1.0, math.inf], members=8, seed=2)
    assert r.members == 8 and len(r.member_max) == 2 and min(r.member_max) > 0
    assert all(s <= m for s, m in zip(r.sample_mean, r.member_max))


def test_ensemble_bounds_are_exact_gaussian_tails():
    d = emergent.ensemble_deviation(2.0, 10, 0.9)
    sigma = math.sqrt(2.0 / 10)
    assert d.sigma == pytest.approx(sigma, rel=1e-15)
    assert d.exact_probability == pytest.approx(math.erfc(0.9 / (sigma * math.sqrt(2))), rel=1e-13)
    assert d.paper_bound >= d.exact_probability
    delta = emergent.ensemble_delta(2.0, 10, d.exact_probability)
    assert delta.exact_delta == pytest.approx(0.9, rel=1e-10)
    m = emergent.ensemble_min_members(2.0, 0.9, d.exact_probability)
    assert m.exact.status == emergent.MembersStatus.Ok and m.exact.members <= 10 <= m.paper.members
    v = emergent.violation_probability(np.diag([2.0]), 10, 0.9)
    assert v.exact_probability == pytest.approx(d.exact_probability, rel=1e-12)
    tail = emergent.chi_square_mixture_tail([1.0, 1.0], 3.0)   # χ²₂ tail = e^{−x/2}
    assert tail.probability == pytest.approx(math.exp(-1.5), rel=1e-13)
    with pytest.raises(ValueError):
        emergent.ensemble_deviation(1.0, 0, 0.5)


def test_continuous_bound_holds(rng):
    x = rng.standard_normal((3, 4))
    y = rng.standard_normal((3, 1))
    r = emergent.continuous_group_bound("dense(64) relu dense(1)", x, y, rng.standard_normal((2, 4)), order=4,
                                        times=[math.inf], quadrature_nodes=16, scan_points=32)
    assert r.kappa == pytest.approx(2 * math.sin(math.pi / 8)) and len(r.points) == 2
    for p in r.points:
        assert p.measured <= p.bound
    assert emergent.rot2_kappa(4) == r.kappa


def test_power_law_fit():
    x = np.array([1.0, 2, 4, 8, 16])
    y = 3.0 * x ** -0.5
    f = emergent.fit_power_law(x, y)
    assert f.status == emergent.FitStatus.Converged
    assert f.amplitude == pytest.approx(3.0, rel=1e-8) and f.exponent == pytest.approx(0.5, rel=1e-8)
    assert f.to_dict()["status"] == "Converged"

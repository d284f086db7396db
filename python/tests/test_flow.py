"""GradientFlow, NngpPosterior, predict and train_ensemble: identities of the closed form."""
import math

import numpy as np
import pytest

import emergent

MLP = "dense(256, b=0.1) erf dense(1)"


@pytest.fixture
def problem(rng):
    x = rng.standard_normal((6, 3))
    y = rng.standard_normal((6, 2))
    z = rng.standard_normal((4, 3))
    arch = emergent.Architecture("dense(256, b=0.1) erf dense(2)")
    tt = emergent.kernel(arch, x)
    st = emergent.kernel(arch, z, x)
    ss = emergent.kernel(arch, z)
    return arch, x, y, z, tt, st, ss


def test_limits_of_the_mean_and_covariance(problem):
    arch, x, y, z, tt, st, ss = problem
    flow = emergent.GradientFlow(tt.ntk, y, tt.nngp)
    assert flow.summary.status == emergent.SpectralStatus.Ok and flow.train_size == 6 and flow.outputs == 2
    # t = 0: the prior (mean 0, covariance K(x, x')); t = ∞: kernel regression with Θ.
    assert np.array_equal(flow.mean(0.0, st.ntk), np.zeros((4, 2)))
    assert np.allclose(flow.covariance(0.0, st.ntk, st.nngp, ss.nngp), ss.nngp, rtol=1e-13, atol=1e-15)
    regression = st.ntk @ np.linalg.solve(tt.ntk, y)
    assert np.allclose(flow.mean(math.inf, st.ntk), regression, rtol=1e-9, atol=1e-12)
    # On the training inputs the flow interpolates: f_∞(X) = Y, loss → 0.
    assert np.allclose(flow.train_mean(math.inf), y, atol=1e-9)
    losses = flow.train_loss([0.0, 1.0, 10.0, math.inf])
    assert losses[0] == pytest.approx(0.5 * np.mean(y ** 2), rel=1e-14)
    assert np.all(np.diff(losses) <= 0) and losses[-1] < 1e-15


def test_time_axis_and_vector_targets(problem):
    arch, x, y, z, tt, st, ss = problem
    flow = emergent.GradientFlow(tt.ntk, y[:, 0], tt.nngp, learning_rate=0.5)
    m = flow.mean([1.0, 2.0, math.inf], st.ntk)
    assert m.shape == (3, 4)
    assert np.array_equal(flow.mean(2.0, st.ntk), m[1])
    cov = flow.covariance([1.0, math.inf], st.ntk, st.nngp, ss.nngp)
    assert cov.shape == (2, 4, 4) and np.allclose(cov, np.swapaxes(cov, 1, 2), atol=1e-15)
    # Only η·t matters.
    double_lr = emergent.GradientFlow(tt.ntk, y[:, 0], tt.nngp, learning_rate=1.0)
    assert np.allclose(double_lr.mean(1.0, st.ntk), m[1], rtol=1e-13)


def test_sample_members_tend_to_mean_and_covariance(problem):
    arch, x, y, z, tt, st, ss = problem
    flow = emergent.GradientFlow(tt.ntk, y, tt.nngp)
    values, prior = flow.sample_members([3.0], st.ntk, st.nngp, ss.nngp, members=4000, seed=7)
    assert values.shape == (4000, 1, 4, 2) and prior.rank > 0
    mean = flow.mean(3.0, st.ntk)
    cov = flow.covariance(3.0, st.ntk, st.nngp, ss.nngp)
    se = np.sqrt(np.diag(cov) / 4000)
    assert np.all(np.abs(values[:, 0].mean(axis=0) - mean) < 5 * se[:, None])
    again, _ = flow.sample_members([3.0], st.ntk, st.nngp, ss.nngp, members=4000, seed=7)
    assert np.array_equal(values, again)


def test_predict_matches_the_flow(problem):
    arch, x, y, z, tt, st, ss = problem
    p = emergent.predict(arch, x, y, z, [1.0, math.inf])
    flow = emergent.GradientFlow(tt.ntk, y, tt.nngp)
    assert np.array_equal(p.mean, flow.mean([1.0, math.inf], st.ntk))
    assert np.array_equal(p.covariance, flow.covariance([1.0, math.inf], st.ntk, st.nngp, ss.nngp))
    assert p.summary.to_dict()["status"] == "Ok"


def test_nngp_posterior_is_gp_regression(problem):
    arch, x, y, z, tt, st, ss = problem
    post = emergent.NngpPosterior(tt.nngp, y)
    assert np.allclose(post.mean(st.nngp), st.nngp @ np.linalg.solve(tt.nngp, y), rtol=1e-9, atol=1e-12)
    cov = ss.nngp - st.nngp @ np.linalg.solve(tt.nngp, st.nngp.T)
    assert np.allclose(post.covariance(st.nngp, ss.nngp), cov, atol=1e-10)


def test_rank_deficient_status_is_a_field(rng):
    x = rng.standard_normal((3, 2))
    x = np.vstack([x, x[:1]])  # a duplicated input
    k = emergent.kernel(MLP, x)
    flow = emergent.GradientFlow(k.ntk, rng.standard_normal(4), k.nngp)
    assert flow.summary.status == emergent.SpectralStatus.RankDeficient
    assert np.all(np.isfinite(flow.train_mean(math.inf)))
    # Θ keeps 3 of 4 directions; K̃ = VᵀKV on them has full rank 3, its factor drops nothing.
    f = flow.covariance_factor
    assert f.size == flow.summary.rank == 3 and f.rank == 3 and not f.dense
    assert 0.0 <= f.remainder <= 4 * f.tolerance
    assert "rank=3/3" in str(f) and f.to_dict()["status"] == "Ok"
    assert emergent.GradientFlow(k.ntk, rng.standard_normal(4)).covariance_factor.size == 0


def test_flow_errors_carry_the_cpp_message(rng):
    k = emergent.kernel(MLP, rng.standard_normal((4, 2)))
    with pytest.raises(ValueError, match="y_train"):
        emergent.GradientFlow(k.ntk, np.ones((3, 1)))
    with pytest.raises(ValueError, match="learning_rate|learning rate"):
        emergent.GradientFlow(k.ntk, np.ones(4), learning_rate=-1.0)
    flow = emergent.GradientFlow(k.ntk, np.ones(4))
    with pytest.raises(ValueError):
        flow.mean(-1.0, k.ntk)
    with pytest.raises(ValueError):
        flow.covariance(1.0, k.ntk, k.nngp, k.nngp)   # no K(X, X) was given


def test_train_ensemble_deterministic_at_any_thread_count(rng):
    x = rng.standard_normal((5, 3))
    y = rng.standard_normal((5, 1))
    z = rng.standard_normal((2, 3))
    a = emergent.train_ensemble("dense(32) relu dense(1)", x, y, z, members=3, steps=20, learning_rate=0.5,
                                seed=3, checkpoints=[0, 10, 20], threads=1)
    b = emergent.train_ensemble("dense(32) relu dense(1)", x, y, z, members=3, steps=20, learning_rate=0.5,
                                seed=3, checkpoints=[0, 10, 20], threads=2)
    assert a.predictions.shape == (3, 3, 2, 1) and a.train_loss.shape == (3, 3)
    assert np.array_equal(a.predictions, b.predictions)
    assert np.all(a.train_loss[:, 2] < a.train_loss[:, 0])   # gradient descent lowers the loss
    with pytest.raises(ValueError, match="loss"):
        emergent.train_ensemble("dense(32) relu dense(1)", x, y, z, members=1, steps=1, loss="hinge")

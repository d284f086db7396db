"""emergent.kernel: shapes, conventions, conversions of array inputs, errors."""
import math

import numpy as np
import pytest

import emergent

MLP = "dense(512, b=0.1) relu dense(1)"
CNN = "conv(16, 3x3, padding=circular) relu flatten dense(1)"
PIXELS = "conv(8, 3x3, padding=circular) relu conv(1, 3x3, padding=circular)"


def test_relu_mlp_matches_arccos_formula(rng):
    # One hidden layer, W = 1, B = 0 on the first layer: K1 = x·x'/d, then the arc-cosine kernel
    # (Cho & Saul 2009) and Θ = K2 + E[φ'φ']·K1 (Jacot et al. 2018), an independent implementation.
    x = rng.standard_normal((5, 3))
    k = emergent.kernel("dense(64) relu dense(1)", x)
    k1 = x @ x.T / 3
    n = np.sqrt(np.diag(k1))
    c = np.clip(k1 / np.outer(n, n), -1, 1)
    np.fill_diagonal(c, 1.0)
    th = np.arccos(c)
    np.fill_diagonal(th, 0.0)   # arccos(1 − ε) would lose half the digits on the diagonal
    k2 = np.outer(n, n) / (2 * math.pi) * (np.sin(th) + (math.pi - th) * c)
    dot = (math.pi - th) / (2 * math.pi)
    assert np.allclose(k.nngp, k2, rtol=1e-13, atol=1e-15)
    assert np.allclose(k.ntk, k2 + dot * k1, rtol=1e-12, atol=1e-14)


def test_get_and_shapes(rng):
    x1, x2 = rng.standard_normal((4, 3)), rng.standard_normal((6, 3))
    both = emergent.kernel(MLP, x1, x2)
    assert both._fields == ("nngp", "ntk")
    assert both.nngp.shape == (4, 6) and both.ntk.shape == (4, 6)
    ntk = emergent.kernel(MLP, x1, x2, get="ntk")
    assert np.array_equal(ntk, both.ntk)
    swapped = emergent.kernel(MLP, x1, x2, get=("ntk", "nngp"))
    assert np.array_equal(swapped[0], both.ntk)
    k, summary = emergent.kernel(MLP, x1, return_summary=True)
    assert summary["symmetric"] and summary["n1"] == 4
    assert np.array_equal(k.nngp, k.nngp.T)


def test_pixel_indexed_kernel_diagonal_gives_flatten(rng):
    # Without readout the kernel keeps pixel indices (N1, N2, H, W, H, W); the flatten readout
    # after the same layers averages the pixel diagonal (docs/conventions.md §2): the two must agree.
    x = rng.standard_normal((3, 4, 5, 2))
    spatial = emergent.kernel("conv(8, 3x3, padding=circular) relu conv(4, 3x3, padding=circular)", x)
    assert spatial.nngp.shape == (3, 3, 4, 5, 4, 5)
    flat = emergent.kernel("conv(8, 3x3, padding=circular) relu conv(4, 3x3, padding=circular) flatten dense(1)", x)
    diag = np.einsum("ijabab->ij", spatial.nngp) / 20
    # flatten then dense(1) with W = 1, B = 0: K = mean over the pixel diagonal
    assert np.allclose(flat.nngp, diag, rtol=1e-13)


def test_float32_int_and_lists_convert_like_the_cli(rng):
    x64 = rng.standard_normal((4, 3))
    x32 = x64.astype(np.float32)
    assert np.array_equal(emergent.kernel(MLP, x32, get="ntk"), emergent.kernel(MLP, x32.astype(np.float64), get="ntk"))
    xi = np.arange(12).reshape(4, 3) - 5
    assert np.array_equal(emergent.kernel(MLP, xi, get="nngp"), emergent.kernel(MLP, xi.astype(float), get="nngp"))
    assert np.array_equal(emergent.kernel(MLP, xi.tolist(), get="nngp"),
                          emergent.kernel(MLP, xi.astype(float), get="nngp"))
    xb = np.array([[True, False, True], [False, False, True]])
    assert emergent.kernel(MLP, xb, get="nngp").shape == (2, 2)


def test_non_contiguous_inputs(rng):
    big = rng.standard_normal((8, 6))
    view = big[::2, ::2]                       # strided in both axes
    fortran = np.asfortranarray(big[:4, :3])
    assert not view.flags.c_contiguous and not fortran.flags.c_contiguous
    assert np.array_equal(emergent.kernel(MLP, view, get="ntk"), emergent.kernel(MLP, view.copy(), get="ntk"))
    assert np.array_equal(emergent.kernel(MLP, fortran, get="ntk"),
                          emergent.kernel(MLP, np.ascontiguousarray(fortran), get="ntk"))
    img = rng.standard_normal((3, 2, 5, 5)).transpose(0, 2, 3, 1)   # NCHW memory, NHWC view
    assert np.array_equal(emergent.kernel(CNN, img, get="nngp"), emergent.kernel(CNN, img.copy(), get="nngp"))


def test_float64_c_order_is_not_copied(rng):
    x = rng.standard_normal((4, 3))
    assert emergent.as_float64(x, "x") is x
    k = emergent.kernel(MLP, x, get="ntk")
    assert k.base is not None            # a view on C++ memory, not a copy made by NumPy
    assert k.dtype == np.float64 and k.flags.writeable


def test_threads_do_not_change_results(rng):
    x = rng.standard_normal((7, 4, 4, 1))
    a = emergent.kernel(CNN, x, threads=1)
    b = emergent.kernel(CNN, x, threads=2)
    assert np.array_equal(a.ntk, b.ntk) and np.array_equal(a.nngp, b.nngp)


def test_memory_cap_strings(rng):
    x = rng.standard_normal((6, 3))
    assert np.array_equal(emergent.kernel(MLP, x, memory_cap="64M", get="ntk"), emergent.kernel(MLP, x, get="ntk"))
    with pytest.raises(emergent.MemoryCapError):   # the 600 × 600 outputs alone need 5.5 MiB
        emergent.kernel(MLP, np.ones((600, 3)), memory_cap="1M")
    with pytest.raises(ValueError, match="memory_cap_bytes: expected 0 .25% of RAM. or at least 1 MiB, got 16"):
        emergent.kernel(MLP, x, memory_cap=16)
    with pytest.raises(ValueError, match="memory_cap"):
        emergent.kernel(MLP, x, memory_cap="lots")


@pytest.mark.parametrize("bad, message", [
    (np.array([[1.0, np.nan, 2.0]]), "x1: element (0, 1) is NaN; only finite values are accepted"),
    (np.array([[1.0, 2.0, -np.inf]]), "x1: element (0, 2) is -Inf; only finite values are accepted"),
    (np.ones((2, 3), dtype=complex), "x1: dtype complex128 is not supported"),
    (np.array([["a", "b", "c"]]), "x1: dtype <U1 is not supported"),
    (np.ones(3), "x1: array of shape (3,) has rank 1; expected (N, d) vectors or (N, H, W, C) images"),
])
def test_bad_arrays_raise_value_error(bad, message):
    with pytest.raises(ValueError) as e:
        emergent.kernel(MLP, bad)
    assert str(e.value).startswith(message)


def test_spec_errors_are_value_errors():
    with pytest.raises(emergent.SpecError) as e:
        emergent.Architecture("dense(512) blorp")
    assert isinstance(e.value, ValueError)
    assert "column 12" in str(e.value) and "'blorp'" in str(e.value)
    with pytest.raises(ValueError, match="get"):
        emergent.kernel(MLP, np.ones((2, 3)), get="cov")


def test_architecture_object():
    a = emergent.Architecture("conv(64, 3x3, padding=circular, w=1.4, b=0.1) relu gap dense(2)")
    assert a.outputs == 2 and a.has_readout and a.expects_images
    assert emergent.Architecture(str(a)) == a
    assert a.layers[0]["padding"] == "circular" and a.layers[0]["w_std"] == 1.4
    assert a.shapes((5, 5, 3))[-1] == (2,)
    assert "Architecture('" in repr(a)


def test_residual_spec_reaches_the_library_unchanged(rng):
    # x + dense(x): the kernels of the shortcut (x·x'/d, Θ = 0) and of the layer (W²x·x'/d + B²,
    # Θ = Σ) add, as Neural Tangents' FanOut/FanInSum (docs/conventions.md §2).
    x1, x2 = rng.standard_normal((4, 3)), rng.standard_normal((2, 3))
    k = emergent.kernel("residual(dense(3, w=1.5, b=0.2))", x1, x2)
    lin = x1 @ x2.T / 3
    assert np.allclose(k.nngp, lin + 2.25 * lin + 0.04, rtol=1e-14, atol=1e-15)
    assert np.allclose(k.ntk, 2.25 * lin + 0.04, rtol=1e-14, atol=1e-15)


def test_new_layer_kinds_are_named():
    a = emergent.Architecture("conv(4, 3x3) relu avgpool(2x2, stride=2) flatten dense(4) residual(relu dense(4)) "
                              "layernorm dense(1)")
    kinds = [layer["kind"] for layer in a.layers]
    assert kinds == ["conv", "activation", "avgpool", "flatten", "dense", "residual_begin", "activation", "dense",
                     "residual_end", "layernorm", "dense"]
    assert a.layers[2]["window"] == (2, 2) and a.layers[2]["stride"] == (2, 2)
    assert a.layers[9]["eps"] == 1e-12

"""The package and the C++ CLI give the same numbers and the same error messages on the same inputs."""
import math

import numpy as np
import pytest

import emergent
from conftest import run_cli

CNN = "conv(8, 3x3, padding=circular, w=1.3, b=0.1) relu gap dense(1)"


def test_kernel_matches_cli(cli, tmp_path, rng):
    x1 = rng.standard_normal((5, 4, 4, 1)).astype(np.float32)   # the CLI widens float32 as we do
    x2 = rng.standard_normal((3, 4, 4, 1))
    np.save(tmp_path / "a.npy", x1)
    np.save(tmp_path / "b.npy", x2)
    code, err = run_cli(cli, "kernel", "--arch", CNN, "--x1", str(tmp_path / "a.npy"), "--x2", str(tmp_path / "b.npy"),
                        "--nngp", str(tmp_path / "k.npy"), "--ntk", str(tmp_path / "t.npy"), "--threads", "2")
    assert code == 0, err
    ours = emergent.kernel(CNN, x1, x2, threads=2)
    assert np.array_equal(np.load(tmp_path / "k.npy"), ours.nngp)
    assert np.array_equal(np.load(tmp_path / "t.npy"), ours.ntk)


def test_predict_matches_cli(cli, tmp_path, rng):
    arch = "dense(512, b=0.1) relu dense(1)"
    x = rng.standard_normal((8, 3))
    y = rng.standard_normal((8, 1))
    z = rng.standard_normal((4, 3))
    for name, a in (("x", x), ("y", y), ("z", z)):
        np.save(tmp_path / f"{name}.npy", a)
    code, err = run_cli(cli, "predict", "--arch", arch, "--train-x", str(tmp_path / "x.npy"), "--train-y",
                        str(tmp_path / "y.npy"), "--test-x", str(tmp_path / "z.npy"), "--times", "0,1.5,inf",
                        "--lr", "0.5", "--mean", str(tmp_path / "m.npy"), "--cov", str(tmp_path / "c.npy"),
                        "--posterior-mean", str(tmp_path / "pm.npy"), "-q")
    assert code == 0, err
    p = emergent.predict(arch, x, y, z, [0.0, 1.5, math.inf], learning_rate=0.5)
    assert np.allclose(np.load(tmp_path / "m.npy"), p.mean, rtol=1e-14, atol=1e-15)
    assert np.allclose(np.load(tmp_path / "c.npy"), p.covariance, rtol=1e-14, atol=1e-15)
    k = emergent.kernel(arch, x)
    kzx = emergent.kernel(arch, z, x, get="nngp")
    assert np.allclose(np.load(tmp_path / "pm.npy"), emergent.NngpPosterior(k.nngp, y).mean(kzx),
                       rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("arch, shape, fill", [
    ("dense(512) blorp", (3, 2), 0.0),                                # bad token
    ("conv(4, 3x3) relu dense(1)", (2, 8, 8, 4), 0.0),                # dense on images
    ("dense(4) relu dense(1)", (2, 3), math.nan),                     # NaN input
    ("conv(4, 9x9, padding=valid) relu flatten dense(1)", (2, 5, 5, 1), 0.0),  # filter larger than input
])
def test_errors_have_the_cli_message(cli, tmp_path, arch, shape, fill):
    x = np.zeros(shape)
    x.flat[1] = fill
    path = tmp_path / "x1"                 # the CLI names the file, we name the argument: both "x1"
    np.save(str(path) + ".npy", x)
    code, err = run_cli(cli, "kernel", "--arch", arch, "--x1", str(path) + ".npy", "--nngp", str(tmp_path / "k.npy"))
    assert code == 2
    prefix = "emergent kernel: error: "
    cli_message = err.strip().splitlines()[-1]
    assert cli_message.startswith(prefix)
    cli_message = cli_message[len(prefix):].replace(str(path) + ".npy", "x1")
    with pytest.raises(ValueError) as e:
        emergent.kernel(arch, x)
    assert str(e.value) == cli_message

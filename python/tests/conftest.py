"""Shared fixtures: the C++ CLI (for agreement tests) and small inputs."""
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def find_cli():
    """The `emergent` executable: $EMERGENT_CLI, else build*/apps/emergent of this checkout, else PATH."""
    env = os.environ.get("EMERGENT_CLI")
    if env:
        return env
    for build in sorted(ROOT.glob("build*")):
        exe = build / "apps" / "emergent"
        if exe.is_file() and os.access(exe, os.X_OK):
            return str(exe)
    return shutil.which("emergent")


@pytest.fixture(scope="session")
def cli():
    exe = find_cli()
    if exe is None:
        pytest.skip("the emergent CLI is not built (set EMERGENT_CLI or build into build/)")
    return exe


def run_cli(cli, *args):
    """(returncode, stderr) of one CLI call."""
    r = subprocess.run([cli, *args], capture_output=True, text=True)
    return r.returncode, r.stderr


@pytest.fixture
def rng():
    return np.random.default_rng(1234)

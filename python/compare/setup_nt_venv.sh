#!/usr/bin/env bash
# A virtual environment with Neural Tangents 0.6.5 (the last release, 2023-12) and a JAX it works
# with, plus the emergent package, for compare_nt.py and bench_nt.py. Usage:
#   python/compare/setup_nt_venv.sh [VENV]      (default /work/venv-nt; needs Debian python3-venv)
# NT's setup.py requires tensorflow and tf2jax for experimental/empirical_tf only; we install NT with
# --no-deps and its real dependencies by hand (jax/jaxlib 0.4.30, the last JAX whose API NT 0.6.5
# runs on unchanged, numpy<2, frozendict, absl-py); nt_shim.py stands in for the TensorFlow module.
set -euo pipefail
VENV=${1:-/work/venv-nt}
HERE=$(cd "$(dirname "$0")" && pwd)
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q "jax==0.4.30" "jaxlib==0.4.30" "numpy<2" "frozendict" "absl-py"
"$VENV/bin/pip" install -q --no-deps "neural-tangents==0.6.5"
"$VENV/bin/pip" install -q "$HERE/../.."   # emergent itself (builds the C++ core)
"$VENV/bin/python" -c "import sys; sys.path.insert(0, '$HERE'); import nt_shim; nt = nt_shim.import_neural_tangents(); import emergent; print('neural_tangents', nt.__version__, 'emergent', emergent.__version__)"

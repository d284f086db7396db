"""Import neural_tangents 0.6.5 without TensorFlow.

`import neural_tangents` imports neural_tangents.experimental, whose empirical_tf module imports
tensorflow, tf2jax and jax.experimental.jax2tf at import time (for empirical NTKs of TensorFlow
models, which nothing here uses). Its two names are replaced by stand-ins that raise if called;
stax, predict and every kernel function are the real, unmodified Neural Tangents code.
"""
import sys
import types


def import_neural_tangents():
    name = "neural_tangents.experimental.empirical_tf.empirical"
    if name not in sys.modules:
        stand_in = types.ModuleType(name)

        def _unavailable(*args, **kwargs):
            raise RuntimeError("neural_tangents.experimental.empirical_tf needs TensorFlow, "
                               "which python/compare does not install")

        stand_in.empirical_ntk_fn_tf = _unavailable
        stand_in.get_apply_fn_and_params = _unavailable
        sys.modules[name] = stand_in
    import jax
    jax.config.update("jax_enable_x64", True)
    import neural_tangents as nt
    return nt

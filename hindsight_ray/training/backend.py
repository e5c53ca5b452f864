"""The Keras backend a sweep trains on (``model.backend``): TensorFlow, JAX or PyTorch, and all that differs
between them in one place: the environment a process needs before Keras is imported, thread pools, GPU
memory, deterministic ops and mixed precision.

Keras 3 runs the same model, the same ``.keras`` file and the same ``train_on_batch`` on the three; what is
left here is what each framework wants set around them. Nothing here imports a framework the sweep did
not choose (Keras' serialisation imports TensorFlow whenever it is installed; that is switched off).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT = "tensorflow"
_IMPORTING = threading.Lock()
# the module each backend imports
PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


class BackendError(RuntimeError):
    """This process runs Keras on another backend already (Keras picks one at its import, for good)."""


def worker_env(backend: str) -> dict[str, str]:
    """Environment variables a process needs before it imports Keras on ``backend`` (Ray workers get them
    through the job's runtime environment).

    TensorFlow: quiet, oneDNN off (the driver's evaluation then computes the trials' numbers). JAX: no
    preallocation (it takes 75% of a GPU at its first operation otherwise, and trials packed on one GPU
    with fractional ``gpus_per_trial`` need to share it). PyTorch: expandable segments, so that its caching
    allocator gives back what one trial freed to the next trial packed on the same GPU.
    """
    env = {"KERAS_BACKEND": backend, "PYTHONWARNINGS": "ignore"}
    if backend == "tensorflow":
        env.update(TF_CPP_MIN_LOG_LEVEL="3", TF_ENABLE_ONEDNN_OPTS="0")
    elif backend == "jax":
        env.update(XLA_PYTHON_CLIENT_PREALLOCATE="false")
    elif backend == "torch":
        env.update(PYTORCH_CUDA_ALLOC_CONF="expandable_segments:True")
    return env


def use_trial_numerics() -> None:
    """This process's TensorFlow computes as the trials' does (oneDNN off) and is quiet: set before TensorFlow
    is imported, unless the user chose otherwise."""
    for name, value in worker_env(DEFAULT).items():
        if name.startswith(("TF_", "KERAS_")):
            os.environ.setdefault(name, value)


def installed(backend: str) -> bool:
    """Whether ``backend``'s framework is installed here (its distribution, without importing it)."""
    try:
        importlib.metadata.distribution(PACKAGES[backend])
    except importlib.metadata.PackageNotFoundError:
        # on the path without metadata
        return importlib.util.find_spec(PACKAGES[backend]) is not None
    except ValueError:
        return False
    return True


def running() -> str | None:
    """The backend Keras runs on in this process, or None when Keras is not imported yet."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    which = getattr(getattr(keras, "backend", None), "backend", None)
    if not callable(which):
        # Keras is being imported (another thread): it takes the backend the env names
        return os.environ.get("KERAS_BACKEND", DEFAULT)
    return str(which())


# What TensorFlow and Keras import for features a trial never uses, where installed: TFLite's JAX converter
# (``jax``, about 0.5 s), Keras' image gallery plot (``matplotlib.pyplot``, about 0.3 s). Both catch the
# ImportError; a trial's worker imports its framework with them held off (about a quarter of the import).
TRIAL_UNUSED: dict[str, tuple[str, ...]] = {"tensorflow": ("jax", "matplotlib")}
# The command's own process (``hindsight-ray ...``, set by it; never a user's notebook or program, which may
# want either) holds off JAX alone: its report draws with matplotlib, maybe while Keras is imported.
OWN_PROCESS = False


def use(backend: str, trial: bool = False) -> Any:
    """Keras on ``backend`` in this process (its environment set first, unless the user set it); the
    ``keras`` module. :class:`BackendError` when Keras already runs on another backend here. ``trial``: a
    trial's own worker process, which imports none of :data:`TRIAL_UNUSED` along with the framework (the
    command's process none but JAX, :data:`OWN_PROCESS`)."""
    current = running()
    if current is not None and current != backend:
        raise BackendError(
            f"this process runs Keras on {current} already and cannot switch to {backend} "
            "(Keras picks its backend once, at import)"
        )
    for name, value in worker_env(backend).items():
        if name == "KERAS_BACKEND":
            os.environ[name] = value
        else:
            os.environ.setdefault(name, value)
    with _IMPORTING:
        # one thread at a time moves descriptor 2 (the background warm-up, the driver)
        quiet = backend == "tensorflow" and "tensorflow" not in sys.modules
        held: tuple[str, ...] = TRIAL_UNUSED.get(backend, ()) if "keras" not in sys.modules else ()
        if not trial:
            held = tuple(name for name in held if OWN_PROCESS and name == "jax")
        with (
            (
                _native_stderr_off()
                if quiet and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
                else contextlib.nullcontext()
            ),
            _held_off(held),
        ):
            import keras

    if backend != "tensorflow":
        _no_tensorflow_in_serialisation()
    return keras


@contextlib.contextmanager
def _held_off(names: tuple[str, ...]) -> Iterator[None]:
    """``import name`` raises ImportError inside the block for each of ``names`` not imported yet; after
    it, each imports as usual again."""
    held = [name for name in names if name not in sys.modules]
    for name in held:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in held:
            if sys.modules.get(name, "") is None:
                del sys.modules[name]


@contextlib.contextmanager
def _native_stderr_off() -> Iterator[None]:
    """File descriptor 2 to /dev/null while TensorFlow is imported: what its C++ core writes there before
    absl's logging starts ("Could not find cuda drivers on your machine", "All log messages before
    absl::InitializeLog()") ignores ``TF_CPP_MIN_LOG_LEVEL``, and a notebook shows descriptor 2 in the cell.
    Python's ``sys.stderr`` in a notebook is not descriptor 2; in a terminal, a line written during the
    import (a second or two) is lost, which is why this is only done at the quiet log level."""
    try:
        kept = os.dup(2)
    except OSError:
        # no descriptor 2 at all
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(kept, 2)
        os.close(kept)
        os.close(devnull)


def _no_tensorflow_in_serialisation() -> None:
    """Keras' serialisation asks ``tf.available`` (which imports TensorFlow, 2-4 s and 0.5 GB, whenever it is
    installed) to recognise TensorFlow shapes; on another backend there are none to recognise."""
    try:
        from keras.src.utils import module_utils
    except ImportError:
        # another Keras layout: TensorFlow may be imported, nothing else changes
        return
    lazy = getattr(module_utils, "tensorflow", None)
    if (
        lazy is not None
        and getattr(lazy, "module", None) is None
        and "tensorflow" not in sys.modules
    ):
        lazy._available = False


def configure(
    backend: str,
    cpus: float,
    gpus: int = 0,
    mixed_precision: bool = False,
    deterministic: bool = True,
    trial: bool = False,
) -> Any:
    """Keras on ``backend`` for one trial (or the driver's evaluation): thread pools sized to its CPUs, GPU
    memory shared, deterministic ops unless not asked for, mixed precision on GPUs when asked (``trial``: in
    the trial's own worker, see :func:`use`); the ``keras`` module. Ray sets ``CUDA_VISIBLE_DEVICES`` to the
    trial's own GPU(s), so each framework sees only those."""
    threads = max(1, int(cpus))
    if backend == "jax" and deterministic and "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_gpu_deterministic_ops" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_gpu_deterministic_ops=true".strip()
    if backend == "torch" and deterministic:
        # cuBLAS' deterministic mode
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    keras = use(backend, trial)
    if backend == "tensorflow":
        _configure_tensorflow(threads, deterministic)
    elif backend == "torch":
        _configure_torch(threads, deterministic)
    if mixed_precision and gpus > 0:
        keras.mixed_precision.set_global_policy("mixed_float16")
    return keras


def _configure_tensorflow(threads: int, deterministic: bool) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        # TensorFlow already initialised in this process; the pools stay as they were
        pass
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            # trials packed on one GPU share it
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            # already initialised: growth was set by the first trial in this process
            pass
    if deterministic:
        # process-wide; a reused worker runs the same kind of trial (CPU or GPU) every time
        tf.config.experimental.enable_op_determinism()


def _configure_torch(threads: int, deterministic: bool) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:
        # set once per process, before any parallel work: a reused worker keeps its first
        pass
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def cudnn_lstm(model: Any) -> bool:
    """Whether every LSTM of ``model`` meets the conditions under which Keras runs it on cuDNN's fused
    kernel on this backend (tanh / sigmoid, not unrolled, with bias, no mask, a GPU there): False on CPUs."""
    import keras
    from keras.src import backend as keras_backend

    lstms = [layer for layer in _layers(model) if isinstance(layer, keras.layers.LSTM)]
    return bool(lstms) and all(
        keras_backend.cudnn_ok(
            layer.cell.activation,
            layer.cell.recurrent_activation,
            layer.unroll,
            layer.cell.use_bias,
        )
        and layer.use_cudnn in ("auto", True)
        and not layer.cell.recurrent_dropout
        for layer in lstms
    )


def _layers(model: Any) -> list[Any]:
    """Every layer of ``model``, the ones inside wrappers (``Bidirectional``) too."""
    found = []
    for layer in getattr(model, "layers", []):
        found.append(layer)
        for inner in ("forward_layer", "backward_layer", "layer"):
            if getattr(layer, inner, None) is not None:
                found.append(getattr(layer, inner))
    return found


def device_name(backend: str) -> str:
    """The first GPU as ``backend`` sees it, or ``cpu``."""
    try:
        if backend == "torch":
            import torch

            return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        if backend == "jax":
            import jax

            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            return str(gpus[0].device_kind) if gpus else "cpu"
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return (
            str(tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU"))
            if gpus
            else "cpu"
        )
    except Exception:  # noqa: BLE001 - a name for the record
        return "unknown"


def gpu_memory_bytes(backend: str) -> int | None:
    """The most GPU memory this process's framework has held (None without a GPU, or where not known)."""
    try:
        if backend == "torch":
            import torch

            return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None
        if backend == "jax":
            import jax

            devices = [d for d in jax.devices() if d.platform == "gpu"]
            stats = devices[0].memory_stats() if devices else None
            return (
                int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None
            )
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            return None
        return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
    except Exception:  # noqa: BLE001 - a figure for the record, never a reason for a trial to fail
        return None

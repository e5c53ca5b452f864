"""Build and compile the Keras LSTM for one trial's hyperparameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hindsight_ray.config.schema import SweepConfig


@dataclass(frozen=True)
class ModelSpec:
    """What the model needs to know about the data and the run, apart from the trial's hyperparameters."""

    # regression | classification
    task: str
    # (lags, features) for series, (max_length,) for text
    input_shape: tuple[int, ...]
    output_dim: int
    # text only: the Embedding's vocabulary size
    num_words: int | None = None
    optimizer: str = "rmsprop"
    bidirectional: bool = False
    dropout: float = 0.0
    # regression only
    loss: str = "mse"


_OPTIMIZERS = {"rmsprop": "RMSprop", "adam": "Adam", "sgd": "SGD", "adagrad": "Adagrad"}


Builder = Callable[[ModelSpec, int, int, float, int], Any]


def resolve_builder(path: str) -> Builder:
    """``package.module:function`` -> the function (imported from the working directory too). Its module is
    then pickled by value into the trials, so workers need not be able to import it themselves."""
    import importlib
    import os
    import sys

    from hindsight_ray.core.errors import UserError

    module_name, _, name = path.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"model.builder {path}: cannot import {module_name} ({exc})") from None
    builder = getattr(module, name, None)
    if not callable(builder):
        raise UserError(f"model.builder {path}: {module_name} has no function {name}")
    if module_name.split(".")[0] not in ("hindsight_ray", "keras", "tensorflow"):
        from ray import cloudpickle

        cloudpickle.register_pickle_by_value(module)
    return builder


def training_loss(spec: ModelSpec) -> str:
    """The loss a model of this spec trains on: cross-entropy for classes (binary or sparse categorical)."""
    if spec.task != "classification":
        return spec.loss
    return "sparse_categorical_crossentropy" if spec.output_dim > 1 else "binary_crossentropy"


def build_model(
    spec: ModelSpec, layers: int, units: int, learning_rate: float, seed: int = 0
) -> Any:
    """A compiled stacked LSTM: [Embedding(num_words, units)] -> ``layers`` x LSTM(units) -> Dense head.

    Every LSTM keeps the arguments that make it eligible for the fused cuDNN kernel on a GPU
    (tanh / sigmoid activations, no recurrent dropout, not unrolled, with bias).
    """
    import keras

    if layers < 1 or units < 1:
        raise ValueError(f"layers and units must be positive, got layers={layers} units={units}")
    if spec.optimizer not in _OPTIMIZERS:
        raise ValueError(f"unknown optimizer {spec.optimizer!r}")
    initializer_seed = iter(range(seed * 1000, seed * 1000 + 1000))
    if keras.backend.backend() != "tensorflow":
        # JAX's seeds are 32-bit (TensorFlow's 64: its models stay as they were)
        initializer_seed = iter(s % 2**32 for s in initializer_seed)
    inputs = keras.Input(shape=spec.input_shape, dtype="int32" if spec.num_words else "float32")
    x = inputs
    if spec.num_words:
        x = keras.layers.Embedding(
            spec.num_words,
            units,
            embeddings_initializer=keras.initializers.RandomUniform(
                -0.05, 0.05, seed=next(initializer_seed)
            ),
        )(x)
    for depth in range(layers):
        lstm = keras.layers.LSTM(
            units,
            return_sequences=depth < layers - 1,
            activation="tanh",
            recurrent_activation="sigmoid",
            recurrent_dropout=0.0,
            unroll=False,
            use_bias=True,
            kernel_initializer=keras.initializers.GlorotUniform(seed=next(initializer_seed)),
            recurrent_initializer=keras.initializers.Orthogonal(seed=next(initializer_seed)),
        )
        if spec.bidirectional:
            lstm = keras.layers.Bidirectional(lstm)
        x = lstm(x)
        if spec.dropout > 0:
            x = keras.layers.Dropout(spec.dropout, seed=next(initializer_seed))(x)
    classification = spec.task == "classification"
    multiclass = classification and spec.output_dim > 1
    outputs = keras.layers.Dense(
        spec.output_dim,
        activation=("softmax" if multiclass else "sigmoid") if classification else None,
        # the head stays float32 under mixed precision, for a stable loss
        dtype="float32",
        kernel_initializer=keras.initializers.GlorotUniform(seed=next(initializer_seed)),
    )(x)
    model = keras.Model(inputs, outputs, name=f"lstm_{layers}x{units}")
    optimizer = getattr(keras.optimizers, _OPTIMIZERS[spec.optimizer])(learning_rate=learning_rate)
    model.compile(
        optimizer=optimizer,
        loss=training_loss(spec),
        metrics=["accuracy"] if classification else None,
    )
    return model


def estimate_trial_bytes(
    *,
    sequence_length: int,
    features: int,
    num_words: int | None,
    layers: int,
    units: int,
    batch_size: int,
    bidirectional: bool = False,
    optimizer: str = "rmsprop",
) -> int:
    """A rough upper estimate of the memory one trial needs to train: the weights with their gradients
    and optimizer slots, one batch of inputs, and the activations backpropagation keeps per time step.
    Good to an order of magnitude; meant to refuse models that cannot fit, not to pack nodes."""
    directions = 2 if bidirectional else 1
    width = units * directions
    params = (num_words or 0) * units
    inputs = units if num_words else features
    for _ in range(layers):
        params += directions * 4 * units * (inputs + units + 1)
        inputs = width
    params += width + 1
    # weights, grads, slots
    copies = {"adam": 4, "rmsprop": 3, "adagrad": 3, "sgd": 2}.get(optimizer, 4)
    # per time step and layer: the four gates, cell and hidden state kept for backpropagation
    activations = (
        batch_size * sequence_length * (layers * width * 6 + (units if num_words else features))
    )
    batch = batch_size * sequence_length * max(1, features)
    return 4 * (params * copies + activations + batch)


def largest_trial_bytes(config: SweepConfig) -> int:
    """:func:`estimate_trial_bytes` for the largest model the sweep's search space holds."""
    data, stage1 = config.data, config.search.stage1
    text = data.kind == "text"
    return estimate_trial_bytes(
        sequence_length=data.max_length if text else data.lags,
        features=1 if text else len(data.features or data.target or [None]),
        num_words=data.num_words if text else None,
        layers=max(stage1.layers),
        units=max(stage1.units),
        batch_size=config.model.batch_size,
        bidirectional=config.model.bidirectional,
        optimizer=config.model.optimizer,
    )


class TracedModels:
    """Compiled models a worker keeps between trials, by architecture (a Ray worker runs many trials).

    Tracing a Keras LSTM's train and predict functions costs a second or more, ten to a hundred of its small
    epochs, and stage 2 trains one architecture again and again. A trial whose architecture this worker
    has traced gets that model back with a fresh model's whole state copied in (weights, seed-generator
    states, optimizer slots, step count, learning rate), so it trains exactly as the fresh model would.
    ``size`` architectures are kept: a worker holds at most ``size - 1`` models besides its trial's (GPU
    memory too).
    """

    def __init__(self, size: int = 2) -> None:
        from collections import OrderedDict

        self.size = size
        self._models: OrderedDict[Any, Any] = OrderedDict()
        self.reused = 0

    def build(self, key: Any, seed: int, make: Callable[[], Any]) -> Any:
        """``make()``'s model, seeded by ``seed``: the traced model of ``key`` in its state when there is one.

        A new architecture starts from a clean Keras session and every seed set (``set_random_seed``); a
        traced one keeps TensorFlow's seed and kernel caches, since changing either costs the trace's time
        again on the next step, and seeds only what a build draws from (Python's and NumPy's generators;
        every initializer has its own seed)."""
        import random

        import keras
        import numpy as np

        cached = self._models.get(key)
        if cached is None:
            # a clean Keras state; Python's gc runs on its own
            keras.backend.clear_session(free_memory=False)
            keras.utils.set_random_seed(seed)
            fresh = make()
            self._models[key] = fresh
            while len(self._models) > self.size:
                self._models.popitem(last=False)
            return fresh
        random.seed(seed)
        np.random.seed(seed)
        fresh = make()
        if not _copy_state(fresh, cached):
            # a builder that changed its mind: keep the new one
            self._models[key] = fresh
            return fresh
        self._models.move_to_end(key)
        self.reused += 1
        return cached


def _state_variables(model: Any) -> list[Any]:
    """Everything that makes a compiled model train the way it does: its variables (weights and seed
    generators) and its optimizer's (step, learning rate, slots), built if they are not yet."""
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    return [*model.variables, *optimizer.variables]


def _copy_state(source: Any, target: Any) -> bool:
    """Copy ``source``'s whole state into ``target``; False (nothing copied) when their structures differ."""
    if type(source.optimizer) is not type(target.optimizer):
        return False
    sources, targets = _state_variables(source), _state_variables(target)
    if len(sources) != len(targets) or any(
        tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype
        for a, b in zip(sources, targets, strict=True)
    ):
        return False
    for a, b in zip(sources, targets, strict=True):
        b.assign(a.value)
    target.reset_metrics()
    return True

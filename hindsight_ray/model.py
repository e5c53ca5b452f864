"""Build and compile the Keras LSTM for one trial's hyperparameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    """What the model needs to know about the data and the run, apart from the trial's hyperparameters."""

    task: str  # regression | classification
    input_shape: tuple[int, ...]  # (lags, features) for series, (max_length,) for text
    output_dim: int
    num_words: int | None = None  # text only: the Embedding's vocabulary size
    optimizer: str = "rmsprop"
    bidirectional: bool = False
    dropout: float = 0.0
    loss: str = "mse"  # regression only


_OPTIMIZERS = {"rmsprop": "RMSprop", "adam": "Adam", "sgd": "SGD", "adagrad": "Adagrad"}


def build_model(spec: ModelSpec, layers: int, units: int, learning_rate: float, seed: int = 0) -> Any:
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
    inputs = keras.Input(shape=spec.input_shape, dtype="int32" if spec.num_words else "float32")
    x = inputs
    if spec.num_words:
        x = keras.layers.Embedding(spec.num_words, units,
                                   embeddings_initializer=keras.initializers.RandomUniform(
                                       -0.05, 0.05, seed=next(initializer_seed)))(x)
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
    outputs = keras.layers.Dense(
        spec.output_dim,
        activation="sigmoid" if classification else None,
        dtype="float32",  # the head stays float32 under mixed precision, for a stable loss
        kernel_initializer=keras.initializers.GlorotUniform(seed=next(initializer_seed)),
    )(x)
    model = keras.Model(inputs, outputs, name=f"lstm_{layers}x{units}")
    optimizer = getattr(keras.optimizers, _OPTIMIZERS[spec.optimizer])(learning_rate=learning_rate)
    model.compile(
        optimizer=optimizer,
        loss="binary_crossentropy" if classification else spec.loss,
        metrics=["accuracy"] if classification else None,
    )
    return model

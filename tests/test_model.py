"""The Keras model: shapes, parameters, and cuDNN eligibility of every LSTM layer."""

from __future__ import annotations

import numpy as np
import pytest

from hindsight_ray.model import ModelSpec, build_model

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.slow  # builds Keras models: TensorFlow


def lstm_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]


def test_series_model_shapes_and_depth():
    model = build_model(ModelSpec("regression", (12, 3), output_dim=2), layers=3, units=8, learning_rate=0.01)
    assert model.output_shape == (None, 2)
    layers = lstm_layers(model)
    assert len(layers) == 3 and all(layer.units == 8 for layer in layers)
    assert [layer.return_sequences for layer in layers] == [True, True, False]
    assert model.loss == "mse"
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    assert model.predict(np.zeros((4, 12, 3), "float32"), verbose=0).shape == (4, 2)


def test_text_model_has_embedding_of_width_units():
    spec = ModelSpec("classification", (20,), output_dim=1, num_words=50, optimizer="adam")
    model = build_model(spec, layers=1, units=16, learning_rate=0.001)
    embedding = model.layers[1]
    assert isinstance(embedding, keras.layers.Embedding)
    assert (embedding.input_dim, embedding.output_dim) == (50, 16)
    assert model.output_shape == (None, 1)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    # Embedding(50*16) + LSTM(4*16*(16+16+1)) + Dense(16+1)
    assert model.count_params() == 50 * 16 + 4 * 16 * 33 + 17


def test_every_lstm_is_eligible_for_cudnn():
    model = build_model(ModelSpec("regression", (6, 1), 1), layers=2, units=4, learning_rate=0.01)
    for layer in lstm_layers(model):
        config = layer.get_config()
        assert config["activation"] == "tanh" and config["recurrent_activation"] == "sigmoid"
        assert config["recurrent_dropout"] == 0 and config["unroll"] is False and config["use_bias"] is True


def test_same_seed_same_weights():
    first = build_model(ModelSpec("regression", (6, 1), 1), 1, 4, 0.01, seed=3)
    second = build_model(ModelSpec("regression", (6, 1), 1), 1, 4, 0.01, seed=3)
    other = build_model(ModelSpec("regression", (6, 1), 1), 1, 4, 0.01, seed=4)
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.get_weights()[0], other.get_weights()[0])


def test_bad_hyperparameters_are_rejected():
    with pytest.raises(ValueError):
        build_model(ModelSpec("regression", (6, 1), 1), 0, 4, 0.01)

"""The Keras model: shapes, parameters, and cuDNN eligibility of every LSTM layer."""

from __future__ import annotations

import numpy as np
import pytest

from hindsight_ray.training.model import ModelSpec, build_model

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


def _curve(model, x, y, epochs=4):
    from hindsight_ray.training.trainable import predict, train_epoch

    curve = []
    for epoch in range(epochs):
        losses = train_epoch(model, x, y, 16, np.random.default_rng(epoch).permutation(len(x)))
        curve.append((losses, float(np.mean((predict(model, x) - y) ** 2))))
    return curve


@pytest.mark.parametrize("spec", [
    ModelSpec("regression", (6, 2), 1, optimizer="adam", dropout=0.2),
    ModelSpec("classification", (8,), 1, num_words=30, optimizer="adagrad"),  # Adagrad's slots start at 0.1
])
def test_a_traced_model_trains_exactly_as_a_fresh_one(spec):
    """A worker's traced model, given a new trial's seed and learning rate, trains to the same numbers as a
    model built fresh for that trial, and it is the same object (no second trace)."""
    from hindsight_ray.training.model import TracedModels

    rng = np.random.default_rng(0)
    if spec.num_words:
        x, y = rng.integers(0, 30, size=(40, 8)).astype("int32"), rng.integers(0, 2, size=(40, 1)).astype("float32")
    else:
        x, y = rng.normal(size=(40, 6, 2)).astype("float32"), rng.normal(size=(40, 1)).astype("float32")
    worker = TracedModels()
    first = worker.build("arch", 11, lambda: build_model(spec, 2, 8, 0.02, seed=11))
    _curve(first, x, y)  # trained: weights, slots, step count and learning rate all differ from a new trial's
    again = worker.build("arch", 12, lambda: build_model(spec, 2, 8, 0.005, seed=12))
    assert again is first and worker.reused == 1
    assert float(again.optimizer.learning_rate) == pytest.approx(0.005) and int(again.optimizer.iterations) == 0
    reused = _curve(again, x, y)
    fresh = TracedModels().build("arch", 12, lambda: build_model(spec, 2, 8, 0.005, seed=12))
    assert reused == _curve(fresh, x, y)


def test_a_new_architecture_is_a_new_model_and_the_oldest_is_let_go():
    from hindsight_ray.training.model import TracedModels

    worker = TracedModels(size=2)
    spec = ModelSpec("regression", (6, 1), 1)
    models = [worker.build(units, 1, lambda units=units: build_model(spec, 1, units, 0.01, seed=1)) for units in (2, 3, 4)]
    assert len({id(m) for m in models}) == 3 and worker.reused == 0
    assert worker.build(4, 2, lambda: build_model(spec, 1, 4, 0.01, seed=2)) is models[2]
    assert worker.build(2, 2, lambda: build_model(spec, 1, 2, 0.01, seed=2)) is not models[0]  # evicted


def test_an_averaged_model_saves_loads_in_safe_mode_and_predicts_the_mean(tmp_path):
    from hindsight_ray.running.finalize import averaged_model

    members = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        members.append(keras.Sequential([keras.Input((5, 1)), keras.layers.LSTM(3), keras.layers.Dense(1)],
                                        name="trial_model"))  # as two checkpoints load: one name
    x = np.random.default_rng(0).normal(size=(7, 5, 1)).astype("float32")
    model = averaged_model(members, (5, 1))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    expected = (members[0].predict(x, verbose=0) + members[1].predict(x, verbose=0)) / 2
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-5)

"""Text preparation: labels, stratified split, vocabulary from train only, front padding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hindsight_ray.config.schema import DataConfig
from hindsight_ray.core.errors import UserError
from hindsight_ray.data import prepare
from hindsight_ray.data.text import (
    class_labels,
    clean_text,
    stratified_split,
    tokens,
    vectorize,
    vocabulary_of,
)


@pytest.mark.parametrize(
    ("values", "expected"),
    [([0, 1, 1], [0, 1, 1]), ([-1, 1], [0, 1]), (["pos", "neg"], [1, 0]), (["Positive", "negative"], [1, 0]),
     ([True, False], [1, 0]), ([1.0, 0.0], [1, 0])],
)
def test_binary_labels(values, expected):
    assert class_labels(pd.Series(values), "x")[0].tolist() == expected


@pytest.mark.parametrize(("values", "message"), [([1, 1], "two classes"), ([None, 1, 0], "1 rows have no label"),
                                                 ([str(i) for i in range(1001)], "1001 distinct labels")])
def test_unusable_labels(values, message):
    with pytest.raises(UserError, match=message):
        class_labels(pd.Series(values), "x")


def test_labels_beyond_two_are_classes_with_their_names():
    ids, names = class_labels(pd.Series(["sports", "politics", "tech", "sports"]), "x")
    assert names == ["politics", "sports", "tech"] and ids.tolist() == [1, 0, 2, 1]
    ids, names = class_labels(pd.Series(["Pos", "neg", "pos"]), "x")
    assert names[1] in ("Pos", "pos") and names[0] == "neg" and ids.tolist() == [1, 0, 1]
    ids, names = class_labels(pd.Series(["spam", "ham"]), "x")
    assert names == ["ham", "spam"] and ids.tolist() == [1, 0]


def test_stratified_split_keeps_class_shares():
    labels = np.array([0] * 80 + [1] * 20)
    split = stratified_split(labels, 0.2, 0.2, seed=0)
    for part in range(3):
        chosen = labels[split == part]
        assert chosen.mean() == pytest.approx(0.2)
    assert (stratified_split(labels, 0.2, 0.2, seed=0) == split).all()


def test_html_breaks_are_stripped():
    assert clean_text(pd.Series(["good<br />film<br/>yes"])) == ["good film yes"]


def test_vocabulary_comes_from_train_only_and_padding_is_at_the_front():
    vocabulary, train, (test,) = vectorize(["good good film", "bad film"], [["unseen good"]], num_words=100,
                                           max_length=4)
    assert vocabulary[:3] == ["", "[UNK]", "good"] and len(vocabulary) == 5  # padding, OOV, good, film, bad
    assert train.shape == (2, 4) and train.dtype == np.int32
    assert train[1, :2].tolist() == [0, 0] and train[1, 2:].min() > 1  # front padded
    assert test[0].tolist()[:2] == [0, 0] and test[0, 2] == 1  # "unseen" is out of vocabulary


def test_words_are_lowered_stripped_and_split_as_keras_does():
    assert tokens("Don't STOP, É!\tnow\xa0here\n") == ["dont", "stop", "É", "now\xa0here"]  # ASCII rules only
    assert vocabulary_of(["b a", "a b", "c"], num_words=3) == ["", "[UNK]", "b"]  # a tie goes to the later word


@pytest.mark.slow  # the reference: Keras' TextVectorization, which needs TensorFlow
def test_the_vocabulary_and_ids_equal_keras_text_vectorization():
    import random

    import keras
    import tensorflow as tf

    rng = random.Random(0)
    alphabet = [*"abcABCxyzÉéß ü!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'", "  ", "\t", "\n", "\xa0", "\u2003", "\r", "\x0b"]
    words = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(3000)]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 30))) for _ in range(400)]
    others = [" ".join(rng.choice(words) for _ in range(40)) for _ in range(50)]
    vocabulary, train, (other,) = vectorize(texts, [others], num_words=120, max_length=17)
    layer = keras.layers.TextVectorization(max_tokens=120, output_mode="int", ragged=True)
    layer.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(4096))
    assert [str(word) for word in layer.get_vocabulary()] == vocabulary
    for batch, ids in ((texts, train), (others, other)):
        ragged = layer(tf.constant(batch, dtype=tf.string))
        rows = np.split(ragged.flat_values.numpy(), ragged.row_splits.numpy()[1:-1])
        assert (keras.utils.pad_sequences(rows, maxlen=17, padding="pre", truncating="pre") == ids).all()


def test_long_texts_keep_their_end():
    _, train, (tail,) = vectorize(["a b c d e f"], [["e f"]], num_words=100, max_length=2)
    assert train.shape == (1, 2) and train.tolist() == tail.tolist()  # truncated at the front, as the notebook


def test_text_csv_prepares(tmp_path):
    rng = np.random.default_rng(0)
    words = ["great", "awful", "plot", "actor", "boring", "superb"]
    rows = [{"text": " ".join(rng.choice(words, 8)) + "<br />", "label": "pos" if i % 2 else "neg"}
            for i in range(50)]
    path = tmp_path / "reviews.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    prepared = prepare(DataConfig(kind="text", source=str(path), max_length=10), seed=1)
    assert prepared.task == "classification" and prepared.num_words <= 8
    assert prepared.x_train.shape[1] == 10 and len(prepared.x_train) == 30
    assert prepared.baselines["majority_class"]["accuracy"] == pytest.approx(0.5)

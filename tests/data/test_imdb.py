"""The IMDB sources on data the tests make: the aclImdb folders and a Keras-style imdb.npz."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from hindsight_ray.config.schema import DataConfig
from hindsight_ray.core.errors import UserError
from hindsight_ray.data import prepare
from hindsight_ray.data.imdb import read_imdb_npz


def write_acl(root, per_class: int = 10) -> None:
    for split in ("train", "test"):
        for label, word in (("pos", "wonderful"), ("neg", "dreadful")):
            folder = root / "aclImdb" / split / label
            folder.mkdir(parents=True)
            for i in range(per_class):
                (folder / f"{i}_7.txt").write_text(f"A {word} film<br />number {i} {split}only{i}")
    (root / "aclImdb" / "train" / "unsup").mkdir()
    (root / "aclImdb" / "train" / "unsup" / "0_0.txt").write_text("ignored unsup review")


@pytest.mark.slow  # Keras' TextVectorization: TensorFlow
def test_aclimdb_keeps_its_test_split_and_carves_validation(tmp_path):
    write_acl(tmp_path)
    prepared = prepare(DataConfig(kind="text", source=str(tmp_path / "aclImdb"), max_length=8,
                                  split={"validation": 0.2, "test": 0.2}))
    assert prepared.info["windows"] == [16, 4, 20]  # train 20 -> 16 + 4 validation; test kept whole
    assert prepared.y_val.mean() == 0.5 and prepared.y_test.mean() == 0.5
    assert prepared.x_train.shape == (16, 8)
    assert prepared.info["source"] == "aclImdb"


def test_aclimdb_layout_is_checked(tmp_path):
    (tmp_path / "aclImdb" / "train" / "pos").mkdir(parents=True)
    with pytest.raises(UserError, match="no folder train/neg"):
        prepare(DataConfig(kind="text", source=str(tmp_path / "aclImdb")))


def keras_npz(path, rng) -> None:
    def reviews(n):
        return np.array([list(rng.integers(1, 40, rng.integers(3, 12))) for _ in range(n)], dtype=object)

    np.savez(path, x_train=reviews(30), y_train=np.arange(30) % 2, x_test=reviews(10), y_test=np.arange(10) % 2)


@pytest.mark.slow  # Keras' TextVectorization: TensorFlow
def test_imdb_npz_reads_like_keras(tmp_path):
    path = tmp_path / "imdb.npz"
    keras_npz(path, np.random.default_rng(0))
    train, labels, test, _ = read_imdb_npz(path, num_words=20, where="x")
    raw = np.load(path, allow_pickle=True)["x_train"]  # the test itself may trust its own file
    first = train[0]
    assert first[0] == 1  # start marker
    expected = [w + 3 if w + 3 < 20 else 2 for w in raw[0]]
    assert first[1:].tolist() == expected and labels.tolist() == (np.arange(30) % 2).tolist()
    prepared = prepare(DataConfig(kind="text", source=str(path), num_words=20, max_length=6))
    assert prepared.num_words == 20 and prepared.x_train.shape[1] == 6
    assert len(prepared.x_test) == 10 and len(prepared.x_train) + len(prepared.x_val) == 30


class Sneaky:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_imdb_npz_with_foreign_objects_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, x_train=np.array([Sneaky()], dtype=object), y_train=np.array([1]),
             x_test=np.array([[1]], dtype=object), y_test=np.array([1]))
    with pytest.raises(UserError, match="cannot be read safely"):
        read_imdb_npz(path, 100, "data.source evil.npz")
    assert pickle  # the loader refuses before anything is constructed


@pytest.mark.slow  # keras.utils.get_file: TensorFlow
def test_builtin_imdb_offline_explains_how_to_provide_the_file(monkeypatch):
    keras = pytest.importorskip("keras")

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(UserError, match="cannot download imdb.npz .* set data.source to its path"):
        prepare(DataConfig(kind="text", source="builtin:imdb"))

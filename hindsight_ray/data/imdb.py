"""The IMDB review sources: the raw ``aclImdb/`` folders and Keras' pre-tokenized ``imdb.npz``."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from hindsight_ray.errors import UserError

IMDB_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz"
# Keras' conventions for imdb.npz: 0 padding, 1 start of review, 2 out of vocabulary, words from 3
START, OOV, INDEX_FROM = 1, 2, 3


def read_aclimdb(folder: Path, where: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``aclImdb/{train,test}/{pos,neg}/*.txt`` -> (train, test) tables of text and 0/1 label; ``unsup`` is ignored."""
    parts = []
    for split in ("train", "test"):
        rows = []
        for label_name, label in (("neg", 0), ("pos", 1)):
            directory = folder / split / label_name
            if not directory.is_dir():
                raise UserError(f"{where}: no folder {split}/{label_name} (expected the aclImdb layout)")
            for path in sorted(directory.glob("*.txt")):
                try:
                    rows.append((path.read_text(encoding="utf-8"), label))
                except UnicodeDecodeError as exc:
                    raise UserError(f"{where}: {path.name} is not UTF-8 text (byte {exc.start})") from None
        if not rows:
            raise UserError(f"{where}: {split}/ holds no .txt reviews")
        parts.append(pd.DataFrame(rows, columns=["text", "label"]))
    return parts[0], parts[1]


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy object arrays of int lists and nothing else: imdb.npz needs no more."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("builtins", "list"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in imdb.npz")
        return super().find_class(module, name)


def _npz_array(archive: zipfile.ZipFile, name: str, where: str) -> np.ndarray:
    try:
        raw = archive.read(f"{name}.npy")
    except KeyError:
        raise UserError(f"{where}: no array {name!r} (expected Keras' imdb.npz with x_train, y_train, x_test, "
                        "y_test)") from None
    buffer = io.BytesIO(raw)
    major, _ = np.lib.format.read_magic(buffer)
    reader = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    _, _, dtype = reader(buffer)
    if dtype.hasobject:
        try:
            return _ArraysOnly(buffer).load()
        except (pickle.UnpicklingError, EOFError, AttributeError) as exc:
            raise UserError(f"{where}: array {name!r} cannot be read safely ({exc})") from None
    buffer.seek(0)
    return np.load(buffer, allow_pickle=False)


def read_imdb_npz(path: Path, num_words: int, where: str) -> tuple[list, np.ndarray, list, np.ndarray]:
    """Keras' imdb.npz -> (train sequences, labels, test sequences, labels), as ``keras.datasets.imdb``.

    Word ids are shifted by 3 (1 marks the start, 2 an out-of-vocabulary word) and ids past
    ``num_words`` become 2. Object arrays are read with an unpickler that admits only numpy
    arrays and lists, never ``allow_pickle=True``.
    """
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise UserError(f"{where}: not an .npz archive") from None
    with archive:
        x_train, y_train = _npz_array(archive, "x_train", where), _npz_array(archive, "y_train", where)
        x_test, y_test = _npz_array(archive, "x_test", where), _npz_array(archive, "y_test", where)

    def shift(sequences: np.ndarray) -> list[np.ndarray]:
        out = []
        for sequence in sequences:
            ids = np.asarray(sequence, dtype=np.int64) + INDEX_FROM
            ids[ids >= num_words] = OOV
            out.append(np.concatenate([[START], ids]).astype(np.int32))
        return out

    return shift(x_train), np.asarray(y_train, np.int64), shift(x_test), np.asarray(y_test, np.int64)


def fetch_imdb_npz() -> Path:
    """Download Keras' imdb.npz into Keras' cache (``builtin:imdb``), or explain how to provide it."""
    import keras

    try:
        return Path(keras.utils.get_file("imdb.npz", origin=IMDB_URL,
                                         file_hash="69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"))
    except Exception as exc:  # noqa: BLE001 - any download failure gets the same advice
        raise UserError(
            f"data.source builtin:imdb: cannot download imdb.npz ({type(exc).__name__}); on a machine without "
            f"internet, fetch {IMDB_URL} elsewhere and set data.source to its path") from None

"""The IMDB review sources: the raw ``aclImdb/`` folders and Keras' pre-tokenized ``imdb.npz``."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from hindsight_ray.core.errors import UserError

IMDB_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz"
# Keras' conventions for imdb.npz: 0 padding, 1 start of review, 2 out of vocabulary, words from 3
START, OOV, INDEX_FROM = 1, 2, 3
# one array of imdb.npz unpacked; Keras' own file's largest is ~50 MB
MAX_MEMBER_BYTES = 2_000_000_000


def read_aclimdb(folder: Path, where: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``aclImdb/{train,test}/{pos,neg}/*.txt`` -> (train, test) tables of text and 0/1 label; ``unsup`` is ignored."""
    parts = []
    for split in ("train", "test"):
        rows = []
        for label_name, label in (("neg", 0), ("pos", 1)):
            directory = folder / split / label_name
            if not directory.is_dir():
                raise UserError(
                    f"{where}: no folder {split}/{label_name} (expected the aclImdb layout)"
                )
            found = 0
            for path in sorted(directory.glob("*.txt")):
                name = f"{split}/{label_name}/{path.name}"
                if not path.is_file():
                    # a folder named x.txt, a broken or looping link
                    raise UserError(
                        f"{where}: {name} is not a readable file (a folder, or a broken or looping link)"
                    )
                try:
                    rows.append((path.read_text(encoding="utf-8"), label))
                except UnicodeDecodeError as exc:
                    raise UserError(
                        f"{where}: {name} is not UTF-8 text (byte {exc.start})"
                    ) from None
                except OSError as exc:
                    raise UserError(f"{where}: {name} cannot be read ({exc.strerror})") from None
                found += 1
            if not found:
                raise UserError(
                    f"{where}: {split}/{label_name} holds no .txt reviews; a classifier needs both "
                    "classes (neg and pos)"
                )
        parts.append(pd.DataFrame(rows, columns=["text", "label"]))
    return parts[0], parts[1]


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy object arrays of int lists and nothing else: imdb.npz needs no more."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("builtins", "list"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in imdb.npz")
        return super().find_class(module, name)


def _npz_array(archive: zipfile.ZipFile, name: str, where: str) -> np.ndarray:
    try:
        size = archive.getinfo(f"{name}.npy").file_size
    except KeyError:
        raise UserError(
            f"{where}: no array {name!r} (expected Keras' imdb.npz with x_train, y_train, x_test, y_test)"
        ) from None
    if size > MAX_MEMBER_BYTES:
        # a small archive may unpack to gigabytes
        raise UserError(
            f"{where}: array {name!r} unpacks to {size / 1e9:,.1f} GB (Keras' imdb.npz: under 0.1 GB); "
            "refusing to read it"
        )
    try:
        raw = archive.read(f"{name}.npy")
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise UserError(f"{where}: array {name!r} cannot be unpacked ({exc})") from None
    if not raw.startswith(b"\x93NUMPY"):
        raise UserError(f"{where}: {name}.npy is not a numpy array")
    buffer = io.BytesIO(raw)
    major, _ = np.lib.format.read_magic(buffer)
    reader = (
        np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    )
    _, _, dtype = reader(buffer)
    if dtype.hasobject:
        try:
            return _ArraysOnly(buffer).load()
        except (
            pickle.UnpicklingError,
            EOFError,
            AttributeError,
            ValueError,
            TypeError,
            IndexError,
        ) as exc:
            raise UserError(f"{where}: array {name!r} cannot be read safely ({exc})") from None
    buffer.seek(0)
    try:
        return np.load(buffer, allow_pickle=False)
    except ValueError as exc:
        raise UserError(f"{where}: array {name!r} cannot be read ({exc})") from None


def read_imdb_npz(
    path: Path, num_words: int, where: str
) -> tuple[list, np.ndarray, list, np.ndarray]:
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
        x_train, y_train = (
            _npz_array(archive, "x_train", where),
            _npz_array(archive, "y_train", where),
        )
        x_test, y_test = _npz_array(archive, "x_test", where), _npz_array(archive, "y_test", where)

    def shift(sequences: np.ndarray, name: str) -> list[np.ndarray]:
        out = []
        for row, sequence in enumerate(sequences):
            try:
                ids = np.asarray(sequence, dtype=np.int64) + INDEX_FROM
            except (ValueError, TypeError, OverflowError):
                raise UserError(f"{where}: {name} row {row} is not a list of word ids") from None
            if ids.ndim != 1 or (ids < INDEX_FROM).any():
                raise UserError(f"{where}: {name} row {row} is not a list of non-negative word ids")
            ids[ids >= num_words] = OOV
            out.append(np.concatenate([[START], ids]).astype(np.int32))
        return out

    return (
        shift(x_train, "x_train"),
        _binary(y_train, len(x_train), "y_train", where),
        shift(x_test, "x_test"),
        _binary(y_test, len(x_test), "y_test", where),
    )


def _binary(labels: np.ndarray, rows: int, name: str, where: str) -> np.ndarray:
    """imdb.npz's labels: one 0 or 1 per review (whether training holds both classes is checked after the
    validation carve, for every text source alike)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != rows:
        raise UserError(f"{where}: {name} has {labels.size} labels for {rows} reviews")
    if labels.dtype.kind not in "iub" or not np.isin(labels, (0, 1)).all():
        shown = next((v for v in labels.tolist() if v not in (0, 1)), labels.dtype)
        raise UserError(
            f"{where}: {name} holds {shown!r}; Keras' imdb.npz labels are 0 (negative) and 1 (positive)"
        )
    # both classes in training: text._check_splits, for every source
    return labels.astype(np.int64)


def fetch_imdb_npz() -> Path:
    """Download Keras' imdb.npz into Keras' cache (``builtin:imdb``), or explain how to provide it."""
    import keras

    try:
        return Path(
            keras.utils.get_file(
                "imdb.npz",
                origin=IMDB_URL,
                file_hash="69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f",
            )
        )
    except Exception as exc:  # noqa: BLE001 - any download failure gets the same advice
        raise UserError(
            f"data.source builtin:imdb: cannot download imdb.npz ({type(exc).__name__}); on a machine without "
            f"internet, fetch {IMDB_URL} elsewhere and set data.source to its path"
        ) from None

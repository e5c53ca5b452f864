"""Text: a table of texts and labels (two classes or more) -> stratified split -> vocabulary from train -> front-padded ids."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from hindsight_ray.config.schema import DataConfig
from hindsight_ray.core.errors import UserError
from hindsight_ray.core.metrics import classification_scores
from hindsight_ray.data.prepared import Prepared
from hindsight_ray.data.sources import read_table

_LABEL_WORDS = {
    "0": 0,
    "1": 1,
    "-1": 0,
    "neg": 0,
    "pos": 1,
    "negative": 0,
    "positive": 1,
    "false": 0,
    "true": 1,
}


MAX_CLASSES = 1000


def class_labels(values: pd.Series, where: str) -> tuple[np.ndarray, list[str]]:
    """Labels -> class ids 0..k-1 and the class names as the data spells them. Two labels given as 0/1,
    -1/1, pos/neg, positive/negative or true/false keep their meaning (class 1 is the positive one);
    other labels are numbered in sorted order."""
    if values.isna().any():
        raise UserError(f"{where}: {int(values.isna().sum())} rows have no label")
    words = values.astype(str).str.strip().str.removesuffix(".0")
    distinct = sorted(words.unique())
    if len(distinct) < 2:
        raise UserError(
            f"{where}: every row has the label {distinct[0]!r}; a classifier needs two classes"
        )
    if len(distinct) > MAX_CLASSES:
        raise UserError(
            f"{where}: {len(distinct)} distinct labels (at most {MAX_CLASSES}); is this the label column?"
        )
    lowered = words.str.lower()
    known = {w: _LABEL_WORDS.get(w) for w in lowered.unique()}
    if sorted(known.values(), key=str) == [0, 1]:
        # two labels with a known meaning, in any letter case
        ids = lowered.map(known).to_numpy(dtype=np.int64)
    else:
        ids = words.map({w: i for i, w in enumerate(distinct)}).to_numpy(dtype=np.int64)
    # each class's name as the data first spells it
    first = pd.Series(words.to_numpy()).groupby(ids).first()
    return ids, [str(first[i]) for i in range(len(first))]


def stratified_split(labels: np.ndarray, validation: float, test: float, seed: int) -> np.ndarray:
    """Split of each row (0 train, 1 validation, 2 test), keeping the class shares in each split."""
    rng = np.random.default_rng(seed)
    split = np.zeros(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        n_test = round(len(rows) * test)
        n_val = round(len(rows) * validation)
        split[rows[:n_test]] = 2
        split[rows[n_test : n_test + n_val]] = 1
    return split


def clean_text(texts: pd.Series) -> list[str]:
    """Strip HTML line breaks (IMDB reviews carry ``<br />``)."""
    return texts.fillna("").astype(str).str.replace(r"<br\s*/?>", " ", regex=True).tolist()


# Keras' TextVectorization defaults, in plain Python (that layer needs TensorFlow, which a JAX or PyTorch
# sweep may not have): ASCII letters lowered, this punctuation removed, split on ASCII whitespace
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_PUNCTUATION = re.compile(r'[!"#$%&()\*\+,\-\./:;<=>?@\[\\\]^_`{|}~\']')
_WHITESPACE = re.compile(r"[ \t\n\v\f\r]+")
PADDING, UNKNOWN = "", "[UNK]"


def tokens(text: str) -> list[str]:
    """One text's words, standardised and split as Keras' ``TextVectorization`` does by default."""
    return [
        word for word in _WHITESPACE.split(_PUNCTUATION.sub("", text.translate(_LOWER))) if word
    ]


def vocabulary_of(texts: list[str], num_words: int) -> list[str]:
    """The ``num_words`` entries of a vocabulary learnt from ``texts``: padding, unknown, then the words by
    count, ties to the later word in code-point order (Keras' ``adapt``)."""
    counts = Counter(word for text in texts for word in tokens(text))
    counts.pop(PADDING, None), counts.pop(UNKNOWN, None)
    ranked = sorted(counts.items(), key=lambda item: (item[1], item[0]), reverse=True)
    return [PADDING, UNKNOWN, *(word for word, _ in ranked[: max(0, num_words - 2)])]


def vectorize(train: list[str], others: list[list[str]], num_words: int, max_length: int):
    """Learn a vocabulary on ``train`` only; every list -> ids padded and truncated at the front.
    Returns the vocabulary (ids are positions in it), the training ids and the others' ids."""
    vocabulary = vocabulary_of(train, num_words)
    return (
        vocabulary,
        token_ids(vocabulary, train, max_length),
        [token_ids(vocabulary, t, max_length) for t in others],
    )


def pad_front(rows: list, max_length: int) -> np.ndarray:
    """Id sequences -> an int32 matrix, each row padded with 0 and truncated at the front (Keras'
    ``pad_sequences`` defaults)."""
    matrix = np.zeros((len(rows), max_length), dtype=np.int32)
    for index, row in enumerate(rows):
        kept = list(row)[-max_length:] if max_length else []
        if kept:
            matrix[index, max_length - len(kept) :] = kept
    return matrix


def token_ids(vocabulary: list[str], texts: list[str], max_length: int) -> np.ndarray:
    """Texts -> ids in ``vocabulary`` (0 padding, 1 unknown), padded and truncated at the front; the same
    rule for training data and for the predictor's raw strings."""
    index = {word: position for position, word in enumerate(vocabulary) if position > 1}
    return pad_front([[index.get(word, 1) for word in tokens(text)] for text in texts], max_length)


def _token_prepared(
    x_parts: list[np.ndarray],
    y_parts: list[np.ndarray],
    vocabulary: int,
    info: dict,
    preprocessing: dict | None = None,
) -> Prepared:
    classes = int(max(part.max(initial=0) for part in y_parts)) + 1
    y_train, y_val, y_test = (part.astype(np.float32).reshape(-1, 1) for part in y_parts)
    majority = int(np.bincount(y_parts[0].astype(np.int64)).argmax())
    guess = (
        np.full(len(y_test), float(majority))
        if classes <= 2
        else np.eye(classes)[np.full(len(y_test), majority)]
    )
    return Prepared(
        kind="text",
        task="classification",
        x_train=x_parts[0],
        y_train=y_train,
        x_val=x_parts[1],
        y_val=y_val,
        x_test=x_parts[2],
        y_test=y_test,
        output_dim=1
        if classes <= 2
        # one sigmoid for two classes, a softmax for more
        else classes,
        num_words=int(vocabulary),
        baselines={"majority_class": classification_scores(y_test, guess)},
        info={
            **info,
            "vocabulary": int(vocabulary),
            "classes": classes,
            "windows": [len(part) for part in x_parts],
        },
        preprocessing=preprocessing or {},
    )


def _check_splits(y_parts: list[np.ndarray], where: str) -> None:
    """Train, validation and test each hold reviews, and training sees both classes."""
    sizes = [len(part) for part in y_parts]
    if min(sizes) == 0 or len(np.unique(y_parts[0])) < 2:
        raise UserError(
            f"{where}: {sum(sizes)} reviews are too few for a train/validation/test split with both "
            f"classes in training (train/validation/test: {sizes[0]}/{sizes[1]}/{sizes[2]})"
        )


def _carve_validation(labels: np.ndarray, validation: float, seed: int) -> np.ndarray:
    """Stratified train/validation split of a given training set (True: validation)."""
    return stratified_split(labels, validation, 0.0, seed) == 1


def prepare_text(
    data: DataConfig, path: Path | None, seed: int, table: pd.DataFrame | None = None
) -> Prepared:
    """Reviews from a table (a file, or ``table`` passed from Python), the raw aclImdb folders, or Keras'
    imdb.npz -> front-padded token ids."""
    from hindsight_ray.data.imdb import read_aclimdb, read_imdb_npz

    where = f"data.source {data.source}"
    if table is None and path is not None and path.suffix.lower() == ".npz":
        train_ids, train_labels, test_ids, test_labels = read_imdb_npz(path, data.num_words, where)
        held_out = _carve_validation(train_labels, data.split.validation, seed)
        pad = lambda rows: pad_front(rows, data.max_length)  # noqa: E731
        train_rows = [row for row, out in zip(train_ids, held_out, strict=True) if not out]
        val_rows = [row for row, out in zip(train_ids, held_out, strict=True) if out]
        y_npz = [train_labels[~held_out], train_labels[held_out], test_labels]
        _check_splits(y_npz, where)
        return _token_prepared(
            [pad(train_rows), pad(val_rows), pad(test_ids)],
            y_npz,
            data.num_words,
            {"rows": len(train_ids) + len(test_ids), "source": "imdb.npz"},
        )
    if table is None and path is not None and path.is_dir():
        train, test = read_aclimdb(path, where)
        labels = train["label"].to_numpy(np.int64)
        held_out = _carve_validation(labels, data.split.validation, seed)
        texts = [
            clean_text(train["text"][~held_out]),
            clean_text(train["text"][held_out]),
            clean_text(test["text"]),
        ]
        y_parts = [labels[~held_out], labels[held_out], test["label"].to_numpy(np.int64)]
        _check_splits(y_parts, where)
        info = {"rows": len(train) + len(test), "source": "aclImdb"}
        classes = ["negative", "positive"]
    else:
        frame = table if table is not None else read_table(path, where)  # type: ignore[arg-type]
        for column in (data.text_column, data.label_column):
            if column not in frame.columns:
                raise UserError(f"{where}: no column {column!r} (columns: {list(frame.columns)})")
        labels, classes = class_labels(
            frame[data.label_column], f"{where} column {data.label_column!r}"
        )
        split = stratified_split(labels, data.split.validation, data.split.test, seed)
        if min((split == s).sum() for s in range(3)) == 0:
            raise UserError(
                f"{where}: {len(frame)} rows are too few for a train/validation/test split"
            )
        all_texts = np.array(clean_text(frame[data.text_column]), dtype=object)
        texts = [list(all_texts[split == s]) for s in range(3)]
        y_parts = [labels[split == s] for s in range(3)]
        info = {"rows": len(frame)}
    if not any(text.strip() for text in texts[0]):
        raise UserError(
            f"{where}: the training texts are all empty or missing (column {data.text_column!r}); "
            "nothing to learn a vocabulary from"
        )
    vocabulary, x_train, (x_val, x_test) = vectorize(
        texts[0], texts[1:], data.num_words, data.max_length
    )
    preprocessing = {
        "kind": "text",
        "vocabulary": vocabulary,
        "max_length": data.max_length,
        "text_column": data.text_column,
        "classes": classes,
    }
    return _token_prepared(
        [x_train, x_val, x_test],
        y_parts,
        len(vocabulary),
        {**info, "max_length": data.max_length},
        preprocessing,
    )

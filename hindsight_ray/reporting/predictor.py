"""``Predictor``: the exported model plus everything fitted on the training split, so that it serves raw data.

```python
p = hindsight_ray.load("hindsight_results/airline-two_stage-...").predictor()
p.predict(frame)            # series: one row per window the frame forms, forecasts in the data's units
p.predict(["a raw review"]) # text: P(class 1) for two classes, an (n, k) array over p.classes for more
```
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hindsight_ray.core.errors import UserError
from hindsight_ray.core.experiment import ExperimentStore
from hindsight_ray.core.layout import BEST_MODEL_FILE, PREPROCESSING_FILE


class Predictor:
    """A trained model and its preprocessing: raw rows or strings in, predictions in the data's terms out."""

    def __init__(self, model: Any, preprocessing: dict[str, Any]) -> None:
        self.model = model
        self.preprocessing = preprocessing
        self.kind = preprocessing.get("kind")

    @classmethod
    def load(
        cls, experiment: str | Path | ExperimentStore, backend: str | None = None
    ) -> Predictor:
        """The predictor of a finished experiment (``best_model.keras`` + ``preprocessing.json``), on Keras'
        ``backend``: by default the one Keras already runs on in this process, else the sweep's own (a
        ``.keras`` file loads on any of them). Only that backend's framework is imported."""
        import tempfile

        store = ExperimentStore.of(experiment)
        # as the user named it, in messages
        experiment_dir = str(experiment)
        for name in (BEST_MODEL_FILE, PREPROCESSING_FILE):
            if not store.exists(name):
                raise UserError(
                    f"{experiment_dir}: no {name}; the sweep has not finished (resume it first)"
                )
        preprocessing = read_preprocessing(
            store.read_text(PREPROCESSING_FILE), f"{experiment_dir}/{PREPROCESSING_FILE}"
        )
        from hindsight_ray.training import backend as backends

        chosen = backend or backends.running() or pre_backend(preprocessing)
        if chosen not in backends.BACKENDS:
            raise UserError(f"backend {chosen!r}: not one of {', '.join(backends.BACKENDS)}")
        if not backends.installed(chosen):
            raise UserError(
                f"Keras' {chosen} backend is not installed here ({experiment_dir} was trained on "
                f"{pre_backend(preprocessing)}): install it, or load the model on another backend "
                "(predict --backend, or hindsight_ray.load(...).predictor(backend=...))"
            )
        try:
            # the same numbers as the sweep's own evaluation (TensorFlow: oneDNN off), in any process
            keras = backends.configure(chosen, 1)
        except backends.BackendError as exc:
            raise UserError(f"{experiment_dir}: {exc}") from None

        with tempfile.TemporaryDirectory() as folder:
            local = Path(folder, BEST_MODEL_FILE)
            local.write_bytes(store.read_bytes(BEST_MODEL_FILE))
            try:
                # predicting needs no optimizer
                model = keras.models.load_model(local, safe_mode=True, compile=False)
            except Exception as exc:
                # a truncated zip, a foreign layer, a Lambda refused by safe mode
                raise UserError(
                    f"{experiment_dir}/{BEST_MODEL_FILE} cannot be loaded ({_first_line(exc)}); "
                    "it is damaged or not a model this tool wrote"
                ) from None
        return cls(model, preprocessing)

    @property
    def classes(self) -> list[str]:
        """Text: the class names, in the order of the probability columns (class 1 is P's for two classes)."""
        return list(self.preprocessing.get("classes") or [])

    def predict(self, data: pd.DataFrame | Sequence[str] | pd.Series) -> Any:
        """Series: a DataFrame -> a DataFrame of forecasts. Text: strings -> probabilities."""
        if self.kind == "timeseries":
            if not isinstance(data, pd.DataFrame):
                raise UserError(
                    f"a time-series predictor takes a DataFrame, got {type(data).__name__}"
                )
            return self._forecast(data)
        if self.kind == "text":
            return self._classify(data)
        raise UserError(
            "this experiment's data has no preprocessing a predictor can replay (pre-tokenized "
            "imdb.npz); feed token ids to best_model.keras instead"
        )

    # -- text --------------------------------------------------------------------------
    def _classify(self, data: pd.DataFrame | Sequence[str] | pd.Series) -> np.ndarray:
        from hindsight_ray.data.text import clean_text, token_ids
        from hindsight_ray.training.trainable import predict

        column = self.preprocessing["text_column"]
        if isinstance(data, pd.DataFrame):
            if column not in data.columns:
                raise UserError(f"no column {column!r} (columns: {list(data.columns)})")
            data = data[column]
        texts = clean_text(pd.Series(checked_texts(data), dtype=object))
        if not texts:
            classes = len(self.classes)
            return np.zeros((0,) if classes <= 2 else (0, classes), dtype=np.float32)
        ids = token_ids(
            self.preprocessing["vocabulary"], texts, int(self.preprocessing["max_length"])
        )
        probabilities = predict(self.model, ids)
        return probabilities.reshape(-1) if probabilities.shape[-1] == 1 else probabilities

    # -- time series -------------------------------------------------------------------
    def _forecast(self, frame: pd.DataFrame) -> pd.DataFrame:
        from hindsight_ray.data.timeseries import (
            SeriesPreprocessing,
            encode,
            model_space,
            numeric_values,
            sort_by_date,
            to_data_units,
            window_origins,
        )
        from hindsight_ray.training.trainable import predict

        fields = SeriesPreprocessing.__dataclass_fields__
        pre = SeriesPreprocessing(**{k: v for k, v in self.preprocessing.items() if k in fields})
        where = "predict data"
        missing = [c for c in pre.columns if c not in frame.columns]
        if missing:
            raise UserError(f"{where}: no column {missing[0]!r} (columns: {list(frame.columns)})")
        columns = [
            f"{target}_t+{step}" for step in range(1, pre.horizon + 1) for target in pre.targets
        ]
        if len(frame) == 0:
            # empty in, empty out
            empty = {c: pd.Series([], dtype=np.float64) for c in columns}
            return pd.DataFrame({"origin": pd.Series([], dtype=object), **empty})
        frame, _ = sort_by_date(frame, pre.date_column, where)
        frame, values = numeric_values(frame, pre.numeric, pre.missing, where)
        target_index = [pre.numeric.index(c) for c in pre.targets]
        shift = pre.shift
        if len(frame) < pre.lags + shift:
            raise UserError(
                f"{where}: {len(frame)} rows; a forecast needs at least {pre.lags + shift} "
                f"(lags={pre.lags}{f' + {shift} for differencing' if shift else ''})"
            )
        values, levels = model_space(
            values, target_index, pre.log, pre.difference, where, pre.numeric, pre.seasonal_lag
        )
        inputs, _ = encode(pre, frame, values)
        starts = np.arange(len(inputs) - pre.lags + 1)
        x = np.stack([inputs[s : s + pre.lags] for s in starts]).astype(np.float32)
        # in the frame's rows
        last_seen = starts + pre.lags - 1 + shift
        outputs = to_data_units(pre, predict(self.model, x), levels, last_seen + 1)
        table = pd.DataFrame(outputs, columns=columns)
        table.insert(0, "origin", window_origins(frame, pre.date_column, last_seen))
        return table


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def checked_texts(data: Any) -> list[str]:
    """The texts to classify: a sequence of strings (an empty one is fine). A single string, or a row that is
    missing (None, NaN) or not text (numbers, bytes), is refused naming the row."""
    if isinstance(data, (str, bytes)):
        raise UserError("predict takes a list of texts; wrap a single text in a list")
    rows = list(data.tolist() if isinstance(data, (pd.Series, np.ndarray)) else data)
    for row, text in enumerate(rows):
        if isinstance(text, str):
            continue
        missing = (
            text is None
            or (isinstance(text, float) and np.isnan(text))
            or text is pd.NA
            or text is pd.NaT
        )
        what = "is missing" if missing else f"is {type(text).__name__} {text!r:.40}, not text"
        raise UserError(f"predict: text at row {row} {what}")
    return rows


_TEXT_KEYS = {"vocabulary": list, "max_length": int, "text_column": str, "classes": list}
_SERIES_KEYS = {
    "targets": list, "numeric": list, "inputs": list, "categories": dict, "lags": int, "horizon": int,
    "log": bool, "difference": bool, "missing": str, "offset": list, "scale": list,
}  # fmt: skip


def pre_backend(preprocessing: dict[str, Any]) -> str:
    """The backend the sweep trained on (files written before ``model.backend`` existed: TensorFlow)."""
    return str(preprocessing.get("backend") or "tensorflow")


def read_preprocessing(text: str, where: str) -> dict[str, Any]:
    """``preprocessing.json`` read and checked: the fields the predictor replays, of the right types and
    consistent with one another. Anything else is one ``UserError`` naming the file and the field."""

    def bad(why: str) -> UserError:
        return UserError(f"{where}: {why}; the file is damaged or was edited by hand")

    try:
        pre = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad(f"not JSON ({exc.msg if hasattr(exc, 'msg') else exc})") from None
    if not isinstance(pre, dict):
        raise bad(f"holds {type(pre).__name__}, not an object")
    kind = pre.get("kind")
    if kind not in ("text", "timeseries", None):
        # None: token ids (imdb.npz), nothing to replay
        raise bad(f"kind is {kind!r:.60}, not text or timeseries")
    if pre.get("backend", "tensorflow") not in ("tensorflow", "jax", "torch"):
        # absent: written before backends
        raise bad(f"backend is {pre.get('backend')!r:.60}, not tensorflow, jax or torch")
    for key, kind_of in {"text": _TEXT_KEYS, "timeseries": _SERIES_KEYS}.get(str(kind), {}).items():
        value = pre.get(key)
        if not isinstance(value, kind_of) or (kind_of is int and isinstance(value, bool)):
            raise bad(f"{key} is {value!r:.60}, not {kind_of.__name__}")
    if kind == "text":
        if (
            not all(isinstance(word, str) for word in pre["vocabulary"])
            or len(pre["vocabulary"]) < 2
        ):
            raise bad("vocabulary is not a list of words")
        if pre["max_length"] < 1:
            raise bad(f"max_length is {pre['max_length']}")
    if kind == "timeseries":
        numeric = pre["numeric"]
        if not numeric or not all(isinstance(c, str) for c in numeric):
            raise bad("numeric names no columns")
        for key in ("targets", "inputs"):
            if not all(isinstance(c, str) and c in numeric for c in pre[key]) or (
                key == "targets" and not pre[key]
            ):
                raise bad(f"{key} {pre[key]!r:.60} are not among the numeric columns")
        for key in ("offset", "scale"):
            values = pre[key]
            if len(values) != len(numeric) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
                for v in values
            ):
                raise bad(f"{key} is not one finite number per numeric column")
        if any(v == 0 for v in pre["scale"]):
            raise bad("scale has a zero")
        # absent in files written before seasonal differencing
        lag = pre.get("seasonal_lag", 0)
        if not isinstance(lag, int) or isinstance(lag, bool) or lag < 0:
            raise bad(f"seasonal_lag is {lag!r:.60}, not a whole number >= 0")
        if pre["lags"] < 1 or pre["horizon"] < 1:
            raise bad(f"lags {pre['lags']} / horizon {pre['horizon']} below 1")
        date_column = pre.get("date_column")
        if date_column is not None and not isinstance(date_column, str):
            raise bad(f"date_column is {date_column!r:.60}")
        categories = pre["categories"]
        if not all(
            isinstance(v, list) and all(isinstance(c, str) for c in v) for v in categories.values()
        ):
            raise bad("categories are not lists of names")
    return pre

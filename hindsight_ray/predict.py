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

from hindsight_ray.errors import UserError
from hindsight_ray.results import BEST_MODEL_FILE, PREPROCESSING_FILE
from hindsight_ray.storage import ExperimentStore


class Predictor:
    """A trained model and its preprocessing: raw rows or strings in, predictions in the data's terms out."""

    def __init__(self, model: Any, preprocessing: dict[str, Any]) -> None:
        self.model = model
        self.preprocessing = preprocessing
        self.kind = preprocessing.get("kind")

    @classmethod
    def load(cls, experiment_dir: str | Path) -> Predictor:
        """The predictor of a finished experiment (``best_model.keras`` + ``preprocessing.json``)."""
        import tempfile

        store = ExperimentStore(str(experiment_dir))
        for name in (BEST_MODEL_FILE, PREPROCESSING_FILE):
            if not store.exists(name):
                raise UserError(f"{experiment_dir}: no {name}; the sweep has not finished (resume it first)")
        preprocessing = json.loads(store.read_text(PREPROCESSING_FILE))
        from hindsight_ray.cluster import use_trial_numerics
        from hindsight_ray.trainable import configure_tensorflow

        use_trial_numerics()  # the same numbers as the sweep's own evaluation, in any process
        configure_tensorflow(1)
        import keras

        with tempfile.TemporaryDirectory() as folder:
            local = Path(folder, BEST_MODEL_FILE)
            local.write_bytes(store.read_bytes(BEST_MODEL_FILE))
            model = keras.models.load_model(local, safe_mode=True)
        return cls(model, preprocessing)

    @property
    def classes(self) -> list[str]:
        """Text: the class names, in the order of the probability columns (class 1 is P's for two classes)."""
        return list(self.preprocessing.get("classes") or [])

    def predict(self, data: pd.DataFrame | Sequence[str] | pd.Series) -> Any:
        """Series: a DataFrame -> a DataFrame of forecasts. Text: strings -> probabilities."""
        if self.kind == "timeseries":
            if not isinstance(data, pd.DataFrame):
                raise UserError(f"a time-series predictor takes a DataFrame, got {type(data).__name__}")
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
        from hindsight_ray.trainable import predict

        column = self.preprocessing["text_column"]
        if isinstance(data, pd.DataFrame):
            if column not in data.columns:
                raise UserError(f"no column {column!r} (columns: {list(data.columns)})")
            data = data[column]
        if isinstance(data, str):
            raise UserError("predict takes a list of texts; wrap a single text in a list")
        texts = clean_text(pd.Series(list(data), dtype=object))
        ids = token_ids(self.preprocessing["vocabulary"], texts, int(self.preprocessing["max_length"]))
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
        from hindsight_ray.trainable import predict

        fields = SeriesPreprocessing.__dataclass_fields__
        pre = SeriesPreprocessing(**{k: v for k, v in self.preprocessing.items() if k in fields})
        where = "predict data"
        missing = [c for c in pre.columns if c not in frame.columns]
        if missing:
            raise UserError(f"{where}: no column {missing[0]!r} (columns: {list(frame.columns)})")
        frame, _ = sort_by_date(frame, pre.date_column, where)
        frame, values = numeric_values(frame, pre.numeric, pre.missing, where)
        target_index = [pre.numeric.index(c) for c in pre.targets]
        values, levels = model_space(values, target_index, pre.log, pre.difference, where, pre.numeric)
        shift = 1 if pre.difference else 0
        if len(values) < pre.lags:
            raise UserError(
                f"{where}: {len(frame)} rows; a forecast needs at least {pre.lags + shift} "
                f"(lags={pre.lags}{' + 1 for differencing' if shift else ''})"
            )
        inputs, _ = encode(pre, frame, values)
        starts = np.arange(len(inputs) - pre.lags + 1)
        x = np.stack([inputs[s : s + pre.lags] for s in starts]).astype(np.float32)
        last_seen = starts + pre.lags - 1 + shift  # in the frame's rows
        outputs = to_data_units(pre, predict(self.model, x), levels[last_seen][:, target_index])
        columns = [f"{target}_t+{step}" for step in range(1, pre.horizon + 1) for target in pre.targets]
        table = pd.DataFrame(outputs, columns=columns)
        table.insert(0, "origin", window_origins(frame, pre.date_column, last_seen))
        return table

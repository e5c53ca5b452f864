"""Time series: load a table, split chronologically, scale on train only, cut lag windows."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hindsight_ray.config.schema import DataConfig
from hindsight_ray.core.errors import UserError
from hindsight_ray.core.metrics import regression_scores
from hindsight_ray.data.prepared import Prepared, SeriesHistory, SeriesTransform, inverse_bases
from hindsight_ray.data.sources import BuiltinDataset, read_table

# pandas frequency prefix -> observations per season
_SEASONS = {
    "MS": 12,
    "ME": 12,
    "M": 12,
    "QS": 4,
    "QE": 4,
    "Q": 4,
    "W": 52,
    "D": 7,
    "B": 5,
    "h": 24,
    "H": 24,
}


@dataclass(frozen=True)
class SplitRows:
    """Row counts of the chronological train / validation / test split."""

    train: int
    validation: int
    test: int


def split_rows(rows: int, validation: float, test: float) -> SplitRows:
    """Chronological split sizes: the last ``test`` share is test, the share before it validation."""
    n_test = max(1, round(rows * test))
    n_val = max(1, round(rows * validation))
    return SplitRows(rows - n_val - n_test, n_val, n_test)


def fit_scaler(train_values: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-column (offset, scale) fitted on training rows; ``scaled = (x - offset) / scale``."""
    columns = train_values.shape[1]
    if method == "none":
        return np.zeros(columns), np.ones(columns)
    if method == "minmax":
        offset = train_values.min(axis=0)
        scale = train_values.max(axis=0) - offset
    else:
        # standard
        offset = train_values.mean(axis=0)
        scale = train_values.std(axis=0)
    return offset, np.where(scale > 0, scale, 1.0)


def window_starts(rows: int, lags: int, horizon: int) -> np.ndarray:
    """Start row of every window: inputs ``[s, s+lags)``, targets ``[s+lags, s+lags+horizon)``."""
    return np.arange(max(0, rows - lags - horizon + 1))


def make_windows(
    inputs: np.ndarray, targets: np.ndarray, lags: int, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Lag windows ``[samples, lags, features]`` and their targets ``[samples, horizon * targets]``."""
    starts = window_starts(len(inputs), lags, horizon)
    x = (
        np.stack([inputs[s : s + lags] for s in starts])
        if len(starts)
        else np.empty((0, lags, inputs.shape[1]))
    )
    y = (
        np.stack([targets[s + lags : s + lags + horizon].reshape(-1) for s in starts])
        if len(starts)
        else np.empty((0, horizon * targets.shape[1]))
    )
    return x.astype(np.float32), y.astype(np.float32)


def assign_windows(starts: np.ndarray, lags: int, horizon: int, rows: SplitRows) -> np.ndarray:
    """Split of each window (0 train, 1 validation, 2 test) by the row of its last target.

    A training window's targets all lie in the training rows, so no validation or test value
    is ever a training target; later windows may read earlier rows as inputs, as a forecast would.
    """
    last_target = starts + lags + horizon - 1
    return np.where(
        last_target < rows.train, 0, np.where(last_target < rows.train + rows.validation, 1, 2)
    )


def infer_season(dates: pd.Series) -> int | None:
    """Observations per season from a regular date index (monthly -> 12), or None."""
    if len(dates) < 3:
        return None
    try:
        frequency = pd.infer_freq(pd.DatetimeIndex(dates))
    except (TypeError, ValueError):
        return None
    if not frequency:
        return None
    base = frequency.split("-")[0].lstrip("0123456789")
    return _SEASONS.get(base)


def naive_forecasts(
    series: np.ndarray, starts: np.ndarray, lags: int, horizon: int, season: int | None
):
    """Persistence and seasonal-naive forecasts for windows, from values observed before each window's targets."""
    last_seen = starts + lags - 1
    steps = np.arange(1, horizon + 1)
    persistence = np.stack(
        [np.repeat(series[r][None, :], horizon, axis=0).reshape(-1) for r in last_seen]
    )
    forecasts = {"persistence": persistence}
    if season is not None:
        rows = []
        for r in last_seen:
            target_rows = r + steps
            # whole seasons back, always observed
            back = season * np.ceil(steps / season).astype(int)
            source = target_rows - back
            if source.min() < 0:
                # too few rows before the first window for a season back
                return forecasts
            rows.append(series[source].reshape(-1))
        forecasts["seasonal_naive"] = np.stack(rows)
    return forecasts


def _numeric_columns(frame: pd.DataFrame, columns: list[str], where: str) -> np.ndarray:
    values = np.empty((len(frame), len(columns)), dtype=np.float64)
    for index, column in enumerate(columns):
        if (
            pd.api.types.is_complex_dtype(frame[column])
            or frame[column].map(type).eq(complex).any()
        ):
            raise UserError(
                f"{where}: column {column!r} holds complex numbers; give its real values (or two columns)"
            )
        numeric = pd.to_numeric(frame[column], errors="coerce")
        bad = numeric.isna() & frame[column].notna()
        if bad.any():
            example = frame[column][bad].iloc[0]
            raise UserError(
                f"{where}: column {column!r} has non-numeric values, e.g. {example!r} at row {bad.idxmax()}"
            )
        values[:, index] = numeric.to_numpy(dtype=np.float64)
        infinite = np.isinf(values[:, index])
        if infinite.any():
            raise UserError(
                f"{where}: column {column!r} has an infinite value at row {int(np.argmax(infinite))}"
            )
    return values


def _is_categorical(series: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(series) or isinstance(series.dtype, pd.CategoricalDtype):
        return True
    if pd.api.types.is_numeric_dtype(series):
        return False
    # mostly words
    return bool(pd.to_numeric(series.dropna(), errors="coerce").isna().mean() > 0.5)


@dataclass(frozen=True)
class SeriesPreprocessing:
    """Everything fitted on the training rows that turns raw rows into model inputs, and model outputs
    back into the data's units: written to ``preprocessing.json``, read by the predictor."""

    targets: list[str]
    # numeric columns read, in this order (targets first)
    numeric: list[str]
    # the numeric input columns, in order
    inputs: list[str]
    # categorical input column -> categories seen in the training rows
    categories: dict[str, list[str]]
    date_column: str | None
    lags: int
    horizon: int
    log: bool
    difference: bool
    missing: str
    # per numeric column: scaled = (value - offset) / scale
    offset: list[float]
    scale: list[float]
    # seasonal differencing at this lag (0: none)
    seasonal_lag: int = 0

    @property
    def shift(self) -> int:
        """Rows the differencing uses up before the first model-space row."""
        return self.seasonal_lag + (1 if self.difference else 0)

    @property
    def feature_names(self) -> list[str]:
        return [
            *self.inputs,
            *(f"{c}={v}" for c, values in self.categories.items() for v in values),
        ]

    @property
    def columns(self) -> list[str]:
        """The columns a frame must have."""
        return list(
            dict.fromkeys(
                [*self.numeric, *self.categories, *([self.date_column] if self.date_column else [])]
            )
        )


def sort_by_date(
    frame: pd.DataFrame, date_column: str | None, where: str
) -> tuple[pd.DataFrame, pd.Series | None]:
    """Rows in date order (dates parsed; unparsable or repeated dates are errors), and the dates."""
    if not date_column:
        return frame.reset_index(drop=True), None
    try:
        dates = pd.to_datetime(frame[date_column].astype(str), errors="coerce", format="mixed")
    except (ValueError, TypeError) as exc:
        # e.g. offsets that differ from row to row (+00:00 and +05:00)
        if "timezone" in str(exc).lower() or "offset" in str(exc).lower():
            raise UserError(
                f"{where}: column {date_column!r} mixes UTC offsets or time zones; write every date "
                "with the same offset (or none)"
            ) from None
        raise UserError(
            f"{where}: column {date_column!r} cannot be read as dates ({str(exc).splitlines()[0]})"
        ) from None
    if dates.isna().any():
        raise UserError(
            f"{where}: column {date_column!r} has values that are not dates, e.g. "
            f"{frame[date_column][dates.isna()].iloc[0]!r}"
        )
    if dates.duplicated().any():
        raise UserError(
            f"{where}: column {date_column!r} repeats the date {dates[dates.duplicated()].iloc[0]}"
        )
    order = np.argsort(dates.to_numpy(), kind="stable")
    return frame.iloc[order].reset_index(drop=True), dates.iloc[order].reset_index(drop=True)


def numeric_values(
    frame: pd.DataFrame, columns: list[str], missing: str, where: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """The numeric columns as floats, gaps handled by ``data.missing`` (``drop`` drops the frame's rows too)."""
    values = _numeric_columns(frame, columns, where)
    gaps = np.isnan(values).sum(axis=0)
    if not gaps.any():
        return frame, values
    if missing == "error":
        detail = ", ".join(f"{c}: {n}" for c, n in zip(columns, gaps, strict=True) if n)
        raise UserError(
            f"{where}: {int(gaps.sum())} missing values ({detail}); set data.missing to interpolate or drop"
        )
    table = pd.DataFrame(values, columns=columns)
    if missing == "interpolate":
        empty = [c for c in columns if table[c].isna().all()]
        if empty:
            raise UserError(
                f"{where}: column {empty[0]!r} has no values at all; nothing to interpolate from"
            )
        return frame, table.interpolate(limit_direction="both").to_numpy(dtype=np.float64)
    keep = table.notna().all(axis=1).to_numpy()
    return frame[keep].reset_index(drop=True), table[keep].to_numpy(dtype=np.float64)


def model_space(
    values: np.ndarray,
    target_index: list[int],
    log: bool,
    difference: bool,
    where: str,
    names: list[str],
    seasonal_lag: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Targets (and their lagged copies) as the model sees them, before scaling: log, then seasonal
    differences at ``seasonal_lag`` (that many rows fewer), then first differences (one row fewer). Also
    the levels (log levels with ``log``) that undo the differencing."""
    if log:
        # transforms apply to the targets, not to other features
        low = values[:, target_index].min(axis=0)
        if (low <= 0).any():
            column = names[target_index[int(np.argmax(low <= 0))]]
            raise UserError(
                f"{where}: data.log needs positive values, but column {column!r} has values <= 0"
            )
        values = values.copy()
        values[:, target_index] = np.log(values[:, target_index])
    levels = values
    if seasonal_lag:
        values = values[seasonal_lag:].copy()
        values[:, target_index] = (
            levels[seasonal_lag:, target_index] - levels[:-seasonal_lag, target_index]
        )
    if difference:
        seasonal = values
        values = values[1:].copy()
        values[:, target_index] = np.diff(seasonal[:, target_index], axis=0)
    return values, levels


def encode(
    pre: SeriesPreprocessing, frame: pd.DataFrame, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Scaled model-space values -> (inputs ``[rows, features]``, scaled targets ``[rows, targets]``)."""
    shift = pre.shift
    scaled = (values - np.asarray(pre.offset)) / np.asarray(pre.scale)
    inputs = scaled[:, [pre.numeric.index(c) for c in pre.inputs]]
    for column, categories in pre.categories.items():
        text = (
            frame[column].iloc[shift:].reset_index(drop=True).astype("string").fillna("<missing>")
        )
        encoded = np.stack([(text == c).to_numpy(dtype=np.float64) for c in categories], axis=1)
        inputs = np.concatenate([inputs, encoded], axis=1)
    return inputs, scaled[:, [pre.numeric.index(c) for c in pre.targets]]


def to_data_units(
    pre: SeriesPreprocessing, outputs: np.ndarray, levels: np.ndarray, first: np.ndarray
) -> np.ndarray:
    """Model outputs ``[samples, horizon * targets]`` -> values in the data's units; ``levels`` are the
    frame's levels (log levels with ``log``), ``first`` each window's first forecast row."""
    index = [pre.numeric.index(c) for c in pre.targets]
    base, seasons = inverse_bases(levels, first, index, pre.difference, pre.seasonal_lag)
    transform = SeriesTransform(
        offset=np.asarray(pre.offset)[index],
        scale=np.asarray(pre.scale)[index],
        log=pre.log,
        difference=pre.difference,
        base={"rows": base},
        season=pre.seasonal_lag,
        seasons={"rows": seasons} if seasons is not None else {},
    )
    return transform.inverse("rows", outputs)


def window_origins(frame: pd.DataFrame, date_column: str | None, rows: np.ndarray) -> np.ndarray:
    """What names a window: the date (ISO) of its last observed row, or that row's position."""
    if not date_column:
        return rows.astype(np.int64)
    dates = pd.to_datetime(frame[date_column].astype(str), format="mixed")
    return (
        dates.iloc[rows]
        .dt.strftime("%Y-%m-%d %H:%M:%S")
        .str.removesuffix(" 00:00:00")
        .to_numpy(dtype=object)
    )


def _columns(
    data: DataConfig, builtin: BuiltinDataset | None, frame: pd.DataFrame, where: str
) -> tuple[str | None, list[str], list[str]]:
    """The date column, the targets (the one numeric column when not set) and the input features."""
    date_column = data.date_column or (builtin.date_column if builtin else None)
    targets = data.target or ([builtin.target] if builtin else None)
    if targets is None:
        numeric = [
            c for c in frame.columns if c != date_column and pd.api.types.is_numeric_dtype(frame[c])
        ]
        if len(numeric) != 1:
            raise UserError(
                f"{where}: set data.target to the column(s) to predict (numeric columns: {numeric})"
            )
        targets = numeric
    features = data.features or targets
    needed = list(dict.fromkeys([*targets, *features, *([date_column] if date_column else [])]))
    missing_columns = [c for c in needed if c not in frame.columns]
    if missing_columns:
        raise UserError(
            f"{where}: no column {missing_columns[0]!r} (columns: {list(frame.columns)})"
        )
    return date_column, list(targets), list(features)


def _split(data: DataConfig, rows_read: int, shift: int, where: str) -> SplitRows:
    """Model-space rows of train, validation and test (chronological). The shares are taken of the rows
    read, so that differencing never moves the test split (every preprocessing is scored on the same
    test rows); the ``shift`` rows differencing uses up come off the training rows. Too few rows for
    the windows is an error."""
    read = split_rows(rows_read, data.split.validation, data.split.test)
    rows = SplitRows(read.train - shift, read.validation, read.test)
    if rows.train < data.lags + data.horizon:
        needed = next(n for n in range(rows_read + 1, rows_read + 10**7) if _enough(data, n, shift))
        raise UserError(
            f"{where}: {rows_read} rows are too few; lags={data.lags}, horizon={data.horizon} and a "
            f"{data.split.validation:.0%}/{data.split.test:.0%} validation/test split need at least {needed}"
        )
    return rows


def _seasonal_lag(data: DataConfig, season: int | None, where: str) -> int:
    """The lag of ``data.seasonal_difference``: the season (set, or inferred from the dates); 0 without it."""
    if not data.seasonal_difference:
        return 0
    if season is None:
        raise UserError(
            f"{where}: data.seasonal_difference needs a season; set data.season, or give a date column "
            "with a regular frequency (monthly, quarterly, weekly, daily, hourly)"
        )
    return season


def _enough(data: DataConfig, rows_read: int, shift: int) -> bool:
    return (
        split_rows(rows_read, data.split.validation, data.split.test).train - shift
        >= data.lags + data.horizon
    )


def prepare_timeseries(
    data: DataConfig,
    builtin: BuiltinDataset | None,
    path: Path | None,
    table: pd.DataFrame | None = None,
) -> Prepared:
    """A time-series source (a file, or ``table`` passed from Python) -> windows split chronologically,
    transformed and scaled on train rows only."""
    where = f"data.source {data.source}"
    frame = table.reset_index(drop=True) if table is not None else read_table(path, where)  # type: ignore[arg-type]
    date_column, targets, features = _columns(data, builtin, frame, where)
    frame, dates = sort_by_date(frame, date_column, where)
    season = data.season if data.season is not None or dates is None else infer_season(dates)

    categorical = [c for c in features if c not in targets and _is_categorical(frame[c])]
    numeric_columns = [c for c in dict.fromkeys([*targets, *features]) if c not in categorical]
    frame, values = numeric_values(frame, numeric_columns, data.missing, where)
    target_index = [numeric_columns.index(c) for c in targets]
    # the targets in the data's own units
    original = values[:, target_index].copy()
    seasonal_lag = _seasonal_lag(data, season, where)
    shift = seasonal_lag + (1 if data.difference else 0)
    # before any transform: too few rows is said plainly
    rows = _split(data, len(frame), shift, where)
    values, levels = model_space(
        values, target_index, data.log, data.difference, where, numeric_columns, seasonal_lag
    )
    offset, scale = fit_scaler(values[: rows.train], data.scale)
    training = frame.iloc[shift : shift + rows.train]
    pre = SeriesPreprocessing(
        targets=list(targets),
        numeric=numeric_columns,
        inputs=[c for c in features if c not in categorical],
        categories={
            c: sorted(training[c].astype("string").fillna("<missing>").unique())
            for c in categorical
        },
        date_column=date_column,
        lags=data.lags,
        horizon=data.horizon,
        log=data.log,
        difference=data.difference,
        missing=data.missing,
        offset=[float(v) for v in offset],
        scale=[float(v) for v in scale],
        seasonal_lag=seasonal_lag,
    )
    inputs, scaled_targets = encode(pre, frame, values)
    x, y = make_windows(inputs, scaled_targets, data.lags, data.horizon)
    starts = window_starts(len(values), data.lags, data.horizon)
    split = assign_windows(starts, data.lags, data.horizon, rows)

    # in original rows
    first_target = starts + data.lags + shift
    split_names = ("train", "val", "test")
    actual = {
        name: np.stack(
            [original[r : r + data.horizon].reshape(-1) for r in first_target[split == code]]
        )
        for code, name in enumerate(split_names)
    }
    bases = {
        name: inverse_bases(
            levels, first_target[split == code], target_index, data.difference, seasonal_lag
        )
        for code, name in enumerate(split_names)
    }
    transform = SeriesTransform(
        offset=offset[target_index],
        scale=scale[target_index],
        log=data.log,
        difference=data.difference,
        base={name: base for name, (base, _) in bases.items()},
        season=seasonal_lag,
        seasons={name: seasons for name, (_, seasons) in bases.items() if seasons is not None},
    )
    forecasts = naive_forecasts(
        original, starts[split == 2] + shift, data.lags, data.horizon, season
    )
    baselines = {
        name: regression_scores(actual["test"], forecast) for name, forecast in forecasts.items()
    }
    return Prepared(
        kind="timeseries",
        task="regression",
        x_train=x[split == 0],
        y_train=y[split == 0],
        x_val=x[split == 1],
        y_val=y[split == 1],
        x_test=x[split == 2],
        y_test=y[split == 2],
        output_dim=y.shape[1],
        transform=transform,
        actual=actual,
        baselines=baselines,
        preprocessing={"kind": "timeseries", **asdict(pre)},
        origins={"test": window_origins(frame, date_column, first_target[split == 2] - 1)},
        history=SeriesHistory(
            values=original,
            targets=list(targets),
            train_rows=shift + rows.train,
            origins=first_target[split == 2] - 1,
            horizon=data.horizon,
            season=season,
            naive=forecasts,
        ),
        info={
            "rows": len(frame),
            "targets": targets,
            "features": pre.feature_names,
            "season": season,
            "log": data.log,
            "difference": data.difference,
            "seasonal_difference": seasonal_lag,
            "split_rows": [rows.train, rows.validation, rows.test],
            "windows": [int((split == s).sum()) for s in range(3)],
        },
    )

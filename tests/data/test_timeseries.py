"""Time-series preparation: chronological split, no leakage, window shapes, baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hindsight_ray.config.schema import DataConfig
from hindsight_ray.core.errors import UserError
from hindsight_ray.data import BUILTINS, builtin_path, prepare
from hindsight_ray.data.timeseries import (
    assign_windows,
    fit_scaler,
    infer_season,
    make_windows,
    naive_forecasts,
    split_rows,
    window_starts,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_files_are_the_shared_copies(name):
    shared = SHARED / BUILTINS[name].file
    if not shared.exists():
        pytest.skip("../shared is not beside this checkout")
    assert builtin_path(BUILTINS[name]).read_bytes() == shared.read_bytes()


def test_airline_defaults_to_log_differences_with_standard_scaling_and_any_key_can_be_overridden():
    default = DataConfig()
    assert (default.log, default.difference, default.seasonal_difference, default.scale) == (True, True, True, "standard")
    raw = DataConfig(scale="minmax", log=False)
    assert (raw.log, raw.difference, raw.scale) == (False, True, "minmax")
    other = DataConfig(source="builtin:sunspots")
    assert (other.log, other.difference, other.scale) == (False, False, "minmax")
    prepared = prepare(default)
    passengers = pd.read_csv(builtin_path(BUILTINS["airline"]))["passengers"].to_numpy(float)
    # modelled as standardised log differences, scored back in passengers
    np.testing.assert_allclose(prepared.actual["test"].reshape(-1), passengers[-29:])
    assert abs(float(prepared.y_train.mean())) < 0.2 and 0.8 < float(prepared.y_train.std()) < 1.2


def test_airline_prepares_with_train_only_scaling_and_lag_windows():
    prepared = prepare(DataConfig(log=False, difference=False, seasonal_difference=False, scale="minmax"))
    raw = pd.read_csv(builtin_path(BUILTINS["airline"]))["passengers"].to_numpy(float)
    assert len(raw) == 144 and raw[0] == 112 and raw[-1] == 432
    assert prepared.x_train.shape[1:] == (12, 1) and prepared.y_train.shape[1] == 1
    assert prepared.info["split_rows"] == [86, 29, 29]
    # min-max fitted on the first 86 rows: training inputs stay in [0, 1]; later, larger values exceed 1
    assert prepared.x_train.min() == pytest.approx(0) and prepared.x_train.max() == pytest.approx(1)
    assert prepared.y_test.max() > 1
    assert prepared.transform.offset[0] == raw[:86].min()
    assert prepared.transform.scale[0] == raw[:86].max() - raw[:86].min()
    # targets come back in passengers
    np.testing.assert_allclose(prepared.in_data_units("test", prepared.y_test).reshape(-1), raw[-29:], rtol=1e-5)
    np.testing.assert_allclose(prepared.actual["test"].reshape(-1), raw[-29:])
    assert prepared.info["season"] == 12
    assert set(prepared.baselines) == {"persistence", "seasonal_naive"}


def test_windows_have_the_keras_shape_and_right_values():
    series = np.arange(10, dtype=float).reshape(-1, 1)
    x, y = make_windows(series, series, lags=3, horizon=2)
    assert x.shape == (6, 3, 1) and y.shape == (6, 2)
    assert x[0, :, 0].tolist() == [0, 1, 2] and y[0].tolist() == [3, 4]


def test_training_windows_never_target_validation_or_test_rows():
    rows = split_rows(50, 0.2, 0.2)
    assert (rows.train, rows.validation, rows.test) == (30, 10, 10)
    starts = window_starts(50, lags=5, horizon=3)
    split = assign_windows(starts, 5, 3, rows)
    last_target = starts + 5 + 3 - 1
    assert last_target[split == 0].max() < rows.train
    assert last_target[split == 1].max() < rows.train + rows.validation
    assert (np.diff(split) >= 0).all()  # chronological


def test_scaler_uses_training_rows_only():
    offset, scale = fit_scaler(np.array([[1.0], [3.0]]), "minmax")
    assert offset.tolist() == [1.0] and scale.tolist() == [2.0]
    offset, scale = fit_scaler(np.array([[2.0], [2.0]]), "standard")
    assert scale.tolist() == [1.0]  # constant column: no division by zero


def test_persistence_and_seasonal_naive():
    series = np.arange(30, dtype=float).reshape(-1, 1)
    forecasts = naive_forecasts(series, np.array([20]), lags=4, horizon=2, season=12)
    assert forecasts["persistence"].tolist() == [[23.0, 23.0]]
    assert forecasts["seasonal_naive"].tolist() == [[12.0, 13.0]]


def test_infer_season_from_dates():
    assert infer_season(pd.Series(pd.date_range("2000-01-01", periods=24, freq="MS"))) == 12
    assert infer_season(pd.Series(pd.date_range("2000-01-01", periods=24, freq="QS"))) == 4
    assert infer_season(pd.Series(pd.date_range("2000-01-01", periods=24, freq="YS"))) is None


def test_multivariate_csv_sorted_by_date(tmp_path):
    dates = pd.date_range("2020-01-01", periods=60, freq="D")
    frame = pd.DataFrame({"day": dates.astype(str), "load": np.sin(np.arange(60)), "temp": np.arange(60.0)})
    path = tmp_path / "load.csv"
    frame.iloc[::-1].to_csv(path, index=False)  # unsorted on disk
    prepared = prepare(DataConfig(source=str(path), target=["load"], features=["load", "temp"],
                                  date_column="day", lags=5, horizon=2))
    assert prepared.x_train.shape[1:] == (5, 2) and prepared.output_dim == 2
    assert prepared.info["season"] == 7
    # sorted: the last test target is the last day's load
    assert prepared.in_data_units("test", prepared.y_test)[-1, -1] == pytest.approx(np.sin(59), abs=1e-5)


@pytest.mark.parametrize(
    ("content", "settings", "message"),
    [
        ("a,b\n1,2\n", {"target": ["c"]}, "no column 'c'"),
        ("v\n" + "\n".join(["1"] * 20 + ["x"]), {"target": ["v"], "lags": 2}, "non-numeric values"),
        ("v\n" + "\n".join(["1"] * 10), {"target": ["v"], "lags": 12}, "too few"),
        ("v\n" + "\n".join(["1", "NA", "2"] * 20), {"target": ["v"], "lags": 2}, "20 missing values (v: 20)"),
        ("", {"target": ["v"]}, "empty"),
        ("v\n", {"target": ["v"]}, "no rows"),
        ("d,v\n2020-01-01,1\n2020-01-01,2\n" + "\n".join(f"2020-02-{i:02d},1" for i in range(1, 25)),
         {"target": ["v"], "date_column": "d", "lags": 2}, "repeats the date"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path, content, settings, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        prepare(DataConfig(source=str(path), **settings))
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_missing_values_can_be_interpolated(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("v\n" + "\n".join(["1", "NA", "3"] * 20))
    prepared = prepare(DataConfig(source=str(path), target=["v"], lags=2, missing="interpolate", scale="none"))
    assert np.isfinite(prepared.x_train).all()


def test_missing_file_and_unknown_builtin():
    with pytest.raises(UserError, match="file not found"):
        prepare(DataConfig(source="/nowhere/x.csv"))
    with pytest.raises(UserError, match="no such bundled dataset"):
        prepare(DataConfig(source="builtin:nope"))


@pytest.mark.parametrize(("log", "difference"), [(True, False), (False, True), (True, True)])
def test_log_and_difference_are_inverted_for_metrics(log, difference):
    prepared = prepare(DataConfig(log=log, difference=difference, horizon=3))
    raw = pd.read_csv(builtin_path(BUILTINS["airline"]))["passengers"].to_numpy(float)
    for split in ("train", "val", "test"):
        targets = prepared.split(split)[1]
        # the model's own targets, mapped back, are the real passenger counts
        np.testing.assert_allclose(prepared.in_data_units(split, targets), prepared.actual[split], rtol=1e-4)
        assert prepared.scores(split, targets)["rmse"] == pytest.approx(0, abs=0.05)
    assert prepared.actual["test"][-1, -1] == raw[-1]
    if difference:  # the model sees changes, not levels
        assert abs(prepared.x_train.mean()) < 1


def test_log_needs_positive_targets(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("v\n" + "\n".join(str(i - 5) for i in range(40)))
    with pytest.raises(UserError, match="data.log needs positive values, but column 'v'"):
        prepare(DataConfig(source=str(path), target=["v"], lags=2, log=True))


def test_multistep_windows_never_cross_into_test_targets():
    prepared = prepare(DataConfig(lags=6, horizon=4, log=False, difference=False, seasonal_difference=False))
    rows = prepared.info["split_rows"]
    raw = pd.read_csv(builtin_path(BUILTINS["airline"]))["passengers"].to_numpy(float)
    train_targets = set(prepared.actual["train"].reshape(-1))
    assert max(prepared.actual["train"].reshape(-1)) <= raw[: rows[0]].max()
    assert prepared.y_train.shape[1] == 4 and train_targets <= set(raw[: rows[0]])


def test_categorical_features_are_one_hot_from_training_categories(tmp_path):
    n = 80
    frame = pd.DataFrame({"sales": np.arange(n, dtype=float) % 7 + 1,
                          "weekday": [("mon", "tue", "wed")[i % 3] for i in range(n - 10)] + ["holiday"] * 10})
    path = tmp_path / "sales.parquet"
    frame.to_parquet(path)
    prepared = prepare(DataConfig(source=str(path), target=["sales"], features=["sales", "weekday"], lags=3))
    assert prepared.info["features"] == ["sales", "weekday=mon", "weekday=tue", "weekday=wed"]
    assert prepared.x_train.shape[2] == 4
    assert prepared.x_test[-1, :, 1:].sum() == 0  # "holiday" never seen in training: all zeros
    assert prepared.x_train[:, :, 1:].sum(axis=2).min() == 1  # exactly one category per training row


def test_standard_scaling_uses_training_rows_only():
    prepared = prepare(DataConfig(scale="standard", log=False, difference=False, seasonal_difference=False))
    raw = pd.read_csv(builtin_path(BUILTINS["airline"]))["passengers"].to_numpy(float)
    assert prepared.transform.offset[0] == pytest.approx(raw[:86].mean())
    assert prepared.transform.scale[0] == pytest.approx(raw[:86].std())


def test_sunspots_yearly_has_no_season():
    prepared = prepare(DataConfig(source="builtin:sunspots", lags=11))
    assert prepared.info["rows"] == 309 and prepared.info["season"] is None
    assert set(prepared.baselines) == {"persistence"}


def test_undecodable_bytes_are_an_error(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("v\n1\n2\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        prepare(DataConfig(source=str(path), target=["v"]))


def test_missing_rows_can_be_dropped_and_scaling_switched_off(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("v\n" + "\n".join(["1", "NA", "3"] * 20))
    prepared = prepare(DataConfig(source=str(path), target=["v"], lags=2, missing="drop", scale="none"))
    assert prepared.info["rows"] == 40
    assert set(np.unique(prepared.x_train)) <= {1.0, 3.0}  # raw values, nothing interpolated or scaled


@pytest.mark.parametrize("horizon", [1, 3, 14])  # 14: past one season, forecasts add back forecasts
@pytest.mark.parametrize("difference", [True, False])
def test_seasonal_differencing_round_trips_to_the_datas_units_on_the_same_test_rows(horizon, difference):
    plain = prepare(DataConfig(horizon=horizon, difference=difference))
    seasonal = prepare(DataConfig(horizon=horizon, difference=difference, seasonal_difference=True))
    assert seasonal.info["seasonal_difference"] == 12 and seasonal.preprocessing["seasonal_lag"] == 12
    # the split is taken of the rows read: differencing never moves the test rows
    assert seasonal.info["windows"][1:] == plain.info["windows"][1:]
    np.testing.assert_array_equal(seasonal.actual["test"], plain.actual["test"])
    for split in ("train", "val", "test"):
        _, y = seasonal.split(split)
        np.testing.assert_allclose(seasonal.in_data_units(split, y), seasonal.actual[split], rtol=1e-5)


def test_seasonal_differences_are_what_the_model_sees():
    frame = pd.DataFrame({"month": pd.date_range("2000-01", periods=60, freq="MS"), "y": np.arange(60.0) ** 1.5 + 10})
    prepared = prepare(DataConfig(source="dataframe", date_column="month", lags=3, seasonal_difference=True, scale="none"),
                       table=frame)
    y = frame.y.to_numpy()
    wanted = y[12:] - y[:-12]  # the first window's inputs: the first three seasonal differences
    np.testing.assert_allclose(prepared.x_train[0, :, 0], wanted[:3], rtol=1e-5)
    np.testing.assert_allclose(prepared.y_train[0, 0], wanted[3], rtol=1e-5)


def test_seasonal_differencing_without_a_season_is_one_line():
    frame = pd.DataFrame({"y": np.arange(50.0)})  # no dates: no season to infer
    with pytest.raises(UserError, match="data.seasonal_difference needs a season; set data.season"):
        prepare(DataConfig(source="dataframe", seasonal_difference=True), table=frame)
    prepared = prepare(DataConfig(source="dataframe", seasonal_difference=True, season=5, lags=3), table=frame)
    assert prepared.info["seasonal_difference"] == 5


def test_a_complex_valued_column_is_refused_not_cut_to_its_real_part():
    frame = pd.DataFrame({"y": np.arange(60.0) + 1j})
    with pytest.raises(UserError, match="column 'y' holds complex numbers"):
        prepare(DataConfig(source="dataframe", lags=3), table=frame)
    mixed = pd.DataFrame({"y": [*range(59), 3 + 4j]}, dtype=object)
    with pytest.raises(UserError, match="complex numbers"):
        prepare(DataConfig(source="dataframe", lags=3, target="y"), table=mixed)

"""End to end: real two-stage sweeps on a real local Ray, training real Keras models on tiny data."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hindsight_ray.config.schema import load_config
from hindsight_ray.core.objective import is_better
from hindsight_ray.running.runner import run_sweep
from hindsight_ray.search.rules import next_learning_rate

pytestmark = pytest.mark.slow

TINY = [
    "search.stage1.layers=[1,2]", "search.stage1.units=[4,8]", "search.stage1.epochs=3",
    "search.stage2.max_iterations=4", "search.stage2.epochs=3", "run.checkpoint_every=2",
    "data.lags=6",
]


@pytest.fixture(scope="module")
def airline_sweep(local_ray, tmp_path_factory):
    storage = tmp_path_factory.mktemp("results")
    # report_seconds 60: every epoch that is not checkpointed (only epoch 1 here) reaches Tune with the next report
    config = load_config(None, [*TINY, "run.report_seconds=60", f"storage={storage}", "name=tiny"])
    lines: list[str] = []
    summary = run_sweep(config, echo=lines.append)
    experiment = storage / "tiny"
    return config, summary, experiment, lines


def overlaps(a: pd.Series, b: pd.Series) -> bool:
    return a.started_at < b.finished_at and b.started_at < a.finished_at


def test_every_trial_is_recorded_with_timings(airline_sweep):
    _, summary, experiment, _ = airline_sweep
    trials = pd.read_parquet(experiment / "trials.parquet")
    assert len(trials) == 4 + 3 and (trials.status == "TERMINATED").all()
    for column in ["queue_s", "data_s", "build_s", "train_s", "eval_s", "checkpoint_s", "total_s", "params",
                   "val_rmse", "best_epoch", "node_ip", "started_at", "finished_at", "queued_at"]:
        assert trials[column].notna().all(), column
    assert (trials.total_s >= trials.train_s).all() and (trials.queue_s >= 0).all()
    assert (trials.retries == 0).all() and (trials.strategy == "two_stage").all()
    epochs = pd.read_parquet(experiment / "epochs.parquet")
    assert len(epochs) == trials.epochs.sum()
    for trial_id, rows in epochs.groupby("trial_id"):
        assert rows.epoch.tolist() == list(range(1, 4)), trial_id
    # epoch 1 reached Tune with epoch 2's report (run.report_seconds), the checkpointed epochs 2 and 3 each alone
    reports = [len(path.read_text().splitlines()) for path in experiment.glob("*/result.json")]
    assert reports == [2] * len(trials)
    assert {"trial_id", "epoch", "loss", "val_loss", "val_rmse", "epoch_s"} <= set(epochs.columns)
    assert summary["trial_epochs"] == trials.epochs.sum()


def test_stage1_overlapped_and_stage2_ran_alone_after_the_barrier(airline_sweep):
    _, _, experiment, _ = airline_sweep
    trials = pd.read_parquet(experiment / "trials.parquet")
    stage1 = [row for _, row in trials[trials.stage == 1].iterrows()]
    stage2 = [row for _, row in trials[trials.stage == 2].iterrows()]
    assert any(overlaps(a, b) for a, b in itertools.combinations(stage1, 2)), "stage-1 trials never overlapped"
    assert not any(overlaps(a, b) for a, b in itertools.combinations(stage2, 2))
    assert min(r.started_at for r in stage2) >= max(r.finished_at for r in stage1)


def test_the_two_stage_rule_was_followed(airline_sweep):
    config, summary, experiment, _ = airline_sweep
    trials = pd.read_parquet(experiment / "trials.parquet")
    stage1 = trials[trials.stage == 1]
    best_score = stage1.val_rmse.min()
    tied = stage1[stage1.val_rmse == best_score].sort_values("params")
    winner = tied.iloc[0]
    stage2 = trials[trials.stage == 2].sort_values("started_at")
    assert (stage2.layers == winner.layers).all() and (stage2.units == winner.units).all()
    assert (stage2.epochs == 3).all() and (stage1.learning_rate == 0.001).all()

    max_lr = config.search.stage2.max_learning_rate
    expected, previous = max_lr, None
    for _, row in stage2.iterrows():
        assert row.learning_rate == pytest.approx(expected)
        improved = previous is None or is_better(row.val_rmse, previous, "min")
        expected, previous = next_learning_rate(row.learning_rate, max_lr, improved), row.val_rmse
    path = summary["stage2"]["learning_rate_path"]
    assert [p["learning_rate"] for p in path] == pytest.approx(stage2.learning_rate.tolist())
    best = trials.loc[trials.val_rmse.idxmin()]
    assert summary["best"]["trial_id"] == best.trial_id
    assert summary["best"]["test_rmse"] == pytest.approx(best.test_rmse)


def test_every_trial_has_a_checkpoint_keras_opens(airline_sweep):
    import keras

    _, summary, experiment, _ = airline_sweep
    trials = pd.read_parquet(experiment / "trials.parquet")
    for _, row in trials.iterrows():
        state = json.loads((experiment / row.checkpoint_path / "state.json").read_text())
        assert state["epoch"] == row.epochs  # the last epoch is checkpointed even off the checkpoint_every beat
        model = keras.models.load_model(f"{row.checkpoint_path}/model.keras", safe_mode=True)
        assert model.count_params() == row.params
    best = keras.models.load_model(experiment / "best_model.keras", safe_mode=True)
    assert best.count_params() == trials.set_index("trial_id").params[summary["best"]["trial_id"]]


def test_scores_are_best_epochs_and_the_exported_model_reproduces_the_best(airline_sweep):
    """search.score best_epoch: every trial's score is the best of its epoch curve; the checkpoint of that
    epoch is kept beside the latest one, and best_model.keras is it (same validation score to 1e-5)."""
    import keras

    from hindsight_ray.data import prepare
    from hindsight_ray.training.checkpoints import BEST_WEIGHTS_FILE, load_scored_model
    from hindsight_ray.training.trainable import predict

    config, summary, experiment, _ = airline_sweep
    trials = pd.read_parquet(experiment / "trials.parquet")
    epochs = pd.read_parquet(experiment / "epochs.parquet")
    prepared = prepare(config.data, seed=config.seed)
    # CPU training is deterministic: this tiny sweep has trials whose best epoch is not their last
    assert (trials.best_epoch < trials.epochs).any() and (trials.best_epoch == trials.epochs).any()
    for _, row in trials.iterrows():
        curve = epochs[epochs.trial_id == row.trial_id].sort_values("epoch")
        assert row.val_rmse == curve.val_rmse.min() and row.last_val_rmse == curve.val_rmse.iloc[-1]
        assert row.best_epoch == row.score_epoch == curve.epoch[curve.val_rmse.idxmin()]
        kept_apart = (experiment / row.checkpoint_path / BEST_WEIGHTS_FILE).exists()
        assert kept_apart == (row.best_epoch < row.epochs)
        model = load_scored_model(str(experiment / row.checkpoint_path))
        assert prepared.scores("val", predict(model, prepared.x_val))["rmse"] == pytest.approx(row.val_rmse, abs=1e-5)
    best = summary["best"]
    row = trials.set_index("trial_id").loc[best["trial_id"]]
    assert best["validation"] == row.val_rmse and best["epoch"] == row.best_epoch
    exported = keras.models.load_model(experiment / "best_model.keras", safe_mode=True)
    assert prepared.scores("val", predict(exported, prepared.x_val))["rmse"] == pytest.approx(
        best["validation"], abs=1e-5)


def test_tensorboard_has_every_epoch_readable_run_names_the_metric_first_and_hparams(airline_sweep):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    _, summary, experiment, _ = airline_sweep
    trials = pd.read_parquet(experiment / "trials.parquet")
    root = experiment / "tensorboard"
    runs = json.loads((root / "runs.json").read_text())
    assert sorted(runs) == sorted(trials.trial_id)
    for row in trials.itertuples():
        name = runs[row.trial_id]
        assert name.startswith(f"{row.layers}x{row.units} lr={row.learning_rate:g} #"), name
        events = event_accumulator.EventAccumulator(str(root / name), size_guidance={"scalars": 0})
        events.Reload()
        tags = events.Tags()["scalars"]
        assert sorted(tags)[0] == "1_score/val_rmse" and "3_training/loss" in tags  # the sweep's metric first
        # every epoch at its own step, though Tune got most of them folded into one report (report_seconds 60)
        assert [e.step for e in events.Scalars("1_score/val_rmse")] == list(range(1, row.epochs + 1))
        assert "hparam/val_rmse" in tags and events.PluginTagToContent("hparams")  # the HParams view's data


def test_summary_and_console(airline_sweep):
    _, summary, experiment, lines = airline_sweep
    on_disk = json.loads((experiment / "summary.json").read_text())
    assert on_disk["best"] == summary["best"]
    assert set(on_disk["baselines"]) == {"persistence", "seasonal_naive", "sarima", "ets"}
    assert on_disk["baselines"]["sarima"]["model"] == "SARIMA(0,1,1)(0,1,1)12 on log"
    assert on_disk["baselines"]["sarima"]["rmse"] == pytest.approx(15.69, abs=0.05)  # the textbook airline model
    verdict = "WORSE than the best baseline" if summary["best"]["test_rmse"] > 15.69 else "better than every baseline"
    assert verdict in lines[-1] and verdict in (experiment / "report.md").read_text().splitlines()[2]
    assert on_disk["metric"] == "val_rmse" and on_disk["mode"] == "min"
    assert on_disk["wall_s"] > 0 and on_disk["trial_s"] > 0
    assert any(line.startswith("stage 1: 4/4 done, best units=") for line in lines)
    assert any(line.startswith("stage 2: iteration 3/3 lr=") for line in lines)
    assert any(str(experiment) in line for line in lines if line.startswith("results in"))
    assert any(line.startswith(f"tensorboard --logdir {experiment}/tensorboard  #") for line in lines)  # one hint
    assert lines[-1].startswith("done in ") and sum(line.startswith("tensorboard") for line in lines) == 1
    report = (experiment / "report.md").read_text()
    page = (experiment / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 6 and "<table>" in page
    for plot in ("stage1_heatmap.png", "stage2_path.png", "timeline.png", "learning_curves.png", "predictions.png",
                 "baselines.png"):
        assert plot in report and (experiment / plot).stat().st_size > 1000, plot
        pixels = __import__("matplotlib.image").image.imread(experiment / plot)
        drawn = np.unique(pixels.reshape(-1, pixels.shape[-1])[::7], axis=0)
        assert pixels.shape[0] > 150 and pixels.shape[1] > 300 and len(drawn) > 20, plot  # a picture, not a blank
    predictions = pd.read_parquet(experiment / "test_predictions.parquet")
    assert len(predictions) == summary["data"]["windows"][2] and predictions.actual.min() > 100  # passengers
    assert {"persistence", "seasonal_naive", "sarima", "ets"} <= set(predictions.columns)


def _chromium_shot(browser: str, page: Path, shot: Path, size: str) -> np.ndarray:
    """Chromium's screenshot of ``page`` as an RGB array (values 0-1)."""
    import subprocess

    from matplotlib.image import imread

    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={size}", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=False)
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"no screenshot of {page.name}"
    return imread(shot)[..., :3]


def _drawn(pixels: np.ndarray) -> float:
    """The fraction of a screenshot that is not white: what a picture drew."""
    return float((pixels.min(axis=2) < 0.9).mean())


def test_report_html_renders_in_headless_chromium(airline_sweep, tmp_path):
    """The page as a browser shows it: every picture decodes and draws something (each one alone on a page,
    screenshot by Chromium), a picture that is missing or empty is caught, and the whole page is drawn."""
    import re
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no headless Chromium on this machine (apt-get install chromium); parsed in test_report instead")
    _, _, experiment, _ = airline_sweep
    page = (experiment / "report.html").read_text()
    sources = re.findall(r'<img alt="([^"]*)"[^>]* src="(data:image/png;base64,[^"]+)"', page)
    assert len(sources) >= 5, "the report's pictures"
    broken = sources[0][1][:120]  # a picture cut short: the browser draws a broken-image mark at most
    for index, (alt, source) in enumerate([*sources, ("cut short", broken), ("empty", "")]):
        alone = tmp_path / f"picture{index}.html"
        alone.write_text(f'<html><body style="margin:0;background:#fff"><img src="{source}"></body></html>')
        drawn = _drawn(_chromium_shot(browser, alone, tmp_path / f"picture{index}.png", "1000,800"))
        if alt in ("cut short", "empty"):
            assert drawn < 0.001, (alt, drawn)  # the check below sees a missing picture
        else:
            assert drawn > 0.005, (alt, drawn)
    whole = _chromium_shot(browser, experiment / "report.html", tmp_path / "report.png", "1400,2400")
    assert _drawn(whole) > 0.1


def test_text_sweep_classifies(local_ray, tmp_path):
    rng = np.random.default_rng(0)
    good, bad, filler = ["great", "superb", "moving"], ["awful", "boring", "dull"], ["plot", "actor", "film", "the"]
    rows = []
    for i in range(120):
        label = i % 2
        words = list(rng.choice(filler, 6)) + list(rng.choice(good if label else bad, 2))
        rng.shuffle(words)
        rows.append({"text": " ".join(words) + " <br /> ", "label": "positive" if label else "negative"})
    source = tmp_path / "reviews.csv"
    pd.DataFrame(rows).to_csv(source, index=False)
    config = load_config(None, [
        "data.kind=text", f"data.source={source}", "data.max_length=12", "data.num_words=50",
        "search.stage1.layers=[1]", "search.stage1.units=[4,8]", "search.stage1.epochs=2",
        "search.stage1.learning_rate=0.01", "search.stage2.max_iterations=1", "search.stage2.epochs=2",
        f"storage=file://{tmp_path / 'out'}", "name=text",  # a pyarrow URI, as s3:// would be
    ])
    summary = run_sweep(config, echo=lambda line: None)
    assert summary["metric"] == "val_accuracy" and summary["mode"] == "max"
    assert 0 <= summary["best"]["test_accuracy"] <= 1
    assert summary["baselines"]["majority_class"]["accuracy"] == pytest.approx(0.5)
    trials = pd.read_parquet(tmp_path / "out" / "text" / "trials.parquet")
    assert len(trials) == 2 + 2 and trials.val_accuracy.notna().all()
    predictions = pd.read_parquet(tmp_path / "out" / "text" / "test_predictions.parquet")
    assert set(predictions.actual) == {"negative", "positive"} and len(predictions) == 24
    assert (predictions.actual == predictions.predicted).mean() == pytest.approx(summary["best"]["test_accuracy"])
    report = (tmp_path / "out" / "text" / "report.md").read_text().splitlines()
    matrix = report[report.index("| true \\ predicted | negative | positive |") + 2:][:2]
    assert sum(int(cell) for row in matrix for cell in row.strip("|").split("|")[1:]) == 24, matrix


def small_sweep(source_settings: list[str], storage, name: str) -> dict:
    config = load_config(None, [
        *source_settings, "search.stage1.layers=[1]", "search.stage1.units=[4]", "search.stage1.epochs=2",
        "search.stage2.max_iterations=1", "search.stage2.epochs=2", f"storage={storage}", f"name={name}",
    ])
    return run_sweep(config, echo=lambda line: None)


def test_sunspots_log_difference_sweep(local_ray, tmp_path):
    summary = small_sweep(["data.source=builtin:sunspots", "data.lags=11", "data.horizon=2", "data.difference=true",
                           "model.loss=mae", "model.dropout=0.1", "model.optimizer=adam"], tmp_path, "sun")
    assert summary["best"]["test_rmse"] > 0 and set(summary["baselines"]) == {"persistence", "sarima", "ets"}
    assert "failed" not in summary["baselines"]["sarima"]  # one model per step of the 2-step horizon
    assert summary["data"]["difference"] is True


def test_aclimdb_and_npz_sweeps(local_ray, tmp_path):
    from tests.data.test_imdb import keras_npz, write_acl

    write_acl(tmp_path, per_class=12)
    acl = small_sweep(["data.kind=text", f"data.source={tmp_path / 'aclImdb'}", "data.max_length=10",
                       "model.bidirectional=true"], tmp_path / "out", "acl")
    assert acl["data"]["source"].endswith("aclImdb") and 0 <= acl["best"]["test_accuracy"] <= 1
    keras_npz(tmp_path / "imdb.npz", np.random.default_rng(1))
    npz = small_sweep(["data.kind=text", f"data.source={tmp_path / 'imdb.npz'}", "data.num_words=30",
                       "data.max_length=8"], tmp_path / "out", "npz")
    assert npz["data"]["windows"][2] == 10


def test_speculative_sweep_follows_the_sequential_path(airline_sweep, tmp_path):
    """The same sweep again with speculation on: training is deterministic on CPU (the same seed scores every
    stage-1 trial the same), and stage 2 takes the sequential rule's path to the same best model."""
    _, sequential, experiment, _ = airline_sweep
    config = load_config(None, [*TINY, "search.stage2.speculative=true", f"storage={tmp_path}", "name=spec"])
    summary = run_sweep(config, echo=lambda line: None)
    first, again = (pd.read_parquet(folder / "trials.parquet") for folder in (experiment, tmp_path / "spec"))
    key = ["layers", "units"]
    pd.testing.assert_series_equal(first[first.stage == 1].set_index(key).val_rmse.sort_index(),
                                   again[again.stage == 1].set_index(key).val_rmse.sort_index(), rtol=1e-6)
    strip = lambda path: [(s["learning_rate"], round(s["score"], 9), s["improved"]) for s in path]  # noqa: E731
    assert strip(summary["stage2"]["learning_rate_path"]) == strip(sequential["stage2"]["learning_rate_path"])
    assert summary["best"]["learning_rate"] == sequential["best"]["learning_rate"]
    assert summary["best"]["test_rmse"] == pytest.approx(sequential["best"]["test_rmse"])
    trials = pd.read_parquet(tmp_path / "spec" / "trials.parquet")
    stage2 = trials[trials.stage == 2]
    assert stage2.speculative.any()
    assert set(stage2[stage2.used].learning_rate) == {s["learning_rate"] for s in summary["stage2"]["learning_rate_path"]}
    # a speculative trial off the path is stopped, or finished before the rule knew it was not needed
    assert stage2[~stage2.used].status.isin(["STOPPED", "TERMINATED"]).all()


def test_asha_early_stops_stage1_and_only_full_trials_win(local_ray, tmp_path):
    config = load_config(None, [
        "search.stage1.layers=[1,2]", "search.stage1.units=[2,4,8,16]", "search.stage1.epochs=9",
        "search.stage1.early_stop=asha", "search.stage2.max_iterations=1", "search.stage2.epochs=2",
        "data.lags=6", f"storage={tmp_path}", "name=asha",
    ])
    summary = run_sweep(config, echo=lambda line: None)
    trials = pd.read_parquet(tmp_path / "asha" / "trials.parquet")
    stage1 = trials[trials.stage == 1]
    epochs = pd.read_parquet(tmp_path / "asha" / "epochs.parquet").groupby("trial_id").epoch.max()
    early = stage1[stage1.status == "STOPPED"]
    assert len(early) >= 1, "ASHA stopped nothing"
    assert (epochs[early.trial_id] < 9).all() and early.val_rmse.isna().all()
    winner = summary["stage1"]["winner"]["trial_id"]
    assert winner not in set(early.trial_id) and epochs[winner] == 9
    assert len(stage1) == 8 and summary["stage2"]["learning_rate_path"]


def test_an_ensemble_of_the_best_trials_is_chosen_on_validation_and_exported_as_one_model(local_ray, tmp_path):
    import keras

    from hindsight_ray.data import BUILTINS, builtin_path
    from hindsight_ray.reporting.predictor import Predictor

    summary = small_sweep(["data.lags=6", "search.ensemble=3"], tmp_path, "ens")
    ensemble = summary["best"]["ensemble"]
    scores = ensemble["validation_by_k"]
    assert len(scores) == 3 and ensemble["k"] == 1 + min(range(3), key=lambda i: (scores[i], i))
    assert scores[0] == pytest.approx(summary["best"]["validation"], rel=1e-5)  # k = 1: the chosen trial alone
    assert len(ensemble["trial_ids"]) == ensemble["k"] and ensemble["trial_ids"][0] == summary["best"]["trial_id"]
    experiment = tmp_path / "ens"
    model = keras.models.load_model(experiment / "best_model.keras", safe_mode=True)
    assert (model.name == "ensemble") == (ensemble["k"] > 1)
    raw = pd.read_csv(builtin_path(BUILTINS["airline"]))
    forecasts = Predictor.load(experiment).predict(raw)  # the exported model replays the tested predictions
    saved = pd.read_parquet(experiment / "test_predictions.parquet").merge(forecasts, on="origin")
    np.testing.assert_allclose(saved["passengers_t+1"], saved.predicted, rtol=1e-5)

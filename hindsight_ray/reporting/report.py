"""Tables -> ``report.md`` with PNG plots, for one sweep and for a campaign."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd

from hindsight_ray.core.experiment import ExperimentStore
from hindsight_ray.core.layout import (
    EPOCHS_FILE,
    PREDICTIONS_FILE,
    REPORT_FILE,
    SUMMARY_FILE,
    TRIALS_FILE,
)
from hindsight_ray.core.objective import Objective, baseline_verdict, is_better
from hindsight_ray.core.trials import TrialState


def _figure(figsize: tuple[float, float]) -> tuple[Any, Any]:
    """A figure and its axis, drawn off-screen by Agg without pyplot: no global backend switched in the
    caller's process (a notebook keeps its own), and safe to draw from a background thread."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize)
    return figure, figure.subplots()


def _save(store: ExperimentStore, figure: Any, name: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    store.write_bytes(name, buffer.getvalue())
    return name


def anytime(trials: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """Best-so-far validation score against cumulative trial-seconds, trials taken in order of finishing."""
    done = trials.dropna(subset=["finished_at", "total_s"]).sort_values("finished_at")
    best, rows, spent = None, [], 0.0
    for _, trial in done.iterrows():
        spent += float(trial.total_s)
        score = trial.get(metric)
        if score is not None and not pd.isna(score) and is_better(float(score), best, mode):
            best = float(score)
        rows.append({"trial_s": spent, "best": best})
    return pd.DataFrame(rows, columns=["trial_s", "best"])


def seconds_to_within(
    curve: pd.DataFrame, final: float | None, mode: str, tolerance: float = 0.01
) -> float | None:
    """Trial-seconds until the best-so-far came within ``tolerance`` (relative) of ``final``."""
    if final is None or curve.empty:
        return None
    margin = abs(final) * tolerance
    near = curve.best.notna() & (
        (curve.best <= final + margin) if mode == "min" else (curve.best >= final - margin)
    )
    return float(curve.trial_s[near].iloc[0]) if near.any() else None


# -- one sweep ------------------------------------------------------------------------------
def _heatmap(store, trials, metric, winner_cell=None, summary=None):
    stage1 = trials[(trials.stage == 1) & trials[metric].notna()]
    if stage1.empty:
        return None
    table = stage1.pivot_table(index="layers", columns="units", values=metric)
    figure, axis = _figure((1.2 + 0.9 * len(table.columns), 1.2 + 0.7 * len(table.index)))
    # a robust colour scale: one diverged architecture must not wash out the others
    low, high = np.nanpercentile(table.values, [5, 95]) if table.size > 3 else (None, None)
    image = axis.imshow(
        table.values,
        cmap="viridis_r" if metric != "val_accuracy" else "viridis",
        aspect="auto",
        vmin=low,
        vmax=high,
    )
    axis.set_xticks(range(len(table.columns)), table.columns)
    axis.set_yticks(range(len(table.index)), table.index)
    axis.set_xlabel("units (LSTM width)")
    axis.set_ylabel("layers (LSTM depth)")
    low, high = np.nanmin(table.values), np.nanmax(table.values)
    for (row, column), value in np.ndenumerate(table.values):
        if not np.isnan(value):
            dark = (value - low) / ((high - low) or 1) > 0.5
            if metric == "val_accuracy":
                dark = not dark
            axis.text(
                column,
                row,
                f"{value:.3g}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if dark else "black",
            )
    figure.colorbar(
        image, label=metric_label(metric, summary), extend="both" if low is not None else "neither"
    )
    winner = winner_cell or {}
    if winner.get("layers") in table.index and winner.get("units") in table.columns:
        row, column = (
            list(table.index).index(winner["layers"]),
            list(table.columns).index(winner["units"]),
        )
        from matplotlib.patches import Rectangle

        axis.add_patch(
            Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", lw=2.5)
        )
    clipped = ", colours clipped to the 5-95th percentile" if low is not None else ""
    axis.set_title(f"stage 1: architecture grid (red: the winner{clipped})", fontsize=9)
    return _save(store, figure, "stage1_heatmap.png")


def _lr_path(store, summary, metric):
    path = (summary.get("stage2") or {}).get("learning_rate_path") or []
    if not path:
        return None
    figure, axis = _figure((6, 3.2))
    iterations = [step["iteration"] for step in path]
    rates = [step["learning_rate"] for step in path]
    axis.plot(iterations, rates, "-", color="tab:blue", lw=1)
    improved = [step["improved"] for step in path]
    axis.scatter(
        [i for i, up in zip(iterations, improved, strict=True) if up],
        [r for r, up in zip(rates, improved, strict=True) if up],
        marker="o",
        color="tab:blue",
        zorder=3,
        label="improved: halve next",
    )
    axis.scatter(
        [i for i, up in zip(iterations, improved, strict=True) if not up],
        [r for r, up in zip(rates, improved, strict=True) if not up],
        marker="x",
        color="tab:blue",
        zorder=3,
        label="no better: bisect back",
    )
    axis.set_yscale("log")
    # whole iterations only
    axis.set_xticks(iterations)
    axis.set_xlabel("stage-2 iteration")
    axis.set_ylabel("learning rate", color="tab:blue")
    twin = axis.twinx()
    scores = [step["score"] for step in path]
    twin.plot(iterations, scores, "s--", color="tab:red", alpha=0.7)
    best = (summary.get("best") or {}).get("trial_id")
    for iteration, step in zip(iterations, path, strict=True):
        if step["trial_id"] == best and step["score"] is not None:
            _star(
                twin,
                [iteration],
                [step["score"]],
                f"best: lr {step['learning_rate']:.4g}",
                size=160,
            )
    twin.set_ylabel(f"{metric_label(metric, summary)}, trial score", color="tab:red")
    _legend_below(axis, twin)
    axis.set_title("stage 2: learning-rate path")
    return _save(store, figure, "stage2_path.png")


def timeline_rows(ran: pd.DataFrame) -> list[str]:
    """Each trial's row in the timeline: its node and GPU (or CPU), then a slot, the first free one there when
    it started (trials that share a GPU or a node's CPUs each get their own slot)."""
    node = ran.get("node_ip", pd.Series("", index=ran.index)).fillna("").astype(str)
    gpu = ran.get("gpu_ids", pd.Series("", index=ran.index)).fillna("").astype(str)
    place = np.where(gpu != "", node + " GPU " + gpu, node + " CPU").tolist()
    rows: dict[Any, str] = {}
    free_at: dict[str, list[float]] = {}
    for index in ran.sort_values("started_at").index:
        where = place[ran.index.get_loc(index)].strip()
        lanes = free_at.setdefault(where, [])
        started, finished = ran.at[index, "started_at"], ran.at[index, "finished_at"]
        lane = next((i for i, end in enumerate(lanes) if end <= started + 1e-6), len(lanes))
        if lane == len(lanes):
            lanes.append(finished)
        else:
            lanes[lane] = finished
        rows[index] = f"{where} · slot {lane + 1}"
    return [rows[index] for index in ran.index]


def _timeline(store, trials):
    ran = trials.dropna(subset=["started_at", "finished_at"]).copy()
    if ran.empty:
        return None
    ran["row"] = timeline_rows(ran)
    rows = sorted(ran.row.unique())
    start = ran.started_at.min()
    span = max(float(ran.finished_at.max() - start), 1e-9)
    width_in = 9.0
    figure, axis = _figure((width_in, 1.0 + 0.45 * len(rows)))
    # a 6-pt character in seconds of the x axis
    seconds_per_char = span / (width_in * 0.8) * 6 * 0.6 / 72
    colors = {1: "tab:blue", 2: "tab:orange"}
    hidden = 0
    for _, trial in ran.iterrows():
        stage = trial.get("stage")
        unused = (
            trial.get("status") == TrialState.STOPPED
            or trial.get("used") is False
            or trial.get("used") == 0
        )
        color = "lightgray" if unused else colors.get(stage, "tab:green")
        width = trial.finished_at - trial.started_at
        axis.barh(
            rows.index(trial.row),
            width,
            left=trial.started_at - start,
            color=color,
            edgecolor="black",
            linewidth=0.4,
        )
        lr = trial.get("learning_rate")
        label = f"{trial.get('layers')}x{trial.get('units')}" + (
            "" if stage == 1 or pd.isna(lr) else f" {lr:.3g}"
        )
        if len(label) * seconds_per_char > width * 0.95:
            # a label wider than its bar would cover its neighbours
            label = "" if stage == 1 or pd.isna(lr) else f"{lr:.3g}"
        if not label or len(label) * seconds_per_char > width * 0.95:
            hidden += 1
            continue
        axis.text(
            trial.started_at - start + width / 2,
            rows.index(trial.row),
            label,
            ha="center",
            va="center",
            fontsize=6,
            clip_on=True,
        )
    axis.set_yticks(range(len(rows)), rows, fontsize=7)
    axis.set_xlabel("seconds since the first trial started")
    note = f"; {hidden} bars too short to label (stage 2's rates: the path above)" if hidden else ""
    axis.set_title(
        "trial timeline by node, device and slot: layers x units [lr] (blue: stage 1, orange: stage 2, green: other, "
        f"gray: stopped or unused){note}",
        fontsize=8,
    )
    return _save(store, figure, "timeline.png")


def _learning_curves(store, epochs, trials, metric, best=None, summary=None):
    if epochs.empty or metric not in epochs:
        return None
    stages = trials.set_index("trial_id").stage.to_dict()
    figure, axis = _figure((6.5, 3.5))
    best = best or {}
    for trial_id, rows in epochs.groupby("trial_id"):
        if trial_id == best.get("trial_id"):
            continue
        stage = stages.get(trial_id)
        axis.plot(
            rows.epoch,
            rows[metric],
            color="tab:orange" if stage == 2 else "tab:blue",
            alpha=0.25,
            lw=0.8,
        )
    chosen = epochs[epochs.trial_id == best.get("trial_id")]
    if not chosen.empty:
        axis.plot(chosen.epoch, chosen[metric], color="black", lw=1.8, label="the chosen trial")
        at = chosen[chosen.epoch == best.get("epoch")]
        if not at.empty:
            _star(
                axis,
                at.epoch,
                at[metric],
                f"its scored epoch ({int(at.epoch.iloc[0])}): the exported model",
            )
        _legend_below(axis, columns=2)
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel(metric_label(metric, summary))
    axis.set_yscale("log" if metric != "val_accuracy" else "linear")
    # 8, 9, 10: not 8x10^0
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axis.yaxis.set_major_formatter(plain)
    axis.yaxis.set_minor_formatter(plain)
    axis.set_title("learning curves (blue: stage 1, orange: stage 2, black: chosen)")
    return _save(store, figure, "learning_curves.png")


def confusion_lines(store: ExperimentStore, summary: dict[str, Any]) -> list[str]:
    """Text: the test split's confusion matrix (rows: the true class, columns: the predicted one)."""
    if summary.get("metric") != "val_accuracy" or not store.exists(PREDICTIONS_FILE):
        return []
    frame = store.read_table(PREDICTIONS_FILE)
    if not {"actual", "predicted"} <= set(frame.columns):
        return []
    classes = sorted(set(frame.actual) | set(frame.predicted))
    counts = pd.crosstab(frame.actual, frame.predicted).reindex(
        index=classes, columns=classes, fill_value=0
    )
    lines = [
        "Test split, the chosen model: confusion matrix (rows: true class, columns: predicted).",
        "",
        "| true \\ predicted | " + " | ".join(map(str, classes)) + " |",
        "|---" * (len(classes) + 1) + "|",
    ]
    lines += [f"| {c} | " + " | ".join(str(int(v)) for v in counts.loc[c]) + " |" for c in classes]
    lines += ["", "| class | precision | recall | F1 | test reviews |", "|---|---|---|---|---|"]
    for name in classes:
        hit = int(counts.at[name, name])
        predicted, actual = int(counts[name].sum()), int(counts.loc[name].sum())
        precision = hit / predicted if predicted else float("nan")
        recall = hit / actual if actual else float("nan")
        f1 = (
            2 * precision * recall / (precision + recall)
            if precision + recall > 0
            else float("nan")
        )
        lines.append(f"| {name} | {precision:.3f} | {recall:.3f} | {f1:.3f} | {actual} |")
    return [*lines, ""]


def _predictions(store, summary=None):
    if not store.exists(PREDICTIONS_FILE) or (summary or {}).get("metric") == "val_accuracy":
        return None
    frame = store.read_table(PREDICTIONS_FILE)
    figure, axis = _figure((7, 3.2))
    x, xlabel = frame.index, "test window"
    if "origin" in frame and not pd.api.types.is_numeric_dtype(frame.origin):
        origin = pd.to_datetime(frame.origin)
        step = origin.diff().median()
        x, xlabel = (
            origin + (step if pd.notna(step) else pd.Timedelta(0)),
            "date of the predicted value",
        )
    axis.plot(x, frame["actual"], "k.-", label="actual")
    axis.plot(x, frame["predicted"], "r.-", label="best model")
    for column in ("persistence", "seasonal_naive", "sarima", "ets"):
        if column in frame:
            axis.plot(x, frame[column], ":", label=column.replace("_", " "))
    target = ", ".join(summary.get("data", {}).get("targets") or ["value"]) if summary else "value"
    axis.set_ylabel(f"{target} (data units)")
    axis.set_xlabel(xlabel)
    figure.autofmt_xdate()
    # under the slanted dates
    _legend_below(axis, columns=6, below=0.42 if xlabel.startswith("date") else 0.2)
    axis.set_title("test split: predictions against actual values (first target, first step)")
    return _save(store, figure, "predictions.png")


def _baselines(store, summary):
    best = summary.get("best") or {}
    test_key = Objective(summary["metric"], summary["mode"]).test_key
    baseline_key = test_key.removeprefix("test_")
    if test_key not in best or not summary.get("baselines"):
        return None
    names = ["best model", *summary["baselines"]]
    values = [best[test_key], *(b.get(baseline_key, np.nan) for b in summary["baselines"].values())]
    figure, axis = _figure((5, 3))
    bars = axis.bar(names, values, color=["tab:red"] + ["tab:gray"] * (len(names) - 1))
    axis.bar_label(bars, fmt="%.4g", fontsize=8)
    axis.set_ylabel(metric_label(test_key, summary))
    axis.tick_params(axis="x", labelrotation=20)
    axis.set_title("test split: best model and baselines")
    return _save(store, figure, "baselines.png")


def metric_label(metric: str, summary: dict[str, Any] | None) -> str:
    """An axis label with the metric's units: an error in the target's own units, accuracy as a fraction."""
    name = metric.removeprefix("val_").removeprefix("test_")
    split = "test" if metric.startswith("test_") else "validation"
    if name == "accuracy":
        return f"{split} accuracy (fraction correct)"
    if name == "loss":
        return f"{split} loss (the training loss)"
    targets = ", ".join((summary or {}).get("data", {}).get("targets") or []) or "data units"
    if name in ("rmse", "mae"):
        return f"{split} {name.upper()} ({targets})"
    if name == "mape":
        return f"{split} MAPE (%)"
    return metric


def _legend_below(axis: Any, *axes: Any, columns: int = 3, below: float = 0.2) -> None:
    """One legend for ``axis`` (and ``axes`` sharing its plot) under the plot, where it covers no data;
    ``below``: how far under the axis (a fraction of its height), clear of the tick labels and the x label."""
    handles, labels = [], []
    for each in (axis, *axes):
        more = each.get_legend_handles_labels()
        handles += more[0]
        labels += more[1]
    if handles:
        axis.legend(
            handles,
            labels,
            fontsize=7,
            loc="upper center",
            bbox_to_anchor=(0.5, -below),
            ncol=columns,
            frameon=False,
        )


def _star(axis: Any, x: Any, y: Any, label: str, size: int = 120) -> None:
    """The chosen point of a plot: a gold star above the other marks."""
    axis.scatter(x, y, s=size, marker="*", color="gold", edgecolor="black", zorder=4, label=label)


def write_sweep_report(experiment: str | ExperimentStore) -> str:
    """Write ``report.md`` and its plots beside a finished sweep's tables; returns the report's path."""
    store = ExperimentStore.of(experiment)
    summary = store.read_mapping(SUMMARY_FILE, "a sweep summary")
    trials, epochs = store.read_table(TRIALS_FILE), store.read_table(EPOCHS_FILE)
    metric = summary["metric"]
    winner = (summary.get("stage1") or {}).get("winner")
    plots = [
        _heatmap(store, trials, metric, winner, summary),
        _lr_path(store, summary, metric),
        _timeline(store, trials),
        _learning_curves(store, epochs, trials, metric, summary.get("best"), summary),
        _predictions(store, summary),
        _baselines(store, summary),
    ]
    best = summary.get("best") or {}
    objective = Objective(metric, summary["mode"])
    test_key = objective.test_key
    verdict = baseline_verdict(summary, objective)
    lines = [
        f"# Sweep {summary['experiment']}",
        "",
        *([f"**The chosen model is {verdict}.**", ""] if verdict else []),
        f"Strategy `{summary['strategy']}` on `{summary['data']['source']}`, metric `{metric}` ({summary['mode']}), "
        f"seed {summary['seed']}: {summary['trials_run']} trials, {summary['trial_epochs']} trial-epochs, "
        f"{summary['trial_s']:.1f} trial-seconds, {summary['wall_s']:.1f} s wall (from the first trial queued "
        "to the last one ended; the command's own time adds Ray's start, the data, the test evaluation and "
        "this report). A trial's score: "
        f"`{summary.get('score', 'last_epoch')}`.",
        "",
    ]
    if best:
        lines += [
            "| | layers | units | learning rate | epoch | validation | test |",
            "|---|---|---|---|---|---|---|",
            f"| best | {best['layers']} | {best['units']} | {best['learning_rate']:.6g} | {best.get('epoch', '')} | "
            f"{best['validation']:.4g} | {best.get(test_key, float('nan')):.4g} |",
        ]
        for name, scores in (summary.get("baselines") or {}).items():
            value = scores.get(test_key.removeprefix("test_"))
            label = name.replace("_", " ") + (
                f" — {scores['model']}" if scores.get("model") else ""
            )
            shown = (
                f"failed: {scores['failed']}"
                if "failed" in scores
                else ""
                if value is None
                else f"{value:.4g}"
            )
            lines.append(f"| {label} | | | | | | {shown} |")
        lines.append("")
    lines += confusion_lines(store, summary)
    winner = (summary.get("stage1") or {}).get("winner")
    if winner:
        lines += [
            f"Stage-1 winner: layers={winner['layers']} units={winner['units']} ({metric} {winner['validation']:.4g}).",
            "",
        ]
    path = (summary.get("stage2") or {}).get("learning_rate_path") or []
    if path:
        lines += ["| iteration | learning rate | score | improved |", "|---|---|---|---|"]
        lines += [
            f"| {p['iteration']} | {p['learning_rate']:.6g} | "
            f"{'failed' if p['score'] is None else format(p['score'], '.4g')} | {p['improved']} |"
            for p in path
        ]
        lines.append("")
    lines += [f"![{name}]({name})" for name in plots if name]
    _write(store, lines)
    return store.path(REPORT_FILE)


# -- a campaign ----------------------------------------------------------------------------
def write_campaign_report(
    folder: str | ExperimentStore,
    table: pd.DataFrame,
    curves: dict[tuple[str, str, str, int], pd.DataFrame],
    metric: str,
    mode: str,
    header: list[str],
) -> str:
    """``report.md`` for a campaign: a table of final scores and costs, and anytime curves per dataset."""
    store = ExperimentStore.of(folder)
    if "budget_row" not in table:
        table = table.assign(budget_row="")
    rows = list(dict.fromkeys(table.budget_row))
    plots = [
        _anytime_plot(store, curves, dataset, row, metric, rows)
        for row in rows
        for dataset in sorted(table.dataset.unique())
    ]
    summary = (
        table.groupby(["budget_row", "dataset", "strategy"], sort=False)
        .agg(
            seeds=("seed", "count"),
            best_val=("best_val", "mean"),
            best_val_sd=("best_val", "std"),
            test=("test", "mean"),
            test_sd=("test", "std"),
            trial_epochs=("trial_epochs", "mean"),
            trial_s=("trial_s", "mean"),
            wall_s=("wall_s", "mean"),
            trials=("trials", "mean"),
            to_within_1pct_s=("to_within_1pct_s", "mean"),
        )
        .reset_index()
        .rename(columns={"budget_row": "budget"})
    )
    lines = [*header, "", summary_markdown(summary), "", *_campaign_baselines(table, summary, mode)]
    lines += [f"![{name}]({name})" for name in plots]
    _write(store, lines)
    return store.path(REPORT_FILE)


def _campaign_baselines(table: pd.DataFrame, summary: pd.DataFrame, mode: str) -> list[str]:
    """Per dataset: every baseline's test score on the same test windows, and whether the best strategy
    (by mean test score) beats the best of them."""
    columns = [c for c in table.columns if c.startswith("baseline_")]
    if not columns:
        return []
    lines = [
        "Baselines on the same test windows (fitted on the same training rows; test, once each; n/a: none "
        "for that dataset, or it failed to fit: see the sweep's summary.json):",
        "",
        "| dataset | "
        + " | ".join(c.removeprefix("baseline_").replace("_", " ") for c in columns)
        + " | best strategy (mean test) | beats the best baseline |",
        "|---" * (len(columns) + 3) + "|",
    ]
    for dataset, rows in table.groupby("dataset", sort=True):
        values = rows[columns].astype(float).mean()
        scored = summary[summary.dataset == dataset].dropna(subset=["test"])
        if scored.empty:
            continue
        top = scored.loc[scored.test.idxmin() if mode == "min" else scored.test.idxmax()]
        finite = values.dropna()
        best_baseline = (finite.min() if mode == "min" else finite.max()) if len(finite) else np.nan
        wins = (
            ""
            if np.isnan(best_baseline)
            else "yes"
            if is_better(float(top.test), best_baseline, mode)
            else "no"
        )
        cells = " | ".join("n/a" if np.isnan(v) else f"{v:.4g}" for v in values)
        lines.append(f"| {dataset} | {cells} | {top.strategy} {top.test:.4g} | {wins} |")
    return [*lines, ""]


def _anytime_plot(
    store: ExperimentStore,
    curves: dict[tuple[str, str, str, int], pd.DataFrame],
    dataset: str,
    row: str,
    metric: str,
    rows: list[str],
) -> str:
    """Best-so-far against trial-seconds for every strategy on one dataset and budget row: mean and
    min-max band over seeds, drawn as steps (the best-so-far only changes when a trial ends)."""
    figure, axis = _figure((7, 4))
    strategies = sorted({key[2] for key in curves if key[0] == row and key[1] == dataset})
    for strategy in strategies:
        runs = [
            c for key, c in curves.items() if key[:3] == (row, dataset, strategy) and not c.empty
        ]
        if not runs:
            continue
        end = max(run.trial_s.max() for run in runs)
        grid = np.linspace(0, end, 400)
        # previous value (a step), NaN until every seed has a first result: a mean over the lucky early
        # seeds alone would dip
        stacked = np.array(
            [_step_at(grid, run.trial_s.to_numpy(float), run.best.to_numpy(float)) for run in runs]
        )
        mean, low, high = stacked.mean(axis=0), stacked.min(axis=0), stacked.max(axis=0)
        (line,) = axis.step(
            grid, mean, where="post", label=f"{strategy} ({len(runs)} seed{'s' * (len(runs) > 1)})"
        )
        axis.fill_between(grid, low, high, alpha=0.15, color=line.get_color(), step="post")
    axis.set_xlabel("cumulative trial-seconds")
    axis.set_ylabel(f"best {metric} so far")
    budget = f", budget {row}" if len(rows) > 1 else ""
    axis.set_title(f"{dataset}{budget}: anytime performance (mean, min-max over seeds)")
    axis.legend(fontsize=8)
    name = f"anytime_{dataset}" + (f"_{row}" if len(rows) > 1 else "") + ".png"
    return _save(store, figure, name)


def _step_at(grid: np.ndarray, times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The value of a step function (``values[i]`` from ``times[i]`` on) at each grid point; NaN before."""
    index = np.searchsorted(times, grid, side="right") - 1
    out = np.where(index >= 0, values[np.clip(index, 0, None)], np.nan)
    return out.astype(float)


def _write(store: ExperimentStore, lines: list[str]) -> None:
    """report.md, and the same as one self-contained report.html."""
    from hindsight_ray.reporting.report_html import write_html

    markdown = "\n".join(lines) + "\n"
    store.write_bytes(REPORT_FILE, markdown.encode("utf-8"))
    write_html(store, markdown)


def summary_markdown(frame: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table with 4 significant digits."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "" if np.isnan(value) else f"{value:.4g}"
        return str(value)

    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])

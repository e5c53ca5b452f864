"""Finalizing a search, on trials as Ray would have recorded them (fakes): which rows are scored or
stopped, which trial is best, and what summary.json says. No Ray, no TensorFlow."""

from __future__ import annotations

import pytest

from hindsight_ray.config.schema import load_config
from hindsight_ray.running.finalize import best_entry, score_trials, summarize
from hindsight_ray.search.policy import TwoStagePolicy
from tests.fakes import outcome


def two_stage_run():
    """A two-stage search of two architectures and one stage-2 trial, decided by the real policy."""
    config = load_config(None, ["search.stage1.layers=[1,2]", "search.stage1.units=[4]", "search.stage1.epochs=3",
                                "search.stage2.max_iterations=1", "search.stage2.epochs=4"])
    policy = TwoStagePolicy(layers=[1, 2], units=[4], stage1_learning_rate=0.001, stage1_epochs=3,
                            max_learning_rate=0.01, max_iterations=1, stage2_epochs=4, mode="min")
    curves = {"a": [9.0, 5.0, 6.0], "b": [8.0, 7.0, 7.5], "c": [6.0, 4.0, 3.0, 3.5]}
    outcomes = []
    for index, trial_id in enumerate("abc"):
        suggestion = policy.suggest(trial_id)
        assert not isinstance(suggestion, str)
        config_of = suggestion.as_config()
        outcomes.append(outcome(trial_id, config_of, curves[trial_id], started_at=1000.0 + 10 * index))
        policy.complete(trial_id, min(curves[trial_id]), params=100)
    return config, policy, outcomes


def test_the_two_stage_best_is_the_policys_and_scored_on_its_best_epoch():
    config, policy, outcomes = two_stage_run()
    trials, best_id = score_trials(config, outcomes, policy, queued_at={"a": 999.0, "b": 999.0, "c": 1019.0})
    assert best_id == "c" and policy.winner.trial_id == "a"
    assert trials.set_index("trial_id")["val_rmse"].to_dict() == {"a": 5.0, "b": 7.0, "c": 3.0}
    assert trials.set_index("trial_id")["last_val_rmse"].to_dict() == {"a": 6.0, "b": 7.5, "c": 3.5}
    assert trials.used.all() and not trials.speculative.any() and (trials.status == "TERMINATED").all()
    best = best_entry(config, trials, best_id, {"test_rmse": 3.3}, "/x/best_model.keras")
    assert (best["epoch"], best["validation"], best["last_validation"], best["test_rmse"]) == (3, 3.0, 3.5, 3.3)
    assert (best["layers"], best["stage"], best["epochs"]) == (1, 2, 4)


def test_the_summary_counts_time_epochs_and_the_decisions():
    config, policy, outcomes = two_stage_run()
    trials, _ = score_trials(config, outcomes, policy, queued_at={"a": 999.0, "b": 999.0, "c": 1019.0})
    summary = summarize(config, "/runs/exp", trials, policy, {"rows": 144}, {"persistence": {"rmse": 1.0}})
    assert summary["experiment"] == "exp" and summary["score"] == "best_epoch"
    assert summary["wall_s"] == pytest.approx(1020.0 + 4 - 999.0)  # first queued to last finished
    assert summary["trial_epochs"] == 3 + 3 + 4 and summary["trials_run"] == 3 and summary["stopped_trials"] == 0
    assert summary["stage1"] is not None and summary["stage1"]["winner"] is not None
    assert summary["stage1"]["winner"]["trial_id"] == "a" and summary["stage1"]["winner"]["validation"] == 5.0
    assert summary["stage2"] is not None
    assert [(s["learning_rate"], s["score"]) for s in summary["stage2"]["learning_rate_path"]] == [(0.01, 3.0)]
    assert summary["data"] == {"source": "builtin:airline", "rows": 144} and summary["best"] is None


def test_other_strategies_rank_only_trials_that_ran_all_their_epochs():
    config = load_config(None, ["search.strategy=grid"])
    outcomes = [
        outcome("full", {"layers": 1, "units": 4, "learning_rate": 0.01, "epochs": 4}, [5.0, 4.0, 4.5, 4.2]),
        # stopped by ASHA or the budget after 2 of 4 epochs: a better number, but no score
        outcome("cut", {"layers": 2, "units": 4, "learning_rate": 0.01, "epochs": 4}, [3.0, 2.0]),
        outcome("failed", {"layers": 2, "units": 8, "learning_rate": 0.01, "epochs": 4}, [1.0], status="ERROR"),
    ]
    trials, best_id = score_trials(config, outcomes, None, queued_at={})
    rows = trials.set_index("trial_id")
    assert best_id == "full"
    assert rows.loc["cut", "status"] == "STOPPED" and rows["val_rmse"].isna().loc[["cut", "failed"]].all()
    summary = summarize(config, "/runs/g", trials, None, {}, {})
    assert summary["stopped_trials"] == 1 and summary["stage1"] is None and summary["stage2"] is None


def test_a_damaged_newest_snapshot_is_set_aside_and_the_one_before_stays(tmp_path):
    from hindsight_ray.core.experiment import ExperimentStore
    from hindsight_ray.running.finalize import set_aside_damaged_state

    (tmp_path / "experiment_state-2026-01-01_10-00-00.json").write_text('{"trials": []}')
    (tmp_path / "experiment_state-2026-01-01_11-00-00.json").write_text('{"trials": [{"id"')  # cut by a full disk
    (tmp_path / "searcher-state-2026-01-01_11-00-00.pkl").write_text('{"policy": {}}')
    (tmp_path / "searcher-state-2026-01-01_12-00-00.pkl").write_text('{"policy": ')  # ours: JSON, cut short
    (tmp_path / "search_gen_state-2026-01-01_11-00-00.json").write_bytes(b"\x80\x05")  # Ray's: a pickle, left alone
    store = ExperimentStore(str(tmp_path))
    assert set_aside_damaged_state(store) == ["experiment_state-2026-01-01_11-00-00.json",
                                              "searcher-state-2026-01-01_12-00-00.pkl"]
    assert store.names("experiment_state-") == ["experiment_state-2026-01-01_10-00-00.json"]
    assert store.names("damaged-") == ["damaged-experiment_state-2026-01-01_11-00-00.json",
                                       "damaged-searcher-state-2026-01-01_12-00-00.pkl"]
    assert store.names("search_gen_state-") == ["search_gen_state-2026-01-01_11-00-00.json"]
    assert store.names("searcher-state-") == ["searcher-state-2026-01-01_11-00-00.pkl"]  # the one before
    assert set_aside_damaged_state(store) == []  # nothing more to set aside


def test_a_finished_trials_final_checkpoint_tune_did_not_register_is_found_on_storage(tmp_path):
    """An epoch budget stops every trial at once; a trial whose final epoch spent it can be stopped while its
    final checkpoint is being registered. Its newest checkpoint folder counts if it holds its last epoch."""
    import json

    import pyarrow.fs as pafs

    from hindsight_ray.running.finalize import checkpoint_left_on_disk

    fs = pafs.LocalFileSystem()
    for name, epoch in [("checkpoint_000000", 2), ("checkpoint_000001", 3)]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "state.json").write_text(json.dumps({"epoch": epoch}))
    assert checkpoint_left_on_disk(fs, str(tmp_path), 3) == str(tmp_path / "checkpoint_000001")
    assert checkpoint_left_on_disk(fs, str(tmp_path), 4) is None  # it trained further than its checkpoint
    assert checkpoint_left_on_disk(fs, str(tmp_path / "nothing"), 3) is None
    (tmp_path / "checkpoint_000001" / "state.json").write_text("{broken")
    assert checkpoint_left_on_disk(fs, str(tmp_path), 3) is None


class _ScoredOutputs:
    """What choose_ensemble reads of Prepared: validation scores of averaged outputs (RMSE against 0)."""

    def scores(self, split, outputs):
        import numpy as np

        return {"rmse": float(np.sqrt(np.mean(np.asarray(outputs) ** 2)))}


def test_the_ensemble_size_is_the_k_whose_average_scores_best_on_validation_ties_to_the_smaller():
    import numpy as np

    from hindsight_ray.running.finalize import choose_ensemble

    # errors that cancel: the best two together score 0, a third adds error back
    outputs = [np.array([[1.0]]), np.array([[-1.0]]), np.array([[3.0]])]
    k, scores = choose_ensemble(_ScoredOutputs(), outputs, "val_rmse", "min")
    assert k == 2 and scores == pytest.approx([1.0, 0.0, 1.0])
    same = [np.array([[1.0]])] * 3
    assert choose_ensemble(_ScoredOutputs(), same, "val_rmse", "min")[0] == 1  # no gain: the single best


def test_ensemble_members_are_the_next_best_scored_trials(tmp_path):
    import pandas as pd

    from hindsight_ray.running.finalize import ensemble_members

    trials = pd.DataFrame({"trial_id": ["a", "b", "c", "d"], "val_rmse": [3.0, 1.0, None, 2.0],
                           "checkpoint_path": ["/a", "/b", "/c", "/d"]})
    config = load_config(None, ["search.ensemble=3"])
    assert ensemble_members(config, trials, "b") == ["/d", "/a"]  # c stopped early: no score, not a member
    assert ensemble_members(load_config(None, []), trials, "b") == []

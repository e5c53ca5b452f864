"""TwoStageSearch as a Ray Tune Searcher: the contract Tune relies on, without a running cluster."""

from __future__ import annotations

import json

import pytest

search = pytest.importorskip("ray.tune.search")  # not under -m "not slow": see conftest.py
ConcurrencyLimiter, Searcher = search.ConcurrencyLimiter, search.Searcher

from hindsight_ray import TwoStageSearch  # noqa: E402

pytestmark = pytest.mark.slow  # Ray Tune's Searcher is its base class: imports Ray (but starts none)


def make_search(**kwargs) -> TwoStageSearch:
    settings = dict(layers=[1], units=[4, 8], stage1_learning_rate=0.001, stage1_epochs=2,
                    max_learning_rate=0.02, max_iterations=3, stage2_epochs=3, metric="val_rmse", mode="min")
    settings.update(kwargs)
    return TwoStageSearch(**settings)


def test_suggestions_carry_the_hyperparameters_and_stage():
    search = make_search()
    config = search.suggest("a")
    assert config == {"stage": 1, "layers": 1, "units": 4, "learning_rate": 0.001, "epochs": 2}
    assert search.total_trials == 2 + 2


def test_wait_is_none_and_the_end_is_finished():
    search = make_search(max_iterations=1)
    search.suggest("a"), search.suggest("b")
    assert search.suggest("c") is None
    search.on_trial_result("a", {"val_rmse": 9.0, "params": 10})
    search.on_trial_complete("a", {"val_rmse": 2.0, "params": 10})
    search.on_trial_complete("b", error=True)
    stage2 = search.suggest("d")
    assert stage2["stage"] == 2 and stage2["units"] == 4 and stage2["learning_rate"] == 0.02
    search.on_trial_complete("d", {"val_rmse": float("nan"), "params": 10})  # NaN counts as a failure
    assert search.policy.trials["d"].status == "error"
    search.suggest("e")
    search.on_trial_complete("e", {"val_rmse": 1.0, "params": 10})
    assert search.suggest("f") == Searcher.FINISHED


def test_metric_and_mode_can_come_from_tune_config():
    search = TwoStageSearch(layers=[1], units=[4])
    assert search.set_search_properties("val_accuracy", "max", {})
    assert search.suggest("a")["stage"] == 1
    with pytest.raises(RuntimeError):
        TwoStageSearch(layers=[1], units=[4]).suggest("a")


def test_save_and_restore_are_plain_json(tmp_path):
    search = make_search()
    search.suggest("a")
    search.on_trial_complete("a", {"val_rmse": 2.0, "params": 10})
    path = tmp_path / "searcher.json"
    search.save(str(path))
    state = json.loads(path.read_text())
    trials = state["policy"]["trials"]
    assert dict(zip(trials["fields"], trials["rows"][0], strict=True))["score"] == 2.0
    restored = make_search()
    restored.restore(str(path))
    assert restored.get_state() == search.get_state()
    assert restored.suggest("b")["units"] == 8


def test_works_inside_concurrency_limiter():
    limited = ConcurrencyLimiter(make_search(), max_concurrent=2)
    assert limited.suggest("a")["units"] == 4
    assert limited.suggest("b")["units"] == 8
    assert limited.suggest("c") is None


def _resumed_with_a_stale_limiter_state(tmp_path, limiter_type):
    """Ray's files as an upload cut short leaves them: the search's state knows trial b, the limiter's
    (``search_gen_state-*``, saved apart) is from before b was suggested. Restored as ``Tuner.restore`` does."""
    import pickle

    from ray.tune.search import SearchGenerator

    limiter = limiter_type(make_search(), max_concurrent=2)
    tuner_pickle = pickle.dumps(limiter)  # tuner.pkl: the limiter as the sweep began
    generator = SearchGenerator(limiter)
    limiter.suggest("a")
    generator.save_to_dir(str(tmp_path), "old")  # search_gen_state-old.json: live trials {a}
    limiter.suggest("b")
    limiter.searcher.save(str(tmp_path / "searcher-state-old.pkl"))  # the newer searcher state: a and b
    resumed = SearchGenerator(pickle.loads(tuner_pickle))
    resumed.restore_from_dir(str(tmp_path))
    return resumed.searcher


def test_a_plain_concurrency_limiter_drops_the_end_of_a_trial_its_stale_state_missed(tmp_path):
    """Why TwoStageLimiter exists: Ray's limiter passes on only the ends of trials in its own set."""
    limiter = _resumed_with_a_stale_limiter_state(tmp_path, ConcurrencyLimiter)
    limiter.on_trial_complete("a", {"val_rmse": 2.0, "epoch": 2, "params": 5})
    limiter.on_trial_complete("b", {"val_rmse": 1.0, "epoch": 2, "params": 5})
    assert limiter.searcher.policy.trials["b"].status == "running"  # never told: the barrier would hold for ever


def test_the_two_stage_limiter_reads_its_live_trials_from_the_restored_search(tmp_path):
    from hindsight_ray.search.two_stage import TwoStageLimiter

    limiter = _resumed_with_a_stale_limiter_state(tmp_path, TwoStageLimiter)
    assert limiter.suggest("c") is None  # two live trials (the search's, not the stale {a}) fill max_concurrent=2
    assert limiter.live_trials == {"a", "b"}
    limiter.on_trial_complete("a", {"val_rmse": 2.0, "epoch": 2, "params": 5})
    limiter.on_trial_complete("b", {"val_rmse": 1.0, "epoch": 2, "params": 5})
    assert limiter.live_trials == set()
    stage2 = limiter.suggest("c")
    assert stage2["stage"] == 2 and stage2["units"] == 8  # b won stage 1: its end was heard
    assert limiter.live_trials == {"c"}
    limiter.on_trial_complete("stranger", {"val_rmse": 0.5})  # a trial the search never suggested: ignored
    assert limiter.live_trials == {"c"}


def test_a_trial_ended_before_its_last_epoch_counts_as_stopped():
    search = make_search()
    search.suggest("a"), search.suggest("b")
    search.on_trial_complete("a", {"val_rmse": 0.1, "epoch": 1, "params": 5})  # stage-1 epochs are 2
    search.on_trial_complete("b", {"val_rmse": 3.0, "epoch": 2, "params": 5})
    assert search.policy.trials["a"].status == "stopped"
    assert search.suggest("c")["units"] == 8  # the winner ran to the end


def speculating():
    """A speculative search past stage 1 with four stage-2 trials running, and its scheduler."""
    search = make_search(max_iterations=9, speculative=True)  # K = 4
    scheduler = search.scheduler()
    for name in ("s1", "s2"):
        search.suggest(name)
    search.on_trial_complete("s1", {"val_rmse": 2.0, "epoch": 2, "params": 5})
    search.on_trial_complete("s2", {"val_rmse": 3.0, "epoch": 2, "params": 5})
    for name in "abcd":
        search.suggest(name)  # 0.02, then speculative 0.01, 0.005, 0.015
    return search, scheduler


def test_scheduler_stops_only_unneeded_trials():
    from ray.tune.schedulers import TrialScheduler

    class FakeTrial:  # the scheduler only reads these two attributes
        def __init__(self, trial_id, stage):
            self.trial_id, self.config = trial_id, {"stage": stage}

    search, scheduler = speculating()
    search.on_trial_complete("a", {"val_rmse": 1.0, "epoch": 3, "params": 5})
    search.on_trial_complete("b", {"val_rmse": 2.0, "epoch": 3, "params": 5})
    assert scheduler.on_trial_result(None, FakeTrial("c", 2), {}) == TrialScheduler.STOP
    assert scheduler.on_trial_result(None, FakeTrial("d", 2), {}) == TrialScheduler.CONTINUE


def test_after_a_resume_the_scheduler_asks_the_searcher_tune_restored(tmp_path):
    """Tune saves the Tuner's state in one pickle (tuner.pkl) and restores the searcher's state from its own
    file into that searcher: the scheduler unpickled with it must see what the restored searcher learns."""
    import pickle

    from ray.tune.schedulers import TrialScheduler

    search, scheduler = speculating()
    search.save(str(tmp_path / "searcher-state.pkl"))
    limiter, resumed_scheduler = pickle.loads(pickle.dumps((ConcurrencyLimiter(search, max_concurrent=4), scheduler)))
    limiter.searcher.restore(str(tmp_path / "searcher-state.pkl"))  # as SearchGenerator.restore_from_dir does
    limiter.searcher.on_trial_complete("a", {"val_rmse": 1.0, "epoch": 3, "params": 5})  # news after the resume
    limiter.searcher.on_trial_complete("b", {"val_rmse": 2.0, "epoch": 3, "params": 5})

    class Trial:
        trial_id, config = "c", {"stage": 2}

    assert resumed_scheduler.on_trial_result(None, Trial(), {}) == TrialScheduler.STOP


def test_the_epoch_budget_survives_a_resume(tmp_path):
    import json
    import pickle

    from hindsight_ray.search.strategies import EpochBudget

    budget = EpochBudget(20, str(tmp_path))
    assert not budget("a", {"epoch": 8})
    restored = pickle.loads(pickle.dumps(budget))  # as Tune unpickles it on resume
    for trial, epochs in (("a", 8), ("b", 10)):  # what the trials had reported before the crash
        folder = tmp_path / f"train_{trial}"
        folder.mkdir()
        lines = [json.dumps({"trial_id": trial, "epoch": e}) for e in range(1, epochs + 1)]
        (folder / "result.json").write_text("\n".join(lines) + '\n{"trial_id": "' + trial + '", "ep')
    assert not restored("c", {"epoch": 1}) and restored("c", {"epoch": 2})  # 8 + 10 + 2 = 20


def test_the_scheduler_chooses_the_trial_rays_fifo_scheduler_would_from_the_live_trials_alone():
    """Tune asks which trial to start at every step of its loop; Ray's FIFOScheduler scans all the sweep's
    trials for it, ours only the live ones (not ended): the same answer in every state, trials added in any
    order and moved through every status."""
    import random

    from ray.tune.experiment import Trial
    from ray.tune.schedulers import FIFOScheduler

    class FakeTrial:
        def __init__(self, trial_id):
            self.trial_id, self.config, self.status = trial_id, {"stage": 1}, Trial.PENDING

    class Controller:  # what Tune's wrapped controller offers a scheduler
        def __init__(self):
            self.trials, self.scan_allowed = [], True

        def get_trials(self):
            assert self.scan_allowed, "the scheduler scanned every trial of the sweep"
            return self.trials

        def get_live_trials(self):
            # Tune's live set: every trial not ended, in no particular order
            live = [t for t in self.trials if t.status not in (Trial.TERMINATED, Trial.ERROR)]
            return set(rng.sample(live, len(live)))

    rng = random.Random(7)
    ours, rays, controller = make_search().scheduler(), FIFOScheduler(), Controller()
    chosen = []
    for step in range(600):
        if rng.random() < 0.15 or not controller.trials:
            trial = FakeTrial(f"t{step}")
            controller.trials.append(trial)
            ours.on_trial_add(controller, trial)
        else:
            rng.choice(controller.trials).status = rng.choices(
                [Trial.PENDING, Trial.RUNNING, Trial.PAUSED, Trial.TERMINATED, Trial.ERROR], [1, 4, 1, 4, 1])[0]
        expected = rays.choose_trial_to_run(controller)
        controller.scan_allowed = False
        assert ours.choose_trial_to_run(controller) is expected, step
        controller.scan_allowed = True
        chosen.append(None if expected is None else expected.status)
    assert {Trial.PENDING, Trial.PAUSED, None} <= set(chosen)  # every branch was asked

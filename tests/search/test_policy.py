"""The two-stage policy on its own: no Ray, no TensorFlow."""

from __future__ import annotations

import json
import math

import pytest

from hindsight_ray.search.policy import (
    FINISHED,
    WAIT,
    Suggestion,
    TwoStagePolicy,
    TwoStageSettings,
)
from hindsight_ray.search.rules import architecture_grid, next_learning_rate, stage2_iterations


def make_policy(**overrides) -> TwoStagePolicy:
    settings = dict(layers=[1, 2], units=[8, 16], stage1_learning_rate=0.001, stage1_epochs=3,
                    max_learning_rate=0.02, max_iterations=16, stage2_epochs=5, mode="min")
    settings.update(overrides)
    return TwoStagePolicy(**settings)


def run_stage1(policy: TwoStagePolicy, scores: dict[tuple[int, int], float | None], params=None) -> list[str]:
    ids = []
    while True:
        trial_id = f"s1-{len(ids)}"
        decision = policy.suggest(trial_id)
        if not isinstance(decision, Suggestion):
            break
        ids.append(trial_id)
    for trial_id in ids:
        record = policy.trials[trial_id]
        key = (record.layers, record.units)
        policy.complete(trial_id, scores[key], (params or {}).get(key, record.units))
    return ids


@pytest.mark.parametrize(("n", "k"), [(1, 2), (3, 2), (4, 3), (15, 4), (16, 5), (49, 8), (100, 11)])
def test_stage2_iterations_is_isqrt_plus_one(n, k):
    assert stage2_iterations(n) == k


def test_stage2_iterations_avoids_the_notebooks_float_error():
    notebook = int(math.exp(math.log(49) / 2)) + 1
    assert notebook == 7  # exp(log(49)/2) = 6.999...
    assert stage2_iterations(49) == 8


def test_stage2_iterations_rejects_zero():
    with pytest.raises(ValueError):
        stage2_iterations(0)


def test_next_learning_rate_halves_or_bisects():
    assert next_learning_rate(0.02, 0.02, improved=True) == 0.01
    assert next_learning_rate(0.01, 0.02, improved=False) == 0.015


def test_grid_is_depth_major_and_complete():
    assert architecture_grid([1, 2], [8, 16, 32]) == [(1, 8), (1, 16), (1, 32), (2, 8), (2, 16), (2, 32)]


def test_stage1_suggests_whole_grid_at_once_then_waits_at_the_barrier():
    policy = make_policy()
    suggestions = [policy.suggest(f"t{i}") for i in range(4)]
    assert all(isinstance(s, Suggestion) and s.stage == 1 and s.learning_rate == 0.001 for s in suggestions)
    assert {(s.layers, s.units) for s in suggestions} == {(1, 8), (1, 16), (2, 8), (2, 16)}
    assert policy.suggest("t4") == WAIT
    for i in range(3):
        policy.complete(f"t{i}", 1.0 + i, 100)
    assert policy.suggest("t5") == WAIT  # one stage-1 trial still running
    policy.complete("t3", None)  # it failed: the barrier counts it as ended
    second = policy.suggest("t6")
    assert isinstance(second, Suggestion) and second.stage == 2
    assert (second.layers, second.units, second.learning_rate, second.epochs) == (1, 8, 0.02, 5)


def test_stage2_is_sequential():
    policy = make_policy()
    run_stage1(policy, {(1, 8): 3.0, (1, 16): 2.0, (2, 8): 4.0, (2, 16): 5.0})
    assert isinstance(policy.suggest("a"), Suggestion)
    assert policy.suggest("b") == WAIT


def drive_stage2(policy: TwoStagePolicy, score_of) -> list[float]:
    rates = []
    for i in range(100):
        decision = policy.suggest(f"s2-{i}")
        if decision == FINISHED:
            return rates
        assert isinstance(decision, Suggestion)
        rates.append(decision.learning_rate)
        policy.complete(f"s2-{i}", score_of(decision.learning_rate), 10)
    raise AssertionError("stage 2 never finished")


def test_learning_rate_rule_with_the_first_iteration_counted_as_improvement():
    policy = make_policy(max_iterations=16)  # K = 5
    run_stage1(policy, {(1, 8): 3.0, (1, 16): 2.0, (2, 8): 4.0, (2, 16): 5.0})
    scores = iter([1.0, 0.5, 0.7, 0.6, 0.9])  # improve, improve, worse, improve, worse
    rates = drive_stage2(policy, lambda lr: next(scores))
    # first trial counts as an improvement, so the second halves (the notebook repeated 0.02)
    assert rates == pytest.approx([0.02, 0.01, 0.005, 0.0125, 0.00625])
    path = policy.learning_rate_path()
    assert [p["improved"] for p in path] == [True, True, False, True, False]
    assert policy.best().learning_rate == 0.01


def test_failed_stage2_trial_is_the_worst_score():
    policy = make_policy(max_iterations=4)  # K = 3
    run_stage1(policy, {(1, 8): 3.0, (1, 16): 2.0, (2, 8): 4.0, (2, 16): 5.0})
    scores = iter([1.0, None, 0.5])
    rates = drive_stage2(policy, lambda lr: next(scores))
    assert rates == pytest.approx([0.02, 0.01, 0.015])  # the failure did not improve: bisect back up
    assert policy.learning_rate_path()[2]["improved"] is True  # anything beats a failure


def test_stage1_winner_ties_go_to_fewer_parameters():
    policy = make_policy(mode="max")
    run_stage1(policy, {(1, 8): 0.8, (1, 16): 0.9, (2, 8): 0.9, (2, 16): 0.7},
               params={(1, 8): 100, (1, 16): 500, (2, 8): 300, (2, 16): 900})
    policy.suggest("next")
    assert (policy.winner.layers, policy.winner.units) == (2, 8)


def test_errored_stage1_trials_never_win_and_all_failed_finishes():
    policy = make_policy()
    run_stage1(policy, {(1, 8): None, (1, 16): None, (2, 8): 9.0, (2, 16): None})
    policy.suggest("next")
    assert (policy.winner.layers, policy.winner.units) == (2, 8)

    doomed = make_policy()
    run_stage1(doomed, {(1, 8): None, (1, 16): None, (2, 8): None, (2, 16): None})
    assert doomed.suggest("next") == FINISHED
    assert doomed.best() is None and doomed.stage == 0


def test_best_keeps_stage1_winner_when_no_learning_rate_beats_it_and_ties_go_earlier():
    policy = make_policy(max_iterations=1)  # K = 2
    run_stage1(policy, {(1, 8): 3.0, (1, 16): 1.0, (2, 8): 4.0, (2, 16): 5.0})
    drive_stage2(policy, lambda lr: 1.0)  # ties the winner: the earlier trial stands
    assert policy.best().stage == 1 and policy.best().units == 16


def test_total_and_finish():
    policy = make_policy(max_iterations=4)
    assert policy.total_trials == 4 + 3
    run_stage1(policy, {(1, 8): 3.0, (1, 16): 1.0, (2, 8): 4.0, (2, 16): 5.0})
    assert len(drive_stage2(policy, lambda lr: lr)) == 3
    assert policy.suggest("later") == FINISHED


def test_duplicate_completion_and_unknown_trials_are_ignored():
    policy = make_policy()
    policy.suggest("a")
    policy.complete("a", 1.0, 5)
    policy.complete("a", None)  # Tune can report an ended trial again
    policy.complete("nobody", 0.0)
    assert policy.trials["a"].status == "done" and policy.trials["a"].score == 1.0


def test_json_round_trip_mid_stage2_gives_the_same_decisions():
    def fresh_and_restored():
        policy = make_policy(max_iterations=16)
        run_stage1(policy, {(1, 8): 3.0, (1, 16): 2.0, (2, 8): 4.0, (2, 16): 5.0})
        policy.suggest("s2-0")
        policy.complete("s2-0", 1.0, 10)
        policy.suggest("s2-1")  # in flight when saved
        restored = TwoStagePolicy.from_state(json.loads(json.dumps(policy.get_state())))
        return policy, restored

    original, restored = fresh_and_restored()
    assert restored.get_state() == original.get_state()
    for policy in (original, restored):
        assert policy.suggest("x") == WAIT  # the in-flight trial is remembered
        policy.complete("s2-1", 0.5, 10)
    assert original.suggest("s2-2") == restored.suggest("s2-2")
    assert original.learning_rate_path() == restored.learning_rate_path()


def test_state_version_is_checked():
    state = make_policy().get_state()
    state["version"] = 99
    with pytest.raises(ValueError, match="version"):
        TwoStagePolicy.from_state(state)


def test_a_version_2_state_of_an_older_experiment_still_loads():
    policy = make_policy()
    run_stage1(policy, {(1, 8): 3.0, (1, 16): 2.0, (2, 8): 4.0, (2, 16): 5.0})
    state = policy.get_state()
    columns = state["trials"]
    old = {**state, "version": 2, "trials": [dict(zip(columns["fields"], row, strict=True)) for row in columns["rows"]]}
    assert TwoStagePolicy.from_state(old).get_state() == state


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError):
        make_policy(mode="up")
    with pytest.raises(ValueError):
        make_policy(units=[])
    with pytest.raises(ValueError):
        make_policy(max_learning_rate=0)
    policy = make_policy()
    policy.suggest("a")
    with pytest.raises(ValueError):
        policy.suggest("a")


def test_forgotten_trials_are_suggested_again():
    policy = make_policy()
    first = [policy.suggest(f"t{i}") for i in range(4)]
    policy.complete("t0", 1.0, 5)
    policy.forget("t2")  # lost before Tune recorded it
    policy.forget("t0")  # finished: a fact, kept
    assert "t0" in policy.trials and "t2" not in policy.trials
    again = policy.suggest("t9")
    assert (again.layers, again.units) == (first[2].layers, first[2].units)
    restored = TwoStagePolicy.from_state(json.loads(json.dumps(policy.get_state())))
    assert restored.get_state() == policy.get_state()


def test_forgotten_stage2_trial_reruns_the_same_learning_rate():
    policy = make_policy()
    run_stage1(policy, {(1, 8): 3.0, (1, 16): 2.0, (2, 8): 4.0, (2, 16): 5.0})
    lost = policy.suggest("s2-0")
    policy.forget("s2-0")
    assert policy.suggest("s2-0b").learning_rate == lost.learning_rate


def simulate(policy: TwoStagePolicy, score_of, slots: int) -> int:
    """Run a policy with ``slots`` workers, finishing the oldest trial first; returns the rounds used.

    A round is one wave of trials finishing: speculative trials that became unused are stopped
    (and told so) as soon as the policy says they are unneeded.
    """
    running: list[str] = []
    counter, rounds = 0, 0
    while True:
        while len(running) < slots:
            decision = policy.suggest(f"t{counter}")
            if not isinstance(decision, Suggestion):
                break
            running.append(f"t{counter}")
            counter += 1
        if not running:
            return rounds
        rounds += 1
        finished, running = running, []  # every running trial ends in this round
        for trial_id in finished:
            record = policy.trials[trial_id]
            if policy.stop_if_unneeded(trial_id):
                policy.complete(trial_id, 123.0, 1)  # its partial score must never be used
                continue
            score = score_of(record) if record.stage == 2 else {(1, 8): 3.0, (1, 16): 2.0,
                                                               (2, 8): 4.0, (2, 16): 5.0}[(record.layers, record.units)]
            policy.complete(trial_id, score, 10)


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("slots", [1, 3, 7])
def test_speculative_path_equals_the_sequential_one(seed, slots):
    import random

    rng = random.Random(seed)
    table: dict[float, float | None] = {}

    def score_of(record):  # deterministic per learning rate, sometimes a failure
        if record.learning_rate not in table:
            table[record.learning_rate] = None if rng.random() < 0.1 else rng.random()
        return table[record.learning_rate]

    sequential = make_policy(max_iterations=16)
    sequential_rounds = simulate(sequential, score_of, slots=1)
    speculative = make_policy(max_iterations=16, speculative=True)
    speculative_rounds = simulate(speculative, score_of, slots=slots)
    assert speculative.learning_rate_path() == [
        {**step, "trial_id": speculative.learning_rate_path()[i]["trial_id"]}
        for i, step in enumerate(sequential.learning_rate_path())
    ]
    seq_best, spec_best = sequential.best(), speculative.best()
    assert (spec_best.stage, spec_best.learning_rate, spec_best.score) == (
        seq_best.stage, seq_best.learning_rate, seq_best.score)
    assert not any(t.status == "stopped" and t.trial_id in speculative.used_trial_ids()
                   for t in speculative.trials.values())
    if slots == 7:  # 7 slots hold the next 3 levels of the tree: 5 decisions in about 2 rounds
        assert speculative_rounds < sequential_rounds


def test_unused_speculation_is_stopped_and_recorded():
    policy = make_policy(max_iterations=9, speculative=True)  # K = 4
    run_stage1(policy, {(1, 8): 3.0, (1, 16): 2.0, (2, 8): 4.0, (2, 16): 5.0})
    a, b, c, d = (policy.suggest(name) for name in "abcd")
    # the first trial always improves, so 0.01 is certain; after it, both 0.005 and 0.015 are possible
    assert [a.learning_rate, b.learning_rate, c.learning_rate, d.learning_rate] == [0.02, 0.01, 0.005, 0.015]
    assert [policy.trials[n].speculative for n in "abcd"] == [False, True, True, True]
    policy.complete("a", 1.0, 10)
    assert not any(policy.stop_if_unneeded(n) for n in "bcd")
    policy.complete("b", 2.0, 10)  # worse than 0.02: bisect up to 0.015; 0.005 is no longer needed
    assert policy.stop_if_unneeded("c") and not policy.stop_if_unneeded("d")
    policy.complete("c", 0.1, 10)
    assert policy.trials["c"].status == "stopped"
    assert [s["learning_rate"] for s in policy.learning_rate_path()] == [0.02, 0.01]
    assert policy.best().trial_id == "a" and "c" not in policy.used_trial_ids()


def test_early_stopped_stage1_trials_are_recorded_but_never_win():
    policy = make_policy()
    ids = [policy.suggest(f"t{i}") for i in range(4)]
    assert all(isinstance(s, Suggestion) for s in ids)
    policy.complete("t0", 0.01, 5, stopped=True)  # looked great after two epochs, then ASHA stopped it
    policy.complete("t1", 3.0, 5)
    assert policy.suggest("x") == WAIT  # the barrier still holds
    policy.complete("t2", 2.0, 5)
    policy.complete("t3", 4.0, 5, stopped=True)
    assert policy.suggest("y").stage == 2
    assert policy.winner.trial_id == "t2" and policy.trials["t0"].status == "stopped"
    assert policy.best().trial_id == "t2"


def test_stopped_early():
    from hindsight_ray.core.trials import stopped_early

    assert stopped_early({"epoch": 3}, 5) and not stopped_early({"epoch": 5}, 5)
    assert not stopped_early({"loss": 1.0}, 5)  # no epoch reported: taken as complete


def test_settings_are_one_frozen_list_that_makes_the_policy_and_survives_json():
    settings = TwoStageSettings(layers=(1, 2), units=(8,), stage1_epochs=3, max_iterations=4,
                                stage2_epochs=5, speculative=True)
    with pytest.raises(AttributeError):
        settings.layers = (3,)
    policy = settings.policy("max")
    assert policy.settings == {**settings.as_dict(), "mode": "max"}
    assert policy.grid == [(1, 8), (2, 8)] and policy.iterations == stage2_iterations(4)
    saved = json.loads(json.dumps(policy.settings))
    assert TwoStageSettings.from_dict(saved) == settings

"""Before a two-stage resume: a searcher state that knows every trial Ray recorded.

The two-stage decisions live in ``searcher-state-*.pkl`` (our JSON under Ray's name). A damaged one (a disk
that filled while it was written, a truncated copy) is set aside, and a missing or stale one (saved before
Ray's last trials) would make Tune go on from a policy that lost trials: the search would start over, and
the sweep finalize a wrong answer. Here the state is rebuilt from Ray's own record of the trials
(:func:`hindsight_ray.search.rebuild.rebuild_policy`) and written where Tune restores it from; trials the
state names but Ray never recorded are forgotten (suggested again).
"""

from __future__ import annotations

import posixpath
from typing import Any

from hindsight_ray.config.schema import SweepConfig
from hindsight_ray.core.errors import UserError
from hindsight_ray.core.experiment import ExperimentStore
from hindsight_ray.core.layout import SEARCHER_PREFIX, SNAPSHOT_PREFIX
from hindsight_ray.core.objective import SCORE_KEY
from hindsight_ray.core.trials import TrialState
from hindsight_ray.search.policy import LIVE, TwoStagePolicy, TwoStageSettings
from hindsight_ray.search.rebuild import InconsistentTrials, RecordedTrial, rebuild_policy


def recorded_trials(store: ExperimentStore) -> list[RecordedTrial]:
    """The trials of Ray's newest experiment snapshot, in the order Ray created them."""
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(store.root, storage_filesystem=store.fs)
    return [
        RecordedTrial(t.trial_id, dict(t.config), str(t.status), dict(t.last_result or {}))
        for t in analysis.trials
    ]


def _readable_policy(store: ExperimentStore, name: str) -> TwoStagePolicy | None:
    try:
        return TwoStagePolicy.from_state(store.read_json(name)["policy"])
    except (ValueError, KeyError, TypeError):
        # damaged JSON, or not our state
        return None


def _disagreement(policy: TwoStagePolicy, trials: list[RecordedTrial]) -> str | None:
    """How a saved policy differs from Ray's trials, or None: Ray saves the two files in one step but a
    kill can leave either one newer (on object storage they upload apart)."""
    ray_ids = {t.trial_id for t in trials}
    unseen = ray_ids - set(policy.trials)
    if unseen:
        return f"behind Ray's ({len(unseen)} trials it never saw)"
    ended = {t.trial_id for t in trials if TrialState(t.status).is_finished()}
    waiting = [t for t in ended if policy.trials[t].status in LIVE]
    if waiting:
        return f"behind Ray's ({len(waiting)} ended trials it still waited for)"
    return None


def ensure_searcher_state(store: ExperimentStore, config: SweepConfig, slots: int) -> str | None:
    """Write the two-stage decisions as Ray's trials make them, where Tune restores them from; a line saying
    why when the saved ones were missing, unreadable or out of step (None when they agreed)."""
    files = store.names(SEARCHER_PREFIX)
    policy = _readable_policy(store, files[-1]) if files else None
    trials = recorded_trials(store)
    why = (
        "missing"
        if not files
        else ("unreadable" if policy is None else _disagreement(policy, trials))
    )
    settings = TwoStageSettings.from_config(config, slots)
    try:
        rebuilt = rebuild_policy(settings, config.mode, SCORE_KEY, trials)
    except InconsistentTrials as exc:
        raise UserError(
            f"resume {store.location}: the trials Ray recorded cannot be replayed as a two-stage "
            f"search ({exc}); this experiment cannot be resumed"
        ) from None
    if files:
        name = files[-1]
    else:
        snapshots = store.names(SNAPSHOT_PREFIX)
        session = (
            snapshots[-1].removeprefix(SNAPSHOT_PREFIX).removesuffix(".json")
            if snapshots
            else "rebuilt"
        )
        name = f"{SEARCHER_PREFIX}{session}.pkl"
    # trials the saved state suggested but Ray never recorded are not in Ray's list: they are suggested again
    state = {
        "metric": SCORE_KEY,
        "mode": config.mode,
        "settings": settings.as_dict(),
        "policy": rebuilt.get_state(),
    }
    store.write_json(name, state)
    return (
        None
        if why is None
        else f"the two-stage searcher state was {why}: rebuilt from the {len(trials)} trials Ray recorded"
    )


# Ray Tune's saved search algorithms (a searcher's generator, the grid/random generator): pickles
SEARCH_ALGORITHM_PREFIXES = ("search_gen_state-", "basic-variant-state-")


def _storage_contexts(root: Any) -> list[Any]:
    """Every Ray ``StorageContext`` reachable from ``root`` (dicts, sequences, objects' attributes)."""
    from ray.train._internal.storage import StorageContext

    found, seen, stack = [], set(), [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None), type)):
            continue
        seen.add(id(obj))
        if isinstance(obj, StorageContext):
            found.append(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif hasattr(obj, "__dict__") and not callable(obj):
            stack.extend(vars(obj).values())
    return found


def relocate_search_algorithm(store: ExperimentStore, filesystem: Any) -> list[str]:
    """Point the saved search algorithm's experiment at where the folder is now; the files rewritten.

    Ray re-points each restored trial at a moved or copied experiment folder, but not the experiment its
    search algorithm saved (``SearchGenerator.set_state`` restores it whole), and every trial created after
    the resume inherits that one's storage: its results and checkpoints go to the folder the sweep was
    started in (the original of a copy, a path that may be gone), and the resumed sweep cannot read them.
    The same three fields Ray updates on its trials are set here (filesystem, storage path, folder name);
    nothing changes for a folder that has not moved."""
    from ray import cloudpickle

    parent, name = posixpath.split(store.root.rstrip("/"))
    rewritten = []
    for prefix in SEARCH_ALGORITHM_PREFIXES:
        for file in store.names(prefix):
            try:
                state = cloudpickle.loads(store.read_bytes(file))
            except Exception:  # noqa: BLE001 - unreadable: Ray's own restore says so
                continue
            contexts = [
                c
                for c in _storage_contexts(state)
                if (c.storage_fs_path, c.experiment_dir_name) != (parent, name)
            ]
            if not contexts:
                continue
            for context in contexts:
                context.storage_filesystem = filesystem
                context.storage_fs_path = parent
                context.experiment_dir_name = name
            store.write_bytes(file, cloudpickle.dumps(state))
            rewritten.append(file)
    return rewritten

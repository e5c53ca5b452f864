"""Every file name in an experiment folder: ours, and the prefixes of Ray Tune's own files.

An experiment folder holds Ray Tune's files (the experiment snapshot, the searcher's state, a folder per
trial) beside ours. ``summary.json`` is written last: its presence means "finished". Ray's names are spelt
here so that the pure layers need no Ray; a slow test checks them against Ray's own constants
(``TuneController.CKPT_FILE_TMPL``, ``Searcher.CKPT_FILE_TMPL``).
"""

from __future__ import annotations

# ours, at the experiment's top
TRIALS_FILE = "trials.parquet"
EPOCHS_FILE = "epochs.parquet"
SUMMARY_FILE = "summary.json"
BEST_MODEL_FILE = "best_model.keras"
PREDICTIONS_FILE = "test_predictions.parquet"
PREPROCESSING_FILE = "preprocessing.json"
CONFIG_FILE = "config.json"
REPORT_FILE = "report.md"
HTML_FILE = "report.html"
# when each trial was queued, by trial id (the driver's clock)
QUEUE_FILE = "queued_at.json"
# one driver per experiment: who holds it (pid, host, since)
LOCK_FILE = ".hindsight.lock"
# a campaign folder's table of its sweeps
CAMPAIGN_FILE = "campaign.parquet"
# what the model artifact of a finished sweep carries (MLflow, W&B)
MODEL_FILES = (BEST_MODEL_FILE, PREPROCESSING_FILE, SUMMARY_FILE, REPORT_FILE)

# keys beside the config in config.json
# the Python function that built the models, when one did
BUILDER_KEY = "model_builder"
# what resume checks the data against
FINGERPRINT_KEY = "data_fingerprint"

# inside a trial's checkpoint
CHECKPOINT_MODEL_FILE = "model.keras"
CHECKPOINT_STATE_FILE = "state.json"

# Ray Tune's files: "<prefix><session time><suffix>"; the newest sorts last
SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX = "experiment_state-", ".json"
SEARCHER_PREFIX, SEARCHER_SUFFIX = "searcher-state-", ".pkl"
STATE_PREFIXES = (SNAPSHOT_PREFIX, SEARCHER_PREFIX)

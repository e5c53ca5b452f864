"""The sweep config: typed, validated, loaded from YAML, with ``--set a.b=c`` overrides."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from hindsight_ray.config.files import (
    apply_overrides,
    changed_keys,
    parse_override,
    read_config_file,
    validation_message,
)
from hindsight_ray.core.errors import UserError
from hindsight_ray.core.objective import Objective, ScoreRule

# Known-good preprocessing of the bundled series, applied only when that series is the source; a key
# given in the config wins. Measured in the README's benchmark section: airline as log + first
# difference with standard scaling beats seasonal naive by far more than min-max on the raw counts,
# and adding the seasonal difference (the airline model's own transform) takes the default sweep's
# test RMSE from 20.9-24.9 to 18.2-19.0 over seeds 0-2.
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "builtin:airline": {
        "log": True,
        "difference": True,
        "seasonal_difference": True,
        "scale": "standard",
    },
    "builtin:sunspots": {},
}


__all__ = [
    "DATASET_DEFAULTS",
    "SweepConfig",
    "apply_overrides",
    "build_config",
    "changed_keys",
    "config_to_dict",
    "load_config",
    "parse_override",
    "read_config_file",
]


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        # YAML reads `true` as a bool, which Python would count as 1
        raise ValueError(f"expected a number, not {str(value).lower()}")
    return value


def _whole_number(value: Any) -> Any:
    _not_bool(value)
    if isinstance(value, str):
        # YAML's quotes ("8") make text, which is no count of layers or epochs
        raise ValueError(f"expected a whole number, not the text {value!r}")
    return value


# Numbers in the config: never a boolean, never NaN or infinite; counts never text.
Int = Annotated[int, BeforeValidator(_whole_number)]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    return value


# a path or URI: no NUL, which no filesystem takes
PathText = Annotated[str, AfterValidator(_no_nul)]


def _epochs_or_auto(value: Any) -> Any:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ValueError("must be auto or a whole number of epochs (1 or more)")


Float = Annotated[float, BeforeValidator(_not_bool), Field(allow_inf_nan=False)]
# the smallest normal float32: below it a learning rate trains as zero
FLOAT32_TINY = 1.1754943508222875e-38


def _trainable_rate(value: float) -> float:
    if value < FLOAT32_TINY:
        raise ValueError(
            f"{value:g} is too small to train with: float32 holds it as zero or a denormal"
        )
    return value


LearningRate = Annotated[Float, AfterValidator(_trainable_rate)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class SplitConfig(_Section):
    validation: Float = Field(
        0.2,
        gt=0,
        lt=1,
        description="share of the rows for validation (selection); chronological for time series, stratified for text",
    )
    test: Float = Field(
        0.2,
        gt=0,
        lt=1,
        description="share of the rows for the test split, touched once by the final model",
    )

    @model_validator(mode="after")
    def _fits(self) -> SplitConfig:
        if self.validation + self.test >= 0.9:
            raise ValueError(
                f"validation + test = {self.validation + self.test:g} leaves too little for training (must be < 0.9)"
            )
        return self


class DataConfig(_Section):
    kind: Literal["timeseries", "text"] = Field("timeseries", description="timeseries or text")
    source: PathText = Field(
        "builtin:airline",
        description="builtin:NAME (hindsight-ray datasets), file.csv, file.parquet, an aclImdb/ folder, imdb.npz, or builtin:imdb",
    )
    # time series
    target: list[str] | None = Field(
        None,
        description="time series: the column(s) to predict; default: the bundled dataset's, or a file's only numeric column",
    )
    features: list[str] | None = Field(
        None, description="time series: the input columns; default: the targets"
    )
    date_column: str | None = Field(
        None, description="time series: parsed and sorted on; repeated dates are an error"
    )
    lags: Int = Field(12, ge=1, description="time series: the input window's length")
    horizon: Int = Field(1, ge=1, description="time series: steps predicted at once")
    scale: Literal["minmax", "standard", "none"] = Field(
        "minmax", description="time series: fitted on the training split only"
    )
    missing: Literal["error", "interpolate", "drop"] = Field(
        "error",
        description="time series: what a missing value does: fail the sweep, be interpolated, or drop its row",
    )
    season: Int | None = Field(
        None,
        ge=2,
        description="time series: observations per season (seasonal naive, SARIMA, Holt-Winters, seasonal_difference); default: inferred from the dates (monthly: 12)",
    )
    difference: bool = Field(
        False,
        description="time series: model first differences of the target; inverted for metrics and by the predictor",
    )
    seasonal_difference: bool = Field(
        False,
        description="time series: model differences one season apart (before difference); inverted for metrics and by the predictor",
    )
    log: bool = Field(
        False,
        description="time series: model the log of the target (values must be positive); inverted for metrics and by the predictor",
    )
    # text
    text_column: str = Field("text", description="text: the column holding the texts")
    label_column: str = Field(
        "label",
        description="text: the column holding the labels: two classes (0/1, -1/1, pos/neg, ... keep their meaning) or more",
    )
    num_words: Int = Field(
        20000, ge=2, description="text: vocabulary size (the seed notebook used 88584)"
    )
    max_length: Int = Field(
        250,
        ge=1,
        description="text: tokens per text, padded and truncated at the front as the seed notebook did",
    )
    # both
    split: SplitConfig = SplitConfig()

    @model_validator(mode="before")
    @classmethod
    def _dataset_defaults(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        source = raw.get("source", cls.model_fields["source"].default)
        defaults = DATASET_DEFAULTS.get(source, {}) if isinstance(source, str) else {}
        return {**defaults, **raw}

    @field_validator("target", "features", mode="before")
    @classmethod
    def _one_name_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ModelConfig(_Section):
    task: Literal["auto", "regression", "classification"] = Field(
        "auto", description="auto: regression for time series, classification for text"
    )
    optimizer: Literal["rmsprop", "adam", "sgd", "adagrad"] = Field(
        "rmsprop", description="the Keras optimizer every trial trains with"
    )
    batch_size: Int = Field(32, ge=1, description="rows per training batch")
    bidirectional: bool = Field(False, description="Bidirectional(LSTM) in every layer")
    dropout: Float = Field(
        0.0, ge=0, lt=1, description="Dropout after every LSTM layer (keeps the cuDNN kernel)"
    )
    loss: Literal["mse", "mae"] = Field(
        "mse", description="regression loss; classification uses cross-entropy"
    )
    builder: str | None = Field(
        None,
        description='"package.module:function" (spec, layers, units, learning_rate, seed) -> a compiled keras.Model that replaces the LSTM',
    )
    backend: Literal["tensorflow", "jax", "torch"] = Field(
        "tensorflow", description="Keras 3's backend, in the trials and the driver"
    )

    @field_validator("builder")
    @classmethod
    def _import_path(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", value):
            raise ValueError(f"must look like package.module:function, got {value!r}")
        return value


class Stage1Config(_Section):
    layers: list[Int] = Field([1, 2], description="the LSTM depths stage 1 scans")
    units: list[Int] = Field(
        [8, 16, 32, 64], description="the LSTM widths stage 1 scans (every depth x every width)"
    )
    learning_rate: LearningRate = Field(
        0.001, gt=0, le=10, description="stage 1's fixed learning rate"
    )
    epochs: Int = Field(20, ge=1, description="epochs per stage-1 trial")
    early_stop: Literal["none", "asha"] = Field(
        "none", description="asha: stop hopeless stage-1 trials early"
    )

    @field_validator("layers", "units")
    @classmethod
    def _positive_grid(cls, values: list[int]) -> list[int]:
        if not values:
            raise ValueError("the grid is empty; give at least one value")
        bad = [v for v in values if v < 1]
        if bad:
            raise ValueError(f"grid values must be positive integers, got {bad[0]}")
        if len(set(values)) != len(values):
            raise ValueError(f"grid values repeat: {values}")
        return values


class Stage2Config(_Section):
    max_learning_rate: LearningRate = Field(
        0.02,
        gt=0,
        le=10,
        description="where the halving/bisection rule starts, and the bound it bisects back towards",
    )
    max_iterations: Int = Field(
        16, ge=1, description="n in K = isqrt(n) + 1, the number of stage-2 trials"
    )
    epochs: Int = Field(50, ge=1, description="epochs per stage-2 trial")
    speculative: bool | Literal["auto"] = Field(
        "auto",
        description="idle slots run the learning rates the next decisions could need (the decided path stays the sequential one); auto: when 3 or more trials fit at once, none sharing a CPU or GPU",
    )

    @field_validator("max_learning_rate")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class ManualPoint(_Section):
    layers: Int = Field(ge=1, description="LSTM depth")
    units: Int = Field(ge=1, description="LSTM width")
    learning_rate: LearningRate = Field(gt=0, le=10, description="learning rate")


StrategyName = Literal["two_stage", "grid", "random", "manual", "bayes", "asha"]
# two_stage, and what it is compared with
STRATEGIES: tuple[str, ...] = get_args(StrategyName)


class SearchConfig(_Section):
    strategy: StrategyName = Field(
        "two_stage", description="two_stage, or what it is compared with"
    )
    budget: Int | None = Field(
        None,
        ge=1,
        description="trial-epochs; default: two_stage's own end, the whole grid, or for random/bayes/asha what two_stage would spend at most",
    )
    manual: list[ManualPoint] | None = Field(
        None,
        description="the manual strategy's configs: [{layers: 1, units: 32, learning_rate: 0.01}, ...]",
    )
    metric: Literal["auto", "val_rmse", "val_mae", "val_loss", "val_accuracy"] = Field(
        "auto",
        description="auto: val_rmse (min) for regression, val_accuracy (max) for classification",
    )
    score: ScoreRule = Field(
        "best_epoch",
        description="a trial's score from its epochs: its best epoch, its last, or the mean of its last score_last_k",
    )
    score_last_k: Int = Field(3, ge=1, description="epochs averaged by score: mean_last")
    ensemble: Int = Field(
        1,
        ge=1,
        le=20,
        description="average up to this many best trials' models: k = 1..ensemble chosen on validation, tested once, exported as one model",
    )
    stage1: Stage1Config = Stage1Config()
    stage2: Stage2Config = Stage2Config()


ADDRESS = r"auto|local|(ray://)?[A-Za-z0-9_.\-]+(:\d{1,5})|ray://[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:]+\]:\d{1,5}"


class ResourcesConfig(_Section):
    cpus_per_trial: Float = Field(1, gt=0, description="CPUs each trial holds")
    gpus_per_trial: Float = Field(
        0,
        ge=0,
        description="GPUs each trial holds; a fraction that divides 1 packs trials (0.25: four on one GPU)",
    )
    max_concurrent: Int | None = Field(
        None, ge=1, description="trials at once; default: as many as the resources allow"
    )
    address: str | None = Field(
        None,
        description="null: start a local Ray; auto: the running cluster; host:port; ray://host:10001 (Ray Client)",
    )
    mixed_precision: bool = Field(False, description="mixed_float16 on GPUs (ignored on CPUs)")
    wait_for_autoscaler: bool = Field(
        False,
        description="let trials no live node can serve wait for nodes an autoscaler may add, instead of failing",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(ADDRESS, value):
            raise ValueError(
                "must be auto, host:port (the head's port, e.g. 10.0.0.5:6379) or ray://host:10001"
            )
        return value

    @field_validator("gpus_per_trial")
    @classmethod
    def _packable(cls, value: float) -> float:
        if 0 < value < 1 and not math.isclose(1 / value, round(1 / value)):
            raise ValueError(f"a fraction of a GPU must divide 1 (0.5, 0.25, ...), got {value:g}")
        if value > 1 and value != int(value):
            raise ValueError(f"more than one GPU must be a whole number, got {value:g}")
        return value


class MlflowConfig(_Section):
    tracking_uri: str | None = Field(
        None, description="default: MLflow's own (MLFLOW_TRACKING_URI, or ./mlruns)"
    )
    experiment: str | None = Field(None, description="default: the sweep's name")


class WandbConfig(_Section):
    project: str = Field(
        "hindsight-ray",
        description="the W&B project; a sweep's trials are a group named after the sweep",
    )
    entity: str | None = Field(None, description="default: the logged-in user's")
    mode: Literal["offline", "online"] = Field(
        "offline",
        description="offline: kept on disk (wandb sync uploads them later); online needs WANDB_API_KEY",
    )
    dir: str | None = Field(
        None,
        description="W&B keeps its runs in <dir>/wandb; default: the experiment folder (., for object storage)",
    )


class RunSettings(_Section):
    max_failures: Int = Field(
        2, ge=0, description="a failed trial is retried this many times from its last checkpoint"
    )
    checkpoint_every: Annotated[int | Literal["auto"], BeforeValidator(_epochs_or_auto)] = Field(
        "auto",
        description="auto: after the last epoch and after any epoch ending checkpoint_seconds or more after the last checkpoint; N: every N epochs and after the last",
    )
    checkpoint_seconds: Float = Field(
        30.0, gt=0, description="with auto: the most training a restarted trial repeats"
    )
    keep_checkpoints: Int = Field(2, ge=1, description="checkpoints kept per trial")
    report_seconds: Float = Field(
        0.5,
        ge=0,
        description="epochs shorter than this reach Tune together (a report is a round trip to the driver); epochs.parquet keeps every epoch; 0: a report every epoch (always so with a budget or asha)",
    )
    callbacks: list[Literal["mlflow", "wandb"]] = Field(
        [],
        description="mlflow: a parent run per sweep and a nested run per trial (pip install '.[mlflow]'); wandb: a run per trial grouped by the sweep, and one for the sweep (pip install '.[wandb]')",
    )
    deterministic: bool | Literal["auto"] = Field(
        "auto",
        description="TensorFlow's op determinism: auto = on for CPU trials (bitwise-repeatable), off for GPU trials; true / false force it",
    )
    mlflow: MlflowConfig = MlflowConfig()
    wandb: WandbConfig = WandbConfig()


def speculative_for(
    setting: bool | str, slots: int, resources: ResourcesConfig | None = None
) -> bool:
    """Whether stage 2 speculates with ``slots`` trials at once (``search.stage2.speculative``). ``auto``: with 3
    or more slots, unless trials share a CPU or a GPU (fractions of one): a speculative trial would then slow
    the one the next decision waits for."""
    if setting != "auto":
        return bool(setting)
    shared = resources is not None and (
        resources.cpus_per_trial < 1 or 0 < resources.gpus_per_trial < 1
    )
    return slots >= 3 and not shared


def deterministic_for(setting: bool | str, gpus: int) -> bool:
    """Whether a trial with ``gpus`` GPUs runs TensorFlow's ops deterministically (``run.deterministic``)."""
    return gpus == 0 if setting == "auto" else bool(setting)


class SweepConfig(_Section):
    # where each preprocessing value came from (default, dataset, config, --set): see value_origins
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)
    name: str | None = Field(
        None,
        description="experiment name, a plain folder name under storage; default: <dataset>-<strategy>-<YYYYmmdd-HHMMSS>",
    )
    storage: PathText = Field(
        "./hindsight_results",
        description="where experiments go: a local path, a shared NFS path, or a pyarrow URI (s3://bucket/prefix?endpoint_override=...)",
    )
    seed: Int = Field(
        0,
        ge=0,
        description="seeds the split (text), every model's weights and every epoch's shuffle",
    )
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    search: SearchConfig = SearchConfig()
    resources: ResourcesConfig = ResourcesConfig()
    run: RunSettings = RunSettings()

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and (
            not value
            or "/" in value
            or value in {".", ".."}
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
        ):
            raise ValueError(
                "must be a plain folder name (no '/', no NUL, tab, newline or other control character, not '.' or '..')"
            )
        if value is not None and len(value.encode()) > 255:
            raise ValueError(
                f"is {len(value.encode())} bytes long; a folder name can have at most 255"
            )
        return value

    def __eq__(self, other: object) -> bool:
        """Equal settings are equal configs, whatever their values' origins."""
        if not isinstance(other, SweepConfig):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash(self.model_dump_json())

    @model_validator(mode="after")
    def _manual_has_points(self) -> SweepConfig:
        if self.search.strategy == "manual" and not self.search.manual:
            raise ValueError(
                "search.strategy manual needs search.manual: a list of {layers, units, learning_rate}"
            )
        return self

    @property
    def task(self) -> str:
        """The resolved task: regression for time series, classification for text."""
        if self.model.task != "auto":
            return self.model.task
        return "regression" if self.data.kind == "timeseries" else "classification"

    @property
    def metric(self) -> str:
        """The resolved validation metric the search optimises."""
        if self.search.metric != "auto":
            return self.search.metric
        return "val_rmse" if self.task == "regression" else "val_accuracy"

    @property
    def mode(self) -> str:
        """``max`` for accuracy, ``min`` for errors and losses."""
        return "max" if self.metric == "val_accuracy" else "min"

    @property
    def objective(self) -> Objective:
        """The metric, its direction and the rule that scores a trial from its epochs."""
        return Objective(self.metric, self.mode, self.search.score, self.search.score_last_k)

    @model_validator(mode="after")
    def _metric_fits_task(self) -> SweepConfig:
        regression_only = {"val_rmse", "val_mae"}
        if self.task == "classification" and self.metric in regression_only:
            raise ValueError(f"search.metric {self.metric} needs a regression task")
        if self.task == "regression" and self.metric == "val_accuracy":
            raise ValueError("search.metric val_accuracy needs a classification task")
        if self.data.kind == "text" and self.task == "regression":
            raise ValueError("model.task regression is not available for text data")
        if self.data.kind == "timeseries" and self.task == "classification":
            raise ValueError("model.task classification is not available for time series")
        if self.data.source == "builtin:imdb" and self.data.kind != "text":
            raise ValueError("data.source builtin:imdb needs data.kind: text")
        return self


def build_config(raw: dict[str, Any]) -> SweepConfig:
    """Validate a raw mapping into a :class:`SweepConfig`; a mistake raises a one-line UserError."""
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as exc:
        raise UserError(validation_message(exc, SweepConfig)) from None


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    literal: dict[str, Any] | None = None,
) -> SweepConfig:
    """The config from an optional YAML file plus ``--set`` overrides and literal settings, validated."""
    raw = read_config_file(path) if path is not None else {}
    config = build_config(apply_overrides(raw, overrides or [], literal))
    return with_origins(config, value_origins(raw, overrides or [], literal))


PREPROCESSING_KEYS = (
    "lags",
    "horizon",
    "scale",
    "log",
    "difference",
    "seasonal_difference",
    "season",
    "missing",
)


def value_origins(
    raw: dict[str, Any],
    overrides: list[str],
    literal: dict[str, Any] | None,
    before: dict[str, str] | None = None,
) -> dict[str, str]:
    """Where each preprocessing value (``data.<key>``) came from: ``--set`` (an override), ``argument``
    (a keyword of the API or an option of the CLI), ``config`` (the file or mapping), ``dataset
    builtin:NAME`` (that bundled dataset's own defaults, which apply only when it is the source), or
    ``default``. ``before``: the origins of a config this one was made from."""

    merged = apply_overrides(raw, overrides, literal)
    source = (merged.get("data") or {}).get("source", DataConfig.model_fields["source"].default)
    from_set = {tuple(parse_override(text)[0]) for text in overrides}
    from_literal = {
        tuple(key.split(".")) for key, value in (literal or {}).items() if value is not None
    }
    data = raw.get("data")
    given: dict[str, Any] = data if isinstance(data, dict) else {}
    dataset = DATASET_DEFAULTS.get(source, {}) if isinstance(source, str) else {}
    origins = {}
    for key in PREPROCESSING_KEYS:
        path = ("data", key)
        if path in from_set:
            origins[key] = "--set"
        elif path in from_literal:
            origins[key] = "argument"
        elif before and key in before and key in given:
            origins[key] = before[key]
        elif key in given:
            origins[key] = "config"
        elif key in dataset:
            origins[key] = f"dataset {source}"
        else:
            origins[key] = "default"
    return origins


def with_origins(config: SweepConfig, origins: dict[str, str]) -> SweepConfig:
    config._origins = dict(origins)
    return config


def config_to_dict(config: SweepConfig) -> dict[str, Any]:
    """A plain, YAML/JSON-ready mapping of every key (defaults filled in)."""
    return config.model_dump(mode="json")

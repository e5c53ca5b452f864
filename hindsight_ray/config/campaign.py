"""A benchmark campaign file, typed and checked: strategies x datasets x seeds on equal budgets.

Every check runs before anything does; what each sweep of the campaign will be is validated too (the
runner builds them with :func:`cell_config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hindsight_ray.config.files import apply_overrides, read_config_file
from hindsight_ray.config.schema import STRATEGIES, SweepConfig, build_config
from hindsight_ray.core.errors import UserError
from hindsight_ray.core.location import ExperimentLocation

# what the campaign sets for each of its sweeps: a dataset's overrides may not
SET_BY_THE_CAMPAIGN = ("seed", "name", "storage", "search.strategy", "search.budget")
_EMPTY = "is empty; list at least one (or leave the key out for the default)"


def _whole(value: Any) -> bool:
    """An integer that is not a boolean (YAML reads ``true`` as a bool, which Python counts as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _plain_name(label: str, value: Any) -> None:
    if (
        not isinstance(value, str)
        or not value
        or "/" in value
        or "\\" in value
        or value in (".", "..")
    ):
        raise ValueError(
            f"{label} {value!r} must be a plain folder name (it names a folder under storage)"
        )


def _given(key: str, value: Any) -> None:
    if value is None or (isinstance(value, list | dict) and not value):
        raise ValueError(f"{key} {_EMPTY}")


def _no_repeats(key: str, values: list[Any]) -> None:
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{key} lists {repeated[0]} twice; each would plan the same sweeps again")


def _set_by_the_campaign(settings: dict[str, Any], prefix: str = "") -> list[str]:
    """The keys of a dataset's overrides (dotted or nested) that the campaign sets for each sweep."""
    found = []
    for key, value in settings.items():
        dotted = f"{prefix}{key}"
        if dotted in SET_BY_THE_CAMPAIGN or any(
            dotted.startswith(f"{k}.") for k in SET_BY_THE_CAMPAIGN
        ):
            found.append(dotted)
        elif isinstance(value, dict):
            found += _set_by_the_campaign(value, f"{dotted}.")
    return found


def _default_budget() -> list[int | str]:
    return ["two_stage"]


def _default_datasets() -> dict[str, dict[str, Any]]:
    return {"default": {}}


class CampaignConfig(BaseModel):
    """A campaign: every strategy on every dataset for every seed, on each budget of ``budget``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="the campaign's folder under storage; default: the file's name")
    base: dict[str, Any] = Field(
        default_factory=dict,
        description="the sweep config every cell starts from (or a file's path)",
    )
    strategies: list[str] = Field(
        default_factory=lambda: ["two_stage"], description="the strategies compared"
    )
    datasets: dict[str, dict[str, Any]] = Field(
        default_factory=_default_datasets,
        description="a name per dataset -> its config overrides (dotted keys)",
    )
    seeds: list[int] = Field(
        default_factory=lambda: [0], description="the seeds each cell runs with"
    )
    budget: list[int | str] = Field(
        default_factory=_default_budget,
        description="trial-epochs per sweep: two_stage (what two_stage used), a number, or a list",
    )
    storage: str = Field("./hindsight_results", description="where the campaign's folder goes")
    manual: list[dict[str, Any]] | None = Field(None, description="the manual strategy's configs")

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> Any:
        _plain_name("name", value)
        return value

    @field_validator("strategies", mode="before")
    @classmethod
    def _strategies(cls, value: Any) -> Any:
        _given("strategies", value)
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise ValueError("strategies must be a list of strategy names")
        bad = [s for s in value if s not in STRATEGIES]
        if bad:
            raise ValueError(f"unknown strategy {bad[0]!r} (have: {', '.join(STRATEGIES)})")
        _no_repeats("strategies", value)
        return value

    @field_validator("datasets", mode="before")
    @classmethod
    def _datasets(cls, value: Any) -> Any:
        _given("datasets", value)
        if not isinstance(value, dict) or not all(
            isinstance(v, dict | None) for v in value.values()
        ):
            raise ValueError("datasets must map a name to config overrides (dotted keys)")
        for dataset, settings in value.items():
            _plain_name("dataset name", dataset)
            taken = sorted(_set_by_the_campaign(settings or {}))
            if taken:
                raise ValueError(
                    f"datasets.{dataset} sets {taken[0]}, which the campaign sets for every sweep "
                    "(use the campaign's seeds, strategies, budget, storage or name)"
                )
        return {k: v or {} for k, v in value.items()}

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        _given("seeds", value)
        if not isinstance(value, list) or not all(_whole(s) and s >= 0 for s in value):
            raise ValueError("seeds must be a non-empty list of non-negative integers")
        _no_repeats("seeds", value)
        return value

    @field_validator("budget", mode="before")
    @classmethod
    def _budgets(cls, value: Any) -> Any:
        budgets = value if isinstance(value, list) else [value]
        for one in budgets or [None]:
            if one != "two_stage" and not (_whole(one) and one > 0):
                raise ValueError(
                    "budget must be two_stage (the trial-epochs two_stage used), a positive number "
                    "of trial-epochs, or a list of those"
                )
        if len(set(map(str, budgets))) != len(budgets):
            raise ValueError(f"budget lists {budgets}, with a repeat")
        return budgets

    @model_validator(mode="after")
    def _two_stage_budget(self) -> CampaignConfig:
        if "two_stage" in self.budget and "two_stage" not in self.strategies:
            raise ValueError("budget two_stage needs two_stage among the strategies")
        return self

    @property
    def budgets(self) -> list[int | str]:
        """The budget rows, in order."""
        return list(self.budget)

    @property
    def sweeps(self) -> int:
        """How many sweeps the campaign plans (two_stage runs once per dataset and seed, whatever the rows)."""
        others = sum(s != "two_stage" for s in self.strategies)
        per_seed = ("two_stage" in self.strategies) + others * len(self.budget)
        return len(self.datasets) * len(self.seeds) * per_seed

    def describe(self) -> str:
        """The dry run's one line: what the campaign will run and where its results go."""
        return (
            f"campaign {self.name}: {self.sweeps} sweeps ({', '.join(self.strategies)} on "
            f"{', '.join(self.datasets)}, seeds {self.seeds}), "
            f"budgets {', '.join(map(str, self.budget))}, "
            f"results in {self.storage.rstrip('/')}/{self.name}"
        )

    def cell_config(
        self, dataset: str, strategy: str, seed: int, budget: int | None, row: int = 0
    ) -> SweepConfig:
        """The sweep config of one cell; ``row`` is the index of its budget in the list (two_stage runs
        the same sweep on every row, so its cell is shared). ``storage``: the campaign's folder."""
        suffix = "" if row == 0 or strategy == "two_stage" else f"-b{self.budget[row]}"
        overrides = [f"{k}={_yaml(v)}" for k, v in self.datasets[dataset].items()]
        literal: dict[str, Any] = {
            "search.strategy": strategy,
            "seed": seed,
            "name": f"{dataset}-{strategy}-s{seed}{suffix}",
            "storage": self.folder.uri,
        }
        if budget is not None and strategy != "two_stage":
            literal["search.budget"] = budget
        if strategy == "manual":
            literal["search.manual"] = self.manual
        return build_config(apply_overrides(self.base, overrides, literal))

    @property
    def folder(self) -> ExperimentLocation:
        """The campaign's folder: its name joined into the storage path (a URI's query stays last)."""
        return ExperimentLocation.parse(self.storage).join(self.name)


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def load_campaign(path: str | Path, overrides: list[str] | None = None) -> CampaignConfig:
    """A campaign file, checked: every sweep config it implies is validated before anything runs."""
    raw = apply_overrides(read_config_file(path), overrides or [])
    known = sorted(CampaignConfig.model_fields)
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise UserError(f"campaign {path}: unknown key {unknown[0]} (keys: {', '.join(known)})")
    base = raw.get("base") or {}
    if isinstance(base, str):
        base = read_config_file(
            Path(base) if Path(base).is_absolute() else Path(path).parent / base
        )
    if not isinstance(base, dict):
        raise UserError(
            f"campaign {path}: base must be a config mapping or the path of a config file"
        )
    given = {k: v for k, v in raw.items() if k not in ("base", "storage", "name")}
    settings = {
        **given,
        "base": base,
        "name": raw.get("name") or Path(path).stem,
        "storage": raw.get("storage") or base.get("storage") or "./hindsight_results",
    }
    try:
        campaign = CampaignConfig.model_validate(settings)
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise UserError(f"campaign {path}: {message}") from None
    for dataset in campaign.datasets:
        for strategy in campaign.strategies:
            # validates every combination
            campaign.cell_config(dataset, strategy, campaign.seeds[0], budget=1)
    return campaign

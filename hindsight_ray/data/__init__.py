"""Load a source, split, scale, window or tokenize -> :class:`Prepared` arrays and metadata."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hindsight_ray.config.schema import DataConfig
from hindsight_ray.data.prepared import Prepared, SeriesTransform

if TYPE_CHECKING:
    import pandas as pd

_SOURCES = (
    "BUILTINS",
    "DATAFRAME",
    "builtin_path",
    "dataset_name",
    "frame_table",
    "resolve_source",
)


def __getattr__(name: str) -> Any:
    """The sources' names, imported when first asked for: a trial worker unpickling its data needs only
    ``prepared`` (no pandas, no pyarrow)."""
    if name in _SOURCES:
        from hindsight_ray.data import sources

        return getattr(sources, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BUILTINS", "Prepared", "SeriesTransform", "builtin_path", "dataset_name", "prepare"]


def prepare(data: DataConfig, seed: int = 0, table: pd.DataFrame | None = None) -> Prepared:
    """Read and prepare the configured source once, on the driver; bad data raises a UserError.
    ``table``: a DataFrame given from Python (``data.source: dataframe``) instead of a file."""
    from hindsight_ray.data.sources import DATAFRAME, frame_table, resolve_source

    if table is not None or data.source == DATAFRAME:
        table = frame_table(table, data.source)
        if data.kind == "text":
            from hindsight_ray.data.text import prepare_text

            return prepare_text(data, None, seed, table)
        from hindsight_ray.data.timeseries import prepare_timeseries

        return prepare_timeseries(data, None, None, table)
    if data.source == "builtin:imdb":
        from hindsight_ray.data.imdb import fetch_imdb_npz
        from hindsight_ray.data.text import prepare_text

        return prepare_text(data, fetch_imdb_npz(), seed)
    builtin, path = resolve_source(data.source)
    if data.kind == "text":
        from hindsight_ray.data.text import prepare_text

        return prepare_text(data, path, seed)
    from hindsight_ray.data.timeseries import prepare_timeseries

    return prepare_timeseries(data, builtin, path)

"""Where data comes from: the bundled real series and user files (CSV, Parquet)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from hindsight_ray.core.errors import UserError


@dataclass(frozen=True)
class BuiltinDataset:
    """A real series shipped as package data (copied from the publishers' values, never retyped)."""

    name: str
    file: str
    date_column: str
    target: str
    frequency: str
    description: str
    source: str


BUILTINS: dict[str, BuiltinDataset] = {
    d.name: d
    for d in (
        BuiltinDataset(
            "airline",
            "airline.csv",
            "month",
            "passengers",
            "monthly",
            "international airline passengers (thousands), 1949-01 to 1960-12",
            "Box, Jenkins & Reinsel, Time Series Analysis (1976), series G; Time Series Data Library",
        ),
        BuiltinDataset(
            "sunspots",
            "sunspots.csv",
            "year",
            "sunspots",
            "yearly",
            "yearly mean sunspot numbers, 1700 to 2008",
            "Wolf/Zurich yearly sunspot numbers, as distributed with statsmodels (public domain)",
        ),
    )
}


def builtin_path(dataset: BuiltinDataset) -> Path:
    return Path(str(resources.files("hindsight_ray.data") / "builtin" / dataset.file))


def resolve_source(source: str) -> tuple[BuiltinDataset | None, Path]:
    """``builtin:NAME`` or a path -> (the builtin, if any; the file to read). Missing files are errors."""
    if source.startswith("builtin:"):
        name = source.removeprefix("builtin:")
        if name not in BUILTINS:
            raise UserError(
                f"data.source {source}: no such bundled dataset (have: {', '.join(sorted(BUILTINS))})"
            )
        dataset = BUILTINS[name]
        return dataset, builtin_path(dataset)
    path = Path(source).expanduser()
    if not path.exists():
        raise UserError(f"data.source {source}: file not found")
    return None, path


def dataset_name(source: str) -> str:
    """A short name for experiment folders: the builtin's name or the file's stem."""
    if source.startswith("builtin:"):
        return source.removeprefix("builtin:")
    return Path(source.rstrip("/")).stem or "data"


def read_table(path: Path, where: str) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame; unreadable, empty or header-only files are errors."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".txt", ".tsv"):
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        else:
            raise UserError(
                f"{where}: unsupported file type {suffix or '(none)'}; use .csv or .parquet"
            )
    except pd.errors.EmptyDataError:
        raise UserError(f"{where}: the file is empty") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{where}: the file is not UTF-8 text (byte {exc.start})") from None
    except (pd.errors.ParserError, OSError, ValueError) as exc:
        raise UserError(f"{where}: cannot be read ({str(exc).splitlines()[0]})") from None
    if frame.empty:
        raise UserError(f"{where}: the file has a header but no rows")
    return frame


# data.source of a sweep whose data is a pandas DataFrame given from Python
DATAFRAME = "dataframe"


def frame_table(table: pd.DataFrame | None, source: str) -> pd.DataFrame:
    """The DataFrame a sweep was given from Python, checked like a file would be."""
    if table is None:
        raise UserError(
            f"data.source {source}: pass the DataFrame as data= (hindsight_ray.sweep or "
            "hindsight_ray.resume); the command line reads files only"
        )
    if not isinstance(table, pd.DataFrame):
        raise UserError(f"data= must be a pandas DataFrame, got {type(table).__name__}")
    if table.empty:
        raise UserError("data=: the DataFrame has no rows")
    return table


def frame_fingerprint(table: pd.DataFrame) -> dict[str, object]:
    """What identifies a DataFrame's content: its shape and a SHA-256 over its columns, dtypes and values."""
    import hashlib

    digest = hashlib.sha256(
        repr([(str(c), str(t)) for c, t in table.dtypes.items()]).encode("utf-8")
    )
    digest.update(pd.util.hash_pandas_object(table, index=True).to_numpy().tobytes())
    return {
        "source": DATAFRAME,
        "rows": len(table),
        "columns": len(table.columns),
        "sha256": digest.hexdigest(),
    }


def absolute_source(source: str) -> str:
    """``source`` with a local path made absolute, so that ``resume`` from another folder reads the same file."""
    if source.startswith("builtin:") or "://" in source or source == DATAFRAME:
        return source
    return str(Path(source).expanduser().resolve())


def fingerprint(source: str) -> dict[str, object]:
    """What identifies a data source's content: its path, its size in bytes and a SHA-256 of its bytes
    (of every file, by relative path, for a folder such as ``aclImdb/``). ``builtin:imdb`` is the
    download Keras caches, identified by name only."""
    import hashlib

    if source == "builtin:imdb":
        return {"source": source}
    _, path = resolve_source(source)
    digest, size = hashlib.sha256(), 0
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode("utf-8") + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
    return {"source": source, "bytes": size, "sha256": digest.hexdigest()}

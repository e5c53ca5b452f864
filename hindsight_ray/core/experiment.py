"""Reading and writing the files of an experiment folder (an :class:`ExperimentLocation`: a local/NFS path or a
pyarrow URI such as s3://, gs://, file://)."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.fs as pafs

from hindsight_ray.core.errors import UserError
from hindsight_ray.core.location import ExperimentLocation, is_uri

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ExperimentLocation", "ExperimentStore", "is_uri"]


class ExperimentStore:
    """One experiment folder, made once from what the user gave and passed on as this object from the
    plan down: where it is (``where``, an :class:`ExperimentLocation`), what a person types to name it
    (``uri``), and its files, read and written.

    Local writes go through a temporary file and a rename, so readers never see half a file;
    object stores (s3://, gs://) make an object visible only once its upload completes. Pickled (in Tune's
    callbacks) as its URI alone: the filesystem is made again where it is unpickled.
    """

    def __init__(self, location: str | Path | ExperimentLocation) -> None:
        self.where = ExperimentLocation.parse(location)
        self.root = self.where.path
        # for messages: what the user types to name it again
        self.location = self.where.uri

    @classmethod
    def of(cls, given: str | Path | ExperimentLocation | ExperimentStore) -> ExperimentStore:
        """The experiment a public entry point was given (a path, a URI, or an experiment passed on)."""
        return given if isinstance(given, ExperimentStore) else cls(given)

    @property
    def fs(self) -> Any:
        """The pyarrow filesystem (made on first use)."""
        return self.where.fs

    @property
    def name(self) -> str:
        return self.where.name

    def __str__(self) -> str:
        return self.where.uri

    def __repr__(self) -> str:
        return f"ExperimentStore({self.where.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExperimentStore) and other.where == self.where

    def __hash__(self) -> int:
        return hash(self.where)

    def __getstate__(self) -> dict[str, Any]:
        return {"uri": self.where.uri}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["uri"])  # type: ignore[misc]

    @property
    def local(self) -> bool:
        return self.where.local

    @property
    def uri(self) -> str:
        """The experiment folder itself, as a person types it (a URI with its query for remote storage)."""
        return self.where.uri

    def path(self, name: str) -> str:
        """Where ``name`` lives, as a person types it (a local path, or a URI with its query)."""
        return self.where.join(name).uri

    def exists(self, name: str = "") -> bool:
        target = f"{self.root}/{name}" if name else self.root
        return self.fs.get_file_info(target).type != pafs.FileType.NotFound

    def read_bytes(self, name: str) -> bytes:
        with self.fs.open_input_stream(f"{self.root}/{name}") as handle:
            return handle.read()

    def read_buffer(self, name: str) -> Any:
        """A file's bytes in Arrow's own memory (a ``pyarrow.Buffer`` no Python object backs)."""
        with self.fs.open_input_stream(f"{self.root}/{name}") as handle:
            return handle.read_buffer()

    def read_text(self, name: str) -> str:
        return self.read_bytes(name).decode("utf-8")

    def read_json(self, name: str) -> dict[str, Any]:
        return json.loads(self.read_text(name))

    def read_mapping(self, name: str, holds: str) -> dict[str, Any]:
        """A JSON object the tool wrote (``holds`` says what it should hold, for the message); a damaged
        file, or one holding something else, is one ``UserError`` naming it."""
        try:
            value = self.read_json(name)
        except (ValueError, UnicodeDecodeError):
            raise UserError(f"{self.path(name)} is damaged (not readable JSON)") from None
        if not isinstance(value, dict):
            raise UserError(f"{self.path(name)} does not hold {holds}")
        return value

    def read_table(self, name: str) -> pd.DataFrame:
        """A Parquet table the tool wrote; a truncated or foreign file is one ``UserError`` naming it.

        Read from a buffer in Arrow's memory, never a Python object: the parquet reader lets go of what it
        read on one of Arrow's threads after it returns, and letting go of Python-backed bytes (``io.BytesIO``,
        ``pa.py_buffer``) takes the GIL there; at interpreter exit that thread is ended inside a C++
        destructor and the process aborts, "terminate called without an active exception" after a correct
        answer (apache/arrow#33975: 4 of 94 runs of a script reading two tables so, on a loaded machine)."""
        import pandas as pd
        import pyarrow as pa

        if not self.exists(name):
            raise UserError(
                f"{self.path(name)} is missing; the sweep has not finished (resume it first)"
            )
        try:
            return pd.read_parquet(pa.BufferReader(self.read_buffer(name)))
        except (pa.ArrowException, OSError, ValueError) as exc:
            reason = (
                str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            )
            raise UserError(f"{self.path(name)} is damaged ({reason})") from None

    def write_bytes(self, name: str, data: bytes) -> None:
        if self.local:
            target = Path(self.root, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                handle, tmp = tempfile.mkstemp(
                    dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
                )
            except OSError as exc:
                raise _cannot_write(target, exc) from None
            try:
                # as any file the user writes (Ray's own: 0644), not 0600
                os.fchmod(handle, 0o666 & ~_umask())
                with os.fdopen(handle, "wb") as out:
                    out.write(data)
                    out.flush()
                    # the rename below never exposes a file whose bytes are not on disk
                    os.fsync(out.fileno())
                os.replace(tmp, target)
            except BaseException as exc:
                # the old file, if any, is untouched
                Path(tmp).unlink(missing_ok=True)
                if isinstance(exc, OSError):
                    raise _cannot_write(target, exc) from None
                raise
            return
        self.fs.create_dir(self.root, recursive=True)
        with self.fs.open_output_stream(f"{self.root}/{name}") as out:
            out.write(data)

    def write_json(self, name: str, payload: dict[str, Any]) -> None:
        self.write_bytes(
            name, (json.dumps(payload, indent=2, default=_plain) + "\n").encode("utf-8")
        )

    def upload(self, name: str, local_file: str | Path) -> None:
        """Copy a finished local file (e.g. a saved model) into the experiment folder."""
        self.write_bytes(name, Path(local_file).read_bytes())

    def names(self, prefix: str) -> list[str]:
        """File names directly in the folder that start with ``prefix``, sorted."""
        if not self.exists():
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.root, recursive=False))
        return sorted(
            Path(info.path).name for info in infos if Path(info.path).name.startswith(prefix)
        )


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _cannot_write(target: Path, exc: OSError) -> UserError:
    """A full disk, a quota, a read-only or forbidden folder: one line naming the file; what was already
    written stays as it was, and ``hindsight-ray resume`` goes on once the cause is fixed."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason += "; free some space, then resume"
    return UserError(f"cannot write {target}: {reason}")


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")

"""A local filesystem for Ray's storage on which every file appears whole or not at all.

Ray copies its experiment snapshot, trial results and checkpoints into the storage folder with pyarrow, and
pyarrow's local filesystem writes in place: a disk that fills while the snapshot is copied leaves it cut
short, and the snapshot before it is already gone. Through this filesystem each file is written beside its
target and renamed over it only once it is complete and on disk, so the previous version stays whole.
"""

from __future__ import annotations

import errno
import io
import os
import tempfile
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class _AtomicWriter(io.RawIOBase):
    """Bytes for ``path`` go to a temporary file in its folder; ``close`` renames it into place, unless a write
    failed (then the temporary file goes and ``path`` keeps what it held)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        folder, name = os.path.split(path)
        # as pyarrow's local filesystem does for a copied tree
        os.makedirs(folder or ".", exist_ok=True)
        handle, self._tmp = tempfile.mkstemp(dir=folder or ".", prefix=f".{name}.", suffix=".tmp")
        # as any file written in place (mkstemp's is 0600)
        os.fchmod(handle, 0o666 & ~_umask())
        self._file = os.fdopen(handle, "wb")
        self._path = path
        self._failed = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        try:
            return self._file.write(data)
        except BaseException:
            self._failed = True
            raise

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not self._failed:
                self._file.flush()
                os.fsync(self._file.fileno())
        except BaseException:
            self._failed = True
            raise
        finally:
            self._file.close()
            if self._failed:
                os.unlink(self._tmp)
            else:
                os.replace(self._tmp, self._path)
            super().close()


class AtomicLocalHandler(pafs.FileSystemHandler):  # type: ignore[misc]  # pyarrow ships no types
    """pyarrow's local filesystem, with output streams that replace their target only when complete."""

    def __init__(self) -> None:
        self._local = pafs.LocalFileSystem()

    def __reduce__(self) -> tuple[Any, ...]:
        return (AtomicLocalHandler, ())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AtomicLocalHandler)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(AtomicLocalHandler)

    def get_type_name(self) -> str:
        return "hindsight-atomic-local"

    def normalize_path(self, path: str) -> str:
        return str(self._local.normalize_path(path))

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return list(self._local.get_file_info(paths))

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return list(self._local.get_file_info(selector))

    def create_dir(self, path: str, recursive: bool) -> None:
        self._local.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self._local.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self._local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError(errno.EPERM, "refusing to delete the contents of the root folder")

    def delete_file(self, path: str) -> None:
        self._local.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self._local.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        with (
            self._local.open_input_stream(src) as source,
            self.open_output_stream(dest, None) as target,
        ):
            while chunk := source.read(1 << 20):
                target.write(chunk)

    def open_input_stream(self, path: str) -> Any:
        return self._local.open_input_stream(path)

    def open_input_file(self, path: str) -> Any:
        return self._local.open_input_file(path)

    def open_output_stream(self, path: str, metadata: Any) -> Any:
        return pa.PythonFile(_AtomicWriter(path), mode="w")

    def open_append_stream(self, path: str, metadata: Any) -> Any:
        return self._local.open_append_stream(path)


def atomic_local_filesystem() -> pafs.FileSystem:
    return pafs.PyFileSystem(AtomicLocalHandler())

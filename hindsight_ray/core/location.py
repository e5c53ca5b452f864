"""Where an experiment lives: a local or NFS path, or a pyarrow URI (s3://, gs://, file://), made once from what
the user gave and passed on as an object: its filesystem, the path inside it, and the URI a person types.

A URI's query (``?endpoint_override=127.0.0.1:9000&scheme=http``) configures the filesystem; the experiment
name is joined into the path, never after the query, and Ray is handed the filesystem and the path, so
nothing is turned back into a string and parsed again.
"""

from __future__ import annotations

import atexit
import gc
import os
import posixpath
import socket
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hindsight_ray.core.errors import UserError


def is_uri(location: str) -> bool:
    return "://" in location


@dataclass(frozen=True)
class ExperimentLocation:
    """A folder on a pyarrow filesystem: ``path`` inside it (``bucket/prefix/name`` on s3, an absolute path on the
    local disk); ``scheme`` and ``query`` rebuild the URI a person reads and types. The filesystem is made on
    first use (for s3 without a region pyarrow asks the bucket's region over the network)."""

    path: str
    scheme: str = ""
    query: str = ""
    filesystem: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.scheme and self.filesystem is not None:
            _released_at_exit(self)

    @classmethod
    def parse(cls, given: str | Path | ExperimentLocation) -> ExperimentLocation:
        """A location from a path or URI as the user gave it (a location is returned as it is)."""
        if isinstance(given, ExperimentLocation):
            return given
        text = str(given)
        if not is_uri(text):
            try:
                return cls(str(Path(text).expanduser().resolve()))
            except RuntimeError:
                # ~nouser/...: no such user's home
                raise UserError(
                    f"storage {text}: {text.split('/', 1)[0]} names no user's home folder"
                ) from None
        parts = urlsplit(text)
        if parts.scheme == "file":
            return cls(str(Path(parts.path).resolve()))
        if parts.scheme in ("s3", "gs", "gcs") and parts.netloc:
            return cls(f"{parts.netloc}{parts.path}".rstrip("/"), parts.scheme, parts.query)
        fs, path = _from_uri(text)
        return cls(path.rstrip("/"), parts.scheme, parts.query, fs)

    @property
    def fs(self) -> Any:
        """The pyarrow filesystem (made once, with the URI's query: endpoint, scheme, region, keys)."""
        if self.filesystem is None:
            import pyarrow.fs as pafs

            made = pafs.LocalFileSystem() if not self.scheme else _from_uri(self._base_uri())[0]
            object.__setattr__(self, "filesystem", made)
            if self.scheme:
                _released_at_exit(self)
        return self.filesystem

    def _base_uri(self) -> str:
        return f"{self.scheme}://{self.path}" + (f"?{self.query}" if self.query else "")

    @property
    def local(self) -> bool:
        return not self.scheme

    @property
    def uri(self) -> str:
        """What a person types to name this folder again: a local path, or the URI with its query."""
        return self._base_uri() if self.scheme else self.path

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def parent(self) -> ExperimentLocation:
        return ExperimentLocation(
            posixpath.dirname(self.path), self.scheme, self.query, self.filesystem
        )

    def join(self, *names: str) -> ExperimentLocation:
        """A folder or file inside this one (the query kept)."""
        return ExperimentLocation(
            posixpath.join(self.path, *names), self.scheme, self.query, self.filesystem
        )

    def file(self, name: str) -> str:
        """The path of ``name`` inside this folder, on ``fs``."""
        return posixpath.join(self.path, name)

    def __str__(self) -> str:
        return self.uri

    def check_reachable(self, timeout: float = 5.0) -> None:
        """Refuse, in one line and within seconds, object storage that cannot work: an endpoint nothing answers
        at, no credentials to sign with, a bucket that does not exist. Local folders are checked by the plan."""
        if self.scheme != "s3":
            return
        options = {key: values[-1] for key, values in parse_qs(self.query).items()}
        endpoint = options.get("endpoint_override") or _endpoint_from_env()
        if endpoint:
            _check_endpoint(self.uri, endpoint, options.get("scheme", "https"), timeout)
        if not _has_credentials(options, endpoint):
            raise UserError(
                f"storage {self.uri}: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "AWS_PROFILE, or access_key/secret_key in the URI; on EC2 or EKS an instance or pod role is used)"
            )
        bucket = self.path.split("/", 1)[0]
        import pyarrow.fs as pafs

        try:
            info = self.fs.get_file_info(bucket)
        except OSError as exc:
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise UserError(
                f"storage {self.uri}: cannot reach bucket {bucket} ({detail})"
            ) from None
        if info.type == pafs.FileType.NotFound:
            raise UserError(f"storage {self.uri}: bucket {bucket} does not exist (create it first)")


# The locations that hold an object-store filesystem, by id, dropped as they die.
_HOLDERS: dict[int, weakref.ref[ExperimentLocation]] = {}
_AT_EXIT: list[bool] = []


def _released_at_exit(location: ExperimentLocation) -> None:
    if not _AT_EXIT:
        atexit.register(release_filesystems)
        _AT_EXIT.append(True)
    key = id(location)
    _HOLDERS[key] = weakref.ref(location, lambda _ref: _HOLDERS.pop(key, None))


def release_filesystems() -> None:
    """Drop every location's object-store filesystem and free it, before pyarrow shuts its S3 client down.

    pyarrow finalizes S3 at exit (an atexit handler registered when ``pyarrow.fs`` is imported, so it runs after
    this one, registered later) and asks that no S3 filesystem be alive then (apache/arrow#41087). The abort at
    exit once blamed on this ("terminate called without an active exception") was the parquet reader's
    (``ExperimentStore.read_table``). A location asked for its filesystem again makes a new one.
    """
    for ref in list(_HOLDERS.values()):
        location = ref()
        if location is not None:
            object.__setattr__(location, "filesystem", None)
    _HOLDERS.clear()
    gc.collect()


def _from_uri(text: str) -> tuple[Any, str]:
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(text)
    except (ValueError, OSError) as exc:
        # pyarrow.ArrowInvalid is a ValueError
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UserError(f"storage {text}: not a location pyarrow can open ({detail})") from None
    return fs, str(path)


def _endpoint_from_env() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _check_endpoint(uri: str, endpoint: str, scheme: str, timeout: float) -> None:
    parts = urlsplit(endpoint if "://" in endpoint else f"{scheme}://{endpoint}")
    host = parts.hostname or ""
    port = parts.port or (80 if parts.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(
            f"storage {uri}: nothing answers at the S3 endpoint {host}:{port} ({reason})"
        ) from None


def _has_credentials(options: dict[str, str], endpoint: str | None) -> bool:
    """Credentials the AWS SDK will find without asking the network: the URI, the environment, a profile, a
    web identity (EKS IRSA) or a container role. Elsewhere only an EC2 instance role remains, which exists on
    AWS itself (no custom endpoint) unless instance metadata is switched off."""
    if options.get("access_key") or options.get("anonymous") == "true":
        return True
    env = os.environ
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return True
    if any(
        env.get(name)
        for name in (
            "AWS_PROFILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        )
    ):
        return True
    shared = Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials").expanduser()
    if shared.is_file():
        return True
    metadata_off = env.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true"
    return endpoint is None and not metadata_off

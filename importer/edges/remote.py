"""Object storage and HTTP(S) inputs through fsspec: s3://, gs://, az://, https://.

Objects are streamed with range requests, never downloaded whole. Credentials come
from each provider's usual chain (environment, profiles, instance roles), never from a
command-line flag. An S3-compatible endpoint (MinIO, Ceph, a test server) is chosen
with the standard ``AWS_ENDPOINT_URL`` environment variable.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import IO, Any

from importer.edges.extras import require
from importer.errors import SourceError

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# scheme -> (fsspec back-end module, extra that installs it)
_BACKENDS = {
    "s3": ("s3fs", "s3"),
    "s3a": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
    "az": ("adlfs", "azure"),
    "abfs": ("adlfs", "azure"),
    "abfss": ("adlfs", "azure"),
    "http": ("aiohttp", "http"),
    "https": ("aiohttp", "http"),
}
# Read ahead this much per range request: few requests, bounded memory.
BLOCK_BYTES = 8 * 1024 * 1024


def scheme_of(path: str) -> str | None:
    """The URL scheme of ``path`` ("s3", "https", ...), or None for a local path."""
    found = _URL.match(path)
    if found is None or found.group(1).lower() == "file":
        return None
    return found.group(1).lower()


def is_url(path: str) -> bool:
    """Whether ``path`` names an object in storage or on the web rather than a file."""
    return scheme_of(path) is not None


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec file system for ``url`` and the path within it."""
    scheme = scheme_of(url) or "file"
    if scheme not in _BACKENDS:
        raise SourceError(
            url,
            f"'{scheme}://' is not a supported location",
            "Use a local path, s3://, gs://, az:// or https://.",
        )
    module, extra = _BACKENDS[scheme]
    core = require("fsspec.core", extra, "Reading from object storage")
    require(module, extra, f"Reading {scheme}:// locations")
    options: dict[str, Any] = {}
    if scheme in ("s3", "s3a"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["client_kwargs"] = {"endpoint_url": endpoint}
    try:
        fs, path = core.url_to_fs(url, **options)
    except (ValueError, OSError) as exc:
        raise SourceError(url, f"cannot reach this location ({exc})") from None
    return fs, path


def _described(url: str, exc: BaseException) -> SourceError:
    if isinstance(exc, FileNotFoundError):
        return SourceError(url, "the object does not exist", "Check the path and try again.")
    if isinstance(exc, PermissionError):
        return SourceError(
            url,
            "access is denied",
            "Check the credentials in the environment or profile (for S3: AWS_PROFILE, "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and the bucket's policy.",
        )
    return SourceError(url, f"cannot read this object ({type(exc).__name__}: {exc})")


@dataclass(frozen=True)
class ObjectInfo:
    """What identifies one stored object's content: size, ETag, version."""

    url: str
    size: int
    etag: str
    version: str
    modified: str

    def identity(self) -> str:
        return f"{self.url}\0{self.size}\0{self.etag}\0{self.version}\0{self.modified}"


def info(url: str) -> ObjectInfo:
    """Size, ETag and version of the object (raises SourceError when there is none)."""
    fs, path = filesystem(url)
    try:
        fs.invalidate_cache()
        found = fs.info(path)
    except Exception as exc:  # back-ends raise their own types besides OSError
        raise _described(url, exc) from None
    if found.get("type") == "directory":
        raise SourceError(url, "this is a folder, not an object", "Name an object or a glob.")
    return ObjectInfo(
        url=url,
        size=int(found.get("size") or 0),
        etag=str(found.get("ETag") or found.get("etag") or found.get("md5Hash") or ""),
        version=str(found.get("VersionId") or found.get("generation") or ""),
        modified=str(found.get("LastModified") or found.get("mtime") or found.get("updated") or ""),
    )


def open_binary(url: str) -> IO[bytes]:
    """A streaming, seekable byte stream over the object."""
    fs, path = filesystem(url)
    try:
        return fs.open(path, "rb", block_size=BLOCK_BYTES)  # type: ignore[no-any-return]
    except Exception as exc:  # back-ends raise their own types besides OSError
        raise _described(url, exc) from None


def expand(pattern: str) -> list[str]:
    """A URL, a glob (``s3://bucket/2024-*/part-*.parquet``) or a folder → object URLs.

    A folder means the data files in it and below (Parquet datasets are folders of
    parts); results are sorted so row order is the same on every run.
    """
    fs, path = filesystem(pattern)
    scheme = scheme_of(pattern) or "file"
    prefix = f"{scheme}://"
    try:
        if any(char in path for char in "*?["):
            found = sorted(fs.glob(path))
            if not found:
                raise SourceError(pattern, "no object matches this pattern", "Check the glob.")
            return [prefix + name for name in found if not fs.isdir(name)]
        if scheme not in ("http", "https") and fs.isdir(path):
            parts = sorted(
                name for name in fs.find(path) if not name.rsplit("/", 1)[-1].startswith(("_", "."))
            )
            if not parts:
                raise SourceError(pattern, "this folder holds no data files")
            return [prefix + name for name in parts]
    except SourceError:
        raise
    except Exception as exc:  # back-ends raise their own types besides OSError
        raise _described(pattern, exc) from None
    return [pattern]

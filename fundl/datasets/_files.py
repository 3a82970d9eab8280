"""Find, download and verify dataset files: the one place where fundl.datasets touches the network.

Lookup order of :func:`get_file` for ``<subdir>/<fname>``:

1. ``$FUNDL_DATA_DIR/<subdir>/<fname>`` when ``FUNDL_DATA_DIR`` is set and the file exists
   (its md5 must match, otherwise :class:`ChecksumError`);
2. the cache ``~/.cache/fundl/<subdir>/<fname>`` (root overridable with ``FUNDL_CACHE_DIR``);
3. a download from the canonical URL, or from ``$FUNDL_DATASETS_URL/<subdir>/<fname>`` when
   that variable is set (a mirror or a local test server). The body streams into a temporary
   file next to the final one, is md5-checked, and only then renamed into place, so the cache
   never holds a partial or corrupt file.

Example:
    >>> from fundl.datasets import get_file
    >>> path = get_file("t10k-labels-idx1-ubyte.gz", "mnist",
    ...                 "https://storage.googleapis.com/cvdf-datasets/mnist/t10k-labels-idx1-ubyte.gz",
    ...                 "ec29112dd5afa0611ce80d1b7f02629c")
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

DATA_DIR_ENV = "FUNDL_DATA_DIR"
CACHE_DIR_ENV = "FUNDL_CACHE_DIR"
URL_ENV = "FUNDL_DATASETS_URL"

_CHUNK = 1 << 16
_TIMEOUT_S = 30.0
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")  # no separators or "..": names stay in their folder
_MD5 = re.compile(r"[0-9a-f]{32}")
# Failures of the transfer itself; disk errors (full disk, read-only cache) propagate unchanged.
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)


class DatasetNotFoundError(FileNotFoundError):
    """No local copy of a dataset file exists and downloading it failed.

    Attributes ``missing`` (list of ``(fname, url, md5)``), ``subdir`` and ``reason`` (the
    network error as text) describe what was tried.
    """


class ChecksumError(ValueError):
    """A dataset file's md5 differs from the published one (corrupt, truncated or another file)."""


def cache_dir() -> Path:
    """Root of the download cache: ``$FUNDL_CACHE_DIR`` if set, else ``~/.cache/fundl``.

    Returns:
        Path: the cache root (it may not exist yet).

    Example:
        >>> cache_dir()  # doctest: +SKIP
        PosixPath('/home/me/.cache/fundl')
    """
    root = os.environ.get(CACHE_DIR_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "fundl"


def file_md5(path: str | os.PathLike) -> str:
    """Hex md5 digest of a file, read in 1 MiB chunks.

    Args:
        path: file to hash.

    Returns:
        str: 32 lowercase hex digits.

    Example:
        >>> file_md5("/work/shared/data/mnist/t10k-labels-idx1-ubyte.gz")  # doctest: +SKIP
        'ec29112dd5afa0611ce80d1b7f02629c'
    """
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def get_file(fname: str, subdir: str, url: str, md5: str, progress: bool = True) -> Path:
    """Return the local path of a verified dataset file, downloading it into the cache if needed.

    Args:
        fname: file name, e.g. ``"train-labels-idx1-ubyte.gz"`` (no folders).
        subdir: dataset folder name, e.g. ``"mnist"``, used under ``$FUNDL_DATA_DIR``, the
            cache and ``$FUNDL_DATASETS_URL``.
        url: canonical download URL of the file (ignored when ``FUNDL_DATASETS_URL`` is set).
        md5: expected md5 of the file, 32 hex digits.
        progress: show a progress bar on stderr while downloading.

    Returns:
        pathlib.Path: the file in ``$FUNDL_DATA_DIR/<subdir>/`` or in the cache.

    Raises:
        ChecksumError: the copy in ``$FUNDL_DATA_DIR`` or the downloaded bytes have another md5.
        DatasetNotFoundError: no local copy, and the download failed (offline, HTTP error,
            broken transfer); the message says where to put the file by hand.

    Example:
        >>> p = get_file("t10k-labels-idx1-ubyte.gz", "mnist",
        ...              "https://storage.googleapis.com/cvdf-datasets/mnist/t10k-labels-idx1-ubyte.gz",
        ...              "ec29112dd5afa0611ce80d1b7f02629c", progress=False)  # doctest: +SKIP
    """
    md5 = _check_args(fname, subdir, md5)
    data_root = os.environ.get(DATA_DIR_ENV)
    if data_root:
        path = Path(data_root).expanduser() / subdir / fname
        if path.is_file():
            got = file_md5(path)
            if got != md5:
                raise ChecksumError(
                    f"{path} has md5 {got}, expected {md5}: it is corrupt or a different file. "
                    f"Replace it with the original {fname}, or remove it (or unset {DATA_DIR_ENV}) "
                    "to use the cache / a download instead."
                )
            return path
    path = cache_dir() / subdir / fname
    # A cached copy with the wrong md5 (edited or damaged later) is replaced by a fresh download.
    if path.is_file() and file_md5(path) == md5:
        return path
    return _download(source_url(fname, subdir, url), path, subdir, md5, progress)


def get_files(files: Mapping[str, str], subdir: str, base_url: str,
              progress: bool = True) -> dict[str, Path]:
    """Fetch several files of one dataset with :func:`get_file`, reporting every missing one.

    Args:
        files: ``{fname: md5}``.
        subdir: dataset folder name.
        base_url: canonical URL prefix; each file comes from ``base_url + fname``.
        progress: show download progress on stderr.

    Returns:
        dict: ``{fname: pathlib.Path}`` in the order of ``files``.

    Raises:
        DatasetNotFoundError: a download failed; the message lists all files still missing
            (not only the first), so they can be put in place in one go.

    Example:
        >>> get_files({"t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
        ...           "mnist", "https://storage.googleapis.com/cvdf-datasets/mnist/")  # doctest: +SKIP
    """
    paths: dict[str, Path] = {}
    for fname, md5 in files.items():
        try:
            paths[fname] = get_file(fname, subdir, base_url + fname, md5, progress)
        except DatasetNotFoundError as exc:
            later = [(f, source_url(f, subdir, base_url + f), m) for f, m in files.items()
                     if f not in paths and f != fname and not _present(f, subdir)]
            raise _not_found(subdir, exc.missing + later, exc.reason) from exc.__cause__
    return paths


def source_url(fname: str, subdir: str, url: str) -> str:
    """The URL a file is downloaded from: ``$FUNDL_DATASETS_URL/<subdir>/<fname>`` if set, else ``url``.

    Args:
        fname: file name.
        subdir: dataset folder name.
        url: canonical URL of the file.

    Returns:
        str: the URL to fetch.

    Example:
        >>> source_url("a.gz", "mnist", "https://example.org/a.gz")  # without FUNDL_DATASETS_URL
        'https://example.org/a.gz'
    """
    base = os.environ.get(URL_ENV)
    return f"{base.rstrip('/')}/{subdir}/{fname}" if base else url


def _check_args(fname: str, subdir: str, md5: str) -> str:
    for what, name in (("fname", fname), ("subdir", subdir)):
        if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
            raise ValueError(
                f"get_file: {what} must be a plain file/folder name (letters, digits, '.', '_', '-', "
                f"not starting with '.'), got {name!r}."
            )
    if not isinstance(md5, str) or not _MD5.fullmatch(md5.lower()):
        raise ValueError(f"get_file: md5 must be 32 hex digits, got {md5!r}.")
    return md5.lower()


def _present(fname: str, subdir: str) -> bool:
    data_root = os.environ.get(DATA_DIR_ENV)
    places = [cache_dir() / subdir / fname]
    if data_root:
        places.append(Path(data_root).expanduser() / subdir / fname)
    return any(p.is_file() for p in places)


def _not_found(subdir: str, missing: list[tuple[str, str, str]], reason: str) -> DatasetNotFoundError:
    data_root = os.environ.get(DATA_DIR_ENV)
    data_note = f"currently {data_root}" if data_root else "currently unset"
    lines = [f"Dataset file(s) not found locally and the download failed ({reason}):"]
    lines += [f"  {fname}  (md5 {md5})  from {url}" for fname, url, md5 in missing]
    lines += [
        "Fix: put the file(s), with exactly these md5s, into either",
        f"  ${DATA_DIR_ENV}/{subdir}/   ({DATA_DIR_ENV} is {data_note})",
        f"  {cache_dir() / subdir}/   (the download cache; set {CACHE_DIR_ENV} to move it)",
        f"or set {URL_ENV} to a reachable mirror that serves <mirror>/{subdir}/<fname>.",
    ]
    exc = DatasetNotFoundError("\n".join(lines))
    exc.missing, exc.subdir, exc.reason = list(missing), subdir, reason
    return exc


def _download(url: str, dest: Path, subdir: str, md5: str, progress: bool) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    bar = None
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_TIMEOUT_S) as resp:
            total, done = int(resp.headers.get("Content-Length") or 0), 0
            if progress:
                bar = _ProgressBar(dest.name, url, total)
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if bar:
                    bar.update(done)
        # http.client's read(n) returns b"" on a dropped connection instead of raising.
        if total and done != total:
            raise ConnectionError(f"connection closed after {done} of {total} bytes")
        got = digest.hexdigest()
        if got != md5:
            raise ChecksumError(
                f"Downloaded {dest.name} from {url} has md5 {got}, expected {md5}; nothing was "
                f"saved. The server sent a corrupt or different file: retry, or fetch the file by "
                f"hand and put it in ${DATA_DIR_ENV}/{subdir}/ or {dest.parent}/."
            )
        os.replace(tmp, dest)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, _NETWORK_ERRORS):
            reason = exc.reason if type(exc) is urllib.error.URLError else exc
            raise _not_found(subdir, [(dest.name, url, md5)], str(reason) or type(exc).__name__) from exc
        raise
    finally:
        if bar:
            bar.close()
    return dest


class _ProgressBar:
    """A one-line ``\\r`` progress bar on stderr, redrawn at most 10 times a second."""

    def __init__(self, name: str, url: str, total: int, width: int = 30):
        self.name, self.total, self.width, self.done, self.last = name, total, width, 0, 0.0
        sys.stderr.write(f"Downloading {url}\n")

    def update(self, done: int, force: bool = False) -> None:
        self.done = done
        now = time.monotonic()
        if now - self.last < 0.1 and not force:
            return
        self.last = now
        if self.total:
            filled = min(self.width, self.width * done // self.total)
            line = f"{self.name} [{'#' * filled:<{self.width}}] {_human(done)} / {_human(self.total)}"
        else:  # no Content-Length: only the byte count is known
            line = f"{self.name} {_human(done)}"
        sys.stderr.write("\r" + line)
        sys.stderr.flush()

    def close(self) -> None:
        self.update(self.done, force=True)
        sys.stderr.write("\n")
        sys.stderr.flush()


def _human(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"

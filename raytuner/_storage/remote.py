"""Experiments in cloud storage (``s3://``, ``gs://``, any fsspec URI), mirrored locally.

The driver keeps writing a local folder (the hot path stays a local disk) and an
:class:`~raytuner._storage.uploader.Uploader` copies what changed to the URI behind it,
from a background thread. This module holds the rest: URIs and their file systems, the
Tuner's check of a bucket, the retries of a bucket that fails for a moment, and the
readers' side.

Readers (:func:`raytuner.load`, the CLI, resume) :func:`pull` the URI into a local folder
first and read it through the same :class:`~raytuner._storage.experiment.ExperimentStorage`.
A reader's folder is a cache (``$XDG_CACHE_HOME/raytuner/read/...``) updated
incrementally; a writer stages in a fresh folder of its own
(``$XDG_CACHE_HOME/raytuner/stage/...``), so a reader on the same machine never
overwrites a running driver's files.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from raytuner._storage import faults
from raytuner.errors import ConfigError, ExperimentError, StorageError

T = TypeVar("T")

logger = logging.getLogger("raytuner")

#: How long a worker's (or the driver's) read or write of the bucket that fails for a
#: passing cause (:func:`transient`: a connection refused or reset, a timeout, a 5xx, a
#: throttle) is tried again, with backoff, before the run stops with a
#: :class:`~raytuner.errors.StorageError` (INTERRUPTED, resumable) rather than a trial failing.
#: Within the driver's lease on the bucket (:data:`raytuner._storage.bucket_lease.LEASE_S`), so that
#: a worker's write never lands after another driver may have taken the experiment over.
RETRY_S = 30.0
#: The first pause between two tries of :func:`retrying`; it doubles up to :data:`RETRY_MAX_PAUSE_S`.
RETRY_PAUSE_S = 0.5
RETRY_MAX_PAUSE_S = 8.0
#: The Tuner's check of a bucket (:func:`check`) gives up after this many seconds without an
#: answer: an endpoint that takes connections and never answers is a ConfigError at once.
CHECK_TIMEOUT_S = 15.0
#: For S3 (s3fs): tries per request, s3fs's own times botocore's (s3fs's defaults, 5 x 5 of
#: 15 s reads, let a stalled endpoint hang a reader for about 7 minutes); timeouts are
#: s3fs's (5 s to connect, 15 s between two reads of an answer), so a large upload, whose
#: body is written, not read, is never cut short. :func:`retrying` retries on top, for the
#: operations a run cannot do without.
_S3_OPTIONS = {"config_kwargs": {"retries": {"total_max_attempts": 2, "mode": "standard"}}}
_S3_RETRIES = 2
#: The Tuner's check: one try, a few seconds.
_S3_CHECK_OPTIONS = {"config_kwargs": {"connect_timeout": 5, "read_timeout": 5, "retries": {"total_max_attempts": 1}}}
_MANIFEST = ".raytuner-mirror.json"
_URI_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_COLLAPSED_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/[^/]")  # what Path() makes of "s3://b/p"


def is_uri(path: Any) -> bool:
    """True for ``scheme://...`` strings other than ``file://`` (a local folder)."""
    match = _URI_RE.match(str(path)) if isinstance(path, str) else None
    return bool(match) and match.group(1).lower() != "file"


def local_path(path: Any) -> str | os.PathLike[str]:
    """``file:///x`` as ``/x``; refuses a URI that ``pathlib`` has already collapsed."""
    text = os.fspath(path)
    if isinstance(text, str) and text.lower().startswith("file://"):
        return text[len("file://"):]
    match = _COLLAPSED_RE.match(str(text))
    if match and _known_protocol(match.group(1)):
        msg = (
            f"`storage_path={path!r}` looks like a URI that lost a '/' (a pathlib.Path of "
            f"'{match.group(1)}://...'). Pass the URI as a string: storage_path=\"{match.group(1)}://bucket/prefix\"."
        )
        raise ConfigError(msg)
    return path


class URI(str):
    """A place in cloud storage as every view shows it (``s3://bucket/prefix/exp``): a plain
    ``str`` for fsspec and the provider's tools, with ``name``, ``parent`` and ``/`` as a
    path has, so that code that shows an experiment's files reads the same for both."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return self.rstrip("/").rsplit("/", 1)[-1]

    @property
    def parent(self) -> URI:
        return URI(self.rstrip("/").rsplit("/", 1)[0])

    def __truediv__(self, other: str | os.PathLike[str]) -> URI:
        return URI(f"{self.rstrip('/')}/{os.fspath(other)}")


def join(root: str | os.PathLike[str], name: str) -> str | Path:
    if is_uri(root):
        return f"{str(root).rstrip('/')}/{name}"
    return Path(root) / name


def _known_protocol(protocol: str) -> bool:
    from fsspec.registry import known_implementations, registry

    return protocol.lower() in known_implementations or protocol.lower() in registry


def _options(protocol: str, wanted: dict[str, Any]) -> dict[str, Any]:
    """Options for the file system of ``protocol``: ``wanted`` under what the user set in
    fsspec's configuration (``FSSPEC_S3_*``, fsspec's config files), which wins."""
    if protocol not in ("s3", "s3a"):
        return {}
    from fsspec.config import conf

    mine = {key: (dict(value) if isinstance(value, dict) else value) for key, value in wanted.items()}
    theirs = conf.get(protocol, {})
    for key, value in theirs.items():
        if isinstance(value, dict) and isinstance(mine.get(key), dict):
            mine[key].update(value)
        else:
            mine[key] = value
    if os.environ.get("AWS_MAX_ATTEMPTS") or os.environ.get("AWS_RETRY_MODE"):
        mine.get("config_kwargs", {}).pop("retries", None)  # the user's own botocore retries
    return mine


def filesystem(uri: str, *, quick: bool = False) -> tuple[Any, str]:
    """The fsspec file system for ``uri`` and the path inside it, or a ConfigError that
    names the package to install. ``quick``: one short try per request (:func:`check`);
    else bounded tries (:data:`_S3_OPTIONS`)."""
    try:
        import fsspec
    except ImportError:
        raise ConfigError(
            f"`storage_path={uri!r}` needs fsspec: pip install 'raytuner[cloud]' (fsspec and s3fs; "
            "add gcsfs for gs://)."
        ) from None
    from fsspec.registry import known_implementations

    protocol = _URI_RE.match(uri).group(1).lower()
    try:
        options = _options(protocol, _S3_CHECK_OPTIONS if quick else _S3_OPTIONS)
        fs, path = fsspec.core.url_to_fs(uri, **options)
        if options and "retries" not in fsspec.config.conf.get(protocol, {}):
            fs.retries = 1 if quick else _S3_RETRIES  # s3fs's own tries (an attribute, not an argument)
    except ImportError as exc:
        hint = known_implementations.get(protocol, {}).get("err") or str(exc)
        package = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "abfs": "adlfs", "az": "adlfs"}.get(protocol)
        fix = f"pip install {package}" if package else hint
        raise ConfigError(f"`storage_path={uri!r}`: no file system for '{protocol}://' is installed ({hint}). Fix: {fix}.") from None
    except ValueError as exc:
        raise ConfigError(
            f"`storage_path={uri!r}`: fsspec knows no file system for '{protocol}://' ({exc}). Use s3://, gs://, "
            "another fsspec protocol, or a local folder."
        ) from None
    return fs, path.rstrip("/")


def check(uri: str, *, label: str | None = None) -> None:
    """Fail early, naming the URI and what is missing: a bucket, or credentials; an endpoint
    that does not answer within :data:`CHECK_TIMEOUT_S` cannot be reached. ``label`` names
    the URI in the message (default: ```storage_path=...```)."""
    said = label if label is not None else f"`storage_path={uri!r}`"
    fs, path = filesystem(uri, quick=True)
    bucket = path.split("/", 1)[0]
    if not bucket:
        scheme = uri.split("://")[0]
        raise ConfigError(f"{said}: the URI names no bucket. Give the bucket, and a prefix if you like: "
                          f"\"{scheme}://bucket/prefix\".")
    answer: list[BaseException | None] = []

    def ask() -> None:
        try:
            fs.invalidate_cache()
            fs.info(bucket)
            answer.append(None)
        except BaseException as exc:  # noqa: BLE001 - judged below, in the caller's thread
            answer.append(exc)

    asking = threading.Thread(target=ask, name="raytuner-check", daemon=True)
    asking.start()
    asking.join(CHECK_TIMEOUT_S)
    if not answer:
        raise ConfigError(f"{said} cannot be reached: no answer from its endpoint within {CHECK_TIMEOUT_S:g} s. "
                          "Check the endpoint (AWS_ENDPOINT_URL for S3-compatible stores) and the network.")
    exc = answer[0]
    if exc is None:
        return
    if isinstance(exc, FileNotFoundError):
        raise ConfigError(f"{said}: the bucket {bucket!r} does not exist (or is not visible with "
                          "these credentials). Create it, or fix the name.") from None
    if isinstance(exc, PermissionError):
        raise ConfigError(f"{said}: access to the bucket {bucket!r} was denied ({exc}). "
                          "Check the credentials' permissions for it.") from None
    if "credential" in f"{type(exc).__name__} {exc}".lower():
        raise ConfigError(
            f"{said}: no credentials for {uri.split('://')[0]}:// were found ({exc}). Set them as "
            "for the provider's own CLI (e.g. AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials or an "
            "instance role for S3; gcloud auth application-default login for GCS)."
        ) from None
    if not isinstance(exc, Exception):
        raise exc
    raise ConfigError(f"{said} cannot be reached: {type(exc).__name__}: {exc}") from None


#: Errors of a request that say nothing about the request itself: the endpoint was not
#: reached, or did not answer in time, or asked to come back later.
_TRANSIENT_ERRNOS = frozenset({errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT,
                               errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTDOWN})
_TRANSIENT_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
                              "RequestLimitExceeded", "TooManyRequests", "TooManyRequestsException", "RequestTimeout",
                              "RequestTimeoutException", "InternalError", "ServiceUnavailable",
                              "BandwidthLimitExceeded", "PriorRequestNotComplete"})
_TRANSIENT_NAMES = frozenset({
    # botocore
    "ConnectionError", "EndpointConnectionError", "ConnectionClosedError", "ConnectTimeoutError", "ReadTimeoutError", "HTTPClientError",
    "ProxyConnectionError", "IncompleteReadError", "ResponseStreamingError",
    # aiohttp
    "ClientConnectionError", "ClientConnectorError", "ClientOSError", "ServerDisconnectedError",
    "ServerTimeoutError", "ClientPayloadError", "ServerConnectionError",
    # fsspec, urllib3, requests
    "FSTimeoutError", "ProtocolError", "NewConnectionError", "ConnectTimeout", "ReadTimeout",
})
#: What a request is refused for, whatever the chain of causes holds.
_PERMANENT = (FileNotFoundError, PermissionError, FileExistsError, IsADirectoryError, NotADirectoryError)


def transient(exc: BaseException) -> bool:
    """Whether ``exc``, raised by a request to cloud storage, may pass if the request is made
    again: the endpoint refused or dropped the connection, did not answer in time, failed
    (5xx) or throttled. A permanent refusal (403, 404, no credentials) is not."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _PERMANENT):
            return False
        if isinstance(current, (TimeoutError, ConnectionError)):  # the builtins: refused, reset, timed out
            return True
        if isinstance(current, OSError) and current.errno in _TRANSIENT_ERRNOS:
            return True
        if any(cls.__name__ in _TRANSIENT_NAMES for cls in type(current).__mro__):
            return True
        response = getattr(current, "response", None)
        if isinstance(response, dict):  # botocore's ClientError
            error = response.get("Error") or {}
            status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            return error.get("Code") in _TRANSIENT_CODES or (isinstance(status, int) and (status >= 500 or status == 429))
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return False


def unreachable(exc: BaseException, uri: str, what: str, location: str, waited_s: float) -> StorageError:
    """The error that stops a run whose bucket stayed out of reach: the run is INTERRUPTED,
    resumable, and no trial is failed for it."""
    from raytuner._display import cli_command

    return StorageError(
        f"Cannot {what} {uri}: the storage did not answer for {waited_s:.0f} s ({type(exc).__name__}: {exc}). "
        f"The run stopped; what was written before is kept and the experiment shows as INTERRUPTED. To go on, "
        f"check the endpoint and the network, then continue it with: {cli_command('resume', location)}",
        uri,
    )


def _pause(seconds: float) -> None:
    """The pause between two tries of :func:`retrying` (a test's hook)."""
    time.sleep(seconds)


def retrying(call: Callable[[], T], *, uri: str, what: str, location: str, budget_s: float | None = None) -> T:
    """``call()``, made again with backoff while it fails for a :func:`transient` cause, for
    up to ``budget_s`` (:data:`RETRY_S`) from the first failure; then a :class:`StorageError`
    (:func:`unreachable`) saying it could not ``what`` ``uri``. Any other error is raised as it is."""
    budget = RETRY_S if budget_s is None else budget_s
    first: float | None = None
    pause = RETRY_PAUSE_S
    while True:
        try:
            return call()
        except Exception as exc:
            if not transient(exc):
                raise
            now = time.monotonic()
            if first is None:
                first = now
                logger.info("Cannot %s %s (%s: %s); trying again for up to %g s.", what, uri,
                            type(exc).__name__, exc, budget)
            left = first + budget - now
            if left <= 0:
                raise unreachable(exc, uri, what, location, now - first) from exc
            _pause(min(pause, left))
            pause = min(pause * 2, RETRY_MAX_PAUSE_S)


def cache_dir(kind: str, uri: str) -> Path:
    """``$XDG_CACHE_HOME/raytuner/<kind>/<scheme>/<bucket>/<prefix>``."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "raytuner" / kind
    scheme, _, rest = uri.partition("://")
    parts = [p for p in rest.split("/") if p and p not in (".", "..")]
    return base.joinpath(scheme.lower(), *parts)


def stage_dir(uri: str) -> Path:
    """A fresh local folder for a writer, named as the experiment (its last component)."""
    parent = cache_dir("stage", uri).parent
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=parent, prefix=".w")) / uri.rstrip("/").rsplit("/", 1)[-1]


def _fingerprint(info: dict[str, Any]) -> str:
    return str(info.get("ETag") or info.get("etag") or info.get("md5Hash") or (info.get("size"), info.get("LastModified") or info.get("mtime")))


def _remove_empty_parents(path: Path, root: Path) -> None:
    """Remove the folders above ``path`` up to ``root`` (kept) that are empty now."""
    folder = path.parent
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty
        folder = folder.parent


def pull(uri: str, local: Path, *, keep: Callable[[str], bool] = lambda rel: True) -> int:
    """Make ``local`` a copy of the files under ``uri`` (those ``keep`` accepts); return how
    many were downloaded. Unchanged files (by ETag, else size and time) are not fetched
    again; each file is replaced atomically; files deleted remotely are deleted here.

    The bucket is asked first, briefly (:func:`check`): a missing bucket is an
    :class:`ExperimentError` that says so, not an empty listing, and an endpoint that does not
    answer is one within seconds, not after every try of every request."""
    try:
        check(uri, label=uri)
    except ConfigError as exc:
        raise ExperimentError(str(exc)) from None
    fs, root = filesystem(uri)
    local.mkdir(parents=True, exist_ok=True)
    manifest_path = local / _MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        manifest = {}
    fs.invalidate_cache(root)
    try:
        found = fs.find(root, detail=True)
    except FileNotFoundError:
        found = {}
    except Exception as exc:
        raise ExperimentError(f"Cannot list {uri}: {type(exc).__name__}: {exc}") from exc
    remote: dict[str, tuple[str, str]] = {}
    for name, info in found.items():
        rel = name[len(root):].lstrip("/")
        if info.get("type") == "file" and rel and keep(rel) and not any(p.startswith(".") for p in rel.split("/")):
            remote[rel] = (name, _fingerprint(info))
    fetch = [rel for rel, (_, fp) in remote.items() if manifest.get(rel) != fp or not (local / rel).is_file()]
    if fetch:
        parts = [local / rel for rel in fetch]
        tmps = [str(p.with_name(f".{p.name}.part")) for p in parts]
        for p in parts:
            p.parent.mkdir(parents=True, exist_ok=True)
        fs.get([remote[rel][0] for rel in fetch], tmps)
        for tmp, part in zip(tmps, parts):
            os.replace(tmp, part)
    for rel in set(manifest) - set(remote):
        # Deleted in the bucket, or no longer pulled (a checkpoint an older reader fetched).
        (local / rel).unlink(missing_ok=True)
        _remove_empty_parents(local / rel, local)
    manifest = {rel: fp for rel, (_, fp) in remote.items()}
    tmp = manifest_path.with_name(manifest_path.name + ".tmp")
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, manifest_path)
    return len(fetch)


def experiment_of(uri: str) -> str:
    """The experiment a URI of one of its trials' files lies in (for a message's resume)."""
    return uri.split("/trials/", 1)[0]


def remove(uris: list[str]) -> None:
    """Delete the folders at ``uris`` (all in one file system) and what they hold; one that
    is not there is no error. A passing failure of the bucket is tried again (:func:`retrying`)."""
    for uri in uris:
        fs, path = filesystem(uri)

        def rm(fs: Any = fs, path: str = path) -> None:
            try:
                fs.rm(path, recursive=True)
            except FileNotFoundError:
                pass

        retrying(rm, uri=uri, what="delete", location=experiment_of(uri))


def checkpoint_folders(uri: str) -> dict[str, set[str]]:
    """The checkpoint folders in the bucket of the experiment at ``uri``, by trial id: its
    own (``checkpoint_<k>``) and PBT clones' copies (``clone_<n>/checkpoint_<k>``)."""
    fs, root = filesystem(uri)

    def listing() -> list[str]:
        fs.invalidate_cache(root)
        try:
            return fs.find(f"{root}/trials")
        except FileNotFoundError:
            return []

    found = retrying(listing, uri=f"{uri}/trials", what="list", location=uri)
    folders: dict[str, set[str]] = {}
    for key in found:
        where = checkpoint_of(key[len(root):].strip("/"))
        if where is not None:
            folders.setdefault(where[0], set()).add(where[1])
    return folders


def checkpoint_of(rel: str) -> tuple[str, str] | None:
    """The trial id and checkpoint folder (``checkpoint_<k>``, or a PBT clone's copy
    ``clone_<n>/checkpoint_<k>``) that a file of an experiment (its path from the
    experiment's root) belongs to; None for a file of no checkpoint."""
    from raytuner._formats import checkpoint_iteration

    parts = rel.split("/")
    if len(parts) > 3 and parts[0] == "trials" and checkpoint_iteration(parts[2]) is not None:
        return parts[1], parts[2]
    if len(parts) > 4 and parts[0] == "trials" and parts[2].startswith("clone_") and \
            checkpoint_iteration(parts[3]) is not None:
        return parts[1], f"{parts[2]}/{parts[3]}"
    return None


def copy_folder(source: str, target: str) -> bool:
    """Copy every file under ``source`` to ``target`` (both in one file system), replacing
    what was there. False, with nothing left at ``target``, if ``source`` holds no files
    (deleted by hand, before the copy or during it)."""
    fs, src = filesystem(source)
    _, dst = filesystem(target)
    dying = faults.at_write(target)

    def copy() -> list[str]:
        remove([target])
        fs.invalidate_cache(src)  # a listing cached before a deletion would name files that are gone
        try:
            keys = fs.find(src)
        except FileNotFoundError:
            keys = []
        try:
            for n, key in enumerate(keys):
                if dying and n == len(keys) // 2:
                    faults.die()  # the crash harness: half the files copied
                fs.copy(key, f"{dst}/{key[len(src):].lstrip('/')}")
        except FileNotFoundError:
            keys = []
        return keys

    keys = retrying(copy, uri=target, what="copy a checkpoint to", location=experiment_of(target))
    if not keys:
        remove([target])
    return bool(keys)


def is_record(rel: str) -> bool:
    """Whether a file of an experiment says where a trial or the experiment stands."""
    return rel == "experiment.json" or rel.endswith("/trial.json")


def holds_files(uri: str) -> bool:
    """Whether anything is stored under ``uri`` (a folder in a bucket is its files), as the
    bucket says now."""
    fs, path = filesystem(uri)

    def look() -> bool:
        fs.invalidate_cache(path)
        try:
            return bool(fs.find(path, maxdepth=1, withdirs=True))
        except FileNotFoundError:
            return False

    return retrying(look, uri=uri, what="list", location=experiment_of(uri))


def list_experiments(root_uri: str) -> Path:
    """Pull the JSON files of every experiment under ``root_uri``; return the local root."""
    local = cache_dir("read", root_uri)
    pull(root_uri, local, keep=lambda rel: rel.endswith(".json") and "/checkpoint_" not in rel)
    return local

"""Experiments in cloud storage (``s3://``, ``gs://``, any fsspec URI), mirrored locally.

The driver keeps writing a local folder (the hot path stays a local disk) and an
:class:`Uploader` copies what changed to the URI behind it, from a background thread:

- a report's line in ``results.jsonl`` reaches the bucket within about
  :data:`SYNC_INTERVAL_S` plus one upload (the whole file is put again: object stores have
  no append, and each trial's file is small);
- ``experiment.json``, ``trial.json`` and the other JSON files are put whole, and a PUT
  replaces an object atomically, so readers never see half a file;
- a record (``trial.json``, ``experiment.json``) is never ahead of its trial's rows in the
  bucket: a pass reads the records first and puts them last, as read, after the files the
  driver wrote before them (see :meth:`Uploader._pass`);
- checkpoints never pass through the local copy: each trial's worker uploads its own into
  the bucket before it reports it (:mod:`raytuner._storage.trial_files`), so the bucket
  never holds a row or a ``trial.json`` naming a checkpoint it lacks; an old checkpoint is
  deleted there only once the trial's row that commits a newer one is uploaded;
- on close, a last pass puts everything that is left.

A driver that dies loses at most the changes of the last pass that did not finish.

Readers (:func:`raytuner.load`, the CLI, resume) :func:`pull` the URI into a local folder
first and read it through the same :class:`~raytuner._storage.experiment.ExperimentStorage`.
A reader's folder is a cache (``$XDG_CACHE_HOME/raytuner/read/...``) updated
incrementally; a writer stages in a fresh folder of its own
(``$XDG_CACHE_HOME/raytuner/stage/...``), so a reader on the same machine never
overwrites a running driver's files.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from raytuner._storage import faults
from raytuner.errors import ConfigError, ExperimentError

logger = logging.getLogger("raytuner")

#: Seconds between two upload passes of a running experiment.
SYNC_INTERVAL_S = 1.0
_MANIFEST = ".raytuner-mirror.json"
_LOCAL_ONLY = frozenset({"driver.lock"})  # raytuner._storage.lock.LOCK_FILE
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


def filesystem(uri: str) -> tuple[Any, str]:
    """The fsspec file system for ``uri`` and the path inside it, or a ConfigError that
    names the package to install."""
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
        fs, path = fsspec.core.url_to_fs(uri)
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


def check(uri: str) -> None:
    """Fail early, naming the URI and what is missing: a bucket, or credentials."""
    fs, path = filesystem(uri)
    bucket = path.split("/", 1)[0]
    try:
        fs.invalidate_cache()
        fs.info(bucket)
    except FileNotFoundError:
        raise ConfigError(f"`storage_path={uri!r}`: the bucket {bucket!r} does not exist (or is not visible with "
                          "these credentials). Create it, or fix the name.") from None
    except PermissionError as exc:
        raise ConfigError(f"`storage_path={uri!r}`: access to the bucket {bucket!r} was denied ({exc}). "
                          "Check the credentials' permissions for it.") from None
    except Exception as exc:
        if "credential" in f"{type(exc).__name__} {exc}".lower():
            raise ConfigError(
                f"`storage_path={uri!r}`: no credentials for {uri.split('://')[0]}:// were found ({exc}). Set them as "
                "for the provider's own CLI (e.g. AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials or an "
                "instance role for S3; gcloud auth application-default login for GCS)."
            ) from None
        raise ConfigError(f"`storage_path={uri!r}` cannot be reached: {type(exc).__name__}: {exc}") from None


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


def pull(uri: str, local: Path, *, keep: Callable[[str], bool] = lambda rel: True) -> int:
    """Make ``local`` a copy of the files under ``uri`` (those ``keep`` accepts); return how
    many were downloaded. Unchanged files (by ETag, else size and time) are not fetched
    again; each file is replaced atomically; files deleted remotely are deleted here."""
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
        if keep(rel):
            (local / rel).unlink(missing_ok=True)
    manifest = {rel: fp for rel, (_, fp) in remote.items()}
    tmp = manifest_path.with_name(manifest_path.name + ".tmp")
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, manifest_path)
    return len(fetch)


def remove(uris: list[str]) -> None:
    """Delete the folders at ``uris`` (all in one file system) and what they hold; one that
    is not there is no error."""
    for uri in uris:
        fs, path = filesystem(uri)
        try:
            fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass


def checkpoint_folders(uri: str) -> dict[str, set[str]]:
    """The checkpoint folders in the bucket of the experiment at ``uri``, by trial id: its
    own (``checkpoint_<k>``) and PBT clones' copies (``clone_<n>/checkpoint_<k>``)."""
    from raytuner._formats import checkpoint_iteration

    fs, root = filesystem(uri)
    fs.invalidate_cache(root)
    try:
        found = fs.find(f"{root}/trials")
    except FileNotFoundError:
        return {}
    folders: dict[str, set[str]] = {}
    for key in found:
        parts = key[len(root):].strip("/").split("/")
        if len(parts) > 3 and checkpoint_iteration(parts[2]) is not None:
            folders.setdefault(parts[1], set()).add(parts[2])
        elif len(parts) > 4 and parts[2].startswith("clone_") and checkpoint_iteration(parts[3]) is not None:
            folders.setdefault(parts[1], set()).add(f"{parts[2]}/{parts[3]}")
    return folders


def copy_folder(source: str, target: str) -> bool:
    """Copy every file under ``source`` to ``target`` (both in one file system), replacing
    what was there. False, with nothing left at ``target``, if ``source`` holds no files
    (deleted by hand, before the copy or during it)."""
    fs, src = filesystem(source)
    _, dst = filesystem(target)
    remove([target])
    fs.invalidate_cache(src)  # a listing cached before a deletion would name files that are gone
    try:
        keys = fs.find(src)
    except FileNotFoundError:
        keys = []
    dying = faults.at_write(target)
    try:
        for n, key in enumerate(keys):
            if dying and n == len(keys) // 2:
                faults.die()  # the crash harness: half the files copied
            fs.copy(key, f"{dst}/{key[len(src):].lstrip('/')}")
    except FileNotFoundError:
        keys = []
    if not keys:
        remove([target])
    return bool(keys)


def _is_record(rel: str) -> bool:
    """Whether a file of an experiment says where a trial or the experiment stands."""
    return rel == "experiment.json" or rel.endswith("/trial.json")


def holds_files(uri: str) -> bool:
    """Whether anything is stored under ``uri`` (a folder in a bucket is its files), as the
    bucket says now."""
    fs, path = filesystem(uri)
    fs.invalidate_cache(path)
    try:
        return bool(fs.find(path, maxdepth=1, withdirs=True))
    except FileNotFoundError:
        return False


def list_experiments(root_uri: str) -> Path:
    """Pull the JSON files of every experiment under ``root_uri``; return the local root."""
    local = cache_dir("read", root_uri)
    pull(root_uri, local, keep=lambda rel: rel.endswith(".json") and "/checkpoint_" not in rel)
    return local


class Uploader:
    """Copies a local experiment folder's changes to ``uri`` (see the module docstring)."""

    def __init__(self, uri: str, local: Path, interval_s: float = SYNC_INTERVAL_S):
        self.uri = uri
        self.local = local
        self.interval_s = interval_s
        self._fs, self._root = filesystem(uri)
        self._sent: dict[str, tuple[int, int]] = {}  # relative path -> (size, mtime) as uploaded
        self._lock = threading.Lock()  # one pass at a time: the thread's, a checkpoint's, close's
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="raytuner-upload", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sync()
                if self._failing:
                    logger.warning("Uploads to %s work again.", self.uri)
                self._failing = False
            except Exception as exc:  # a network blip: the next pass puts the same files again
                if not self._failing:
                    logger.warning("Uploading to %s failed (%s: %s); retrying every %gs. The local copy is %s.",
                                   self.uri, type(exc).__name__, exc, self.interval_s, self.local)
                self._failing = True

    def sync(self) -> int:
        """One pass: put every new or changed file, delete what was deleted; return the count."""
        with self._lock:
            return self._pass(self.local)

    def push(self, folder: Path) -> None:
        """Put one folder's changes (a trial's, with its new checkpoint) now, before returning."""
        with self._lock:
            self._pass(folder, deletions=False)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sync()

    def _scan(self, top: Path) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        base = len(str(self.local)) + 1
        for folder, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if not d.startswith(".")]  # a checkpoint being written
            for name in files:
                # Temporary files of atomic writes; and the driver lock, which says which
                # process on which machine holds the local copy: it means nothing elsewhere,
                # and left in the bucket after the end it would stand in a resume's way.
                if name.startswith(".") or name in _LOCAL_ONLY:
                    continue
                path = os.path.join(folder, name)
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue
                found[path[base:].replace(os.sep, "/")] = (st.st_size, st.st_mtime_ns)
        return found

    def _pass(self, top: Path, deletions: bool = True) -> int:
        found = self._scan(top)
        changed = {rel for rel, stamp in found.items() if self._sent.get(rel) != stamp}
        # A record (a trial.json, experiment.json) says where a trial or the experiment
        # stands, and the driver writes what it refers to (the trial's rows, errors, logs)
        # before it. So each changed record is read now and put last, as read; its trial's
        # other files are looked at again after that reading and put before it. A pass then
        # never puts a record ahead of its rows, whatever the driver writes meanwhile, and a
        # head lost after any pass leaves the bucket consistent.
        records: dict[str, bytes] = {}
        for rel in sorted(rel for rel in changed if _is_record(rel)):
            try:
                records[rel] = (self.local / rel).read_bytes()
            except FileNotFoundError:
                changed.discard(rel)  # gone since the scan: the pass that sees it gone deletes it
        for folder in {rel.rpartition("/")[0] for rel in records if rel.endswith("/trial.json")}:
            again = self._scan(self.local / folder)
            found.update(again)
            changed.update(rel for rel, stamp in again.items() if self._sent.get(rel) != stamp)
        rest = sorted(rel for rel in changed if rel not in records)
        if rest:  # put concurrently
            self._fs.put([str(self.local / rel) for rel in rest], [f"{self._root}/{rel}" for rel in rest])
            self._sent.update((rel, found[rel]) for rel in rest)
        if records:
            self._fs.pipe({f"{self._root}/{rel}": data for rel, data in records.items()})
            self._sent.update((rel, found[rel]) for rel in records)
        gone = [rel for rel in self._sent if rel not in found] if deletions else []
        if gone:
            self._fs.rm([f"{self._root}/{rel}" for rel in gone])
            for rel in gone:
                del self._sent[rel]
        return len(rest) + len(records) + len(gone)

    def mark_sent(self) -> None:
        """Count everything in the local folder as uploaded (it was just pulled from the URI)."""
        with self._lock:
            self._sent = self._scan(self.local)

"""A bucket that fails for a moment, stalls, or was never there (moto's S3 server over HTTP,
behind a TCP proxy the test opens and closes; no Ray): a passing failure is tried again and
then stops the run with a StorageError, never failing a trial; a wrong setup is told at once;
the Tuner's check and readers give up within seconds."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import boto3
import pytest

from raytuner._storage import remote, trial_files
from raytuner._storage.trial_files import CheckpointRef, ExperimentLocation
from raytuner._storage.uploader import Uploader
from raytuner._worker.checkpoints import TrialCheckpoints
from raytuner._worker.protocol import TrialSpec
from raytuner.cli import main
from raytuner.errors import ConfigError, ExperimentError, StorageError


class Proxy:
    """A TCP proxy to moto on a port of its own, closed (connections refused) until
    :meth:`open`, which a test calls from the retry's pause: the outage lasts exactly until
    raytuner has seen it and waits to try again."""

    def __init__(self, upstream: str):
        host, port = upstream.rsplit("//", 1)[1].split(":")
        self._upstream = (host, int(port))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: socket.socket | None = None

    def open(self) -> None:
        if self._server is not None:
            return
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._serve, args=(self._server,), daemon=True).start()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def _serve(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _fresh_filesystems() -> None:
    """s3fs keeps its instances, each with the endpoint it was made with."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def proxy(s3_server, monkeypatch):
    """The session's moto behind a proxy, closed; this process's S3 requests go through it."""
    through = Proxy(s3_server)
    monkeypatch.setenv("AWS_ENDPOINT_URL", through.url)
    _fresh_filesystems()
    yield through
    through.close()
    monkeypatch.undo()
    _fresh_filesystems()


@pytest.fixture
def pauses(monkeypatch):
    """The retries' pauses, recorded and not slept; a test may act in one (:attr:`then`)."""

    class Pauses(list):
        then = staticmethod(lambda: None)

    seen = Pauses()

    def pause(seconds: float) -> None:
        seen.append(seconds)
        seen.then()

    monkeypatch.setattr(remote, "_pause", pause)
    return seen


def _experiment(bucket: str, moto: str) -> ExperimentLocation:
    """An experiment in the bucket whose experiment.json names run-1 (put straight to moto)."""
    boto3.client("s3", endpoint_url=moto).put_object(Bucket=bucket[len("s3://"):], Key="exps/e/experiment.json",
                                                     Body=json.dumps({"run_id": "run-1"}).encode())
    return ExperimentLocation(f"{bucket}/exps/e", "run-1", "driver-node")


def _worker(where: ExperimentLocation, tmp_path: Path) -> TrialCheckpoints:
    spec = TrialSpec(trial_id="00000", experiment_name="e", config={}, trainable=[None], metric="loss",
                     resource_attr=None, stop=None, decide_at=float("inf"), storage_dir=where.trial("00000"),
                     storage=where)
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return TrialCheckpoints(spec, lambda: scratch)


def _stored(uri: str, moto: str) -> dict[str, bytes]:
    name, _, prefix = uri[len("s3://"):].partition("/")
    client = boto3.client("s3", endpoint_url=moto)
    listed = client.list_objects_v2(Bucket=name, Prefix=prefix).get("Contents", [])
    return {o["Key"][len(prefix):].lstrip("/"): client.get_object(Bucket=name, Key=o["Key"])["Body"].read()
            for o in listed}


def test_a_checkpoint_goes_up_once_the_refusing_endpoint_is_back(bucket, s3_server, proxy, pauses, tmp_path):
    where = _experiment(bucket, s3_server)
    worker = _worker(where, tmp_path)
    pauses.then = proxy.open  # the endpoint refuses until raytuner waits to try again
    made = tmp_path / "made"
    made.mkdir()
    (made / "weights").write_text("w1")
    assert worker.sees_storage()  # its experiment.json read, as a store first does: refused, then answered
    assert pauses, "the first read was refused"
    proxy.close()
    pauses.clear()
    worker.store(worker.stage(made, 1))  # the upload: refused, then put whole
    assert pauses
    assert _stored(where.checkpoint(CheckpointRef("00000", "checkpoint_000001")), s3_server) == {"weights": b"w1"}

    proxy.close()
    pauses.clear()
    restored = worker.restore(CheckpointRef("00000", "checkpoint_000001"))  # a restart's read, the same
    assert pauses and (restored / "weights").read_text() == "w1"


def test_a_bucket_out_of_reach_past_the_budget_stops_the_run_and_fails_no_trial(bucket, s3_server, proxy, pauses,
                                                                               tmp_path, monkeypatch):
    where = _experiment(bucket, s3_server)
    monkeypatch.setattr(remote, "RETRY_S", 0.0)  # the endpoint never comes back within it
    made = tmp_path / "made"
    made.mkdir()
    (made / "weights").write_text("w1")
    with pytest.raises(StorageError, match=r"(?s)Cannot read s3://.*/exps/e/experiment.json.*INTERRUPTED.*resume"):
        _worker(where, tmp_path).store(_worker(where, tmp_path).stage(made, 1))  # not the ExperimentError that failed the trial

    proxy.open()  # reached once: the upload's refusal is a StorageError too, not botocore's own error
    worker = _worker(where, tmp_path)
    assert worker.sees_storage()
    staged = worker.stage(made, 1)
    proxy.close()
    with pytest.raises(StorageError, match=r"(?s)Cannot upload to s3://.*checkpoint_000001.*INTERRUPTED.*resume"):
        worker.store(staged)
    assert not staged.folder.exists()


def test_a_wrong_setup_is_told_at_once_and_not_tried_again(bucket, pauses, tmp_path):
    gone = ExperimentLocation("s3://no-such-bucket-zz/exps/e", "run-1", "driver-node")
    why = trial_files.unseen(gone)  # the worker's question: answered, with the cause, at once
    assert why is not None and "cannot be read here" in why
    assert not pauses


def test_transient_and_permanent_errors():
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ReadTimeoutError

    def client_error(status: int, code: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": code},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")

    def translated(cause: BaseException, as_: BaseException) -> BaseException:  # as s3fs raises them
        as_.__cause__ = cause
        return as_

    for passing in (EndpointConnectionError(endpoint_url="http://x"), ReadTimeoutError(endpoint_url="http://x"),
                    ConnectionRefusedError(), ConnectionResetError(), TimeoutError(), client_error(503, "SlowDown"),
                    translated(client_error(500, "InternalError"), OSError(5, "InternalError"))):
        assert remote.transient(passing), passing
    for wrong in (NoCredentialsError(), client_error(403, "AccessDenied"), client_error(404, "NoSuchBucket"),
                  translated(client_error(403, "AccessDenied"), PermissionError("AccessDenied")),
                  FileNotFoundError("x"), ValueError("x")):
        assert not remote.transient(wrong), wrong


def test_retrying_tries_a_passing_failure_again_and_nothing_else(pauses):
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("refused")
        return "done"

    assert remote.retrying(flaky, uri="s3://b/e/x", what="read", location="s3://b/e") == "done"
    assert len(calls) == 3 and pauses == [remote.RETRY_PAUSE_S, 2 * remote.RETRY_PAUSE_S]

    def denied() -> None:
        calls.append(1)
        raise PermissionError("denied")

    calls.clear()
    pauses.clear()
    with pytest.raises(PermissionError):
        remote.retrying(denied, uri="s3://b/e/x", what="read", location="s3://b/e")
    assert len(calls) == 1 and not pauses


def test_the_tuners_check_gives_up_on_an_endpoint_that_never_answers(monkeypatch):
    import raytuner as rt

    silent = socket.create_server(("127.0.0.1", 0))  # takes connections (the backlog), answers nothing
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setattr(remote, "CHECK_TIMEOUT_S", 1.0)
        _fresh_filesystems()
        with pytest.raises(ConfigError, match=r"s3://stalled/exps.*cannot be reached.*no answer.*within 1 s"):
            rt.Tuner(lambda config: None, space={"x": 1}, metric="loss", storage_path="s3://stalled/exps")
        with pytest.raises(ExperimentError, match=r"s3://stalled/exps.*cannot be reached"):
            remote.list_experiments("s3://stalled/exps")  # a reader too
    finally:
        silent.close()
        monkeypatch.undo()
        _fresh_filesystems()


def test_a_uri_without_a_bucket_is_refused_when_the_tuner_is_built():
    import raytuner as rt

    for uri in ("s3://", "s3:///exps"):
        with pytest.raises(ConfigError, match=rf"storage_path={uri!r}.*names no bucket"):
            rt.Tuner(lambda config: None, space={"x": 1}, metric="loss", storage_path=uri)


def test_listing_a_missing_bucket_is_an_error_not_an_empty_listing(bucket, capsys):
    with pytest.raises(ExperimentError, match=r"s3://no-such-bucket-zz/exps: the bucket 'no-such-bucket-zz' does not exist"):
        remote.list_experiments("s3://no-such-bucket-zz/exps")
    assert main(["ls", "s3://no-such-bucket-zz/exps"]) == 3
    assert "does not exist" in capsys.readouterr().err
    assert main(["ls", f"{bucket}/exps"]) == 0  # a bucket with nothing under the prefix lists nothing


def test_the_drivers_last_upload_waits_for_the_endpoint_to_come_back(bucket, s3_server, proxy, pauses, tmp_path,
                                                                      monkeypatch):
    local = tmp_path / "stage" / "e"
    (local / "trials" / "00000").mkdir(parents=True)
    (local / "experiment.json").write_text('{"status": "INTERRUPTED"}')
    (local / "trials" / "00000" / "config.json").write_text('{"x": 1}')
    pauses.then = proxy.open  # a run stopped by an outage: its last pass meets it too
    Uploader(f"{bucket}/exps/e", local).close()
    assert pauses
    assert _stored(f"{bucket}/exps/e", s3_server) == {"experiment.json": b'{"status": "INTERRUPTED"}',
                                                      "trials/00000/config.json": b'{"x": 1}'}

    proxy.close()
    monkeypatch.setattr(remote, "RETRY_S", 0.0)
    (local / "trials" / "00000" / "config.json").write_text('{"x": 2}')
    with pytest.raises(StorageError, match=r"(?s)Cannot upload to s3://.*/exps/e.*INTERRUPTED"):  # not botocore's own
        Uploader(f"{bucket}/exps/e", local).close()

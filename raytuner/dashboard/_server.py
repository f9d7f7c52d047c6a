"""Running the dashboard: the listening socket, the access token, uvicorn."""

from __future__ import annotations

import errno
import ipaddress
import re
import secrets
import socket
import sys
import threading
import time
from pathlib import Path

from raytuner._storage import DEFAULT_ROOT

from raytuner.errors import RayTunerError

DEFAULT_PORT = 9265
#: The shortest access token: long enough that it cannot be guessed in the requests a
#: server answers in years (16 of 64 characters: 96 bits).
MIN_TOKEN_LENGTH = 16
_TOKEN_RE = re.compile(r"[A-Za-z0-9_.~-]+")  # what a URL, a cookie and a header carry as it is


class DashboardError(RayTunerError):
    """The dashboard cannot start; the message says why and what to do."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int) -> socket.socket:
    """A bound, listening socket, so that a port in use is a clear error before uvicorn."""
    if not 0 <= port <= 65535:
        raise DashboardError(f"--port {port} is not a port number; give 1-65535, or 0 for a free one.")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart needs no wait; a live listener still blocks
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise DashboardError(
                f"Port {port} on {host} is already in use (another dashboard, or another server). Stop that one, "
                f"or choose another port: --port {port + 1}, or --port 0 for any free one.") from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            raise DashboardError(f"--host {host} is not an address of this machine; use 127.0.0.1 (this machine "
                                 "only) or 0.0.0.0 (every interface, with a token).") from None
        if exc.errno == errno.EACCES:
            raise DashboardError(f"Port {port} needs privileges to listen on; choose one above 1023.") from None
        raise DashboardError(f"Cannot listen on {host}:{port}: {exc.strerror}.") from None
    except socket.gaierror as exc:
        sock.close()
        raise DashboardError(f"--host {host!r} is not a valid address ({exc}); use e.g. 127.0.0.1.") from None
    sock.listen(128)
    return sock


def check_token(token: str | None) -> str | None:
    """The token as given; a DashboardError, naming the flag and the fix, for one that is
    too short to be secret or holds characters a URL or a cookie would mangle."""
    if token is None:
        return None
    if len(token) < MIN_TOKEN_LENGTH:
        why = f"it is {len(token)} character{'s' if len(token) != 1 else ''} long, and must be {MIN_TOKEN_LENGTH} or more"
    elif not _TOKEN_RE.fullmatch(token):
        why = "it holds characters other than letters, digits and '-_.~'"
    else:
        return token
    raise DashboardError(f"--token cannot be used: {why}. Leave --token out to have one generated, or give one "
                         f"such as --token {secrets.token_urlsafe(24)}.")


def check_root(root: str | Path) -> Path:
    """The root's real path; a DashboardError for a URI or a folder that does not exist."""
    from raytuner._storage import remote

    if remote.is_uri(root):
        raise DashboardError(
            f"The dashboard reads a local folder, not {root}: its live view and its controls need the files the "
            "driver writes. Run it on the driver's machine over the folder the sweep writes, or read the bucket "
            f"with `raytuner ls {root}` and `raytuner report {str(root).rstrip('/')}/NAME`.")
    path = Path(remote.local_path(root)).expanduser()
    if not path.is_dir():
        raise DashboardError(f"No folder {path}: there are no experiments there. Pass the storage root, e.g. "
                             "`raytuner dashboard ~/raytuner_results`.")
    return path.resolve()


class Dashboard:
    """A dashboard served from a background thread (see :func:`start`)."""

    def __init__(self, root: str | Path, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 read_only: bool = False, token: str | None = None):
        try:
            import uvicorn

            from raytuner.dashboard._app import create_app, warm_up
        except ImportError as exc:
            raise DashboardError(f"The dashboard needs its extra ({exc.name} is not installed): "
                                 "pip install 'raytuner[dashboard]'.") from None

        loopback = is_loopback(host)
        token = check_token(token)
        if not loopback and token is None:
            token = secrets.token_urlsafe(24)
        self.token = token
        self.root = check_root(root)
        self._sock = _listen(host, port)
        self.host, self.port = host, self._sock.getsockname()[1]
        app = create_app(self.root, read_only=read_only, token=token, loopback_only=loopback)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1,
                                access_log=False)
        self._server = uvicorn.Server(config)
        self._app = app
        # Read every experiment once now, in the background: the first page then shows
        # from the views' caches instead of thousands of cold file reads.
        threading.Thread(target=warm_up, args=(app,), name="raytuner-dashboard-warm-up", daemon=True).start()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        # Bound to every interface: the machine's name is what others can reach it by.
        shown = socket.gethostname() if self.host in ("0.0.0.0", "::") else self.host
        shown = f"[{shown}]" if ":" in shown else shown
        query = f"/?token={self.token}" if self.token else "/"
        return f"http://{shown}:{self.port}{query}"

    def run(self) -> None:
        """Serve until Ctrl-C (the command line's way)."""
        from raytuner.dashboard._app import close

        try:
            self._server.run(sockets=[self._sock])
        finally:
            close(self._app)

    def start(self) -> Dashboard:
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="raytuner-dashboard", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise DashboardError(f"The dashboard did not start on {self.host}:{self.port}.")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._sock.close()
        from raytuner.dashboard._app import close

        close(self._app)

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Dashboard({self.url!r})"


def start(root: str | Path = DEFAULT_ROOT, *, host: str = "127.0.0.1", port: int = 0,
          read_only: bool = False, token: str | None = None) -> Dashboard:
    """Serve the dashboard from a background thread (for notebooks); returns at once.

    ``port=0`` picks a free port; the returned :class:`Dashboard` has its ``url`` and a
    ``stop()``.
    """
    return Dashboard(root, host=host, port=port, read_only=read_only, token=token).start()


def serve(root: str | Path = DEFAULT_ROOT, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          read_only: bool = False, token: str | None = None) -> None:
    """Serve the dashboard in this thread until Ctrl-C (``raytuner dashboard``)."""
    dash = Dashboard(root, host=host, port=port, read_only=read_only, token=token)
    mode = " (read-only)" if read_only else ""
    print(f"raytuner dashboard{mode} for {dash.root}: {dash.url}", file=sys.stderr, flush=True)
    if dash.token and not is_loopback(host):
        can = "see these experiments" if read_only else "see and steer these experiments"
        print(f"Anyone with this address (it holds the access token) can {can}.", file=sys.stderr, flush=True)
    dash.run()

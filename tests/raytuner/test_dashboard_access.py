"""Who may reach the dashboard, and with what: the access cookie per dashboard, the token's
length, the body size limit (on a real server, with the server's memory measured) and the
Host header (loopback addresses, IPv6, DNS rebinding)."""

from __future__ import annotations

import select
import socket
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from dashboard_setup import client, csrf_of, post, queued, root  # noqa: E402,F401 - root: a fixture

import httpx2 as httpx  # noqa: E402

from raytuner.cli import main  # noqa: E402
from raytuner.dashboard import Dashboard, DashboardError, start  # noqa: E402
from raytuner.dashboard._guard import MAX_BODY_BYTES, parse_host  # noqa: E402


# -- the access cookie ---------------------------------------------------------------------------
def test_two_dashboards_on_one_host_keep_their_own_cookies(root):
    """A browser's cookies are shared by every port of a host: one name per port, or the
    second login would overwrite the first."""
    first_token, second_token = "first-token-0123456789", "second-token-0123456789"
    with start(root, token=first_token) as first, start(root, token=second_token) as second, \
            httpx.Client(timeout=10) as browser:
        urls = [f"http://127.0.0.1:{d.port}" for d in (first, second)]
        for url, token in zip(urls, (first_token, second_token)):
            login = browser.get(url + "/", params={"token": token})
            assert login.status_code == 200
            port = url.rsplit(":", 1)[1]
            assert login.headers["set-cookie"] == f"raytuner_token_{port}={token}; Path=/; HttpOnly; SameSite=Strict"
        for url in urls:  # both still logged in, on the cookies alone
            assert browser.get(url + "/api/experiments").status_code == 200
        assert {c.name for c in browser.cookies.jar} == {f"raytuner_token_{d.port}" for d in (first, second)}


@pytest.mark.parametrize(("token", "says"), [
    ("", "it is 0 characters long, and must be 16 or more"),
    ("x", "it is 1 character long"),
    ("fifteen-chars-x", "it is 15 characters long"),
    ("sixteen chars ok but spaced", "characters other than letters, digits and '-_.~'"),
    ("with;semicolon-and-more", "characters other than"),
])
def test_a_short_or_unsafe_token_is_an_error_at_start_naming_the_flag_and_the_fix(root, capsys, token, says):
    with pytest.raises(DashboardError) as caught:
        Dashboard(root, port=0, token=token)
    message = str(caught.value)
    assert message.startswith("--token cannot be used: ") and says in message
    assert "Leave --token out to have one generated, or give one such as --token " in message
    assert main(["dashboard", str(root), "--port", "0", "--token", token]) == 2
    err = capsys.readouterr().err
    assert "--token cannot be used" in err and "Traceback" not in err


def test_a_sixteen_character_token_works(root):
    with start(root, token="a" * 16) as dash:
        base = f"http://127.0.0.1:{dash.port}"
        assert httpx.get(base + "/api/experiments").status_code == 401
        assert httpx.get(base + "/api/experiments", headers={"Authorization": "Bearer " + "a" * 16}).status_code == 200


# -- the body size limit ---------------------------------------------------------------------------
def test_a_body_over_the_limit_is_a_413_with_a_json_error(root):
    c = client(root)
    over = b'{"command": "end_experiment", "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    response = post(c, "live", over)
    assert response.status_code == 413 and "over 64 KiB" in response.json()["error"]
    nested = post(c, "live", "[" * 100_000 + "]" * 100_000)  # 200 KB of brackets: too large before parsing
    assert nested.status_code == 413
    deep = post(c, "live", "[" * 30_000 + "]" * 30_000)  # within the limit, but nested past any parser
    assert deep.status_code == 400 and "not valid JSON" in deep.json()["error"]
    assert not queued(root / "live")
    assert post(c, "live", {"command": "end_experiment"}).status_code == 202


def _rss_peak_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/self/status")


def _upload(port: int, head: bytes, chunks: int, chunk: bytes, end: bytes = b"") -> bytes:
    """Send ``head``, up to ``chunks`` chunks and ``end``, stopping when the server hangs
    up; return its answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        try:
            for _ in range(chunks):
                if select.select([sock], [], [], 0)[0]:
                    break  # it has answered: sending on only makes its hang-up a reset
                sock.sendall(chunk)
            else:
                sock.sendall(end)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered and closed: what it did not read, it never held
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except ConnectionResetError:
            pass
        return answer


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak RSS from /proc")
def test_a_300_megabyte_post_does_not_grow_the_servers_memory(root):
    with start(root) as dash:  # the server runs in this process: its peak RSS is ours
        token = csrf_of(httpx.get(f"http://127.0.0.1:{dash.port}/").text)
        megabyte = b"[" * (1 << 20)
        request = (f"POST /api/e/live/control HTTP/1.1\r\nHost: 127.0.0.1:{dash.port}\r\nX-CSRF-Token: {token}\r\n"
                   "Content-Type: application/json\r\nConnection: close\r\n")
        before = _rss_peak_kib()
        told = _upload(dash.port, (request + f"Content-Length: {300 << 20}\r\n\r\n").encode(), 300, megabyte)
        hex_size = f"{len(megabyte):x}\r\n".encode()
        chunked = _upload(dash.port, (request + "Transfer-Encoding: chunked\r\n\r\n").encode(), 300,
                          hex_size + megabyte + b"\r\n", b"0\r\n\r\n")
        grown_mib = (_rss_peak_kib() - before) / 1024
    assert grown_mib < 64, f"the server's peak memory grew by {grown_mib:.0f} MiB"
    expected = b'{"error":"The request body is over 64 KiB'
    for answer in (told, chunked):
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        # The server hangs up with the client still sending; the reset that follows may
        # discard what the client had not read yet (TCP does), so the body may come short or
        # not at all. The message itself is checked on a small body above.
        body = answer.partition(b"\r\n\r\n")[2]
        assert body.startswith(expected) or expected.startswith(body), body[:200]


# -- the Host header -----------------------------------------------------------------------------
@pytest.mark.parametrize(("header", "host"), [
    ("127.0.0.1:9265", "127.0.0.1"), ("localhost", "localhost"), ("LOCALHOST:80", "localhost"),
    ("[::1]", "::1"), ("[::1]:9265", "::1"), ("[0:0:0:0:0:0:0:1]:1", "::1"), ("::1", "::1"),
    ("127.0.0.2:1234", "127.0.0.2"), ("evil.example", "evil.example"),
    ("[::1", None), ("[::1]x", None), ("[evil]:80", None), ("a:b", None), ("127.0.0.1:99999999", None),
    ("", None), (":80", None),
])
def test_host_headers_parse_with_ipv6_in_brackets(header, host):
    assert parse_host(header) == host


@pytest.mark.parametrize(("header", "status"), [
    ("[::1]", 200), ("[::1]:9265", 200), ("127.0.0.2:9265", 200), ("localhost", 200),
    ("evil.example:9265", 403), ("127.0.0.1.nip.io", 403), ("localhost.evil.example", 403), ("[::1", 400),
])
def test_a_loopback_dashboard_answers_to_loopback_addresses_and_nothing_else(root, header, status):
    response = client(root).get("/api/experiments", headers={"Host": header})
    assert response.status_code == status
    if status != 200:
        assert "error" in response.json()


def test_host_127_0_0_2_answers_its_own_printed_url(root):
    with start(root, host="127.0.0.2") as dash:
        assert dash.url == f"http://127.0.0.2:{dash.port}/"
        assert httpx.get(dash.url).status_code == 200
        assert httpx.get(dash.url, headers={"Host": f"rebound.example:{dash.port}"}).status_code == 403


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
def test_host_ipv6_loopback_answers_its_own_printed_url(root):
    with start(root, host="::1") as dash:
        assert dash.url == f"http://[::1]:{dash.port}/"
        assert httpx.get(dash.url).status_code == 200


def test_requests_in_parallel_each_get_their_own_answer(root):
    """The middlewares hold no per-request state of their own: 20 requests at once."""
    c = client(root)
    answers: list[int] = []

    def ask(name: str) -> None:
        answers.append(c.get(f"/api/e/{name}").status_code)

    threads = [threading.Thread(target=ask, args=(name,)) for name in ["done", "live", "nope", "done"] * 5]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(answers) == [200] * 15 + [404] * 5

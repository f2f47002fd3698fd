"""The conftest network guard blocks connections off the machine, not loopback."""
from __future__ import annotations

import http.client
import http.server
import os
import socket
import tempfile
import threading

import pytest

BLOCKED = 'test tried to open a network connection to'


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        body = b'hello'
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize('host', ['127.0.0.1', 'localhost'])
def test_loopback_http_server_works(host: str) -> None:
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection(host, server.server_address[1],
                                          timeout=10)
        conn.request('GET', '/')
        assert conn.getresponse().read() == b'hello'
        conn.close()
    finally:
        server.shutdown()
        server.server_close()


def test_ipv6_loopback_works() -> None:
    try:
        server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        server.bind(('::1', 0))
    except OSError:
        pytest.skip('no IPv6 loopback on this machine')
    with server:
        server.listen(1)
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as client:
            client.connect(server.getsockname()[:2])


def test_unix_sockets_work() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b'x')
        assert b.recv(1) == b'x'
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 's')
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(path)
            server.listen(1)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(path)


def test_gloo_process_group_on_loopback() -> None:
    import torch
    import torch.distributed as dist
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=0, world_size=1)
    try:
        t = torch.ones(2)
        dist.all_reduce(t)
        assert t.tolist() == [1.0, 1.0]
    finally:
        dist.destroy_process_group()


def test_create_connection_to_remote_host_fails(network_guard) -> None:
    # Refused before name resolution: no DNS query is made either.
    with pytest.raises(pytest.fail.Exception, match=BLOCKED):
        socket.create_connection(('example.com', 80), timeout=1)
    assert network_guard.attempts == [repr(('example.com', 80))]
    network_guard.clear()


@pytest.mark.parametrize('address', [('10.255.255.1', 9), ('8.8.8.8', 53)])
def test_connect_to_remote_ip_fails(network_guard, address) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        with pytest.raises(pytest.fail.Exception, match=BLOCKED):
            sock.connect(address)
        with pytest.raises(pytest.fail.Exception, match=BLOCKED):
            sock.connect_ex(address)
    assert len(network_guard.attempts) == 2
    network_guard.clear()


def test_remote_ipv6_and_udp_fail(network_guard) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        with pytest.raises(pytest.fail.Exception, match=BLOCKED):
            sock.connect(('1.1.1.1', 53))
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
        with pytest.raises(pytest.fail.Exception, match=BLOCKED):
            sock.connect(('2001:4860:4860::8888', 53, 0, 0))
    network_guard.clear()


def test_swallowed_attempt_in_a_thread_is_recorded(network_guard) -> None:
    def sneaky() -> None:
        try:
            socket.create_connection(('203.0.113.7', 443), timeout=1)
        except BaseException:
            pass

    thread = threading.Thread(target=sneaky)
    thread.start()
    thread.join()
    # The teardown of the guard fixture would fail this test on this record.
    assert network_guard.attempts == [repr(('203.0.113.7', 443))]
    network_guard.clear()

"""pytest setup of every test folder (``tests/``, ``projects/*/tests``):
import paths, offline hubs, few threads and a network guard.

The checkout root goes first on ``sys.path`` (code run from the checkout
imports ``projects.<name>`` and ``tools.<folder>.<module>``, as with
``PYTHONPATH=.``); ``tools/`` and ``tools/dataset_tools/`` go last, for
tests that load a script in-process (a script imports its neighbours, e.g.
``tool_utils``, by plain name).
The network guard makes any socket connection that leaves the machine fail
the test (tests must never use the network); loopback and Unix sockets keep
working for local HTTP servers and gloo process groups.
"""
from __future__ import annotations

import ipaddress
import os
import pathlib
import socket
import sys
import threading
from typing import Any, List

ROOT = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.extend(str(ROOT / f) for f in ('tools', 'tools/dataset_tools'))

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)

# ---------------------------------------------------------------------------
# network guard

_LOCAL_NAMES = {'localhost', 'localhost.localdomain', 'ip6-localhost',
                'ip6-loopback'}
_blocked: List[str] = []
_blocked_lock = threading.Lock()
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_create_connection = socket.create_connection


def _is_local_host(host: Any) -> bool:
    """True for loopback addresses, 'localhost' and the unspecified address."""
    if isinstance(host, bytes):
        host = host.decode(errors='replace')
    if not isinstance(host, str):
        return False
    host = host.split('%', 1)[0].strip('[]')  # IPv6 scope id / brackets
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # a host name other than localhost: never resolved
    mapped = getattr(ip, 'ipv4_mapped', None)
    if mapped is not None:
        ip = mapped
    # Connecting to 0.0.0.0 / :: reaches this machine on Linux.
    return ip.is_loopback or ip.is_unspecified


def _is_local_address(family: int, address: Any) -> bool:
    if family == getattr(socket, 'AF_UNIX', object()):
        return True
    if family in (socket.AF_INET, socket.AF_INET6) and isinstance(
            address, tuple) and address:
        return _is_local_host(address[0])
    return False


def _block(target: str) -> None:
    message = (f'test tried to open a network connection to {target}; tests '
               f'must not use the network (only loopback and Unix sockets '
               f'are allowed).')
    with _blocked_lock:
        _blocked.append(target)
    pytest.fail(message, pytrace=False)


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if not _is_local_address(self.family, address):
        _block(repr(address))
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    if not _is_local_address(self.family, address):
        _block(repr(address))
    return _real_connect_ex(self, address)


def _guarded_create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
    # Checked before name resolution, so no DNS query leaves the machine.
    host = address[0] if isinstance(address, tuple) and address else address
    if not _is_local_host(host):
        _block(repr(address))
    return _real_create_connection(address, *args, **kwargs)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
socket.create_connection = _guarded_create_connection


class NetworkGuard:
    """Handle on the guard: the blocked attempts seen during this test."""

    @property
    def attempts(self) -> List[str]:
        with _blocked_lock:
            return list(_blocked)

    def clear(self) -> None:
        """Forget blocked attempts (for tests that provoke them on purpose)."""
        with _blocked_lock:
            _blocked.clear()


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    """Remember whether the test body failed, so the guard reports only once."""
    report = yield
    if report.when == 'call':
        item.stash[_CALL_FAILED] = report.failed
    return report


@pytest.fixture(autouse=True)
def network_guard(request: pytest.FixtureRequest) -> Any:
    """Fail the test if it tried to leave the machine, even if it caught the error.

    Connections are refused at once by raising ``pytest.fail``; attempts made
    in background threads or swallowed by ``except BaseException`` are also
    recorded and reported here at teardown.
    """
    guard = NetworkGuard()
    guard.clear()
    yield guard
    attempts = guard.attempts
    guard.clear()
    if attempts and not request.node.stash.get(_CALL_FAILED, False):
        pytest.fail(f'test tried to open a network connection to '
                    f'{", ".join(attempts)}', pytrace=False)


# ---------------------------------------------------------------------------
# markers


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        'markers', 'slow: heavier end-to-end tests (deselect with '
        '-m "not slow")')

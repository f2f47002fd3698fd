"""Tests of the description generator against stub chat servers on
127.0.0.1 (tools/description_generation.py, tools/generate_descriptions.py):
retries, resume, parsing, and a server that redirects, trickles, echoes the
key or sends a huge reply (each bounded to a few seconds)."""
import email.utils
import http.server
import importlib.util
import json
import logging
import pathlib
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Tuple, Union

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
if str(REPO / 'tools') not in sys.path:
    sys.path.append(str(REPO / 'tools'))  # the helper beside the tool

from description_generation import (DEFAULT_TEMPLATE,  # noqa: E402
                                    ChatClient, ClassEntry, GenerationError,
                                    check_template, classes_from_dataset,
                                    classes_from_file, generate_descriptions,
                                    parse_reply, parse_retry_after,
                                    read_existing, render_prompt)

KEY = 'sk-test-SECRET-0123456789abcdef'
#: a body, or a function writing the body itself (e.g. slowly)
Body = Union[bytes, Callable[[Any], None]]
Reply = Tuple[int, Dict[str, str], Body]


def chat_body(content: str) -> bytes:
    return json.dumps({'choices': [{'message': {
        'role': 'assistant', 'content': content}}]}).encode()


def ok(descriptions: List[str]) -> Reply:
    return 200, {}, chat_body(json.dumps(descriptions))


class StubServer:
    """An OpenAI-style chat endpoint; ``respond(class_name, attempt)`` makes
    each reply; every request is recorded."""

    def __init__(self, respond: Callable[[str, int], Reply]) -> None:
        self.respond = respond
        self.requests: List[Dict[str, Any]] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get('Content-Length', 0))
                payload = json.loads(self.rfile.read(length))
                user = payload['messages'][-1]['content']
                name = user.split('"')[1]  # the template quotes the name
                with stub.lock:
                    attempt = sum(r['class'] == name for r in stub.requests)
                    stub.requests.append({
                        'path': self.path, 'class': name,
                        'payload': payload,
                        'auth': self.headers.get('Authorization')})
                status, headers, body = stub.respond(name, attempt)
                try:
                    if callable(body) and status == 0:  # raw bytes only
                        body(self.wfile)
                        return
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header('Content-Type', 'application/json')
                    if not callable(body):
                        self.send_header('Content-Length', str(len(body)))
                    self.end_headers()
                    if callable(body):
                        body(self.wfile)
                    else:
                        self.wfile.write(body)
                except OSError:  # the client hung up (time-out, refusal)
                    self.close_connection = True

            def do_GET(self) -> None:  # noqa: N802  what a followed
                with stub.lock:  # 301/302/303 redirect would send
                    stub.requests.append({
                        'path': self.path, 'class': None, 'payload': None,
                        'auth': self.headers.get('Authorization')})
                self.send_response(405)
                self.send_header('Content-Length', '0')
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                     Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs=dict(poll_interval=0.05),
                                       daemon=True)
        self.thread.start()
        self.base_url = f'http://127.0.0.1:{self.httpd.server_port}/v1'

    def classes_requested(self) -> List[str]:
        return [r['class'] for r in self.requests]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch):
    for var in ('http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY',
                'all_proxy', 'ALL_PROXY'):
        monkeypatch.delenv(var, raising=False)
    servers: List[StubServer] = []

    def start(respond: Callable[[str, int], Reply]) -> StubServer:
        servers.append(StubServer(respond))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def make_client(server: StubServer, sleeps: List[float],
                **kwargs: Any) -> ChatClient:
    kwargs.setdefault('max_retries', 3)
    return ChatClient(server.base_url, 'stub-model', api_key=KEY,
                      timeout=10, backoff=0.5, sleep=sleeps.append, **kwargs)


CLASSES = [ClassEntry(n, n) for n in ('jaguar', 'ocelot', 'tapir')]


def descs(name: str) -> List[str]:
    return [f'a {name} with feature {i}' for i in range(3)]


def all_text(tmp_path: pathlib.Path) -> str:
    return '\n'.join(p.read_text(errors='replace')
                     for p in tmp_path.rglob('*') if p.is_file())


# ---------------------------------------------------------------- end to end
def test_success_writes_json_keyed_by_class(serve, tmp_path, caplog):
    server = serve(lambda name, attempt: ok(descs(name)))
    out = tmp_path / 'out.json'
    sleeps: List[float] = []
    with caplog.at_level(logging.DEBUG):
        result = generate_descriptions(CLASSES, str(out),
                                       make_client(server, sleeps), n=3)
    data = json.loads(out.read_text())
    assert list(data) == ['jaguar', 'ocelot', 'tapir']
    assert data == result == {c.key: descs(c.key) for c in CLASSES}
    assert server.classes_requested() == ['jaguar', 'ocelot', 'tapir']
    first = server.requests[0]
    assert first['path'] == '/v1/chat/completions'
    assert first['auth'] == f'Bearer {KEY}'
    assert first['payload']['model'] == 'stub-model'
    assert first['payload']['messages'][-1]['content'] == render_prompt(
        DEFAULT_TEMPLATE, 'jaguar', 3)
    assert sleeps == []
    assert 'ETA' in caplog.text
    assert KEY not in caplog.text and KEY not in all_text(tmp_path)


def test_server_error_then_success_retries_with_backoff(serve, tmp_path):
    def respond(name: str, attempt: int) -> Reply:
        if name == 'ocelot' and attempt < 2:
            return 500, {}, b'{"error": "overloaded"}'
        return ok(descs(name))

    server = serve(respond)
    sleeps: List[float] = []
    out = tmp_path / 'out.json'
    generate_descriptions(CLASSES, str(out), make_client(server, sleeps),
                          n=3)
    assert server.classes_requested() == ['jaguar', 'ocelot', 'ocelot',
                                          'ocelot', 'tapir']
    assert sleeps == [0.5, 1.0]  # exponential backoff
    assert json.loads(out.read_text())['ocelot'] == descs('ocelot')


def test_429_honours_retry_after(serve, tmp_path):
    def respond(name: str, attempt: int) -> Reply:
        if name == 'jaguar' and attempt == 0:
            return 429, {'Retry-After': '7'}, b'{"error": "rate limited"}'
        return ok(descs(name))

    server = serve(respond)
    sleeps: List[float] = []
    generate_descriptions(CLASSES, str(tmp_path / 'out.json'),
                          make_client(server, sleeps), n=3)
    assert sleeps == [7.0]
    assert server.classes_requested().count('jaguar') == 2


def test_malformed_reply_names_class_and_keeps_written(serve, tmp_path,
                                                       caplog):
    def respond(name: str, attempt: int) -> Reply:
        if name == 'ocelot':
            return 200, {}, b'{"choices": [oops not json'
        return ok(descs(name))

    server = serve(respond)
    out = tmp_path / 'out.json'
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(GenerationError, match="'ocelot'") as info:
            generate_descriptions(CLASSES, str(out),
                                  make_client(server, []), n=3)
    assert 'not valid JSON' in str(info.value)
    assert json.loads(out.read_text()) == {'jaguar': descs('jaguar')}
    assert 'tapir' not in server.classes_requested()
    assert [p.name for p in tmp_path.iterdir()] == ['out.json']  # no temp
    assert KEY not in str(info.value) + caplog.text + all_text(tmp_path)


def test_malformed_content_names_class(serve, tmp_path):
    server = serve(lambda name, attempt: (200, {}, chat_body(
        '["unterminated", ')))
    out = tmp_path / 'out.json'
    out.write_text(json.dumps({'jaguar': descs('jaguar')}))
    with pytest.raises(GenerationError, match="class 'ocelot'"):
        generate_descriptions(CLASSES, str(out), make_client(server, []))
    assert json.loads(out.read_text()) == {'jaguar': descs('jaguar')}


def test_resume_skips_done_classes(serve, tmp_path):
    server = serve(lambda name, attempt: ok(descs(name)))
    out = tmp_path / 'out.json'
    out.write_text(json.dumps({'ocelot': 'a small spotted cat'}))
    result = generate_descriptions(CLASSES, str(out),
                                   make_client(server, []), n=3)
    assert server.classes_requested() == ['jaguar', 'tapir']
    assert result['ocelot'] == ['a small spotted cat']
    assert list(json.loads(out.read_text())) == ['jaguar', 'ocelot', 'tapir']
    # all done: a rerun sends nothing
    generate_descriptions(CLASSES, str(out), make_client(server, []), n=3)
    assert len(server.requests) == 2


def test_key_redacted_from_http_errors(serve, tmp_path, caplog):
    server = serve(lambda name, attempt: (
        401, {}, json.dumps({'error': f'bad key {KEY}'}).encode()))
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(GenerationError) as info:
            generate_descriptions(CLASSES, str(tmp_path / 'out.json'),
                                  make_client(server, []))
    message = str(info.value)
    assert 'HTTP 401' in message and "'jaguar'" in message
    assert KEY not in message and '***' in message
    assert len(server.requests) == 1  # 401 is not retried
    assert KEY not in caplog.text and KEY not in repr(make_client(server,
                                                                  []))
    assert not (tmp_path / 'out.json').exists()


@pytest.mark.parametrize('echo', [str.upper, str.lower,
                                  lambda k: k[::-1],
                                  lambda k: k[::-1].upper()])
def test_key_redacted_in_any_case_or_reversed(serve, tmp_path, echo):
    server = serve(lambda name, attempt: (
        401, {}, json.dumps({'error': f'bad key {echo(KEY)}'}).encode()))
    with pytest.raises(GenerationError) as info:
        generate_descriptions(CLASSES, str(tmp_path / 'out.json'),
                              make_client(server, []))
    message = str(info.value)
    assert echo(KEY).lower() not in message.lower() and '***' in message


def test_retries_exhausted(serve, tmp_path):
    server = serve(lambda name, attempt: (503, {}, b'{}'))
    sleeps: List[float] = []
    with pytest.raises(GenerationError, match='after 3 attempt'):
        generate_descriptions(CLASSES, str(tmp_path / 'o.json'),
                              make_client(server, sleeps, max_retries=2))
    assert sleeps == [0.5, 1.0] and len(server.requests) == 3


def test_connection_refused_is_retried(tmp_path):
    import socket
    with socket.socket() as sock:  # a free port with nobody listening
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    sleeps: List[float] = []
    client = ChatClient(f'http://127.0.0.1:{port}/v1', 'm', api_key=KEY,
                        max_retries=1, backoff=0.1, sleep=sleeps.append)
    with pytest.raises(GenerationError, match='after 2 attempt') as info:
        client.complete([dict(role='user', content='x')], what='class x')
    assert sleeps == [0.1] and KEY not in str(info.value)


def test_corrupt_existing_file_left_untouched(serve, tmp_path):
    server = serve(lambda name, attempt: ok(descs(name)))
    out = tmp_path / 'out.json'
    out.write_text('{"jaguar": ["a big cat"')
    with pytest.raises(GenerationError, match='cannot resume'):
        generate_descriptions(CLASSES, str(out), make_client(server, []))
    assert out.read_text() == '{"jaguar": ["a big cat"'
    assert server.requests == []


def test_existing_file_of_other_classes_refused(tmp_path):
    out = tmp_path / 'out.json'
    out.write_text(json.dumps({'zebra': 'striped horse'}))
    with pytest.raises(GenerationError, match='zebra'):
        read_existing(str(out), CLASSES)
    out.write_text(json.dumps({'jaguar': []}))
    with pytest.raises(GenerationError, match="'jaguar'"):
        read_existing(str(out), CLASSES)


# ---------------------------------------------------------------- the CLI
def load_tool():
    spec = importlib.util.spec_from_file_location(
        'generate_descriptions_tool',
        REPO / 'tools' / 'generate_descriptions.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_with_environment(serve, tmp_path, monkeypatch, capsys, caplog):
    def respond(name: str, attempt: int) -> Reply:
        if attempt == 0 and name == 'tapir':
            return 502, {'Retry-After': '0'}, b''
        text = '\n'.join(f'{i}. a {name} seen from side {i}'
                         for i in range(1, 3))
        return 200, {}, chat_body('Here you go:\n' + text)

    server = serve(respond)
    names = tmp_path / 'names.txt'
    names.write_text('# classes\njaguar\n\ntapir\n')
    out = tmp_path / 'out.json'
    monkeypatch.setenv('OPENAI_BASE_URL', server.base_url)
    monkeypatch.setenv('OPENAI_MODEL', 'env-model')
    monkeypatch.setenv('OPENAI_API_KEY', KEY)
    tool = load_tool()
    with caplog.at_level(logging.DEBUG):
        rc = tool.main(['--classes-file', str(names), '--out', str(out),
                        '--n', '2', '--backoff', '0', '--timeout', '5',
                        '--max-response-bytes', '100000'])
    assert rc == 0
    assert json.loads(out.read_text()) == {
        'jaguar': ['a jaguar seen from side 1', 'a jaguar seen from side 2'],
        'tapir': ['a tapir seen from side 1', 'a tapir seen from side 2']}
    assert server.requests[0]['payload']['model'] == 'env-model'
    assert server.requests[0]['auth'] == f'Bearer {KEY}'
    captured = capsys.readouterr()
    assert KEY not in captured.out + captured.err + caplog.text
    assert KEY not in all_text(tmp_path)


def test_cli_errors_and_dry_run(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv('OPENAI_MODEL', raising=False)
    tool = load_tool()
    names = tmp_path / 'names.txt'
    names.write_text('jaguar\n')
    out = tmp_path / 'o.json'
    assert tool.main(['--classes-file', str(names), '--out', str(out)]) == 1
    assert 'OPENAI_MODEL' in capsys.readouterr().err
    assert tool.main(['--classes-file', str(names), '--out', str(out),
                      '--template', 'describe {thing}']) == 1
    assert '{classname}' in capsys.readouterr().err
    assert tool.main(['--classes-file', str(names), '--out', str(out),
                      '--dry-run']) == 0
    assert '"jaguar"' in capsys.readouterr().out
    assert not out.exists()


# ---------------------------------------------------------------- parsing
@pytest.mark.parametrize('text', [
    '["a big cat", "a spotted cat"]',
    '```json\n["a big cat", "a spotted cat"]\n```',
    '{"descriptions": ["a big cat", "a spotted cat"]}',
    '{"jaguar": ["a big cat", "a spotted cat"]}',
    '1. a big cat\n2. a spotted cat',
    'Sure! Here are two:\n1) "a big cat"\n2) "a spotted cat"',
    '- a big cat\n* a spotted cat',
    '[1] a big cat\n[2] a spotted cat',
    'a big cat\na spotted cat',
])
def test_parse_reply_tolerates_formats(text):
    assert parse_reply(text, 'jaguar', 2) == ['a big cat', 'a spotted cat']


def test_parse_reply_joins_wrapped_lines_and_dedupes():
    text = '1. a big cat with\n   black rosettes\n2. a big cat with black ' \
           'rosettes\n3. a cat'
    assert parse_reply(text, 'jaguar') == ['a big cat with black rosettes',
                                           'a cat']


@pytest.mark.parametrize('text, match', [
    ('', 'empty'),
    ('   ', 'empty'),
    ('["a cat", ', 'not valid'),
    ('[1, 2]', 'non-strings'),
    ('{"a": 1, "b": 2}', 'JSON object'),
    ('["", "  "]', 'no description'),
])
def test_parse_reply_rejects(text, match):
    with pytest.raises(GenerationError, match=match) as info:
        parse_reply(text, 'jaguar')
    assert "'jaguar'" in str(info.value)


def test_parse_reply_warns_on_count(caplog):
    with caplog.at_level(logging.WARNING):
        parse_reply('["a cat"]', 'jaguar', 3)
    assert 'asked for 3' in caplog.text


def test_parse_retry_after():
    assert parse_retry_after('12') == 12.0
    assert parse_retry_after(None) is None
    assert parse_retry_after('soon') is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(30)
    assert parse_retry_after(date, now=2_000_000) == 0.0


def test_templates():
    assert '{classname}' in check_template(DEFAULT_TEMPLATE)
    prompt = render_prompt(DEFAULT_TEMPLATE, 'jaguar', 4)
    assert '"jaguar"' in prompt and 'JSON list of 4' in prompt
    for phrase in ('shape', 'colour', 'texture', 'parts', 'surroundings'):
        assert phrase in prompt
    with pytest.raises(ValueError, match='classname'):
        check_template('describe it')
    with pytest.raises(ValueError, match='unknown'):
        check_template('{classname} {dataset}')
    with pytest.raises(ValueError):
        check_template('{classname')


def test_client_validates_arguments():
    with pytest.raises(ValueError, match='http'):
        ChatClient('ftp://x', 'm')
    with pytest.raises(ValueError, match='OPENAI_MODEL'):
        ChatClient('http://127.0.0.1:1/v1', '')


# ---------------------------------------------------------------- classes
def test_classes_from_file(tmp_path):
    path = tmp_path / 'c.txt'
    path.write_text('jaguar\n# comment\n\n ocelot \n')
    assert classes_from_file(str(path)) == [ClassEntry('jaguar', 'jaguar'),
                                            ClassEntry('ocelot', 'ocelot')]
    path.write_text('jaguar\nocelot\njaguar\n')
    with pytest.raises(ValueError, match='lines 1 and 3'):
        classes_from_file(str(path))
    path.write_text('\n')
    with pytest.raises(ValueError, match='no class names'):
        classes_from_file(str(path))


def test_classes_from_dataset():
    iwildcam = classes_from_dataset('iwildcam')
    assert len(iwildcam) == 182
    assert all(c.key == c.name for c in iwildcam)
    imagenet = classes_from_dataset('imagenet')
    assert len({c.key for c in imagenet}) == 1000
    dup = [c for c in imagenet if c.key != c.name]
    assert dup and all(c.key.startswith(f'{c.name} [n') for c in dup)


# ---------------------------------------------------------------- hostile
def test_redirect_never_carries_the_key(serve, tmp_path):
    """A redirect is refused: the other server never sees a request."""
    target = serve(lambda name, attempt: ok(descs(name)))
    for code in (302, 307):
        origin = serve(lambda name, attempt, code=code: (
            code, {'Location': f'{target.base_url}/chat/completions'}, b''))
        start = time.monotonic()
        with pytest.raises(GenerationError) as info:
            generate_descriptions(CLASSES, str(tmp_path / 'out.json'),
                                  make_client(origin, []))
        assert time.monotonic() - start < 5
        message = str(info.value)
        assert f'HTTP {code}' in message and 'redirects are not followed' \
            in message and target.base_url in message
        assert len(origin.requests) == 1  # no retry either
    assert target.requests == []
    assert not (tmp_path / 'out.json').exists()


def trickle_body(wfile: Any) -> None:
    """A reply body sent one byte every 0.2 s (about 20 s in all)."""
    for byte in chat_body('["a big cat with black rosettes"]'):
        time.sleep(0.2)
        wfile.write(bytes([byte]))
        wfile.flush()


def trickle_everything(wfile: Any) -> None:
    """Even the status line and headers one byte every 0.2 s."""
    for byte in b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n':
        time.sleep(0.2)
        wfile.write(bytes([byte]))
        wfile.flush()


@pytest.mark.parametrize('reply', [
    (0, {}, trickle_everything),
    (200, {'Content-Length': '500'}, trickle_body),
], ids=['headers', 'body'])
def test_timeout_bounds_a_trickling_server(serve, tmp_path, reply):
    server = serve(lambda name, attempt: reply)
    client = make_client(server, [], max_retries=0)
    client.timeout = 1.0
    start = time.monotonic()
    with pytest.raises(GenerationError) as info:
        generate_descriptions(CLASSES[:1], str(tmp_path / 'out.json'),
                              client)
    elapsed = time.monotonic() - start
    assert elapsed < 3, elapsed
    assert 'no complete answer within --timeout 1 s' in str(info.value)
    assert not (tmp_path / 'out.json').exists()


def test_key_echoed_in_the_reply_is_not_written(serve, tmp_path):
    server = serve(lambda name, attempt: ok([
        f'a {name} (your key is {KEY})', f'a {name} with fur']))
    out = tmp_path / 'out.json'
    result = generate_descriptions(CLASSES[:1], str(out),
                                   make_client(server, []), n=2)
    assert result == {'jaguar': ['a jaguar (your key is ***)',
                                 'a jaguar with fur']}
    assert json.loads(out.read_text()) == result
    assert KEY not in all_text(tmp_path)


@pytest.mark.parametrize('with_length', [True, False])
def test_huge_reply_is_refused(serve, tmp_path, with_length):
    huge = chat_body(json.dumps(['a big cat ' * 1000] * 300))  # ~3 MB

    def body(wfile: Any) -> None:
        wfile.write(huge)

    headers = {'Content-Length': str(len(huge))} if with_length else {
        'Connection': 'close'}
    server = serve(lambda name, attempt: (200, headers, body))
    client = make_client(server, [], max_response_bytes=1_000_000)
    start = time.monotonic()
    with pytest.raises(GenerationError) as info:
        generate_descriptions(CLASSES[:1], str(tmp_path / 'out.json'),
                              client)
    assert time.monotonic() - start < 5
    size = f'{len(huge)} bytes' if with_length else 'no Content-Length'
    assert (f'larger than --max-response-bytes 1000000 ({size})'
            in str(info.value))
    assert len(server.requests) == 1  # not retried
    assert not (tmp_path / 'out.json').exists()

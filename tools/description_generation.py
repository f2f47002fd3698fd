"""Generate concept descriptions (the cd prompts) with an LLM behind an
OpenAI-compatible chat endpoint, one request per class; the helper of
``tools/generate_descriptions.py`` (not a command, not part of drm_mm).

The output is the JSON file :func:`drm_mm.prompts.load_descriptions` reads:
an object keyed by class name, each value a list of descriptions. It is
rewritten atomically after every class, so a crash or a failing request
never loses classes already written, and a rerun resumes: classes already in
the file are not requested again. Only the standard library talks HTTP; the
API key goes into the ``Authorization`` header of requests to the base URL
and nowhere else: redirects are not followed, and the key is redacted from
logs, error messages and the descriptions written. One request takes at
most ``timeout`` seconds in total and its reply at most
``max_response_bytes``.
"""
import email.utils
import json
import logging
import os
import os.path as osp
import re
import socket
import string
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import timezone
from http.client import HTTPException
from typing import (Any, Callable, Dict, List, Mapping, NamedTuple, Optional,
                    Sequence)

__all__ = [
    'DEFAULT_SYSTEM_PROMPT', 'DEFAULT_TEMPLATE',
    'DEFAULT_MAX_RESPONSE_BYTES', 'GenerationError',
    'ClassEntry', 'ChatClient', 'check_template', 'render_prompt',
    'parse_reply', 'parse_retry_after', 'classes_from_dataset',
    'classes_from_config', 'classes_from_file', 'read_existing',
    'write_json_atomic', 'generate_descriptions'
]

DEFAULT_SYSTEM_PROMPT = (
    'You are an expert in visual recognition. You describe what things look '
    'like, precisely and briefly.')

#: Asks for the class's core visual features only (shape, colour, texture,
#: parts; nothing about the surroundings, which the df prompts leave out).
DEFAULT_TEMPLATE = (
    'Describe what a "{classname}" looks like in a photo, using only its own '
    'core visual features: body or object shape, size, colours, patterns, '
    'texture and distinctive parts. Do not mention its surroundings, '
    'background, habitat, location, weather, time of day, other objects or '
    'behaviour. Write {n} different descriptions; each is one sentence of at '
    'most 30 words that starts with a noun phrase such as "a medium-sized '
    'cat with ...". Answer with a JSON list of {n} strings and nothing else.')

TEMPLATE_FIELDS = ('classname', 'n')
RETRY_STATUS = (408, 409, 425, 429, 500, 502, 503, 504)
#: Chat replies are a few kB; anything far larger is refused unread.
DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_BULLET = re.compile(
    r'^\s*(?:[-*\u2022\u00b7\u2013]|\(?\d{1,3}\s*[.):\]]|\[\d{1,3}\])\s*(.*)$')
_FENCE = re.compile(r'^\s*```[\w-]*\s*\n(.*?)\n?\s*```\s*$', re.S)

logger = logging.getLogger(__name__)


class GenerationError(RuntimeError):
    """A class's descriptions could not be obtained or parsed."""


class ClassEntry(NamedTuple):
    """One class: its key in the description file and its name in the
    prompt (they differ only for duplicated names, e.g. ImageNet)."""
    key: str
    name: str


# ---------------------------------------------------------------- prompts
def check_template(template: str) -> str:
    """``template`` if it is a valid prompt template: it must contain
    ``{classname}`` and may contain ``{n}``; any other ``{field}`` is an
    error (write literal braces as ``{{`` / ``}}``)."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template)
                  if f is not None]
    except ValueError as err:
        raise ValueError(f'prompt template: {err} (write literal braces as '
                         f'{{{{ and }}}}).') from None
    unknown = sorted({f for f in fields if f not in TEMPLATE_FIELDS})
    if unknown:
        raise ValueError(f'prompt template: unknown placeholder(s) '
                         f'{unknown}; use {{classname}} and {{n}} (literal '
                         f'braces as {{{{ and }}}}).')
    if 'classname' not in fields:
        raise ValueError('prompt template: it must contain {classname}.')
    return template


def render_prompt(template: str, classname: str, n: int) -> str:
    """The user message for one class."""
    return check_template(template).format(classname=classname, n=n)


def _strip_item(text: str) -> str:
    text = text.strip().rstrip(',').strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in '"\'':
        text = text[1:-1].strip()
    return text


def _from_json(value: Any, classname: str) -> List[Any]:
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        if classname in value:
            value = value[classname]
        elif len(lists) == 1:
            value = lists[0]
        else:
            raise GenerationError(
                f'class {classname!r}: the reply is a JSON object '
                f'(keys {sorted(value)[:5]}), expected a JSON list of '
                f'strings.')
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise GenerationError(
            f'class {classname!r}: the reply is JSON '
            f'{type(value).__name__}, expected a list of strings.')
    return value


def parse_reply(text: str, classname: str,
                n: Optional[int] = None) -> List[str]:
    """Descriptions in an LLM reply: a JSON list of strings (in a code
    fence or not), or numbered / bulleted lines, or plain lines.

    Raises:
        GenerationError: malformed JSON, non-string items, or no
            description at all; the message names the class.
    """
    if not isinstance(text, str) or not text.strip():
        raise GenerationError(f'class {classname!r}: the reply is empty.')
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    lines = [line for line in body.splitlines() if line.strip()]
    looks_json = body[:1] in '[{' and not all(
        _BULLET.match(line) for line in lines)  # '[1] ...' is a list
    if looks_json:
        try:
            items = _from_json(json.loads(body), classname)
        except json.JSONDecodeError as err:
            raise GenerationError(
                f'class {classname!r}: the reply looks like JSON but is not '
                f'valid ({err.msg} at line {err.lineno}, column '
                f'{err.colno}): {body[:200]!r}') from None
        bad = [i for i in items if not isinstance(i, str)]
        if bad:
            raise GenerationError(
                f'class {classname!r}: the reply list holds non-strings '
                f'{bad[:3]!r}; expected a JSON list of strings.')
    else:
        bullets = [i for i, line in enumerate(lines) if _BULLET.match(line)]
        if bullets:
            items = []
            for line in lines[bullets[0]:]:
                match = _BULLET.match(line)
                if match:
                    items.append(match.group(1))
                else:  # a wrapped line continues the previous item
                    items[-1] = f'{items[-1]} {line.strip()}'
        else:
            items = lines
    descriptions: List[str] = []
    for item in items:
        item = _strip_item(item)
        if item and item not in descriptions:
            descriptions.append(item)
    if not descriptions:
        raise GenerationError(f'class {classname!r}: no description found '
                              f'in the reply {text[:200]!r}.')
    if n is not None and len(descriptions) != n:
        logger.warning('class %r: got %d description(s), asked for %d.',
                       classname, len(descriptions), n)
    return descriptions


# ---------------------------------------------------------------- HTTP
def parse_retry_after(value: Optional[str],
                      now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an
    HTTP date), or None when absent / unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


class _Deadline:
    """Shuts the sockets of one request down when its time is up, so a
    server that trickles bytes cannot hold the request longer than the
    timeout (socket time-outs only bound each single read)."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._sockets: List[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> '_Deadline':
        self._timer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            self._shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Watched:
    """Handler mixin: every connection it opens is watched by a
    :class:`_Deadline` (proxies from the environment keep working)."""
    deadline: Optional[_Deadline] = None

    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        deadline = self.deadline

        class Connection(http_class):

            def connect(self) -> None:
                super().connect()
                deadline.watch(self.sock)

        return super().do_open(Connection, req, **kwargs)


class _HTTPHandler(_Watched, urllib.request.HTTPHandler):
    pass


class _HTTPSHandler(_Watched, urllib.request.HTTPSHandler):
    pass


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: it would carry the API key to another
    address. The 3xx answer becomes an HTTPError."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _opener(deadline: _Deadline) -> urllib.request.OpenerDirector:
    handlers = []
    for cls in (_HTTPHandler, _HTTPSHandler):
        handler = cls()
        handler.deadline = deadline
        handlers.append(handler)
    return urllib.request.build_opener(*handlers, _NoRedirect)


class ChatClient:
    """Minimal client of ``POST {base_url}/chat/completions`` with retries.

    Retries connection errors, time-outs and HTTP 408/409/425/429/5xx with
    exponential backoff (``backoff * factor**attempt``, at most
    ``max_backoff``); a ``Retry-After`` header replaces the backoff (capped
    by ``max_retry_after``). Other HTTP errors, redirects and replies
    larger than ``max_response_bytes`` fail at once.

    Args:
        base_url: e.g. ``https://api.openai.com/v1`` or a local server.
        model: the model name sent in the request.
        api_key: sent as ``Authorization: Bearer``; None for servers that
            need none. Never logged nor put into messages.
        timeout: seconds per request in total (connection, headers and
            reply), however slowly the server sends.
        max_retries: retries after the first attempt.
        temperature: sent when not None.
        sleep: the waiting function (tests pass a recorder).
        max_response_bytes: largest reply read; a larger one is refused.
    """

    def __init__(self, base_url: str, model: str,
                 api_key: Optional[str] = None, timeout: float = 120.0,
                 max_retries: int = 6, backoff: float = 2.0,
                 factor: float = 2.0, max_backoff: float = 120.0,
                 max_retry_after: float = 600.0,
                 temperature: Optional[float] = None,
                 sleep: Callable[[float], None] = time.sleep,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
                 ) -> None:
        if not base_url or not re.match(r'^https?://', base_url):
            raise ValueError(f'base URL {base_url!r} must start with '
                             f'http:// or https:// (e.g. '
                             f'https://api.openai.com/v1).')
        if not model:
            raise ValueError('no model name: pass --model or set '
                             'OPENAI_MODEL.')
        if max_retries < 0 or backoff < 0 or factor < 1:
            raise ValueError('retries must be >= 0, backoff >= 0 and the '
                             'backoff factor >= 1.')
        if not timeout > 0 or not max_response_bytes > 0:
            raise ValueError(f'--timeout ({timeout}) and --max-response-bytes '
                             f'({max_response_bytes}) must be positive.')
        self.url = base_url.rstrip('/') + '/chat/completions'
        self.model = model
        self._api_key = api_key or None
        self.timeout = timeout
        self.max_retries = int(max_retries)
        self.backoff = backoff
        self.factor = factor
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.temperature = temperature
        self.sleep = sleep
        self.max_response_bytes = int(max_response_bytes)

    def __repr__(self) -> str:  # never shows the key
        return (f'ChatClient(url={self.url!r}, model={self.model!r}, '
                f'api_key={"***" if self._api_key else None})')

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced by ``***``, also where a
        server echoes it reversed or in another letter case."""
        if self._api_key:
            forms = {self._api_key, self._api_key[::-1]}
            pattern = '|'.join(re.escape(f) for f in
                               sorted(forms, key=len, reverse=True))
            text = re.sub(pattern, '***', text, flags=re.IGNORECASE)
        return text

    def _request(self, messages: Sequence[Mapping[str, str]]
                 ) -> urllib.request.Request:
        payload: Dict[str, Any] = dict(model=self.model,
                                       messages=list(messages))
        if self.temperature is not None:
            payload['temperature'] = self.temperature
        headers = {'Content-Type': 'application/json',
                   'Accept': 'application/json'}
        if self._api_key:
            headers['Authorization'] = f'Bearer {self._api_key}'
        return urllib.request.Request(
            self.url, data=json.dumps(payload).encode('utf-8'),
            headers=headers, method='POST')

    def _wait(self, attempt: int, retry_after: Optional[float]) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return min(self.backoff * self.factor**attempt, self.max_backoff)

    def complete(self, messages: Sequence[Mapping[str, str]],
                 what: str = 'request') -> str:
        """The ``content`` of the first choice of the reply.

        Args:
            messages: chat messages (``role`` / ``content``).
            what: what the request is for, used in messages (e.g.
                ``"class 'jaguar'"``).

        Raises:
            GenerationError: after the last retry, on a non-retryable HTTP
                error, or when the reply is not the expected JSON.
        """
        request = self._request(messages)
        attempt = 0
        while True:
            retry_after = None
            try:
                raw = self._attempt(request, what)
                break
            except urllib.error.HTTPError as err:
                if 300 <= err.code < 400:
                    location = err.headers.get('Location') if err.headers \
                        else None
                    raise GenerationError(self.redact(
                        f'{what}: {self.url} answered HTTP {err.code} '
                        f'redirecting to {location!r}; redirects are not '
                        f'followed, so that the API key goes to --base-url '
                        f'only. Pass the final address as --base-url if you '
                        f'trust it.')) from None
                detail = ''
                try:
                    detail = err.read(2000).decode('utf-8', 'replace')[:300]
                except Exception:  # noqa: BLE001 - best effort only
                    pass
                problem = (f'HTTP {err.code} {err.reason}'
                           f'{": " + detail if detail else ""}')
                if err.code not in RETRY_STATUS:
                    raise GenerationError(self.redact(
                        f'{what}: {self.url} answered {problem}. Check the '
                        f'base URL, model name and API key.')) from None
                retry_after = parse_retry_after(
                    err.headers.get('Retry-After') if err.headers else None)
            except (urllib.error.URLError, HTTPException, OSError) as err:
                reason = getattr(err, 'reason', err)
                problem = f'{type(err).__name__}: {reason}'
            if attempt >= self.max_retries:
                raise GenerationError(self.redact(
                    f'{what}: {self.url} failed after {attempt + 1} '
                    f'attempt(s); last error: {problem}')) from None
            wait = self._wait(attempt, retry_after)
            logger.warning('%s', self.redact(
                f'{what}: {problem}; retry {attempt + 1}/{self.max_retries} '
                f'in {wait:.1f} s'))
            self.sleep(wait)
            attempt += 1
        return self._content(raw, what)

    def _too_large(self, what: str, size: str) -> GenerationError:
        return GenerationError(
            f'{what}: the reply of {self.url} is larger than '
            f'--max-response-bytes {self.max_response_bytes} ({size}); it '
            f'was not read. Raise the limit if the server really sends '
            f'such replies.')

    def _attempt(self, request: urllib.request.Request, what: str) -> bytes:
        """One request, the whole of it within ``timeout`` seconds."""
        with _Deadline(self.timeout) as deadline:
            try:
                with _opener(deadline).open(request,
                                            timeout=self.timeout) as resp:
                    length = resp.headers.get('Content-Length', '')
                    if length.strip().isdigit() and int(
                            length) > self.max_response_bytes:
                        raise self._too_large(what, f'{int(length)} bytes')
                    raw = resp.read(self.max_response_bytes + 1)
            except (HTTPException, OSError):
                if deadline.expired:
                    raise TimeoutError(
                        f'no complete answer within --timeout '
                        f'{self.timeout:g} s') from None
                raise
            if deadline.expired:  # a body cut short by the deadline
                raise TimeoutError(f'no complete answer within --timeout '
                                   f'{self.timeout:g} s')
        if len(raw) > self.max_response_bytes:
            raise self._too_large(what, 'no Content-Length')
        return raw

    def _content(self, raw: bytes, what: str) -> str:
        text = raw.decode('utf-8', 'replace')
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise GenerationError(self.redact(
                f'{what}: the reply of {self.url} is not valid JSON '
                f'({err.msg}): {text[:200]!r}')) from None
        try:
            content = data['choices'][0]['message']['content']
        except (KeyError, IndexError, TypeError):
            raise GenerationError(self.redact(
                f'{what}: the reply of {self.url} has no '
                f'choices[0].message.content: {text[:200]!r}')) from None
        if not isinstance(content, str):
            raise GenerationError(f'{what}: choices[0].message.content is '
                                  f'{type(content).__name__}, not text.')
        return self.redact(content)  # a server may echo the key


# ---------------------------------------------------------------- classes
def _entries(names: Sequence[str],
             keys: Optional[Sequence[str]] = None) -> List[ClassEntry]:
    keys = list(names) if keys is None else list(keys)
    if len(keys) != len(names):
        raise ValueError(f'{len(keys)} class keys for {len(names)} classes.')
    return [ClassEntry(str(k), str(n)) for k, n in zip(keys, names)]


def _class_ids(dataset: str) -> Optional[List[str]]:
    """The WordNet ids of an ImageNet-style benchmark (None for others)."""
    from drm_mm.datasets import classnames as cn
    wnids = dict(imagenet='imagenet_wnids', imagenet_a='imagenet_a_wnids',
                 imagenet_r='imagenet_r_wnids').get(dataset)
    return list(getattr(cn, wnids)()) if wnids else None


def classes_from_dataset(dataset: str) -> List[ClassEntry]:
    """Classes of a benchmark (``iwildcam``, ``fmow``, ``imagenet``...), keyed
    as the shipped description files are (``"<name> [<wnid>]"`` for a
    duplicated ImageNet name)."""
    from drm_mm.datasets.classnames import get_classnames
    from drm_mm.prompts.descriptions import make_class_keys
    names = list(get_classnames(dataset))
    keys = None
    if len(set(names)) != len(names):
        keys = make_class_keys(names, _class_ids(dataset))
    return _entries(names, keys)


def classes_from_config(path: str) -> List[ClassEntry]:
    """Classes of a config's ``model.classnames`` (a dataset key or a list),
    with ``model.class_keys`` when it sets them."""
    from mmengine.config import Config
    if not osp.isfile(path):
        raise FileNotFoundError(f'config {path!r} does not exist.')
    cfg = Config.fromfile(path)
    model = cfg.get('model') or {}
    names = model.get('classnames')
    if not names:
        raise ValueError(f'{path}: no model.classnames; pass a dataset key '
                         f'(--classes-from iwildcam) or --classes-file.')
    if isinstance(names, str):
        entries = classes_from_dataset(names)
        names = [e.name for e in entries]
        keys = model.get('class_keys') or [e.key for e in entries]
    else:
        names, keys = list(names), model.get('class_keys')
    return _entries(names, keys)


def classes_from_file(path: str) -> List[ClassEntry]:
    """Classes of a text file, one name per line (blank lines and lines
    starting with ``#`` are skipped)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'class file {path!r} does not exist.')
    names: List[str] = []
    first_line: Dict[str, int] = {}
    dups = []
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            name = line.strip()
            if not name or name.startswith('#'):
                continue
            if name in first_line:
                dups.append(f'{name!r} (lines {first_line[name]} and '
                            f'{number})')
            first_line.setdefault(name, number)
            names.append(name)
    if dups:
        raise ValueError(f'{path}: duplicated class names {dups[:5]}; '
                         f'description keys must be unique.')
    if not names:
        raise ValueError(f'{path}: no class names (one per line).')
    return _entries(names)


# ---------------------------------------------------------------- files
def read_existing(path: str, classes: Sequence[ClassEntry]
                  ) -> Dict[str, List[str]]:
    """Descriptions already in ``path`` (resume), {} when it does not exist.

    Raises:
        GenerationError: the file is not a JSON object of descriptions, or
            has keys that are not among the classes; it is never
            overwritten then.
    """
    if not osp.exists(path):
        return {}
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise GenerationError(
            f'{path}: cannot resume from it ({err}). Fix the file or move it '
            f'away; it was left untouched.') from None
    if not isinstance(data, dict):
        raise GenerationError(f'{path}: expected a JSON object keyed by class '
                              f'name, got {type(data).__name__}.')
    known = {c.key for c in classes}
    extra = [k for k in data if k not in known]
    if extra:
        raise GenerationError(
            f'{path}: {len(extra)} key(s) are not among the classes '
            f'({extra[:5]}); is it the file of another class list? Pass the '
            f'matching classes or another --out.')
    out: Dict[str, List[str]] = {}
    for key, value in data.items():
        items = [value] if isinstance(value, str) else value
        if (not isinstance(items, list) or not items or not all(
                isinstance(v, str) and v.strip() for v in items)):
            raise GenerationError(
                f'{path}: the entry of {key!r} must be a non-empty string or '
                f'list of non-empty strings; delete it to regenerate it.')
        out[key] = [v.strip() for v in items]
    return out


def write_json_atomic(data: Mapping[str, Any], path: str) -> None:
    """Write ``data`` as JSON to a temporary file next to ``path``, fsync
    it and rename it over ``path``."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.',
                               suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            json.dump(data, f, indent=2, ensure_ascii=False)
            f.write('\n')
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f'{seconds // 3600:d}:{seconds % 3600 // 60:02d}:' \
           f'{seconds % 60:02d}'


# ---------------------------------------------------------------- driver
def generate_descriptions(classes: Sequence[ClassEntry], out_path: str,
                          client: ChatClient,
                          template: str = DEFAULT_TEMPLATE, n: int = 5,
                          system_prompt: Optional[str] = DEFAULT_SYSTEM_PROMPT,
                          log: Optional[logging.Logger] = None
                          ) -> Dict[str, List[str]]:
    """Ask ``client`` for the descriptions of every class not yet in
    ``out_path`` and write the file after each class.

    Returns:
        The whole file's content, in class order.

    Raises:
        GenerationError: a request or reply failed (naming the class); the
            classes written before stay in the file.
    """
    log = log or logger
    check_template(template)
    if not classes:
        raise ValueError('no classes to describe.')
    if n < 1:
        raise ValueError(f'n={n}: ask for at least one description.')
    keys = [c.key for c in classes]
    if len(set(keys)) != len(keys):
        dups = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f'class keys are not unique: {dups[:5]}.')
    done = read_existing(out_path, classes)
    todo = [c for c in classes if c.key not in done]
    log.info('%d class(es), %d already in %s, %d to generate with %s at %s.',
             len(classes), len(done), out_path, len(todo), client.model,
             client.url)
    start = time.perf_counter()
    for i, entry in enumerate(todo, 1):
        messages = []
        if system_prompt:
            messages.append(dict(role='system', content=system_prompt))
        messages.append(dict(role='user', content=render_prompt(
            template, entry.name, n)))
        what = f'class {entry.key!r}'
        reply = client.complete(messages, what=what)
        try:
            done[entry.key] = parse_reply(reply, entry.key, n)
        except GenerationError as err:
            raise GenerationError(client.redact(
                f'{err} Nothing was written for this class; {out_path} '
                f'keeps the {len(done)} class(es) done so far.')) from None
        ordered = {c.key: done[c.key] for c in classes if c.key in done}
        write_json_atomic(ordered, out_path)
        elapsed = time.perf_counter() - start
        eta = elapsed / i * (len(todo) - i)
        log.info('[%d/%d] %s: %d description(s); elapsed %s, ETA %s', i,
                 len(todo), entry.key, len(done[entry.key]), _clock(elapsed),
                 _clock(eta))
    result = {c.key: done[c.key] for c in classes if c.key in done}
    if not todo and not osp.exists(out_path):
        write_json_atomic(result, out_path)
    from drm_mm.prompts.descriptions import load_descriptions
    load_descriptions(out_path, [c.name for c in classes],
                      class_keys=keys)
    return result

"""Concept descriptions (the cd prompts): load a JSON file keyed by class
name and validate it against the dataset's class list.

The file maps each class key to one description or a list of them::

    {"jaguar": "a large cat with a tawny coat covered in black rosettes",
     "ocelot": ["a small wild cat ...", "..."]}

Keys are class names, never positions. When class names are not unique
(ImageNet has two ``missile`` and two ``sunglasses`` classes) the keys are
explicit ``class_keys``; :func:`make_class_keys` builds the convention used
by the shipped files: the name, or ``"<name> [<id>]"`` for a duplicated name.
"""
import json
import os
import os.path as osp
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

#: Folder of the shipped description files (``iwildcam.json`` ...).
PROMPTS_DIR = Path(__file__).resolve().parent
#: Default limits of a description file: its size and its number of
#: descriptions (all classes together; each is encoded by the text tower).
MAX_DESCRIPTION_BYTES = 32 * 2**20
MAX_DESCRIPTION_ENTRIES = 50_000

DescriptionSource = Union[str, os.PathLike, Mapping[str, Any]]


class DescriptionError(ValueError):
    """A description file does not match the dataset's classes."""


class MissingDescriptionError(DescriptionError):
    """Some classes have no entry in the description file."""


class EmptyDescriptionError(DescriptionError):
    """Some classes have an empty description (``""``, ``[]`` or blanks)."""


class UnknownDescriptionKeyError(DescriptionError):
    """The description file has keys that are not classes of the dataset."""


class InvalidDescriptionError(DescriptionError):
    """The file is not a JSON object of strings / lists of strings."""


def _shorten(names: Sequence[str], limit: int = 20) -> str:
    shown = ', '.join(repr(n) for n in names[:limit])
    more = len(names) - limit
    return shown + (f' ... (+{more} more)' if more > 0 else '')


def make_class_keys(classnames: Sequence[str],
                    ids: Optional[Sequence[str]] = None) -> List[str]:
    """Unique description keys: the class name, or ``"<name> [<id>]"`` for
    names that occur more than once (``ids``, e.g. WordNet ids, required
    then)."""
    counts = Counter(classnames)
    dups = sorted(n for n, k in counts.items() if k > 1)
    if not dups:
        return list(classnames)
    if ids is None:
        raise DescriptionError(
            f'class names are not unique ({_shorten(dups)}); pass explicit '
            f'class_keys (e.g. "<name> [<wnid>]" for the duplicates, as in '
            f'drm_mm/prompts/imagenet.json).')
    if len(ids) != len(classnames):
        raise DescriptionError(f'make_class_keys: {len(ids)} ids for '
                               f'{len(classnames)} class names.')
    return [f'{n} [{i}]' if counts[n] > 1 else n
            for n, i in zip(classnames, ids)]


def resolve_description_path(path: Union[str, os.PathLike]) -> Path:
    """An existing file: ``path`` as given, else relative to the package's
    ``drm_mm/prompts/`` folder (so ``'iwildcam.json'`` finds the shipped
    file)."""
    candidates = [Path(path)]
    if not osp.isabs(str(path)):
        candidates.append(PROMPTS_DIR / path)
    for cand in candidates:
        if cand.is_file():
            return cand
    raise FileNotFoundError(
        f'description file {str(path)!r} not found (looked at '
        f'{[str(c) for c in candidates]}). Pass an existing JSON path or '
        f'the name of a file in {PROMPTS_DIR}.')


def _no_duplicate_keys(where: str):
    def hook(pairs: List[tuple]) -> Dict[str, Any]:
        counts = Counter(k for k, _ in pairs)
        dups = sorted(k for k, c in counts.items() if c > 1)
        if dups:
            raise InvalidDescriptionError(
                f'{where}: keys appear more than once: {_shorten(dups)}. '
                f'Merge their descriptions into one list.')
        return dict(pairs)
    return hook


def _count_entries(data: Mapping) -> int:
    return sum(len(v) if isinstance(v, list) else 1 for v in data.values())


def read_description_file(path: Union[str, os.PathLike],
                          max_bytes: int = MAX_DESCRIPTION_BYTES,
                          max_entries: int = MAX_DESCRIPTION_ENTRIES
                          ) -> Dict[str, Any]:
    """Parse a description JSON file (no validation against classes).

    Files over ``max_bytes`` or with more than ``max_entries`` descriptions
    are refused before they can exhaust memory.
    """
    path = resolve_description_path(path)
    size = osp.getsize(path)
    if size > max_bytes:
        raise InvalidDescriptionError(
            f'{path}: {size} bytes, more than the limit of {max_bytes} '
            f'(max_bytes); a description file is a few hundred KB.')
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f, object_pairs_hook=_no_duplicate_keys(
                str(path)))
    except json.JSONDecodeError as err:
        raise InvalidDescriptionError(
            f'{path}: not valid JSON ({err.msg} at line {err.lineno}, column '
            f'{err.colno}).') from None
    except UnicodeDecodeError as err:
        raise InvalidDescriptionError(
            f'{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at '
            f'offset {err.start}); save it as UTF-8 JSON.') from None
    except RecursionError:
        raise InvalidDescriptionError(
            f'{path}: JSON nested too deeply; the file must map class names '
            f'to strings or lists of strings.') from None
    if not isinstance(data, dict):
        raise InvalidDescriptionError(
            f'{path}: the top level must be an object mapping class names to '
            f'descriptions, got {type(data).__name__}.')
    entries = _count_entries(data)
    if entries > max_entries:
        raise InvalidDescriptionError(
            f'{path}: {entries} descriptions, more than the limit of '
            f'{max_entries} (max_entries).')
    return data


def _as_list(key: str, value: Any, where: str) -> List[str]:
    """A description entry as a list of stripped strings (may be empty)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(
            isinstance(v, str) for v in items):
        raise InvalidDescriptionError(
            f'{where}: the description of {key!r} must be a string or a list '
            f'of strings, got {value!r}.')
    return [v.strip() for v in items]


def load_descriptions(source: DescriptionSource,
                      classnames: Sequence[str],
                      class_keys: Optional[Sequence[str]] = None,
                      allow_extra_keys: bool = False,
                      max_bytes: int = MAX_DESCRIPTION_BYTES,
                      max_entries: int = MAX_DESCRIPTION_ENTRIES
                      ) -> List[List[str]]:
    """Descriptions per class, in the order of ``classnames``.

    Args:
        source: a JSON file (absolute, relative to the working directory or
            to ``drm_mm/prompts/``) or an already loaded mapping.
        classnames: the dataset's class names, in label order.
        class_keys: the key of each class in the file when names are not
            unique (default: the class names themselves).
        allow_extra_keys: warn about keys that are no class instead of
            raising. A class without a description is always an error.
        max_bytes, max_entries: limits of the file (see
            :func:`read_description_file`).

    Raises:
        MissingDescriptionError, EmptyDescriptionError,
        UnknownDescriptionKeyError, InvalidDescriptionError: each lists the
        offending class names.
    """
    if isinstance(source, Mapping):
        data, where = dict(source), 'descriptions (dict)'
    else:
        where = str(resolve_description_path(source))
        data = read_description_file(source, max_bytes, max_entries)
    keys = list(classnames if class_keys is None else class_keys)
    if len(keys) != len(classnames):
        raise DescriptionError(
            f'{where}: {len(keys)} class_keys for {len(classnames)} classes.')
    dups = sorted(k for k, c in Counter(keys).items() if c > 1)
    if dups:
        raise DescriptionError(
            f'{where}: class keys are not unique ({_shorten(dups)}); pass '
            f'class_keys that tell the classes apart (see '
            f'drm_mm.prompts.make_class_keys).')
    missing = [k for k in keys if k not in data]
    if missing:
        raise MissingDescriptionError(
            f'{where}: no description for {len(missing)} class(es): '
            f'{_shorten(missing)}. Add an entry keyed by each class name.')
    extra = sorted(k for k in data if k not in set(keys))
    if extra:
        message = (f'{where}: {len(extra)} key(s) are not classes of the '
                   f'dataset: {_shorten(extra)}. Fix the spelling or remove '
                   f'them (keys must equal the class names).')
        if not allow_extra_keys:
            raise UnknownDescriptionKeyError(
                message + ' Set model.allow_extra_description_keys=True in '
                'the config to ignore them.')
        warnings.warn(message + ' They are ignored '
                      '(model.allow_extra_description_keys=True).')
    per_class = [_as_list(k, data[k], where) for k in keys]
    empty = [k for k, descs in zip(keys, per_class)
             if not descs or any(not d for d in descs)]
    if empty:
        raise EmptyDescriptionError(
            f'{where}: empty description for {len(empty)} class(es): '
            f'{_shorten(empty)}. Write at least one non-empty sentence for '
            f'each (and no empty strings in lists).')
    return per_class


#: The default description template: each description as it is.
DESCRIPTION_PLACEHOLDER = '{d}'


def check_description_template(template: str) -> str:
    """``template`` if it holds ``{d}`` (and optionally ``{c}``)."""
    if not isinstance(template, str) or \
            DESCRIPTION_PLACEHOLDER not in template:
        raise ValueError(
            f'description_template must be a string containing '
            f'{DESCRIPTION_PLACEHOLDER!r} (the description) and optionally '
            f"'{{c}}' (the class name), e.g. '{{c}} is {{d}}'; got "
            f'{template!r}.')
    return template


def apply_description_template(descriptions: Sequence[Sequence[str]],
                               classnames: Sequence[str],
                               template: str = DESCRIPTION_PLACEHOLDER
                               ) -> List[List[str]]:
    """cd prompts per class: ``template`` with ``{c}`` = the class name and
    ``{d}`` = each description (``'{d}'``, the default, keeps them as they
    are; ``'{c} is {d}'`` prefixes the class name)."""
    check_description_template(template)
    if len(descriptions) != len(classnames):
        raise DescriptionError(
            f'apply_description_template: {len(descriptions)} description '
            f'lists for {len(classnames)} classes.')
    return [[template.replace('{c}', name).replace(DESCRIPTION_PLACEHOLDER, d)
             for d in descs]
            for name, descs in zip(classnames, descriptions)]

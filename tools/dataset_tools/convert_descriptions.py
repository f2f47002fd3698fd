"""Convert the DRM authors' released concept-description files to drm_mm's
description JSON (keyed by our class keys, in label order).

    python tools/dataset_tools/convert_descriptions.py iwildcam SRC.json OUT.json
    python tools/dataset_tools/convert_descriptions.py fmow SRC.json OUT.json
    python tools/dataset_tools/convert_descriptions.py imagenet SRC.json OUT.json

Accepted keys of the source file:

* iwildcam: label positions ``"0"`` .. ``"181"`` (WILDS ``y``), or the WILDS
  (Latin) category names in any case (``"Mazama temama1"``, a typo of the
  release, is y = 181 ``'mazama  temama'``), or our common names;
* fmow: the 62 WILDS category names (any case, blanks for underscores) or
  positions;
* imagenet: the 1000 classes in label order, each key our class name in any
  case or, at the two positions where the release names differ,
  ``projectile`` (744) / ``sunglass`` (836); or positions.

Values (one sentence or a list) are kept verbatim: sentences that already
start with the class name need no ``description_template``. Anything that
cannot be mapped, a class mapped twice or a class left without descriptions
stops the conversion with a one-line error naming the keys.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

DATASETS = ('iwildcam', 'fmow', 'imagenet')
#: iWildCam keys of the release that are no WILDS name -> y.
IWILDCAM_ALIASES = {'mazama temama1': 181}
#: ImageNet label -> the name the release uses there.
IMAGENET_ALIASES = {744: 'projectile', 836: 'sunglass'}


class ConversionError(ValueError):
    """The source file cannot be mapped onto the dataset's classes."""


def _norm(text: str) -> str:
    return ' '.join(str(text).replace('_', ' ').split()).lower()


def _values(key: str, value: Any, src: str) -> List[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(
            isinstance(v, str) and v.strip() for v in items):
        raise ConversionError(
            f'{src}: the entry {key!r} must be a non-empty string or a '
            f'non-empty list of non-empty strings, got {value!r}.')
    return [v.strip() for v in items]


def _by_position(data: Dict[str, Any], n: int) -> Optional[Dict[str, int]]:
    """``{key: label}`` when every key is a position, else None."""
    if not all(k.strip().isdigit() for k in data):
        return None
    return {k: int(k) for k in data}


def _iwildcam_label(key: str) -> Optional[int]:
    from drm_mm.datasets.classnames import (get_classnames,
                                            iwildcam_common_name)
    if _norm(key) in IWILDCAM_ALIASES:
        return IWILDCAM_ALIASES[_norm(key)]
    try:
        return iwildcam_common_name(key).y
    except KeyError:
        pass
    common = {_norm(n): y for y, n in enumerate(get_classnames('iwildcam'))}
    return common.get(_norm(key))


def _fmow_label(key: str) -> Optional[int]:
    from drm_mm.datasets.classnames import get_classnames
    names = {_norm(n): y for y, n in enumerate(get_classnames('fmow'))}
    return names.get(_norm(key))


def _imagenet_labels(data: Dict[str, Any], src: str) -> Dict[str, int]:
    from drm_mm.datasets.classnames import get_classnames
    names = get_classnames('imagenet')
    keys = list(data)
    if len(keys) != len(names):
        raise ConversionError(
            f'{src}: {len(keys)} entries, expected the {len(names)} ImageNet '
            f'classes in label order.')
    wrong = [f'{i}: {k!r} (expected {names[i]!r})'
             for i, k in enumerate(keys)
             if _norm(k) not in (_norm(names[i]),
                                 IMAGENET_ALIASES.get(i, names[i]))]
    if wrong:
        raise ConversionError(
            f'{src}: {len(wrong)} key(s) do not name the class at their '
            f'position: {"; ".join(wrong[:5])}.')
    return {k: i for i, k in enumerate(keys)}


def convert(data: Dict[str, Any], dataset: str,
            src: str = 'descriptions') -> Dict[str, List[str]]:
    """``{our class key: [descriptions]}`` in label order."""
    from drm_mm.datasets.classnames import get_class_keys
    if dataset not in DATASETS:
        raise ConversionError(f'unknown dataset {dataset!r}; choose from '
                              f'{", ".join(DATASETS)}.')
    keys = get_class_keys(dataset)
    if not isinstance(data, dict) or not data:
        raise ConversionError(f'{src}: expected a non-empty JSON object of '
                              f'class -> description(s).')
    labels = _by_position(data, len(keys))
    if labels is None:
        if dataset == 'imagenet':
            labels = _imagenet_labels(data, src)
        else:
            find: Callable[[str], Optional[int]] = (
                _iwildcam_label if dataset == 'iwildcam' else _fmow_label)
            labels = {k: find(k) for k in data}
    unknown = [k for k, y in labels.items()
               if y is None or not 0 <= y < len(keys)]
    if unknown:
        raise ConversionError(
            f'{src}: {len(unknown)} key(s) match no {dataset} class: '
            f'{unknown[:10]}. Check the dataset argument and the file.')
    seen: Dict[int, str] = {}
    twice = []
    for key, y in labels.items():
        if y in seen:
            twice.append(f'{seen[y]!r} and {key!r} -> {keys[y]!r}')
        seen[y] = key
    if twice:
        raise ConversionError(f'{src}: several keys map to one class: '
                              f'{"; ".join(twice[:5])}.')
    missing = [keys[y] for y in range(len(keys)) if y not in seen]
    if missing:
        raise ConversionError(
            f'{src}: {len(missing)} {dataset} class(es) have no entry: '
            f'{missing[:10]}.')
    return {keys[y]: _values(seen[y], data[seen[y]], src)
            for y in range(len(keys))}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('dataset', choices=DATASETS)
    parser.add_argument('src', help="the authors' description JSON")
    parser.add_argument('out', help='drm_mm description JSON to write')
    parser.add_argument('--force', action='store_true',
                        help='overwrite an existing output file')
    args = parser.parse_args(argv)
    from drm_mm.prompts import InvalidDescriptionError, read_description_file
    try:
        if not osp.isfile(args.src):
            raise ConversionError(f'{args.src}: no such file (download the '
                                  f"authors' description file first).")
        if osp.exists(args.out) and not args.force:
            raise ConversionError(f'{args.out} exists; pass --force to '
                                  f'overwrite it.')
        converted = convert(read_description_file(args.src), args.dataset,
                            args.src)
        tmp = f'{args.out}.tmp'
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump(converted, f, ensure_ascii=False, indent=2)
            f.write('\n')
        os.replace(tmp, args.out)
    except (ConversionError, InvalidDescriptionError, OSError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    count = sum(len(v) for v in converted.values())
    print(f'wrote {args.out}: {len(converted)} classes, {count} '
          f'descriptions; use it with model.descriptions={args.out!r}.')
    return 0


if __name__ == '__main__':
    sys.exit(main())

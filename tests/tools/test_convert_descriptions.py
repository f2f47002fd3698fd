"""tools/dataset_tools/convert_descriptions.py on files in the authors'
formats (written here: position keys, Latin names with the release's typo,
ImageNet's projectile / sunglass, FMoW lists)."""
from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest

from drm_mm.datasets.classnames import (get_class_keys, get_classnames,
                                        iwildcam_categories)
from drm_mm.prompts import load_descriptions

TOOL = pathlib.Path(__file__).parents[2] / 'tools' / 'dataset_tools' / \
    'convert_descriptions.py'


def _tool():
    spec = importlib.util.spec_from_file_location('convert_descriptions',
                                                  TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path, data):
    path.write_text(json.dumps(data), encoding='utf-8')
    return path


def _sentence(y):
    return f'Animal number {y} is a test creature with {y} spots.'


def test_iwildcam_position_keys(tmp_path):
    names = get_classnames('iwildcam')
    src = _write(tmp_path / 'cd.json',
                 {str(y): _sentence(y) for y in range(182)})
    out = tmp_path / 'out.json'
    assert _tool().main(['iwildcam', str(src), str(out)]) == 0
    loaded = load_descriptions(str(out), names)
    assert loaded[0] == [_sentence(0)] and loaded[181] == [_sentence(181)]
    assert list(json.loads(out.read_text())) == names


def test_iwildcam_latin_keys_with_the_release_typo(tmp_path):
    rows = iwildcam_categories()
    data = {}
    for r in reversed(rows):  # order does not matter for names
        key = 'Mazama temama1' if r.y == 181 else r.name.capitalize()
        data[key] = [_sentence(r.y), 'second']
    src = _write(tmp_path / 'cd.json', data)
    out = tmp_path / 'out.json'
    assert _tool().main(['iwildcam', str(src), str(out)]) == 0
    converted = json.loads(out.read_text())
    assert converted['central american red brocket'] == [_sentence(153),
                                                         'second']
    assert converted['central american brocket deer'] == [_sentence(181),
                                                          'second']
    assert len(converted) == 182


def test_imagenet_release_names_and_aliases(tmp_path):
    names = get_classnames('imagenet')
    data = {}
    for i, name in enumerate(names):
        key = {744: 'projectile', 836: 'sunglass'}.get(i, name)
        data[key] = f'class {i}'
    src = _write(tmp_path / 'cd.json', data)
    out = tmp_path / 'out.json'
    assert _tool().main(['imagenet', str(src), str(out)]) == 0
    converted = json.loads(out.read_text())
    assert converted['missile [n03773504]'] == ['class 657']
    assert converted['missile [n04008634]'] == ['class 744']
    assert converted['sunglasses [n04355933]'] == ['class 836']
    assert converted['sunglasses [n04356056]'] == ['class 837']
    assert list(converted) == get_class_keys('imagenet')
    # reachable for ImageNet-R with one config value
    from drm_mm.datasets.classnames import class_subset_indices
    sub = [converted[get_class_keys('imagenet')[i]]
           for i in class_subset_indices('imagenet_r')]
    assert len(sub) == 200


def test_fmow_six_descriptions_per_class(tmp_path):
    names = get_classnames('fmow')
    data = {n: [f'{n} view {k}' for k in range(6)] for n in names}
    src = _write(tmp_path / 'cd.json', data)
    out = tmp_path / 'out.json'
    assert _tool().main(['fmow', str(src), str(out)]) == 0
    loaded = load_descriptions(str(out), names)
    assert all(len(d) == 6 for d in loaded)
    assert loaded[0][5] == f'{names[0]} view 5'


@pytest.mark.parametrize('dataset,data,match', [
    ('iwildcam', {'felis imaginaria': 'x'}, "match no iwildcam class: "
     "\\['felis imaginaria'\\]"),
    ('iwildcam', {'0': 'x', '1': 'y'}, '180 iwildcam class\\(es\\) have no '
     'entry'),
    ('iwildcam', {'Empty': 'x', 'empty': 'y'}, "several keys map to one "
     "class: 'Empty' and 'empty' -> 'empty'"),
    ('imagenet', {'tench': 'x'}, '1 entries, expected the 1000 ImageNet'),
    ('fmow', {'airport': ''}, "the entry 'airport' must be a non-empty"),
])
def test_unmappable_files_fail_with_one_line(tmp_path, capsys, dataset, data,
                                             match):
    if dataset == 'fmow':
        data = dict({n: 'ok' for n in get_classnames('fmow')}, **data)
    src = _write(tmp_path / 'cd.json', data)
    out = tmp_path / 'out.json'
    assert _tool().main([dataset, str(src), str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: ')
    import re
    assert re.search(match, err), err
    assert not out.exists()


def test_imagenet_wrong_name_at_a_position_is_named(tmp_path, capsys):
    names = list(get_classnames('imagenet'))
    names[3] = 'not a shark'
    names[744], names[836] = 'projectile', 'sunglass'
    src = _write(tmp_path / 'cd.json', {n: 'x' for n in names})
    assert _tool().main(['imagenet', str(src), str(tmp_path / 'o.json')]) == 1
    assert "3: 'not a shark' (expected 'tiger shark')" in \
        capsys.readouterr().err


def test_existing_output_needs_force(tmp_path, capsys):
    src = _write(tmp_path / 'cd.json',
                 {str(y): _sentence(y) for y in range(182)})
    out = tmp_path / 'out.json'
    out.write_text('{}')
    assert _tool().main(['iwildcam', str(src), str(out)]) == 1
    assert '--force' in capsys.readouterr().err
    assert _tool().main(['iwildcam', str(src), str(out), '--force']) == 0

"""Loading and validating concept-description files."""
import json

import pytest

import drm_mm.prompts.descriptions as descriptions_module
from drm_mm.prompts.descriptions import (DescriptionError,
                                         EmptyDescriptionError,
                                         InvalidDescriptionError,
                                         MissingDescriptionError,
                                         UnknownDescriptionKeyError,
                                         load_descriptions, make_class_keys,
                                         resolve_description_path)

CLASSES = ['cat', 'dog', 'bird']


def _write(tmp_path, data, name='desc.json'):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_loads_strings_and_lists_in_class_order(tmp_path):
    path = _write(tmp_path, {'dog': ['a canine', ' a barking pet '],
                             'bird': 'a feathered animal',
                             'cat': 'a small feline'})
    assert load_descriptions(path, CLASSES) == [
        ['a small feline'], ['a canine', 'a barking pet'],
        ['a feathered animal']]
    assert load_descriptions({'cat': 'c', 'dog': 'd', 'bird': 'b'},
                             CLASSES) == [['c'], ['d'], ['b']]


def test_missing_class_is_an_error_naming_it(tmp_path):
    path = _write(tmp_path, {'cat': 'a', 'bird': 'b'})
    with pytest.raises(MissingDescriptionError, match="'dog'") as err:
        load_descriptions(path, CLASSES)
    assert str(path) in str(err.value)


def test_missing_class_is_an_error_even_with_allow_extra_keys(tmp_path):
    path = _write(tmp_path, {'cat': 'a', 'bird': 'b', 'cow': 'c'})
    with pytest.raises(MissingDescriptionError, match="'dog'"):
        load_descriptions(path, CLASSES, allow_extra_keys=True)


@pytest.mark.parametrize('empty', ['', '   ', [], ['ok', '']])
def test_empty_description_is_an_error_naming_the_class(tmp_path, empty):
    path = _write(tmp_path, {'cat': 'a', 'dog': empty, 'bird': 'b'})
    with pytest.raises(EmptyDescriptionError, match="'dog'"):
        load_descriptions(path, CLASSES)


def test_unknown_key_is_an_error_naming_it(tmp_path):
    path = _write(tmp_path, {'cat': 'a', 'dog': 'b', 'bird': 'c',
                             'dgo': 'typo'})
    with pytest.raises(UnknownDescriptionKeyError, match="'dgo'"):
        load_descriptions(path, CLASSES)


def test_allow_extra_keys_warns_instead(tmp_path):
    path = _write(tmp_path, {'cat': 'a', 'dog': 'b', 'bird': 'c',
                             'cow': 'moo'})
    with pytest.warns(UserWarning, match="'cow'"):
        out = load_descriptions(path, CLASSES, allow_extra_keys=True)
    assert out == [['a'], ['b'], ['c']]


@pytest.mark.parametrize('text, match', [
    ('{"cat": "a",', 'not valid JSON'),
    ('["cat", "dog"]', 'top level must be an object'),
    ('{"cat": "a", "dog": 3, "bird": "b"}', "'dog'"),
    ('{"cat": "a", "cat": "b", "dog": "c", "bird": "d"}', 'more than once'),
])
def test_malformed_files_give_invalid_description_error(tmp_path, text,
                                                        match):
    path = _write(tmp_path, text)
    with pytest.raises(InvalidDescriptionError, match=match):
        load_descriptions(path, CLASSES)


def test_errors_are_value_errors():
    assert issubclass(MissingDescriptionError, DescriptionError)
    assert issubclass(DescriptionError, ValueError)


def test_duplicate_names_need_class_keys():
    names = ['missile', 'tank', 'missile']
    with pytest.raises(DescriptionError, match='missile'):
        load_descriptions({'missile': 'x', 'tank': 'y'}, names)
    keys = make_class_keys(names, ['n1', 'n2', 'n3'])
    assert keys == ['missile [n1]', 'tank', 'missile [n3]']
    data = {'missile [n1]': 'a rocket', 'tank': 'armour',
            'missile [n3]': 'a projectile'}
    assert load_descriptions(data, names, class_keys=keys) == [
        ['a rocket'], ['armour'], ['a projectile']]
    with pytest.raises(DescriptionError, match='class_keys'):
        make_class_keys(names)


def test_keyed_descriptions_ignore_the_file_order(tmp_path):
    """Keys that tell repeated names apart by id are matched by key: a file
    written in neither class nor sorted order gives each class its own."""
    names = ['missile', 'tank', 'missile', 'ark']
    keys = make_class_keys(names, ['n1', 'n2', 'n3', 'n4'])
    order = ['missile [n3]', 'ark', 'missile [n1]', 'tank']
    assert order not in (keys, sorted(keys))
    text = {'missile [n1]': 'a rocket', 'tank': 'armour',
            'missile [n3]': 'a projectile', 'ark': ['a boat', 'wooden']}
    path = _write(tmp_path, {k: text[k] for k in order})
    assert list(json.loads(path.read_text())) == order
    assert load_descriptions(path, names, class_keys=keys) == [
        ['a rocket'], ['armour'], ['a projectile'], ['a boat', 'wooden']]


def test_the_extra_key_hint_names_the_config_key(tmp_path):
    path = _write(tmp_path, {'cat': 'a', 'dog': 'b', 'bird': 'c',
                             'cow': 'moo'})
    with pytest.raises(UnknownDescriptionKeyError) as err:
        load_descriptions(path, CLASSES)
    assert str(err.value).endswith(
        ' Set model.allow_extra_description_keys=True in the config to '
        'ignore them.')
    assert '\n' not in str(err.value)


def test_relative_paths_resolve_against_the_prompts_folder(
        tmp_path, monkeypatch):
    _write(tmp_path, {'cat': 'a', 'dog': 'b', 'bird': 'c'}, 'mine.json')
    monkeypatch.setattr(descriptions_module, 'PROMPTS_DIR', tmp_path)
    assert resolve_description_path('mine.json') == tmp_path / 'mine.json'
    assert load_descriptions('mine.json', CLASSES)[1] == ['b']
    with pytest.raises(FileNotFoundError, match='nope.json'):
        load_descriptions('nope.json', CLASSES)


@pytest.mark.parametrize('key, n', [('iwildcam', 182), ('fmow', 62),
                                    ('imagenet', 1000)])
def test_shipped_files_match_their_class_lists(key, n):
    classnames = pytest.importorskip('drm_mm.datasets.classnames')
    from drm_mm.prompts import default_class_keys
    names = classnames.get_classnames(key)
    descs = load_descriptions(f'{key}.json', names,
                              class_keys=default_class_keys(key, names))
    assert len(descs) == len(names) == n

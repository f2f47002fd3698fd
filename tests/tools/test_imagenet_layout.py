"""Tiny ImageNet-family folders come out in their published layouts."""
from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from PIL import Image

from tools.dataset_tools.imagenet_layout import (write_imagenet,
                                                 write_imagenet_a,
                                                 write_imagenet_r,
                                                 write_imagenet_sketch,
                                                 write_imagenet_v2,
                                                 write_objectnet)

WNIDS = ('n01440764', 'n01443537', 'n01484850')


def _files(folder: pathlib.Path) -> list:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob('*')
                  if p.is_file())


def test_fake_imagenet_root(fake_imagenet_root) -> None:
    root = pathlib.Path(fake_imagenet_root)
    assert sorted(p.name for p in (root / 'train').iterdir()) == sorted(
        p.name for p in (root / 'val').iterdir())
    train = sorted((root / 'train').rglob('*.JPEG'))
    val = sorted((root / 'val').rglob('*.JPEG'))
    assert len(train) == len(val) > 0
    with Image.open(train[0]) as image:
        assert image.format == 'JPEG' and image.size == (32, 32)


def test_imagenet_layout(tmp_path) -> None:
    root = write_imagenet(tmp_path, WNIDS, per_class=2, size=(20, 16))
    assert root == tmp_path
    assert _files(tmp_path) == sorted(
        [f'train/{w}/{w}_{k}.JPEG' for w in WNIDS for k in range(2)] +
        [f'val/{w}/ILSVRC2012_val_{2 * i + k + 1:08d}.JPEG'
         for i, w in enumerate(WNIDS) for k in range(2)])
    with Image.open(tmp_path / 'val' / WNIDS[0] /
                    'ILSVRC2012_val_00000001.JPEG') as image:
        assert image.size == (20, 16) and image.mode == 'RGB'
    write_imagenet(tmp_path / 'v', WNIDS, per_class=1, splits=('val',))
    assert [p.name for p in (tmp_path / 'v').iterdir()] == ['val']


def test_imagenet_is_deterministic(tmp_path) -> None:
    a = write_imagenet(tmp_path / 'a', WNIDS, per_class=1, seed=7)
    b = write_imagenet(tmp_path / 'b', WNIDS, per_class=1, seed=7)
    for rel in _files(a):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()


def test_imagenet_v2_layout(tmp_path) -> None:
    base = write_imagenet_v2(tmp_path, n_classes=12, per_class=2)
    assert base == tmp_path / 'imagenetv2-matched-frequency-format-val'
    assert sorted(int(p.name) for p in base.iterdir()) == list(range(12))
    files = list(base.rglob('*'))
    jpegs = [p for p in files if p.is_file()]
    assert len(jpegs) == 24 and all(p.suffix == '.jpeg' for p in jpegs)


@pytest.mark.parametrize('writer, folder, pattern', [
    (write_imagenet_sketch, 'sketch', '{w}/sketch_{k}.JPEG'),
    (write_imagenet_r, 'imagenet-r', '{w}/art_{k}.jpg'),
    (write_imagenet_a, 'imagenet-a', '{w}/{k}.jpg'),
])
def test_variant_layouts(tmp_path, writer, folder, pattern) -> None:
    base = writer(tmp_path, WNIDS, per_class=2)
    assert base == tmp_path / folder
    assert _files(base) == sorted(pattern.format(w=w, k=k) for w in WNIDS
                                  for k in range(2))
    with Image.open(next(base.rglob('*.*'))) as image:
        assert image.format == 'JPEG'


@pytest.mark.parametrize('wnids, message', [
    ((), 'wnids is empty'),
    (('n01440764', 'n01440764'), 'duplicates'),
    (('tench',), 'not a WordNet id'),
])
def test_bad_wnids(tmp_path, wnids, message) -> None:
    with pytest.raises(ValueError, match=message):
        write_imagenet_r(tmp_path, wnids)


def _read_objectnet(base: pathlib.Path) -> dict:
    """Folder -> PyTorch ImageNet indices, resolved through all four files."""
    mappings = base / 'mappings'
    folder_to_label = json.loads(
        (mappings / 'folder_to_objectnet_label.json').read_text())
    label_to_names = json.loads(
        (mappings / 'objectnet_to_imagenet_1k.json').read_text())
    pytorch_to_line = json.loads(
        (mappings / 'pytorch_to_imagenet_2012_id.json').read_text())
    lines = (mappings / 'imagenet_to_label_2012_v2').read_text().splitlines()
    line_to_pytorch = {line: int(p) for p, line in pytorch_to_line.items()}
    name_to_pytorch = {name: line_to_pytorch[i] for i, name in enumerate(lines)}
    return {folder: [name_to_pytorch[n]
                     for n in label_to_names[label].split('; ')]
            for folder, label in folder_to_label.items()
            if label in label_to_names}


def test_objectnet_layout_and_mappings(tmp_path) -> None:
    classnames = ['tench', 'goldfish', 'analog clock', 'digital clock',
                  'banana']
    mapping = {
        'alarm_clock': ('Alarm clock', ['analog clock', 'digital clock']),
        'banana': ('Banana', ['banana']),
        'air_freshener': ('Air freshener', []),
    }
    base = write_objectnet(tmp_path, mapping, classnames, per_class=2)
    assert base == tmp_path / 'objectnet-1.0'
    images = sorted((base / 'images').rglob('*.png'))
    assert len(images) == 6
    assert {p.parent.name for p in images} == set(mapping)
    with Image.open(images[0]) as image:
        pixels = np.asarray(image.convert('RGB'))
    assert (pixels[0, :] == (255, 0, 0)).all()  # the red border
    assert (pixels[:, -1] == (255, 0, 0)).all()
    label_map = json.loads(
        (base / 'mappings' / 'objectnet_to_imagenet_1k.json').read_text())
    assert label_map == {'Alarm clock': 'analog clock; digital clock',
                         'Banana': 'banana'}
    pytorch_map = json.loads(
        (base / 'mappings' / 'pytorch_to_imagenet_2012_id.json').read_text())
    assert pytorch_map == {'0': 4, '1': 3, '2': 2, '3': 1, '4': 0}
    assert _read_objectnet(base) == {'alarm_clock': [2, 3], 'banana': [4]}


def test_objectnet_custom_permutation(tmp_path) -> None:
    classnames = ['a', 'b', 'c']
    base = write_objectnet(tmp_path, {'f': ('F', ['c'])}, classnames,
                           pytorch_to_2012=[1, 2, 0])
    lines = (base / 'mappings' / 'imagenet_to_label_2012_v2').read_text()
    assert lines == 'c\na\nb\n'
    assert _read_objectnet(base) == {'f': [2]}


@pytest.mark.parametrize('mapping, kwargs, message', [
    ({'f': ('F', ['zebra'])}, {}, 'absent from imagenet_classnames'),
    ({'f': ('F', ['a'])}, dict(pytorch_to_2012=[0, 0]), 'permutation'),
    ({}, {}, 'mapping is empty'),
    ({'f': ('F', ['a']), 'g': ('F', ['b'])}, {}, 'labels in mapping must be'),
])
def test_objectnet_rejects_bad_mapping(tmp_path, mapping, kwargs,
                                       message) -> None:
    with pytest.raises(ValueError, match=message):
        write_objectnet(tmp_path, mapping, ['a', 'b'], **kwargs)

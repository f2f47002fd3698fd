"""ImageNet family datasets on tiny folders in their published layouts."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from drm_mm.datasets.classnames import (class_subset_indices,
                                        get_classnames, imagenet_a_wnids,
                                        imagenet_r_wnids, imagenet_wnids)
from drm_mm.datasets.imagenet_a import ImageNetA
from drm_mm.datasets.imagenet_folder import ImageNetFolder
from tools.dataset_tools.imagenet_layout import (write_imagenet_a,
                                                 write_imagenet_r,
                                                 write_imagenet_sketch,
                                                 write_imagenet_v2,
                                                 write_objectnet)
from drm_mm.datasets.imagenet_r import ImageNetR
from drm_mm.datasets.imagenet_sketch import ImageNetSketch
from drm_mm.datasets.imagenet_v2 import ImageNetV2
from drm_mm.datasets.objectnet import ObjectNet
from drm_mm.datasets.transforms.crop_border import CropBorder

PIPELINE = [dict(type='LoadImageDraft'), dict(type='PackInputs')]


# ---------------------------------------------------------------- ImageNet


def test_imagenet_folder_labels_follow_sorted_wnids(fake_imagenet_root):
    ds = ImageNetFolder(data_root=str(fake_imagenet_root), split='val',
                        allow_missing_classes=True)
    n_wnids = len(list((fake_imagenet_root / 'val').iterdir()))
    assert len(ds) == 2 * n_wnids
    index = {w: i for i, w in enumerate(imagenet_wnids())}
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        wnid = info['img_path'].split('/')[-2]
        assert info['gt_label'] == index[wnid]
    assert ds.metainfo['classes'] == tuple(get_classnames('imagenet'))
    assert ds.test_mode
    assert not ImageNetFolder(data_root=str(fake_imagenet_root),
                              split='train',
                              allow_missing_classes=True).test_mode


def test_imagenet_missing_classes_are_an_error_by_default(fake_imagenet_root):
    with pytest.raises(ValueError) as err:
        ImageNetFolder(data_root=str(fake_imagenet_root), split='val')
    message = str(err.value)
    assert 'lacks 996 of 1000' in message
    assert imagenet_wnids()[4] in message  # first missing wnid named
    assert 'allow_missing_classes' in message


def test_unknown_class_folders_are_named(fake_imagenet_root, tmp_path):
    shutil.copytree(fake_imagenet_root / 'val', tmp_path / 'val')
    (tmp_path / 'val' / 'n99999999').mkdir()
    (tmp_path / 'val' / 'cats').mkdir()
    with pytest.raises(ValueError, match=r"\['cats', 'n99999999'\]"):
        ImageNetFolder(data_root=str(tmp_path), split='val',
                       allow_missing_classes=True)


def test_flat_val_folder_is_explained(fake_imagenet_root, tmp_path):
    (tmp_path / 'val').mkdir()
    for path in (fake_imagenet_root / 'val').rglob('*.JPEG'):
        shutil.copy(path, tmp_path / 'val' / path.name)
    with pytest.raises(ValueError, match='no class folders'):
        ImageNetFolder(data_root=str(tmp_path), split='val')


def test_missing_root_and_unknown_split(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / 'val')):
        ImageNetFolder(data_root=str(tmp_path), split='val')
    with pytest.raises(ValueError, match='train, val'):
        ImageNetFolder(data_root=str(tmp_path), split='test')


def test_empty_class_folder_is_not_silent(tmp_path):
    base = write_imagenet_a(tmp_path, imagenet_a_wnids(), per_class=1,
                            size=(4, 4))
    empty = imagenet_a_wnids()[7]
    for path in (base / empty).iterdir():
        path.unlink()
    with pytest.raises(ValueError, match=f'hold no images.*{empty}'):
        ImageNetA(data_root=str(tmp_path))
    assert len(ImageNetA(data_root=str(tmp_path),
                         allow_missing_classes=True)) == 199


# ------------------------------------------------------------- variants


def test_imagenet_v2_labels_are_folder_indices(tmp_path):
    write_imagenet_v2(tmp_path, n_classes=1000, per_class=1, size=(8, 8))
    ds = ImageNetV2(data_root=str(tmp_path), pipeline=PIPELINE)
    assert len(ds) == 1000
    for i in (0, 9, 10, 100, 999):
        info = ds.get_data_info(i)
        assert info['gt_label'] == int(info['img_path'].split('/')[-2])
    assert ds[5]['inputs'].shape == (3, 8, 8)


def test_imagenet_v2_unknown_folder(tmp_path):
    base = write_imagenet_v2(tmp_path, n_classes=3, per_class=1, size=(8, 8))
    (base / '1000').mkdir()
    with pytest.raises(ValueError, match=r"\['1000'\]"):
        ImageNetV2(data_root=str(tmp_path), allow_missing_classes=True)


def test_imagenet_sketch(tmp_path):
    wnids = list(imagenet_wnids()[10:13])
    write_imagenet_sketch(tmp_path, wnids, per_class=2)
    ds = ImageNetSketch(data_root=str(tmp_path), allow_missing_classes=True)
    assert len(ds) == 6
    assert sorted({ds.get_data_info(i)['gt_label'] for i in range(6)}) == [
        10, 11, 12]


@pytest.mark.parametrize('cls, writer, wnids, subset', [
    (ImageNetR, write_imagenet_r, imagenet_r_wnids, 'imagenet_r'),
    (ImageNetA, write_imagenet_a, imagenet_a_wnids, 'imagenet_a')])
def test_subsets_label_by_subset_position(tmp_path, cls, writer, wnids,
                                          subset):
    writer(tmp_path, wnids(), per_class=1, size=(8, 8))
    ds = cls(data_root=str(tmp_path))
    assert len(ds) == 200
    meta = ds.metainfo
    assert meta['class_subset'] == class_subset_indices(subset)
    assert list(meta['classes']) == get_classnames(subset)
    for i in (0, 57, 199):
        info = ds.get_data_info(i)
        wnid = info['img_path'].split('/')[-2]
        assert info['gt_label'] == list(wnids()).index(wnid)
        assert imagenet_wnids()[meta['class_subset'][info['gt_label']]] == wnid


def test_subset_rejects_non_subset_class(tmp_path):
    wnids = list(imagenet_r_wnids()[:2])
    outside = next(w for w in imagenet_wnids() if w not in imagenet_r_wnids())
    write_imagenet_r(tmp_path, wnids + [outside], per_class=1)
    with pytest.raises(ValueError, match=outside):
        ImageNetR(data_root=str(tmp_path), allow_missing_classes=True)


# ---------------------------------------------------------------- ObjectNet

FAKE_NAMES = [f'imagenet class {i}' for i in range(1000)]
OBJECTNET_MAPPING = {
    'air_freshener': ('Air freshener', []),  # no ImageNet counterpart
    'alarm_clock': ('Alarm clock', [FAKE_NAMES[409]]),
    'bench': ('Bench', [FAKE_NAMES[703], FAKE_NAMES[706]]),
    'banana': ('Banana', [FAKE_NAMES[954]]),
}


@pytest.fixture
def objectnet_root(tmp_path):
    write_objectnet(tmp_path, OBJECTNET_MAPPING, FAKE_NAMES, per_class=2,
                    size=(12, 10))
    return tmp_path


def test_objectnet_mapping_folds_the_right_classes(objectnet_root):
    ds = ObjectNet(data_root=str(objectnet_root))
    meta = ds.metainfo
    # Mapped folders in sorted order; the pytorch->2012 mapping is reversed
    # by the writer, so reading it wrong would give 1000-1-i.
    assert meta['folders'] == ('alarm_clock', 'banana', 'bench')
    assert meta['classes'] == ('alarm clock', 'banana', 'bench')
    assert meta['class_folding'] == [[409], [954], [703, 706]]
    assert len(ds) == 6
    labels = {ds.get_data_info(i)['img_path'].split('/')[-2]:
              ds.get_data_info(i)['gt_label'] for i in range(len(ds))}
    assert labels == {'alarm_clock': 0, 'banana': 1, 'bench': 2}


def test_objectnet_border_is_cropped(objectnet_root):
    ds = ObjectNet(data_root=str(objectnet_root), pipeline=PIPELINE)
    assert any(isinstance(t, CropBorder) for t in ds.pipeline.transforms)
    image = ds[0]['inputs']
    assert tuple(image.shape) == (3, 8, 10)  # 1 px off each side of 12x10
    raw = ObjectNet(data_root=str(objectnet_root), pipeline=PIPELINE,
                    border=0)[0]['inputs']
    assert tuple(raw.shape) == (3, 10, 12)
    # The writer paints a red frame (BGR: red is channel 2).
    assert (raw[2, 0, :] == 255).all() and (raw[0, 0, :] == 0).all()
    np.testing.assert_array_equal(image.numpy(), raw.numpy()[:, 1:-1, 1:-1])
    two = ObjectNet(data_root=str(objectnet_root), pipeline=PIPELINE,
                    border=2)[0]['inputs']
    assert tuple(two.shape) == (3, 6, 8)


def test_objectnet_unknown_folder_and_missing_mapping(objectnet_root):
    images = objectnet_root / 'objectnet-1.0' / 'images'
    (images / 'spaceship').mkdir()
    with pytest.raises(ValueError, match='spaceship'):
        ObjectNet(data_root=str(objectnet_root))
    (images / 'spaceship').rmdir()
    mapping = objectnet_root / 'objectnet-1.0' / 'mappings' / \
        'objectnet_to_imagenet_1k.json'
    mapping.unlink()
    with pytest.raises(FileNotFoundError,
                       match='objectnet_to_imagenet_1k.json'):
        ObjectNet(data_root=str(objectnet_root))


def test_objectnet_mapping_with_unknown_imagenet_name(objectnet_root):
    mapping = objectnet_root / 'objectnet-1.0' / 'mappings' / \
        'objectnet_to_imagenet_1k.json'
    data = json.loads(mapping.read_text())
    data['Banana'] = 'plantain of doom'
    mapping.write_text(json.dumps(data))
    with pytest.raises(ValueError, match='plantain of doom'):
        ObjectNet(data_root=str(objectnet_root))


def test_all_registered():
    import drm_mm.datasets.wilds_fmow  # noqa: F401
    import drm_mm.datasets.wilds_iwildcam  # noqa: F401
    from drm_mm.registry import DATASETS
    for name in ('ImageNetFolder', 'ImageNetV2', 'ImageNetSketch',
                 'ImageNetR', 'ImageNetA', 'ObjectNet', 'WILDSIWildCam',
                 'WILDSFMoW'):
        assert DATASETS.get(name).__name__ == name, name

"""ImageNet model selection: a fixed held-out part of train, never val."""
from __future__ import annotations

import os
import pathlib
import random

import pytest

from drm_mm.datasets.imagenet_folder import ImageNetFolder
from drm_mm.datasets.imagenet_holdout import HEADER
from tools.dataset_tools.imagenet_layout import write_imagenet

ROOT = pathlib.Path(__file__).resolve().parents[2]
WNIDS = ('n01440764', 'n01443537', 'n01484850')


@pytest.fixture
def root(tmp_path):
    write_imagenet(tmp_path, WNIDS, per_class=4, size=(8, 8))
    return tmp_path


def _entries(ds):
    return ['/'.join(ds.get_data_info(i)['img_path'].split(os.sep)[-2:])
            for i in range(len(ds))]


def test_holdout_and_fit_partition_train_with_a_seeded_per_class_draw(root):
    train = ImageNetFolder(data_root=str(root), split='train',
                           allow_missing_classes=True)
    held = ImageNetFolder(data_root=str(root), split='train_holdout',
                          holdout_per_class=1, allow_missing_classes=True)
    fit = ImageNetFolder(data_root=str(root), split='train_fit',
                         holdout_per_class=1, allow_missing_classes=True)
    assert sorted(_entries(held) + _entries(fit)) == sorted(_entries(train))
    assert not set(_entries(held)) & set(_entries(fit))
    assert held.test_mode and not fit.test_mode
    # one per class, drawn from the sorted list with Random('0/<wnid>')
    expected = []
    for wnid in WNIDS:
        files = sorted(os.listdir(root / 'train' / wnid))
        pick = random.Random(f'0/{wnid}').sample(files, 1)[0]
        expected.append(f'{wnid}/{pick}')
    assert _entries(held) == expected
    assert [held.get_data_info(i)['gt_label'] for i in range(3)] == [0, 1, 2]
    split_file = root / 'train_holdout_1pc_seed0.txt'
    assert split_file.read_text().splitlines() == [
        HEADER.format(k=1, s=0)] + expected


def test_split_is_written_once_and_read_back_unchanged(root):
    ImageNetFolder(data_root=str(root), split='train_holdout',
                   holdout_per_class=1, allow_missing_classes=True)
    first = (root / 'train_holdout_1pc_seed0.txt').read_text()
    # a new image appears: the written split does not change
    extra = root / 'train' / WNIDS[0] / 'aaa_new.JPEG'
    extra.write_bytes((root / 'train' / WNIDS[0] / sorted(
        os.listdir(root / 'train' / WNIDS[0]))[0]).read_bytes())
    again = ImageNetFolder(data_root=str(root), split='train_holdout',
                           holdout_per_class=1, allow_missing_classes=True)
    assert (root / 'train_holdout_1pc_seed0.txt').read_text() == first
    assert '\n'.join([HEADER.format(k=1, s=0)] + _entries(again)) + '\n' \
        == first
    other = ImageNetFolder(data_root=str(root), split='train_holdout',
                           holdout_per_class=2, holdout_seed=3,
                           allow_missing_classes=True)
    assert len(other) == 6


def test_bad_holdout_settings_are_explained(root):
    with pytest.raises(ValueError, match='holdout_per_class=4'):
        ImageNetFolder(data_root=str(root), split='train_holdout',
                       holdout_per_class=4, allow_missing_classes=True)
    with pytest.raises(ValueError, match='holdout_per_class must be an int'):
        ImageNetFolder(data_root=str(root), split='train_fit',
                       holdout_per_class=0)
    wrong = root / 'wrong.txt'
    wrong.write_text('n01440764/x.JPEG\n')
    with pytest.raises(ValueError, match='wrong.txt: first line must be'):
        ImageNetFolder(data_root=str(root), split='train_holdout',
                       holdout_file=str(wrong), allow_missing_classes=True)


def test_imagenet_configs_select_on_the_holdout_not_on_a_reported_set():
    from mmengine.config import Config
    for name in ('vitb16_imagenet', 'vitl14_imagenet', 'vitl14-336_imagenet'):
        cfg = Config.fromfile(str(ROOT / 'configs' / 'drm' / f'{name}.py'))
        assert cfg.default_hooks.checkpoint.save_best == \
            'imagenet_holdout/accuracy'
        assert cfg.train_dataloader.dataset.split == 'train_fit'
        val_sets = [k for k, v in cfg.val_dataloader.items()
                    if isinstance(v, dict) and 'dataset' in v]
        assert val_sets == ['imagenet_holdout']
        assert cfg.val_dataloader.imagenet_holdout.dataset.split == \
            'train_holdout'
        assert 'imagenet_holdout' not in cfg.test_dataloader


def test_default_holdout_is_ten_per_class_seed_0(tmp_path):
    write_imagenet(tmp_path, WNIDS, per_class=12, size=(8, 8))
    held = ImageNetFolder(data_root=str(tmp_path), split='train_holdout',
                          allow_missing_classes=True)
    fit = ImageNetFolder(data_root=str(tmp_path), split='train_fit',
                         allow_missing_classes=True)
    assert len(held) == 30 and len(fit) == 6
    split_file = tmp_path / 'train_holdout_10pc_seed0.txt'
    assert split_file.read_text().splitlines()[0] == HEADER.format(k=10, s=0)
    wnid = WNIDS[0]
    files = sorted(os.listdir(tmp_path / 'train' / wnid))
    expected = sorted(random.Random(f'0/{wnid}').sample(files, 10))
    assert sorted(e.split('/')[1] for e in _entries(held)
                  if e.startswith(wnid)) == expected

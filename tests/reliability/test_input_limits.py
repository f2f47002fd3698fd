"""Bad values and resource limits, each a one-line error naming the file or
key: image bombs, 16-bit PNGs and empty images (LoadImageDraft); deeply
nested, latin-1, binary and huge description files; λ NaN / inf / not a
number; ``max_epochs=0``; the divergence error without any checkpoint."""
import json
import math

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from PIL import Image

import _reliability_helpers as H  # loaded by this folder's conftest.py
from drm_mm.datasets.transforms import (CorruptImageError,
                                        ImageTooLargeError, LoadImageDraft)
from drm_mm.engine.hooks import DivergenceError, DivergenceGuardHook
from drm_mm.models.losses import DualRiskLoss
from drm_mm.prompts.descriptions import (InvalidDescriptionError,
                                         load_descriptions)


def _load(path, **kwargs):
    return LoadImageDraft(**kwargs).transform(dict(img_path=str(path)))


def test_image_bomb_refused_before_decoding(tmp_path):
    path = tmp_path / 'bomb.png'
    Image.new('L', (20000, 20000)).save(path)  # 400 M pixels, tiny file
    with pytest.raises(ImageTooLargeError) as err:
        _load(path)
    assert str(err.value) == (
        f'image {path} has 400000000 pixels, more than the limit of '
        '100000000 (maybe a decompression bomb): remove the file or raise '
        'LoadImageDraft(max_pixels=...).')
    wide = tmp_path / 'wide.png'
    Image.new('L', (1000, 2)).save(wide)  # under PIL's own limit
    with pytest.raises(ImageTooLargeError, match=r'wide.png has 2000 '
                       r'pixels, more than the limit of 1000 '):
        _load(wide, max_pixels=1000)
    small = tmp_path / 'small.png'
    Image.new('L', (40, 25)).save(small)
    assert _load(small, max_pixels=1000)['img'].shape == (25, 40, 3)
    with pytest.raises(ValueError, match='max_pixels must be a positive '
                       'integer, got 0'):
        LoadImageDraft(max_pixels=0)


def test_16bit_png_scaled_not_saturated(tmp_path):
    values = np.array([[0, 257 * 127, 65535, 32896]], dtype=np.uint16)
    path = tmp_path / 'grey16.png'
    Image.fromarray(values).save(path)
    img = _load(path)['img']
    assert img.dtype == np.uint8 and img.shape == (1, 4, 3)
    assert img[0, :, 0].tolist() == [0, 127, 255, 128]
    assert (img == img[..., :1]).all()  # grey in all three channels


def test_empty_image_names_the_file(tmp_path):
    path = tmp_path / 'empty.jpg'
    path.write_bytes(b'')
    with pytest.raises(CorruptImageError) as err:
        _load(path)
    assert str(err.value).startswith(
        f'cannot decode image {path}: EOFError: the file is empty (0 bytes).')


@pytest.mark.parametrize('content,expected', [
    (b'[' * 100000 + b']' * 100000,
     'JSON nested too deeply; the file must map class names to strings or '
     'lists of strings.'),
    ('{"caf\u00e9": "a cup"}'.encode('latin-1'),
     'not UTF-8 text (byte 0xe9 at offset 5); save it as UTF-8 JSON.'),
    (b'\x89PNG\r\n\x1a\n\x00\x00',
     'not UTF-8 text (byte 0x89 at offset 0); save it as UTF-8 JSON.'),
])
def test_bad_description_files_name_the_file(tmp_path, content, expected):
    path = tmp_path / 'desc.json'
    path.write_bytes(content)
    with pytest.raises(InvalidDescriptionError) as err:
        load_descriptions(str(path), ['café'])
    assert str(err.value) == f'{path}: {expected}'


def test_description_file_limits(tmp_path):
    path = tmp_path / 'desc.json'
    path.write_text(json.dumps({f'c{i}': ['x', 'y'] for i in range(30)}))
    with pytest.raises(InvalidDescriptionError) as err:
        load_descriptions(str(path), ['c0'], max_entries=59)
    assert str(err.value) == (f'{path}: 60 descriptions, more than the limit '
                              'of 59 (max_entries).')
    size = path.stat().st_size
    with pytest.raises(InvalidDescriptionError) as err:
        load_descriptions(str(path), ['c0'], max_bytes=100)
    assert str(err.value) == (
        f'{path}: {size} bytes, more than the limit of 100 (max_bytes); a '
        'description file is a few hundred KB.')
    names = [f'c{i}' for i in range(30)]
    assert load_descriptions(str(path), names, max_entries=60)[0] == [
        'x', 'y']


@pytest.mark.parametrize('value', [math.nan, math.inf, -math.inf, '1.0',
                                   None, True])
def test_lambda_must_be_a_finite_number(value):
    with pytest.raises(ValueError) as err:
        DualRiskLoss(wrm_weight=value)
    assert str(err.value) == ('DualRiskLoss.wrm_weight (lambda) must be >= 0 '
                              f'and a finite number, got {value!r}.')


def test_max_epochs_zero_is_a_clear_error(tmp_path):
    runner = H.toy_runner(tmp_path, max_epochs=0)
    with pytest.raises(ValueError) as err:
        runner.train()
    assert str(err.value) == ('train_cfg.max_epochs must be a positive '
                              'integer, got 0.')


def test_divergence_error_without_a_checkpoint_says_so(tmp_path):
    runner = H.toy_runner(tmp_path, max_epochs=1, lr=math.inf,
                          custom_hooks=[DivergenceGuardHook()])
    with pytest.raises(DivergenceError) as err:
        runner.train()
    assert 'training stopped before the update, so no checkpoint was ' \
        'saved yet.' in str(err.value)
    assert 'is the last good one' not in str(err.value)
    assert not list(tmp_path.glob('*.pth'))


class _PoisonWeights(Hook):
    """NaN weights before the first iteration of epoch 2."""

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == 4:
            runner.model.fc.weight.data.fill_(math.nan)


def test_divergence_error_names_the_last_checkpoint(tmp_path):
    runner = H.toy_runner(tmp_path, max_epochs=2, custom_hooks=[
        DivergenceGuardHook(), _PoisonWeights()])
    with pytest.raises(DivergenceError) as err:
        runner.train()
    assert (f'the last checkpoint, {tmp_path / "epoch_1.pth"}, is the last '
            'good one') in str(err.value)
    assert torch.isfinite(H.load_checkpoint(tmp_path / 'epoch_1.pth')[
        'state_dict']['fc.weight']).all()

"""open_clip adapter: tags, local files, offline errors, safety."""
import os

import pytest
import torch

from drm_mm.models.clip import build_open_clip, build_tokenizer


@pytest.fixture(scope='module')
def tiny_weights(tmp_path_factory):
    torch.manual_seed(0)
    model = build_open_clip('drm-tiny-vit')
    path = tmp_path_factory.mktemp('w') / 'tiny.pt'
    torch.save(model.state_dict(), path)
    return model, path


def test_random_init_and_local_file_roundtrip(tiny_weights):
    model, path = tiny_weights
    loaded = build_open_clip('drm-tiny-vit', pretrained=str(path))
    for (k, a), b in zip(model.state_dict().items(),
                         loaded.state_dict().values()):
        assert torch.equal(a, b), k


def test_tokenizer_offline():
    tokens = build_tokenizer('drm-tiny-vit')(['a photo of a cat.'])
    assert tokens.shape == (1, 32) and tokens.dtype == torch.long


def test_unknown_architecture():
    with pytest.raises(ValueError, match='Unknown open_clip architecture'):
        build_open_clip('ViT-Z-99')


def test_unknown_tag_lists_known_tags():
    with pytest.raises(ValueError, match="known tags: .*'openai'"):
        build_open_clip('ViT-B-16', pretrained='not_a_tag')


def test_missing_file_named(tmp_path):
    missing = tmp_path / 'nope.pt'
    with pytest.raises(FileNotFoundError, match='nope.pt'):
        build_open_clip('drm-tiny-vit', pretrained=str(missing))


def test_mismatching_file_names_keys(tmp_path, tiny_weights):
    model, _ = tiny_weights
    state = model.state_dict()
    state['visual.extra_weight'] = torch.zeros(1)
    del state['ln_final.weight']
    path = tmp_path / 'other.pt'
    torch.save(state, path)
    with pytest.raises(ValueError) as err:
        build_open_clip('drm-tiny-vit', pretrained=str(path))
    assert 'ln_final.weight' in str(err.value)
    assert 'visual.extra_weight' in str(err.value)


def test_shape_mismatch_names_key(tmp_path, tiny_weights):
    model, _ = tiny_weights
    state = dict(model.state_dict())
    state['text_projection'] = torch.zeros(3, 3)
    path = tmp_path / 'shape.pt'
    torch.save(state, path)
    with pytest.raises(ValueError, match='text_projection'):
        build_open_clip('drm-tiny-vit', pretrained=str(path))


@pytest.mark.parametrize('force_unsafe_env', [False, True])
def test_crafted_pickle_refused(tmp_path, monkeypatch, force_unsafe_env):
    if force_unsafe_env:
        monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    marker = tmp_path / 'pwned'

    class Payload:

        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    path = tmp_path / 'evil.pt'
    torch.save({'visual.x': Payload()}, path)
    with pytest.raises(RuntimeError) as err:
        build_open_clip('drm-tiny-vit', pretrained=str(path))
    assert not marker.exists()
    message = str(err.value)
    assert '\n' not in message  # one line
    assert message.startswith(f'Refused to load pretrained file '
                              f'{str(path)!r}: global posix.system is not '
                              f'allowed. ')
    assert 'weights_only=False' not in message


def test_tag_without_network_says_what_to_do(monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    with pytest.raises(RuntimeError) as err:
        build_open_clip('RN50', pretrained='openai')
    msg = str(err.value)
    assert 'HF_HUB_OFFLINE=1' in msg and 'local path' in msg
    assert 'timm/' in msg  # names the hub repo holding the file

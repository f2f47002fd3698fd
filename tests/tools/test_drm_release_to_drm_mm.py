"""tools/model_converters/drm_release_to_drm_mm.py on pickles built here from
stand-in classes with the qualified names of the authors' code
(``src.models.modeling.CLIPEncoder`` holding a ``clip_m.model.CLIP`` in the
OpenAI state-dict layout of a tiny model, plus torchvision preprocessing)."""
from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys
import types

import pytest
import torch
from torch import nn

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOL = ROOT / 'tools' / 'model_converters' / 'drm_release_to_drm_mm.py'
SMOKE = 'configs/smoke/drm_tiny_fake_iwildcam.py'


def _tool():
    spec = importlib.util.spec_from_file_location('drm_release_to_drm_mm',
                                                  TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _AuthorsCode:
    """Fake modules ``src.models.modeling`` / ``clip_m.model`` / ``clip_m.clip``
    with classes of the authors' names (only while pickling)."""

    def __init__(self, monkeypatch):
        self.mp = monkeypatch

    def module(self, name):
        parts = name.split('.')
        for i in range(1, len(parts) + 1):
            sub = '.'.join(parts[:i])
            if sub not in sys.modules:
                self.mp.setitem(sys.modules, sub, types.ModuleType(sub))
        return sys.modules[name]

    def cls(self, module, name, base=nn.Module):
        cls = type(name, (base, ), {'__module__': module,
                                     '__qualname__': name})
        self.mp.setattr(self.module(module), name, cls, raising=False)
        return cls

    def function(self, module, name):
        def fn(image):
            return image
        fn.__module__, fn.__qualname__, fn.__name__ = module, name, name
        self.mp.setattr(self.module(module), name, fn, raising=False)
        return fn


def _empty(cls):
    obj = cls.__new__(cls)
    nn.Module.__init__(obj)
    return obj


def tiny_openai_state(seed=0):
    """A tiny CLIP's weights (open_clip shares OpenAI's key layout)."""
    from drm_mm.models.clip import OpenCLIP
    torch.manual_seed(seed)
    clip = OpenCLIP('drm-tiny-vit')
    with torch.no_grad():
        clip.model.logit_scale.fill_(4.9)  # exp > 100: unclamped at eval
    return {k: v.detach().clone() for k, v in clip.model.state_dict().items()}


#: What a release's CLIP holds besides its weights: the entries OpenAI's
#: JIT archive keeps beside them, and a non-persistent buffer.
JIT_ONLY = {'input_resolution': 32, 'context_length': 77, 'vocab_size': 49408}


def authors_encoder(code, state, half=(), extras=True):
    """``CLIPEncoder`` as the release pickles it, built from ``state``;
    ``extras``: with the JIT-only entries (buffers) and a non-persistent
    ``attn_mask`` buffer, none of which the converter may keep."""
    names = {'': 'CLIP', 'visual': 'VisionTransformer',
             'transformer': 'Transformer', 'visual.transformer': 'Transformer'}
    classes = {n: code.cls('clip_m.model', n) for n in set(names.values())}
    block = code.cls('clip_m.model', 'ResidualAttentionBlock')
    layer_norm = code.cls('clip_m.model', 'LayerNorm', nn.LayerNorm)
    gelu = code.cls('clip_m.model', 'QuickGELU')
    real = {'conv1': nn.Conv2d, 'token_embedding': nn.Embedding,
            'c_fc': nn.Linear, 'c_proj': nn.Linear, 'out_proj': nn.Linear,
            'attn': nn.MultiheadAttention, 'resblocks': nn.Sequential,
            'mlp': nn.Sequential}
    root = _empty(classes['CLIP'])
    for key, value in state.items():
        *path, leaf = key.split('.')
        node = root
        for i, part in enumerate(path):
            if part not in node._modules:
                where = '.'.join(path[:i + 1])
                if where in names:
                    cls = classes[names[where]]
                elif part.isdigit():
                    cls = block
                elif part.startswith('ln'):
                    cls = layer_norm
                else:
                    cls = real[part]
                node.add_module(part, _empty(cls))
                if part == 'mlp':
                    node._modules[part].add_module('gelu', _empty(gelu))
            node = node._modules[part]
        tensor = value.half() if key in half else value.clone()
        node.register_parameter(leaf, nn.Parameter(tensor))
    if extras:
        for key, value in JIT_ONLY.items():
            root.register_buffer(key, torch.tensor(value))
        root.register_buffer('attn_mask', torch.full((3, 3), -1.0),
                             persistent=False)
    from torchvision import transforms as T
    encoder = _empty(code.cls('src.models.modeling', 'CLIPEncoder'))
    encoder.model = root
    encoder.train_preprocess = T.Compose([
        T.Resize(32, interpolation=T.InterpolationMode.BICUBIC),
        T.CenterCrop(32), code.function('clip_m.clip', '_convert_image_to_rgb'),
        T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))])
    encoder.val_preprocess = encoder.train_preprocess
    encoder.cache_dir = None
    return encoder


def test_release_pickle_converts_to_the_same_tensors(tmp_path, monkeypatch):
    state = tiny_openai_state()
    src = tmp_path / 'iwildcam_drm.pt'
    torch.save(authors_encoder(_AuthorsCode(monkeypatch), state,
                               half={'visual.conv1.weight'}), src)
    monkeypatch.undo()  # the authors' classes are gone when converting
    assert 'clip_m.model' not in sys.modules
    out = tmp_path / 'converted.pth'
    assert _tool().main([str(src), str(out)]) == 0
    ckpt = torch.load(out, weights_only=True)
    assert ckpt['meta']['source_class'] == 'CLIPEncoder'
    assert ckpt['meta']['activation'] == 'quick_gelu'
    converted = ckpt['state_dict']
    # the JIT-only entries and the non-persistent buffer are not weights
    assert list(converted) == [f'clip.model.{k}' for k in state]
    assert not set(JIT_ONLY) & set(state) and 'attn_mask' not in state
    for key, value in state.items():
        got = converted[f'clip.model.{key}']
        assert got.dtype == torch.float32
        if key == 'visual.conv1.weight':
            assert torch.equal(got, value.half().float())
        else:
            assert torch.equal(got, value)


def test_config_check_names_mismatches(tmp_path, monkeypatch, capsys):
    state = tiny_openai_state()
    del state['ln_final.bias']
    src = tmp_path / 'release.pt'
    torch.save(authors_encoder(_AuthorsCode(monkeypatch), state), src)
    monkeypatch.undo()
    assert _tool().main([str(src), str(tmp_path / 'o.pth'), '--config',
                         SMOKE]) == 1
    err = capsys.readouterr().err
    assert err.count('\n') == 1
    assert "missing ['clip.model.ln_final.bias']" in err


def _release(tmp_path, monkeypatch, extra=None, depth=0):
    """A release file; ``extra``: one more parameter (name -> tensor);
    ``depth``: a chain of that many nested modules under the CLIP."""
    state = tiny_openai_state()
    code = _AuthorsCode(monkeypatch)
    encoder = authors_encoder(code, state)
    if extra:
        for key, value in extra.items():
            encoder.model.register_parameter(key, nn.Parameter(value))
    node = encoder.model
    nested = code.cls('clip_m.model', 'Nested')
    for _ in range(depth):
        child = _empty(nested)
        node.add_module('nested', child)
        node = child
    src = tmp_path / 'release.pt'
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20 * depth))
    try:
        torch.save(encoder, src)
    finally:
        sys.setrecursionlimit(limit)
    monkeypatch.undo()
    return src


@pytest.mark.parametrize('key', ['\u00b2', 'a\ud800b'])
def test_non_ascii_parameter_names_are_one_line_errors(tmp_path, monkeypatch,
                                                        capsys, key):
    src = _release(tmp_path, monkeypatch, extra={key: torch.zeros(2)})
    assert _tool().main([str(src), str(tmp_path / 'o.pth')]) == 1
    err = capsys.readouterr().err
    assert err == (f'error: {src}: the CLIP module has a parameter named '
                   f"{ascii(key)}, not an ASCII name of a CLIP weight: this "
                   "file is not a DRM release (pass the authors' .pt "
                   'file).\n')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['release.pt']


def test_deeply_nested_pickle_is_a_one_line_error(tmp_path, monkeypatch,
                                                  capsys):
    src = _release(tmp_path, monkeypatch, depth=3000)
    assert _tool().main([str(src), str(tmp_path / 'o.pth')]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f'error: {src}: the pickled objects nest deeper')
    assert err.count('\n') == 1 and 'RecursionError' in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['release.pt']


def test_output_directory_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    src = _release(tmp_path, monkeypatch)
    (tmp_path / 'out').mkdir()
    assert _tool().main([str(src), str(tmp_path / 'out'), '--force']) == 1
    assert capsys.readouterr().err == (
        f'error: {tmp_path / "out"} is a directory; pass the .pth file to '
        'write.\n')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out',
                                                          'release.pt']
    assert list((tmp_path / 'out').iterdir()) == []


def _small_disk():
    """Files of this process may not grow past 64 KiB (as a full disk:
    writes fail with EFBIG; Python ignores SIGXFSZ)."""
    import resource
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))


def test_full_disk_is_a_one_line_error_and_leaves_no_tmp(tmp_path,
                                                         monkeypatch):
    src = _release(tmp_path, monkeypatch)
    out = tmp_path / 'o.pth'
    proc = subprocess.run([sys.executable, str(TOOL), str(src), str(out)],
                          env=_env(), capture_output=True, text=True,
                          preexec_fn=_small_disk, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert 'Traceback' not in proc.stderr
    last = proc.stderr.splitlines()[-1]  # after import warnings, if any
    assert last.startswith(f'error: cannot write the checkpoint {out} (')
    assert last.endswith('free disk space or choose another path.')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['release.pt']


class _Evil:
    def __reduce__(self):
        return (os.system, ('touch PWNED',))


@pytest.mark.parametrize('payload,name', [
    ({'model': _Evil()}, 'system'),
    ({'x': __builtins__['eval'] if isinstance(__builtins__, dict)
      else __builtins__.eval}, 'builtins.eval'),
])
def test_code_in_the_pickle_is_refused(tmp_path, capsys, payload, name):
    src = tmp_path / 'evil.pt'
    torch.save(payload, src)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert _tool().main([str(src), str(tmp_path / 'o.pth')]) == 1
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1
    assert 'refusing to load the global' in err and name in err
    assert not (tmp_path / 'PWNED').exists()
    assert not (tmp_path / 'o.pth').exists()


def test_file_without_a_clip_is_explained(tmp_path, capsys):
    src = tmp_path / 'plain.pt'
    torch.save({'weight': torch.zeros(2)}, src)
    assert _tool().main([str(src), str(tmp_path / 'o.pth')]) == 1
    assert 'expected one CLIP module' in capsys.readouterr().err


def _env():
    env = dict(os.environ, HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = str(ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    return env


def _test_tool(args, data_root):
    out = subprocess.run(
        [sys.executable, 'tools/test.py', SMOKE] + args + [
            '--cfg-options', f'test_dataloader.dataset.data_root={data_root}',
            f'val_dataloader.dataset.data_root={data_root}',
            f'train_dataloader.dataset.data_root={data_root}'],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]


@pytest.mark.slow
def test_tools_test_on_converted_file_predicts_as_the_original_weights(
        tmp_path, monkeypatch, fake_iwildcam_root):
    from mmengine.fileio import load
    state = tiny_openai_state()
    original = tmp_path / 'original_open_clip.pt'
    torch.save(state, original)
    src = tmp_path / 'release.pt'
    torch.save(authors_encoder(_AuthorsCode(monkeypatch), state), src)
    monkeypatch.undo()
    converted = tmp_path / 'converted.pth'
    assert _tool().main([str(src), str(converted), '--config', SMOKE]) == 0
    # original weights: the plain state dict as the CLIP's pretrained file
    _test_tool(['none', '--work-dir', str(tmp_path / 'a'), '--out',
                str(tmp_path / 'a.pkl'), '--cfg-options',
                f'model.clip.pretrained={original}'], fake_iwildcam_root)
    _test_tool([str(converted), '--work-dir', str(tmp_path / 'b'), '--out',
                str(tmp_path / 'b.pkl')], fake_iwildcam_root)
    a = load(str(tmp_path / 'a.pkl'))  # our own tools/test.py output
    b = load(str(tmp_path / 'b.pkl'))
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert x['img_path'] == y['img_path']
        assert torch.equal(x['pred_score'], y['pred_score'])
        assert torch.equal(x['pred_label'], y['pred_label'])

"""Bad-input sweep: every bad input named in the issues gives its own error
whose message names the file / key / class at fault and says how to fix
it; the command-line runs leave nothing in the work dir that a later run
could take for a result (no ``*.pth``, no ``last_checkpoint``).

In-process cases are a table (one row per bad input); the CLI cases run
``tools/train.py`` in subprocesses, a few at a time. Component tests cover
more variants of some rows (tests/datasets, tests/prompts, tests/engine).
"""
import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Tuple, Type

import pytest
import torch

import _reliability_helpers as H  # loaded by this folder's conftest.py

TINY = dict(type='OpenCLIP', model_name='drm-tiny-vit', pretrained=None)
NAMES = ['empty', 'white-lipped peccary', 'cougar']


class Ctx:
    """What the cases need: a scratch folder and the fake data roots."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path):
        self.request = request
        self.tmp = tmp_path

    def root(self, name: str) -> Path:
        return self.request.getfixturevalue(f'fake_{name}_root')

    def desc_file(self, content: dict) -> Path:
        path = self.tmp / 'bad_descriptions.json'
        path.write_text(json.dumps(content))
        return path


class Case(NamedTuple):
    run: Callable[[Ctx], object]
    error: Type[BaseException]
    patterns: Tuple[str, ...]  # each must be found in the message


def _good_descriptions() -> Dict[str, List[str]]:
    shipped = json.loads((H.REPO / 'drm_mm' / 'prompts' /
                          'iwildcam.json').read_text())
    return {k: shipped[k] for k in NAMES}


def _classifier(**kwargs):
    from drm_mm.registry import MODELS
    cfg = dict(type='DRMClassifier', clip=TINY, classnames=NAMES,
               templates='iwildcam', descriptions=_good_descriptions())
    cfg.update(kwargs)
    return MODELS.build(cfg)


# ------------------------------------------------------------------ data

def _iwildcam(**kwargs):
    from drm_mm.datasets.wilds_iwildcam import WILDSIWildCam
    return WILDSIWildCam(**kwargs)


def _no_release(ctx: Ctx):
    root = ctx.tmp / 'copy'
    shutil.copytree(ctx.root('iwildcam'), root)
    (root / 'iwildcam_v2.0' / 'RELEASE_v2.0.txt').unlink()
    return _iwildcam(data_root=str(root), split='train')


def _fmow_missing(ctx: Ctx):
    from drm_mm.datasets.wilds_fmow import WILDSFMoW
    return WILDSFMoW(data_root=str(ctx.tmp / 'no_fmow'), split='train')


def _imagenet_missing(ctx: Ctx):
    from drm_mm.datasets.imagenet_folder import ImageNetFolder
    return ImageNetFolder(data_root=str(ctx.tmp / 'no_imagenet'))


def _imagenet_unknown_split(ctx: Ctx):
    from drm_mm.datasets.imagenet_folder import ImageNetFolder
    return ImageNetFolder(data_root=str(ctx.root('imagenet')), split='tain')


def _corrupt_jpeg(ctx: Ctx):
    from drm_mm.datasets.transforms.load_image_draft import LoadImageDraft
    image = next((ctx.root('iwildcam') / 'iwildcam_v2.0' /
                  'train').glob('*.jpg'))
    broken = ctx.tmp / 'broken.jpg'
    broken.write_bytes(image.read_bytes()[:300])
    return LoadImageDraft()(dict(img_path=str(broken)))


def _skip_corrupt_on_eval(ctx: Ctx):
    return _iwildcam(data_root=str(ctx.root('iwildcam')), split='test',
                     skip_corrupt=True,
                     pipeline=[dict(type='LoadImageDraft')])


def _imagenet_r_unknown_class(ctx: Ctx):
    from drm_mm.datasets.classnames import imagenet_r_wnids
    from tools.dataset_tools.imagenet_layout import write_imagenet_r
    from drm_mm.datasets.imagenet_r import ImageNetR
    write_imagenet_r(ctx.tmp, list(imagenet_r_wnids()[:2]) + ['n99999999'],
                     per_class=1, size=(8, 8))
    return ImageNetR(data_root=str(ctx.tmp), allow_missing_classes=True)


# ------------------------------------------------------------ prompts

def _descriptions(ctx: Ctx, edit: Callable[[dict], None]):
    from drm_mm.prompts import load_descriptions
    content = _good_descriptions()
    edit(content)
    return load_descriptions(str(ctx.desc_file(content)), NAMES)


# --------------------------------------------------------- checkpoints

def _toy_rn():
    """The toy project's ResNet CLIP, another architecture than the tiny
    ViT (importing the project registers drm-toy-rn with open_clip)."""
    import projects.toy_world.toy_world  # noqa: F401
    from drm_mm.models.clip.open_clip_model import OpenCLIP
    return OpenCLIP(model_name='drm-toy-rn')


def _two_architectures():
    from drm_mm.models.clip.open_clip_model import OpenCLIP
    vit = OpenCLIP(model_name='drm-tiny-vit').state_dict()
    return vit, _toy_rn().state_dict()


def _wise_ft_mismatch(ctx: Ctx):
    from drm_mm.engine.wise_ft import check_compatible, interpolate_state_dicts
    vit, rn = _two_architectures()
    check_compatible(vit, rn, 'zeroshot.pth', 'finetuned.pth')
    return interpolate_state_dicts(vit, rn, 0.5)


def _soup_mismatch(ctx: Ctx):
    from drm_mm.engine.model_soups import uniform_soup
    vit, rn = _two_architectures()
    return uniform_soup([vit, rn], names=['run_a.pth', 'run_b.pth'])


def _load_from_mismatch(ctx: Ctx):
    from drm_mm.engine.runners import DRMRunner
    path = _foreign_checkpoint(ctx.tmp)
    runner = DRMRunner(model=_classifier(descriptions=None,
                                         head=dict(beta=1.0),
                                         loss=dict(erm='ce',
                                                   wrm_weight=0.0)),
                       work_dir=str(ctx.tmp / 'work'), load_from=str(path),
                       default_scope='drm_mm',
                       experiment_name=f'bad_load_from_{id(ctx)}')
    return runner.load_or_resume()


def _foreign_checkpoint(folder: Path) -> Path:
    """What a DRM run with the toy ResNet CLIP saves (another architecture
    than the tiny ViT of the smoke configs)."""
    state = {f'clip.{k}': v for k, v in _toy_rn().state_dict().items()}
    path = folder / 'toy_rn_epoch_1.pth'
    torch.save(dict(state_dict=state, meta=dict(epoch=1, iter=1)), path)
    return path


# ----------------------------------------------------------- pretrained

def _clip(**kwargs):
    """Build an OpenCLIP and load its pretrained weights (init_weights)."""
    from drm_mm.models.clip.open_clip_model import OpenCLIP
    clip = OpenCLIP(**kwargs)
    clip.init_weights()
    return clip


def _pretrained_mismatch(ctx: Ctx):
    path = ctx.tmp / 'rn_weights.pt'
    torch.save(_toy_rn().model.state_dict(), path)
    return _clip(model_name='drm-tiny-vit', pretrained=str(path))


CASES: Dict[str, Case] = {
    # data roots and layouts
    'iwildcam root missing': Case(
        lambda c: _iwildcam(data_root=str(c.tmp / 'no_wilds')),
        FileNotFoundError,
        ('WILDSIWildCam', 'no_wilds', 'does not exist', 'download=True')),
    'fmow root missing': Case(
        _fmow_missing, FileNotFoundError,
        ('WILDSFMoW', 'no_fmow', 'does not exist', 'download=True')),
    'imagenet root missing': Case(
        _imagenet_missing, FileNotFoundError,
        ('ImageNetFolder', 'no_imagenet', 'does not exist', 'Download')),
    'wilds folder without RELEASE file': Case(
        _no_release, FileNotFoundError,
        ('WILDSIWildCam', 'iwildcam_v2.0', 'RELEASE_v2.0.txt',
         'Re-download')),
    'wilds unknown split': Case(
        lambda c: _iwildcam(data_root=str(c.root('iwildcam')),
                            split='training'),
        ValueError, ('WILDSIWildCam', "'training'", 'valid splits are',
                     'id_val')),
    'imagenet unknown split': Case(
        _imagenet_unknown_split, ValueError,
        ('ImageNetFolder', "'tain'", 'train')),
    'corrupt image': Case(
        _corrupt_jpeg, OSError,
        ('broken.jpg', 'truncated or corrupt', 'skip_corrupt=True')),
    'skip_corrupt on an evaluation split': Case(
        _skip_corrupt_on_eval, ValueError,
        ('WILDSIWildCam', 'skip_corrupt=True is only for training',
         'Repair or re-download')),
    'imagenet-r folder of an unknown class': Case(
        _imagenet_r_unknown_class, ValueError,
        ('ImageNetR', 'n99999999', 'not expected classes',
         'published layout')),
    # concept descriptions
    'description file lacks a class': Case(
        lambda c: _descriptions(c, lambda d: d.pop('cougar')),
        ValueError, ('bad_descriptions.json', "'cougar'",
                     'Add an entry keyed by each class name')),
    'empty description': Case(
        lambda c: _descriptions(c, lambda d: d.update(cougar=['  '])),
        ValueError, ('bad_descriptions.json', "'cougar'",
                     'Write at least one non-empty sentence')),
    'unknown description key': Case(
        lambda c: _descriptions(c, lambda d: d.update(cugar=['a cat'])),
        ValueError, ('bad_descriptions.json', "'cugar'",
                     'Fix the spelling',
                     'model.allow_extra_description_keys=True')),
    'description file missing': Case(
        lambda c: _classifier(descriptions=str(c.tmp / 'nope.json')),
        FileNotFoundError, ('nope.json', 'not found',
                            'Pass an existing JSON path')),
    # config values
    'beta outside [0, 1]': Case(
        lambda c: _classifier(head=dict(beta=1.5)), ValueError,
        ('CLIPTextHead.beta', r'in \[0, 1\]', '1.5')),
    'negative lambda': Case(
        lambda c: _classifier(loss=dict(wrm_weight=-0.5)), ValueError,
        ('DualRiskLoss.wrm_weight', 'must be >= 0', '-0.5')),
    'unknown erm': Case(
        lambda c: _classifier(loss=dict(erm='hinge')), ValueError,
        ('DualRiskLoss.erm', "'hinge'", 'choose from', 'contrastive')),
    'unknown normalisation': Case(
        lambda c: _classifier(soft_labels=dict(normalization='l2')),
        ValueError, ('DRMClassifier.soft_labels.normalization', "'l2'",
                     'choose from', 'minmax')),
    'tau <= 0': Case(
        lambda c: _classifier(soft_labels=dict(tau=0.0)), ValueError,
        ('DRMClassifier.soft_labels.tau', 'must be > 0')),
    'unknown soft-label source': Case(
        lambda c: _classifier(soft_labels=dict(source='offline')),
        ValueError, ('DRMClassifier.soft_labels.source', "'offline'",
                     'choose from', 'cache')),
    'unknown soft-label key': Case(
        lambda c: _classifier(soft_labels=dict(temperature=0.1)),
        ValueError, ('DRMClassifier.soft_labels', "'temperature'",
                     'use source, normalization, tau')),
    'wise_ft alpha outside [0, 1]': Case(
        lambda c: __import__('drm_mm.engine.wise_ft', fromlist=['x'])
        .check_alphas([0.0, 1.5]),
        ValueError, ('alpha=1.5', r'outside \[0, 1\]', 'zero-shot')),
    # checkpoints of another architecture
    'wise_ft checkpoints of two architectures': Case(
        _wise_ft_mismatch, ValueError,
        ('finetuned.pth', 'zeroshot.pth', 'different architectures',
         'Use checkpoints of the same config')),
    'soup ingredients of two architectures': Case(
        _soup_mismatch, ValueError,
        ('run_b.pth', 'run_a.pth', 'different architectures',
         'Use checkpoints of the same config')),
    'load_from of another architecture': Case(
        _load_from_mismatch, ValueError,
        ('toy_rn_epoch_1.pth', 'does not fit the model', 'clip.model',
         'load a checkpoint of the same model config')),
    # open_clip weights
    'unknown architecture': Case(
        lambda c: _clip(model_name='ViT-B-61'), ValueError,
        ("'ViT-B-61'", 'open_clip.list_models()', 'ViT-B-16')),
    'unknown pretrained tag': Case(
        lambda c: _clip(model_name='ViT-B-16', pretrained='opneai'),
        ValueError, ("'opneai'", "'ViT-B-16'", 'known tags', 'openai')),
    'pretrained file missing': Case(
        lambda c: _clip(model_name='drm-tiny-vit',
                        pretrained=str(c.tmp / 'weights.pt')),
        FileNotFoundError, ('weights.pt', 'does not exist',
                            'Pass an existing local file')),
    'pretrained file of another architecture': Case(
        _pretrained_mismatch, ValueError,
        ('rn_weights.pt', "does not match architecture 'drm-tiny-vit'",
         'Check model_name and the file')),
}


@pytest.mark.parametrize('name', sorted(CASES))
def test_bad_input_gives_a_named_error(name, request, tmp_path):
    case = CASES[name]
    with pytest.raises(case.error) as info:
        case.run(Ctx(request, tmp_path))
    message = str(info.value)
    for pattern in case.patterns:
        assert re.search(pattern, message), (
            f'{name}: {pattern!r} not in the message:\n{message}')


# ---------------------------------------------------------------- CLI


def _train_tool():
    """tools/train.py as a module (its argument handling, in-process)."""
    spec = importlib.util.spec_from_file_location(
        '_drm_train_tool', H.REPO / 'tools' / 'train.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('name', ['config file missing',
                                  '--resume file missing',
                                  'wrong --launcher'])
def test_train_arguments_fail_before_anything_is_built(
        name, tmp_path, fake_iwildcam_root, monkeypatch, capsys):
    """Argument errors of tools/train.py, run in-process (they stop before
    any runner exists; the subprocess cases below cover the rest)."""
    good = H.write_config(tmp_path / 'drm_ok.py', fake_iwildcam_root,
                          test_hooks=False)
    work = tmp_path / 'work'
    config, args, patterns = {
        'config file missing': (
            tmp_path / 'drm_nope.py', (),
            ('drm_nope.py', 'does not exist', 'configs live under configs/')),
        '--resume file missing': (
            good, ('--resume', str(tmp_path / 'epoch_9.pth')),
            ('epoch_9.pth', 'does not exist',
             'pass an existing .pth or "auto"')),
        'wrong --launcher': (
            good, ('--launcher', 'torchrun'),
            ('--launcher', "invalid choice: 'torchrun'", 'pytorch')),
    }[name]
    monkeypatch.setattr(sys, 'argv', ['tools/train.py', str(config),
                                      '--work-dir', str(work), *args])
    with pytest.raises(SystemExit) as info:
        _train_tool().main()
    message = f'{info.value.code}\n{capsys.readouterr().err}'
    assert info.value.code != 0
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)
    assert not work.exists() or H.files_named(
        work, ('*.pth', 'last_checkpoint')) == []


def _cli_cases(tmp_path: Path, data_root: Path) -> Dict[str, tuple]:
    """name -> (config, extra args, patterns in the output)."""
    classes = H.tiny_class_setup(tmp_path)
    good = H.write_config(tmp_path / 'drm_ok.py', data_root, classes=classes)
    foreign = _foreign_checkpoint(tmp_path)
    return {
        'beta outside [0, 1]': (
            good, ('--cfg-options', 'model.head.beta=1.5'),
            ('CLIPTextHead.beta must be in \\[0, 1\\], got 1.5', )),
        'unknown pretrained tag': (
            good, ('--cfg-options', 'model.clip.pretrained=opneai'),
            ("pretrained='opneai' is neither an open_clip tag",
             'nor an existing file')),
        'load_from of another architecture': (
            good, ('--cfg-options', f'load_from={foreign}'),
            ('toy_rn_epoch_1.pth', 'does not fit the model',
             'load a checkpoint of the same model config')),
    }


@pytest.mark.slow  # three tools/train.py subprocesses at once
def test_cli_bad_values_fail_clearly_and_leave_no_result(
        tmp_path, fake_iwildcam_root):
    cases = _cli_cases(tmp_path, fake_iwildcam_root)
    running = []
    for name, (config, args, _) in cases.items():
        work = tmp_path / 'runs' / re.sub(r'\W+', '_', name)
        running.append((name, work, H.start_train(config, work, *args)))
    results = {name: (work, *H.finish(proc, work, timeout=300))
               for name, work, proc in running}

    for name, (work, code, out) in results.items():
        assert code != 0, f'{name}: tools/train.py succeeded'
        for pattern in cases[name][2]:
            assert re.search(pattern, out), (
                f'{name}: {pattern!r} not in the output:\n{H.tail(out)}')
        left = H.files_named(work, ('*.pth', '*.pth.tmp', 'last_checkpoint'))
        assert left == [], f'{name}: {left} left in {work}'

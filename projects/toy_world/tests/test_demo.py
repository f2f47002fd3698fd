"""Tests of the toy-world study: the configs, the fast evaluation against
MMEngine's test loop, and a shortened run of the whole pipeline (tiny world,
a few pretraining steps, 2 methods x 2 seeds, one epoch) with its caching."""
from __future__ import annotations

import json
import pathlib
import re

import pytest
import torch
from mmengine.config import Config

from projects.toy_world.toy_world import demo
from projects.toy_world.toy_world.caption_corpus import CorpusSettings
from projects.toy_world.toy_world.pretrain_clip import (
    DF_TEMPLATE, PretrainSettings, pretrain_toy_clip)
from projects.toy_world.toy_world.shapes import SHAPE_NAMES
from projects.toy_world.toy_world.toy_world import (
    WorldSettings, generate_world)

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / 'configs'
TINY_WORLD = WorldSettings(n_train=32, n_id_val=8, n_id_test=16, n_val=8,
                           n_test=16, n_val_locations=2, n_test_locations=2)
TINY_PRETRAIN = PretrainSettings(
    corpus=CorpusSettings(n_scenes=6, images_per_scene=8, seed=2), steps=3,
    batch_size=16, warmup_steps=1)


def _cfg(name: str) -> Config:
    return Config.fromfile(str(CONFIGS / name))


def test_toy_configs_match_the_toy_world_and_pretraining() -> None:
    cfg = _cfg('drm_toy_rn.py')
    assert cfg.model.clip.pretrained == \
        f'data/toy/{PretrainSettings().weights_name()}', (
            'projects/toy_world/configs/drm_toy_rn.py: toy_clip must name the '
            'weights that projects/toy_world/tools/pretrain_clip.py writes '
            'with its default settings')
    assert tuple(cfg.model.classnames) == SHAPE_NAMES
    assert list(cfg.model.templates) == [DF_TEMPLATE]
    assert cfg.train_dataloader.dataset.class_names == 'categories'
    assert cfg.test_evaluator.type == 'drm_mm.IWildCamMetric'
    assert cfg.test_cfg.type == 'drm_mm.MultiDatasetTestLoop'
    assert cfg.custom_imports.imports == ['drm_mm',
                                          'projects.toy_world.toy_world']
    # the paper's defaults for the method
    assert cfg.model.head.beta == 0.5
    assert cfg.model.loss.wrm_weight == 1.0
    assert cfg.model.soft_labels == dict(source='cache',
                                         normalization='minmax', tau=0.1)


def test_project_configs_name_drm_mm_components_fully_qualified() -> None:
    import drm_mm  # noqa: F401  registers every component
    import drm_mm.registry as reg
    own = set()
    for registry in vars(reg).values():
        if hasattr(registry, 'module_dict') and registry.scope == 'drm_mm':
            own |= set(registry.module_dict)
    files = sorted(CONFIGS.rglob('*.py'))
    assert len(files) == 9  # 6 methods, zero-shot, 2 bases
    for path in files:
        for name in re.findall(r"type='([\w.]+)'", path.read_text()):
            assert '.' in name or name not in own, (
                f'{path}: write type={name!r} as type="drm_mm.{name}"')
        assert "'WILDSIWildCam'" not in path.read_text()


@pytest.mark.parametrize('name', ['flyp_toy_rn.py', 'ce_toy_rn.py',
                                  'zeroshot_toy_rn.py'])
def test_baselines_differ_from_drm_only_in_the_method(name: str) -> None:
    drm, other = _cfg('drm_toy_rn.py').to_dict(), _cfg(name).to_dict()
    for cfg in (drm, other):
        cfg['model'].pop('head')
        cfg['model'].pop('loss')
        cfg.pop('custom_hooks')
    assert drm == other


@pytest.fixture(scope='module')
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp('toy_demo')
    settings = demo.DemoSettings(
        methods=('flyp', 'drm'), seeds=(0, 1), alphas=(0.0, 0.5, 1.0),
        epochs=3, work_dir=str(root / 'work'),
        world_root=str(root / 'world'),
        pretrain_cache_dir=str(root / 'cache'), world=TINY_WORLD,
        pretrain=TINY_PRETRAIN,
        # 4 iterations an epoch: past the schedule's 10 warm-up iterations
        cfg_options={'train_dataloader.batch_size': 8})
    lines: list = []
    summary = demo.run_demo(settings, log=lines.append)
    return dict(settings=settings, summary=summary, lines=lines, root=root)


def test_study_writes_table_plot_and_results(tiny_study: dict) -> None:
    work = pathlib.Path(tiny_study['settings'].work_dir)
    table = (work / 'results.md').read_text()
    for label in ('zero-shot (df)', 'zero-shot (cd)', '| FLYP |',
                  'DRM (df)', 'DRM (cd)', 'DRM (mixture)'):
        assert label in table
    assert '±' in table  # spread over the 2 seeds
    png = (work / 'id_vs_ood.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 10_000
    saved = json.loads((work / 'results.json').read_text())
    assert saved['settings']['world_hash'] == TINY_WORLD.hash()
    assert len(saved['runs']) == 4
    for run in saved['runs']:
        assert [w['alpha'] for w in run['wise_ft']] == [0.0, 0.5, 1.0]
        counted = 0
        for key, value in run['final'].items():
            assert 0.0 <= value <= 1.0, key
            parts = key.split('/')
            if len(parts) == 3 and parts[2] == 'acc':
                # a count of right images over the split
                n = getattr(TINY_WORLD, f'n_{parts[1]}')
                assert abs(value * n - round(value * n)) < 1e-4, key
                counted += 1
        assert counted >= 4
    # the table was printed with progress lines around it
    text = '\n'.join(tiny_study['lines'])
    assert '| model | ID acc |' in text and 'wall time' in text


def _plot_summary() -> dict:
    """A summary in run_demo's shape: FLYP (df) and DRM (df, cd, mixture)
    over 2 seeds, zero-shot df / cd / mixture."""
    def point(alpha, id_acc, ood_acc):
        return {'alpha': alpha, 'id_test/acc': id_acc, 'test/acc': ood_acc,
                'id_test/macro_f1': id_acc, 'test/macro_f1': ood_acc}
    models = [('flyp', 'df', 0.88, 0.66, 0.01), ('drm', 'df', 0.86, 0.70, 0.02),
              ('drm', 'cd', 0.81, 0.69, 0.03),
              ('drm', 'mixture', 0.85, 0.70, 0.04)]
    zero_shot = {f'{h}/{s}/{m}': 0.75 for h in ('df', 'cd', 'mixture')
                 for s in ('id_test', 'test') for m in ('acc', 'macro_f1')}
    return dict(
        settings=dict(seeds=[0, 1]), zero_shot=zero_shot,
        curves=[dict(method=m, head=h, points=[point(0.0, 0.75, 0.75),
                                               point(1.0, i, o)])
                for m, h, i, o, _ in models],
        rows=[dict(method=m, head=h, n=2, **{
            f'{s}/{k}': [v, std] for s, v in (('id_test', i), ('test', o))
            for k in ('acc', 'macro_f1')}) for m, h, i, o, std in models])


def test_plot_names_fine_tuned_markers_and_shows_seed_spread() -> None:
    import matplotlib.pyplot as plt
    from matplotlib.container import ErrorbarContainer
    fig = demo.id_vs_ood_figure(_plot_summary())
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ['FLYP: fine-tuned + WiSE-FT',
                      'DRM (df): fine-tuned + WiSE-FT',
                      'DRM (cd): fine-tuned + WiSE-FT',
                      'DRM (mixture): fine-tuned + WiSE-FT',
                      'zero-shot (df)', 'zero-shot (cd)',
                      'zero-shot (mixture)']
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 4
    # DRM (mixture): ±4 points of OOD accuracy around 70 %
    (x0, y0), (x1, y1) = bars[3].lines[2][1].get_segments()[0]
    assert (x0, y0, x1, y1) == pytest.approx((85, 66, 85, 74))
    plt.close(fig)


def test_wise_ft_alpha_zero_is_the_zero_shot_model(tiny_study: dict) -> None:
    summary = tiny_study['summary']
    for run in summary['runs']:
        at_zero = next(w for w in run['wise_ft'] if w['alpha'] == 0.0)
        for key, value in summary['zero_shot'].items():
            assert at_zero[key] == pytest.approx(value, abs=1e-9), key


def test_table_rows_are_mean_and_std_over_seeds(tiny_study: dict) -> None:
    summary = tiny_study['summary']
    row = next(r for r in summary['rows']
               if r['method'] == 'drm' and r['head'] == 'mixture')
    values = [r['final']['mixture/test/acc'] for r in summary['runs']
              if r['method'] == 'drm']
    mean = sum(values) / 2
    assert row['test/acc'][0] == pytest.approx(mean)
    assert row['test/acc'][1] == pytest.approx(
        abs(values[0] - values[1]) / 2**0.5)


def test_rerun_uses_every_cache(tiny_study: dict) -> None:
    lines: list = []
    again = demo.run_demo(tiny_study['settings'], log=lines.append)
    text = '\n'.join(lines)
    assert 'toy world cached' in text and 'tiny CLIP cached' in text
    assert text.count(': cached (') == 4 and 'fine-tuning 3 epochs' not in text
    assert again['rows'] == tiny_study['summary']['rows']


def test_changed_budget_retrains_only_that(tiny_study: dict) -> None:
    import dataclasses
    settings = dataclasses.replace(tiny_study['settings'], methods=('flyp', ),
                                   seeds=(0, ), lr=3e-5)
    lines: list = []
    demo.run_demo(settings, log=lines.append)
    text = '\n'.join(lines)
    assert 'FLYP seed 0: fine-tuning 3 epochs' in text and 'lr 3e-05' in text


def test_fast_evaluation_equals_the_test_loop(tmp_path: pathlib.Path) -> None:
    """evaluate_heads (preprocessed tensors, all heads from one forward)
    gives the numbers of MMEngine's MultiDatasetTestLoop + IWildCamMetric."""
    import drm_mm  # noqa: F401
    from tools.tool_utils import build_runner
    generate_world(tmp_path / 'world', TINY_WORLD, progress=False)
    weights = pretrain_toy_clip(TINY_PRETRAIN, cache_dir=tmp_path,
                                world=None).path
    for beta, head in ((1.0, 'df'), (0.0, 'cd'), (0.5, 'mixture')):
        cfg = demo.build_config(CONFIGS / 'drm_toy_rn.py', weights,
                                tmp_path / 'world', tmp_path / f'w{beta}')
        cfg.model.head.beta = beta
        cfg.test_dataloader.batch_size = 7  # other batching than the fast path
        runner = build_runner(cfg)
        loop_metrics = runner.test()
        fast = demo.evaluate_heads(
            runner.model, demo.load_eval_sets(cfg, runner.model, batch_size=5),
            batch_size=3)
        for split in ('id_test', 'test'):
            for metric in ('acc', 'recall_macro', 'macro_f1'):
                assert fast[f'{head}/{split}/{metric}'] == pytest.approx(
                    loop_metrics[f'{split}/{metric}'], abs=1e-9)


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ValueError, match='methods'):
        demo.DemoSettings(methods=('erm', ))
    with pytest.raises(ValueError, match='including 1'):
        demo.DemoSettings(alphas=(0.0, 0.5))
    with pytest.raises(ValueError, match='epochs'):
        demo.DemoSettings(epochs=0)
    with pytest.raises(KeyError, match="no split 'ood'"):
        cfg = _cfg('drm_toy_rn.py')
        demo.load_eval_sets(cfg, torch.nn.Identity(), names=('ood', ))


def test_new_weights_never_reuse_old_runs(tiny_study: dict,
                                          tmp_path: pathlib.Path) -> None:
    """Runs are keyed by the content of the pretrained weights, not only by
    their settings (a forced re-pretraining may give other weights)."""
    import dataclasses
    import shutil
    settings = tiny_study['settings']
    cache, work = tmp_path / 'cache', tmp_path / 'work'
    shutil.copytree(settings.pretrain_cache_dir, cache)
    shutil.copytree(settings.work_dir, work)
    settings = dataclasses.replace(settings, methods=('flyp', ), seeds=(0, ),
                                   pretrain_cache_dir=str(cache),
                                   work_dir=str(work))
    lines: list = []
    demo.run_demo(settings, log=lines.append)
    assert ': cached (' in '\n'.join(lines)
    weights = cache / TINY_PRETRAIN.weights_name()
    state = torch.load(weights, weights_only=True)
    state['logit_scale'] = state['logit_scale'] + 0.5
    torch.save(state, weights)
    lines = []
    demo.run_demo(settings, log=lines.append)
    assert 'FLYP seed 0: fine-tuning' in '\n'.join(lines)


def test_loss_overrides_do_not_reach_the_zero_shot_model():
    """A WRM-only variant (erm_weight=0) must still build its zero-shot
    model, which has no objective (wrm_weight=0 in its config)."""
    options = {'model.loss.erm_weight': 0.0, 'model.head.beta': 0.3,
               'model.loss.wrm_weight': 2.0}
    assert demo.zero_shot_options(options) == {'model.head.beta': 0.3}

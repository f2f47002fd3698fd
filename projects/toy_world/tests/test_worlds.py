"""The worlds study: seeds varied together, the premise read on the
validation splits only (and before CE / DRM run), baselines evaluated with
DRM's dual inference, the per-world cache and resuming, the command's
options; a shortened study on 2 tiny worlds (``slow``: about a minute on
2 idle cores, 2 pretrainings of 3 steps, 2 x 2 fine-tuning runs)."""
from __future__ import annotations

import importlib.util
import json
import pathlib
import sys
from typing import Iterator

import pytest

from projects.toy_world.toy_world import demo, worlds
from projects.toy_world.toy_world.caption_corpus import premise_corpus
from projects.toy_world.toy_world.equal_inference import BETA_GRID
from projects.toy_world.toy_world.pretrain_clip import PretrainSettings
from projects.toy_world.toy_world.toy_world import (WorldSettings,
                                                    class_habitats)

TOOL = pathlib.Path(__file__).parents[1] / 'tools' / 'run_worlds.py'
TINY_WORLD = WorldSettings(n_train=32, n_id_val=8, n_id_test=16, n_val=8,
                           n_test=16, n_val_locations=2, n_test_locations=2)
TINY_PRETRAIN = PretrainSettings(
    corpus=premise_corpus(class_habitats(TINY_WORLD), n_scenes=6,
                          images_per_scene=8),
    steps=3, batch_size=16, warmup_steps=1)
TOL = 8 * 2.0**-52


def test_world_seed_varies_world_corpus_and_pretraining_together():
    settings = worlds.WorldsSettings()
    assert settings.world_seeds == (1, 2, 3, 4, 5)  # not the knobs' world 0
    # world 0 is the main study's world and CLIP
    zero = worlds.world_settings(settings, 0)
    assert zero.world.hash() == demo.DemoSettings().world.hash()
    assert zero.pretrain.hash() == demo.DemoSettings().pretrain.hash()
    three = worlds.world_settings(settings, 3)
    assert (three.world.seed, three.pretrain.corpus.seed,
            three.pretrain.seed) == (3, 4, 3)
    assert three.pretrain.corpus.habitats == class_habitats(three.world)
    assert three.pretrain.corpus.habitats != zero.pretrain.corpus.habitats
    # the knobs and the budget stay the study's
    for knob in ('name_frac', 'desc_frac', 'habitat_scene_frac',
                 'habitat_shape_frac', 'home_name_frac', 'n_scenes'):
        assert getattr(three.pretrain.corpus, knob) == \
            getattr(zero.pretrain.corpus, knob)
    assert three.pretrain.steps == zero.pretrain.steps == 2100
    assert three.betas == BETA_GRID and three.extra_splits == ('id_val',
                                                               'val')
    assert three.seeds == (0, 1, 2)
    with pytest.raises(ValueError, match='must include'):
        worlds.WorldsSettings(base=demo.DemoSettings(methods=('drm', )))
    with pytest.raises(ValueError, match='distinct seeds'):
        worlds.WorldsSettings(world_seeds=(1, 1))


class _NoTest(dict):
    """Metrics whose test-split values raise when read."""

    def __getitem__(self, key):
        if key.split('/')[1] in ('id_test', 'test'):
            raise AssertionError(f'the premise read {key}')
        return super().__getitem__(key)

    def values(self):  # pragma: no cover - must not be used
        raise AssertionError('the premise read every value')

    def items(self):  # pragma: no cover - must not be used
        raise AssertionError('the premise read every value')


def _metrics(**acc) -> _NoTest:
    out = _NoTest()
    for key, value in acc.items():
        head, split = key.split('__')
        out[f'{head}/{split}/acc'] = value
        out[f'{head}/{split}/macro_f1'] = value
    # test numbers that would flip the answer if they were read
    for head in ('df', 'cd'):
        for split in ('id_test', 'test'):
            dict.__setitem__(out, f'{head}/{split}/acc', 0.0)
    return out


def test_premise_reads_only_the_validation_splits():
    zs = _metrics(df__val=0.50, cd__val=0.58, df__id_val=0.6, cd__id_val=0.7)
    flyp = [_metrics(df__val=0.53, df__id_val=0.9),
            _metrics(df__val=0.54, df__id_val=0.92)]
    p = worlds.measure_premise(zs, flyp)
    assert p['splits'] == ['id_val', 'val']
    assert p['cd_minus_df'] == pytest.approx(0.08, abs=TOL)
    assert p['flyp'] == pytest.approx(0.535, abs=TOL)
    assert p['flyp_minus_df'] == pytest.approx(0.035, abs=TOL)
    assert p['flyp_id_val'] == pytest.approx(0.91, abs=TOL)
    # cd - df 8 >= 3 and FLYP - df 3.5 >= 2 points; FLYP below cd on val
    assert p['holds'] and not p['paper_regime']
    weak = [_metrics(df__val=0.51, df__id_val=0.9)]
    assert not worlds.measure_premise(zs, weak)['holds']
    assert worlds.validation_view(dict(
        zs, **{'beta0.5/val/acc': 0.5, 'wall': 1.0})) == {
            'df/val/acc': 0.50, 'df/val/macro_f1': 0.50, 'cd/val/acc': 0.58,
            'cd/val/macro_f1': 0.58, 'df/id_val/acc': 0.6,
            'df/id_val/macro_f1': 0.6, 'cd/id_val/acc': 0.7,
            'cd/id_val/macro_f1': 0.7, 'beta0.5/val/acc': 0.5}


@pytest.fixture(scope='module')
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp('toy_worlds')
    base = demo.DemoSettings(
        methods=('flyp', 'drm'), seeds=(0, ), alphas=(0.0, 1.0), epochs=3,
        pretrain_cache_dir=str(root / 'cache'), world=TINY_WORLD,
        pretrain=TINY_PRETRAIN,
        cfg_options={'train_dataloader.batch_size': 8})
    settings = worlds.WorldsSettings(world_seeds=(7, 8), base=base,
                                     work_dir=str(root / 'work'),
                                     data_dir=str(root / 'data'))
    lines: list = []
    report = worlds.run_worlds(settings, log=lines.append)
    yield dict(root=root, settings=settings, report=report, lines=lines)


@pytest.mark.slow
def test_worlds_study_writes_report_table_and_plot(tiny):
    work = pathlib.Path(tiny['settings'].work_dir)
    saved = json.loads((work / 'worlds.json').read_text())
    assert [w['seed'] for w in saved['worlds']] == [7, 8]
    assert [(w['world_seed'], w['corpus_seed'], w['pretrain_seed'])
            for w in saved['worlds']] == [(7, 8, 7), (8, 9, 8)]
    table = (work / 'worlds.md').read_text()
    assert '| 7 |' in table and '| 8 |' in table
    assert 'world spread' in table and 'seed spread' in table
    png = (work / 'gain_vs_premise.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n'
    # each world its own data, its own CLIP
    assert len({w['world_hash'] for w in saved['worlds']}) == 2
    assert len({w['pretrain_hash'] for w in saved['worlds']}) == 2
    assert len(list((tiny['root'] / 'cache').glob('*.pth'))) == 2


@pytest.mark.slow
def test_premise_is_measured_on_val_before_drm_runs(tiny):
    for world in tiny['report']['worlds']:
        folder = pathlib.Path(tiny['settings'].work_dir) / \
            f'world{world["seed"]}'
        premise = json.loads((folder / 'premise.json').read_text())
        assert premise['premise'] == world['premise']
        results = json.loads((folder / 'results.json').read_text())
        zs = results['zero_shot']
        flyp = [r['final'] for r in results['runs'] if r['method'] == 'flyp']
        assert premise['premise']['zs_df'] == zs['df/val/acc']
        assert premise['premise']['cd_minus_df'] == pytest.approx(
            zs['cd/val/acc'] - zs['df/val/acc'], abs=TOL)
        assert premise['premise']['flyp'] == pytest.approx(
            sum(f['df/val/acc'] for f in flyp) / len(flyp), abs=TOL)
        # written before any DRM run was trained
        drm_runs = list((folder / 'runs').glob('drm_seed*.json'))
        assert drm_runs
        assert all((folder / 'premise.json').stat().st_mtime_ns <=
                   p.stat().st_mtime_ns for p in drm_runs)


@pytest.mark.slow
def test_baselines_get_dual_inference_and_id_val(tiny):
    folder = pathlib.Path(tiny['settings'].work_dir) / 'world7'
    results = json.loads((folder / 'results.json').read_text())
    for run in results['runs']:
        final = run['final']
        for split in ('id_test', 'test', 'id_val', 'val'):
            # df, cd and every β of the grid, from the same weights
            assert final[f'beta1/{split}/acc'] == final[f'df/{split}/acc']
            assert final[f'beta0/{split}/acc'] == final[f'cd/{split}/acc']
            assert final[f'beta0.5/{split}/acc'] == \
                final[f'mixture/{split}/acc']
            for b in BETA_GRID:
                assert 0 <= final[f'{demo.beta_head(b)}/{split}/acc'] <= 1
    flyp = next(r for r in results['runs'] if r['method'] == 'flyp')
    zs = flyp['wise_ft'][0]
    assert zs['alpha'] == 0.0
    assert zs['cd/test/acc'] == results['zero_shot']['cd/test/acc']
    comparison = tiny['report']['worlds'][0]['comparison']['heads']
    assert set(comparison) == {'df', 'cd', 'mixture', 'beta@id_val',
                               'beta@within1'}
    # the chosen β of DRM's run is the most id_val-accurate one
    drm = next(r for r in results['runs'] if r['method'] == 'drm')
    beta = tiny['report']['worlds'][0]['chosen_betas']['drm']['id_val'][0]
    accs = {b: drm['final'][f'{demo.beta_head(b)}/id_val/acc']
            for b in BETA_GRID}
    assert accs[beta] == max(accs.values())
    seed = comparison['beta@id_val']['seeds'][0]
    assert seed['head'] == demo.beta_head(beta)
    assert seed['id'] == drm['final'][f'{seed["head"]}/id_test/acc']


@pytest.mark.slow
def test_a_stopped_study_resumes(tiny):
    settings = tiny['settings']
    work = pathlib.Path(settings.work_dir)
    # as if killed inside world 8: its summary never written
    (work / 'world8' / 'world.json').unlink()
    lines: list = []
    again = worlds.run_worlds(settings, log=lines.append)
    text = '\n'.join(lines)
    assert 'world 7: cached' in text and 'world 8: cached' not in text
    # world 8 recomputed from the cached runs: nothing trained again
    assert 'world 8: premise on the validation splits' in text
    assert ': fine-tuning ' not in text and 'seed 0: cached' in text

    def same(report):
        return [{k: v for k, v in w.items() if k != 'seconds'}
                for w in json.loads(json.dumps(report['worlds']))]
    assert same(again) == same(tiny['report'])


def _tool():
    spec = importlib.util.spec_from_file_location('toy_run_worlds', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tool_options_become_settings(tmp_path, monkeypatch):
    module = _tool()
    args = module.parse_args([
        '--worlds', '3', '4', '--seeds', '0', '1', '--epochs', '2',
        '--pretrain-steps', '500', '--methods', 'flyp', 'drm', '--work-dir',
        str(tmp_path / 'w'), '--data-dir', str(tmp_path / 'd'),
        '--alphas', '0', '0.5', '1'])
    settings = module.worlds_settings(args)
    assert settings.world_seeds == (3, 4)
    assert settings.base.seeds == (0, 1) and settings.base.epochs == 2
    assert settings.base.methods == ('flyp', 'drm')
    assert settings.base.pretrain.steps == 500
    assert settings.base.alphas == (0.0, 0.5, 1.0)
    assert (settings.work_dir, settings.data_dir) == (str(tmp_path / 'w'),
                                                      str(tmp_path / 'd'))
    d = module.worlds_settings(module.parse_args([]))
    assert d.world_seeds == (1, 2, 3, 4, 5) and d.base.seeds == (0, 1, 2)
    assert d.base.pretrain == demo.DemoSettings().pretrain


def test_tool_bad_value_is_one_line(tmp_path, monkeypatch, capsys):
    module = _tool()
    monkeypatch.setattr(sys, 'argv', ['run_worlds.py', '--methods', 'drm',
                                      '--work-dir', str(tmp_path)])
    with pytest.raises(SystemExit) as exc:
        module.run_tool(module.main)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "WorldsSettings.base.methods must include ['flyp']" in err
    assert 'Traceback' not in err


def test_extra_splits_are_loaded_like_the_id_split(tmp_path):
    cfg = demo.build_config(demo.CONFIG_DIR / demo.METHOD_CONFIGS['flyp'],
                            tmp_path / 'w.pth', tmp_path / 'world',
                            tmp_path / 'run')
    demo.add_split_loaders(cfg, ('id_val', 'val'))
    for split in ('id_val', 'val'):
        dataset = cfg.test_dataloader[split]['dataset']
        assert dataset['split'] == split
        assert dataset['data_root'] == str(tmp_path / 'world')
        assert dataset['pipeline'] == \
            cfg.test_dataloader['id_test']['dataset']['pipeline']
    assert cfg.test_dataloader['id_test']['dataset']['split'] == 'id_test'
    with pytest.raises(ValueError, match=r"extra_splits: \['test'\] unknown "
                       r"or repeated; choose from \('id_val', 'val'\)"):
        demo.DemoSettings(extra_splits=('test', ))
    with pytest.raises(ValueError, match='cannot be used with validation'):
        demo.DemoSettings(extra_splits=('val', ), validation=True)

"""projects/toy_world/tools/{generate_world,pretrain_clip,run_demo}.py: their
options map onto the settings dataclasses, caches are reported, and bad
values end in one line naming the setting."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import pathlib
import sys

import pytest

from projects.toy_world.toy_world import demo
from projects.toy_world.toy_world.caption_corpus import CorpusSettings
from projects.toy_world.toy_world.pretrain_clip import PretrainSettings
from projects.toy_world.toy_world.toy_world import (
    WorldSettings, read_world_info)

TOOLS = pathlib.Path(__file__).parents[1] / 'tools'
SMALL_WORLD = ['--n-train', '16', '--n-id-val', '8', '--n-id-test', '8',
               '--n-val', '8', '--n-test', '8', '--n-val-locations', '2',
               '--n-test-locations', '2']


def _run(name: str, argv: list, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location(
        f'toy_tool_{name}', TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, 'argv', [f'{name}.py'] + argv)
    module.run_tool(module.main)


def test_generate_world_options_become_world_settings(tmp_path, monkeypatch,
                                                      capsys):
    argv = ['--root', str(tmp_path), '--seed', '4', '--own-location-frac',
            '0.7', '--hard-frac', '0.5', '--classes', 'circle', 'star',
            'ring'] + SMALL_WORLD
    _run('generate_world', argv, monkeypatch)
    expected = WorldSettings(
        classes=('circle', 'star', 'ring'), seed=4, own_location_frac=0.7,
        n_train=16, n_id_val=8, n_id_test=8, n_val=8, n_test=8,
        n_val_locations=2, n_test_locations=2,
        foreground=dict(WorldSettings().foreground.__dict__, hard_frac=0.5))
    assert read_world_info(tmp_path)['hash'] == expected.hash()
    assert f'toy world {expected.hash()} written' in capsys.readouterr().out
    _run('generate_world', argv, monkeypatch)
    assert f'toy world {expected.hash()} reused' in capsys.readouterr().out


def test_generate_world_bad_value_is_one_line(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exc:
        _run('generate_world', ['--root', str(tmp_path),
                                '--own-location-frac', '1.5'], monkeypatch)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert 'WorldSettings.own_location_frac must be in [0, 1], got 1.5' in err
    assert 'Traceback' not in err
    assert not (tmp_path / 'iwildcam_v2.0').exists()


def test_pretrain_clip_options_and_cache(tmp_path, monkeypatch, capsys):
    argv = ['--cache-dir', str(tmp_path), '--steps', '2', '--batch-size',
            '16', '--warmup-steps', '1', '--corpus-scenes', '4',
            '--corpus-images-per-scene', '8', '--corpus-seed', '3']
    _run('pretrain_clip', argv, monkeypatch)
    expected = PretrainSettings(
        corpus=CorpusSettings(n_scenes=4, images_per_scene=8, seed=3),
        steps=2, batch_size=16, warmup_steps=1)
    weights = tmp_path / expected.weights_name()
    out = capsys.readouterr().out
    assert f'weights: {weights} (trained)' in out
    assert 'df "a photo of a {c}."' in out  # the zero-shot report
    _run('pretrain_clip', argv, monkeypatch)
    assert f'weights: {weights} (from cache)' in capsys.readouterr().out


def test_pretrain_clip_bad_value_is_one_line(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exc:
        _run('pretrain_clip', ['--cache-dir', str(tmp_path), '--batch-size',
                               '1'], monkeypatch)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert 'batch_size >= 2' in err and 'Traceback' not in err


def test_run_demo_options_become_demo_settings(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(demo, 'run_demo', seen.append)
    work = tmp_path / 'work'
    (work / 'runs').mkdir(parents=True)
    (work / 'runs' / 'old.json').write_text(json.dumps({}))
    _run('run_demo', [
        '--work-dir', str(work), '--methods', 'flyp', 'drm', '--seeds', '3',
        '--alphas', '0', '1', '--epochs', '2', '--lr', '3e-5',
        '--world-root', str(tmp_path / 'w'), '--pretrain-cache-dir',
        str(tmp_path / 'c'), '--cfg-options', 'model.loss.wrm_weight=2',
        '--reference', 'ref.json', '--force'], monkeypatch)
    assert seen == [demo.DemoSettings(
        methods=('flyp', 'drm'), seeds=(3, ), alphas=(0.0, 1.0), epochs=2,
        lr=3e-5, work_dir=str(work), world_root=str(tmp_path / 'w'),
        pretrain_cache_dir=str(tmp_path / 'c'),
        cfg_options={'model.loss.wrm_weight': 2}, reference='ref.json')]
    assert not (work / 'runs').exists()  # --force: runs redone


def test_run_demo_validation_reads_the_validation_splits(tmp_path,
                                                         monkeypatch):
    seen = []
    monkeypatch.setattr(demo, 'run_demo', seen.append)
    _run('run_demo', ['--validation', '--methods', 'flyp', '--seeds', '0'],
         monkeypatch)
    [settings] = seen
    assert settings.validation and settings.methods == ('flyp', )
    assert settings.work_dir == demo.DemoSettings().work_dir + '_validation'
    # the ID / OOD roles read id_val / val, and the table says so
    cfg = demo.build_config(demo.CONFIG_DIR / demo.METHOD_CONFIGS['flyp'],
                            tmp_path / 'w.pth', tmp_path / 'world',
                            tmp_path / 'run', validation=True)
    assert cfg.test_dataloader['id_test']['dataset']['split'] == 'id_val'
    assert cfg.test_dataloader['test']['dataset']['split'] == 'val'
    plain = demo.build_config(demo.CONFIG_DIR / demo.METHOD_CONFIGS['flyp'],
                              tmp_path / 'w.pth', tmp_path / 'world',
                              tmp_path / 'run')
    assert plain.test_dataloader['test']['dataset']['split'] == 'test'
    summary = dict(settings=dict(seeds=[0], validation=True), rows=[])
    assert demo.eval_splits(summary) == ('id_val', 'val')
    assert 'ID = id_val, OOD = val' in demo.format_table(dict(
        summary, runs=[], curves=[], zero_shot={}))


def test_run_demo_bad_value_is_one_line(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exc:
        _run('run_demo', ['--work-dir', str(tmp_path), '--alphas', '0',
                          '0.5'], monkeypatch)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert 'DemoSettings.alphas must be values in [0, 1] including 1' in err
    assert 'Traceback' not in err


def test_run_demo_world_and_corpus_options(tmp_path, monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(demo, 'run_demo', seen.append)
    _run('run_demo', ['--validation', '--methods', 'flyp', '--seeds', '0',
                      '--world-root', str(tmp_path / 'w'),
                      '--world-options', 'n_train=48', 'seed=3',
                      '--corpus-options', 'desc_confusion=0.3'], monkeypatch)
    [settings] = seen
    world = WorldSettings(n_train=48, seed=3)
    assert settings.world == world
    corpus = settings.pretrain.corpus
    assert corpus.desc_confusion == 0.3
    # the corpus follows the changed world: its habitats are world 3's
    expected = demo.study_pretrain_settings('premise', world).corpus
    assert corpus == dataclasses.replace(expected, desc_confusion=0.3)
    for option, key in (('--world-options', 'n_trian=3'),
                        ('--corpus-options', 'desc_confuson=0.3')):
        with pytest.raises(SystemExit):
            _run('run_demo', ['--methods', 'flyp', option, key], monkeypatch)
        err = capsys.readouterr().err
        assert f'{option}: ' in err and key.split('=')[0] in err
        assert 'choose from' in err and 'Traceback' not in err

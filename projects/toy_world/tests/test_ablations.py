"""The ablation command: its variants map onto the real options, bad names
are one-line errors, and a shortened ablation (tiny world, 3 pretraining
steps, 1-2 seeds) writes its table against a reference FLYP curve."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import pathlib
import sys

import pytest
import torch

from projects.toy_world.toy_world import ablations, demo
from projects.toy_world.toy_world.caption_corpus import CorpusSettings
from projects.toy_world.toy_world.pretrain_clip import PretrainSettings
from projects.toy_world.toy_world.toy_world import WorldSettings

TOOL = pathlib.Path(__file__).parents[1] / 'tools' / 'run_ablation.py'
TINY_WORLD = WorldSettings(n_train=32, n_id_val=8, n_id_test=16, n_val=8,
                           n_test=16, n_val_locations=2, n_test_locations=2)
TINY_PRETRAIN = PretrainSettings(
    corpus=CorpusSettings(n_scenes=6, images_per_scene=8, seed=2), steps=3,
    batch_size=16, warmup_steps=1)


def _run_tool(argv: list, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location('toy_run_ablation', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, 'argv', ['run_ablation.py'] + argv)
    module.run_tool(module.main)


def test_variants_are_the_papers_ablations():
    assert sorted(ablations.ABLATIONS) == ['inference', 'lambda', 'losses',
                                           'normalization', 'prompts',
                                           'wrm_cost']
    assert ablations.ABLATIONS['wrm_cost']['exact'] == {}
    assert ablations.ABLATIONS['wrm_cost']['subset4-k10'] == {
        'model.wrm_text_classes': 4, 'model.wrm_text_refresh': 10}
    assert ablations.ABLATIONS['lambda']['lambda0.5'] == {
        'model.loss.wrm_weight': 0.5}
    assert list(ablations.ABLATIONS['lambda']) == [
        'lambda0', 'lambda0.5', 'lambda1', 'lambda2', 'lambda4']
    assert ablations.ABLATIONS['normalization']['softmax'] == {
        'model.soft_labels.normalization': 'softmax',
        'model.soft_labels.tau': None}  # τ = 1, the softmax default
    assert ablations.ABLATIONS['losses']['wrm-only'] == {
        'model.loss.erm_weight': 0.0}
    assert ablations.ABLATIONS['prompts']['erm-cd_wrm-df'] == {
        'model.loss.erm_prompts': 'cd', 'model.loss.wrm_prompts': 'df'}
    assert ablations.ablation_heads('inference') == [
        'df', 'cd', 'mixture', 'beta0', 'beta0.25', 'beta0.5', 'beta0.75',
        'beta1']


def test_tool_options_become_settings(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(ablations, 'run_ablation',
                        lambda *a: seen.append(a))
    _run_tool(['lambda', '--variants', 'lambda0', 'lambda4', '--seeds', '5',
               '--work-dir', str(tmp_path), '--reference', 'ref.json',
               '--epochs', '2', '--world', 'control', '--cfg-options',
               'train_dataloader.batch_size=8'], monkeypatch)
    name, base, work_dir, variants = seen[0]
    assert (name, work_dir, variants) == ('lambda', str(tmp_path),
                                          ['lambda0', 'lambda4'])
    assert (base.methods, base.seeds, base.epochs, base.world_kind,
            base.reference, base.cfg_options) == (
        ('drm', ), (5, ), 2, 'control', 'ref.json',
        {'train_dataloader.batch_size': 8})


@pytest.mark.parametrize('argv, message', [
    (['dropout'], "unknown ablation 'dropout'; choose from ['inference', "
     "'lambda', 'losses', 'normalization', 'prompts', 'wrm_cost']."),
    (['lambda', '--variants', 'lambda3'],
     "ablation 'lambda' has no variant(s) ['lambda3']; choose from "
     "['lambda0', 'lambda0.5', 'lambda1', 'lambda2', 'lambda4']."),
    (['prompts', '--world', 'mars'],
     "--world 'mars'; choose from ('premise', 'control')."),
])
def test_bad_names_are_one_line(argv, message, tmp_path, monkeypatch,
                                capsys):
    with pytest.raises(SystemExit) as exc:
        _run_tool(argv + ['--work-dir', str(tmp_path)], monkeypatch)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f'error: ValueError: {message}'
    assert 'Traceback' not in err


def test_missing_reference_is_one_line(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        _run_tool(['lambda', '--work-dir', str(tmp_path), '--reference',
                   str(tmp_path / 'none.json')], monkeypatch)
    err = capsys.readouterr().err
    assert 'is no file: pass the results.json of a study with FLYP' in err


@pytest.fixture(scope='module')
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp('toy_ablation')
    base = demo.DemoSettings(
        methods=('flyp', ), seeds=(0, ), alphas=(0.0, 0.5, 1.0), epochs=3,
        work_dir=str(root / 'main'), world_root=str(root / 'world'),
        pretrain_cache_dir=str(root / 'cache'), world=TINY_WORLD,
        pretrain=TINY_PRETRAIN,
        cfg_options={'train_dataloader.batch_size': 8})
    demo.run_demo(base, log=lambda _: None)
    return dict(root=root, base=dataclasses.replace(
        base, reference=str(root / 'main' / 'results.json')))


def test_inference_ablation_mixes_the_same_runs(tiny):
    base = dataclasses.replace(tiny['base'], seeds=(0, 1))
    out = ablations.run_ablation('inference', base,
                                 str(tiny['root'] / 'abl'),
                                 log=lambda _: None)
    folder = tiny['root'] / 'abl' / 'inference'
    assert json.loads((folder / 'ablation.json').read_text()) == out
    table = (folder / 'ablation.md').read_text()
    assert '| drm | beta0.25 |' in table and '| drm | mixture |' in table
    heads = {s['head']: s for s in out['variants'][0]['heads']}
    # β = 1 is the df head, β = 0 the cd head, β = 0.5 the mixture
    for beta, head in (('beta1', 'df'), ('beta0', 'cd'),
                       ('beta0.5', 'mixture')):
        assert heads[beta]['id'] == heads[head]['id']
        assert heads[beta]['ood'] == heads[head]['ood']
    # one training per seed: the β heads come from the same runs
    runs = sorted((folder / 'drm' / 'runs').glob('*.json'))
    assert len(runs) == 2
    finals = [json.loads(p.read_text())['final'] for p in runs]
    ids = [f['beta0.75/id_test/acc'] for f in finals]
    assert heads['beta0.75']['id'][0] == pytest.approx(sum(ids) / 2)
    # the gap: OOD minus the reference FLYP curve at the same ID accuracy
    curve = next(c for c in json.loads(pathlib.Path(
        base.reference).read_text())['curves'] if c['method'] == 'flyp')
    gaps = [demo.ood_above_curve(curve, f['df/id_test/acc'],
                                 f['df/test/acc']) for f in finals]
    gaps = [g for g in gaps if g is not None]
    assert heads['df']['n_gap'] == len(gaps)
    if gaps:
        assert heads['df']['gap'][0] == pytest.approx(sum(gaps) / len(gaps))


def test_minmax_class_variant_trains_on_the_per_class_table(tiny):
    base = dataclasses.replace(tiny['base'], seeds=(0, ))
    out = ablations.run_ablation('normalization', base,
                                 str(tiny['root'] / 'abl'),
                                 variants=['minmax_class'],
                                 log=lambda _: None)
    assert [v['variant'] for v in out['variants']] == ['minmax_class']
    assert '| minmax_class | df |' in (
        tiny['root'] / 'abl' / 'normalization' / 'ablation.md').read_text()
    tables = list((tiny['root'] / 'abl' / 'normalization' / 'minmax_class'
                   / '.soft_label_cache').glob('soft_labels_*.pt'))
    assert len(tables) == 1
    table = torch.load(tables[0], weights_only=True)['soft_labels'].float()
    # per-class min-max: every class column reaches exactly 0
    assert (table.min(dim=0).values == 0).all()
    assert torch.allclose(table.sum(dim=1), torch.ones(len(table)),
                          atol=1e-5)

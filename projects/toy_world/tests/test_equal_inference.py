"""DRM against the baselines at equal inference: β chosen on ``id_val``,
the best baseline curve at equal ID, the comparison per head and the
pooled statistics of the worlds study, each against a hand computation
(no training: summaries written by hand in run_demo's shape)."""
from __future__ import annotations

import math

import pytest

from projects.toy_world.toy_world import equal_inference as ei
from projects.toy_world.toy_world import worlds
from projects.toy_world.toy_world.demo import beta_head

# id_val accuracy of the β grid 0, 0.1, ..., 1 (β = 1 is the df head)
ID_VAL = [0.80, 0.83, 0.85, 0.87, 0.88, 0.90, 0.90, 0.89, 0.91, 0.91, 0.905]
# float64 sums of a few accuracies: exact to a few ulps of 1
TOL = 8 * 2.0**-52


def _final(id_val=ID_VAL) -> dict:
    out = {f'{beta_head(b)}/id_val/acc': a for b, a in zip(ei.BETA_GRID,
                                                           id_val)}
    out['df/id_val/acc'] = id_val[-1]
    return out


def test_beta_on_id_val_by_hand() -> None:
    # highest id_val: 0.91 at β 0.8 and 0.9; the tie goes to the larger β
    assert ei.choose_beta(_final(), 'id_val') == 0.9
    # within 1 point of the df head (0.905): id_val >= 0.895, smallest β:
    # β 0.5 (0.90); β 0.4 (0.88) is out
    assert ei.choose_beta(_final(), 'within1') == 0.5
    # 3 points: id_val >= 0.875 admits β 0.4 (0.88), not β 0.3 (0.87)
    assert ei.choose_beta(_final(), 'within1', within=0.03) == 0.4
    assert ei.chosen_heads(_final()) == {'beta@id_val': 'beta0.9',
                                         'beta@within1': 'beta0.5'}


def test_beta_choice_reads_only_id_val() -> None:
    final = _final()
    # test numbers that would pick another β if they were read
    final.update({f'{beta_head(b)}/test/acc': 1.0 - b for b in ei.BETA_GRID})
    final.update({f'{beta_head(b)}/id_test/acc': b for b in ei.BETA_GRID})
    assert ei.choose_beta(final, 'id_val') == 0.9
    with pytest.raises(KeyError, match=r"no id_val accuracy for heads "
                       r"\['beta0.3'\].*extra_splits"):
        ei.choose_beta({k: v for k, v in final.items()
                        if not k.startswith('beta0.3/')}, 'id_val')
    with pytest.raises(ValueError, match='unknown rule'):
        ei.choose_beta(final, 'test')


def _curve(method, head, points):
    return dict(method=method, head=head, points=[
        {'alpha': i, 'id_test/acc': x, 'test/acc': y}
        for i, (x, y) in enumerate(points)])


def test_best_gap_takes_the_highest_curve_at_that_id() -> None:
    a = _curve('flyp', 'df', [(0.6, 0.5), (0.9, 0.65)])
    b = _curve('flyp', 'mixture', [(0.8, 0.70), (0.9, 0.69)])
    c = _curve('ce', 'cd', [(0.5, 0.8), (0.7, 0.75)])  # not at ID 0.85
    # at ID 0.85: a gives 0.5 + 0.15 * 0.25 / 0.3 = 0.625, b 0.695
    gap, name = ei.best_gap([a, b, c], 0.85, 0.72)
    assert name == 'flyp/mixture'
    assert gap == pytest.approx(0.72 - 0.695, abs=TOL)
    # at ID 0.7 only a and c: a 0.575, c 0.75 -> c
    gap, name = ei.best_gap([a, b, c], 0.7, 0.6)
    assert (name, gap) == ('ce/cd', pytest.approx(0.6 - 0.75, abs=TOL))
    assert ei.best_gap([b], 0.95, 0.7) == (None, None)


def _run(method, seed, heads, wise=None):
    """A run: ``heads`` maps head -> (ID, OOD) at alpha 1 (and every β head
    of the grid for id_val: beta<β> = df; beta0.5 = mixture); ``wise`` the
    alpha 0 point of every head (alpha 1 = final)."""
    final = {}
    for head, (i, o) in heads.items():
        final[f'{head}/id_test/acc'], final[f'{head}/test/acc'] = i, o
    for b in ei.BETA_GRID:
        final[f'{beta_head(b)}/id_val/acc'] = 0.5 + 0.01 * (b == 0.5)
    final['df/id_val/acc'] = 0.5
    wise = wise or {h: (0.6, 0.7) for h in heads}
    zero = {'alpha': 0.0}
    for head, (i, o) in wise.items():
        zero[f'{head}/id_test/acc'], zero[f'{head}/test/acc'] = i, o
    return dict(method=method, seed=seed, final=final,
                wise_ft=[zero, dict(final, alpha=1.0)])


def _heads(df, cd, mix):
    out = dict(df=df, cd=cd, mixture=mix)
    for b in ei.BETA_GRID:
        out[beta_head(b)] = mix if b == 0.5 else df
    return out


def _summary():
    zs = {}
    for b in ei.BETA_GRID:   # the zero-shot β-curve: ID 0.6, OOD 0.7 - 0.1 b
        zs[f'{beta_head(b)}/id_test/acc'] = 0.6
        zs[f'{beta_head(b)}/test/acc'] = 0.7 - 0.1 * b
    runs = [
        # FLYP: df 0.9 / 0.6 and 0.92 / 0.62 (mean 0.91 / 0.61); mixture
        # 0.86 / 0.66 and 0.88 / 0.68 (mean 0.87 / 0.67)
        _run('flyp', 0, _heads((0.90, 0.60), (0.80, 0.70), (0.86, 0.66))),
        _run('flyp', 1, _heads((0.92, 0.62), (0.80, 0.70), (0.88, 0.68))),
        _run('drm', 0, _heads((0.90, 0.66), (0.82, 0.74), (0.87, 0.71))),
        _run('drm', 1, _heads((0.88, 0.66), (0.82, 0.74), (0.85, 0.69))),
    ]
    return dict(runs=runs, zero_shot=zs)


def test_compare_by_hand() -> None:
    out = ei.compare(_summary())
    assert out['baselines'] == ['flyp']  # every method but DRM
    # every run chooses β 0.5 on id_val (0.51 vs 0.50) -> the mixture
    mix, chosen = out['heads']['mixture'], out['heads']['beta@id_val']
    assert [s['head'] for s in chosen['seeds']] == ['beta0.5', 'beta0.5']
    assert chosen['best'] == mix['best']
    # FLYP's mixture curve (mean): (0.6, 0.7) -> (0.87, 0.67); its df
    # curve (0.6, 0.7) -> (0.91, 0.61); the cd curve (0.6, 0.7) -> (0.8,
    # 0.7); zero-shot: ID 0.6 only.
    # DRM seed 0 mixture (0.87, 0.71): mixture curve 0.67, df curve
    # 0.7 - 0.09 * 0.27 / 0.31 = 0.621613 -> best is the mixture: +0.04
    s0, s1 = mix['seeds']
    assert s0['best_curve'] == 'flyp/mixture'
    assert s0['best'] == pytest.approx(0.04, abs=TOL)
    assert s0['same'] == pytest.approx(0.04, abs=TOL)
    assert s0['flyp_df'] == pytest.approx(0.71 - (0.7 - 0.09 * 0.27 / 0.31),
                                          abs=TOL)
    # seed 1 (0.85, 0.69): mixture curve 0.7 - 0.03 * 0.25 / 0.27
    assert s1['best'] == pytest.approx(0.69 - (0.7 - 0.03 * 0.25 / 0.27),
                                       abs=TOL)
    assert mix['best'][0] == pytest.approx((s0['best'] + s1['best']) / 2,
                                           abs=TOL)
    assert mix['best'][1] == pytest.approx(
        abs(s0['best'] - s1['best']) / math.sqrt(2), abs=TOL)
    # ID minus FLYP's df head at alpha 1 (mean 0.91)
    assert mix['id_vs_flyp'][0] == pytest.approx(0.86 - 0.91, abs=TOL)
    # DRM's cd head (0.82, 0.74) is beyond every curve's ID range but the
    # mixture's (0.6 .. 0.87): 0.7 - 0.03 * 0.22 / 0.27
    cd = out['heads']['cd']['seeds'][0]
    assert cd['best_curve'] == 'flyp/mixture'
    assert cd['best'] == pytest.approx(0.74 - (0.7 - 0.03 * 0.22 / 0.27),
                                       abs=TOL)
    assert cd['same'] is None  # FLYP's cd curve ends at ID 0.8
    assert out['heads']['cd']['n_same'] == 0


def test_baselines_get_the_same_inference_heads() -> None:
    curves = ei.baseline_curves(_summary(), ('flyp', ))
    assert [ei.curve_name(c) for c in curves] == [
        'flyp/df', 'flyp/cd', 'flyp/mixture', 'flyp/beta@id_val',
        'flyp/beta@within1', 'zeroshot/beta']
    zs = curves[-1]['points']
    assert [p['beta'] for p in zs] == list(ei.BETA_GRID)
    assert zs[5]['test/acc'] == pytest.approx(0.65, abs=TOL)


def _world(seed, holds, gaps):
    seeds = [dict(best=g) for g in gaps]
    return dict(seed=seed, premise=dict(holds=holds),
                comparison=dict(heads={'mixture': dict(seeds=seeds)}))


def test_pooled_spreads_by_hand() -> None:
    ws = [_world(1, True, [0.02, 0.04]), _world(2, True, [0.10, 0.12]),
          _world(3, False, [None, None])]
    out = worlds.pool(ws, 'mixture', 'best')
    # world means 0.03 and 0.11 (world 3 has no value): mean 0.07, world
    # spread |0.11 - 0.03| / sqrt 2; seed stds both 0.02 / sqrt 2
    assert out['n_worlds'] == 2
    assert out['mean'] == pytest.approx(0.07, abs=TOL)
    assert out['world_spread'] == pytest.approx(0.08 / math.sqrt(2), abs=TOL)
    assert out['seed_spread'] == pytest.approx(0.02 / math.sqrt(2), abs=TOL)
    assert [p['n'] for p in out['per_world']] == [2, 2, 0]


def test_method_standing_by_hand() -> None:
    out = ei.method_standing(_summary())
    assert list(out) == ['flyp', 'drm']
    # FLYP's df curve (mean): (0.6, 0.7) -> (0.91, 0.61); DRM's df curve
    # (0.6, 0.7) -> (0.89, 0.66); mixture curves: FLYP (0.6, 0.7) ->
    # (0.87, 0.67), DRM (0.6, 0.7) -> (0.86, 0.70).
    d0, d1 = out['drm']['df']['seeds']
    assert d0['vs_flyp'] == pytest.approx(0.66 - (0.7 - 0.09 * 0.30 / 0.31),
                                          abs=TOL)
    assert d1['vs_flyp'] == pytest.approx(0.66 - (0.7 - 0.09 * 0.28 / 0.31),
                                          abs=TOL)
    assert d0['vs_drm'] is None and out['drm']['df']['n_vs_drm'] == 0
    assert out['drm']['df']['id'][0] == pytest.approx(0.89, abs=TOL)
    # FLYP's df heads (ID 0.90, 0.92) lie beyond DRM's df curve (ID <= 0.89)
    assert out['flyp']['df']['n_vs_drm'] == 0
    assert out['flyp']['df']['vs_flyp'] == []  # never against itself
    # β@id_val picks β 0.5 for every run: FLYP seed 0 (0.86, 0.66) against
    # DRM's mixture curve at 0.86: 0.70; seed 1 (0.88) is beyond it.
    f0, f1 = out['flyp']['beta@id_val']['seeds']
    assert f0['head'] == 'beta0.5'
    assert f0['vs_drm'] == pytest.approx(-0.04, abs=TOL)
    assert f1['vs_drm'] is None
    assert out['flyp']['beta@id_val']['vs_drm'] == [
        pytest.approx(-0.04, abs=TOL), 0.0]
    assert out['flyp']['beta@id_val']['n_vs_drm'] == 1


def test_every_method_pooled_over_worlds_by_hand() -> None:
    def world(seed, ood, vs_drm):
        seeds = [dict(id=0.9, ood=o, vs_flyp=None, vs_drm=v)
                 for o, v in zip(ood, vs_drm)]
        heads = {h: dict(seeds=seeds) for h in ei.STANDING_HEADS}
        return dict(seed=seed, methods={'lipsum': heads})
    ws = [world(1, [0.60, 0.64], [-0.02, None]),
          world(2, [0.70, 0.70], [-0.06, -0.04])]
    [df, _] = worlds.pool_methods(ws)
    assert (df['method'], df['head']) == ('lipsum', 'df')
    # OOD: world means 0.62, 0.70 -> 0.66; world spread 0.08 / sqrt 2;
    # seed stds 0.04 / sqrt 2 and 0 -> rms 0.02
    assert df['ood']['mean'] == pytest.approx(0.66, abs=TOL)
    assert df['ood']['world_spread'] == pytest.approx(0.08 / math.sqrt(2),
                                                      abs=TOL)
    assert df['ood']['seed_spread'] == pytest.approx(0.02, abs=TOL)
    # vs DRM: world 1 has one seed (-0.02, std 0), world 2 mean -0.05
    assert df['vs_drm']['mean'] == pytest.approx(-0.035, abs=TOL)
    assert df['vs_flyp'] == dict(n_worlds=0, mean=None, world_spread=None,
                                 seed_spread=None)
    # world spread |-0.05 + 0.02| / sqrt 2 = 0.0212; seed stds 0 and
    # 0.02 / sqrt 2 -> rms sqrt(0.0002 / 2) = 0.01
    assert df['vs_drm']['seed_spread'] == pytest.approx(0.01, abs=TOL)
    table = worlds.format_methods(worlds.pool_methods(ws), 2)
    assert '| lipsum | df | 90.0 (0.0 / 0.0) | 66.0 (5.7 / 2.0) | n/a | ' \
        '-3.5 (2.1 / 1.0) |' in table

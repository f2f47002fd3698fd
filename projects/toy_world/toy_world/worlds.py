"""The study over several worlds: is DRM's gain a property of the method
or of one world?

World seed ``s`` varies the world, its caption corpus and the tiny CLIP's
pretraining together: ``WorldSettings.seed = s``, corpus seed
``s + CORPUS_SEED_OFFSET``, pretraining seed ``s`` (``s = 0`` is the main
study's world: world 0, corpus 1, pretraining 0). The knobs are the study's
(:data:`~.caption_corpus.PREMISE_KNOBS`, the configs' budget); only the
seeds change. For each world, in this order:

1. **premise** on the validation splits only: the zero-shot model and
   FLYP over the fine-tuning seeds are run (every model is evaluated on
   ``id_val`` and ``val`` besides the test splits,
   :attr:`~.demo.DemoSettings.extra_splits`), and :func:`measure_premise`
   reads their ``val`` numbers — zero-shot cd − df, FLYP − zero-shot df —
   and writes ``premise.json`` before CE and DRM are trained;
2. **the study** (:func:`~.demo.run_demo`: FLYP's runs come from the
   cache) with every β of :data:`~.equal_inference.BETA_GRID` evaluated
   on every model and WiSE-FT point;
3. **the comparison** at equal inference (:func:`~.equal_inference.
   compare`), written with the premise to ``world.json``.

Each world's ``world.json`` is keyed by a hash of its settings, and each
run by the study's own cache, so a killed study continues where it stopped.
The pooled report (:func:`pool`) gives, per quantity, the mean over worlds
of the per-world means, the world spread (sample std over worlds of the
per-world means) and the seed spread (root mean square over worlds of the
per-world sample std over seeds).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import statistics
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from .demo import (EXTRA_SPLITS, ID_SET, DemoSettings, _fingerprint,
                   mean_std, run_demo)
from .equal_inference import (BETA_GRID, BETA_RULES, COMPARED_HEADS,
                              STANDING_HEADS, chosen_betas, compare,
                              method_standing)
from .paths import CHECKOUT_ROOT
from .toy_world import class_habitats

#: Corpus seed of world seed ``s``: ``s + 1`` (world 0 -> the study's 1).
CORPUS_SEED_OFFSET = 1
#: Default world seeds: five worlds, none of them the study's world 0 on
#: which the premise knobs were chosen.
DEFAULT_WORLD_SEEDS = (1, 2, 3, 4, 5)
DEFAULT_WORLDS_DIR = CHECKOUT_ROOT / 'work_dirs' / 'toy_worlds'
DEFAULT_WORLDS_DATA = CHECKOUT_ROOT / 'data' / 'toy' / 'worlds'
#: The premise rule of the top README (written before the knob trials):
#: zero-shot cd above df on ``val`` by >= 3 points and FLYP above
#: zero-shot df on ``val`` by >= 2 points.
PREMISE_CD_MARGIN = 0.03
PREMISE_FLYP_MARGIN = 0.02
PREMISE_SPLITS = ('id_val', 'val')
# Bump when a world.json holds something else (2: every method's standing).
WORLDS_VERSION = 2
#: The headline rows of the report: (DRM head, quantity).
HEADLINE = [('mixture', 'best'), ('beta@id_val', 'best'),
            ('beta@within1', 'best'), ('df', 'best'), ('cd', 'best'),
            ('mixture', 'same'), ('beta@id_val', 'same'), ('df', 'same'),
            ('cd', 'same'), ('mixture', 'flyp_df'),
            ('beta@id_val', 'id_vs_flyp')]
QUANTITY_TITLES = dict(
    best='OOD vs best baseline curve', same='OOD vs FLYP same head curve',
    flyp_df='OOD vs FLYP df curve', id_vs_flyp='ID − FLYP (α = 1)')


@dataclasses.dataclass(frozen=True)
class WorldsSettings:
    """The worlds study.

    Attributes:
        world_seeds: one world per seed (world, corpus and pretraining
            seeds varied together).
        base: the study run in every world (methods, fine-tuning seeds,
            alphas, budget, config overrides, ``world`` and ``pretrain``
            as templates whose seeds and habitats are replaced per world);
            its ``betas`` and ``extra_splits`` are set to
            :data:`BETA_GRID` and ``('id_val', 'val')``.
        work_dir: one folder per world plus the pooled report.
        data_dir: one world folder per seed (the CLIPs go to
            ``base.pretrain_cache_dir``).
    """
    world_seeds: Sequence[int] = DEFAULT_WORLD_SEEDS
    base: DemoSettings = dataclasses.field(default_factory=DemoSettings)
    work_dir: str = str(DEFAULT_WORLDS_DIR)
    data_dir: str = str(DEFAULT_WORLDS_DATA)

    def __post_init__(self) -> None:
        seeds = tuple(int(s) for s in self.world_seeds)
        if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise ValueError(f'WorldsSettings.world_seeds: give distinct '
                             f'seeds >= 0, got {list(self.world_seeds)}.')
        object.__setattr__(self, 'world_seeds', seeds)
        missing = [m for m in ('flyp', 'drm') if m not in self.base.methods]
        if missing:
            raise ValueError(f'WorldsSettings.base.methods must include '
                             f'{missing} (the premise and the comparison '
                             f'need them), got {self.base.methods}.')
        if self.base.world_kind != 'premise' or self.base.validation:
            raise ValueError('WorldsSettings.base: the worlds study runs the '
                             'premise world on the test splits (world_kind='
                             '"premise", validation=False).')


def world_settings(settings: WorldsSettings, seed: int) -> DemoSettings:
    """The study of world ``seed``: the base study with the world, the
    premise corpus (its habitats and seed) and the pretraining seed
    replaced, every β of the grid and the validation splits evaluated."""
    base = settings.base
    world = dataclasses.replace(base.world, seed=seed)
    corpus = dataclasses.replace(
        base.pretrain.corpus, habitats=class_habitats(world),
        seed=seed + CORPUS_SEED_OFFSET)
    pretrain = dataclasses.replace(base.pretrain, corpus=corpus, seed=seed)
    folder = pathlib.Path(settings.work_dir) / f'world{seed}'
    return dataclasses.replace(
        base, world=world, pretrain=pretrain, work_dir=str(folder),
        world_root=str(pathlib.Path(settings.data_dir) / f'world{seed}'),
        betas=BETA_GRID, extra_splits=EXTRA_SPLITS, reference=None)


# -------------------------------------------------------------- premise
def validation_view(metrics: Mapping[str, float],
                    splits: Sequence[str] = PREMISE_SPLITS
                    ) -> Dict[str, float]:
    """Only the ``<head>/<split>/<metric>`` entries of ``splits``: what the
    premise may read (values of other splits are never touched)."""
    return {k: metrics[k] for k in list(metrics)
            if k.count('/') == 2 and k.split('/')[1] in splits}


def measure_premise(zero_shot: Mapping[str, float],
                    flyp_finals: Sequence[Mapping[str, float]]
                    ) -> Dict[str, Any]:
    """The world's premise on the validation splits (ID ``id_val``, OOD
    ``val``), from the zero-shot metrics and FLYP's fine-tuned models
    (α = 1, one per seed).

    Returns:
        dict: ``zs_df``, ``zs_cd``, ``flyp`` (mean over seeds, df head):
        ``val`` accuracy; ``cd_minus_df`` = zs_cd − zs_df and
        ``flyp_minus_df`` = flyp − zs_df on ``val``; ``flyp_id_val``;
        ``holds``: cd_minus_df >= :data:`PREMISE_CD_MARGIN` and
        flyp_minus_df >= :data:`PREMISE_FLYP_MARGIN`; ``paper_regime``:
        FLYP above both zero-shot heads on ``val``.
    """
    if not flyp_finals:
        raise ValueError('measure_premise: no FLYP run; the premise needs '
                         'FLYP on the validation splits.')
    zs = validation_view(zero_shot)
    flyp = [validation_view(f) for f in flyp_finals]
    out = dict(zs_df=zs['df/val/acc'], zs_cd=zs['cd/val/acc'],
               zs_df_id_val=zs['df/id_val/acc'],
               zs_cd_id_val=zs['cd/id_val/acc'],
               flyp=statistics.fmean(f['df/val/acc'] for f in flyp),
               flyp_id_val=statistics.fmean(f['df/id_val/acc'] for f in flyp),
               flyp_seeds=[f['df/val/acc'] for f in flyp],
               splits=list(PREMISE_SPLITS))
    out['cd_minus_df'] = out['zs_cd'] - out['zs_df']
    out['flyp_minus_df'] = out['flyp'] - out['zs_df']
    out['holds'] = bool(out['cd_minus_df'] >= PREMISE_CD_MARGIN and
                        out['flyp_minus_df'] >= PREMISE_FLYP_MARGIN)
    out['paper_regime'] = bool(out['flyp'] > max(out['zs_df'],
                                                   out['zs_cd']))
    return out


# ------------------------------------------------------------ one world
def _write_json(path: pathlib.Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix('.tmp')
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def world_key(demo: DemoSettings) -> str:
    """What a cached ``world.json`` was computed from."""
    data = dataclasses.asdict(demo)
    data.pop('work_dir')
    return _fingerprint(dict(settings=data, world=demo.world.hash(),
                             pretrain=demo.pretrain.hash(),
                             version=WORLDS_VERSION))


def run_world(settings: WorldsSettings, seed: int,
              log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Premise, study and comparison of world ``seed`` (cached)."""
    demo = world_settings(settings, seed)
    folder = pathlib.Path(demo.work_dir)
    key = world_key(demo)
    cache = folder / 'world.json'
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get('key') == key:
            log(f'[worlds] world {seed}: cached ({cache})')
            return cached
    start = time.perf_counter()
    log(f'[worlds] world {seed}: premise on the validation splits '
        f'(zero-shot, FLYP x {len(demo.seeds)} seeds)')
    first = run_demo(dataclasses.replace(demo, methods=('flyp', )), log=log)
    premise = measure_premise(
        first['zero_shot'],
        [r['final'] for r in first['runs'] if r['method'] == 'flyp'])
    _write_json(folder / 'premise.json', dict(key=key, seed=seed,
                                              premise=premise))
    log(f'[worlds] world {seed}: premise {"holds" if premise["holds"] else "fails"}'
        f' (val: zero-shot cd − df {100 * premise["cd_minus_df"]:+.1f}, '
        f'FLYP − zero-shot df {100 * premise["flyp_minus_df"]:+.1f})')
    summary = run_demo(demo, log=log)
    out = dict(
        key=key, seed=seed, world_seed=demo.world.seed,
        corpus_seed=demo.pretrain.corpus.seed,
        pretrain_seed=demo.pretrain.seed, world_hash=demo.world.hash(),
        pretrain_hash=demo.pretrain.hash(), seeds=list(demo.seeds),
        premise=premise, comparison=compare(summary),
        methods=method_standing(summary),
        chosen_betas=chosen_betas(summary),
        zero_shot={k: v for k, v in summary['zero_shot'].items()
                   if k.split('/')[0] in ('df', 'cd', 'mixture')},
        flyp_df=[r['final'][f'df/{ID_SET}/acc'] for r in summary['runs']
                 if r['method'] == 'flyp'],
        seconds=round(time.perf_counter() - start, 1))
    _write_json(cache, out)
    return out


# ---------------------------------------------------------------- pool
def pool(worlds: Sequence[Mapping[str, Any]], head: str,
         quantity: str) -> Dict[str, Any]:
    """One quantity of one DRM head over worlds: per world its mean and
    sample std over seeds; pooled: ``mean`` (of the world means),
    ``world_spread`` (sample std of the world means), ``seed_spread``
    (root mean square of the per-world seed stds); worlds where no seed
    had a value (ID outside every curve) are left out and counted."""
    per_world, values = [], []
    for w in worlds:
        values.append([s[quantity]
                       for s in w['comparison']['heads'][head]['seeds']
                       if s[quantity] is not None])
        per_world.append(dict(seed=w['seed'], n=len(values[-1]),
                              stats=mean_std(values[-1])))
    return dict(head=head, quantity=quantity, per_world=per_world,
                **_pool_values(values))


def _pool_values(per_world: Sequence[Sequence[float]]) -> Dict[str, Any]:
    """Pooled statistics of per-world lists of per-seed values (as
    :func:`pool`); empty lists (no seed had a value) are left out."""
    stats = [mean_std(v) for v in per_world if v]
    means = [m for m, _ in stats]
    return dict(n_worlds=len(means),
                mean=statistics.fmean(means) if means else None,
                world_spread=statistics.stdev(means) if len(means) > 1
                else None,
                seed_spread=math.sqrt(statistics.fmean(
                    sd * sd for _, sd in stats)) if stats else None)


#: Quantities of the every-method table, with their titles.
STANDING_QUANTITIES = dict(id='ID acc', ood='OOD acc',
                           vs_flyp='OOD vs FLYP same head',
                           vs_drm='OOD vs DRM same head')


def pool_methods(worlds: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Every method's standing (:func:`~.equal_inference.method_standing`)
    pooled over ``worlds``: one row per method and head, each quantity of
    :data:`STANDING_QUANTITIES` with its mean, world and seed spread."""
    rows = []
    methods = list(dict.fromkeys(m for w in worlds for m in w['methods']))
    for method in methods:
        for head in STANDING_HEADS:
            row: Dict[str, Any] = dict(method=method, head=head)
            for key in STANDING_QUANTITIES:
                row[key] = _pool_values([
                    [s[key] for s in w['methods'][method][head]['seeds']
                     if s[key] is not None]
                    for w in worlds if method in w['methods']])
            rows.append(row)
    return rows


def summarize_worlds(worlds: Sequence[Mapping[str, Any]],
                     settings: WorldsSettings) -> Dict[str, Any]:
    """The pooled report over all worlds and over the premise worlds."""
    holding = [w for w in worlds if w['premise']['holds']]
    rows = []
    for head, quantity in HEADLINE:
        rows.append(dict(all=pool(worlds, head, quantity),
                         premise=pool(holding, head, quantity)))
    goal = [w['seed'] for w in holding
            if (_world_mean(w, 'beta@id_val', 'best') or -1) >= 0.02]
    return dict(world_seeds=list(settings.world_seeds),
                finetune_seeds=list(settings.base.seeds),
                premise_worlds=[w['seed'] for w in holding],
                worlds_gap_2=goal, rows=rows,
                methods=dict(all=pool_methods(worlds),
                             premise=pool_methods(holding)),
                worlds=list(worlds))


def _world_mean(world: Mapping[str, Any], head: str,
                quantity: str) -> Optional[float]:
    values = world['comparison']['heads'][head][quantity]
    return values[0] if values else None


def _pct(value: Optional[float], signed: bool = True) -> str:
    if value is None:
        return 'n/a'
    return (f'{100 * value:+.1f}' if signed else f'{100 * value:.1f}')


def format_worlds(report: Mapping[str, Any]) -> str:
    """The per-world table and the pooled table (Markdown, percent)."""
    worlds = report['worlds']
    lines = [
        f'Toy worlds: {len(worlds)} world seeds × '
        f'{len(report["finetune_seeds"])} fine-tuning seeds; premise on '
        f'the validation splits (val) before CE / DRM ran; accuracy on '
        f'id_test (ID) / test (OOD) at α = 1, percent; gaps: OOD minus a '
        f'WiSE-FT curve (mean over seeds) at the same ID accuracy; ± : '
        f'sample std over fine-tuning seeds.', '',
        '| world | zs cd − df (val) | FLYP − zs df (val) | premise | β@id_val '
        '(DRM seeds) | DRM β@id_val ID / OOD | DRM mixture β 0.5 vs best | '
        'DRM β@id_val vs best (best curve) | DRM β@within1 vs best | DRM '
        'β@id_val vs FLYP same head | DRM β@id_val ID − FLYP |',
        '|' + '---|' * 11]
    for w in worlds:
        p = w['premise']
        heads = w['comparison']['heads']

        def cell(head, quantity):
            s = heads[head][quantity]
            n, total = heads[head][f'n_{quantity}'], len(heads[head]['seeds'])
            if not s:
                return 'n/a'
            text = f'{100 * s[0]:+.1f} ± {100 * s[1]:.1f}'
            return text + (f' ({n} of {total})' if n < total else '')
        betas = ', '.join(f'{b:g}' for b in
                          w['chosen_betas']['drm']['id_val'])
        chosen = heads['beta@id_val']
        best = sorted({s['best_curve'] for s in chosen['seeds']
                       if s['best_curve']})
        lines.append(
            f'| {w["seed"]} | {_pct(p["cd_minus_df"])} | '
            f'{_pct(p["flyp_minus_df"])} | '
            f'{"holds" if p["holds"] else "fails"} | {betas} | '
            f'{100 * chosen["id"][0]:.1f} / {100 * chosen["ood"][0]:.1f} | '
            f'{cell("mixture", "best")} | {cell("beta@id_val", "best")}'
            f' ({", ".join(best) or "none"}) | '
            f'{cell("beta@within1", "best")} | '
            f'{cell("beta@id_val", "same")} | '
            f'{cell("beta@id_val", "id_vs_flyp")} |')
    lines += ['', 'Pooled: mean of the per-world means; world spread: sample '
              'std of the per-world means; seed spread: root mean square of '
              'the per-world std over fine-tuning seeds. Premise worlds: '
              f'{report["premise_worlds"] or "none"}; among them DRM '
              f'β@id_val ≥ 2 points above the best baseline in '
              f'{len(report["worlds_gap_2"])} of '
              f'{len(report["premise_worlds"])}.', '',
              '| DRM head | quantity | all worlds: mean | world spread | '
              'seed spread | premise worlds: mean | world spread | seed '
              'spread |', '|' + '---|' * 8]
    for row in report['rows']:
        a, p = row['all'], row['premise']
        lines.append(
            f'| {a["head"]} | {QUANTITY_TITLES[a["quantity"]]} | '
            f'{_pct(a["mean"])} | {_pct(a["world_spread"], False)} | '
            f'{_pct(a["seed_spread"], False)} | {_pct(p["mean"])} | '
            f'{_pct(p["world_spread"], False)} | '
            f'{_pct(p["seed_spread"], False)} |')
    lines += ['', format_methods(report['methods']['all'], len(worlds))]
    holding = report['premise_worlds']
    if holding and len(holding) < len(worlds):
        lines += ['', format_methods(
            report['methods']['premise'], len(holding),
            f'premise worlds {holding}')]
    return '\n'.join(lines)


def format_methods(rows: Sequence[Mapping[str, Any]], n_worlds: int,
                   worlds_label: str = 'all worlds') -> str:
    """The every-method table (Markdown, percent): per method and head,
    ID and OOD accuracy at α = 1 and OOD minus FLYP's and DRM's WiSE-FT
    curves of the same head, each as mean over worlds (world spread /
    seed spread); ``[k of n]`` when only k worlds had a value."""
    def cell(q, signed):
        if q['mean'] is None:
            return 'n/a'
        text = (f'{_pct(q["mean"], signed)} ({_pct(q["world_spread"], False)}'
                f' / {_pct(q["seed_spread"], False)})')
        return text + (f' [{q["n_worlds"]} of {n_worlds}]'
                       if q['n_worlds'] < n_worlds else '')
    lines = [f'Every method at equal inference, {worlds_label}: mean over '
             'worlds (world spread / seed spread); head df = class names only, '
             'β@id_val = the mixture with β chosen on id_val; "OOD vs X same '
             'head": OOD minus X\'s WiSE-FT curve of the same head at the '
             'same ID (n/a: outside its ID range).', '',
             '| method | head | ' + ' | '.join(STANDING_QUANTITIES.values())
             + ' |', '|' + '---|' * (2 + len(STANDING_QUANTITIES))]
    for row in rows:
        cells = [cell(row[k], k.startswith('vs_')) for k in
                 STANDING_QUANTITIES]
        lines.append(f'| {row["method"]} | {row["head"]} | '
                     + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def plot_gain_vs_premise(report: Mapping[str, Any], path) -> None:
    """DRM's gain (β@id_val mixture vs the best baseline, mean ± std over
    seeds) against each premise measure on ``val``; filled markers: the
    premise holds."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    for ax, (key, title) in zip(axes, (
            ('cd_minus_df', 'zero-shot cd − df, val (points)'),
            ('flyp_minus_df', 'FLYP − zero-shot df, val (points)'))):
        for w in report['worlds']:
            stats = w['comparison']['heads']['beta@id_val']['best']
            if not stats:
                continue
            x = 100 * w['premise'][key]
            holds = w['premise']['holds']
            ax.errorbar(x, 100 * stats[0], yerr=100 * stats[1], fmt='o',
                        color='tab:green', mfc='tab:green' if holds
                        else 'white', capsize=3)
            ax.annotate(str(w['seed']), (x, 100 * stats[0]), fontsize=7,
                        xytext=(4, 4), textcoords='offset points')
        ax.axhline(0, color='gray', lw=0.8)
        ax.set_xlabel(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel('DRM (β on id_val) OOD − best baseline\n'
                       'at equal ID (points, test)')
    fig.suptitle('DRM gain against premise strength, per world (filled: '
                 'premise holds; bars: ±1 std over seeds)', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_worlds(settings: WorldsSettings,
               log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Every world (cached per world and per run), then the pooled report:
    ``worlds.json``, ``worlds.md`` and ``gain_vs_premise.png`` in
    ``settings.work_dir``."""
    start = time.perf_counter()
    worlds = []
    for i, seed in enumerate(settings.world_seeds, 1):
        log(f'[worlds] world {i} of {len(settings.world_seeds)}: seed {seed}')
        worlds.append(run_world(settings, seed, log=log))
    report = summarize_worlds(worlds, settings)
    report['wall_seconds'] = round(time.perf_counter() - start, 1)
    work = pathlib.Path(settings.work_dir)
    _write_json(work / 'worlds.json', report)
    table = format_worlds(report)
    (work / 'worlds.md').write_text(table + '\n')
    plot_gain_vs_premise(report, work / 'gain_vs_premise.png')
    log(table)
    log(f'[worlds] wall time {report["wall_seconds"]:.0f} s; report: '
        f'{work / "worlds.md"}')
    return report


__all__ = ['WorldsSettings', 'world_settings',
           'validation_view', 'measure_premise', 'run_world', 'pool',
           'summarize_worlds', 'format_worlds', 'pool_methods',
           'format_methods', 'plot_gain_vs_premise',
           'run_worlds', 'BETA_RULES', 'COMPARED_HEADS']

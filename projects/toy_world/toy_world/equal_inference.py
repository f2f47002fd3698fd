"""DRM against its baselines at equal inference and equal ID accuracy.

Every fine-tuned CLIP of the study has a df head and a cd head (the FLYP
and CE configs keep the concept descriptions), so a baseline gets DRM's
dual inference by evaluating its own cd head and the β-mixtures of the two
(:attr:`~.demo.DemoSettings.betas`); WiSE-FT mixes every head's weights
with the zero-shot model. What L_WRM adds is then DRM's head against the
*same* head of a model trained without it (FLYP = DRM's objective at
λ = 0), at the same ID accuracy.

Functions here read the summaries :func:`~.demo.run_demo` returns:

* :func:`choose_beta`: β of a fine-tuned model picked on ``id_val`` (rule
  ``'id_val'``: the most accurate mixture; rule ``'within1'``: the most cd
  weight whose ``id_val`` accuracy stays within 1 point of the df head's),
  read afterwards on the test splits;
* :func:`baseline_curves`: the baselines' WiSE-FT curves (mean over seeds)
  per head, with the chosen-β heads, and the zero-shot β-curve;
* :func:`best_gap`: OOD accuracy minus the *best* of those curves at the
  same ID accuracy;
* :func:`compare`: per DRM head and seed, that gap, the gap to FLYP's
  same head (L_WRM's own share) and to FLYP's df curve (the old headline);
* :func:`method_standing`: every method of the study (baselines and DRM)
  per head, against FLYP's and DRM's curves of the same head: where each
  stands at equal inference.
"""
from __future__ import annotations

import statistics
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, \
    Tuple

from .demo import ID_SET, OOD_SET, beta_head, mean_std, ood_above_curve

#: β grid the choice on ``id_val`` reads (0: cd only, 1: df only).
BETA_GRID: Tuple[float, ...] = tuple(i / 10 for i in range(11))
#: The validation split of the ID role, where β is chosen.
BETA_SPLIT = 'id_val'
#: β-choice rules: ``id_val``: most ``id_val``-accurate β; ``within1``: the
#: smallest β (most cd weight) whose ``id_val`` accuracy is at most
#: :data:`WITHIN` below the df head's.
BETA_RULES: Tuple[str, ...] = ('id_val', 'within1')
WITHIN = 0.01
#: Heads of each fine-tuned model that :func:`compare` reports: the two
#: heads, the paper's fixed β = 0.5 mixture and the two chosen-β mixtures.
COMPARED_HEADS: Tuple[str, ...] = ('df', 'cd', 'mixture') + tuple(
    f'beta@{rule}' for rule in BETA_RULES)


def choose_beta(final: Mapping[str, float], rule: str,
                betas: Sequence[float] = BETA_GRID,
                split: str = BETA_SPLIT, within: float = WITHIN) -> float:
    """The β of one fine-tuned model chosen on ``split`` by ``rule``.

    Args:
        final (Mapping[str, float]): the model's metrics
            (``beta<β>/<split>/acc`` for every β of ``betas`` and
            ``df/<split>/acc``), e.g. a run's ``final``.
        rule (str): ``'id_val'``: the β of highest accuracy, ties to the
            larger β (the df side, so a tie never favours the cd head's
            OOD robustness); ``'within1'``: the smallest β whose accuracy
            is at least the df head's minus ``within``.
        betas (Sequence[float]): the grid. Defaults to :data:`BETA_GRID`.
        split (str): where accuracy is read. Defaults to ``'id_val'``.
        within (float): the tolerance of ``'within1'`` (accuracy as a
            fraction). Defaults to 0.01 (1 point).

    Returns:
        float: the chosen β.
    """
    if rule not in BETA_RULES:
        raise ValueError(f'choose_beta: unknown rule {rule!r}; choose from '
                         f'{BETA_RULES}.')
    missing = [beta_head(b) for b in betas
               if f'{beta_head(b)}/{split}/acc' not in final]
    if not betas or missing:
        raise KeyError(f'choose_beta: no {split} accuracy for heads '
                       f'{missing or "(empty grid)"}; run the study with '
                       f'betas={tuple(betas)} and extra_splits containing '
                       f'{split!r}.')
    acc = {b: final[f'{beta_head(b)}/{split}/acc'] for b in betas}
    if rule == 'id_val':
        return max(sorted(betas), key=lambda b: (acc[b], b))
    floor = final[f'df/{split}/acc'] - within
    return min(b for b in betas if acc[b] >= floor or b == max(betas))


def chosen_heads(final: Mapping[str, float],
                 betas: Sequence[float] = BETA_GRID) -> Dict[str, str]:
    """``{'beta@<rule>': 'beta<β>'}``: the head each rule picks for one
    fine-tuned model."""
    return {f'beta@{rule}': beta_head(choose_beta(final, rule, betas))
            for rule in BETA_RULES}


def _head_of(run: Mapping[str, Any], head: str,
             betas: Sequence[float]) -> str:
    if head.startswith('beta@'):
        return chosen_heads(run['final'], betas)[head]
    return head


def mean_curve(runs: Sequence[Mapping[str, Any]], head: str,
               betas: Sequence[float] = BETA_GRID) -> Dict[str, Any]:
    """The WiSE-FT curve of ``head`` over ``runs`` (mean over seeds per
    α); a chosen-β head (``'beta@id_val'``) follows each run's own β."""
    names = [_head_of(r, head, betas) for r in runs]
    alphas = [w['alpha'] for w in runs[0]['wise_ft']]
    points = []
    for alpha in alphas:
        at = [next(w for w in r['wise_ft'] if w['alpha'] == alpha)
              for r in runs]
        points.append({'alpha': alpha, **{
            f'{s}/acc': statistics.fmean(a[f'{n}/{s}/acc']
                                         for a, n in zip(at, names))
            for s in (ID_SET, OOD_SET)}})
    return dict(head=head, points=points)


def zero_shot_beta_curve(zero_shot: Mapping[str, float],
                         betas: Sequence[float] = BETA_GRID
                         ) -> Dict[str, Any]:
    """The zero-shot model's β-curve: every mixture of its df and cd heads
    (β = 1: df, β = 0.5: the zero-shot mixture, β = 0: cd)."""
    return dict(method='zeroshot', head='beta', points=[
        {'beta': b, **{f'{s}/acc': zero_shot[f'{beta_head(b)}/{s}/acc']
                       for s in (ID_SET, OOD_SET)}} for b in betas])


def baseline_curves(summary: Mapping[str, Any],
                    methods: Sequence[str],
                    heads: Sequence[str] = COMPARED_HEADS,
                    betas: Sequence[float] = BETA_GRID
                    ) -> List[Dict[str, Any]]:
    """Every baseline curve a DRM head is compared with: for each method of
    ``methods`` in ``summary`` and each of ``heads``, its WiSE-FT curve
    (mean over seeds), and the zero-shot β-curve."""
    curves = []
    for method in methods:
        runs = [r for r in summary['runs'] if r['method'] == method]
        if runs:
            curves += [dict(mean_curve(runs, h, betas), method=method)
                       for h in heads]
    curves.append(zero_shot_beta_curve(summary['zero_shot'], betas))
    return curves


def curve_name(curve: Mapping[str, Any]) -> str:
    """``'flyp/mixture'``, ``'zeroshot/beta'``."""
    return f'{curve["method"]}/{curve["head"]}'


def best_gap(curves: Sequence[Mapping[str, Any]], id_acc: float,
             ood_acc: float) -> Tuple[Optional[float], Optional[str]]:
    """``ood_acc`` minus the highest OOD accuracy any of ``curves`` reaches
    at ID accuracy ``id_acc`` (each linearly interpolated, as
    :func:`~.demo.ood_above_curve`), and that curve's name; ``(None,
    None)`` when no curve spans ``id_acc``."""
    gaps = [(g, curve_name(c)) for c in curves
            for g in [ood_above_curve(c, id_acc, ood_acc)] if g is not None]
    if not gaps:
        return None, None
    return min(gaps, key=lambda t: t[0])


def _final_points(summary: Mapping[str, Any], method: str, head: str,
                  betas: Sequence[float]):
    """For each run of ``method``: ``(run, head name, ID acc, OOD acc)`` of
    ``head`` at α = 1 on the test splits (a chosen-β head resolved per
    run)."""
    for run in (r for r in summary['runs'] if r['method'] == method):
        name = _head_of(run, head, betas)
        yield (run, name, run['final'][f'{name}/{ID_SET}/acc'],
               run['final'][f'{name}/{OOD_SET}/acc'])


def _seed_stats(seeds: Sequence[Mapping[str, Any]],
                keys: Sequence[str]) -> Dict[str, Any]:
    """``{'seeds': seeds, key: [mean, std], 'n_<key>': count}`` over the
    seeds whose ``key`` is not None."""
    stats: Dict[str, Any] = dict(seeds=list(seeds))
    for key in keys:
        values = [s[key] for s in seeds if s[key] is not None]
        stats[key] = mean_std(values)
        stats[f'n_{key}'] = len(values)
    return stats


def compare(summary: Mapping[str, Any], method: str = 'drm',
            heads: Sequence[str] = COMPARED_HEADS,
            baselines: Optional[Sequence[str]] = None,
            betas: Sequence[float] = BETA_GRID) -> Dict[str, Any]:
    """``method``'s heads against the baselines at equal inference.

    For each head of ``heads`` and each seed of ``method``: the chosen β
    (chosen-β heads), ID / OOD accuracy at α = 1 on the test splits, and
    OOD minus (``best``) the best baseline curve of
    :func:`baseline_curves` at the same ID accuracy, (``same``) FLYP's
    curve of the same head (what L_WRM adds at equal inference),
    (``flyp_df``) FLYP's df curve; ``id_vs_flyp``: ID minus FLYP's df head
    at α = 1 (mean over seeds). Seeds outside a curve's ID range give None.
    Each quantity also as ``[mean, std]`` over seeds (Nones left out,
    ``n_<name>`` counts the rest). ``baselines``: the methods compared
    with; default every other method of ``summary`` (FLYP, CE, and any
    method the study adds).
    """
    if baselines is None:
        baselines = sorted({r['method'] for r in summary['runs']} - {method})
    curves = baseline_curves(summary, baselines, heads, betas)
    flyp = {c['head']: c for c in curves if c['method'] == 'flyp'}
    flyp_runs = [r for r in summary['runs'] if r['method'] == 'flyp']
    flyp_id = statistics.fmean(r['final'][f'df/{ID_SET}/acc']
                               for r in flyp_runs) if flyp_runs else None
    out: Dict[str, Any] = dict(method=method, baselines=list(baselines),
                               heads={})
    for head in heads:
        seeds = []
        for run, name, i, o in _final_points(summary, method, head, betas):
            gap, best = best_gap(curves, i, o)
            seeds.append(dict(
                seed=run['seed'], head=name, id=i, ood=o, best=gap,
                best_curve=best,
                same=ood_above_curve(flyp[head], i, o) if head in flyp
                else None,
                flyp_df=ood_above_curve(flyp['df'], i, o) if 'df' in flyp
                else None,
                id_vs_flyp=None if flyp_id is None else i - flyp_id))
        out['heads'][head] = _seed_stats(
            seeds, ('id', 'ood', 'best', 'same', 'flyp_df', 'id_vs_flyp'))
    return out


#: Heads :func:`method_standing` reports: the class-name head (what each
#: method gives without dual inference) and the β chosen on ``id_val``
#: (what it gives with DRM's inference).
STANDING_HEADS: Tuple[str, ...] = ('df', 'beta@id_val')
#: Curves every method is placed against.
STANDING_REFERENCES: Tuple[str, ...] = ('flyp', 'drm')


def method_standing(summary: Mapping[str, Any],
                    heads: Sequence[str] = STANDING_HEADS,
                    references: Sequence[str] = STANDING_REFERENCES,
                    betas: Sequence[float] = BETA_GRID) -> Dict[str, Any]:
    """Where every fine-tuning method of ``summary`` stands, head by head.

    For each method and head of ``heads``, each seed's ID / OOD accuracy
    at α = 1 (test splits) and its OOD minus the WiSE-FT curve (mean over
    seeds) of each method of ``references`` with the *same* head
    (``vs_flyp``, ``vs_drm``; None outside the curve's ID range), then
    ``[mean, std]`` over seeds and ``n_<key>``. A method against its own
    curve is left out (None), not reported as 0.

    Returns:
        dict: ``{method: {head: {'seeds': [...], 'id': [m, s], ...}}}`` in
        the order the methods first appear in ``summary['runs']``.
    """
    methods = list(dict.fromkeys(r['method'] for r in summary['runs']))
    curves = {(ref, head): mean_curve(
        [r for r in summary['runs'] if r['method'] == ref], head, betas)
        for ref in references if ref in methods for head in heads}
    out: Dict[str, Any] = {}
    for method in methods:
        out[method] = {}
        for head in heads:
            seeds = []
            for run, name, i, o in _final_points(summary, method, head,
                                                 betas):
                row = dict(seed=run['seed'], head=name, id=i, ood=o)
                for ref in references:
                    curve = curves.get((ref, head))
                    row[f'vs_{ref}'] = (None if curve is None or ref == method
                                        else ood_above_curve(curve, i, o))
                seeds.append(row)
            out[method][head] = _seed_stats(
                seeds, ['id', 'ood'] + [f'vs_{r}' for r in references])
    return out


def chosen_betas(summary: Mapping[str, Any],
                 betas: Sequence[float] = BETA_GRID
                 ) -> Dict[str, Dict[str, List[float]]]:
    """Per method and rule, the β chosen on ``id_val`` for each seed."""
    out: Dict[str, Dict[str, List[float]]] = {}
    for run in summary['runs']:
        for rule in BETA_RULES:
            out.setdefault(run['method'], {}).setdefault(rule, []).append(
                choose_beta(run['final'], rule, betas))
    return out


def format_comparison(result: Mapping[str, Any],
                      label: Callable[[str], str] = str) -> List[str]:
    """Markdown rows: head, ID, OOD, vs best baseline, vs FLYP same head,
    vs FLYP df curve, ID − FLYP (percent, mean ± std over seeds)."""
    def cell(values, signed=True):
        if not values:
            return 'n/a'
        fmt = '{:+.1f}' if signed else '{:.1f}'
        return fmt.format(100 * values[0]) + f' ± {100 * values[1]:.1f}'
    lines = ['| head | ID acc | OOD acc | OOD vs best baseline | OOD vs FLYP '
             'same head | OOD vs FLYP df | ID − FLYP |',
             '|---|---|---|---|---|---|---|']
    for head, s in result['heads'].items():
        lines.append(f'| {label(head)} | {cell(s["id"], False)} | '
                     f'{cell(s["ood"], False)} | {cell(s["best"])} | '
                     f'{cell(s["same"])} | {cell(s["flyp_df"])} | '
                     f'{cell(s["id_vs_flyp"])} |')
    return lines

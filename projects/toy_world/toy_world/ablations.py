"""The paper's ablations in the toy world: DRM variants
run by the study's own machinery (:func:`~.demo.run_demo` with
``methods=('drm',)``, config overrides per variant, cached runs), each
compared with the FLYP WiSE-FT curve of the main study (``reference``).

One table per ablation: for each variant and head (df, cd, the β = 0.5
mixture) the ID and OOD accuracy and the OOD accuracy minus the FLYP
WiSE-FT curve at the same ID accuracy, mean ± std over seeds. The
``inference`` ablation trains DRM once per seed and evaluates df only, cd
only and the β-mixtures β = 0, 0.25, 0.5, 0.75, 1 on the same weights.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from .demo import (ID_SET, OOD_SET, DemoSettings, _reference_curve,
                   beta_head, mean_std, ood_above_curve, run_demo)

_SOFT = 'model.soft_labels.'
#: ablation -> variant -> config overrides of the DRM config.
ABLATIONS: Dict[str, Dict[str, Dict[str, Any]]] = {
    # which prompt set each loss uses (the paper's Table 3)
    'prompts': {
        'erm-df_wrm-cd': {},
        'erm-cd_wrm-cd': {'model.loss.erm_prompts': 'cd'},
        'erm-df_wrm-df': {'model.loss.wrm_prompts': 'df'},
        'erm-cd_wrm-df': {'model.loss.erm_prompts': 'cd',
                          'model.loss.wrm_prompts': 'df'},
    },
    # only one of the two losses
    'losses': {
        'erm+wrm': {},
        'erm-only': {'model.loss.wrm_weight': 0.0},
        'wrm-only': {'model.loss.erm_weight': 0.0},
    },
    # soft-label normalisation, each at its default τ (tau=None)
    'normalization': {
        name: {_SOFT + 'normalization': name, _SOFT + 'tau': None}
        for name in ('none', 'softmax', 'minmax', 'minmax_prob',
                     'minmax_class')
    },
    # dual inference: df, cd, mixtures over β, on the same runs
    'inference': {'drm': {}},
    # λ swept
    'lambda': {f'lambda{lam:g}': {'model.loss.wrm_weight': float(lam)}
               for lam in (0, 0.5, 1, 2, 4)},
    # the cheaper L_WRM text paths against the exact one (drm_mm's
    # DRMClassifier options wrm_text_grad / wrm_text_refresh /
    # wrm_text_classes); the toy has 8 classes, so a subset of 4 is 2 top
    # classes plus 2 drawn from the other 6
    'wrm_cost': {
        'exact': {},
        'nograd': {'model.wrm_text_grad': False},
        'nograd-k10': {'model.wrm_text_grad': False,
                       'model.wrm_text_refresh': 10},
        'subset4-k10': {'model.wrm_text_classes': 4,
                        'model.wrm_text_refresh': 10},
    },
}
#: β of the inference ablation's mixtures (0: cd only, 1: df only).
INFERENCE_BETAS = (0.0, 0.25, 0.5, 0.75, 1.0)
TRAINED_HEADS = ('df', 'cd', 'mixture')


def check_ablation(name: str,
                   variants: Optional[Sequence[str]] = None) -> List[str]:
    """The variants to run of ablation ``name`` (all by default); unknown
    names are one-line errors listing the choices."""
    if name not in ABLATIONS:
        raise ValueError(f'unknown ablation {name!r}; choose from '
                         f'{sorted(ABLATIONS)}.')
    known = list(ABLATIONS[name])
    if not variants:
        return known
    bad = [v for v in variants if v not in known]
    if bad:
        raise ValueError(f'ablation {name!r} has no variant(s) {bad}; choose '
                         f'from {known}.')
    return list(variants)


def ablation_heads(name: str) -> List[str]:
    """The heads a table of ablation ``name`` reports."""
    if name == 'inference':
        return list(TRAINED_HEADS) + [beta_head(b) for b in INFERENCE_BETAS]
    return list(TRAINED_HEADS)


def head_stats(summary: Mapping[str, Any], head: str) -> Dict[str, Any]:
    """ID / OOD acc of ``head`` over the DRM runs of ``summary`` and, per
    seed, its OOD minus the reference FLYP WiSE-FT curve (mean ± std;
    seeds outside the curve's ID range left out, counted in ``n_gap``)."""
    runs = [r for r in summary['runs'] if r['method'] == 'drm']
    ids = [r['final'][f'{head}/{ID_SET}/acc'] for r in runs]
    oods = [r['final'][f'{head}/{OOD_SET}/acc'] for r in runs]
    curve = _reference_curve(summary)
    gaps = [] if curve is None else [
        g for g in (ood_above_curve(curve, i, o) for i, o in zip(ids, oods))
        if g is not None]
    return dict(head=head, id=mean_std(ids), ood=mean_std(oods),
                gap=mean_std(gaps), n=len(runs), n_gap=len(gaps))


def run_ablation(name: str, base: DemoSettings, work_dir: str,
                 variants: Optional[Sequence[str]] = None,
                 log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run the variants of ablation ``name`` (DRM over ``base.seeds``, each
    in ``<work_dir>/<name>/<variant>``), write ``ablation.json`` and
    ``ablation.md`` to ``<work_dir>/<name>`` and return the summary."""
    chosen = check_ablation(name, variants)
    if not base.reference or not pathlib.Path(base.reference).is_file():
        raise ValueError(
            f'reference {base.reference!r} is no file: pass the results.json '
            f'of a study with FLYP (run projects/toy_world/tools/run_demo.py '
            f'first) as --reference.')
    folder = pathlib.Path(work_dir) / name
    out = dict(ablation=name, seeds=list(base.seeds),
               world_kind=base.world_kind, reference=base.reference,
               variants=[])
    for variant in chosen:
        options = ABLATIONS[name][variant]
        settings = dataclasses.replace(
            base, methods=('drm', ),
            cfg_options=dict(base.cfg_options, **options),
            work_dir=str(folder / variant),
            betas=INFERENCE_BETAS if name == 'inference' else ())
        log(f'[ablation {name}] variant {variant}: {options or "defaults"}')
        summary = run_demo(settings, log=log)
        out['variants'].append(dict(
            variant=variant, options=options,
            heads=[head_stats(summary, h) for h in ablation_heads(name)]))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'ablation.json').write_text(json.dumps(out, indent=1))
    table = format_ablation(out)
    (folder / 'ablation.md').write_text(table + '\n')
    log(table)
    return out


def _cell(values: Sequence[float], signed: bool = False) -> str:
    if not values:
        return 'n/a'
    mean, std = values
    return (f'{100 * mean:+.1f}' if signed else f'{100 * mean:.1f}') + \
        f' ± {100 * std:.1f}'


def format_ablation(out: Mapping[str, Any]) -> str:
    """One Markdown table: variant, head, ID acc, OOD acc, OOD vs the FLYP
    WiSE-FT curve (percent, mean ± std over seeds)."""
    lines = [
        f'Ablation `{out["ablation"]}` ({out["world_kind"]} world), DRM over '
        f'{len(out["seeds"])} seed(s), mean ± std; ID = {ID_SET}, OOD = '
        f'{OOD_SET}, accuracy in percent; "vs FLYP curve": OOD minus the '
        f'FLYP WiSE-FT curve of {out["reference"]} at the same ID accuracy.',
        '', '| variant | head | ID acc | OOD acc | OOD vs FLYP curve |',
        '|---|---|---|---|---|']
    for variant in out['variants']:
        for stats in variant['heads']:
            gap = _cell(stats['gap'], signed=True)
            if stats['gap'] and stats['n_gap'] < stats['n']:
                gap += f' ({stats["n_gap"]} of {stats["n"]} seeds)'
            lines.append(f'| {variant["variant"]} | {stats["head"]} | '
                         f'{_cell(stats["id"])} | {_cell(stats["ood"])} | '
                         f'{gap} |')
    return '\n'.join(lines)

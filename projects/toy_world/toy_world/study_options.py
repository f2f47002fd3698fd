"""Command-line options that ``tools/run_demo.py`` and
``tools/run_ablation.py`` share: the :class:`DemoSettings` fields both take
the same way (seeds, WiSE-FT weights, budget, caches, threads, config
overrides), and their mapping onto :class:`DemoSettings`."""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Dict, Mapping

from mmengine.config import DictAction

from .demo import DemoSettings, study_pretrain_settings
from .toy_world import WorldSettings

#: Help of each option of :func:`add_study_options` (by ``dest``); a tool
#: may word one for itself.
STUDY_OPTION_HELP = dict(
    seeds='(default: %(default)s)',
    alphas='WiSE-FT mixing weights, must include 1 (default: 0, 0.1, ..., '
    '1)',
    epochs='fine-tuning epochs (default: the configs\', '
    'projects/toy_world/configs/_base_/toy_finetune.py)',
    lr='fine-tuning learning rate (default: the configs\')',
    world_root='(default: %(default)s)',
    pretrain_cache_dir='(default: %(default)s)',
    threads='torch CPU threads (default: %(default)s)',
    cfg_options='config overrides for every config of the study, e.g. '
    'model.loss.wrm_weight=2 (cached runs are keyed by the merged config)',
    world_options='fields of toy_world.WorldSettings to change, e.g. '
    'n_train=12000 (the world and its runs are cached by their settings; '
    'use a --world-root of its own)',
    corpus_options='fields of the pretraining corpus (toy_world.'
    'CorpusSettings) to change, e.g. desc_confusion=0.3 (the CLIP is '
    'cached by its settings)',
)


def add_study_options(parser: argparse.ArgumentParser,
                      **help_texts: str) -> argparse.ArgumentParser:
    """Add ``--seeds --alphas --epochs --lr --world-root
    --pretrain-cache-dir --threads --cfg-options --world-options
    --corpus-options`` to ``parser``, in that order, with the defaults of
    :class:`DemoSettings`.

    ``help_texts`` replaces the help of some of them (keyed like
    :data:`STUDY_OPTION_HELP`, e.g. ``cfg_options='...'``).
    """
    unknown = sorted(set(help_texts) - set(STUDY_OPTION_HELP))
    if unknown:
        raise TypeError(f'add_study_options: no option {unknown}; choose '
                        f'from {sorted(STUDY_OPTION_HELP)}.')
    helps = {**STUDY_OPTION_HELP, **help_texts}
    d = DemoSettings()
    parser.add_argument('--seeds', nargs='+', type=int, default=list(d.seeds),
                        help=helps['seeds'])
    parser.add_argument('--alphas', nargs='+', type=float,
                        default=list(d.alphas), help=helps['alphas'])
    parser.add_argument('--epochs', type=int, default=None,
                        help=helps['epochs'])
    parser.add_argument('--lr', type=float, default=None, help=helps['lr'])
    parser.add_argument('--world-root', default=d.world_root,
                        help=helps['world_root'])
    parser.add_argument('--pretrain-cache-dir', default=d.pretrain_cache_dir,
                        help=helps['pretrain_cache_dir'])
    parser.add_argument('--threads', type=int, default=2,
                        help=helps['threads'])
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        default={}, help=helps['cfg_options'])
    parser.add_argument('--world-options', nargs='+', action=DictAction,
                        default={}, help=helps['world_options'])
    parser.add_argument('--corpus-options', nargs='+', action=DictAction,
                        default={}, help=helps['corpus_options'])
    return parser


def _replace(obj: Any, changes: Mapping[str, Any], option: str) -> Any:
    """``dataclasses.replace(obj, **changes)``, or a one-line ValueError
    naming ``option`` and the fields it takes."""
    fields = {f.name for f in dataclasses.fields(obj)}
    unknown = sorted(set(changes) - fields)
    if unknown:
        raise ValueError(f'{option}: {type(obj).__name__} has no field '
                         f'{unknown}; choose from {sorted(fields)}.')
    return dataclasses.replace(obj, **changes)


def world_and_pretrain(world_options: Mapping[str, Any],
                       corpus_options: Mapping[str, Any],
                       world_kind: str = 'premise') -> Dict[str, Any]:
    """The ``world`` and ``pretrain`` fields of :class:`DemoSettings` for
    ``--world-options`` / ``--corpus-options`` (an empty dict when both are
    empty: the study's own). The corpus follows the changed world (its
    habitats), then takes the corpus changes."""
    if not world_options and not corpus_options:
        return {}
    world = _replace(WorldSettings(), dict(world_options), '--world-options')
    pretrain = study_pretrain_settings(world_kind, world)
    corpus = _replace(pretrain.corpus, dict(corpus_options),
                      '--corpus-options')
    return dict(world=world,
                pretrain=dataclasses.replace(pretrain, corpus=corpus))


def study_settings(args: argparse.Namespace, **fields: Any) -> DemoSettings:
    """:class:`DemoSettings` of the options of :func:`add_study_options`
    in ``args``, plus ``fields`` (the tool's own: methods, work_dir...)."""
    worlds = world_and_pretrain(
        getattr(args, 'world_options', {}), getattr(args, 'corpus_options', {}),
        fields.get('world_kind', 'premise'))
    return DemoSettings(
        seeds=tuple(args.seeds), alphas=tuple(args.alphas),
        epochs=args.epochs, lr=args.lr, world_root=args.world_root,
        pretrain_cache_dir=args.pretrain_cache_dir,
        cfg_options=dict(args.cfg_options), **worlds, **fields)

"""Pretrain the tiny toy-world CLIP on the caption corpus, on CPU, cached.

The result plays the part of the web-pretrained CLIP in the toy world: the
weights are saved as a plain ``state_dict`` (tensors only) named after a
hash of every setting that shapes them, so a second call with the same
settings loads the file instead of training. After training the zero-shot
accuracy on the toy world is measured with default prompts ("df",
``"a photo of a {c}."``) and concept descriptions ("cd",
``projects/toy_world/prompts/toy.json``), in distribution (``id_test``) and
out of it (``val``, ``test``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pathlib
import time
import warnings
from dataclasses import dataclass, field
from typing import (Callable, Dict, List, Mapping, Optional, Sequence, Tuple,
                    Union)

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from mmengine.logging import print_log

from drm_mm.models.classifiers.text_prototypes import \
    class_prototypes as mean_prototypes
from drm_mm.prompts import load_descriptions

from .caption_corpus import CaptionCorpus, CorpusSettings, batch_indices, \
    build_corpus
from .paths import DEFAULT_CACHE_DIR, MODEL_CONFIG_DIR, PROMPTS_FILE
from .shapes import jpeg_roundtrip
from .toy_world import WorldSettings, background_images, iter_samples

PathLike = Union[str, os.PathLike]

# Bump when the training code changes what a setting produces (cache key).
PRETRAIN_VERSION = 1
DF_TEMPLATE = 'a photo of a {c}.'
EVAL_SPLITS: Tuple[str, ...] = ('id_test', 'val', 'test')

_registered = False


def register_toy_configs() -> None:
    """Make open_clip see the project's architecture JSONs (``drm-toy-*``),
    with open_clip's own ``add_model_config``."""
    global _registered
    if not _registered:
        open_clip.add_model_config(MODEL_CONFIG_DIR)
        _registered = True


def model_config(model_name: str) -> dict:
    """The open_clip architecture config of ``model_name``."""
    register_toy_configs()
    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        raise ValueError(
            f'Unknown open_clip architecture {model_name!r}: add '
            f'{model_name}.json to {MODEL_CONFIG_DIR} or pick one of '
            f'{[m for m in open_clip.list_models() if m.startswith("drm-")]}.')
    return cfg


@dataclass(frozen=True)
class PretrainSettings:
    """Everything that shapes the pretrained weights (all in the hash).

    Attributes:
        model_name: open_clip architecture (a ``drm-toy-*`` JSON).
        corpus: the caption corpus.
        steps: optimisation steps.
        batch_size: image-caption pairs per step.
        lr, weight_decay, warmup_steps: AdamW with linear warm-up then
            cosine decay to zero.
        few_scene_batch_frac: fraction of batches filled from a few scenes
            only (``batch_size / images_per_scene`` of them), where the
            background tells few captions apart and the shape must.
        seed: model init, batch order and caption sampling.

    The defaults come from a probe on 2 CPU cores: with every batch drawn
    from 4 scenes and 40 % of captions leaving the background out
    (``CorpusSettings.no_background_frac``), zero-shot accuracy after 1600
    steps rose from about 40 % to 58 % (vs. half the batches from few
    scenes and 15 % of captions without background); a learning rate of
    3e-3 or more did not learn shapes at all. 2100 steps take 6.5 min on
    2 idle CPU cores (~0.18 s a step) and reach 75-78 % (df) / 74-76 %
    (cd) zero-shot accuracy in and out of distribution (chance: 12.5 %).
    """
    model_name: str = 'drm-toy-rn'
    corpus: CorpusSettings = field(default_factory=CorpusSettings)
    steps: int = 2100
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 100
    few_scene_batch_frac: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.corpus, dict):
            object.__setattr__(self, 'corpus', CorpusSettings(**self.corpus))
        if self.steps < 1 or self.batch_size < 2:
            raise ValueError(f'PretrainSettings: steps must be >= 1 and '
                             f'batch_size >= 2, got {self.steps}, '
                             f'{self.batch_size}.')
        if self.batch_size > self.corpus.n_images:
            raise ValueError(
                f'PretrainSettings.batch_size={self.batch_size} exceeds the '
                f'corpus ({self.corpus.n_images} images); raise '
                f'corpus.n_scenes or lower batch_size.')
        if not 0 <= self.few_scene_batch_frac <= 1:
            raise ValueError(f'PretrainSettings.few_scene_batch_frac must be '
                             f'in [0, 1], got {self.few_scene_batch_frac}.')

    def to_dict(self) -> dict:
        """Plain-JSON form (``PretrainSettings(**d)`` rebuilds it)."""
        d = dataclasses.asdict(self)
        d['corpus'] = self.corpus.to_dict()
        return d

    def hash(self) -> str:
        """Hash of the settings, the architecture config and the code
        version: what names the cached weights."""
        blob = json.dumps(dict(
            version=PRETRAIN_VERSION, corpus_hash=self.corpus.hash(),
            arch=model_config(self.model_name), **self.to_dict()),
            sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    def weights_name(self) -> str:
        """File name of the cached weights."""
        return f'{self.model_name}_{self.hash()}.pth'


@dataclass
class PretrainResult:
    """Where the weights are, whether they came from the cache, and the
    zero-shot report (``metrics``: ``'<df|cd>/<split>'`` -> accuracy in %)."""
    path: pathlib.Path
    cached: bool
    metrics: Dict[str, float]
    settings: PretrainSettings
    train_seconds: float = 0.0


def build_toy_clip(model_name: str = 'drm-toy-rn',
                   weights: Optional[PathLike] = None
                   ) -> Tuple[torch.nn.Module, object]:
    """A toy CLIP (random or from a weights file) and its tokenizer."""
    model_config(model_name)
    model = open_clip.create_model(model_name, pretrained=None,
                                   output_dict=True)
    if weights is not None:
        state = torch.load(weights, map_location='cpu', weights_only=True)
        model.load_state_dict(state)
    return model, open_clip.get_tokenizer(model_name)


def toy_descriptions(classes: Sequence[str],
                     path: PathLike = PROMPTS_FILE) -> List[List[str]]:
    """Concept descriptions of ``classes``, read and checked by drm_mm's
    :func:`load_descriptions` (a world may use a subset of the shapes, so
    the file's other shapes are no error)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        return load_descriptions(str(path), list(classes),
                                 allow_extra_keys=True)


@torch.no_grad()
def prompt_prototypes(model: torch.nn.Module, tokenizer,
                     texts: Sequence[Sequence[str]]) -> torch.Tensor:
    """(C, D) prototypes of the prompts of each class, averaged by drm_mm's
    :func:`~drm_mm.models.classifiers.text_prototypes.class_prototypes`."""
    feats = torch.cat([model.encode_text(tokenizer(list(class_texts)))
                       for class_texts in texts])
    return mean_prototypes(feats, [len(t) for t in texts])


def _normalizer(model: torch.nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
    cfg = getattr(model.visual, 'preprocess_cfg', None) or {}
    mean = cfg.get('mean', open_clip.OPENAI_DATASET_MEAN)
    std = cfg.get('std', open_clip.OPENAI_DATASET_STD)
    return (torch.tensor(mean).view(1, 3, 1, 1),
            torch.tensor(std).view(1, 3, 1, 1))


def to_input(images: np.ndarray, mean: torch.Tensor,
             std: torch.Tensor) -> torch.Tensor:
    """uint8 (N,H,W,3) -> normalised float (N,3,H,W)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return (x.float() / 255.0 - mean) / std


@torch.no_grad()
def encode_images(model: torch.nn.Module, images: np.ndarray,
                  batch_size: int = 500) -> torch.Tensor:
    """Normalised image embeddings of uint8 images (eval mode)."""
    was_training = model.training
    model.eval()
    mean, std = _normalizer(model)
    out = [F.normalize(model.encode_image(to_input(images[i:i + batch_size],
                                                   mean, std)), dim=-1)
           for i in range(0, len(images), batch_size)]
    model.train(was_training)
    return torch.cat(out)


def world_eval_images(world: WorldSettings,
                      splits: Sequence[str] = EVAL_SPLITS
                      ) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """The world's images and labels of ``splits``, pixel-identical to the
    written JPEGs, drawn in memory (no dataset on disk needed)."""
    out: Dict[str, Tuple[List[np.ndarray], List[int]]] = {
        s: ([], []) for s in splits}
    for sample in iter_samples(world, splits=splits):
        imgs, ys = out[sample['split']]
        imgs.append(sample['image'])
        ys.append(sample['y'])
    return {s: (jpeg_roundtrip(np.stack(i), world.jpeg_quality),
                np.asarray(y)) for s, (i, y) in out.items()}


@torch.no_grad()
def zero_shot_report(model: torch.nn.Module, tokenizer,
                     world: WorldSettings = WorldSettings(),
                     descriptions: Optional[Sequence[Sequence[str]]] = None,
                     splits: Sequence[str] = EVAL_SPLITS,
                     eval_images: Optional[Mapping[str, Tuple[np.ndarray,
                                                              np.ndarray]]] = None
                     ) -> Dict[str, float]:
    """Zero-shot accuracy (%) with df and cd prompts on the world's splits.

    Keys ``'df/<split>'`` and ``'cd/<split>'``. Prototypes: df from
    :data:`DF_TEMPLATE`, cd the mean of each class's descriptions. The
    background-only probe adds ``'<df|cd>/background_<id|opposite>'``: how
    often the head names the class a scene is tied to from the scene alone
    (:func:`~.toy_world.background_images`; chance 100 / classes).
    """
    model.eval()
    classes = list(world.classes)
    if descriptions is None:
        descriptions = toy_descriptions(classes)
    heads = {
        'df': prompt_prototypes(model, tokenizer,
                               [[DF_TEMPLATE.format(c=c)] for c in classes]),
        'cd': prompt_prototypes(model, tokenizer, descriptions),
    }
    data = eval_images if eval_images is not None else \
        world_eval_images(world, splits)
    report: Dict[str, float] = {}
    for split in splits:
        images, y = data[split]
        feats = encode_images(model, images)
        for name, protos in heads.items():
            pred = (feats @ protos.T).argmax(1).numpy()
            report[f'{name}/{split}'] = round(float((pred == y).mean()) * 100,
                                              2)
    for kind, (images, cls) in background_images(world).items():
        feats = encode_images(model, jpeg_roundtrip(images,
                                                    world.jpeg_quality))
        for name, protos in heads.items():
            pred = (feats @ protos.T).argmax(1).numpy()
            report[f'{name}/background_{kind}'] = round(
                float((pred == cls).mean()) * 100, 2)
    return report


def _lr_at(step: int, settings: PretrainSettings) -> float:
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    t = (step - settings.warmup_steps) / max(
        1, settings.steps - settings.warmup_steps)
    return settings.lr * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f'{s // 60}:{s % 60:02d}'


def _adamw(groups: List[dict], lr: float) -> torch.optim.Optimizer:
    """AdamW, fused where this torch has the CPU kernel (much faster)."""
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr)


def train_toy_clip(settings: PretrainSettings,
                   corpus: Optional[CaptionCorpus] = None,
                   log_interval: int = 50,
                   callback: Optional[Callable[[int, torch.nn.Module],
                                               None]] = None
                   ) -> torch.nn.Module:
    """Contrastive pretraining of a fresh toy CLIP on the caption corpus.

    ``callback(step, model)`` runs at every log line (e.g. to track
    zero-shot accuracy while tuning); it must leave the model as it found it.
    """
    torch.manual_seed(settings.seed)
    model, tokenizer = build_toy_clip(settings.model_name)
    # NHWC is markedly faster for these small convolutions on CPU.
    model = model.to(memory_format=torch.channels_last)
    if corpus is None:
        t0 = time.time()
        print_log(f'rendering the caption corpus '
                  f'({settings.corpus.n_images} images)...', logger='current')
        corpus = build_corpus(settings.corpus)
        print_log(f'corpus ready in {time.time() - t0:.0f}s',
                  logger='current')
    mean, std = _normalizer(model)
    images = torch.from_numpy(corpus.images)
    rng = np.random.default_rng([settings.seed, 303])
    decay = [p for n, p in model.named_parameters()
             if p.ndim >= 2 and 'embedding' not in n]
    no_decay = [p for n, p in model.named_parameters()
                if not (p.ndim >= 2 and 'embedding' not in n)]
    optimizer = _adamw(
        [dict(params=decay, weight_decay=settings.weight_decay),
         dict(params=no_decay, weight_decay=0.0)], settings.lr)
    loss_fn = open_clip.ClipLoss()
    model.train()
    start, running = time.time(), 0.0
    for step in range(settings.steps):
        for group in optimizer.param_groups:
            group['lr'] = _lr_at(step, settings)
        few = rng.uniform() < settings.few_scene_batch_frac
        idx = batch_indices(corpus, settings.batch_size, rng, few)
        x = (images[idx].permute(0, 3, 1, 2).float() / 255.0 - mean) / std
        x = x.contiguous(memory_format=torch.channels_last)
        tokens = tokenizer(corpus.captions(idx, rng))
        out = model(x, tokens)
        loss = loss_fn(out['image_features'], out['text_features'],
                       out['logit_scale'])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        running += loss.item()
        done = step + 1
        if done % log_interval == 0 or done == settings.steps:
            elapsed = time.time() - start
            eta = elapsed / done * (settings.steps - done)
            n = log_interval if done % log_interval == 0 else \
                done % log_interval
            print_log(f'pretrain step {done}/{settings.steps} '
                      f'loss {running / n:.3f} '
                      f'lr {_lr_at(step, settings):.2e} '
                      f'elapsed {_fmt_seconds(elapsed)} '
                      f'eta {_fmt_seconds(eta)}', logger='current')
            running = 0.0
            if callback is not None:
                callback(done, model)
    model.eval()
    return model


def pretrain_toy_clip(settings: PretrainSettings = PretrainSettings(),
                      cache_dir: PathLike = DEFAULT_CACHE_DIR,
                      world: Optional[WorldSettings] = WorldSettings(),
                      num_threads: Optional[int] = 2,
                      force: bool = False,
                      log_interval: int = 50) -> PretrainResult:
    """Pretrain (or load from ``cache_dir``) the toy CLIP and report it.

    Writes ``<cache_dir>/<model>_<hash>.pth`` (a plain ``state_dict``) and
    ``<model>_<hash>.json`` (settings and zero-shot report on ``world``;
    ``world=None`` skips the report). A second call with the same settings
    loads them (``cached=True``) unless ``force``.
    """
    cache_dir = pathlib.Path(cache_dir)
    path = cache_dir / settings.weights_name()
    info_path = path.with_suffix('.json')
    old_threads = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        if path.is_file() and not force:
            print_log(f'toy CLIP {settings.hash()} found in the cache, '
                      f'loading {path} (no pretraining)', logger='current')
            info = json.loads(info_path.read_text()) \
                if info_path.is_file() else {}
            metrics = info.get('zero_shot', {})
            if world is not None and (
                    info.get('world_hash') != world.hash() or
                    'df/background_id' not in metrics):
                model, tokenizer = build_toy_clip(settings.model_name, path)
                metrics = zero_shot_report(model, tokenizer, world)
                _write_info(info_path, settings, world, metrics,
                            info.get('train_seconds', 0.0))
            return PretrainResult(path, True, metrics, settings,
                                  info.get('train_seconds', 0.0))
        print_log(f'pretraining toy CLIP {settings.model_name} '
                  f'(settings {settings.hash()}, {settings.steps} steps of '
                  f'{settings.batch_size}) on {torch.get_num_threads()} '
                  f'thread(s)', logger='current')
        t0 = time.time()
        model = train_toy_clip(settings, log_interval=log_interval)
        train_seconds = round(time.time() - t0, 1)
        cache_dir.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().clone().contiguous()
                 for k, v in model.state_dict().items()}
        tmp = path.with_suffix('.pth.partial')
        torch.save(state, tmp)
        os.replace(tmp, path)
        metrics: Dict[str, float] = {}
        if world is not None:
            metrics = zero_shot_report(
                model, open_clip.get_tokenizer(settings.model_name), world)
        _write_info(info_path, settings, world, metrics, train_seconds)
        print_log(f'toy CLIP saved to {path} after {train_seconds:.0f}s of '
                  f'pretraining', logger='current')
        if metrics:
            print_log(format_report(metrics), logger='current')
        return PretrainResult(path, False, metrics, settings, train_seconds)
    finally:
        torch.set_num_threads(old_threads)


def _write_info(info_path: pathlib.Path, settings: PretrainSettings,
                world: Optional[WorldSettings], metrics: Dict[str, float],
                train_seconds: float) -> None:
    info = dict(hash=settings.hash(), settings=settings.to_dict(),
                world_hash=world.hash() if world is not None else None,
                world=world.to_dict() if world is not None else None,
                df_template=DF_TEMPLATE, zero_shot=metrics,
                train_seconds=train_seconds)
    info_path.write_text(json.dumps(info, indent=1))


def format_report(metrics: Mapping[str, float]) -> str:
    """A small table: prompts x splits, zero-shot accuracy in %."""
    splits = [s for s in EVAL_SPLITS if f'df/{s}' in metrics]
    splits += [s for s in ('background_id', 'background_opposite')
               if f'df/{s}' in metrics]
    lines = ['zero-shot accuracy (%)   ' + '  '.join(f'{s:>8}' for s in splits)]
    for p, label in (('df', f'df "{DF_TEMPLATE}"'), ('cd', 'cd descriptions')):
        lines.append(f'{label:<24} ' + '  '.join(
            f'{metrics[f"{p}/{s}"]:8.2f}' for s in splits))
    return '\n'.join(lines)

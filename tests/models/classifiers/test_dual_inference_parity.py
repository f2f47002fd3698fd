"""Dual inference equals an independent re-statement of the authors'
evaluation: per class, encode its prompts, L2-normalise each, average,
renormalise; logits = unclamped exp(logit_scale) x normalised image features
x prototypes; softmax each head (after restricting to a 200-class subset or
folding into ObjectNet classes); mix with beta."""
import math
import random

import open_clip
import pytest
import torch

from drm_mm.datasets.classnames import (class_subset_indices, get_class_keys,
                                        get_classnames)
from drm_mm.models.classifiers.drm_classifier import DRMClassifier

TEMPLATE = 'a good photo of the {c}.'
BETAS = (0.0, 0.3, 0.5, 1.0)


def _descriptions():
    """Unequal counts (1-3 per class), keys in shuffled order."""
    keys = get_class_keys('imagenet')
    data = {k: [f'a thing of kind {i} with feature {j} and colour {i % 7}'
                for j in range(1 + i % 3)] for i, k in enumerate(keys)}
    order = list(data)
    random.Random(0).shuffle(order)
    return {k: data[k] for k in order}


@pytest.fixture(scope='module')
def setup():
    torch.manual_seed(0)
    descriptions = _descriptions()
    model = DRMClassifier(
        clip=dict(type='OpenCLIP', model_name='drm-tiny-vit'),
        classnames='imagenet', templates=[TEMPLATE],
        descriptions=descriptions, head=dict(beta=0.5),
        loss=dict(erm='ce', wrm_weight=0.0)).eval()
    with torch.no_grad():
        model.clip.model.logit_scale.fill_(math.log(150.0))  # > 100
    images = torch.randn(6, 3, 32, 32, generator=torch.Generator(
    ).manual_seed(1))
    return model, descriptions, images


def _authors_logits(clip_model, tokenizer, images, prompts_per_class):
    """The re-statement, with the raw open_clip model (padded text)."""
    with torch.no_grad():
        flat = [p for prompts in prompts_per_class for p in prompts]
        encoded = torch.cat([clip_model.encode_text(tokenizer(flat[i:i + 500]))
                             for i in range(0, len(flat), 500)])
        weights, start = [], 0
        for prompts in prompts_per_class:
            emb = encoded[start:start + len(prompts)]
            start += len(prompts)
            emb = emb / emb.norm(dim=-1, keepdim=True)
            emb = emb.mean(dim=0)
            weights.append(emb / emb.norm())
        weights = torch.stack(weights)
        feats = clip_model.encode_image(images)
        feats = feats / feats.norm(dim=-1, keepdim=True)
        return clip_model.logit_scale.exp() * feats @ weights.t()


@pytest.fixture(scope='module')
def reference(setup):
    model, descriptions, images = setup
    tokenizer = open_clip.get_tokenizer('drm-tiny-vit')
    names = get_classnames('imagenet')
    z_df = _authors_logits(model.clip.model, tokenizer, images,
                           [[TEMPLATE.replace('{c}', c)] for c in names])
    z_cd = _authors_logits(model.clip.model, tokenizer, images,
                           [descriptions[k] for k in get_class_keys(
                               'imagenet')])
    return z_df, z_cd


def _mix(beta, z_df, z_cd):
    return beta * z_df.softmax(dim=1) + (1 - beta) * z_cd.softmax(dim=1)


@pytest.mark.parametrize('beta', BETAS)
def test_all_classes(setup, reference, beta):
    model, _, images = setup
    model.head.beta = beta
    with torch.no_grad():
        ours = model(images, mode='tensor')
    assert (ours - _mix(beta, *reference)).abs().max() <= 1e-5


@pytest.mark.parametrize('beta', BETAS)
def test_200_class_subset(setup, reference, beta):
    model, _, images = setup
    subset = class_subset_indices('imagenet_r')
    model.head.beta = beta
    model.set_class_subset(subset)
    try:
        with torch.no_grad():
            ours = model(images, mode='tensor')
    finally:
        model.set_class_subset(None)
    z_df, z_cd = reference
    expected = _mix(beta, z_df[:, subset], z_cd[:, subset])
    assert (ours[:, subset] - expected).abs().max() <= 1e-5
    outside = [i for i in range(1000) if i not in set(subset)]
    assert ours[:, outside].abs().max() == 0


@pytest.mark.parametrize('beta', BETAS)
def test_objectnet_folding(setup, reference, beta):
    model, _, images = setup
    rng = random.Random(2)
    pool = rng.sample(range(1000), 400)
    folding, start = [], 0
    for k in range(113):
        size = 1 + k % 4
        folding.append(pool[start:start + size])
        start += size
    model.head.beta = beta
    model.set_class_folding(folding)
    try:
        with torch.no_grad():
            ours = model(images, mode='tensor')
    finally:
        model.set_class_folding(None)

    def project(z):  # the authors' per-dataset logit projection
        return torch.stack([z[:, g].max(dim=1).values for g in folding], 1)

    z_df, z_cd = reference
    expected = _mix(beta, project(z_df), project(z_cd))
    assert ours.shape == (6, 113)
    assert (ours - expected).abs().max() <= 1e-5

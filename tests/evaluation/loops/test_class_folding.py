"""ObjectNet: each head's logits are folded before its softmax, then mixed
(the authors' order), through the multi-set loops and CLIPTextHead."""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import nn

import drm_mm.datasets.objectnet  # noqa: F401  registers ObjectNet
import drm_mm.evaluation.loops  # noqa: F401  registers the loops
import drm_mm.evaluation.metrics  # noqa: F401  registers the metrics
from tools.dataset_tools.imagenet_layout import write_objectnet
from drm_mm.engine.runners import DRMRunner
from drm_mm.models.heads.clip_text_head import CLIPTextHead

_RUN_IDS = itertools.count()
FAKE_NAMES = [f'imagenet class {i}' for i in range(1000)]
MAPPING = {
    'air_freshener': ('Air freshener', []),
    'alarm_clock': ('Alarm clock', [FAKE_NAMES[409]]),
    'bench': ('Bench', [FAKE_NAMES[703], FAKE_NAMES[706]]),
    'banana': ('Banana', [FAKE_NAMES[954]]),
}


def _fold(logits, folding):
    return torch.stack([logits[:, g].max(dim=1).values for g in folding], 1)


def test_head_folds_each_heads_logits_before_its_softmax():
    g = torch.Generator().manual_seed(0)
    z_df = 3 * torch.randn(400, 1000, generator=g)
    z_cd = 3 * torch.randn(400, 1000, generator=g)
    perm = torch.randperm(1000, generator=g).tolist()
    folding = [perm[3 * k:3 * k + 1 + k % 3] for k in range(113)]
    head = CLIPTextHead(beta=0.5)
    head.set_class_folding(folding)
    scores = head.predict_scores(z_df, z_cd)
    expected = 0.5 * F.softmax(_fold(z_df, folding), 1) + 0.5 * F.softmax(
        _fold(z_cd, folding), 1)
    assert scores.shape == (400, 113)
    assert (scores - expected).abs().max() < 1e-6
    # folding the mixed 1000-way probabilities instead changes the argmax
    mixed = 0.5 * F.softmax(z_df, 1) + 0.5 * F.softmax(z_cd, 1)
    late = _fold(mixed, folding).argmax(1)
    assert (late != expected.argmax(1)).sum() > 0
    head.set_class_folding(None)
    assert head.predict_scores(z_df, z_cd).shape == (400, 1000)


class _FoldingModel(BaseModel):
    """Records the folding the loop hands it and folds its two heads'
    logits with a real CLIPTextHead."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.head = CLIPTextHead(beta=0.5)
        self.calls = []

    def set_class_folding(self, folding):
        self.calls.append(folding)
        self.head.set_class_folding(folding)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        for sample in data_samples:
            true = {0: 409, 1: 954, 2: 703}[int(sample.gt_label)]
            z_df = torch.zeros(1, 1000)
            z_df[0, true] = 4.0
            z_cd = torch.zeros(1, 1000)
            z_cd[0, true] = 4.0
            sample.set_pred_score(self.head.predict_scores(z_df, z_cd)[0])
        return data_samples


def test_loop_hands_objectnet_folding_to_the_model(tmp_path):
    write_objectnet(tmp_path / 'data', MAPPING, FAKE_NAMES, per_class=1,
                    size=(8, 8))
    model = _FoldingModel()
    runner = DRMRunner(
        model=model, work_dir=str(tmp_path / 'work'),
        test_dataloader=dict(
            pin_memory=False, persistent_workers=False,
            collate_fn=dict(type='pseudo_collate'),
            objectnet=dict(
                batch_size=2, num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=False),
                dataset=dict(type='ObjectNet',
                             data_root=str(tmp_path / 'data'),
                             pipeline=[dict(type='LoadImageDraft'),
                                       dict(type='PackInputs')]))),
        test_evaluator=dict(type='ImageNetAccuracy'),
        test_cfg=dict(type='MultiDatasetTestLoop'),
        default_scope='drm_mm',
        experiment_name=f'class_folding_{next(_RUN_IDS)}')
    assert runner.test() == {'objectnet/accuracy': 1.0}
    assert model.calls == [[[409], [954], [703, 706]], None]
    assert model.head.class_folding is None

"""DualRiskLoss: each term equals its hand-written / library reference."""
import open_clip
import pytest
import torch
import torch.nn.functional as F

from drm_mm.models.losses.dual_risk_loss import (DualRiskLoss,
                                                 soft_cross_entropy)


def _batch(n=5, c=4, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    z_df = torch.randn(n, c, generator=g)
    z_cd = torch.randn(n, c, generator=g, requires_grad=True)
    soft = torch.rand(n, c, generator=g)
    soft = soft / soft.sum(dim=1, keepdim=True)
    labels = torch.randint(c, (n, ), generator=g)
    img = F.normalize(torch.randn(n, d, generator=g), dim=1)
    txt = F.normalize(torch.randn(n, d, generator=g), dim=1)
    return z_df, z_cd, soft, labels, img, txt


def _hand_soft_ce(logits, soft):
    total = 0.0
    for row, target in zip(logits.tolist(), soft.tolist()):
        log_z = torch.tensor(row).exp().sum().log().item()
        total += -sum(p * (z - log_z) for p, z in zip(target, row))
    return total / len(soft)


def test_wrm_equals_hand_written_soft_cross_entropy():
    _, z_cd, soft, labels, img, txt = _batch()
    out = DualRiskLoss(erm='contrastive', wrm_weight=0.7)(
        labels=labels, z_wrm=z_cd, soft_labels=soft, image_features=img,
        caption_features=txt, logit_scale=torch.tensor(10.))
    hand = _hand_soft_ce(z_cd.detach(), soft)
    assert out['wrm_raw'].item() == pytest.approx(hand, abs=1e-5)
    assert out['loss_wrm'].item() == pytest.approx(0.7 * hand, abs=1e-5)
    assert soft_cross_entropy(z_cd, soft).item() == pytest.approx(hand,
                                                                  abs=1e-5)


def test_contrastive_erm_equals_open_clip_clip_loss():
    _, z_cd, soft, labels, img, txt = _batch()
    scale = torch.tensor(42.0)
    out = DualRiskLoss(erm='contrastive')(
        labels=labels, z_wrm=z_cd, soft_labels=soft, image_features=img,
        caption_features=txt, logit_scale=scale)
    ref = open_clip.ClipLoss()(img, txt, scale)
    assert torch.allclose(out['loss_erm'], ref, atol=1e-6)


@pytest.mark.parametrize('smoothing', [0.0, 0.1])
def test_ce_erm_equals_cross_entropy(smoothing):
    z_df, _, _, labels, _, _ = _batch()
    out = DualRiskLoss(erm='ce', wrm_weight=0, label_smoothing=smoothing)(
        labels=labels, z_erm=z_df)
    ref = F.cross_entropy(z_df, labels, label_smoothing=smoothing)
    assert torch.allclose(out['loss_erm'], ref, atol=1e-6)
    assert out['loss_wrm'].item() == 0.0
    # the share of argmax(z_df) == label, counted by hand
    hits = sum(max(range(len(row)), key=row.__getitem__) == label
               for row, label in zip(z_df.tolist(), labels.tolist()))
    assert out['acc_df'].item() == pytest.approx(hits / len(labels),
                                                  abs=1e-7)


def test_only_loss_terms_contain_loss_in_their_name():
    z_df, z_cd, soft, labels, _, _ = _batch()
    out = DualRiskLoss(erm='ce', wrm_weight=2.0)(
        labels=labels, z_erm=z_df, z_wrm=z_cd, soft_labels=soft)
    assert {k for k in out if 'loss' in k} == {'loss_erm', 'loss_wrm'}
    assert all(not v.requires_grad for k, v in out.items()
               if 'loss' not in k)
    (out['loss_erm'] + out['loss_wrm']).backward()
    # d/dz of 2 * mean soft CE: 2 * (softmax(z) - p) / n, row by row
    expected = 2.0 * (z_cd.detach().softmax(dim=1) - soft) / len(soft)
    eps = torch.finfo(torch.float32).eps
    assert z_cd.grad.abs().min() > 0
    assert torch.allclose(z_cd.grad, expected, rtol=0, atol=16 * eps)


def test_bad_options_and_missing_inputs():
    with pytest.raises(ValueError, match='erm'):
        DualRiskLoss(erm='mse')
    with pytest.raises(ValueError, match='wrm_weight'):
        DualRiskLoss(wrm_weight=-1)
    with pytest.raises(ValueError, match='label_smoothing'):
        DualRiskLoss(erm='contrastive', label_smoothing=0.1)
    z_df, _, _, labels, _, _ = _batch()
    with pytest.raises(ValueError, match='soft_labels'):
        DualRiskLoss(erm='ce', wrm_weight=1)(labels=labels, z_erm=z_df)
    with pytest.raises(ValueError, match='caption_features'):
        DualRiskLoss(erm='contrastive', wrm_weight=0)(labels=labels)

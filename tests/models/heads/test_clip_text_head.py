"""CLIPTextHead: logits, the β mixture, class subsets, prototypes, and the
loss it owns (the text it asks for, the dual risk of its logits)."""
import pytest
import torch
import torch.nn.functional as F

from drm_mm.models.classifiers.text_prototypes import class_prototypes
from drm_mm.models.heads.clip_text_head import CLIPTextHead, TextRequest


def _setup(n=4, c=5, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = F.normalize(torch.randn(n, d, generator=g), dim=1)
    df = F.normalize(torch.randn(c, d, generator=g), dim=1)
    cd = F.normalize(torch.randn(c, d, generator=g), dim=1)
    return img, df, cd, torch.tensor(20.0)


def test_logits_are_scaled_cosines():
    img, df, cd, s = _setup()
    z_df, z_cd = CLIPTextHead()(img, df, cd, s)
    assert torch.allclose(z_df, 20 * img @ df.t())
    assert torch.allclose(z_cd[1, 2], 20 * (img[1] * cd[2]).sum())


def test_beta_mixture_equals_hand_computation():
    img, df, cd, s = _setup()
    head = CLIPTextHead(beta=0.3)
    z_df, z_cd = head(img, df, cd, s)
    scores = head.predict_scores(z_df, z_cd)
    hand = torch.zeros_like(scores)
    for i in range(z_df.size(0)):
        e_df, e_cd = z_df[i].exp(), z_cd[i].exp()
        hand[i] = 0.3 * e_df / e_df.sum() + 0.7 * e_cd / e_cd.sum()
    assert torch.allclose(scores, hand, atol=1e-6)
    assert torch.allclose(scores.sum(dim=1), torch.ones(len(scores)))


def test_beta_one_and_zero_reduce_to_single_heads():
    img, df, cd, s = _setup()
    z_df, z_cd = CLIPTextHead()(img, df, cd, s)
    assert torch.allclose(CLIPTextHead(beta=1.0).predict_scores(z_df, None),
                          z_df.softmax(dim=1))
    assert torch.allclose(CLIPTextHead(beta=0.0).predict_scores(None, z_cd),
                          z_cd.softmax(dim=1))
    assert not CLIPTextHead(beta=1.0).needs_cd
    assert not CLIPTextHead(beta=0.0).needs_df
    with pytest.raises(ValueError, match='z_cd'):
        CLIPTextHead(beta=0.5).predict_scores(z_df, None)
    with pytest.raises(ValueError, match='beta'):
        CLIPTextHead(beta=1.5)


def test_class_subset_masks_the_other_classes_before_softmax():
    img, df, cd, s = _setup()
    head = CLIPTextHead(beta=0.5)
    z_df, z_cd = head(img, df, cd, s)
    subset = [0, 3]
    head.set_class_subset(subset)
    scores = head.predict_scores(z_df, z_cd)
    others = [1, 2, 4]
    assert (scores[:, others] == 0).all()
    hand = 0.5 * z_df[:, subset].softmax(1) + 0.5 * z_cd[:, subset].softmax(1)
    assert torch.allclose(scores[:, subset], hand, atol=1e-6)
    compact = CLIPTextHead(beta=0.5, compact_subset=True)
    compact.set_class_subset(subset)
    assert torch.allclose(compact.predict_scores(z_df, z_cd), hand,
                          atol=1e-6)
    head.set_class_subset(None)
    assert (head.predict_scores(z_df, z_cd)[:, others] > 0).all()
    with pytest.raises(ValueError, match='repeat'):
        head.set_class_subset([1, 1])


def test_class_prototypes_are_renormalised_means():
    feats = F.normalize(torch.randn(5, 8), dim=1)
    protos = class_prototypes(feats, [2, 3])
    first = F.normalize(feats[:2].mean(0), dim=0)
    second = F.normalize(feats[2:].mean(0), dim=0)
    assert torch.allclose(protos, torch.stack([first, second]), atol=1e-6)
    equal = class_prototypes(feats[:4], [2, 2])
    assert torch.allclose(equal[1], F.normalize(feats[2:4].mean(0), dim=0),
                          atol=1e-6)
    with pytest.raises(ValueError, match='counts'):
        class_prototypes(feats, [2, 2])


def test_linear_head_starts_from_the_prototypes_and_trains():
    img, df, _, s = _setup()
    head = CLIPTextHead(beta=1.0, linear=True, num_classes=5, embed_dim=8,
                        loss=dict(erm='ce', wrm_weight=0))
    head.init_linear(df)
    z_df, z_cd = head(img, None, None, s)
    assert z_cd is None
    assert torch.allclose(z_df, CLIPTextHead.logits(img, df, s))
    z_df.sum().backward()
    # d sum(s * img @ W^T + b): s * sum of the images per row of W, n per b
    eps = torch.finfo(torch.float32).eps
    assert torch.equal(head.bias.grad, torch.full((5, ), float(len(img))))
    assert torch.allclose(head.weight.grad,
                          (s * img.sum(0)).expand(5, -1), rtol=0,
                          atol=4 * len(img) * float(s) * eps)
    with pytest.raises(ValueError, match='num_classes'):
        CLIPTextHead(linear=True, loss=dict(erm='ce', wrm_weight=0))


def test_predict_puts_mixture_and_each_head_into_the_samples():
    torch.manual_seed(0)
    z_df, z_cd = torch.randn(2, 3), torch.randn(2, 3)
    head = CLIPTextHead(beta=0.25)
    samples = head.predict(z_df, z_cd)
    for i, sample in enumerate(samples):
        torch.testing.assert_close(sample.df_score, F.softmax(z_df[i], 0))
        torch.testing.assert_close(sample.cd_score, F.softmax(z_cd[i], 0))
        torch.testing.assert_close(
            sample.pred_score,
            0.25 * sample.df_score + 0.75 * sample.cd_score)
        assert int(sample.pred_label) == int(sample.pred_score.argmax())
    only_df = CLIPTextHead(beta=1.0).predict(z_df, None)
    assert 'cd_score' not in only_df[0]
    torch.testing.assert_close(only_df[0].pred_score, only_df[0].df_score)


@pytest.mark.parametrize('head, loss, request_', [
    (dict(), dict(erm='contrastive', wrm_weight=1.0),
     TextRequest(captions='df', wrm='cd')),
    (dict(), dict(erm='contrastive', wrm_weight=0.0),
     TextRequest(captions='df')),
    (dict(), dict(erm='ce', wrm_weight=1.0), TextRequest(erm='df', wrm='cd')),
    (dict(), dict(erm='ce', wrm_weight=1.0, erm_prompts='cd',
                  wrm_prompts='df'), TextRequest(erm='cd', wrm='df')),
    (dict(), dict(erm='contrastive', erm_prompts='cd', erm_weight=0.0),
     TextRequest(wrm='cd')),
    (dict(linear=True, num_classes=2, embed_dim=4),
     dict(erm='ce', wrm_weight=1.0, wrm_prompts='df'), TextRequest()),
])
def test_the_head_declares_the_text_its_loss_needs(head, loss, request_):
    built = CLIPTextHead(loss=loss, **head)
    assert built.text_request == request_
    assert built.needs_soft_labels == (loss.get('wrm_weight', 1.0) > 0)


def test_the_head_computes_the_dual_risk_from_its_logits():
    img, df, cd, s = _setup()
    head = CLIPTextHead(loss=dict(erm='ce', wrm_weight=0.5))
    labels = torch.tensor([0, 4, 2, 2])
    soft = torch.softmax(torch.randn(4, 5), dim=1)
    out = head.loss(img, dict(df=df, cd=cd), labels, soft, s)
    z_df, z_cd = s * img @ df.t(), s * img @ cd.t()
    assert torch.allclose(out['loss_erm'], F.cross_entropy(z_df, labels))
    hand = -(soft * F.log_softmax(z_cd, dim=1)).sum(1).mean()
    assert torch.allclose(out['loss_wrm'], 0.5 * hand)


def test_a_linear_head_refuses_a_loss_it_cannot_train():
    with pytest.raises(ValueError) as err:
        CLIPTextHead(linear=True, num_classes=2, embed_dim=4,
                     loss=dict(erm='contrastive'))
    assert str(err.value) == (
        "DRMClassifier: a linear df head (LP / LP-FT) trains with "
        "loss.erm='ce'; the contrastive loss does not use it.")

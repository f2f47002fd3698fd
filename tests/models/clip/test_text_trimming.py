"""The padding-free text forward's planner and its guard."""
import open_clip
import pytest
import torch

from drm_mm.models.clip import OpenCLIP
from drm_mm.models.clip.open_clip_adapter import build_text_encoder
from drm_mm.models.clip.text_trimming import (TrimmedTextEncoder,
                                              encode_by_plan,
                                              plan_length_buckets)


def test_length_buckets_cover_every_row_once():
    lengths = torch.tensor([5, 30, 7, 30, 12, 5, 77, 9])
    plan = plan_length_buckets(lengths, 3, overhead=0)
    rows = torch.cat([r for r, _ in plan])
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    assert len(plan) <= 3
    for r, limit in plan:
        assert int(lengths[r].max()) == limit
    assert len(plan_length_buckets(lengths, 3, overhead=10**6)) == 1


def test_no_trimming_where_it_would_not_be_exact():
    clip = OpenCLIP('drm-tiny-vit', trim_text=False)
    encoder = build_text_encoder(clip.model)
    assert isinstance(encoder, TrimmedTextEncoder)
    # trimming the padding leaves open_clip's embeddings unchanged (float32
    # rounding of 64-wide sums through a few layers)
    tokens = open_clip.tokenize(['a photo of a cat.', 'a dog', 'x'],
                                context_length=clip.model.context_length)
    with torch.no_grad():
        ref = clip.model.encode_text(tokens)
        got = encoder(tokens)
    eps = torch.finfo(torch.float32).eps
    assert torch.allclose(got, ref, rtol=0,
                          atol=64 * 64 * eps * float(ref.abs().max()))
    clip.model.text_pool_type = 'last'  # pools the padded last position
    assert build_text_encoder(clip.model) is None
    clip.model.text_pool_type = 'argmax'
    clip.model.attn_mask = None  # bidirectional text tower
    assert build_text_encoder(clip.model) is None


def test_the_trimmed_encoder_keeps_open_clip_s_model_and_keys():
    """The padding-free forward is a separate object: the CLIP keeps its
    class and its own encode_text, and the state dict has the same keys."""
    import open_clip
    plain = OpenCLIP('drm-tiny-vit', trim_text=False)
    trimmed = OpenCLIP('drm-tiny-vit')
    assert type(trimmed.model) is open_clip.CLIP
    assert trimmed.text_encoder.model is trimmed.model
    assert list(trimmed.state_dict()) == list(plain.state_dict())
    assert trimmed.text_length_buckets == 4
    trimmed.text_length_buckets = 1  # what the FSDP strategy sets
    assert trimmed.text_encoder.text_length_buckets == 1
    with pytest.raises(ValueError, match='text_length_buckets'):
        OpenCLIP('drm-tiny-vit', text_length_buckets=0)


def test_max_rows_caps_every_batch_and_keeps_buckets():
    lengths = torch.tensor([5, 30, 7, 30, 12, 5, 77, 9, 30, 30, 30])
    plan = plan_length_buckets(lengths, 3, overhead=0, max_rows=2)
    rows = torch.cat([r for r, _ in plan])
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    assert max(len(r) for r, _ in plan) == 2
    for r, limit in plan:
        assert int(lengths[r].max()) <= limit
    assert len({limit for _, limit in plan}) <= 3


def test_encode_by_plan_puts_rows_back_in_order():
    lengths = torch.tensor([9, 2, 7, 2, 9, 4, 1])
    text = torch.arange(len(lengths)).unsqueeze(1).float()
    out = encode_by_plan(lambda rows, n: rows * 10, text, lengths,
                         max_buckets=3, overhead=0, max_rows=2)
    assert out.flatten().tolist() == [10.0 * i for i in range(len(lengths))]

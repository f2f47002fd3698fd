"""Distributed equivalence through the real tools: ``tools/dist_train.sh``
with two gloo ranks on CPU and half the batch per rank computes what
``tools/train.py`` computes in one process with the whole batch (losses of
every step, final weights, the sharded soft-label pass).

Why the global batches coincide: DefaultSampler gives rank ``r`` the
positions ``r, r + world, ...`` of the epoch's (seeded, shuffled)
permutation, so batch ``i`` of the two ranks together holds positions
``8i .. 8i + 7``, exactly the single process's batch ``i`` of 8; only the
order inside the global batch differs, which mean losses do not see. The
train pipeline here is the deterministic test pipeline (random crops are
drawn per process and would differ) and the tiny CLIP has no dropout (checked
below). The loss-level 2-rank test is
``tests/models/losses/test_contrastive_loss.py``.
"""

import pytest
import torch
from torch import nn

import _reliability_helpers as H  # loaded by this folder's conftest.py

#: Tolerance of the comparisons (fp32 sums in another order).
TOL = 1e-5

#: the test pipeline, no random crop
PLAIN = """pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=32, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'location')),
], """
BODY = '''
randomness = dict(seed=0, deterministic=True)
train_cfg = dict(max_epochs=2)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=2, max_keep_ckpts=1))
custom_hooks = {hooks}
'''
RECORD = "dict(type='ReliabilityRecordHook')"
SOFT = "dict(type='SoftLabelCacheHook', batch_size=32)"


def _configs(tmp_path, data_root, base, hooks, descriptions=True):
    names, desc = H.tiny_class_setup(tmp_path)
    classes = (names, desc if descriptions else None)
    return [
        H.write_config(tmp_path / f'{tag}.py', data_root,
                       BODY.format(hooks=hooks), base=base, classes=classes,
                       train_loader=f'batch_size={batch}, ',
                       train_dataset=PLAIN)
        for tag, batch in (('single', 8), ('per_rank', 4))
    ]


def _run_both(tmp_path, single_cfg, rank_cfg):
    one, two = tmp_path / 'one' / 'work', tmp_path / 'two' / 'work'
    single = H.start_train(single_cfg, one, '--no-validate')  # meanwhile
    code, out = H.run_dist_train(rank_cfg, two, 2, '--no-validate')
    single_code, single_out = H.finish(single, one)
    assert single_code == 0, H.tail(single_out)
    assert code == 0, H.tail(out)
    assert 'Distributed training is not used' not in out
    assert 'Distributed training: True' in out
    return one, two


def _compare_steps(one, two):
    """Per step: the single process's outputs equal the batch-weighted mean
    of the two ranks' (the contrastive ERM is already global on each)."""
    single = H.read_jsonl(one / 'outputs_rank0.jsonl')
    ranks = [H.read_jsonl(two / f'outputs_rank{r}.jsonl') for r in (0, 1)]
    assert [r['iter'] for r in single] == list(range(1, 11))
    worst = 0.0
    for i, ref in enumerate(single):
        parts = [rows[i] for rows in ranks]
        assert sum(p['batch'] for p in parts) == ref['batch'], i
        for key in ref:
            if key in ('iter', 'batch'):
                continue
            mean = sum(p[key] * p['batch'] for p in parts) / ref['batch']
            worst = max(worst, abs(mean - ref[key]))
            assert mean == pytest.approx(ref[key], abs=TOL), (i + 1, key)
    return worst


def _without_key_bias(state):
    """The state dict minus the key part of the attention input biases.

    Softmax attention is invariant to that bias (it shifts a row of logits
    by a constant), so its gradient is zero in exact arithmetic and only
    float noise (~1e-10) in practice; AdamW divides by the noise's own
    magnitude and turns it into lr-sized steps of arbitrary sign. Measured:
    up to 3e-4 apart between 1 and 2 processes, while the q / v parts of the
    same tensors agree to 2e-9 and no other weight differs by more than
    6e-8. Its value never changes the model's outputs.
    """
    out = dict(state)
    for name, value in state.items():
        if name.endswith('attn.in_proj_bias'):
            width = value.numel() // 3
            out[name] = torch.cat([value[:width], value[2 * width:]])
    return out


def _compare_weights(one, two):
    a = H.load_checkpoint(one / 'epoch_2.pth')['state_dict']
    b = H.load_checkpoint(two / 'epoch_2.pth')['state_dict']
    worst = H.max_abs_diff(_without_key_bias(a), _without_key_bias(b))
    assert worst <= TOL, worst
    return worst


def test_tiny_clip_has_no_dropout():
    """Ranks draw different dropout masks; the tiny CLIP must have none."""
    from drm_mm.models.clip.open_clip_model import OpenCLIP
    clip = OpenCLIP(model_name='drm-tiny-vit', pretrained=None)
    for name, module in clip.named_modules():
        if isinstance(module, nn.Dropout):
            assert module.p == 0, name
        if isinstance(module, nn.MultiheadAttention):
            assert module.dropout == 0, name


@pytest.mark.slow  # a 1-process and a 2-rank training run (~1 min)
def test_drm_contrastive_two_ranks_equal_one_process(tmp_path,
                                                     fake_iwildcam_root):
    single_cfg, rank_cfg = _configs(tmp_path, fake_iwildcam_root,
                                    'drm_tiny_fake_iwildcam.py',
                                    f'[{SOFT}, {RECORD}]')
    one, two = _run_both(tmp_path, single_cfg, rank_cfg)
    step_diff = _compare_steps(one, two)
    weight_diff = _compare_weights(one, two)

    # the soft-label pass, sharded over the two ranks, fills the same table
    tables = []
    for root in (one.parent, two.parent):
        files = list((root / '.soft_label_cache').glob('soft_labels_*.pt'))
        assert len(files) == 1, files
        tables.append(torch.load(files[0], weights_only=True)['soft_labels'])
    assert tables[0].shape == (36, 6)
    cache_diff = (tables[0] - tables[1]).abs().max().item()
    assert cache_diff <= 1e-6, cache_diff
    print(f'DRM 2 ranks vs 1: steps {step_diff:.2e}, weights '
          f'{weight_diff:.2e}, soft labels {cache_diff:.2e}')


@pytest.mark.slow  # a 1-process and a 2-rank training run (~1 min)
def test_ce_two_ranks_equal_one_process(tmp_path, fake_iwildcam_root):
    single_cfg, rank_cfg = _configs(tmp_path, fake_iwildcam_root,
                                    'ce_tiny_fake_iwildcam.py',
                                    f'[{RECORD}]', descriptions=False)
    one, two = _run_both(tmp_path, single_cfg, rank_cfg)
    step_diff = _compare_steps(one, two)
    weight_diff = _compare_weights(one, two)
    print(f'CE 2 ranks vs 1: steps {step_diff:.2e}, weights '
          f'{weight_diff:.2e}')


#: Tolerance of memmap float16 p_c vs the float32 table: float16 rounds
#: each p_c value by at most 2^-11 relative (2.4e-4 absolute below 1), so
#: L_WRM = -sum p_c log q moves by at most ~5e-4 x L_WRM (L_WRM <= ~2
#: here), on top of TOL. Measured: 6.6e-5 worst over the 10 steps.
FP16_TOL = 1e-3


@pytest.mark.slow  # a 1-process and a 2-rank training run (~1 min)
def test_memmap_float16_table_two_ranks_equal_dense_float32(
        tmp_path, fake_iwildcam_root):
    """2 gloo ranks with soft_labels.storage='memmap' (one float16 file
    written by both ranks' shards, mapped read-only) train with the losses
    of one process with the dense float32 table, up to float16 rounding."""
    single_cfg, rank_cfg = _configs(tmp_path, fake_iwildcam_root,
                                    'drm_tiny_fake_iwildcam.py',
                                    f'[{SOFT}, {RECORD}]')
    one, two = tmp_path / 'one' / 'work', tmp_path / 'two' / 'work'
    single = H.start_train(single_cfg, one, '--no-validate')
    code, out = H.run_dist_train(
        rank_cfg, two, 2, '--no-validate', '--cfg-options',
        'model.soft_labels.storage=memmap')
    single_code, single_out = H.finish(single, one)
    assert single_code == 0, H.tail(single_out)
    assert code == 0, H.tail(out)
    assert 'Distributed training: True' in out
    dense = list((one.parent / '.soft_label_cache').glob('soft_labels_*'))
    mapped = sorted((two.parent / '.soft_label_cache').glob('soft_labels_*'))
    assert [p.suffix for p in dense] == ['.pt']
    # one file and its stored key and hash, no tmp left
    assert [''.join(p.suffixes) for p in mapped] == ['.npy', '.npy.json']
    import numpy as np
    table = torch.load(dense[0], weights_only=True)['soft_labels']
    half = torch.from_numpy(np.load(mapped[0]))
    assert half.dtype == torch.float16 and half.shape == (36, 6)
    cache_diff = (half.float() - table).abs().max().item()
    assert cache_diff <= 2.5e-4, cache_diff  # half an ulp of float16 at 1
    single_rows = H.read_jsonl(one / 'outputs_rank0.jsonl')
    ranks = [H.read_jsonl(two / f'outputs_rank{r}.jsonl') for r in (0, 1)]
    worst = 0.0
    for i, ref in enumerate(single_rows):
        parts = [rows[i] for rows in ranks]
        for key in ('loss', 'loss_wrm', 'loss_erm'):
            mean = sum(p[key] * p['batch'] for p in parts) / ref['batch']
            worst = max(worst, abs(mean - ref[key]))
            assert mean == pytest.approx(ref[key], abs=FP16_TOL), (i + 1,
                                                                   key)
    print(f'memmap float16 (2 ranks) vs dense float32 (1 process): table '
          f'{cache_diff:.2e}, losses {worst:.2e}')

"""DRMClassifier on a tiny CLIP: prediction, gradients, text caching, soft
labels, baselines, and a few DRM steps on fake iWildCam."""
import os
from pathlib import Path

import pytest
import torch

from drm_mm.models.classifiers.drm_classifier import DRMClassifier
from drm_mm.models.clip import OpenCLIP
from drm_mm.models.classifiers.text_prototypes import class_prototypes
from drm_mm.models.losses.dual_risk_loss import soft_cross_entropy
from drm_mm.models.soft_labels import minmax_soft_labels, softmax_soft_labels
from mmpretrain.structures import DataSample

os.environ.setdefault('HF_HUB_OFFLINE', '1')
REPO = Path(__file__).resolve().parents[3]
CLASSES = ['cat', 'dog', 'bird']
TEMPLATES = ['a photo of {c}.', 'a drawing of a {c}.']
DESCRIPTIONS = {'cat': 'a small feline with whiskers',
                'dog': ['a canine with floppy ears', 'a barking pet'],
                'bird': 'a feathered animal with a beak'}


def build(frozen=(), beta=0.5, loss=None, soft_labels=None, seed=0, **kw):
    torch.manual_seed(seed)
    kw.setdefault('descriptions', DESCRIPTIONS)
    kw.setdefault('templates', TEMPLATES)
    return DRMClassifier(
        clip=dict(type='OpenCLIP', model_name='drm-tiny-vit', frozen=frozen),
        classnames=CLASSES,
        head=dict(beta=beta, **kw.pop('head', {})),
        loss=loss or dict(erm='contrastive', wrm_weight=1.0),
        soft_labels=soft_labels or dict(source='online'), **kw)


def batch(n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=g)
    samples = []
    for i in range(n):
        s = DataSample().set_gt_label(i % len(CLASSES))
        s.set_metainfo(dict(sample_idx=i))
        samples.append(s)
    return x, samples


def total(losses):
    return sum(v for k, v in losses.items() if 'loss' in k)


def count_text_forwards(model, monkeypatch):
    calls = []
    inner = model.clip.encode_text

    def counted(tokens, *args, **kwargs):
        calls.append(tokens.shape[0])
        return inner(tokens, *args, **kwargs)

    monkeypatch.setattr(model.clip, 'encode_text', counted)
    return calls


def manual_prototypes(model, prompts):
    clip = model.clip if isinstance(model, DRMClassifier) else model
    with torch.no_grad():
        feats = clip.encode_text([p for ps in prompts for p in ps])
    return class_prototypes(feats, [len(p) for p in prompts])


def test_predict_returns_the_beta_mixture_of_text_heads():
    model = build(beta=0.3).eval()
    x, samples = batch()
    out = model(x, samples, mode='predict')
    df = manual_prototypes(model, [[t.replace('{c}', c) for t in TEMPLATES]
                                   for c in CLASSES])
    cd = manual_prototypes(model, [[DESCRIPTIONS['cat']], DESCRIPTIONS['dog'],
                                   [DESCRIPTIONS['bird']]])
    with torch.no_grad():
        img = model.clip.encode_image(x)
        s = model.clip.logit_scale
        hand = 0.3 * (s * img @ df.t()).softmax(1) + 0.7 * (
            s * img @ cd.t()).softmax(1)
    scores = torch.stack([o.pred_score for o in out])
    assert torch.allclose(scores, hand, atol=1e-5)
    assert [int(o.pred_label) for o in out] == hand.argmax(1).tolist()
    assert torch.allclose(model(x, mode='tensor'), hand, atol=1e-5)
    assert model.extract_feat(x).shape == (6, 32)


def test_gradients_reach_both_towers_when_both_train():
    model = build().train()
    total(model(*batch(), mode='loss')).backward()
    grads = {n: p.grad for n, p in model.clip.model.named_parameters()}
    assert grads['visual.conv1.weight'].abs().sum() > 0
    assert grads['token_embedding.weight'].abs().sum() > 0
    assert grads['text_projection'].abs().sum() > 0
    assert grads['logit_scale'].abs().item() > 0


@pytest.mark.parametrize('frozen, trains', [(('text', ), 'visual.'),
                                            (('image', ), 'transformer.')])
def test_no_gradient_reaches_a_frozen_tower(frozen, trains):
    model = build(frozen=frozen).train()
    total(model(*batch(), mode='loss')).backward()
    for name, param in model.clip.model.named_parameters():
        is_image = name.startswith('visual.')
        frozen_param = (is_image and 'image' in frozen) or (
            not is_image and name != 'logit_scale' and 'text' in frozen)
        if frozen_param:
            assert param.grad is None, name
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for n, p in model.clip.model.named_parameters()
               if n.startswith(trains))


def test_one_text_forward_per_step_when_the_text_tower_trains(monkeypatch):
    model = build(loss=dict(erm='ce', wrm_weight=1.0)).train()
    calls = count_text_forwards(model, monkeypatch)
    model(*batch(), mode='loss')
    # df prompts (3 x 2) + cd prompts (1 + 2 + 1), one batched forward
    assert calls == [10]
    model = build(loss=dict(erm='contrastive', wrm_weight=1.0)).train()
    calls = count_text_forwards(model, monkeypatch)
    model(*batch(n=6), mode='loss')
    assert calls == [6 + 4]  # 6 captions + cd prompts


def test_frozen_text_tower_encodes_prompts_once(monkeypatch):
    model = build(frozen=('text', )).train()
    calls = count_text_forwards(model, monkeypatch)
    x, samples = batch()
    model(x, samples, mode='loss')
    n_first = len(calls)
    model(x, samples, mode='loss')
    model.eval()
    model(x, mode='predict')
    n_after_predict = len(calls)
    model(x, mode='predict')
    model.train()
    model(x, samples, mode='loss')
    assert len(calls) == n_after_predict
    assert n_first >= 1
    # loading weights (e.g. a checkpoint or WiSE-FT) invalidates the cache
    model.load_state_dict(model.state_dict())
    model.eval()
    model(x, mode='predict')
    assert len(calls) > n_after_predict


def test_eval_prototypes_follow_a_training_step():
    model = build(loss=dict(erm='ce', wrm_weight=1.0))
    x, samples = batch()
    model.eval()
    before = model.prototypes('df').clone()
    model.train()
    optim = torch.optim.SGD(model.parameters(), lr=1.0)
    total(model(x, samples, mode='loss')).backward()
    optim.step()
    model.eval()
    after = model.prototypes('df')
    assert not torch.allclose(before, after)
    assert torch.allclose(after, manual_prototypes(
        model, [[t.replace('{c}', c) for t in TEMPLATES] for c in CLASSES]),
        atol=1e-6)


def test_frozen_text_captions_equal_direct_encoding():
    model = build(frozen=('text', ), templates=['a photo of {c}.'],
                  loss=dict(erm='contrastive', wrm_weight=0.0), beta=1.0,
                  descriptions=None)
    table = model.text.cached(model.clip, 'caption')
    direct = model.clip.encode_text([f'a photo of {c}.' for c in CLASSES])
    assert torch.allclose(table[:, 0], direct, atol=1e-6)


def test_cache_mode_looks_up_soft_labels_by_sample_idx():
    model = build(frozen=('text', ), soft_labels=dict(source='cache'))
    x, samples = batch()
    with pytest.raises(RuntimeError, match='SoftLabelCacheHook'):
        model(x, samples, mode='loss')
    table = torch.softmax(torch.randn(10, 3), dim=1)
    model.set_soft_labels(table)
    for s, idx in zip(samples, [9, 0, 4, 4, 7, 2]):
        s.set_metainfo(dict(sample_idx=idx))
    out = model(x, samples, mode='loss')
    with torch.no_grad():
        z_cd = model.clip.logit_scale * model.clip.encode_image(
            x) @ model.prototypes('cd').t()
    hand = soft_cross_entropy(z_cd, table[[9, 0, 4, 4, 7, 2]])
    assert torch.allclose(out['wrm_raw'], hand, atol=1e-5)
    samples[0].set_metainfo(dict(sample_idx=99))
    with pytest.raises(IndexError, match='99'):
        model(x, samples, mode='loss')


def _initial_p_c(initial_clip, x, tau=0.1):
    """p_c by hand from a copy of the CLIP at its initial weights."""
    with torch.no_grad():
        img = initial_clip.encode_image(x)
        aff = img @ manual_prototypes(
            initial_clip, [[DESCRIPTIONS['cat']], DESCRIPTIONS['dog'],
                           [DESCRIPTIONS['bird']]]).t()
    return minmax_soft_labels(aff, tau)


def test_online_soft_labels_come_from_the_initial_clip():
    import copy
    model = build(soft_labels=dict(source='online', tau=0.1))
    initial = copy.deepcopy(model.clip)
    x, _ = batch()
    with torch.no_grad():
        for p in model.clip.parameters():
            p.add_(0.05)
    expected = _initial_p_c(initial, x)
    assert torch.allclose(model.soft_labels(x, []), expected, atol=1e-5)
    assert 'teacher' not in str(dict(model.named_modules()).keys())
    assert not any('teacher' in k or 'soft_labels' in k
                   for k in model.state_dict())


def test_cache_teacher_is_the_initial_clip_without_pretrained_weights():
    import copy
    model = build(soft_labels=dict(source='cache'))
    initial = copy.deepcopy(model.clip)
    with torch.no_grad():
        for p in model.clip.parameters():
            p.add_(1.0)
    x, _ = batch()
    seen = dict(fingerprint=model.soft_labels.start_pass())
    seen['p_c'] = model.soft_labels.pass_labels(x)
    model.soft_labels.end_pass()
    model.set_soft_labels(seen['p_c'])
    assert torch.allclose(seen['p_c'], _initial_p_c(initial, x), atol=1e-5)
    assert torch.equal(model.soft_label_table, seen['p_c'])
    assert seen['fingerprint']['num_classes'] == 3
    assert not any(p.requires_grad
                   for p in model.soft_labels._kept_teacher[0].parameters())


def test_teacher_softmax_uses_the_pretrained_logit_scale():
    """normalization='softmax' runs at the teacher's logit scale, never at
    the student's (which training moves)."""
    import copy
    model = build(soft_labels=dict(source='online', normalization='softmax',
                                   tau=0.5))
    initial = copy.deepcopy(model.clip)
    with torch.no_grad():
        model.clip.model.logit_scale.fill_(0.0)  # student scale 1
    x, _ = batch()
    with torch.no_grad():
        img = initial.encode_image(x)
        aff = img @ manual_prototypes(
            initial, [[DESCRIPTIONS['cat']], DESCRIPTIONS['dog'],
                      [DESCRIPTIONS['bird']]]).t()
    expected = softmax_soft_labels(aff, float(initial.logit_scale), 0.5)
    assert float(initial.logit_scale) == pytest.approx(1 / 0.07, rel=1e-4)
    assert torch.allclose(model.soft_labels(x, []), expected, atol=1e-6)


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match='descriptions'):
        build(descriptions=None)
    with pytest.raises(ValueError, match="erm='ce'"):
        build(beta=1.0, head=dict(linear=True),
              loss=dict(erm='contrastive', wrm_weight=0))
    with pytest.raises(ValueError, match='source'):
        build(soft_labels=dict(source='disk'))
    with pytest.raises(ValueError, match='normalization'):
        build(soft_labels=dict(normalization='zscore'))


def test_soft_labels_component_is_built_by_type():
    default = build(soft_labels=dict(source='cache', tau=0.3))
    typed = build(soft_labels=dict(type='CoreSoftLabels', source='cache',
                                   tau=0.3))
    for model in (default, typed):
        assert type(model.soft_labels).__name__ == 'CoreSoftLabels'
        assert (model.soft_labels.source, model.soft_labels.tau,
                model.soft_labels.normalization) == ('cache', 0.3, 'minmax')
    with pytest.raises(ValueError) as err:
        build(soft_labels=dict(type='NoSuchSoftLabels'))
    assert str(err.value) == (
        "DRMClassifier.soft_labels.type='NoSuchSoftLabels' is not "
        "registered in drm_mm's MODELS; use 'CoreSoftLabels'.")


@pytest.mark.parametrize('size', [0, -3, 2.5])
def test_text_batch_size_must_be_positive(size):
    with pytest.raises(ValueError) as err:
        build(text_batch_size=size)
    assert str(err.value) == (
        f'DRMClassifier.text_batch_size must be a positive integer (prompts '
        f'per text forward), got {size!r}.')


def test_descriptions_are_matched_by_class_name_not_position():
    """A description dict in another key order than the classes gives the
    same cd prototypes, each class its own descriptions."""
    shuffled = {k: DESCRIPTIONS[k] for k in ('bird', 'cat', 'dog')}
    model = build(descriptions=shuffled).eval()
    assert model.descriptions == [[DESCRIPTIONS['cat']], DESCRIPTIONS['dog'],
                                  [DESCRIPTIONS['bird']]]
    hand = manual_prototypes(model, [[DESCRIPTIONS['cat']],
                                     DESCRIPTIONS['dog'],
                                     [DESCRIPTIONS['bird']]])
    assert torch.allclose(model.prototypes('cd'), hand, atol=1e-6)


def test_linear_probe_head_starts_at_zero_shot():
    zero_shot = build(beta=1.0, descriptions=None, seed=3,
                      loss=dict(erm='ce', wrm_weight=0)).eval()
    lp = build(frozen=('image', 'text', 'logit_scale'), beta=1.0, seed=3,
               descriptions=None, head=dict(linear=True),
               loss=dict(erm='ce', wrm_weight=0)).eval()
    x, samples = batch()
    assert torch.allclose(lp(x), zero_shot(x), atol=1e-5)
    trainable = [n for n, p in lp.named_parameters() if p.requires_grad]
    assert trainable == ['head.weight', 'head.bias']
    lp.train()
    total(lp(x, samples, mode='loss')).backward()
    assert lp.head.weight.grad.abs().sum() > 0


def test_set_class_subset_restricts_predictions():
    model = build().eval()
    x, _ = batch()
    model.set_class_subset([0, 2])
    scores = model(x)
    assert (scores[:, 1] == 0).all()
    model.set_class_subset(None)
    assert (model(x)[:, 1] > 0).all()


def test_dataset_keys_resolve_names_templates_and_shipped_descriptions():
    pytest.importorskip('drm_mm.datasets.classnames')
    model = DRMClassifier(
        clip=OpenCLIP(model_name='drm-tiny-vit'), classnames='iwildcam',
        descriptions='iwildcam.json', soft_labels=dict(source='online'))
    assert model.num_classes == 182
    assert model.templates == ['a photo of {c}.']
    assert len(model.descriptions) == 182


def _fake_iwildcam(root):
    """A tiny iWildCam in the WILDS layout with real category names."""
    from drm_mm.datasets.classnames import iwildcam_categories
    from tools.dataset_tools.wilds_layout import (tiny_iwildcam_samples,
                                                  write_iwildcam)
    categories = [(r.y, r.category_id, r.name)
                  for r in iwildcam_categories()[:6]]
    write_iwildcam(root, tiny_iwildcam_samples(seed=0, n_classes=6,
                                               size=(64, 48)),
                   categories=categories)
    return root


def test_a_few_drm_steps_lower_the_loss_on_a_fixed_batch(tmp_path):
    wilds = pytest.importorskip('drm_mm.datasets.wilds_iwildcam')
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DefaultScope
    root = _fake_iwildcam(tmp_path)
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='ResizeEdge', scale=32, edge='short'),
        dict(type='CenterCrop', crop_size=32),
        dict(type='PackInputs'),
    ]
    with DefaultScope.overwrite_default_scope('drm_mm'):
        dataset = wilds.WILDSIWildCam(data_root=str(root), split='train',
                                      pipeline=pipeline)
    classes = list(dataset.metainfo['classes'])
    descriptions = {c: f'a photo of an animal called {c}' for c in classes}
    torch.manual_seed(0)
    model = DRMClassifier(
        clip=dict(type='OpenCLIP', model_name='drm-tiny-vit'),
        classnames=classes, templates='iwildcam', descriptions=descriptions,
        loss=dict(erm='contrastive', wrm_weight=1.0),
        soft_labels=dict(source='online'))
    data = model.data_preprocessor(
        pseudo_collate([dataset[i] for i in range(min(len(dataset), 12))]),
        True)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    losses = []
    for _ in range(6):
        torch.manual_seed(0)  # same caption templates every step
        loss = total(model(data['inputs'], data['data_samples'], 'loss'))
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize('name', [
    'drm_tiny_fake_iwildcam', 'flyp_tiny_fake_iwildcam',
    'ce_tiny_fake_iwildcam', 'ce_tiny_lp_fake_iwildcam',
    'ce_tiny_lpft_fake_iwildcam'
])
def test_smoke_configs_build_their_model(name):
    pytest.importorskip('drm_mm.datasets.classnames')
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from drm_mm.registry import MODELS
    path = REPO / 'configs' / 'smoke' / f'{name}.py'
    cfg = Config.fromfile(str(path))
    with DefaultScope.overwrite_default_scope('drm_mm'):
        model = MODELS.build(cfg.model)
    assert isinstance(model, DRMClassifier)
    assert model.num_classes == 182
    uses_wrm = model.head.loss_module.uses_wrm
    assert uses_wrm == (name.startswith('drm'))
    hooks = [h['type'].split('.')[-1] for h in cfg.get('custom_hooks', [])]
    assert ('SoftLabelCacheHook' in hooks) == uses_wrm


def test_a_deep_copy_keeps_its_own_prototype_cache():
    import copy
    model = build(frozen=('text', )).eval()
    before = model.prototypes('df').clone()
    twin = copy.deepcopy(model)
    twin.prototypes('df')
    state = {k: v + 0.1 if v.is_floating_point() else v
             for k, v in twin.state_dict().items()}
    twin.load_state_dict(state)
    assert not torch.allclose(twin.prototypes('df'), before, atol=1e-4)
    assert torch.equal(model.prototypes('df'), before)


def test_duplicate_imagenet_names_get_wnid_keys():
    classnames = pytest.importorskip('drm_mm.datasets.classnames')
    from drm_mm.prompts import default_class_keys
    keys = default_class_keys('imagenet', classnames.get_classnames(
        'imagenet'))
    assert len(set(keys)) == 1000
    assert 'missile [n03773504]' in keys and 'sunglasses [n04356056]' in keys


# ---- fast paths: padding-free text forward, prompts sharded across ranks

SHORT_DESCRIPTIONS = {
    'cat': ['a small feline', 'a cat with long whiskers and striped fur '
            'curled up asleep on a sunny windowsill'],
    'dog': ['a canine with floppy ears', 'a dog'],
    'bird': ['a feathered animal with a beak and two thin legs', 'a bird']}


def _step_grads(trim):
    torch.manual_seed(0)
    model = DRMClassifier(
        clip=dict(type='OpenCLIP', model_name='drm-tiny-vit',
                  trim_text=trim, text_length_buckets=3),
        classnames=CLASSES, templates=TEMPLATES,
        descriptions=SHORT_DESCRIPTIONS,
        loss=dict(erm='ce', wrm_weight=1.0),
        soft_labels=dict(source='online')).train()
    if trim:
        model.clip.text_encoder.text_bucket_overhead = 0
    losses = model(*batch(), mode='loss')
    total(losses).backward()
    return losses, {n: p.grad for n, p in model.named_parameters()
                    if p.grad is not None}


def test_trimmed_text_forward_gives_the_same_step():
    (loss_full, grads_full), (loss_trim, grads_trim) = (_step_grads(False),
                                                        _step_grads(True))
    for key in ('loss_erm', 'loss_wrm'):
        assert torch.allclose(loss_full[key], loss_trim[key], atol=1e-5)
    assert grads_full.keys() == grads_trim.keys()
    for name, grad in grads_full.items():
        assert torch.allclose(grad, grads_trim[name], atol=1e-5,
                              rtol=1e-4), name


_SHARD_WORKER = '''
import sys
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel
from mmpretrain.structures import DataSample

from drm_mm.models.classifiers.drm_classifier import DRMClassifier
from drm_mm.models.rank_shards import rank_and_world

CLASSES = ['cat', 'dog', 'bird']
DESCRIPTIONS = {'cat': ['a small feline', 'a striped cat'],
                'dog': ['a canine with floppy ears', 'a dog'],
                'bird': ['a feathered animal', 'a bird', 'a beak']}
N = 6


def build():
    torch.manual_seed(0)
    return DRMClassifier(
        clip=dict(type='OpenCLIP', model_name='drm-tiny-vit'),
        classnames=CLASSES, templates=['a photo of {c}.'],
        descriptions=DESCRIPTIONS,
        loss=dict(erm='contrastive', wrm_weight=1.0),
        soft_labels=dict(source='online')).train()


def batch(lo, hi):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, 3, 32, 32, generator=g)
    samples = [DataSample().set_gt_label(i % 3) for i in range(N)]
    return x[lo:hi], samples[lo:hi]


def step(model, lo, hi):
    losses = model(*batch(lo, hi), mode='loss')
    loss = losses['loss_erm'] + losses['loss_wrm']
    loss.backward()
    module = getattr(model, 'module', model)
    return dict(loss=loss.detach(), grads={
        n: p.grad.clone() for n, p in module.named_parameters()
        if p.grad is not None})


def worker(rank, port, out):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=rank, world_size=2)
    model = build()
    assert rank_and_world() == (rank, 2)
    seen = []
    model.clip.model.transformer.register_forward_pre_hook(
        lambda mod, args: seen.append(args[0].shape[0]))
    result = step(DistributedDataParallel(model), 3 * rank, 3 * rank + 3)
    result['text_rows'] = sum(seen)
    torch.save(result, f'{out}/rank{rank}.pt')
    dist.destroy_process_group()


if __name__ == '__main__':
    port, out = int(sys.argv[1]), sys.argv[2]
    torch.set_num_threads(1)
    torch.save(step(build(), 0, N), f'{out}/single.pt')
    mp.start_processes(worker, args=(port, out), nprocs=2, join=True,
                       start_method='fork')
'''


@pytest.mark.slow  # two gloo processes: seconds of imports
def test_sharded_cd_prompts_match_one_process(tmp_path):
    import socket
    import subprocess
    import sys
    script = tmp_path / 'worker.py'
    script.write_text(_SHARD_WORKER)
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=f'{REPO}{os.pathsep}'
               f'{os.environ.get("PYTHONPATH", "")}', OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, str(script), str(port),
                           str(tmp_path)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = torch.load(tmp_path / 'single.pt', weights_only=True)
    ranks = [torch.load(tmp_path / f'rank{r}.pt', weights_only=True)
             for r in range(2)]
    # each rank: 3 captions + its 4 of the 7 cd prompts (3 for the last)
    assert [r['text_rows'] for r in ranks] == [3 + 4, 3 + 3]
    mean_loss = (ranks[0]['loss'] + ranks[1]['loss']) / 2
    assert torch.allclose(mean_loss, single['loss'], atol=1e-5)
    for rank in ranks:
        assert rank['grads'].keys() == single['grads'].keys()
        for name, grad in single['grads'].items():
            assert torch.allclose(rank['grads'][name], grad, atol=1e-5,
                                  rtol=1e-4), name


def test_the_classifier_hands_its_loss_to_the_head():
    def make(**kwargs):
        return DRMClassifier(
            clip=dict(type='OpenCLIP', model_name='drm-tiny-vit'),
            classnames=CLASSES, templates=TEMPLATES,
            descriptions=DESCRIPTIONS, **kwargs)

    model = make(loss=dict(erm='ce', wrm_weight=0.25))
    assert model.head.loss_module.erm == 'ce'
    assert model.head.loss_module.wrm_weight == 0.25
    with pytest.raises(ValueError) as err:
        make(head=dict(loss=dict(erm='ce')), loss=dict(erm='ce'))
    assert str(err.value) == ('DRMClassifier: the loss is set twice (loss= '
                              'and head.loss=); keep one.')

"""TextPrototypes: chunked encoding in row order, captions drawn from the
sample's own class, the cache following the weights."""
import pytest
import torch

from drm_mm.models.classifiers.drm_classifier import DRMClassifier
from drm_mm.models.classifiers.text_prototypes import TextPrototypes
from drm_mm.models.clip import OpenCLIP
from drm_mm.models.classifiers.text_prototypes import class_prototypes

CLASSES = ['cat', 'dog', 'bird']
TEMPLATES = ['a photo of {c}.', 'a blurry drawing of a small {c} outdoors.']
# lengths from 3 to ~20 tokens, so that length buckets and chunks mix rows
DESCRIPTIONS = {
    'cat': ['a small feline', 'a cat with long whiskers and striped fur '
            'curled up asleep on a sunny windowsill', 'fur'],
    'dog': ['a canine with floppy ears', 'a dog'],
    'bird': ['a feathered animal with a beak and two thin legs', 'a bird']}


def build(text_batch_size=1024, trim=True, frozen=('text', ),
          loss=None):
    torch.manual_seed(0)
    model = DRMClassifier(
        clip=dict(type='OpenCLIP', model_name='drm-tiny-vit',
                  trim_text=trim, text_length_buckets=3, frozen=frozen),
        classnames=CLASSES, templates=TEMPLATES, descriptions=DESCRIPTIONS,
        loss=loss or dict(erm='contrastive', wrm_weight=1.0),
        soft_labels=dict(source='online'), text_batch_size=text_batch_size)
    if trim:
        model.clip.text_encoder.text_bucket_overhead = 0  # bucket tiny sets too
    return model.eval()


def _padded_prototypes(model, prompts):
    """Reference: open_clip's own padded text forward, one batch."""
    import open_clip
    tokens = model.clip.tokenize([p for ps in prompts for p in ps])
    with torch.no_grad():
        feats = open_clip.CLIP.encode_text(model.clip.model, tokens,
                                           normalize=True)
    return class_prototypes(feats, [len(ps) for ps in prompts])


@pytest.mark.parametrize('trim', [True, False])
def test_chunked_encoding_keeps_the_row_order(trim):
    """text_batch_size below the prompt count (chunks of 2 of 7 cd and 6 df
    prompts) gives the prototypes of open_clip's one padded batch."""
    chunked = build(2, trim)
    prompts = dict(df=[[t.replace('{c}', c) for t in TEMPLATES]
                       for c in CLASSES],
                   cd=[DESCRIPTIONS[c] for c in CLASSES])
    expected = {n: _padded_prototypes(chunked, p) for n, p in prompts.items()}
    seen = []
    chunked.clip.model.transformer.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(args[0].shape[0]),
        with_kwargs=True)
    for name in ('df', 'cd'):
        assert torch.allclose(chunked.prototypes(name), expected[name],
                              atol=1e-5), name
    assert max(seen) == 2 and sum(seen) == 6 + 7


def _class_template_embeddings(model):
    with torch.no_grad():
        feats = model.clip.encode_text([t.replace('{c}', c)
                                        for c in CLASSES for t in TEMPLATES])
    return feats.view(len(CLASSES), len(TEMPLATES), -1)


@pytest.mark.parametrize('frozen', [('text', ), ()])
def test_training_captions_come_from_the_sample_class(frozen, monkeypatch):
    """Every caption of a step is one of its own class's templates (cached
    table with a frozen text tower; one text forward otherwise)."""
    model = build(frozen=frozen).train()
    by_class = _class_template_embeddings(model)
    seen = {}
    inner = model.head.loss_module.forward

    def capture(**kwargs):
        seen['captions'] = kwargs['caption_features'].detach()
        return inner(**kwargs)

    monkeypatch.setattr(model.head.loss_module, 'forward', capture)
    from mmpretrain.structures import DataSample
    labels = [0, 1, 2, 2, 1, 0, 0, 2]
    samples = [DataSample().set_gt_label(y) for y in labels]
    torch.manual_seed(3)
    model(torch.randn(len(labels), 3, 32, 32), samples, mode='loss')
    captions = torch.nn.functional.normalize(seen['captions'], dim=-1)
    flat = torch.nn.functional.normalize(by_class, dim=-1).flatten(0, 1)
    distance = torch.cdist(captions, flat)  # (N, C * T)
    nearest = distance.argmin(dim=1) // len(TEMPLATES)
    assert nearest.tolist() == labels
    assert float(distance.min(dim=1).values.max()) < 1e-5


def test_cache_follows_optimizer_steps_and_loads_but_not_data_edits():
    model = build(frozen=())
    before = model.prototypes('df').clone()
    weight = model.clip.model.token_embedding.weight
    shift = 0.3 * torch.randn(weight.shape,
                              generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # an in-place update bumps the version counter
        weight.add_(shift)
    moved = model.prototypes('df').clone()
    assert not torch.allclose(moved, before, atol=1e-4)
    model.load_state_dict(build(frozen=()).state_dict())
    assert torch.allclose(model.prototypes('df'), before, atol=1e-6)
    # an edit through .data is invisible to the stamp: invalidate by hand
    model.clip.model.token_embedding.weight.data.add_(shift)
    assert torch.equal(model.prototypes('df'), before)
    model.invalidate_prototypes()
    assert torch.allclose(model.prototypes('df'), moved, atol=1e-6)


def test_prompt_sets_are_checked():
    clip = OpenCLIP('drm-tiny-vit')
    with pytest.raises(ValueError) as err:
        TextPrototypes(clip, dict(df=[['a cat']], desc=[['a cat']]))
    assert str(err.value) == ("TextPrototypes: unknown prompt set(s) "
                              "['desc']; use ('df', 'cd', 'caption').")

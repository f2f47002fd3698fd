# DRM in the toy world (a CPU sanity check of the mechanism, not a paper
# experiment): the project's tiny CLIP (drm-toy-rn, pretrained on the toy
# caption corpus) fine-tuned with the dual risk, L_ERM (FLYP contrastive on
# df captions) + lambda * L_WRM (cross-entropy against core-based soft
# labels from the frozen pre-trained CLIP with concept descriptions), then
# dual inference (beta * softmax(z_df) + (1 - beta) * softmax(z_cd)).
# The baselines zeroshot/flyp/ce_toy_rn.py inherit this file and change the
# method only. The whole study (data, pretraining, 3 methods x 3 seeds,
# WiSE-FT, table, plot) is one command: bash tools/run_demo.sh
# By hand, from the checkout root (PYTHONPATH=. finds the project package):
#   python projects/toy_world/tools/generate_world.py
#   python projects/toy_world/tools/pretrain_clip.py
#   PYTHONPATH=. python tools/train.py projects/toy_world/configs/drm_toy_rn.py
_base_ = [
    '../../../configs/_base_/models/drm_clip.py', './_base_/toy_world.py',
    './_base_/toy_finetune.py', '../../../configs/_base_/default_runtime.py'
]

# drm_mm components, then the project package (it registers the toy CLIP
# architecture drm-toy-rn with open_clip).
custom_imports = dict(imports=['drm_mm', 'projects.toy_world.toy_world'],
                      allow_failed_imports=False)

# Written by projects/toy_world/tools/pretrain_clip.py with its default
# settings (the name carries a hash of them; tests keep this path in sync).
# Paths are relative to the checkout root, where the tools run.
toy_clip = 'data/toy/drm-toy-rn_d531484253c7.pth'

model = dict(
    clip=dict(model_name='drm-toy-rn', pretrained=toy_clip,
              grad_checkpointing=False),
    classnames=['circle', 'square', 'triangle', 'star', 'cross', 'ring',
                'crescent', 'heart'],
    templates=['a photo of a {c}.'],
    descriptions='projects/toy_world/prompts/toy.json',
    # the paper's defaults: beta 0.5, lambda 1, min-max soft labels, tau 0.1
    head=dict(beta=0.5),
    loss=dict(erm='contrastive', wrm_weight=1.0),
    soft_labels=dict(source='cache', normalization='minmax', tau=0.1))

custom_hooks = [
    dict(type='drm_mm.SoftLabelCacheHook', batch_size=500),
    dict(type='drm_mm.DivergenceGuardHook', action='stop'),
]

default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=1, max_keep_ckpts=1))
randomness = dict(seed=0)

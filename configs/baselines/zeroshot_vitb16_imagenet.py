# Baseline for configs/drm/vitb16_imagenet.py: same data, schedule and model;
# only the method differs.
# Zero-shot CLIP (no training): the df head alone (beta = 1).
# Evaluate: python tools/test.py configs/baselines/zeroshot_vitb16_imagenet.py none
_base_ = ['../drm/vitb16_imagenet.py']

model = dict(head=dict(beta=1.0), loss=dict(erm='contrastive', wrm_weight=0.0),
             descriptions=None)
custom_hooks = []

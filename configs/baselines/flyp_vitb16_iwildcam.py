# Baseline for configs/drm/vitb16_iwildcam.py: same data, schedule and model;
# only the method differs.
# FLYP: contrastive fine-tuning on df captions, both towers train,
# lambda = 0, single-head inference (beta = 1). Paper (ViT-L/14@336): ImageNet
# OOD mean 75.9, iWildCam OOD macro-F1 47.1, FMoW OOD worst-region 50.7.
_base_ = ['../drm/vitb16_iwildcam.py']

model = dict(head=dict(beta=1.0),
             loss=dict(erm='contrastive', wrm_weight=0.0),
             descriptions=None)
custom_hooks = [dict(type='drm_mm.DivergenceGuardHook', action='stop')]

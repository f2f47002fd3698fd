# DRM on an open_clip CLIP (docs/method.md). Dataset configs set classnames,
# templates and descriptions; drm/ configs pick the architecture.
model = dict(
    type='drm_mm.DRMClassifier',
    # OpenAI CLIP weights via open_clip (downloads to the HF cache; offline:
    # pretrained='/path/to/open_clip_model.safetensors').
    # frozen=('image' | 'text' | 'logit_scale', ...) chooses what trains.
    clip=dict(type='drm_mm.OpenCLIP', model_name='ViT-B-16', pretrained='openai',
              grad_checkpointing=False, frozen=()),
    classnames=None,
    templates=None,
    descriptions=None,
    # dual inference: beta * softmax(z_df) + (1 - beta) * softmax(z_cd)
    head=dict(type='drm_mm.CLIPTextHead', beta=0.5),
    # L = L_ERM (FLYP contrastive on df captions) + wrm_weight * L_WRM
    loss=dict(type='drm_mm.DualRiskLoss', erm='contrastive', wrm_weight=1.0,
              label_smoothing=0.0),
    # core-based soft labels of the frozen pre-trained CLIP with cd prompts:
    # per-image min-max affinities sharpened with tau (or 'softmax', ...);
    # tau=None: the normalisation's default (0.1 min-max, 1.0 softmax).
    soft_labels=dict(source='cache', normalization='minmax', tau=None),
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[122.770938, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True),
)

# p_c is computed once over the training set with the test pipeline, cached
# on disk by a hash of what determines it, and reused on reruns/resume.
custom_hooks = [
    dict(type='drm_mm.SoftLabelCacheHook', batch_size=256),
    dict(type='drm_mm.DivergenceGuardHook', action='stop'),
]

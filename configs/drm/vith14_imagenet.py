# DRM on CLIP ViT-H/14 (open_clip's LAION-2B weights), ImageNet, sharded with
# FSDP (not a paper setting: the paper stops at ViT-L/14@336). Same model,
# prompts, soft labels and evaluation as the ViT-L configs; FSDP splits
# weights, gradients and AdamW state over the ranks (fsdp_runtime.py).
#   bash tools/dist_train.sh configs/drm/vith14_imagenet.py 8
#   bash tools/dist_test.sh configs/drm/vith14_imagenet.py CHECKPOINT 8
#   python tools/wise_ft.py configs/drm/vith14_imagenet.py --finetuned CHECKPOINT
# The checkpoints hold consolidated weights (tools/test.py reads them).
_base_ = [
    '../_base_/models/drm_clip.py', '../_base_/datasets/imagenet.py',
    '../_base_/schedules/clip_finetune_imagenet_10e.py', '../_base_/fsdp_runtime.py'
]

model = dict(
    clip=dict(model_name='ViT-H-14', pretrained='laion2b_s32b_b79k',
              grad_checkpointing=True),
    classnames='imagenet',
    templates='imagenet',
    descriptions='imagenet.json')
# bf16 autocast; activation checkpointing inside the FSDP blocks.
optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16')

default_hooks = dict(
    checkpoint=dict(save_best='imagenet_holdout/accuracy', rule='greater'))

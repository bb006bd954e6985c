#!/usr/bin/env bash
# --corpus full: prepare every corpus whose root is set in db.sh into ${datadir}/.
set -euo pipefail
log() { echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${0##*/}) $*"; }
datadir=data
python=python3
. ./db.sh
. utils/parse_options.sh

prep() {  # prep <db variable value> <script> [args]
    local root=$1 script=$2; shift 2
    if [ -z "${root}" ]; then log "skip ${script}: its root is not set in db.sh"; return; fi
    log "${script} (${root})"
    ${python} "local/${script}" --db_root "${root}" --out_dir "${datadir}" "$@"
}
prep "${LIBRISPEECH}" librispeech.py
prep "${AISHELL}" aishell1.py
prep "${MELD}" meld.py
prep "${VOCALSOUND}" vocalsound.py
prep "${COMMONVOICE}" commonvoice.py
prep "${LIBRITTS}" libritts.py
prep "${TEXT_DIALOGUE}" text_dialogue.py
prep "${VOICEBENCH}" voicebench.py
prep "${SEEDTTS_EVAL}" seedtts_eval.py
${python} local/asterisk.py --out_dir "${datadir}/test_asterisk_asr"
log "Successfully finished. [elapsed=${SECONDS}s]"

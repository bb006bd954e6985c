#!/usr/bin/env bash
# --corpus full: prepare every corpus whose root is set in db.sh into ${datadir}/.
#
# Each corpus runs on its own, logged to ${datadir}/log/<corpus>.log: a root left empty is
# skipped with one line, a corpus that fails is reported and does not stop the others, and
# a corpus already prepared (${datadir}/log/<corpus>.done) is not prepared again. The exit
# status is 1 if any corpus failed (fix it, or empty its root in db.sh, and re-run: the
# prepared corpora are kept). Each data dir's role (train/valid/test) is listed in
# ${datadir}/set_roles, which echat.sh reads for its default --train_sets/--valid_sets/--test_sets.
set -euo pipefail
log() { echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${0##*/}) $*"; }
SECONDS=0
datadir=data
python=python3
asterisk_utts=20            # real-speech ASR test set from Debian's asterisk prompts (0: none)
help_message="Usage: $0 [--datadir data] [--python python3] [--asterisk_utts 20]"
. ./db.sh
. utils/parse_options.sh

mkdir -p "${datadir}/log"
failed=(); prepared=(); skipped=()
prep() {  # prep <name> <db variable name> <script> [args]: one corpus, failures contained
    local name=$1 var=$2 script=$3; shift 3
    local root=${!var:-}
    if [ -z "${root}" ]; then log "skip ${name}: ${var} is empty in db.sh"; skipped+=("${name}"); return 0; fi
    if [ -f "${datadir}/log/${name}.done" ]; then log "${name}: already prepared"; prepared+=("${name}"); return 0; fi
    log "${name}: local/${script} (${var}=${root}), log: ${datadir}/log/${name}.log"
    if ${python} "local/${script}" --db_root "${root}" --out_dir "${datadir}" "$@" \
            > "${datadir}/log/${name}.log" 2>&1; then
        touch "${datadir}/log/${name}.done"; prepared+=("${name}")
    else
        log "FAILED ${name}; last lines of ${datadir}/log/${name}.log:"
        tail -n 5 "${datadir}/log/${name}.log" | sed 's/^/    /' >&2
        failed+=("${name}")
    fi
}
prep librispeech LIBRISPEECH librispeech.py
prep libritts LIBRITTS libritts.py
prep aishell AISHELL aishell1.py
prep commonvoice COMMONVOICE commonvoice.py
prep meld MELD meld.py
prep vocalsound VOCALSOUND vocalsound.py
prep seedtts_eval SEEDTTS_EVAL seedtts_eval.py
prep voicebench VOICEBENCH voicebench.py
prep text_dialogue TEXT_DIALOGUE text_dialogue.py
prep echat ECHAT echat.py
if [ "${asterisk_utts}" -gt 0 ]; then
    if ${python} local/asterisk.py --out_dir "${datadir}" --max_utts "${asterisk_utts}" \
            > "${datadir}/log/asterisk.log" 2>&1; then
        prepared+=(asterisk)
    else
        log "FAILED asterisk (see ${datadir}/log/asterisk.log)"; failed+=(asterisk)
    fi
fi
log "prepared: ${prepared[*]:-none}; skipped (no root): ${skipped[*]:-none}; failed: ${failed[*]:-none}"
[ -f "${datadir}/set_roles" ] && log "data dirs and roles (${datadir}/set_roles):" && sed 's/^/    /' "${datadir}/set_roles"
[ ${#failed[@]} -eq 0 ] || exit 1
log "Successfully finished. [elapsed=${SECONDS}s]"

#!/usr/bin/env bash
# Sourced by slurm.pl and queue.pl: turn the job runner's options into scheduler options
# with a config file in ESPnet's conf/{slurm,queue}.conf format (see conf/slurm.conf).
#
#   job_conf_apply CONF NAME=VALUE...   sets job_conf_command (the "command" line) and the
#                                       array job_conf_opts (the options, in the given order,
#                                       then the defaults not given)
job_conf_apply() {
    local conf=$1 kv k v line rest key arg
    shift
    [ -f "${conf}" ] || { echo "${0##*/}: no config file ${conf}" >&2; return 1; }
    local -A given=() exact=() star=()
    local order=() words=()
    for kv in "$@"; do k=${kv%%=*}; given[$k]=${kv#*=}; order+=("$k"); done
    job_conf_command=""; job_conf_opts=()
    while IFS= read -r line || [ -n "${line}" ]; do
        line=${line%%#*}; line=$(echo "${line}" | sed -e 's/[[:space:]]*$//' -e 's/^[[:space:]]*//')
        [ -n "${line}" ] || continue
        case ${line} in
            "command "*) job_conf_command=${line#command } ;;
            "default "*)
                kv=${line#default }; k=${kv%%=*}
                if [ -z "${given[$k]+x}" ]; then given[$k]=${kv#*=}; order+=("$k"); fi ;;
            "option "*)
                rest=${line#option }; key=${rest%% *}; arg=""
                [ "${key}" != "${rest}" ] && arg=${rest#* }
                k=${key%%=*}; v=${key#*=}
                if [ "${v}" = "*" ]; then star[$k]=${arg}; else exact["$k=$v"]=${arg}; fi ;;
            *) echo "${0##*/}: cannot parse '${line}' in ${conf}" >&2; return 1 ;;
        esac
    done < "${conf}"
    [ -n "${job_conf_command}" ] || { echo "${0##*/}: ${conf} has no 'command' line" >&2; return 1; }
    for k in "${order[@]}"; do
        v=${given[$k]}
        if [ -n "${exact["$k=$v"]+x}" ]; then arg=${exact["$k=$v"]}
        elif [ -n "${star[$k]+x}" ]; then arg=${star[$k]//\$0/$v}
        else echo "${0##*/}: option --${k} ${v} is not described in ${conf}" >&2; return 1; fi
        read -ra words <<< "${arg}"
        job_conf_opts+=("${words[@]}")
    done
}

#   job_conf_parse DEFAULT_CONF ARGS...  parses run.pl's interface
#       [--config FILE] [--NAME VALUE]... [JOB=a:b] log command...
#   into job_conf (the config file), job_opts (NAME=VALUE, dashes in NAME as underscores),
#   job_var/job_start/job_end (empty job_var: no array), job_log and job_cmd (the command,
#   quoted for bash); --max-jobs-run is kept in job_max_run.
job_conf_parse() {
    job_conf=$1; shift
    job_opts=(); job_var=""; job_start=1; job_end=1; job_max_run=""
    local name
    while [[ $# -gt 0 && $1 == --* ]]; do
        [ $# -ge 2 ] || { echo "${0##*/}: option $1 needs a value" >&2; return 1; }
        name=${1#--}; name=${name//-/_}
        case ${name} in
            config) job_conf=$2 ;;
            max_jobs_run) job_max_run=$2 ;;
            *) job_opts+=("${name}=$2") ;;
        esac
        shift 2
    done
    if [[ ${1:-} =~ ^([A-Za-z_]+)=([0-9]+):([0-9]+)$ ]]; then
        job_var=${BASH_REMATCH[1]}; job_start=${BASH_REMATCH[2]}; job_end=${BASH_REMATCH[3]}; shift
    fi
    [ $# -ge 2 ] || { echo "usage: ${0##*/} [--config conf] [--gpu N] [JOB=1:N] log command..." >&2; return 1; }
    job_log=$1; shift
    job_cmd=$(printf '%q ' "$@")
    mkdir -p "$(dirname "${job_log}")"
}

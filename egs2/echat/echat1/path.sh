# Environment of the recipe: the repository's venv (made by `make setup`) when present,
# otherwise the active Python, plus this recipe's utils/ on PATH.
MAIN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
if [ -f "${MAIN_ROOT}/.venv/bin/activate" ] && [ -z "${VIRTUAL_ENV:-}" ]; then
    # shellcheck disable=SC1091
    . "${MAIN_ROOT}/.venv/bin/activate"
fi
export PATH="${PWD}/utils:${PATH}"
export LC_ALL=C
export PYTHONIOENCODING=UTF-8
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export NCCL_SOCKET_IFNAME="^lo,docker,virbr,vmnet,vboxnet"

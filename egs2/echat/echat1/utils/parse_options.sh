#!/usr/bin/env bash
# Parse --name value options into shell variables of the same name (Kaldi/ESPnet convention).
#
# Source it after the variables have their defaults:   . utils/parse_options.sh
# Only variables that already exist may be set; "--foo-bar" sets foo_bar; "--config FILE"
# sources FILE first. Positional arguments are left in "$@".
# Written for this recipe: the ESPnet wheel does not ship Kaldi's utils/ folder.

while true; do
  [ -z "${1:-}" ] && break
  case "$1" in
    --help|-h)
      if [ -n "${help_message:-}" ]; then echo -e "$help_message" 1>&2; else echo "see the script header for options" 1>&2; fi
      exit 0 ;;
    --*=*)
      echo "$0: options are '--name value', not '--name=value': $1" 1>&2; exit 1 ;;
    --*)
      name=$(echo "$1" | sed 's/^--//; s/-/_/g')
      if [ "$name" = config ]; then
        [ $# -lt 2 ] && { echo "$0: --config needs a file" 1>&2; exit 1; }
        # shellcheck disable=SC1090
        . "$2" || { echo "$0: cannot source config $2" 1>&2; exit 1; }
        shift 2; continue
      fi
      if ! declare -p "$name" >/dev/null 2>&1; then
        echo "$0: invalid option $1 (no variable '$name')" 1>&2; exit 1
      fi
      [ $# -lt 2 ] && { echo "$0: option $1 needs a value" 1>&2; exit 1; }
      # Booleans must be true|false, like ESPnet's recipes.
      old=$(eval echo "\$$name")
      if [ "$old" = true ] || [ "$old" = false ]; then
        case "$2" in true|false) ;; *) echo "$0: $1 must be true or false, got '$2'" 1>&2; exit 1 ;; esac
      fi
      printf -v "$name" '%s' "$2"
      shift 2 ;;
    *) break ;;
  esac
done
true

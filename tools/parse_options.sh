#!/usr/bin/env bash
# Command-line flags for recipe scripts (rellm's own implementation).
#
# Source it after the script's settings:   stage=1   # first stage to run
#                                          . utils/parse_options.sh
# Every variable assigned at the start of a line of the calling script before this line becomes
# a flag: --stage 3, --stage=3; dashes and underscores are the same (--stop-stage, --stop_stage).
# A variable whose default is true or false only takes true or false. An unknown flag, a flag
# without a value or a positional argument is an error naming it. --help (-h) prints the
# script's header comment and every flag with its current default and its line's trailing comment.
# The script's "$@" is left untouched, so it can still log or record its own command line.
#
# A script that another one calls with settings of its own (egs/TEMPLATE/stages.sh, which a recipe's run.sh
# calls as  ./stages.sh --corpus iemocap --split fold5 ... -- "$0" "$@"): the flags before "--" are the
# caller's settings; after "--" comes the command the user typed, its name (the help's usage and header
# comment, the name in messages) and then its flags, which are read after the settings and so win.
# Afterwards the array command_line holds that command (name, then arguments), to log or record; without
# "--" it is the script's own ("$0" "$@").

_po_script=${BASH_SOURCE[1]:-}
if [ -z "${_po_script}" ] || [ ! -f "${_po_script}" ]; then
    echo "parse_options.sh: source it from a script file ('. utils/parse_options.sh'), not run it" >&2
    return 2 2>/dev/null || exit 2
fi

# The caller's settings (before "--") and the command the user typed (after it: its name, then its flags).
_po_args=()  # the caller's settings
command_line=("$0" "$@")
_po_i=1
while [ ${_po_i} -le $# ]; do
    if [ "${!_po_i}" = "--" ]; then
        _po_args=("${@:1:_po_i-1}")
        command_line=("${@:_po_i+1}")
        if [ ${#command_line[@]} -eq 0 ]; then
            echo "parse_options.sh: '--' must be followed by the command the user typed (\"\$0\" \"\$@\")" >&2
            exit 2
        fi
        break
    fi
    _po_i=$(( _po_i + 1 ))
done
_po_args+=("${command_line[@]:1}")  # the user's flags after the caller's settings: they win

# The help text: the header comment of the script the user ran.
_po_command=${command_line[0]}
[ -f "${_po_command}" ] || _po_command=${_po_script}
_po_header=()
while IFS= read -r _po_line || [ -n "${_po_line}" ]; do
    case "${_po_line}" in
        '#!'*) continue ;;
        '#'*) _po_header+=("${_po_line#\#}") ;;
        *) break ;;
    esac
done < "${_po_command}"

# The flags: top-level assignments above the line that sources this file, with their comments.
_po_names=()
_po_comments=()
while IFS= read -r _po_line || [ -n "${_po_line}" ]; do
    case "${_po_line}" in
        *parse_options.sh*) [[ "${_po_line}" =~ ^[[:space:]]*(\.|source)[[:space:]] ]] && break ;;
    esac
    if [[ "${_po_line}" =~ ^([A-Za-z_][A-Za-z0-9_]*)= ]]; then
        _po_names+=("${BASH_REMATCH[1]}")
        if [[ "${_po_line}" =~ [[:space:]]#[[:space:]]?(.*)$ ]]; then
            _po_comments+=("${BASH_REMATCH[1]}")
        else
            _po_comments+=("")
        fi
    fi
done < "${_po_script}"

_po_index() {  # index of flag $1 in _po_names, or return 1
    local i
    for i in "${!_po_names[@]}"; do
        if [ "${_po_names[$i]}" = "$1" ]; then echo "$i"; return 0; fi
    done
    return 1
}

_po_fail() {
    echo "ERROR: ${_po_command##*/}: $* (see ${_po_command##*/} --help)" >&2
    return 1
}

_po_i=0
while [ ${_po_i} -lt ${#_po_args[@]} ]; do
    _po_arg=${_po_args[${_po_i}]}
    case "${_po_arg}" in
        -h|--help)
            echo "Usage: ${_po_command} [--flag value ...]"
            for _po_line in "${_po_header[@]}"; do echo "${_po_line# }"; done
            echo
            echo "Flags (default in brackets):"
            for _po_j in "${!_po_names[@]}"; do
                _po_name=${_po_names[${_po_j}]}
                printf '  --%-24s [%s]%s\n' "${_po_name}" "${!_po_name-}" \
                    "${_po_comments[${_po_j}]:+  ${_po_comments[${_po_j}]}}"
            done
            exit 0
            ;;
        --*)
            _po_name=${_po_arg#--}
            _po_has_value=false
            if [[ "${_po_name}" == *=* ]]; then
                _po_value=${_po_name#*=}
                _po_name=${_po_name%%=*}
                _po_has_value=true
            fi
            _po_name=${_po_name//-/_}
            if ! _po_index "${_po_name}" > /dev/null; then
                _po_fail "unknown option --${_po_name}"; exit 1
            fi
            if ! "${_po_has_value}"; then
                if [ $(( _po_i + 1 )) -ge ${#_po_args[@]} ]; then
                    _po_fail "option --${_po_name} needs a value"; exit 1
                fi
                _po_i=$(( _po_i + 1 ))
                _po_value=${_po_args[${_po_i}]}
            fi
            case "${!_po_name-}" in
                true|false)
                    if [ "${_po_value}" != true ] && [ "${_po_value}" != false ]; then
                        _po_fail "option --${_po_name} takes true or false, got '${_po_value}'"; exit 1
                    fi
                    ;;
            esac
            printf -v "${_po_name}" '%s' "${_po_value}"
            ;;
        *)
            _po_fail "unexpected argument '${_po_arg}' (flags are --name value)"; exit 1
            ;;
    esac
    _po_i=$(( _po_i + 1 ))
done

unset -f _po_index _po_fail
unset _po_script _po_command _po_names _po_comments _po_header _po_line _po_args _po_i _po_arg \
    _po_name _po_value _po_has_value _po_j
true

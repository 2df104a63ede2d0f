package completion

// The scripts. PROG, TRIGGER and ENVFORMAT are replaced by Script. Each
// sends the words up to the cursor, the word at the cursor last (empty
// when the cursor follows a space), and completes file names when the
// answer is empty.

const bashScript = `# bash completion for PROG. Load it with
#   source <(PROG completion bash)
# or install it as /etc/bash_completion.d/PROG.
_PROG_complete() {
  local cur="${COMP_WORDS[COMP_CWORD]}"
  local -a words=("${COMP_WORDS[@]:0:COMP_CWORD}")
  local candidates
  candidates=$("${words[0]}" "${words[@]:1}" "$cur" TRIGGER 2>/dev/null) || return 0
  local IFS=$'\n'
  COMPREPLY=($(compgen -W "${candidates}" -- "${cur}"))
}
complete -o bashdefault -o default -F _PROG_complete PROG
`

const zshScript = `#compdef PROG
# zsh completion for PROG. Load it with
#   source <(PROG completion zsh)
# or install it as _PROG in a directory of $fpath.
_PROG() {
  local -a candidates args
  args=("${(@)words[2,CURRENT]}")
  candidates=("${(@f)$(ENVFORMAT=zsh ${words[1]} "${args[@]}" TRIGGER 2>/dev/null)}")
  if [[ -n "${candidates[1]}" ]]; then
    _describe 'PROG' candidates
  else
    _files
  fi
}
if [[ "${funcstack[1]}" == "_PROG" ]]; then
  _PROG "$@"
else
  compdef _PROG PROG
fi
`

const fishScript = `# fish completion for PROG. Load it with
#   PROG completion fish | source
# or install it as ~/.config/fish/completions/PROG.fish.
function __PROG_complete
    set -l args (commandline -opc)
    set -l cur (commandline -ct)
    set -l candidates (env ENVFORMAT=fish $args "$cur" TRIGGER 2>/dev/null)
    if test (count $candidates) -gt 0
        printf '%s\n' $candidates
    else
        __fish_complete_path $cur
    end
end
complete -c PROG -f -a '(__PROG_complete)'
`

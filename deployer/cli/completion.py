"""Shell completion scripts, read off the parser itself: commands, then each command's options,
then file names (module folders and archives)."""

from __future__ import annotations

import argparse


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands = sorted(sub.choices)
    cases = "\n".join(f"    {name}) opts=\"{' '.join(_options(command))}\";;"
                      for name, command in sorted(sub.choices.items()))
    top = " ".join(o for a in parser._actions for o in a.option_strings if o.startswith("--"))
    body = f'''_deployer() {{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" cmd="" opts="" word i=1
  while [ "$i" -lt "$COMP_CWORD" ]; do
    word="${{COMP_WORDS[i]}}"
    case "$word" in
      --settings) i=$((i + 1));;
      -*) ;;
      *) cmd="$word"; break;;
    esac
    i=$((i + 1))
  done
  if [ -z "$cmd" ]; then
    COMPREPLY=($(compgen -W "{' '.join(commands)} {top}" -- "$cur"))
    return
  fi
  case "$cmd" in
{cases}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}}
complete -o filenames -F _deployer deployer
'''
    if shell == "zsh":
        return "autoload -U +X bashcompinit && bashcompinit\n" + body
    return body


def _options(command: argparse.ArgumentParser) -> list[str]:
    return sorted({o for a in command._actions for o in a.option_strings if o.startswith("--")})

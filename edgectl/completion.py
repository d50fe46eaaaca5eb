"""``edgectl completion bash|zsh``: a shell completion script made from the parser.

The script is static (no Python runs on Tab): one ``case`` per table, written from the
argparse tree. It completes subcommands, the options of the command typed so far (the
global ones included), the choices of an option (``--state``, ``--role``, ...), and file
names where an option or argument is a path. zsh uses the same functions through its
``bashcompinit``. Install (docs/edgectl.md, "Shell completion")::

    eval "$(edgectl completion bash)"      # in ~/.bashrc
    eval "$(edgectl completion zsh)"       # in ~/.zshrc, after compinit
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from edgectl.parser_tree import options, positionals, subcommand_parsers, takes_value, walk
from edgectl.trust_cmds import SubParsers

SHELLS = ("bash", "zsh")

_MAIN = r"""
_edgectl() {
    local cur prev path word i skip=0
    COMPREPLY=()
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    path=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        if ((skip)); then skip=0; continue; fi
        case "$word" in
            --*=*) ;;
            -*) case " $(_edgectl_valued "$path") " in *" $word "*) skip=1 ;; esac ;;
            *) case " $(_edgectl_subcommands "$path") " in
                   *" $word "*) path="${path:+$path }$word" ;;
               esac ;;
        esac
    done
    if ((COMP_CWORD > 1)) && [[ "$prev" == -* ]] \
        && [[ " $(_edgectl_valued "$path") " == *" $prev "* ]]; then
        local choices
        choices="$(_edgectl_choices "$path" "$prev")"
        if [[ -n "$choices" ]]; then
            COMPREPLY=($(compgen -W "$choices" -- "$cur"))
        elif _edgectl_is_path "$path" "$prev"; then
            COMPREPLY=($(compgen -f -- "$cur"))
        fi
        return 0
    fi
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$(_edgectl_options "$path")" -- "$cur"))
        return 0
    fi
    local subs
    subs="$(_edgectl_subcommands "$path")"
    [[ -n "$subs" ]] || subs="$(_edgectl_choices "$path" "")"
    if [[ -n "$subs" ]]; then
        COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    elif _edgectl_is_path "$path" ""; then
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
    return 0
}
"""


def _case(function: str, rows: dict[str, str], *, succeed: bool = False) -> str:
    """A shell function printing (or, ``succeed``: returning 0 for) the row of its key."""
    key = '"$1|$2"' if function in ("_edgectl_choices", "_edgectl_is_path") else '"$1"'
    arms = []
    for pattern, value in rows.items():
        body = "return 0" if succeed else f"echo {shlex.quote(value)}"
        arms.append(f"        {shlex.quote(pattern)}) {body} ;;")
    tail = "    return 1\n" if succeed else ""
    return f"{function}() {{\n    case {key} in\n" + "\n".join(arms) + f"\n    esac\n{tail}}}\n"


def _is_path(action: argparse.Action) -> bool:
    return action.type is Path


def bash_script(parser: argparse.ArgumentParser) -> str:
    """The bash completion script for ``parser`` (``complete -F _edgectl edgectl``)."""
    subcommands: dict[str, str] = {}
    opts: dict[str, str] = {}
    valued: dict[str, str] = {}
    choices: dict[str, str] = {}
    paths: dict[str, str] = {}
    for path, sub in walk(parser):
        key = " ".join(path)
        names = list(subcommand_parsers(sub))
        if names:
            subcommands[key] = " ".join(names)
        actions = options(sub)
        opts[key] = " ".join(["-h", "--help", *(s for a in actions for s in a.option_strings)])
        valued[key] = " ".join(s for a in actions if takes_value(a) for s in a.option_strings)
        for action in actions:
            for flag in action.option_strings:
                if action.choices and takes_value(action):
                    choices[f"{key}|{flag}"] = " ".join(str(c) for c in action.choices)
                elif _is_path(action):
                    paths[f"{key}|{flag}"] = ""
        for action in positionals(sub):
            if action.choices:
                choices[f"{key}|"] = " ".join(str(c) for c in action.choices)
            elif _is_path(action):
                paths[f"{key}|"] = ""
    return "\n".join(
        [
            "# bash completion for edgectl (made by 'edgectl completion bash')",
            _case("_edgectl_subcommands", subcommands),
            _case("_edgectl_options", opts),
            _case("_edgectl_valued", valued),
            _case("_edgectl_choices", choices),
            _case("_edgectl_is_path", paths, succeed=True),
            _MAIN.strip(),
            "complete -F _edgectl edgectl",
            "",
        ]
    )


def zsh_script(parser: argparse.ArgumentParser) -> str:
    """The zsh script: the bash functions, run by zsh's ``bashcompinit``."""
    return "\n".join(
        [
            "# zsh completion for edgectl (made by 'edgectl completion zsh'; after compinit)",
            "autoload -U +X bashcompinit && bashcompinit",
            bash_script(parser),
        ]
    )


def add_commands(sub: SubParsers, root: argparse.ArgumentParser) -> None:
    """Register ``completion bash|zsh`` (``root``: the whole parser, read when it runs)."""
    completion = sub.add_parser(
        "completion",
        help="print a shell completion script",
        description="Print a completion script for bash or zsh. Install it with "
        "'eval \"$(edgectl completion bash)\"' in ~/.bashrc (or save it as "
        "~/.local/share/bash-completion/completions/edgectl), or "
        "'eval \"$(edgectl completion zsh)\"' in ~/.zshrc after compinit.",
    )
    completion.add_argument("shell", choices=SHELLS, help="the shell to complete in")

    def run(args: argparse.Namespace) -> int:
        print(bash_script(root) if args.shell == "bash" else zsh_script(root), end="")
        return 0

    completion.set_defaults(handler=run)

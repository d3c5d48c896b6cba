"""Split an overrides string (as ``mlflow run -P overrides="..."`` passes it) into Hydra overrides.

MLflow shell-quotes parameter values, so the whole string arrives as ONE argument. A plain
``shlex.split`` would strip the user's quotes and break ``candidates=[a, b]`` at the space;
``$(echo {overrides})`` in MLproject is worse (word splitting and glob expansion). Here we split
only on whitespace outside quotes and brackets and keep every other character exactly as typed,
so Hydra's own parser sees what the user wrote.
"""

from __future__ import annotations

from embsel_mlflow.errors import ConfigError

_OPEN = {"[": "]", "{": "}", "(": ")"}
_CLOSE = {v: k for k, v in _OPEN.items()}


def split_overrides(text: str) -> list[str]:
    """``"a=1 b=[x, y] c='hello world'"`` -> ``["a=1", "b=[x, y]", "c='hello world'"]``."""
    tokens: list[str] = []
    current: list[str] = []
    stack: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):  # an escape keeps the next character as is
            current += [char, text[i + 1]]
            i += 2
            continue
        if quote:
            if char == quote:
                quote = None
            current.append(char)
        elif char in "'\"":
            quote = char
            current.append(char)
        elif char in _OPEN:
            stack.append(char)
            current.append(char)
        elif char in _CLOSE:
            if not stack or stack[-1] != _CLOSE[char]:
                raise ConfigError(f"unbalanced '{char}' in overrides {text!r}; check the brackets")
            stack.pop()
            current.append(char)
        elif char.isspace() and not stack:
            if current:
                tokens.append("".join(current))
                current = []
        else:
            current.append(char)
        i += 1
    if quote:
        raise ConfigError(f"unclosed {quote} quote in overrides {text!r}; close the quote")
    if stack:
        raise ConfigError(f"unclosed '{stack[-1]}' in overrides {text!r}; close the bracket")
    if current:
        tokens.append("".join(current))
    return tokens

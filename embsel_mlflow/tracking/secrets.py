"""Keep secrets off disk and screen: one masking rule for every sink.

Two complementary defences:

- **by key**: a value whose key names a secret (``model.token``, ``tracking.tags.Authorization``,
  ``api_key``, ``session_cookie``, ...) is replaced by ``***`` in structured data (params, tags,
  config.yaml, overrides.yaml) and in free text (``token=...``, ``token: ...``, ``Bearer ...``,
  ``https://user:password@host``);
- **not settings**: a known setting whose name holds a secret word (``unknown_token_rate_warn``,
  ``max_unknown_token_increase``: ``_SETTINGS``), a boolean (``train_args.include_tokens_per_second``)
  and a progress counter (model2vec's ``Encoding tokens: 40%|...``) are values, never secrets;
- **by value**: every secret value seen once (in an override, a config leaf, a URI, a secret-named
  environment variable) is remembered for the life of the process, and ``redact`` removes it
  from any text: log lines, error messages, Hydra's files, the console.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Mapping
from typing import Any, TextIO

MASK = "***"

# Words that make a key name a secret on their own ...
_SECRET_WORDS = frozenset(
    {"token", "tokens", "auth", "authn", "authz", "authorization", "authentication", "bearer"}
    | {"cookie", "cookies", "session", "sessionid", "credential", "credentials", "password"}
    | {"passwd", "passphrase", "secret", "secrets", "apikey", "accesskey", "privatekey"}
    | {"jwt", "signature", "sig", "sas", "dsn"}
)
# ... or as two adjacent words (``api_key``, ``X-Api-Key``, ``privateKey``, ``connection_string``).
_SECRET_PAIRS = frozenset(
    {("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"), ("client", "secret")}
    | {("connection", "string"), ("conn", "str"), ("account", "key"), ("signing", "key")}
)
# Glued words: ``hftoken``, ``accesstoken``, ``dbpassword``; not ``tokenizer`` or ``author``.
_SECRET_SUFFIXES = ("token", "password", "passwd", "secret", "apikey", "credentials", "cookie")
# Known settings whose names hold a secret word: logged as their values (the last dotted part).
_SETTINGS = frozenset({"unknown_token_rate_warn", "max_unknown_token_increase"})
# Value shapes that are never a secret: a boolean, a progress bar's counter (``40%|``, ``0it``).
_BOOLEANS = frozenset({"true", "false"})
_PROGRESS = re.compile(r"\d+(?:\.\d+)?(?:%(?:\||$)|it$)")
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
# Remembered values shorter than this are not redacted from free text (too likely to be a word).
_MIN_REMEMBERED_LENGTH = 6

_remembered: set[str] = set()
# Environment variables whose names look secret but whose values are paths or sockets.
_BENIGN_ENVIRONMENT = {"PWD", "OLDPWD", "SSH_AUTH_SOCK", "SESSION_MANAGER", "DBUS_SESSION_BUS_ADDRESS"}
_BENIGN_ENVIRONMENT |= {"XAUTHORITY", "XDG_SESSION_ID", "XDG_SESSION_TYPE", "XDG_SESSION_CLASS"}


def _words(key: str) -> list[str]:
    return [w.lower() for w in _WORD_SPLIT.split(key) if w]


def is_secret_key(key: str) -> bool:
    """Whether the last dotted part of ``key`` names a secret (``model.token``, ``X-Api-Key``, ...)."""
    last = str(key).rsplit(".", 1)[-1]
    if last in _SETTINGS:
        return False
    words = _words(last)
    if any(w in _SECRET_WORDS or w.endswith(_SECRET_SUFFIXES) for w in words):
        return True
    return any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words))


def is_setting_value(value: Any) -> bool:
    """Whether ``value`` has a shape no secret has: a boolean or a progress counter."""
    if isinstance(value, bool):
        return True
    text = str(value).strip().strip("'\"")
    return text.lower() in _BOOLEANS or _PROGRESS.match(text) is not None


def remember_secret(value: Any) -> None:
    """Redact ``value`` from every text this process writes from now on."""
    text = str(value).strip().strip("'\"") if value is not None else ""
    if len(text) >= _MIN_REMEMBERED_LENGTH and text != MASK:
        _remembered.add(text)


def remember_environment_secrets(environ: Mapping[str, str] | None = None) -> None:
    """Secret-named environment variables (MLFLOW_TRACKING_PASSWORD, HF_TOKEN, ...) are secrets too."""
    for name, value in (os.environ if environ is None else environ).items():
        if is_secret_key(name) and name not in _BENIGN_ENVIRONMENT and not name.startswith("XDG_"):
            remember_secret(value)


_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][\w+.-]*://)(?P<userinfo>[^/\s@]+)@")
_AUTH_SCHEME = re.compile(r"\b(?P<scheme>Bearer|Basic|Token|Digest)\s+(?P<value>[\w.~+/=-]{4,})")
_KEY_VALUE = re.compile(r"(?P<key>[\w.\-]+)(?P<sep>\s*[=:]\s*)(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;&'\"\]\}]+)")


def _mask_key_value(match: re.Match[str]) -> str:
    value = match["value"]
    if not is_secret_key(match["key"]) or value in (MASK, "null", "None", "???") or is_setting_value(value):
        return match[0]
    remember_secret(match["value"])
    return f"{match['key']}{match['sep']}{MASK}"


def _mask_userinfo(match: re.Match[str]) -> str:
    userinfo = match["userinfo"]
    password = userinfo.partition(":")[2]
    for part in (userinfo, password):
        remember_secret(part)
    return f"{match['scheme']}{MASK}@"


def redact(text: str) -> str:
    """``text`` with remembered secrets, ``key=secret`` pairs, auth headers and URL passwords masked."""
    if not text:
        return text
    for secret in sorted(_remembered, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    text = _URL_USERINFO.sub(_mask_userinfo, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m['scheme']} {MASK}", text)
    return _KEY_VALUE.sub(_mask_key_value, text)


def mask_secrets(value: Any) -> Any:
    """A copy of a nested dict/list structure with secret-named keys masked and strings redacted."""
    if isinstance(value, Mapping):
        out = {}
        for key, sub in value.items():
            if is_secret_key(str(key)) and sub is not None and not is_setting_value(sub):
                if not isinstance(sub, Mapping | list | tuple):
                    remember_secret(sub)
                out[key] = MASK
            else:
                out[key] = mask_secrets(sub)
        return out
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


def mask_override(override: str) -> str:
    """``model.token=abc`` -> ``model.token=***`` (and ``abc`` remembered); other overrides redacted."""
    key, sep, value = override.partition("=")
    if sep and is_secret_key(key.lstrip("+~")) and not is_setting_value(value):
        remember_secret(value)
        return f"{key}={MASK}"
    return redact(override)


class SecretMaskingFilter(logging.Filter):
    """A logging filter that redacts every record (use it on handlers: console, files)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler to report
            return True
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


class RedactingStream:
    """A text stream wrapper that redacts what is written (the console: sys.stdout, sys.stderr)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

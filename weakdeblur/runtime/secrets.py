"""Keeping API keys and other secrets out of everything a run writes.

A *secret name* matches :data:`SECRET_NAME` (``API_KEY``, ``APIKEY``,
``TOKEN``, ``SECRET``, ``PASSWORD``, ``PASSWD``, any case). Secrets are the
values of environment variables with such names (``WANDB_API_KEY``, ...)
and of configuration keys with such names (``+notify.api_token=...``).
:func:`scrub` replaces them in a configuration before it is logged (W&B
config); :func:`scrub_folder` rewrites the files Hydra saved under
``.hydra/`` (they hold the command-line overrides verbatim).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SECRET_NAME = re.compile(r"api_?key|token|secret|password|passwd", re.IGNORECASE)
REDACTED = "REDACTED"
MIN_LENGTH = 4  # shorter values are not replaced inside text (too many false hits)


def environment_secrets(environ: Mapping[str, str] | None = None) -> set[str]:
    """Values of the environment variables with secret names."""
    environ = os.environ if environ is None else environ
    return {
        value
        for name, value in environ.items()
        if SECRET_NAME.search(name) and len(value) >= MIN_LENGTH
    }


def config_secrets(config: Any) -> set[str]:
    """String values held under secret-named keys anywhere in a plain config."""
    found: set[str] = set()
    if isinstance(config, Mapping):
        for key, value in config.items():
            if SECRET_NAME.search(str(key)) and isinstance(value, (str, int)):
                if len(str(value)) >= MIN_LENGTH:
                    found.add(str(value))
            else:
                found |= config_secrets(value)
    elif isinstance(config, (list, tuple)):
        for value in config:
            found |= config_secrets(value)
    return found


def _replace(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def scrub(config: Any, secrets: Iterable[str] | None = None) -> Any:
    """A copy of a plain config with secret-named keys and secret values redacted."""
    secrets = set(secrets if secrets is not None else environment_secrets())
    if isinstance(config, Mapping):
        return {
            key: REDACTED
            if SECRET_NAME.search(str(key)) and not isinstance(value, (Mapping, list, tuple))
            else scrub(value, secrets)
            for key, value in config.items()
        }
    if isinstance(config, (list, tuple)):
        return [scrub(value, secrets) for value in config]
    if isinstance(config, str):
        return _replace(config, secrets)
    return config


def scrub_folder(folder: str | os.PathLike, secrets: Iterable[str]) -> None:
    """Replace every secret in the text files directly under ``folder`` (atomically)."""
    secrets = [secret for secret in secrets if len(secret) >= MIN_LENGTH]
    folder = Path(folder)
    if not secrets or not folder.is_dir():
        return
    for path in folder.iterdir():
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        cleaned = _replace(text, secrets)
        if cleaned != text:
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temporary.write_text(cleaned)
            os.replace(temporary, path)


@contextmanager
def argv_scrubbed(secrets: Iterable[str]) -> Iterator[None]:
    """Within the block, ``sys.argv`` has its secrets redacted (W&B records the command line)."""
    original = list(sys.argv)
    sys.argv = [_replace(argument, secrets) for argument in original]
    try:
        yield
    finally:
        sys.argv = original


def redact_overrides(text: str) -> str:
    """``a=1,+notify.api_token=xyz`` → ``a=1,+notify.api_token=REDACTED`` (sweep folder names)."""
    parts = []
    for part in text.split(","):
        key, equals, _ = part.partition("=")
        parts.append(f"{key}={REDACTED}" if equals and SECRET_NAME.search(key) else part)
    return ",".join(parts)

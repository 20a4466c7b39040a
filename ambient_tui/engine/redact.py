"""Redaction of secrets from anything written to the journal or screen."""

from __future__ import annotations

import re

_PATTERNS = [
    # AWS access key ids (AKIA long-term, ASIA temporary).
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), "[REDACTED-AWS-KEY-ID]"),
    # aws_secret_access_key = ..., AWS_SESSION_TOKEN=..., and the like.
    (re.compile(r"(?i)\b(aws_secret_access_key|aws_session_token|secret_access_key|session_token)"
                r"(\s*[=:]\s*|\s+)(\"?)[A-Za-z0-9/+=]{16,}\3"), r"\1\2\3[REDACTED]\3"),
    # Authorization headers and --token flags.
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [REDACTED]"),
    (re.compile(r"(?i)(--token[= ])\S+"), r"\1[REDACTED]"),
    (re.compile(r"(?i)\b(token|password|secret)(\"?\s*[:=]\s*\"?)[^\s\",]{6,}"), r"\1\2[REDACTED]"),
    # JWTs such as service-account tokens.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b"), "[REDACTED-JWT]"),
]


def redact(text: str) -> str:
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def redact_argv(argv: list[str]) -> list[str]:
    out, hide_next = [], False
    for arg in argv:
        if hide_next:
            out.append("[REDACTED]")
            hide_next = False
        elif arg in ("--token", "--password"):
            out.append(arg)
            hide_next = True
        else:
            out.append(redact(arg))
    return out

"""Redaction of secrets from anything written to the journal, the runbook or the screen.

Secrets are caught wherever they stand in free text, not only in `key=value` form:

- AWS access key ids: AKIA (long-term) and ASIA (temporary) plus 16 upper-case letters/digits.
- AWS secret access keys, bare: a token of exactly 40 characters from the base64 alphabet
  (A-Z a-z 0-9 / +), bounded by characters outside it, that mixes upper case, lower case and a
  digit, / or +. The mix is the rule that spares hashes: a sha1 or git commit is 40 lower-case
  hex characters (no upper case), an upper-case hex digest has no lower case; base64 digests
  are 28 or 44 characters long, and the 64-character lines of a PEM block are longer.
- AWS session tokens: the base64 the STS service hands out (starting "IQoJb3JpZ2lu" or
  "FwoGZXIvYXdz"), and any `*session_token`/`security-token` value.
- Bearer and `Authorization: Basic` credentials, JWTs (eyJ...), `--token`/`--password` flags, kubeconfig
  `token:`, `client-key-data:` and `password:` values (YAML, JSON or key=value), and the
  password in `scheme://user:password@host`.

A cheap first search skips lines that cannot hold any of these: the output pane redacts every
line a step prints.
"""

from __future__ import annotations

import re

R = "[REDACTED]"
_B64 = "A-Za-z0-9/+"

# Lines without any of these cannot hold a secret the rules below catch. Searched in the
# lower-cased line without IGNORECASE, and the long-run check apart: an IGNORECASE alternation
# with look-arounds costs ten times as much, on every line a step prints.
_SUSPECT_WORDS = re.compile(r"akia|asia|token|bearer|authorization|passw|secret|key|eyj"
                            r"|iqojb3jpz2lu|fwogzxivyxdz|://")
_LONG_RUN = re.compile(r"[" + _B64 + r"]{40}")

_SECRET_KEY = re.compile(r"(?<![" + _B64 + r"])[" + _B64 + r"]{40}(?![" + _B64 + r"=])")

_PATTERNS = [
    # JWTs first: their parts could otherwise be taken apart by the rules below.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), "[REDACTED-JWT]"),
    # AWS access key ids (AKIA long-term, ASIA temporary).
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "[REDACTED-AWS-KEY-ID]"),
    # STS session tokens wherever they stand.
    (re.compile(r"(?:IQoJb3JpZ2lu|FwoGZXIvYXdz)[" + _B64 + r"=]{20,}"), "[REDACTED-AWS-SESSION-TOKEN]"),
    # aws_secret_access_key = ..., AWS_SESSION_TOKEN=..., X-Amz-Security-Token=... and the like.
    (re.compile(r"(?i)\b(aws_secret_access_key|aws_session_token|secret_access_key|session_token"
                r"|security[_-]token|secretaccesskey|sessiontoken)(\"?\s*[=:]\s*|\s+)(\"?)[" + _B64
                + r"=%]{16,}\3"), r"\1\2\3" + R + r"\3"),
    # Authorization headers and flags.
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + R),
    (re.compile(r"(?i)\b(authorization\s*:\s*basic)\s+\S+"), r"\1 " + R),
    (re.compile(r"(?i)(--(?:token|password)[= ])\S+"), r"\1" + R),
    # token: / password: / client-key-data: values (YAML, JSON, key=value; quoted or not).
    (re.compile(r"(?i)\b(token|password|passwd|secret|client-key-data|private[_-]key)"
                r"(\"?\s*[:=]\s*[\"']?)[^\s\"',};&]{6,}"), r"\1\2" + R),
    # URL credentials.
    (re.compile(r"(://[^/\s:@]*:)[^/\s@]+@"), r"\1" + R + "@"),
]


def _is_secret_key(token: str) -> bool:
    has_upper = any(c.isupper() for c in token)
    has_lower = any(c.islower() for c in token)
    has_other = any(c.isdigit() or c in "/+" for c in token)
    return has_upper and has_lower and has_other


def _secret_key(m: re.Match) -> str:
    return "[REDACTED-AWS-SECRET]" if _is_secret_key(m.group(0)) else m.group(0)


def redact(text: str) -> str:
    if not isinstance(text, str) or not (_SUSPECT_WORDS.search(text.lower()) or _LONG_RUN.search(text)):
        return text
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return _SECRET_KEY.sub(_secret_key, text)


def redact_argv(argv: list[str]) -> list[str]:
    out, hide_next = [], False
    for arg in argv:
        if hide_next:
            out.append(R)
            hide_next = False
        elif arg in ("--token", "--password"):
            out.append(arg)
            hide_next = True
        else:
            out.append(redact(arg))
    return out

"""Untrusted input never raises past ParseError, and stays within the bounds.

Random bytes, deep nesting, alias bombs, huge and control-character input, through
the parser and through the CLI (exit 2, one line naming file, line and cause).
"""

from __future__ import annotations

import io
import random
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from ambient_tui.commands.netpol import run_lint
from ambient_tui.netpol.lint import lint
from ambient_tui.netpol.parse import BOUNDS, Bounds, ParseError, decode, parse_manifests

ROOT = Path(__file__).resolve().parents[2]
POLICY = ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, "
          "namespace: demo}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress]\n")
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(9))


def lint_bytes(raw: bytes) -> str:
    """What the CLI does with stdin; returns 'ok' or the error line."""
    try:
        got = parse_manifests(decode(raw, "<fuzz>"), "<fuzz>")
    except ParseError as err:
        assert err.file == "<fuzz>" and "\n" not in str(err)
        return str(err)
    lint(got.policies)
    return "ok"


def test_random_bytes_never_raise():
    rng = random.Random(16)
    alphabet = b"apiVersion: kind NetworkPolicy spec {}[]-&*!|>'\"\n\t #%@`\x00\x1b\xff\xc3\xa9:,?"
    for _ in range(400):
        n = rng.randint(0, 300)
        raw = bytes(rng.choice(alphabet) for _ in range(n))
        lint_bytes(raw)
        lint_bytes(POLICY.encode() + raw)


def test_mutated_policies_never_raise():
    rng = random.Random(7)
    base = POLICY + "  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}\n"
    for _ in range(400):
        chars = list(base)
        for _ in range(rng.randint(1, 6)):
            i = rng.randrange(len(chars))
            chars[i] = rng.choice("[]{}:-,&*!0 \n\tx\"'|>")
        lint_bytes("".join(chars).encode())


@pytest.mark.parametrize("char,name", [("\x00", "NUL"), ("\x1b", "ESC"), ("\x07", "control")])
def test_control_characters_are_one_line_with_position(char, name):
    text = POLICY + f"  ingress: [{char}]\n"
    msg = lint_bytes(text.encode())
    assert name in msg and "line 7, column 13" in msg


def test_latin1_byte_names_line_and_column():
    msg = lint_bytes(POLICY.encode() + b"  # caf\xe9\n")
    assert "not UTF-8" in msg and "0xe9" in msg and "line 7, column 8" in msg


def test_deep_nesting_hits_the_depth_bound():
    for text in ("a: " + "[" * 5000 + "]" * 5000, "a:\n" + "".join(
            " " * i + "- \n" for i in range(0, 400, 2))):
        msg = lint_bytes(text.encode())
        assert "depth" in msg or "nesting" in msg


def test_alias_bomb_hits_the_alias_bound_quickly():
    msg = lint_bytes(BOMB.encode())
    assert "alias expansion bound" in msg


def test_recursive_alias_is_refused():
    assert "recursive" in lint_bytes(b"a: &a [*a]\n")


def test_document_node_bound_is_named():
    small = Bounds(nodes=50)
    with pytest.raises(ParseError, match="document size bound"):
        parse_manifests("a: [" + ", ".join(["1"] * 100) + "]\n", bounds=small)


def test_input_size_bound_is_named():
    with pytest.raises(ParseError, match=r"input size"):
        decode(b"a" * 100, "<x>", Bounds(input_bytes=10))
    assert BOUNDS.input_bytes >= 32 * 1024 * 1024  # Argo CD's install.yaml is ~2 MB


def test_merge_keys_and_anchors_still_work():
    text = POLICY.replace("spec:\n  podSelector: {}\n",
                          "x-base: &b {podSelector: {}}\nspec:\n  <<: *b\n")
    got = parse_manifests(text)
    assert got.policies[0].data["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}


def _cli(raw: bytes) -> tuple[int, str]:
    args = Namespace(files=["-"], json=False, not_enrolled=False, cluster=False,
                     namespaces=None, kubeconfig=None, context=None)
    out, err = io.StringIO(), io.StringIO()
    stdin = io.TextIOWrapper(io.BytesIO(raw))
    return run_lint(args, out, err, stdin), err.getvalue()


@pytest.mark.parametrize("raw", [b"\x00", b"a: \xe9\n", BOMB.encode(), b"[" * 5000,
                                 b"a: &a [*a]\n", b"- 1\n", b"{[1]: 2}\n"])
def test_cli_exit_2_with_one_line(raw):
    code, err = _cli(raw)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: <stdin>")


def test_cli_process_latin1_stdin_has_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "ambient_tui.commands.netpol", "lint", "-"],
                          input=b"kind: \xe9\n", capture_output=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and b"Traceback" not in proc.stderr
    assert b"<stdin>: line 1, column 7: not UTF-8" in proc.stderr

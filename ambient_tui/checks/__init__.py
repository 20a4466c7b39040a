"""Preflight: checks that find the EKS pitfalls before anything changes."""

from ambient_tui.checks.model import FAIL, PASS, SKIP, WARN, Check, CheckContext, Skip
from ambient_tui.checks.runner import run_checks, run_checks_async

__all__ = ["FAIL", "PASS", "SKIP", "WARN", "Check", "CheckContext", "Skip", "run_checks", "run_checks_async"]

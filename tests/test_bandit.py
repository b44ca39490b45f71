"""bandit (the Python security linter) finds nothing in the project's code.

Where a finding is a false positive the line carries ``# nosec <test id>  # <why>``: SQL
text built only from ``salespipe_assets.sql`` identifier()/literal()/date_literal() or from
contract constants, subprocess calls with argument lists, the local-only Superset default.
"""

from __future__ import annotations

import json
import subprocess  # nosec B404  # runs bandit from this venv with an argument list
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bandit_reports_no_issue():
    bandit = Path(sys.executable).parent / "bandit"
    proc = subprocess.run(  # nosec B603  # fixed argument list, no shell
        [str(bandit), "-q", "-r", "salespipe_assets", "spark_steps", "-f", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip(), f"bandit printed no report (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
    report = json.loads(proc.stdout)
    assert not report["errors"], report["errors"]
    findings = [f"{r['filename']}:{r['line_number']}: {r['test_id']} {r['issue_text']}\n    {r['code'].strip()}"
                for r in report["results"]]
    assert not findings, f"bandit found {len(findings)} issue(s):\n" + "\n".join(findings)
    assert proc.returncode == 0, proc.stderr[-2000:]

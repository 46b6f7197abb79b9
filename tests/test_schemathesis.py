"""Schemathesis against a live `circus run --roles=server` (admin key) over every
operation of /api/v1/openapi.json: no 5xx, and every response matches its documented
schema and content type. Bounded: a few examples per operation, fixed seed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.e2e import ADMIN_KEY, Circus

# Examples per operation; with ~70 operations this keeps the run to a minute or two.
MAX_EXAMPLES = 6
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"
# Extra CLI arguments (e.g. `--include-path-regex ^/api/v1/` while debugging one area).
EXTRA = os.environ.get("CIRCUS_SCHEMATHESIS_ARGS", "").split()


def _seed(api: Circus) -> None:
    """Something to find, so that reads answer 200 with bodies, not only 404s."""
    project = api.post("/api/v1/projects", {"name": "st", "repository_url":
                                            "https://example.com/st.git"})
    api.post(f"/api/v1/projects/{project['id']}/jobsets", {"name": "main"})
    api.post("/api/v1/news", {"title": "hello", "content": "world"})


def test_schemathesis_finds_no_5xx_and_no_schema_mismatch(tmp_path: Path,
                                                         database_url: str) -> None:
    api = Circus(tmp_path, database_url, "server", "st").start()
    try:
        _seed(api)
        report = tmp_path / "schemathesis"
        done = subprocess.run(
            [str(Path(sys.executable).parent / "schemathesis"), "run",
             f"{api.url}/api/v1/openapi.json", "-H", f"Authorization: Bearer {ADMIN_KEY}",
             "--checks", CHECKS, "--phases", "examples,fuzzing",
             "--max-examples", str(MAX_EXAMPLES), "--seed", "3", "--workers", "4",
             "--request-timeout", "20", "--generation-allow-x00", "false",
             "--suppress-health-check", "all", "--no-color",
             "--report-dir", str(report), *EXTRA],
            capture_output=True, text=True, timeout=600, cwd=tmp_path)
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-20000:]
        assert "5xx" not in output.lower() or "0 5xx" in output.lower()
    finally:
        api.stop()

"""The schemathesis CLI against every service, all checks and all phases (examples,
coverage, fuzzing, stateful), the way an outside tester runs it.

The coverage phase is what sends unsupported methods (``Allow`` on 405), requests without
the key (``ignored_auth``) and without required headers; the stateful phase chains an
upload into the reads of that run. ``KNOWN_GAPS`` (shared with the pytest fuzz test) turns
off the two data-acceptance checks where validation goes beyond the schema, through a
generated ``schemathesis.toml``; ``POST /v1/runs`` has them off here too, because the CLI
reuses ``Idempotency-Key`` values across bodies (a 422 by design) — the pytest fuzz test
covers that operation with fresh keys.
"""

from __future__ import annotations

import subprocess

import pytest

from services.common.auth import DEV_API_KEY
from services.stack import serve_in_thread, wait_ready
from tests.services.service_apps import APPS
from tests.services.test_openapi_fuzz import KNOWN_GAPS

pytestmark = pytest.mark.slow
EXAMPLES = 10


def config_toml(gaps: dict[str, str]) -> str:
    lines = ["request-timeout = 60", ""]
    for name in sorted(gaps):
        lines += [
            "[[operations]]",
            f'include-name = "{name}"',
            "checks.positive_data_acceptance.enabled = false",
            "checks.negative_data_rejection.enabled = false",
            "",
        ]
    return "\n".join(lines)


@pytest.mark.parametrize("service", sorted(APPS))
def test_schemathesis_cli_all_checks_all_phases(service, tmp_path):
    cfg = tmp_path / "schemathesis.toml"
    gaps = {**KNOWN_GAPS, "POST /v1/runs": "the CLI reuses Idempotency-Key values"}
    cfg.write_text(config_toml(gaps))
    with serve_in_thread(APPS[service](tmp_path)) as url:
        wait_ready(url, timeout_s=60)
        out = subprocess.run(
            [
                "schemathesis",
                "--config-file",
                str(cfg),
                "run",
                url + "/openapi.json",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "-n",
                str(EXAMPLES),
                "--seed",
                "1",
                "--no-color",
                "-H",
                f"Authorization: Bearer {DEV_API_KEY}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,  # its .schemathesis/ cache stays out of the repository
        )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]

"""``infranode doctor``: what is wrong with the Docker daemon, with the evidence and the fix.

:func:`run_doctor` resolves the endpoint, connects, runs the live checks on a daemon that
answers, and returns a :class:`Report`; it never raises for a daemon problem. When the connect
fails, ``daemon.connect`` has already said why, in the doctor's words (``finding.to_error``): a
pytest session that cannot reach the daemon prints the same diagnosis as ``infranode doctor``.

The parts are in :mod:`pytest_infranode.engine.diagnosis` (facts, probes, verdicts per topology,
live checks, the report). Only this module imports ``daemon``; it also re-exports the parts'
names, so ``doctor.verdict_tcp``, ``doctor.Finding`` and the rest keep working.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from collections.abc import Sequence

from pytest_infranode.engine.diagnosis.address import environment_findings
from pytest_infranode.engine.diagnosis.address import host_syntax_problem
from pytest_infranode.engine.diagnosis.capabilities import container_cause
from pytest_infranode.engine.diagnosis.capabilities import container_cause as _container_cause
from pytest_infranode.engine.diagnosis.capabilities import container_fix
from pytest_infranode.engine.diagnosis.capabilities import container_fix as _container_fix
from pytest_infranode.engine.diagnosis.capabilities import systemd_recipe
from pytest_infranode.engine.diagnosis.capabilities import verdict_bind_mount
from pytest_infranode.engine.diagnosis.capabilities import verdict_engine
from pytest_infranode.engine.diagnosis.capabilities import verdict_images
from pytest_infranode.engine.diagnosis.capabilities import verdict_systemd
from pytest_infranode.engine.diagnosis.ci import CI_SERVICES
from pytest_infranode.engine.diagnosis.ci import CI_TITLES
from pytest_infranode.engine.diagnosis.ci import ci_hint
from pytest_infranode.engine.diagnosis.ci import detect_ci
from pytest_infranode.engine.diagnosis.facts import CertInfo
from pytest_infranode.engine.diagnosis.facts import PortFacts
from pytest_infranode.engine.diagnosis.facts import SocketFacts
from pytest_infranode.engine.diagnosis.facts import SshFacts
from pytest_infranode.engine.diagnosis.facts import TLSFacts
from pytest_infranode.engine.diagnosis.findings import Finding
from pytest_infranode.engine.diagnosis.findings import Kind
from pytest_infranode.engine.diagnosis.findings import Report
from pytest_infranode.engine.diagnosis.findings import Status
from pytest_infranode.engine.diagnosis.findings import error_chain
from pytest_infranode.engine.diagnosis.findings import render_json
from pytest_infranode.engine.diagnosis.findings import render_text
from pytest_infranode.engine.diagnosis.live import DOCTOR_IMAGE
from pytest_infranode.engine.diagnosis.live import DOCTOR_LABEL
from pytest_infranode.engine.diagnosis.live import SYSTEMD_PROBE
from pytest_infranode.engine.diagnosis.live import doctor_error_text
from pytest_infranode.engine.diagnosis.live import engine_findings
from pytest_infranode.engine.diagnosis.probes import cert_info_from_dict
from pytest_infranode.engine.diagnosis.probes import probe_port
from pytest_infranode.engine.diagnosis.probes import probe_socket
from pytest_infranode.engine.diagnosis.probes import probe_ssh
from pytest_infranode.engine.diagnosis.probes import read_cert
from pytest_infranode.engine.diagnosis.probes import read_tls_files
from pytest_infranode.engine.diagnosis.probes import ssh_argv
from pytest_infranode.engine.diagnosis.ssh import verdict_ssh
from pytest_infranode.engine.diagnosis.tcp import host_matches
from pytest_infranode.engine.diagnosis.tcp import sibling_port
from pytest_infranode.engine.diagnosis.tcp import verdict_tcp
from pytest_infranode.engine.diagnosis.tcp import verdict_tls_files
from pytest_infranode.engine.diagnosis.unix import verdict_socket
from pytest_infranode.errors import DaemonError

__all__ = [
    "CI_SERVICES",
    "CI_TITLES",
    "DOCTOR_IMAGE",
    "DOCTOR_LABEL",
    "SYSTEMD_PROBE",
    "CertInfo",
    "Finding",
    "Kind",
    "PortFacts",
    "Report",
    "SocketFacts",
    "SshFacts",
    "Status",
    "TLSFacts",
    "_container_cause",
    "_container_fix",
    "cert_info_from_dict",
    "ci_hint",
    "container_cause",
    "container_fix",
    "detect_ci",
    "doctor_error_text",
    "engine_findings",
    "environment_findings",
    "error_chain",
    "host_matches",
    "host_syntax_problem",
    "probe_port",
    "probe_socket",
    "probe_ssh",
    "read_cert",
    "read_tls_files",
    "render_json",
    "render_text",
    "run_doctor",
    "sibling_port",
    "ssh_argv",
    "systemd_recipe",
    "verdict_bind_mount",
    "verdict_engine",
    "verdict_images",
    "verdict_socket",
    "verdict_ssh",
    "verdict_systemd",
    "verdict_tcp",
    "verdict_tls_files",
]


def run_doctor(
    explicit: str | None,
    environ: Mapping[str, str] | None = None,
    *,
    wait: float | None = None,
    images: Sequence[str] = (),
) -> Report:
    """Connect and check everything a session needs; never raises for a daemon problem."""
    # Imported here: daemon.py imports the Docker SDK at its top, the diagnosis modules do not.
    from pytest_infranode.engine import daemon

    env = os.environ if environ is None else environ
    started = time.monotonic()
    ci = detect_ci(env)
    try:
        endpoint = daemon.resolve_endpoint(explicit, env)
    except DaemonError as err:
        unresolved = explicit or env.get("DOCKER_HOST") or f"context {env.get('DOCKER_CONTEXT', '?')}"
        report = Report(unresolved, "not resolved", ci)
        report.findings.append(
            Finding("endpoint", "fail", err.what, (err.where,) if err.where else (), err.fix)
        )
        report.seconds = time.monotonic() - started
        return report
    report = Report(endpoint.url, endpoint.source, ci)
    report.findings.append(Finding("endpoint", "ok", f"{endpoint.url} (from {endpoint.source})"))
    report.findings.extend(
        environment_findings(env, endpoint.scheme, endpoint.host, endpoint.tls is not None)
    )
    try:
        client, info = daemon.connect(explicit, environ=env, wait=wait)
    except DaemonError as err:
        report.findings.append(_finding_from_error(err))
        report.seconds = time.monotonic() - started
        return report
    try:
        report.findings.extend(engine_findings(client, info, images=images, ci=ci))
    finally:
        client.close()
    report.seconds = time.monotonic() - started
    return report


def _finding_from_error(err: DaemonError) -> Finding:
    evidence = tuple(
        line.strip().removeprefix("evidence:").strip() for line in err.detail.splitlines() if line.strip()
    )
    if err.where:
        evidence = (f"where: {err.where}", *evidence)
    return Finding("connect", "fail", err.what, evidence, err.fix)

"""The CI service a run is on, read from its environment, and that service's own fix sentences."""

from __future__ import annotations

from collections.abc import Mapping

CI_SERVICES: tuple[tuple[str, str, str], ...] = (
    ("GITHUB_ACTIONS", "github", "GitHub Actions"),
    ("GITLAB_CI", "gitlab", "GitLab CI"),
    ("CIRCLECI", "circleci", "CircleCI"),
    ("TRAVIS", "travis", "Travis CI"),
    ("JENKINS_URL", "jenkins", "Jenkins"),
    ("BITBUCKET_BUILD_NUMBER", "bitbucket", "Bitbucket Pipelines"),
    ("TF_BUILD", "azure", "Azure Pipelines"),
)
CI_TITLES = {key: title for _env, key, title in CI_SERVICES}


def detect_ci(environ: Mapping[str, str]) -> str:
    """The CI service this runs on (``github``, ``gitlab`` …), or "" when none is detected."""
    for env, key, _title in CI_SERVICES:
        if environ.get(env):
            return key
    return ""


_GITLAB_TLS = (
    "use the docker:dind service with TLS: `services: [docker:dind]` and, on the job, "
    "DOCKER_HOST=tcp://docker:2376, DOCKER_TLS_CERTDIR=/certs, DOCKER_TLS_VERIFY=1, "
    "DOCKER_CERT_PATH=/certs/client (ci/gitlab-ci.yml)"
)

_CI_HINTS: dict[str, dict[str, str]] = {
    "no-daemon": {
        "github": "run the job on an `ubuntu-*` runner (Docker is installed there); in a `container:` "
        "job mount the socket: `options: -v /var/run/docker.sock:/var/run/docker.sock`",
        "gitlab": _GITLAB_TLS + "; or a runner that mounts /var/run/docker.sock",
        "circleci": "use a `machine:` executor (ci/circleci.yml), or add `- setup_remote_docker` before "
        "this step in a docker executor",
        "travis": "add `services: [docker]` to .travis.yml",
        "jenkins": "give the agent the host's socket: `-v /var/run/docker.sock:/var/run/docker.sock "
        "--group-add $(stat -c %g /var/run/docker.sock)` (ci/Jenkinsfile)",
        "bitbucket": "add `services: [docker]` to the step; the daemon is then tcp://localhost:2375",
        "azure": "use a Microsoft-hosted `ubuntu-latest` agent; a container job must mount the socket",
    },
    "permission": {
        "github": "in a `container:` job add `options: --group-add <gid of the socket>`; hosted runners "
        "already put `runner` in `docker`",
        "gitlab": "the runner's mounted socket belongs to the host's docker group: run the job "
        "image's user with that gid, or use docker:dind",
        "jenkins": "the agent's user lacks the socket's group (host docker gid differs from the image's): "
        "start the agent with `--group-add $(stat -c %g /var/run/docker.sock)`",
        "azure": "container jobs: add the agent user to the socket's group (`--group-add`)",
    },
    "dns": {
        "gitlab": "the `docker` host is the docker:dind service: add `services: [docker:dind]` to this "
        "job (alias `docker`)",
        "circleci": "run `- setup_remote_docker` before this step; it exports DOCKER_HOST",
        "bitbucket": "with `services: [docker]` the daemon is tcp://localhost:2375",
    },
    "refused": {
        "gitlab": 'docker:dind listens on 2376 with TLS (2375 only with DOCKER_TLS_CERTDIR: ""); the '
        "service may also still be starting",
        "bitbucket": "add `services: [docker]` to this step",
        "circleci": "run `- setup_remote_docker` before this step",
    },
    "tls-files": {
        "gitlab": "set DOCKER_TLS_CERTDIR=/certs on the job AND the service and "
        "DOCKER_CERT_PATH=/certs/client; "
        'self-managed runners must share it: `volumes = ["/certs/client"]` in config.toml',
        "circleci": "DOCKER_CERT_PATH is printed by `setup_remote_docker`: do not override it",
    },
    "plain-to-tls": {"gitlab": _GITLAB_TLS},
    "files-not-visible": {
        "gitlab": "docker:dind sees only /builds and /certs/client of the job",
        "circleci": "remote docker never sees the job's files; the `machine:` executor does",
        "bitbucket": "Bitbucket's daemon only accepts -v under $BITBUCKET_CLONE_DIR",
        "jenkins": "a mounted socket resolves paths on the host, not in the agent container",
    },
}


def ci_hint(ci: str, problem: str) -> str:
    """The CI-specific fix sentence for a problem, or "" (pure)."""
    text = _CI_HINTS.get(problem, {}).get(ci, "")
    return f"{CI_TITLES[ci]}: {text}" if text else ""


def with_ci_hint(generic: str, ci: str, problem: str) -> str:
    """The generic fix, then the CI service's own sentence for the problem on a line of its own."""
    hint = ci_hint(ci, problem)
    return f"{generic}\n         {hint}" if hint else generic

"""The ansible provisioner's fast path on a real node: pipelining on and off, through the
channel relay and through one exec per command; become, remote_user, and files of 0 bytes,
binary and 12 MB copied in (as root, as the remote user, as a become user) and fetched back."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.conftest import InfraRun
from tests.integration.conftest import fetched_whole
from tests.integration.conftest import transfer_files

Run = Callable[..., InfraRun]

PREPARE = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Deployment user with passwordless sudo
      ansible.builtin.user: {name: deploy, shell: /bin/sh}
    - ansible.builtin.copy:
        dest: /etc/sudoers.d/deploy
        content: "deploy ALL=(ALL) NOPASSWD: ALL\\n"
        mode: "0440"
    - name: An application user
      ansible.builtin.user: {name: app, shell: /bin/sh}
"""

SITE = """
- hosts: all
  gather_facts: false
  become: true  # a play keyword, not `become:` (ansible_become), which tasks could not override
  tasks:
    - name: Who runs a task with become
      ansible.builtin.command: id -un
      register: became
      changed_when: false
    - name: Who runs a task without become
      ansible.builtin.command: id -un
      become: false
      register: remote
      changed_when: false
    - name: Who runs a task with become_user
      ansible.builtin.command: id -un
      become_user: app
      register: as_app
      changed_when: false
    - ansible.builtin.assert:
        that:
          - became.stdout == "root"
          - remote.stdout == "deploy"
          - as_app.stdout == "app"
    - name: A task that reads its stdin
      ansible.builtin.command: cat
      args: {stdin: "fed through stdin"}
      register: fed
      changed_when: false
    - ansible.builtin.assert: {that: [fed.stdout == "fed through stdin"]}
    - name: Files in, as root
      ansible.builtin.copy: {src: "{{ item }}", dest: "/srv/{{ item }}", mode: "0644"}
      loop: [empty, binary.bin, big.bin]
    - name: Files in, as the remote user
      ansible.builtin.copy: {src: "{{ item }}", dest: "/home/deploy/{{ item }}"}
      become: false
      loop: [empty, binary.bin, big.bin]
    - name: Files in, as the become user
      ansible.builtin.copy: {src: "{{ item }}", dest: "/home/app/{{ item }}"}
      become_user: app
      loop: [empty, binary.bin, big.bin]
    - name: Files out, as the remote user
      ansible.builtin.fetch:
        src: "/home/deploy/{{ item }}"
        dest: "{{ playbook_dir }}/fetched/{{ item }}"
        flat: true
      become: false
      loop: [empty, binary.bin, big.bin]
"""

SPEC = """
import hashlib
from pathlib import Path

import pytest

FILES = ["empty", "binary.bin", "big.bin"]


@pytest.mark.parametrize("name", FILES)
def test_copied_and_fetched(host, name):
    want = hashlib.sha256(Path(name).read_bytes()).hexdigest()
    assert hashlib.sha256(Path("fetched", name).read_bytes()).hexdigest() == want
    for directory, owner in [("/srv", "root"), ("/home/deploy", "deploy"), ("/home/app", "app")]:
        f = host.file(f"{directory}/{name}")
        assert f.is_file
        assert f.user == owner
        assert f.sha256sum == want
"""


@pytest.mark.parametrize(
    ("env", "via"),
    [
        ({}, "relay"),
        ({"ANSIBLE_PIPELINING": "false"}, "relay"),
        ({"ANSIBLE_PIPELINING": "false", "INFRANODE_ANSIBLE_CHANNEL": "false"}, "exec"),
    ],
    ids=["pipelining-relay", "no-pipelining-relay", "exec-per-command"],
)
def test_become_remote_user_and_files_of_any_size(
    pytester: pytest.Pytester, infra_run: Run, env: dict[str, str], via: str
) -> None:
    # A become user that is not the remote user reads the task's temporary files (the copied
    # file): without setfacl in the node, Ansible needs them world-readable.
    env = {**env, "ANSIBLE_SHELL_ALLOW_WORLD_READABLE_TEMP": "true"}
    env_yaml = ", ".join(f"{k}: {v!r}" for k, v in env.items())
    pytester.makefile(
        ".yaml",
        infranode=f"""
        provisioner:
          name: ansible
          prepare: prepare.yml
          playbook: site.yml
          user: deploy
          args: ["-vvv"]
          env: {{{env_yaml}}}
        """,
    )
    pytester.makefile(".yml", prepare=PREPARE, site=SITE)
    transfer_files(pytester.path)
    pytester.makepyfile(test_files=SPEC)
    run = infra_run("-v", "--infra-idempotence", "--infra-platform=debian-12")
    run.result.assert_outcomes(passed=3)
    out = run.result.stdout
    out.fnmatch_lines([f"*EXEC ({via}) *", "*debian-12 * changed=0 *"])
    assert f"EXEC ({'exec' if via == 'relay' else 'relay'}) " not in out.str()
    # Without pipelining every module is copied in as a file first; with it, none is.
    modules_copied = "AnsiballZ_command.py" in out.str()
    assert modules_copied == (env.get("ANSIBLE_PIPELINING") == "false")
    assert fetched_whole(pytester.path)

"""Ansible connection plugins of pytest-infranode."""

"""Ansible callback plugins of pytest-infranode."""

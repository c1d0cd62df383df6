"""Ansible plugins shipped with the ansible provisioner (loaded by path, not imported)."""

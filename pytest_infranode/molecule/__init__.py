"""Molecule scenarios: read ``molecule/<scenario>/molecule.yml`` and the role's folder, and turn a
scenario into the plugin's own configuration (what infranode.yaml would say), listing what the
plugin cannot do yet. Pure code: no pytest, no docker."""

from __future__ import annotations

#!/bin/sh
# One apt-get run installs this node's packages (CONFORMANCE_PACKAGES, the container's env:
# of infranode.yaml) with their defaults: Debian's own configuration, recommends included,
# services started by the packages' own scripts. Two things only make it faster, neither changes
# what is installed or how it is configured: dpkg does not fsync each file (a throwaway node),
# and man-db does not rebuild its index.
set -eu
export DEBIAN_FRONTEND=noninteractive
echo "man-db man-db/auto-update boolean false" | debconf-set-selections
apt-get update -q
# shellcheck disable=SC2086 # one package name a word
apt-get install -y -q -o Dpkg::Options::=--force-unsafe-io $CONFORMANCE_PACKAGES

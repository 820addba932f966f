#!/bin/sh
# autogen.sh — generate the configure script from configure.ac.
set -e
cd "$(dirname "$0")"
autoreconf --install --force

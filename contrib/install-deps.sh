#!/bin/sh
# install-deps.sh — install everything clinimail needs to build, test and
# benchmark on a fresh Debian 12 machine.  Used by .ci/run and by README.md.
# Must run as root.  Idempotent.
set -eu

export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps.sh: must run as root (apt-get)" >&2
	exit 1
fi

# Postfix asks questions at install time; answer them up front so the
# package installs without a terminal and without touching the network.
if command -v debconf-set-selections >/dev/null 2>&1; then
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	echo "postfix postfix/mailname string localhost.localdomain" | debconf-set-selections
fi

apt-get update -q
apt-get install -y -q --no-install-recommends \
	build-essential autoconf automake libtool pkg-config \
	libmilter-dev libgmime-3.0-dev libglib2.0-dev libssl-dev libspf2-dev \
	libhyperscan-dev libpcre2-dev libpoppler-glib-dev libxml2-dev libcairo2-dev \
	postfix swaks sasl2-bin libsasl2-modules \
	poppler-utils ca-certificates procps iproute2 file jq \
	libsqlite3-dev libpq-dev sqlite3 postgresql chromium \
	libpango1.0-dev libqpdf-dev qpdf fonts-dejavu-core \
	libtiff-dev libtiff-tools libjpeg-dev libspandsp-dev hylafax-server hylafax-client

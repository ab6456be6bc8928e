#!/bin/sh
# Runs a CLI command on the test Asterisk.
exec /work/build/ast-inst/sbin/asterisk -C /work/build/ast-etc/asterisk.conf -rx "$*"

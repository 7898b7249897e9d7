#!/bin/sh
# WANT_JSON
# kvmready.host.kvmready_smoke: kvmready itself speaks Ansible's module protocol
# (`kvmready ansible-module smoke ARGS_FILE`); documentation in kvmready_smoke.yml.
for k in "$(command -v kvmready 2>/dev/null)" /usr/bin/kvmready /usr/local/bin/kvmready; do
  [ -n "$k" ] && [ -x "$k" ] && exec "$k" ansible-module smoke "$1"
done
echo '{"failed": true, "changed": false, "msg": "kvmready is not installed on this host (the kvmready.host.kvmready role installs it)"}'
exit 1

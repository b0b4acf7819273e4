#!/bin/sh
# A customize script (EZ templates' post-cache): run as `motd.sh ROOT` once the packages are
# in ROOT. Its content is part of the template's revision: editing it is a change.
set -eu
printf 'Built by recon from the debian-12-minimal template.\n' > "$1/etc/motd"

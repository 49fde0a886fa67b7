#!/bin/sh
# Puts wren where calico-node looks for BIRD (contract §1):
#   /bin/bird, /bin/bird6   run by the runit services bird and bird6
#                           (/etc/service/available/bird{,6}/run: `exec bird -R -s
#                           /var/run/calico/bird.ctl -d -c /etc/calico/confd/config/bird.cfg`)
#                           and by confd's check (`bird -p -c FILE`);
#   /bin/birdcl             run by calico-node -bird-live (`/bin/birdcl -s
#                           /var/run/calico/bird.ctl show status`);
#   /bin/birdcl6            the IPv6 client the image ships beside it.
# All four are links to one executable, /bin/wrend, which picks its part by the name it is
# started as. Nothing else in the image changes: not the runit services, confd's templates,
# the manifests or calicoctl.
#
#   install.sh WREND [ROOT]
#
# WREND is the wrend executable to install; ROOT the image's root filesystem (default /),
# e.g. in a Dockerfile `RUN /tmp/install.sh /tmp/wrend`.
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 WREND [ROOT]" >&2
    exit 2
fi
wrend=$1
root=${2:-}
bin="$root/bin"

[ -x "$wrend" ] || { echo "$0: $wrend is not an executable" >&2; exit 1; }
mkdir -p "$bin"
# Install under a temporary name and rename, so a running image never sees half a file.
cp "$wrend" "$bin/.wrend.new"
chmod 0755 "$bin/.wrend.new"
mv -f "$bin/.wrend.new" "$bin/wrend"
for name in bird bird6 birdcl birdcl6; do
    # Replaces BIRD's binaries (regular files in calico/node) with links.
    rm -f "$bin/$name"
    ln -s wrend "$bin/$name"
done
echo "wren installed in $bin: bird, bird6, birdcl, birdcl6 -> wrend"

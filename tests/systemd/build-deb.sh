#!/bin/sh
# Builds the Debian package the way README and docs/systemd.md say, and checks
# what is in it:
#   build-deb.sh BUILD_DIR OUT_DIR      -> OUT_DIR/coffee-shop_*.deb
set -u
build=${1:?usage: build-deb.sh BUILD_DIR OUT_DIR} out=${2:?usage: build-deb.sh BUILD_DIR OUT_DIR}
cpack=${CPACK:-cpack}
for c in "$cpack" dpkg-deb dpkg-shlibdeps; do
    command -v $c >/dev/null 2>&1 || { echo "SKIP: $c not found (apt-get install cmake dpkg-dev)"; exit 77; }
done
rm -rf "$out"
mkdir -p "$out"
out=$(readlink -f "$out")
t0=$(date +%s.%N)
if ! (cd "$build" && "$cpack" -G DEB -B "$out") >"$out/cpack.log" 2>&1; then
    cat "$out/cpack.log"; echo "FAIL: cpack -G DEB"; exit 1
fi
deb=$(ls "$out"/coffee-shop_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || { cat "$out/cpack.log"; echo "FAIL: no coffee-shop_*.deb in $out"; exit 1; }
echo "built ${deb##*/} in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
dpkg-deb -I "$deb" | sed -n '/Package:/,$p'
dpkg-deb -c "$deb" | awk '{ print $1, $6 }' > "$out/contents.txt"
fails=0
for want in usr/bin/coffee-consumer usr/bin/coffee-producer usr/bin/coffee-launcher \
    usr/lib/systemd/system/coffee-consumer.socket usr/lib/systemd/system/coffee-consumer.service \
    usr/lib/systemd/system/coffee-producer.service usr/lib/systemd/system/coffee-producer.timer \
    usr/lib/sysusers.d/coffee-shop.conf usr/share/man/man1/coffee-consumer.1 usr/share/man/man1/coffee-producer.1 \
    usr/share/man/man1/coffee-launcher.1; do
    if grep -q " \./$want\$" "$out/contents.txt"; then echo "PASS: .deb has /$want"; else echo "FAIL: .deb lacks /$want"; fails=$((fails + 1)); fi
done
dpkg-deb -f "$deb" Depends | grep -q libc6 && echo "PASS: Depends: from dpkg-shlibdeps" || { echo "FAIL: no shared-library Depends:"; fails=$((fails + 1)); }
dpkg-deb --ctrl-tarfile "$deb" | tar -t | grep -q postinst && echo "PASS: postinst (sysusers, daemon-reload)" || { echo "FAIL: no postinst"; fails=$((fails + 1)); }
[ $fails = 0 ]

#!/usr/bin/env bash
# Builds the OCI image localhost/strata:VERSION (and :latest) with podman:
# the portable binary, the glibc objects it loads (taken from this build
# machine) and CA roots. No shell, no package manager, nothing else.
# Usage: scripts/oci-image.sh [IMAGE]   (prints the image name)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x target/portable/strata ] || ./scripts/build-portable.sh >&2
bin=target/portable/strata
version=$("$bin" --version | awk '{print $2}')
image="${1:-localhost/strata:$version}"
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/root/usr/bin" "$ctx/root/etc/ssl/certs" "$ctx/root/tmp"
install -m 0755 "$bin" "$ctx/root/usr/bin/strata"
# What the dynamic loader resolves for this binary: the loader itself,
# libc, libm, libpthread, libdl (glibc >= 2.34 has files and dns NSS built
# in, so names and DNS need no further modules).
ldd "$bin" | awk '/=>/ {print $3} !/=>/ && $1 ~ /^\// {print $1}' | while read -r lib; do
  [ -n "$lib" ] || continue
  mkdir -p "$ctx/root$(dirname "$lib")"
  cp -L "$lib" "$ctx/root$lib"
done
# The interpreter's canonical path, as the ELF header names it.
interp=$(readelf -l "$bin" | sed -n 's/.*interpreter: \(.*\)]/\1/p')
mkdir -p "$ctx/root$(dirname "$interp")"
cp -L "$interp" "$ctx/root$interp"
cp -L /etc/ssl/certs/ca-certificates.crt "$ctx/root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/:/usr/bin/strata\n' > "$ctx/root/etc/passwd"
printf 'root:x:0:\n' > "$ctx/root/etc/group"
chmod 1777 "$ctx/root/tmp"
cat > "$ctx/Containerfile" <<'CF'
FROM scratch
COPY root/ /
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
ENTRYPOINT ["/usr/bin/strata"]
CMD ["--help"]
CF
podman build -q --no-cache -t "$image" -t localhost/strata:latest "$ctx" >&2
echo "$image"

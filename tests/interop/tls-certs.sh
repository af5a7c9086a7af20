#!/usr/bin/env bash
# Generates the TLS suite's certificates with Debian's openssl into DIR (created):
#   ca.pem ca.key                  the CA the broker trusts for client certificates
#   server.pem server.key          for localhost and 127.0.0.1, signed by ca
#   client-guest.pem/.key          CN=guest (a stored user: EXTERNAL logs in)
#   client-mallory.pem/.key        CN=mallory (no such user: EXTERNAL is refused)
#   other-ca.pem other-ca.key      a CA nobody trusts
# Usage: tls-certs.sh DIR
set -euo pipefail
dir=${1:?usage: tls-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
ossl() { openssl "$@" 2>/dev/null; }
ca() { # name common-name
  ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=$2" -keyout "$1.key" -out "$1.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
leaf() { # name common-name extensions
  ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=Hare interop/CN=$2" \
    -keyout "$1.key" -out "$1.csr"
  printf '%s\n' "$3" > "$1.ext"
  ossl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
    -extfile "$1.ext" -out "$1.pem"
  rm -f "$1.csr" "$1.ext"
}
ca ca "Hare interop CA"
ca other-ca "Another CA"
leaf server hare-server "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
leaf client-guest guest "extendedKeyUsage=clientAuth"
leaf client-mallory mallory "extendedKeyUsage=clientAuth"
echo "tls-certs: written to $dir"

#!/usr/bin/env bash
# Makes throw-away certificates for the TLS tests in DIR (created if missing), with the
# system's `openssl`. Nothing here is secret or lasting: keys are unencrypted, made anew
# on every run, valid for 2 days.
#
#   make_test_ca.sh DIR
#
#   DIR/ca.pem                 our test CA (what TLS_CA= points at)
#   DIR/server.pem, .key       signed by it, for DNS:localhost, IP:127.0.0.1, IP:::1
#   DIR/wrong-name.pem, .key   signed by it, for DNS:wrong.example.org only
#   DIR/other-ca.pem           another CA, which nobody trusts
#   DIR/stranger.pem, .key     signed by that other CA, for localhost and 127.0.0.1
# Each *.pem of a server holds its certificate only; the CA signed it directly.
set -euo pipefail

dir="${1:?usage: make_test_ca.sh DIR}"
mkdir -p "$dir"
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# A self-signed CA: $1 file stem, $2 common name.
ca() {
    key "$1.key"
    cat > "$1.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
x509_extensions = ext
[dn]
CN = $2
[ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CNF
    openssl req -new -x509 -key "$1.key" -out "$1.pem" -days 2 -config "$1.cnf" 2>/dev/null
}

# A server certificate: $1 file stem, $2 signing CA stem, $3 subjectAltName.
server() {
    key "$1.key"
    cat > "$1.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $1 (poold test)
[ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $3
authorityKeyIdentifier = keyid
CNF
    openssl req -new -key "$1.key" -out "$1.csr" -config "$1.cnf" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 2 \
        -extfile "$1.cnf" -extensions ext -out "$1.pem" 2>/dev/null
    rm -f "$1.csr"
}

ca ca "poold test CA"
ca other-ca "some other CA"
server server ca "DNS:localhost, IP:127.0.0.1, IP:::1"
server wrong-name ca "DNS:wrong.example.org"
server stranger other-ca "DNS:localhost, IP:127.0.0.1, IP:::1"
rm -f ./*.cnf ./*.srl
echo "$dir"

/*
 * The system's OpenSSL (libssl-dev, 3.0 or later) as SMTPClient and SpoolKit see it,
 * through the `TLS` package trait (SpoolKit signs and checks Distribute shares with
 * libcrypto's HMAC-SHA256). Swift cannot call C's function-like macros, so the few that
 * SMTPClient needs get a `static inline` wrapper here, named poold_<macro>.
 *
 * It also holds the one piece of I/O that must be C: a socket BIO that writes with
 * send(MSG_NOSIGNAL), so a relay that vanishes mid-write gives EPIPE, never SIGPIPE
 * (OpenSSL's own socket BIO uses write(2), which raises SIGPIPE in a process that has
 * not ignored it, such as a test runner). The BIO borrows the descriptor: the Swift
 * `Socket` owns and closes it.
 */
#ifndef POOLD_COPENSSL_SHIM_H
#define POOLD_COPENSSL_SHIM_H

#include <errno.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* SSL_set_tlsext_host_name: the SNI name sent in the ClientHello. */
static inline int poold_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

/* SSL_CTX_set_min_proto_version: the oldest protocol version the context accepts. */
static inline int poold_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}

/* SSL_CTX_set_mode: ORs `mode` into the context's mode bits. */
static inline long poold_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_mode(ctx, mode);
}

/* SSL_CTX_set_options(SSL_OP_IGNORE_UNEXPECTED_EOF): an EOF without close_notify reads
 * as an ordinary end of stream (SSL_ERROR_ZERO_RETURN). */
static inline void poold_SSL_CTX_ignore_unexpected_eof(SSL_CTX *ctx) {
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
}

/* The socket BIO: descriptor kept as the BIO's data; EAGAIN becomes "retry". */
static inline int poold_socket_bio_write(BIO *bio, const char *data, int length) {
    int fd = (int)(intptr_t)BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    for (;;) {
        ssize_t n = send(fd, data, (size_t)length, MSG_NOSIGNAL);
        if (n >= 0) return (int)n;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(bio);
        return -1;
    }
}

static inline int poold_socket_bio_read(BIO *bio, char *buffer, int length) {
    int fd = (int)(intptr_t)BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    for (;;) {
        ssize_t n = recv(fd, buffer, (size_t)length, 0);
        if (n >= 0) return (int)n;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_read(bio);
        return -1;
    }
}

static inline int poold_socket_bio_puts(BIO *bio, const char *text) {
    size_t length = 0;
    while (text[length] != 0) length++;
    return poold_socket_bio_write(bio, text, (int)length);
}

static inline long poold_socket_bio_ctrl(BIO *bio, int command, long number, void *pointer) {
    (void)bio; (void)number; (void)pointer;
    /* Nothing is buffered here, so a flush is always done; everything else is unknown. */
    return command == BIO_CTRL_FLUSH ? 1 : 0;
}

/* A new BIO_METHOD for socket BIOs (make one per process and keep it). */
static inline BIO_METHOD *poold_socket_bio_method_new(void) {
    BIO_METHOD *method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "poold socket");
    if (method == NULL) return NULL;
    BIO_meth_set_write(method, poold_socket_bio_write);
    BIO_meth_set_read(method, poold_socket_bio_read);
    BIO_meth_set_puts(method, poold_socket_bio_puts);
    BIO_meth_set_ctrl(method, poold_socket_bio_ctrl);
    return method;
}

/* A socket BIO over `fd` (borrowed: freeing the BIO does not close it). */
static inline BIO *poold_socket_bio_new(BIO_METHOD *method, int fd) {
    BIO *bio = BIO_new(method);
    if (bio == NULL) return NULL;
    BIO_set_data(bio, (void *)(intptr_t)fd);
    BIO_set_init(bio, 1);
    return bio;
}

/* An HMAC-SHA256 context keyed with `key` (EVP_MAC "HMAC", digest "SHA256"), ready for
 * EVP_MAC_update/EVP_MAC_final; NULL on failure. Free it with EVP_MAC_CTX_free. Here
 * because OSSL_PARAM arrays are awkward to build from Swift. */
static inline EVP_MAC_CTX *poold_hmac_sha256_new(const unsigned char *key, size_t length) {
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) return NULL;
    EVP_MAC_CTX *context = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);
    if (context == NULL) return NULL;
    char digest[] = "SHA256";
    OSSL_PARAM parameters[2];
    parameters[0] = OSSL_PARAM_construct_utf8_string("digest", digest, 0);
    parameters[1] = OSSL_PARAM_construct_end();
    if (EVP_MAC_init(context, key, length, parameters) != 1) {
        EVP_MAC_CTX_free(context);
        return NULL;
    }
    return context;
}

#endif

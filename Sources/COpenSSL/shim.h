#ifndef TOOLGATE_COPENSSL_SHIM_H
#define TOOLGATE_COPENSSL_SHIM_H
// OpenSSL 3 (Debian libssl-dev), for TLS to Redis on the socket hiredis opened. Several of the calls needed are
// macros over SSL_ctrl / SSL_CTX_ctrl, which Swift cannot call, so each gets a typed inline wrapper here.
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

/// SNI: the name the server sees in the ClientHello (never an IP address, per RFC 6066).
static inline int toolgate_ssl_set_sni(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}
/// A write may be partial, and the retry after WANT_WRITE may pass a buffer that moved (hiredis's output buffer
/// grows by reallocation as commands are appended).
static inline long toolgate_ssl_ctx_set_write_modes(SSL_CTX *context) {
    return SSL_CTX_set_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}
static inline int toolgate_ssl_ctx_set_min_tls12(SSL_CTX *context) {
    return (int)SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
}
#endif

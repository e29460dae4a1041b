#ifndef EDGEBUF_CCURL_SHIM_H
#define EDGEBUF_CCURL_SHIM_H

#include <curl/curl.h>
#include <dlfcn.h>

// glibc defines RTLD_DEFAULT (the global symbol scope) only with _GNU_SOURCE; its value is 0.
#ifndef RTLD_DEFAULT
#define RTLD_DEFAULT ((void *)0)
#endif

// curl_easy_setopt and curl_easy_getinfo are C variadics, which Swift cannot call
// ("Variadic function is unavailable"). Each wrapper below fixes one argument type, so the
// compiler checks what Swift passes and libcurl receives exactly the type it reads with va_arg.

// Options that take a `long` (flags, timeouts in ms, enum values such as CURL_SSLVERSION_*).
static inline CURLcode ccurl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

// Options with the _LARGE suffix take a curl_off_t, which need not be the size of a long.
static inline CURLcode ccurl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

// Options that take a C string; libcurl copies strings (except POSTFIELDS), NULL resets.
static inline CURLcode ccurl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

// Options that take an untyped pointer (userdata, POSTFIELDS, ERRORBUFFER); NULL resets.
static inline CURLcode ccurl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

// Options that take a header list (HTTPHEADER); the list must outlive the transfer.
static inline CURLcode ccurl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

// CURLOPT_WRITEFUNCTION with a typed function pointer, so Swift passes a @convention(c) function.
static inline CURLcode ccurl_setopt_write_function(CURL *handle, curl_write_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, callback);
}

// CURLOPT_HEADERFUNCTION has the same C signature as the write callback.
static inline CURLcode ccurl_setopt_header_function(CURL *handle, curl_write_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, callback);
}

// CURLOPT_READFUNCTION: the request body, handed out by the caller (instead of POSTFIELDS,
// which libcurl may send a second time on its own).
static inline CURLcode ccurl_setopt_read_function(CURL *handle, curl_read_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_READFUNCTION, callback);
}

// CURLOPT_SEEKFUNCTION: asked before libcurl sends the body again (see edgeTransportSeekBody).
static inline CURLcode ccurl_setopt_seek_function(CURL *handle, curl_seek_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_SEEKFUNCTION, callback);
}

// CURLOPT_XFERINFOFUNCTION (progress callback, used to abort a transfer on cancellation).
static inline CURLcode ccurl_setopt_xferinfo_function(CURL *handle, curl_xferinfo_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, callback);
}

// CURLINFO_* of type long (response code, number of connects, request size).
static inline CURLcode ccurl_getinfo_long(CURL *handle, CURLINFO info, long *out) {
    return curl_easy_getinfo(handle, info, out);
}

// CURLINFO_*_T of type curl_off_t (times in microseconds, byte counts).
static inline CURLcode ccurl_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *out) {
    return curl_easy_getinfo(handle, info, out);
}

// CURLINFO_* of type char * (the string belongs to the handle; copy it before the next call).
static inline CURLcode ccurl_getinfo_string(CURL *handle, CURLINFO info, char **out) {
    return curl_easy_getinfo(handle, info, out);
}

// CURLINFO_CERTINFO hands out a struct curl_certinfo * (one slist of "Key:Value" per cert).
static inline CURLcode ccurl_getinfo_certinfo(CURL *handle, struct curl_certinfo **out) {
    return curl_easy_getinfo(handle, CURLINFO_CERTINFO, out);
}

// CURLVERSION_NOW is a macro over an enum constant that Swift does not import.
static inline curl_version_info_data *ccurl_version_info(void) {
    return curl_version_info(CURLVERSION_NOW);
}

// CURLINFO_TLS_SSL_PTR hands out a struct curl_tlssessioninfo * (backend + its session
// pointer). libcurl 7.88 fills `internals` only while a transfer runs, so call it from the
// XFERINFO callback (edgebuf doctor does, to read the agreed TLS version and cipher).
static inline CURLcode ccurl_getinfo_tls_session(CURL *handle, struct curl_tlssessioninfo **out) {
    return curl_easy_getinfo(handle, CURLINFO_TLS_SSL_PTR, out);
}

// With the OpenSSL backend, `internals` above is an SSL *. The protocol version and cipher are
// read with libssl's own functions, looked up at run time in the libssl that libcurl already
// loaded: no link against libssl and no OpenSSL headers here, and NULL (nothing shown) when
// libcurl uses another TLS library. Read-only calls on a live session; nothing is changed.
typedef const char *(*ccurl_ssl_text_fn)(const void *);
typedef const void *(*ccurl_ssl_cipher_fn)(const void *);

// SSL_get_version: "TLSv1.2", "TLSv1.3".
static inline const char *ccurl_openssl_protocol(const void *ssl) {
    ccurl_ssl_text_fn version = (ccurl_ssl_text_fn)dlsym(RTLD_DEFAULT, "SSL_get_version");
    return (ssl && version) ? version(ssl) : NULL;
}

// SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)): e.g. "TLS_AES_256_GCM_SHA384".
static inline const char *ccurl_openssl_cipher(const void *ssl) {
    ccurl_ssl_cipher_fn current = (ccurl_ssl_cipher_fn)dlsym(RTLD_DEFAULT, "SSL_get_current_cipher");
    ccurl_ssl_text_fn name = (ccurl_ssl_text_fn)dlsym(RTLD_DEFAULT, "SSL_CIPHER_get_name");
    if (!ssl || !current || !name) return NULL;
    const void *cipher = current(ssl);
    return cipher ? name(cipher) : NULL;
}

#endif

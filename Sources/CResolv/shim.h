/*
 * glibc's stub resolver (libresolv) as SMTPClient's Resolver sees it. Swift cannot call
 * C's function-like macros nor reach into `struct __res_state`'s unions, so everything
 * the resolver needs is a `static inline` function here, named poold_<what it does>.
 *
 * A state (`struct __res_state`, made by poold_res_new) is used by one thread at a time
 * and freed with poold_res_free. Questions are sent with res_nmkquery + res_nsend on the
 * exact name (no search list: a mail domain is fully qualified), so the caller sees the
 * answer's own RCODE, including NXDOMAIN, and the SOA of a negative answer. res_nsend
 * retries a truncated UDP answer over TCP by itself (RES_IGNTC is never set).
 */
#ifndef POOLD_CRESOLV_SHIM_H
#define POOLD_CRESOLV_SHIM_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <resolv.h>

/* A new state initialised from /etc/resolv.conf (res_ninit); NULL when that fails. */
static inline struct __res_state *poold_res_new(void) {
    struct __res_state *state = calloc(1, sizeof *state);
    if (state == NULL) return NULL;
    if (res_ninit(state) != 0) {
        res_nclose(state);
        free(state);
        return NULL;
    }
    return state;
}

/* res_nclose, then the memory itself. */
static inline void poold_res_free(struct __res_state *state) {
    res_nclose(state);
    free(state);
}

/* Seconds to wait for each answer (`retrans`, RES_TIMEOUT by default) and how many times
 * each server is asked (`retry`, RES_DFLRETRY by default). */
static inline void poold_res_set_timing(struct __res_state *state, int seconds, int attempts) {
    state->retrans = seconds;
    state->retry = attempts;
}

/* Makes `address` (an IPv4 or IPv6 socket address, with its port) the only server asked.
 * IPv4 goes in nsaddr_list; IPv6 in the extension glibc keeps for it (nsaddr_list's family
 * 0 says "look there"); res_send sees the list changed and reopens its sockets.
 * 0 on success, -1 for another family or no memory. */
static inline int poold_res_set_server(struct __res_state *state, const struct sockaddr *address, socklen_t length) {
    for (int i = 0; i < MAXNS; i++) {
        free(state->_u._ext.nsaddrs[i]);
        state->_u._ext.nsaddrs[i] = NULL;
    }
    if (address->sa_family == AF_INET && length >= (socklen_t)sizeof(struct sockaddr_in)) {
        memcpy(&state->nsaddr_list[0], address, sizeof(struct sockaddr_in));
    } else if (address->sa_family == AF_INET6 && length >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 *copy = malloc(sizeof *copy);
        if (copy == NULL) return -1;
        memcpy(copy, address, sizeof *copy);
        memset(&state->nsaddr_list[0], 0, sizeof(struct sockaddr_in));
        state->_u._ext.nsaddrs[0] = copy;
    } else {
        return -1;
    }
    state->nscount = 1;
    return 0;
}

/* Asks one question (class IN) about the exact `name`; the answer's length in `answer`, or
 * -1 with errno set when no answer came (every try timed out, or the server answered
 * SERVFAIL/REFUSED/NOTIMP, which res_nsend treats as no answer), or when the name cannot
 * be put in a question (errno EMSGSIZE). */
static inline int poold_res_ask(struct __res_state *state, const char *name, int type,
                                unsigned char *answer, int capacity) {
    unsigned char question[NS_PACKETSZ];
    int length = res_nmkquery(state, ns_o_query, name, ns_c_in, type, NULL, 0, NULL, question, sizeof question);
    if (length < 0) {
        errno = EMSGSIZE;
        return -1;
    }
    errno = 0;
    return res_nsend(state, question, length, answer, capacity);
}

/* ns_msg_getflag(msg, ns_f_rcode) and the other header fields. */
static inline int poold_ns_msg_rcode(const ns_msg *msg) { return ns_msg_getflag(*msg, ns_f_rcode); }
static inline int poold_ns_msg_count(const ns_msg *msg, ns_sect section) { return ns_msg_count(*msg, section); }
static inline const unsigned char *poold_ns_msg_base(const ns_msg *msg) { return ns_msg_base(*msg); }
static inline const unsigned char *poold_ns_msg_end(const ns_msg *msg) { return ns_msg_end(*msg); }

#endif

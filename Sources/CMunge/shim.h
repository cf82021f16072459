#ifndef CCAT_CMUNGE_SHIM_H
#define CCAT_CMUNGE_SHIM_H
#include <munge.h>
#include <time.h>

/* munge_ctx_get/munge_ctx_set are variadic; typed wrappers for the options we use. */
static inline munge_err_t ccat_munge_ctx_set_int(munge_ctx_t ctx, int opt, int value) {
    return munge_ctx_set(ctx, opt, value);
}
static inline munge_err_t ccat_munge_ctx_set_str(munge_ctx_t ctx, int opt, const char *value) {
    return munge_ctx_set(ctx, opt, value);
}
static inline munge_err_t ccat_munge_ctx_get_int(munge_ctx_t ctx, int opt, int *value) {
    return munge_ctx_get(ctx, opt, value);
}
static inline munge_err_t ccat_munge_ctx_get_time(munge_ctx_t ctx, int opt, time_t *value) {
    return munge_ctx_get(ctx, opt, value);
}
#endif

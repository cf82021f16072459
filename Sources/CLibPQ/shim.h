#ifndef CCAT_CLIBPQ_SHIM_H
#define CCAT_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#include <poll.h>
#endif

#ifndef CCAT_CLIBARCHIVE_SHIM_H
#define CCAT_CLIBARCHIVE_SHIM_H
#include <archive.h>
#include <archive_entry.h>
#endif

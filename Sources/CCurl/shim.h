#ifndef EDGEBUF_CCURL_SHIM_H
#define EDGEBUF_CCURL_SHIM_H

#include <curl/curl.h>

#endif

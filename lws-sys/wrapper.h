/* What bindgen sees: the whole public lws API of the configured build. */
#include <lws_config.h>
#include <libwebsockets.h>

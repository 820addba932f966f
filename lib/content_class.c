/* content_class.c — placeholder, being written. */
#include "util.h"

/* mime_text.c — placeholder, being written. */
#include "util.h"

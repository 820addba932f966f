/* verdict.c — placeholder, being written. */
#include "util.h"

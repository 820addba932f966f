/* normalize.c — placeholder, being written. */
#include "util.h"

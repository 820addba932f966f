/* directory.c — placeholder, being written. */
#include "util.h"

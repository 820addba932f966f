/* sender_auth.c — placeholder, being written. */
#include "util.h"

/* fax_stamp.c — stub, being written. */
#include "autoconfig.h"
#include "fax_stamp.h"

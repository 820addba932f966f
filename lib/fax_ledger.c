/* fax_ledger.c — stub, being written. */
#include "autoconfig.h"
#include "fax_ledger.h"

/* stub */
#include "autoconfig.h"
#include "fax_backend.h"
int fax_backend_stub(void) { return 0; }

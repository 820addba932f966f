/* stub */
#include "autoconfig.h"
#include "fax_config.h"
int fax_config_stub(void) { return 0; }

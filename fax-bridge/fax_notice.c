/* stub */
#include "autoconfig.h"
#include "fax_notice.h"
int fax_notice_stub(void) { return 0; }
